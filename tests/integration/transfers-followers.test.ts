/**
 * A wallet's follower jobs (shared/domain/send-pacing.ts): the bridge puts
 * every send job of a wallet but the first off by FOLLOWER_DELAY_MS, and the
 * drain that handles a follower's transfer starts its job right then
 * (BullMQ promote), so each runs once, after its transfer was sent. When the
 * first job will not drain (its transfer was cancelled before it ran), it
 * starts the job of the wallet's next queued transfer instead of leaving the
 * rest to wait out their delay.
 *
 * The signal that a drain started a job, not its delay: it ran before its
 * delay was over (BullMQ's processedOn against the time it was added).
 */
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { eventually, nowS } from "../helpers/rabbit.ts";
import { startTransferStack, startSenderVia, waitForNotes, randomAddress, HOT, type TransferStack } from "../helpers/transfer-stack.ts";
import { FOLLOWER_DELAY_MS } from "../../shared/domain/send-pacing.ts";
import { enqueue } from "../../shared/jobs/registry.ts";
import { transferJob, loadTransfers } from "../../shared/transfers/rows.ts";

let s: TransferStack;
let sender: Awaited<ReturnType<typeof startSenderVia>> | null = null;

before(async () => {
  s = await startTransferStack({ sender: false });
  s.startMining(100);
});

after(async () => {
  await sender?.stop();
  await s?.stop();
});

const orders = (n: number, tag: string) => Array.from({ length: n }, (_, i) => ({ order_id: `${tag}${i}`, to_address: randomAddress(), amount: `1.${String(i + 1).padStart(2, "0")}` }));

async function queued(queueId: string, n: number) {
  return eventually(async () => {
    const rows = await s.env.db.prisma.transfer.findMany({ where: { queueId, state: "queued" }, orderBy: { id: "asc" } });
    if (rows.length !== n) return null;
    const jobs = await Promise.all(rows.map((r) => s.env.queues.transfer.getJob(`send-${r.id}`)));
    return jobs.every(Boolean) ? rows : null;
  }, 30_000, 50);
}

/** the send jobs of `ids`, read again once every one of them has completed (the positive signal) */
async function completedSendJobs(ids: bigint[]) {
  const read = () => Promise.all(ids.map((id) => s.env.queues.transfer.getJob(`send-${id}`)));
  return eventually(async () => {
    const states = await Promise.all((await read()).map((j) => j!.getState()));
    return states.every((x) => x === "completed") ? (await read()).map((j) => j!) : null;
  }, 30_000, 50);
}

test("the first job's transfer was cancelled before it ran: it starts the next queued transfer's job, which drains the wallet", async () => {
  // pay A then pay B, as the bridge queues them when both come in one batch: A's first job starts at once,
  // every other job (the rest of A, all of B) is a follower put off by FOLLOWER_DELAY_MS
  await s.biz.send("pay", { queue_id: "f-a", from_address: HOT, chain: "ETH", symbol: "USDT", transactions: orders(2, "a"), timestamp: nowS() });
  const a = await queued("f-a", 2);
  await s.biz.send("pay", { queue_id: "f-b", from_address: HOT, chain: "ETH", symbol: "USDT", transactions: orders(3, "b"), timestamp: nowS() });
  const b = await queued("f-b", 3);
  const bFirst = (await s.env.queues.transfer.getJob(`send-${b[0]!.id}`))!;
  if ((bFirst.opts.delay ?? 0) === 0) {
    // B came in a batch of its own: make its first job a follower, as if it had come with A
    await bFirst.remove();
    const [row] = await loadTransfers(s.env.db.pool, [b[0]!.id]);
    await enqueue(s.env.queues, "send-transfer", transferJob(row!), { delay: FOLLOWER_DELAY_MS });
  }
  for (const t of [a[1]!, ...b]) assert.equal((await s.env.queues.transfer.getJob(`send-${t.id}`))!.opts.delay, FOLLOWER_DELAY_MS, `send-${t.id} is a follower`);
  assert.equal((await s.env.queues.transfer.getJob(`send-${a[0]!.id}`))!.opts.delay ?? 0, 0);

  await s.biz.send("remove", { queue_id: "f-a", msg_type: "pay", timestamp: nowS() });
  const removed = await s.biz.waitFor("remove", (n) => n.queue_id === "f-a");
  assert.equal(removed.status, 1, JSON.stringify(removed));

  sender = await startSenderVia(s, s.env.anvil!.rpcUrl);
  // A's first job finds its transfer cancelled and hands on: B goes out, and its jobs were started by a drain
  await waitForNotes(s.biz, "pay", 2, 3, (q) => q === "f-b", 60_000);
  const jobs = await completedSendJobs(b.map((t) => t.id));
  for (const j of jobs) assert.ok(j.processedOn! - j.timestamp < FOLLOWER_DELAY_MS, `${j.id} was started by the hand-on or the drain, not by its delay`);
  const cancelled = await s.env.db.prisma.transfer.findMany({ where: { queueId: "f-a" } });
  assert.deepEqual(cancelled.map((t) => t.state), ["cancelled", "cancelled"]);
});

test("a drain starts the jobs of the transfers it sent: every send job of a pay runs once", async () => {
  const n = 40;
  await s.biz.send("pay", { queue_id: "f-c", from_address: HOT, chain: "ETH", symbol: "USDT", transactions: orders(n, "c"), timestamp: nowS() });
  await waitForNotes(s.biz, "pay", 2, n, (q) => q === "f-c", 60_000);
  const rows = await s.env.db.prisma.transfer.findMany({ where: { queueId: "f-c" }, orderBy: { id: "asc" } });
  assert.equal(rows.length, n);
  const jobs = await completedSendJobs(rows.map((t) => t.id));
  const followers = jobs.filter((j) => j.opts.delay === FOLLOWER_DELAY_MS);
  assert.equal(followers.length, n - 1, "one job at once, the others followers");
  for (const j of followers) assert.ok(j.processedOn! - j.timestamp < FOLLOWER_DELAY_MS, `${j.id} was started by the drain, not by its delay`);
  for (const j of jobs) assert.equal(j.attemptsStarted, 1, `${j.id} ran once`);
  for (const j of jobs) assert.deepEqual(j.returnvalue, { state: "sent" }, `${j.id}`);
});
