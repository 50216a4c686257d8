/**
 * Redis lost in the middle of a run. Our Redis keeps nothing on disk, so a
 * restart empties it: every BullMQ job (queued sends, delayed
 * confirmations), the job scheduler, the leases. The test does to its own
 * key prefix exactly that (it deletes every key under it; the shared Redis
 * is never flushed) while deposits are seen but not final, payouts are sent
 * but not final, and more payouts wait to be signed, with every role
 * running as its own process and none restarted by the test except the
 * transfer-sender it had stopped.
 *
 * MySQL is the source of truth: the reconciler (part of the confirmation
 * role, on its schedule) rebuilds the missing jobs, and everything
 * completes exactly once.
 */
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { Redis } from "ioredis";
import { REDIS_URL } from "../helpers/env.ts";
import { eventually } from "../helpers/rabbit.ts";
import { startFaultStack, randomAddress, type FaultStack } from "./lib/fault-stack.ts";

// deep enough that nothing sent before the loss can be final before it (automine: one block per transaction)
const CONFIRM = 50;
let s: FaultStack;

before(async () => {
  s = await startFaultStack({ confirmHeight: CONFIRM });
});

after(async () => {
  await s?.stop();
});

/**
 * Delete every key under `prefix` in one atomic step, as a restart with no
 * persistence empties Redis at one instant. (Deleting in SCAN batches while
 * the gateway runs creates states no restart can: a BullMQ script running
 * between two batches re-creates half a job from keys not yet deleted.)
 */
const DELETE_PREFIX = `
local cursor, n = "0", 0
repeat
  local r = redis.call("SCAN", cursor, "MATCH", ARGV[1], "COUNT", 1000)
  cursor = r[1]
  for _, k in ipairs(r[2]) do n = n + redis.call("DEL", k) end
until cursor == "0"
return n`;

async function deletePrefix(prefix: string): Promise<number> {
  const r = new Redis(REDIS_URL);
  try {
    return Number(await r.eval(DELETE_PREFIX, 0, `${prefix}:*`));
  } finally {
    r.disconnect();
  }
}

test("every key under the Redis prefix deleted mid-run: jobs rebuilt from MySQL, everything completes exactly once", { timeout: 300_000 }, async (t) => {
  const started = Date.now();
  await s.startRoles();
  const watched = Array.from({ length: 15 }, () => randomAddress());
  for (const [i, a] of watched.entries()) await s.topup(a, `rl-topup-${i}`);

  // 1. in flight: deposits seen, payouts sent, none final
  for (let i = 0; i < 10; i++) await s.deposit(watched[i]!, `${i + 1}.5`);
  for (let i = 0; i < 10; i++) await s.withdraw(`rl-w-${i}`, randomAddress(), `${i + 1}.125`);
  await s.pay("rl-p", Array.from({ length: 5 }, (_, i) => ({ orderId: `o${i}`, to: randomAddress(), amount: `0.${i + 1}` })));
  await eventually(async () => (await s.env.db.prisma.deposit.count({ where: { state: "seen" } })) === 10, 60_000, 100);
  await eventually(async () => (await s.env.db.prisma.transfer.count({ where: { state: { in: ["sent", "mined"] } } })) === 15, 60_000, 100);
  // 2. waiting to be signed: the sender is stopped, its jobs wait in Redis
  await s.alive("transfer-sender")[0]!.stop();
  for (let i = 10; i < 15; i++) await s.withdraw(`rl-w-${i}`, randomAddress(), `${i + 1}.125`);
  await eventually(async () => (await s.env.db.prisma.transfer.count({ where: { state: "queued" } })) === 5, 30_000, 100);
  // the bridge adds the jobs right after committing the rows: wait for each (the wallet's first waits, the
  // others are put off behind it, shared/domain/send-pacing.ts, and stay so with no sender running)
  const queued = await s.env.db.prisma.transfer.findMany({ where: { state: "queued" } });
  await eventually(async () => (await Promise.all(queued.map((q) => s.env.queues.transfer.getJob(`send-${q.id}`)))).every(Boolean), 30_000, 100);
  const before = { transfer: await s.env.queues.transfer.getJobCounts(), confirm: await s.env.queues.confirm.getJobCounts() };
  assert.ok(before.transfer.waiting! + before.transfer.delayed! >= 5, JSON.stringify(before));
  assert.ok(before.confirm.delayed! + before.confirm.waiting! + before.confirm.active! >= 25, JSON.stringify(before));
  const originals = [
    ...(await s.env.queues.transfer.getJobs(["waiting", "delayed"])),
    ...(await s.env.queues.confirm.getJobs(["delayed", "waiting", "active"])),
  ].map((j) => ({ queue: j.queueName as "transfer" | "confirm", id: j.id!, ts: j.timestamp }));
  assert.equal(await s.env.db.prisma.notification.count({ where: { status: 1 } }), 0, "nothing final yet");

  // 3. Redis loses everything of ours
  const deleted = await deletePrefix(s.env.redis.prefix);
  const lost = { transfer: await s.env.queues.transfer.getJobCounts(), confirm: await s.env.queues.confirm.getJobCounts() };
  t.diagnostic(`deleted ${deleted} keys; jobs before ${JSON.stringify(before)}, after ${JSON.stringify(lost)}`);
  // every job that existed is gone (the reconciler may already have added a new one under the same id)
  for (const o of originals) {
    const job = await s.env.queues[o.queue].getJob(o.id);
    assert.ok(!job || job.timestamp !== o.ts, `job ${o.queue}/${o.id} survived`);
  }

  // 4. the run goes on: the sender comes back, new work arrives, blocks are mined
  await s.startRoles(["transfer-sender"]);
  for (let i = 10; i < 15; i++) await s.deposit(watched[i]!, `${i + 1}.5`);
  for (let i = 15; i < 20; i++) await s.withdraw(`rl-w-${i}`, randomAddress(), `${i + 1}.125`);
  s.startMining(50);
  await s.settle(180_000);
  t.diagnostic(`25 payouts and 15 deposits final after ${Date.now() - started} ms`);
  const { redeliveries, outOfOrder } = await s.verify();
  t.diagnostic(`notifications delivered again with the same id: ${redeliveries}; final before pending: ${outOfOrder}`);

  const confirmation = s.procs.processes().filter((p) => p.roles.includes("confirmation"));
  assert.equal(confirmation.length, 1, "the confirmation process was never restarted");
  // the schedule died with Redis too: the process noticed, restored it and reconciled
  assert.match(confirmation[0]!.output(), /reconcile schedule missing from Redis/);
  assert.match(confirmation[0]!.output(), /reconcile: rebuilt missing jobs from MySQL/);
});
