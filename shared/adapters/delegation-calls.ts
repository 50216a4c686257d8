/**
 * The calls a delegated wallet makes and what its receipt says about each
 * item: BatchExecutor.pay (a hot wallet paying many orders) and
 * DepositSweeper.sweep (the collection wallet emptying many deposit
 * wallets). Pure: ABI encoding and log decoding, no node.
 *
 * Reading a receipt, the rule is positive evidence: an item counts as done
 * only when the contract's result event, emitted from the address that ran
 * our code, has its bit set. A reverted transaction did nothing; a mined
 * transaction without the event did nothing either (the wallet's delegation
 * was not ours when it ran: a self-call to a plain EOA "succeeds" silently).
 */
import { MAX_BATCH_AMOUNT } from "../domain/delegation-batch-plan.ts";
import { ADDRESS_RE } from "../domain/limits.ts";
import { contractInterface } from "./delegation-contracts.ts";

/** One word per item, as both contracts read it: `amount << 160 | address`. */
export function packItem(address: string, amount: bigint): bigint {
  if (!ADDRESS_RE.test(address)) throw new TypeError(`not an address: ${address}`);
  if (amount < 0n || amount > MAX_BATCH_AMOUNT) throw new RangeError(`amount ${amount} does not fit 96 bits: send it alone`);
  return (amount << 160n) | BigInt(address);
}

/**
 * Gas each item's call may use. A plain ERC-20 transfer to a fresh
 * recipient needs about 35,000 and an ETH payment to a contract wallet a
 * few thousand; a recipient or token needing more fails its own item only.
 */
export const DEFAULT_GAS_PER_ITEM = 100_000;

const NO_TOKEN = "0x0000000000000000000000000000000000000000";
const word = (n: bigint) => n.toString(16).padStart(64, "0");

/**
 * `selector(address token, uint32 gasPerItem, uint256[] items)` call data,
 * the shape of both contracts' entry points, exactly as ethers' ABI coder
 * writes it (tests/unit/eip7702.test.ts checks that on random input): the
 * head (token, gas, the array's offset 0x60), then the array's length and
 * words. Written out because the coder, which also checksums every address,
 * took about a twentieth of a batched payout's time in the send bench.
 */
function itemsCall(name: "BatchExecutor" | "DepositSweeper", fn: "pay" | "sweep", token: string | null, gasPerItem: number, items: bigint[]): string {
  const t = token ?? NO_TOKEN;
  if (!ADDRESS_RE.test(t)) throw new TypeError(`not an address: ${t}`);
  if (!Number.isInteger(gasPerItem) || gasPerItem < 0 || gasPerItem > 0xffffffff) throw new RangeError(`gas per item ${gasPerItem} is not a uint32`);
  const head = `${selectorOf(name, fn)}${word(BigInt(t))}${word(BigInt(gasPerItem))}${word(0x60n)}${word(BigInt(items.length))}`;
  return head + items.map(word).join("");
}

const selectors = new Map<string, string>();
function selectorOf(name: "BatchExecutor" | "DepositSweeper", fn: "pay" | "sweep"): string {
  const k = `${name}.${fn}`;
  let s = selectors.get(k);
  if (!s) selectors.set(k, (s = contractInterface(name).getFunction(fn)!.selector));
  return s;
}

/** Call data of BatchExecutor.pay, sent by the hot wallet to itself. `token` null = ETH. */
export function encodePay(token: string | null, items: readonly { to: string; amount: bigint }[], gasPerItem = DEFAULT_GAS_PER_ITEM): string {
  return itemsCall("BatchExecutor", "pay", token, gasPerItem, items.map((i) => packItem(i.to, i.amount)));
}

/** Call data of DepositSweeper.sweep, sent by the collection wallet to the sweeper. `token` null = ETH only. */
export function encodeSweep(token: string | null, items: readonly { wallet: string; amount: bigint }[], gasPerItem = DEFAULT_GAS_PER_ITEM): string {
  return itemsCall("DepositSweeper", "sweep", token, gasPerItem, items.map((i) => packItem(i.wallet, i.amount)));
}

export interface ReceiptLike {
  /** 1 mined and succeeded, 0 reverted */
  status: number | null;
  logs: readonly { address: string; topics: readonly string[]; data: string }[];
}

export type ItemsOutcome =
  /** the transaction reverted: no item was done */
  | { kind: "reverted" }
  /** mined, but our code did not run (no result event): no item was done */
  | { kind: "not-executed" }
  | { kind: "executed"; done: boolean[] };

function bits(words: readonly bigint[], count: number): boolean[] {
  return Array.from({ length: count }, (_, i) => ((words[i >> 8] ?? 0n) >> BigInt(i & 255)) & 1n ? true : false);
}

function outcome(receipt: ReceiptLike, name: "BatchExecutor" | "DepositSweeper", event: "Batch" | "Sweep", emitter: string, count: number): ItemsOutcome {
  if (receipt.status !== 1) return { kind: "reverted" };
  const iface = contractInterface(name);
  const topic = iface.getEvent(event)!.topicHash;
  const from = emitter.toLowerCase();
  const logs = receipt.logs.filter((l) => l.address.toLowerCase() === from && l.topics[0] === topic);
  if (logs.length === 0) return { kind: "not-executed" };
  if (logs.length > 1) throw new Error(`${event}: ${logs.length} result events from ${from} in one transaction`);
  const ev = iface.parseLog(logs[0]!)!;
  const n = Number(ev.args[0] as bigint);
  if (n !== count) throw new Error(`${event}: the receipt reports ${n} items, the transaction was built with ${count}`);
  return { kind: "executed", done: bits(ev.args[1] as bigint[], count) };
}

/** Per item of a `pay` sent by `wallet`: paid or not. */
export function payOutcome(receipt: ReceiptLike, wallet: string, count: number): ItemsOutcome {
  return outcome(receipt, "BatchExecutor", "Batch", wallet, count);
}

/** Per deposit wallet of a `sweep` on `sweeper`: swept or not. */
export function sweepOutcome(receipt: ReceiptLike, sweeper: string, count: number): ItemsOutcome {
  return outcome(receipt, "DepositSweeper", "Sweep", sweeper, count);
}

/** ETH each deposit wallet sent to the collector in a sweep (lowercase address -> wei), from their NativeSwept logs. */
export function nativeSwept(receipt: ReceiptLike, wallets: readonly string[]): Map<string, bigint> {
  const iface = contractInterface("DepositSweeper");
  const topic = iface.getEvent("NativeSwept")!.topicHash;
  const ours = new Set(wallets.map((w) => w.toLowerCase()));
  const out = new Map<string, bigint>();
  if (receipt.status !== 1) return out;
  for (const l of receipt.logs) {
    const a = l.address.toLowerCase();
    if (l.topics[0] !== topic || !ours.has(a)) continue;
    out.set(a, (out.get(a) ?? 0n) + (iface.parseLog(l)!.args[0] as bigint));
  }
  return out;
}
