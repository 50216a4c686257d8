/**
 * Crash safety of the money-out path: a transfer-sender PROCESS is killed
 * with SIGKILL at each failpoint (see shared/runtime/failpoints.ts) while it
 * sends a batch, then a fresh process is started: every recipient ends up
 * with exactly its amount, each transfer has one signed transaction, and
 * the business system gets exactly one pending and one final notification
 * per transfer.
 *
 * The killed process's jobs are recovered by BullMQ's stalled-job check
 * once their lock has expired (short lock timings in this test's config,
 * as an operator may set them), its address lease after its 30 s TTL.
 */
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { nowS, eventually } from "../helpers/rabbit.ts";
import { usedNonces, startTransferStack, spawnSender, waitForNotes, randomAddress, HOT, HOT_KEY, type TransferStack, type SenderProcess } from "../helpers/transfer-stack.ts";

let s: TransferStack;
const running: SenderProcess[] = [];

before(async () => {
  s = await startTransferStack({
    sender: false,
    config: (c) => ({ ...c, workers: { ...c.workers, lock_duration_ms: 3_000, stalled_interval_ms: 1_000 } as typeof c.workers }),
  });
  s.startMining(100);
});

after(async () => {
  for (const p of running) await p.stop();
  await s?.stop();
});

for (const point of ["before-broadcast", "after-broadcast", "after-sent-commit"] as const) {
  test(`SIGKILL at ${point}, then a restart: each recipient receives exactly its amount, once`, { timeout: 240_000 }, async () => {
    const q = `crash-${point}`;
    const orders = Array.from({ length: 6 }, (_, i) => ({ order_id: `o${i}`, to_address: randomAddress(), amount: `${i + 1}.${i}5` }));
    const single = { to: randomAddress(), amount: "0.000001" };
    await s.biz.send("pay", { queue_id: q, from_address: HOT, chain: "ETH", symbol: "USDT", transactions: orders, timestamp: nowS() });
    await s.biz.send("withdraw", { queue_id: q, from_address: HOT, to_address: single.to, amount: single.amount, chain: "ETH", symbol: "USDT", timestamp: nowS() });
    await eventually(async () => (await s.env.db.prisma.transfer.count({ where: { queueId: q } })) === 7);

    const doomed = spawnSender(s, { failpoints: point });
    running.push(doomed);
    const exit = await doomed.exited;
    assert.equal(exit.signal, "SIGKILL", doomed.output());
    assert.match(doomed.output(), new RegExp(`failpoint ${point}`));

    const rows = await s.env.db.prisma.transfer.findMany({ where: { queueId: q } });
    const onChain = async () => (await Promise.all([...orders.map((o) => s.usdtOf(o.to_address)), s.usdtOf(single.to)])).filter((b) => b > 0n).length;
    if (point === "before-broadcast") {
      assert.ok(rows.some((r) => r.state === "signed"), "signed and committed before the crash");
      assert.equal(await onChain(), 0, "nothing was broadcast");
    } else if (point === "after-broadcast") {
      assert.ok(rows.some((r) => r.state === "signed"), "the crash came before `sent` was written");
      assert.ok((await onChain()) > 0, "the transactions were on their way");
    } else {
      assert.ok(rows.some((r) => r.state === "sent"), "`sent` was committed before the crash");
    }

    const restarted = spawnSender(s, { logLevel: "debug" });
    running.push(restarted);
    await waitForNotes(s.biz, "pay", 1, 6, (x) => x === q, 180_000);
    await s.biz.waitFor("withdraw", (n) => n.queue_id === q && n.status === 1, 60_000);
    await restarted.stop();

    for (const o of orders) {
      const [i, f] = o.amount.split(".");
      assert.equal(await s.usdtOf(o.to_address), BigInt(i! + f!.padEnd(6, "0")), o.order_id);
    }
    assert.equal(await s.usdtOf(single.to), 1n);
    const attempts = await s.env.db.prisma.txAttempt.findMany({ where: { transfer: { queueId: q } } });
    assert.equal(attempts.length, 7, "one signed transaction per transfer (never re-signed after the crash)");
    // one nonce per transaction: 7 of their own, or (EIP-7702) the orders sharing batch transactions
    const txs = new Map(attempts.map((a) => [a.txHash, a.nonce]));
    assert.equal(new Set(txs.values()).size, txs.size);
    if (s.executor) assert.ok(txs.size < 7, `batched into ${txs.size} transactions`);
    else assert.equal(txs.size, 7);
    // what was persisted before the crash is what was mined: the same bytes, re-broadcast
    const persisted = new Map(rows.filter((r) => r.txHash).map((r) => [r.id, r.txHash]));
    for (const a of attempts) if (persisted.has(a.transferId)) assert.equal(a.txHash, persisted.get(a.transferId));
    for (const h of txs.keys()) assert.equal((await s.provider.getTransactionReceipt(h))?.status, 1, h);
    const notes = [...s.biz.received("pay"), ...s.biz.received("withdraw")].filter((n) => n.queue_id === q);
    const byKey = new Map<string, number[]>();
    for (const n of notes) byKey.set(`${n.order_id ?? ""}`, [...(byKey.get(`${n.order_id ?? ""}`) ?? []), n.status]);
    assert.equal(byKey.size, 7);
    for (const [k, statuses] of byKey) assert.deepEqual(statuses.sort(), [1, 2], `order ${k}: ${statuses}`);
  });
}

test("nonces of the sending wallet stayed gap-free through every crash", async () => {
  // a batch carrying the wallet's own EIP-7702 authorization uses the nonce after its own for it
  const sorted = usedNonces(await s.env.db.prisma.txAttempt.findMany({ where: { fromAddress: HOT } }));
  sorted.forEach((n, i) => assert.equal(n, sorted[0]! + BigInt(i)));
  const chainNonce = BigInt(await s.provider.send("eth_getTransactionCount", [HOT, "latest"]));
  assert.equal(chainNonce, sorted[sorted.length - 1]! + 1n);
});

test("no key material in anything the sender processes printed (debug level after restarts)", () => {
  const all = running.map((p) => p.output()).join("\n").toLowerCase();
  assert.ok(all.length > 0);
  assert.ok(!all.includes(HOT_KEY.slice(2).toLowerCase()), "a wallet key was printed");
  assert.ok(!all.includes(s.env.masterKey.toString("hex")), "the master key was printed");
});
