/**
 * Reorgs of every depth below confirm_height (confirm_height 4: depths 1, 2
 * and 3, with `anvil_reorg`), for a pending deposit and a pending transfer,
 * with every role running as its own process:
 *
 * - a deposit whose transaction leaves the chain, its sender's nonce taken
 *   by another transaction in the replacing chain, ends status 0 `reorged`
 *   once that transaction is deep: never final, never credited;
 * - a deposit whose transaction is mined again in the replacing blocks is
 *   followed to its new block and final once, there;
 * - a transfer whose transaction leaves the chain is re-broadcast from its
 *   stored signed bytes (never re-signed), mined again and final once;
 * - a transfer whose nonce is taken in the replacing chain by another
 *   transaction of the same wallet ends status 0 `reorged` once that
 *   transaction is deep, and its recipient receives nothing.
 *
 * In every case the final notification names a block that is canonical at
 * the end, and no subject gets two final notifications.
 */
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { Contract, NonceManager, Wallet } from "ethers";
import { eventually, type Note } from "../helpers/rabbit.ts";
import { erc20 } from "../../shared/adapters/chain.ts";
import { artifact } from "../../shared/devchain/anvil.ts";
import { startFaultStack, randomAddress, HOT, HOT_KEY, type FaultStack } from "./lib/fault-stack.ts";
import { receiptOf } from "../helpers/receipts.ts";

const CONFIRM = 4;
const DEPTHS = Array.from({ length: CONFIRM - 1 }, (_, i) => i + 1);
/** anvil accounts that make the test's deposits (raw transactions we can replay) */
const DEPOSITOR = 4;

let s: FaultStack;

before(async () => {
  s = await startFaultStack({ confirmHeight: CONFIRM });
  const owner = new NonceManager(new Wallet(s.env.anvil!.keys[0]!, s.provider));
  const token = new Contract(s.env.usdt!, artifact("TestUSDT").abi, owner);
  await receiptOf(s.provider, (await token.getFunction("mint")(new Wallet(s.env.anvil!.keys[DEPOSITOR]!).address, 10n ** 12n)).hash);
  await s.startRoles();
  await s.mine(CONFIRM); // the mint is deep: no reorg below reaches it
});

after(async () => {
  await s?.stop();
});

const head = async () => Number(await s.provider.send("eth_blockNumber", []));
const canonicalHash = async (n: number | bigint) => ((await s.provider.send("eth_getBlockByNumber", [`0x${BigInt(n).toString(16)}`, false])) as { hash: string }).hash;
const receipt = (hash: string) => s.provider.send("eth_getTransactionReceipt", [hash]) as Promise<{ blockNumber: string; blockHash: string } | null>;

/** A USDT transfer signed here, so its raw bytes can be put back into the chain by anvil_reorg. */
async function rawTransfer(key: string, to: string, units: bigint, opts: { nonce?: number; data?: string; target?: string } = {}) {
  const wallet = new Wallet(key, s.provider);
  const fee = await s.provider.getFeeData();
  const raw = await wallet.signTransaction({
    type: 2,
    chainId: BigInt(s.env.anvil!.chainId),
    to: opts.target ?? s.env.usdt!,
    data: opts.data ?? erc20.encodeFunctionData("transfer", [to, units]),
    nonce: opts.nonce ?? (await s.provider.getTransactionCount(wallet.address, "pending")),
    gasLimit: 100_000n,
    maxFeePerGas: fee.maxFeePerGas! * 3n,
    maxPriorityFeePerGas: fee.maxPriorityFeePerGas! * 2n,
  });
  return { raw, hash: (await s.provider.send("eth_sendRawTransaction", [raw])) as string };
}

const notesFor = (kind: "topup" | "withdraw", hashOrQueue: string) =>
  s.biz.received(kind).filter((n) => (kind === "topup" ? n.tx_hash === hashOrQueue : n.queue_id === hashOrQueue));
const waitNote = (kind: "topup" | "withdraw", key: string, pred: (n: Note) => boolean, timeoutMs = 60_000) =>
  s.biz.waitFor(kind, (n) => (kind === "topup" ? n.tx_hash === key : n.queue_id === key) && pred(n), timeoutMs);

/** Mine until `blockNumber` is `depth` deep (its block is the `depth`-th from the head), asserting it is not final yet. */
async function bury(blockNumber: number, depth: number) {
  const h = await head();
  assert.equal(h, blockNumber, "the transaction is in the head block");
  if (depth > 1) await s.mine(depth - 1);
  assert.ok((await head()) < blockNumber + CONFIRM, "not final yet");
}

/**
 * After the scenario: blocks enough for anything pending to be final, scanned
 * by chain-watch, and the subject's confirmation job done: a late (wrong)
 * notification would have been written by now.
 */
async function settleChain(jobId: string) {
  await s.mine(CONFIRM + 2);
  const h = await head();
  await eventually(async () => Number((await s.env.db.prisma.chainCursor.findFirstOrThrow()).blockNumber) >= h, 60_000);
  // a job whose deposit or transfer ended status 0 fails (never a green completion): either state is done
  await eventually(async () => ["completed", "failed"].includes((await (await s.env.queues.confirm.getJob(jobId))?.getState()) ?? ""), 60_000);
  await eventually(async () => (await s.env.db.prisma.notification.count({ where: { state: "pending" } })) === 0, 60_000);
}

/** A 0-value transaction of `key`'s account with this nonce: whatever it replaces can never be mined. */
async function takeNonce(key: string, nonce: number): Promise<string> {
  const wallet = new Wallet(key);
  const fee = await s.provider.getFeeData();
  return wallet.signTransaction({
    type: 2,
    chainId: BigInt(s.env.anvil!.chainId),
    to: wallet.address,
    value: 0n,
    nonce,
    gasLimit: 21_000n,
    maxFeePerGas: fee.maxFeePerGas! * 3n,
    maxPriorityFeePerGas: fee.maxPriorityFeePerGas! * 2n,
  });
}

for (const depth of DEPTHS) {
  test(`depth ${depth}: a deposit whose transaction leaves the chain, its nonce taken by another, ends reorged once that is deep; never final, never credited`, { timeout: 120_000 }, async () => {
    const to = randomAddress();
    await s.topup(to, `reorg-d${depth}-dropped`);
    const key = s.env.anvil!.keys[DEPOSITOR]!;
    const nonce = await s.provider.getTransactionCount(new Wallet(key).address, "pending");
    const dep = await rawTransfer(key, to, 42_000_000n, { nonce });
    const r = (await eventually(() => receipt(dep.hash)))!;
    await waitNote("topup", dep.hash, (n) => n.status === 2);
    await bury(Number(r.blockNumber), depth);

    await s.provider.send("anvil_reorg", [depth, [[await takeNonce(key, nonce), 0]]]);
    assert.equal(await receipt(dep.hash), null, "gone from the chain");
    await s.mine(CONFIRM + 1); // the transaction that took its nonce becomes deep
    const failed = await waitNote("topup", dep.hash, (n) => n.status === 0);
    assert.equal(failed.error, "reorged");
    assert.equal(failed.amount_exact, "42");

    const id = (await s.env.db.prisma.deposit.findFirstOrThrow({ where: { txHash: dep.hash } })).id;
    await settleChain(`deposit-${id}`);
    assert.deepEqual(notesFor("topup", dep.hash).map((n) => n.status).sort(), [0, 2], "pending, then reorged; never final");
    const row = await s.env.db.prisma.deposit.findFirstOrThrow({ where: { txHash: dep.hash } });
    assert.equal(row.state, "reorged");
    assert.equal(await s.env.db.prisma.balance.count({ where: { address: to } }), 0, "never credited");
  });

  test(`depth ${depth}: a deposit mined again in the replacing blocks is followed to its new block and final once there`, { timeout: 120_000 }, async () => {
    const to = randomAddress();
    await s.topup(to, `reorg-d${depth}-followed`);
    const dep = await rawTransfer(s.env.anvil!.keys[DEPOSITOR]!, to, 7_500_001n);
    const first = (await eventually(() => receipt(dep.hash)))!;
    await waitNote("topup", dep.hash, (n) => n.status === 2);
    await bury(Number(first.blockNumber), depth);

    // into the last replacing block: another hash, and (depth > 1) another height
    await s.provider.send("anvil_reorg", [depth, [[dep.raw, depth - 1]]]);
    const again = (await receipt(dep.hash))!;
    assert.notEqual(again.blockHash, first.blockHash);
    assert.equal(Number(again.blockNumber), Number(first.blockNumber) + depth - 1);
    await eventually(async () => (await s.env.db.prisma.deposit.findFirstOrThrow({ where: { txHash: dep.hash } })).blockHash === again.blockHash);

    await s.mine(CONFIRM);
    const final = await waitNote("topup", dep.hash, (n) => n.status === 1);
    assert.equal(final.amount_exact, "7.500001");
    assert.equal(final.block_height, Number(again.blockNumber));
    await settleChain(`deposit-${(await s.env.db.prisma.deposit.findFirstOrThrow({ where: { txHash: dep.hash } })).id}`);
    assert.deepEqual(notesFor("topup", dep.hash).map((n) => n.status).sort(), [1, 2]);
    const row = await s.env.db.prisma.deposit.findFirstOrThrow({ where: { txHash: dep.hash } });
    assert.equal(row.state, "confirmed");
    assert.equal(row.blockHash, await canonicalHash(row.blockNumber), "final on a canonical block");
    const book = await s.env.db.prisma.balance.findFirstOrThrow({ where: { address: to, symbol: "USDT" } });
    assert.equal(book.amount.toFixed(), "7.500001", "credited once");
  });

  test(`depth ${depth}: a transfer whose transaction leaves the chain is re-broadcast (same signed bytes), mined again and final once`, { timeout: 120_000 }, async () => {
    const q = `reorg-d${depth}-transfer`;
    const to = randomAddress();
    await s.withdraw(q, to, "3.25");
    const pending = await waitNote("withdraw", q, (n) => n.status === 2);
    const mined = await eventually(async () => {
      const t = await s.env.db.prisma.transfer.findFirst({ where: { queueId: q } });
      return t?.state === "mined" ? t : null;
    });
    await bury(Number(mined.blockNumber), depth);

    await s.provider.send("anvil_reorg", [depth, []]);
    assert.equal(await receipt(String(pending.tx_hash)), null, "gone from the chain");
    // confirmation notices, puts the stored raw transaction back; automine mines it at once
    await eventually(async () => (await receipt(String(pending.tx_hash))) !== null, 60_000, 100);
    await s.mine(CONFIRM);
    const final = await waitNote("withdraw", q, (n) => n.status !== 2);
    assert.equal(final.status, 1, JSON.stringify(final));
    assert.equal(final.tx_hash, pending.tx_hash, "the same transaction, never re-signed");
    await settleChain(`transfer-${mined.id}`);
    assert.deepEqual(notesFor("withdraw", q).map((n) => n.status).sort(), [1, 2]);
    const t = await s.env.db.prisma.transfer.findFirstOrThrow({ where: { queueId: q }, include: { attempts: true } });
    assert.equal(t.attempts.length, 1, "one signed transaction");
    assert.notEqual(t.blockHash, mined.blockHash);
    assert.equal(t.blockHash, await canonicalHash(t.blockNumber!), "final on a canonical block");
    assert.equal(final.block_height, Number(t.blockNumber));
    assert.equal(await s.usdtOf(to), 3_250_000n, "paid exactly once");
    assert.ok((await s.env.db.prisma.auditEvent.count({ where: { event: "transfer.unmined", queueId: q } })) >= 1);
  });

  test(`depth ${depth}: a transfer whose nonce is taken by another transaction in the replacing chain ends reorged; nothing paid`, { timeout: 120_000 }, async () => {
    const q = `reorg-d${depth}-nonce`;
    const to = randomAddress();
    const hotBook = async () => (await s.env.db.prisma.balance.findFirst({ where: { address: HOT, symbol: "USDT" } }))?.amount.toFixed() ?? "0";
    const bookBefore = await hotBook();
    await s.withdraw(q, to, "9.75");
    const pending = await waitNote("withdraw", q, (n) => n.status === 2);
    const mined = await eventually(async () => {
      const t = await s.env.db.prisma.transfer.findFirst({ where: { queueId: q } });
      return t?.state === "mined" ? t : null;
    });
    await bury(Number(mined.blockNumber), depth);

    // someone holding the hot wallet's key spends the same nonce (a 0-value call) on the other branch
    await s.provider.send("anvil_reorg", [depth, [[await takeNonce(HOT_KEY, Number(mined.nonce)), 0]]]);
    assert.equal(await receipt(String(pending.tx_hash)), null, "gone from the chain");
    await s.mine(CONFIRM + 1); // the conflicting transaction becomes deep
    const final = await waitNote("withdraw", q, (n) => n.status !== 2);
    assert.equal(final.status, 0, JSON.stringify(final));
    assert.equal(final.error, "reorged");
    await settleChain(`transfer-${mined.id}`);
    assert.deepEqual(notesFor("withdraw", q).map((n) => n.status).sort(), [0, 2]);
    assert.equal(await s.usdtOf(to), 0n, "nothing paid");
    const t = await s.env.db.prisma.transfer.findFirstOrThrow({ where: { queueId: q }, include: { attempts: true } });
    assert.equal(t.state, "failed");
    assert.equal(t.error, "reorged");
    assert.equal(t.attempts.length, 1, "never re-signed");
    assert.equal(await hotBook(), bookBefore, "the hot wallet's book is not debited by a transfer that never happened");
  });
}

test("every notification of the reorg runs is signed, and no subject was reported final twice", () => {
  assert.ok(s.biz.allSigned());
  for (const kind of ["topup", "withdraw"] as const) {
    const finals = s.biz.received(kind).filter((n) => n.status !== 2);
    const subjects = finals.map((n) => (kind === "topup" ? `${n.tx_hash}/${n.log_index}` : String(n.queue_id)));
    assert.equal(new Set(subjects).size, subjects.length, `${kind}: one final per subject`);
  }
});
