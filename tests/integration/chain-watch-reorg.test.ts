/**
 * Reorgs (anvil_reorg) below confirm_height. A deposit whose transaction
 * leaves the chain is never ended by a timer: mined again later, it is
 * credited; it ends status 0 `reorged` only once its sender's nonce is used
 * by another transaction confirm_height deep, and is never final then. A
 * deposit whose transaction is mined again at another log index is followed
 * and finalised exactly once.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { Contract, Transaction, Wallet } from "ethers";
import { eventually } from "../helpers/rabbit.ts";
import { depositSuite, forTx, newAddress } from "../helpers/deposit-stack.ts";
import { artifact } from "../../shared/devchain/anvil.ts";
import { receiptOf } from "../helpers/receipts.ts";

const CONFIRM = 3;
const s = depositSuite((c) => ({ ...c, eth_config: { ...c.eth_config!, confirm_height: CONFIRM } }));
const unminedNoted = async (txHash: string) =>
  (await s.env.db.prisma.auditEvent.count({ where: { event: "deposit.unmined", data: { contains: txHash.toLowerCase() } } })) > 0;

/** A funded USDT holder whose transfers we sign ourselves (raw bytes to replay in anvil_reorg). */
async function rawTransfer(keyIndex: number, to: string, units: bigint): Promise<{ raw: string; hash: string }> {
  const wallet = new Wallet(s.env.anvil!.keys[keyIndex]!, s.chain.provider);
  const token = new Contract(s.env.usdt!, artifact("TestUSDT").abi);
  const nonce = await s.chain.provider.getTransactionCount(wallet.address, "pending");
  const fee = await s.chain.provider.getFeeData();
  const raw = await wallet.signTransaction({
    type: 2,
    chainId: BigInt(s.env.anvil!.chainId),
    to: s.env.usdt!,
    data: token.interface.encodeFunctionData("transfer", [to, units]),
    nonce,
    gasLimit: 100_000n,
    maxFeePerGas: fee.maxFeePerGas! * 2n,
    maxPriorityFeePerGas: fee.maxPriorityFeePerGas!,
  });
  return { raw, hash: (await s.chain.provider.send("eth_sendRawTransaction", [raw])) as string };
}

async function fund(keyIndex: number) {
  await receiptOf(s.chain.provider, (await s.chain.usdt.getFunction("mint")(new Wallet(s.env.anvil!.keys[keyIndex]!).address, 10n ** 12n)).hash);
}

/**
 * A deposit to `addr` from anvil account `keyIndex` (its own account: the reorg drops the transaction,
 * and a shared sender's local nonce would go stale), reported seen, then its block replaced by an
 * empty one (depth 1 < confirm_height).
 */
async function seenThenDropped(keyIndex: number, addr: string, units: bigint, queueId: string) {
  await s.stack.topup("USDT", addr, queueId);
  await fund(keyIndex);
  const sent = await rawTransfer(keyIndex, addr, units);
  const receipt = await eventually(async () => (await s.chain.provider.getTransactionReceipt(sent.hash))!);
  const seen = await s.stack.biz.waitFor("topup", forTx(receipt.hash, 2));
  await s.chain.provider.send("anvil_reorg", [1, []]);
  assert.equal(await s.chain.provider.send("eth_getTransactionReceipt", [receipt.hash]), null);
  return { sent, receipt, seen };
}

test("a deposit whose transaction left the chain is not ended by a timer: mined again later, it is credited once", async () => {
  const addr = newAddress(0xc4);
  const { sent, receipt } = await seenThenDropped(7, addr, 33_000_000n, "topup-reorg-late");
  // the confirmation has looked at it since its block left (a timer would have ended it by now: status 0)
  await eventually(async () => (await unminedNoted(receipt.hash)) || s.stack.biz.received("topup").some(forTx(receipt.hash, 0)), 30_000);
  await s.chain.mine(CONFIRM + 2); // well past the block it was due at

  // the same transaction is mined again, much later
  await s.chain.provider.send("eth_sendRawTransaction", [sent.raw]);
  await eventually(() => s.chain.provider.send("eth_getTransactionReceipt", [sent.hash]));
  await s.chain.mine(CONFIRM);
  const final = await s.stack.biz.waitFor("topup", forTx(receipt.hash, 1), 30_000);
  assert.equal(final.amount_exact, "33");
  assert.deepEqual(s.stack.biz.received("topup").filter((n) => n.tx_hash === receipt.hash).map((n) => n.status), [2, 1], "never reported failed");
  const balance = await s.env.db.prisma.balance.findFirstOrThrow({ where: { address: addr, symbol: "USDT" } });
  assert.equal(balance.amount.toFixed(), "33");
});

test("a dropped deposit ends reorged only on evidence: its sender's nonce used by another transaction confirm_height deep", async () => {
  const addr = newAddress(0xc1);
  const { sent, receipt, seen } = await seenThenDropped(6, addr, 42_000_000n, "topup-reorg-1");
  assert.equal(seen.amount_exact, "42");
  await eventually(() => unminedNoted(receipt.hash), 30_000);

  // the sender spends the same nonce on something else: once that is deep, the deposit can never be mined
  const wallet = new Wallet(s.env.anvil!.keys[6]!, s.chain.provider);
  const nonce = Number(Transaction.from(sent.raw).nonce);
  await receiptOf(s.chain.provider, (await wallet.sendTransaction({ to: wallet.address, value: 0n, nonce })).hash);
  await s.chain.mine(CONFIRM);
  const failed = await s.stack.biz.waitFor("topup", forTx(receipt.hash, 0), 30_000);
  assert.equal(failed.error, "reorged");
  assert.equal(failed.amount_exact, "42");
  assert.equal(failed.queue_id, "topup-reorg-1");
  const d = await s.env.db.prisma.deposit.findFirstOrThrow({ where: { txHash: receipt.hash.toLowerCase() } });
  const why = await s.env.db.prisma.auditEvent.findFirstOrThrow({ where: { event: "deposit.reorged", subjectId: d.id } });
  assert.match(JSON.parse(why.data!).why, new RegExp(`nonce ${nonce} was used by another transaction ${CONFIRM} blocks deep`));
  assert.equal(d.state, "reorged", "final: it can never be confirmed or credited");
  assert.equal(d.error, "reorged");
  assert.equal(await s.env.db.prisma.notification.count({ where: { dedupeKey: `deposit-${d.id}-1` } }), 0);
  assert.equal(await s.env.db.prisma.balance.count({ where: { address: addr } }), 0);
  assert.ok(s.stack.biz.allSigned());
});

test("a deposit re-mined in the replacing block at another log index is followed and final once", async () => {
  await fund(4);
  await fund(5);
  const addr = newAddress(0xc2);
  await s.stack.topup("USDT", addr);
  const deposit = await rawTransfer(4, addr, 100_500_001n);
  const first = await eventually(() => s.chain.provider.send("eth_getTransactionReceipt", [deposit.hash]));
  const seen = await s.stack.biz.waitFor("topup", forTx(deposit.hash, 2));
  assert.equal(seen.log_index, 0);
  const row = await s.env.db.prisma.deposit.findFirstOrThrow({ where: { txHash: deposit.hash } });

  // another transfer goes first in the replacing block, so ours moves to log index 1
  const other = await rawTransfer(5, newAddress(0xc3), 5n);
  await eventually(() => s.chain.provider.send("eth_getTransactionReceipt", [other.hash]));
  const depth = (await s.chain.head()) - Number(first.blockNumber) + 1;
  assert.ok(depth < CONFIRM);
  await s.chain.provider.send("anvil_reorg", [depth, [[other.raw, 0], [deposit.raw, 0]]]);
  const again = await s.chain.provider.send("eth_getTransactionReceipt", [deposit.hash]);
  assert.notEqual(again.blockHash, first.blockHash);
  assert.equal(Number(again.logs[0].logIndex), 1);

  await eventually(async () => {
    const d = await s.env.db.prisma.deposit.findUniqueOrThrow({ where: { id: row.id } });
    return d.blockHash === again.blockHash && d.logIndex === 1;
  });
  await s.chain.mine(CONFIRM);
  const final = await s.stack.biz.waitFor("topup", forTx(deposit.hash, 1));
  assert.equal(final.amount_exact, "100.500001");
  assert.equal(final.log_index, 1);
  assert.equal(final.block_height, Number(again.blockNumber));

  // chain-watch has scanned two more blocks and the deposit's job is done: a second report would be here by now
  await s.chain.mine(2);
  const head = await s.chain.head();
  await eventually(async () => Number((await s.env.db.prisma.chainCursor.findFirstOrThrow()).blockNumber) >= head);
  await eventually(async () => (await (await s.env.queues.confirm.getJob(`deposit-${row.id}`))?.getState()) === "completed");
  const notes = s.stack.biz.received("topup").filter((n) => n.tx_hash === deposit.hash);
  assert.deepEqual(notes.map((n) => n.status).sort(), [1, 2]);
  assert.equal(await s.env.db.prisma.deposit.count({ where: { txHash: deposit.hash } }), 1);
  const balance = await s.env.db.prisma.balance.findFirstOrThrow({ where: { address: addr, symbol: "USDT" } });
  assert.equal(balance.amount.toFixed(), "100.500001");
  const audit = await s.env.db.prisma.auditEvent.findMany({ where: { subjectType: "deposit", subjectId: row.id, event: "deposit.followed" } });
  assert.ok(audit.length >= 1, "the move is audited");
});
