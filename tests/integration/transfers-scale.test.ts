/**
 * Horizontal scale of the transfer-sender: two processes sending 100
 * payouts from one wallet use exactly 100 consecutive nonces (no gap, no
 * collision, no second transaction for any payout), and each recipient
 * ends with exactly its amount. The time from the first request to the
 * last broadcast is reported as a diagnostic.
 */
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { nowS, eventually } from "../helpers/rabbit.ts";
import { usedNonces, startTransferStack, spawnSender, waitForNotes, randomAddress, HOT, type TransferStack, type SenderProcess } from "../helpers/transfer-stack.ts";

let s: TransferStack;
const senders: SenderProcess[] = [];

before(async () => {
  s = await startTransferStack({ sender: false });
  senders.push(spawnSender(s), spawnSender(s));
  // both processes up and consuming before the load arrives
  await eventually(async () => (await s.env.queues.transfer.getWorkers()).length >= 2, 60_000, 200);
  s.startMining(50);
});

after(async () => {
  for (const p of senders) await p.stop();
  await s?.stop();
});

test("two transfer-sender processes sending 100 payouts from one wallet use 100 consecutive nonces", { timeout: 300_000 }, async (t) => {
  const startNonce = BigInt(await s.provider.send("eth_getTransactionCount", [HOT, "latest"]));
  const payouts = Array.from({ length: 100 }, (_, i) => ({ queue_id: `scale-${i}`, to: randomAddress(), amount: `${i + 1}.${String(i).padStart(2, "0")}` }));
  const started = Date.now();
  await Promise.all(
    payouts.map((p) => s.biz.send("withdraw", { queue_id: p.queue_id, from_address: HOT, to_address: p.to, amount: p.amount, chain: "ETH", symbol: "USDT", timestamp: nowS() })),
  );
  await eventually(async () => (await s.env.db.prisma.transfer.count({ where: { queueId: { startsWith: "scale-" }, state: { in: ["sent", "mined", "confirmed"] } } })) === 100, 120_000, 100);
  const sentMs = Date.now() - started;
  t.diagnostic(`100 payouts from one wallet: requests published to all broadcast in ${sentMs} ms (${Math.round(100_000 / sentMs)}/s)`);
  const finals = await waitForNotes(s.biz, "withdraw", 1, 100, (q) => q.startsWith("scale-"), 180_000);
  t.diagnostic(`... and all 100 final (confirm_height ${s.env.config.chains.ETH!.confirm_height}) after ${Date.now() - started} ms`);
  assert.equal(finals.length, 100);

  const attempts = await s.env.db.prisma.txAttempt.findMany({ where: { transfer: { queueId: { startsWith: "scale-" } } } });
  assert.equal(attempts.length, 100, "one signed transaction per payout (an attempt row each)");
  // one nonce per transaction: 100 of their own, or (EIP-7702) shared by the members of a batch
  const txs = new Map(attempts.map((a) => [a.txHash, a.nonce]));
  assert.equal(new Set([...txs.values()].map(String)).size, txs.size, "no nonce used for two transactions");
  if (s.executor) assert.ok(txs.size < 100, `batched into ${txs.size} transactions`);
  else assert.equal(txs.size, 100);
  const nonces = usedNonces(attempts);
  nonces.forEach((n, i) => assert.equal(n, startNonce + BigInt(i), "consecutive from the chain's nonce"));
  assert.equal(BigInt(await s.provider.send("eth_getTransactionCount", [HOT, "latest"])), startNonce + BigInt(nonces.length));
  for (const p of payouts) {
    const [i, f] = p.amount.split(".");
    assert.equal(await s.usdtOf(p.to), BigInt(i! + f!.padEnd(6, "0")), p.queue_id);
  }
  const pending = s.biz.received("withdraw").filter((n) => String(n.queue_id).startsWith("scale-") && n.status === 2);
  assert.equal(pending.length, 100);
  assert.ok(s.biz.allSigned());
});
