/**
 * Redis is not the source of truth: after its jobs are lost, a reconcile pass
 * rebuilds every job a non-final MySQL row needs, and only those.
 */
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { createTestEnv, type TestEnv } from "../helpers/env.ts";
import { reconcileJobs } from "../../workers/maintenance/reconcile.ts";
import { enqueue } from "../../shared/jobs/registry.ts";

let env: TestEnv;
before(async () => {
  env = await createTestEnv();
});
after(async () => env.cleanup());
const deps = () => ({ pool: env.db.pool, queues: env.queues, logger: env.logger, config: env.config, metrics: env.metrics });

const transfer = (queueId: string, state: "queued" | "signed" | "sent" | "mined" | "confirmed" | "failed" | "awaiting_approval") =>
  env.db.prisma.transfer.create({
    data: { kind: "withdraw", queueId, chain: "ETH", symbol: "USDT", requestedFrom: "0x" + "1".repeat(40), toAddress: "0x" + "2".repeat(40), amount: "1.5", state },
  });

test("rebuilds missing jobs for non-final rows only, and is idempotent", async () => {
  const queued = await transfer("q-queued", "queued");
  const signed = await transfer("q-signed", "signed");
  const sent = await transfer("q-sent", "sent");
  await transfer("q-done", "confirmed");
  await transfer("q-failed", "failed");
  await transfer("q-approval", "awaiting_approval");
  const deposit = await env.db.prisma.deposit.create({
    data: { chain: "ETH", symbol: "USDT", txHash: "0x" + "a".repeat(64), logIndex: 0, blockNumber: 5n, blockHash: "0x" + "b".repeat(64), fromAddress: "0x" + "3".repeat(40), toAddress: "0x" + "4".repeat(40), amount: "2", state: "seen" },
  });
  await env.db.prisma.deposit.create({
    data: { chain: "ETH", symbol: "USDT", txHash: "0x" + "c".repeat(64), logIndex: 0, blockNumber: 5n, blockHash: "0x" + "b".repeat(64), fromAddress: "0x" + "3".repeat(40), toAddress: "0x" + "4".repeat(40), amount: "2", state: "confirmed" },
  });

  const first = await reconcileJobs(deps());
  assert.deepEqual(first.added, { "send-transfer": 2, "confirm-transfer": 1, "confirm-deposit": 1 });
  assert.equal(first.expired, 0);
  assert.ok(await env.queues.transfer.getJob(`send-${queued.id}`));
  assert.ok(await env.queues.transfer.getJob(`send-${signed.id}`));
  assert.ok(await env.queues.confirm.getJob(`transfer-${sent.id}`));
  assert.ok(await env.queues.confirm.getJob(`deposit-${deposit.id}`));

  const second = await reconcileJobs(deps());
  assert.deepEqual(second.added, { "send-transfer": 0, "confirm-transfer": 0, "confirm-deposit": 0 });

  // Redis loses everything: the jobs come back.
  await env.queues.transfer.obliterate({ force: true });
  await env.queues.confirm.obliterate({ force: true });
  const third = await reconcileJobs(deps());
  assert.deepEqual(third.added, { "send-transfer": 2, "confirm-transfer": 1, "confirm-deposit": 1 });
});

test("a completed job whose row still needs work is replaced", async () => {
  await env.queues.transfer.obliterate({ force: true });
  const t = await transfer("q-completed", "queued");
  const job = await enqueue(env.queues, "send-transfer", { transferId: t.id.toString() });
  // finish the job by hand, as if its processor had returned early
  const token = "test-token";
  const { Worker } = await import("bullmq");
  const connection = env.redis.create("manual");
  const w = new Worker("transfer", null, { connection, prefix: env.redis.prefix });
  const got = await w.getNextJob(token);
  assert.equal(got?.id, job.id);
  await got!.moveToCompleted("done", token, false);
  await w.close();
  connection.disconnect(); // BullMQ never closes a connection it was handed
  assert.equal(await (await env.queues.transfer.getJob(job.id!))!.getState(), "completed");
  const r = await reconcileJobs(deps());
  assert.ok(r.added["send-transfer"]! >= 1);
  assert.equal(await (await env.queues.transfer.getJob(job.id!))!.getState(), "waiting");
});

test("a job left without its queue (its hash in no list: state unknown) is replaced", async () => {
  await env.queues.transfer.obliterate({ force: true });
  const t = await transfer("q-orphan", "queued");
  const job = await enqueue(env.queues, "send-transfer", { transferId: t.id.toString() });
  // the queue's lists are gone but the job's hash is not (partial key loss, eviction)
  const probe = env.redis.create("orphan-probe");
  await probe.del(`${env.redis.prefix}:transfer:wait`);
  await probe.quit();
  assert.equal(await (await env.queues.transfer.getJob(job.id!))!.getState(), "unknown");
  const r = await reconcileJobs(deps());
  assert.ok(r.added["send-transfer"]! >= 1);
  assert.equal(await (await env.queues.transfer.getJob(job.id!))!.getState(), "waiting");
});
