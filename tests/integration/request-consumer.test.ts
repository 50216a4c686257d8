/**
 * The request consumer's isolation rules on real RabbitMQ (SPEC §3: no
 * message can hold up another). The handler here is a stand-in of ours, so
 * that a batch can be made to fail the way a bug or an outage would:
 *
 * - a batch that fails because of one of its messages is split until that
 *   message is alone; it is dead-lettered `internal`, every other message
 *   of the batch is settled normally, and nothing is retried forever;
 * - a batch that fails on an infrastructure fault waits, unacked, and is
 *   retried whole; the retry is flagged as a possible redelivery.
 */
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import * as amqp from "amqplib";
import { createTestEnv, RABBIT_URL, type TestEnv } from "../helpers/env.ts";
import { eventually } from "../helpers/rabbit.ts";
import { AmqpConnection, declareRoutes } from "../../shared/adapters/amqp.ts";
import { RMQ_ROUTE_KEYS } from "../../shared/config/schema.ts";
import { REQUEST_KINDS, REQUEST_KIND_SPECS, type RequestKind } from "../../shared/domain/request-kinds.ts";
import { createRequestConsumer } from "../../bridge/request-consumer.ts";
import type { IncomingMessage, MessageOutcome } from "../../bridge/request-handler.ts";

let env: TestEnv;
let conn: amqp.ChannelModel;
let ch: amqp.ConfirmChannel;

before(async () => {
  env = await createTestEnv();
  conn = await amqp.connect(RABBIT_URL);
  ch = await conn.createConfirmChannel();
  await declareRoutes(ch, RMQ_ROUTE_KEYS.map((k) => env.config.rmq_config[k]));
});

after(async () => {
  await ch.close();
  await conn.close();
  await env.cleanup();
});

const rmq = () => env.config.rmq_config;

function consumer(handleBatch: (items: IncomingMessage[]) => Promise<MessageOutcome[]>, isInfrastructureFault: (e: unknown) => Promise<boolean>) {
  const connection = new AmqpConnection({ urls: [RABBIT_URL], logger: env.logger });
  const c = createRequestConsumer({
    amqp: connection,
    logger: env.logger,
    routes: Object.fromEntries(REQUEST_KINDS.map((k) => [k, rmq()[REQUEST_KIND_SPECS[k].requestRoute]])) as Record<RequestKind, ReturnType<typeof rmq>["topup"]>,
    deadRoute: rmq().dead,
    prefetch: 500,
    handleBatch,
    isInfrastructureFault,
    batchSize: 250,
  });
  return {
    async start() {
      await c.start();
      await connection.start();
    },
    async stop() {
      await c.stop();
      await connection.close();
    },
  };
}

async function publishAll(bodies: string[]) {
  for (const b of bodies) ch.publish(rmq().withdraw.exchange, rmq().withdraw.routing[0]!, Buffer.from(b), { persistent: true });
  await ch.waitForConfirms();
}

async function drain(queue: string): Promise<amqp.GetMessage[]> {
  const got: amqp.GetMessage[] = [];
  for (;;) {
    const m = await ch.get(queue, { noAck: true });
    if (!m) return got;
    got.push(m);
  }
}

test("a batch failing for one of its messages is split until the culprit is alone; it is dead-lettered internal, the rest settle", async () => {
  const bodies = Array.from({ length: 200 }, (_, i) => `msg-${i}`);
  const poison = new Set(["msg-17", "msg-150"]);
  const settled = new Map<string, number>();
  let calls = 0;
  const c = consumer(
    async (items) => {
      calls++;
      // a bug that one message triggers: the whole batch's transaction fails (no partial effect)
      const bad = items.find((m) => poison.has(m.body.toString()));
      if (bad) throw Object.assign(new Error(`Data too long for column (${bad.body.toString()})`), { errno: 1406, code: "ER_DATA_TOO_LONG", sqlState: "22001" });
      for (const m of items) settled.set(m.body.toString(), (settled.get(m.body.toString()) ?? 0) + 1);
      return items.map(() => ({ action: "ack", result: "accepted" }) as const);
    },
    async () => false,
  );
  await publishAll(bodies);
  await c.start();
  const dead = await eventually(async () => {
    const got = await drain(rmq().dead.queue);
    return got.length > 0 ? got : null;
  });
  const more = await eventually(async () => (settled.size === bodies.length - poison.size ? true : null));
  assert.ok(more);
  dead.push(...(await drain(rmq().dead.queue)));
  await c.stop();

  assert.deepEqual(dead.map((d) => d.content.toString()).sort(), [...poison].sort());
  for (const d of dead) {
    assert.equal(d.properties.headers?.["x-payment-reason"], "internal");
    assert.match(String(d.properties.headers?.["x-payment-detail"]), /ER_DATA_TOO_LONG/);
  }
  for (const b of bodies.filter((b) => !poison.has(b))) assert.equal(settled.get(b), 1, `${b} settled once`);
  // log2(batch) splits per culprit, not a retry loop
  assert.ok(calls < 60, `${calls} handler calls`);
  const left = await ch.checkQueue(rmq().withdraw.queue);
  assert.equal(left.messageCount, 0, "everything acked");
});

test("a batch failing on an infrastructure fault waits unacked and is retried whole, flagged as a possible redelivery", async () => {
  const bodies = Array.from({ length: 20 }, (_, i) => `infra-${i}`);
  let down = true;
  const seen: IncomingMessage[][] = [];
  const c = consumer(
    async (items) => {
      seen.push(items);
      if (down) throw Object.assign(new Error("connect ECONNREFUSED"), { code: "ECONNREFUSED", fatal: true });
      return items.map(() => ({ action: "ack", result: "accepted" }) as const);
    },
    async (e) => (e as { code?: string }).code === "ECONNREFUSED",
  );
  await publishAll(bodies);
  await c.start();
  await eventually(() => seen.length >= 3, 20_000);
  // while it is down nothing is acked, nothing dead-lettered, and the batch is never split
  const held = await ch.checkQueue(rmq().withdraw.queue);
  assert.equal(held.messageCount, 0, "delivered to us (unacked), not lost");
  // the deliveries may have come as more than one batch; each is retried as it was, never split
  const batches = new Set(seen.map((b) => b.map((m) => m.body.toString()).join(",")));
  const bodiesInBatches = [...batches].flatMap((b) => b.split(","));
  assert.deepEqual(bodiesInBatches.sort(), [...bodies].sort(), "retried whole: every message in exactly one batch");
  down = false;
  await eventually(async () => {
    const conn2 = await amqp.connect(RABBIT_URL);
    try {
      const ch2 = await conn2.createChannel();
      const q = await ch2.checkQueue(rmq().withdraw.queue);
      await ch2.close();
      return q.messageCount === 0 && seen.length >= 4;
    } finally {
      await conn2.close();
    }
  });
  await c.stop();
  const last = seen[seen.length - 1]!;
  assert.ok(last.every((m) => m.redelivered), "a retried batch may have committed: the same bytes count as a redelivery");
  assert.equal(seen[0]!.some((m) => m.redelivered), false);
  assert.equal((await drain(rmq().dead.queue)).length, 0);
  const after = await ch.checkQueue(rmq().withdraw.queue);
  assert.equal(after.messageCount + after.consumerCount, 0);
});
