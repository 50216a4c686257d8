/**
 * MariaDB unreachable for a while: every role reaches it through a TCP proxy
 * that is cut (open connections destroyed, new ones refused) while a batch
 * of payouts is being signed and sent, requests keep arriving and deposits
 * keep being mined. MySQL is where every decision is recorded, so nothing
 * may move while it is away, and nothing may be lost or done twice when it
 * is back.
 *
 * Afterwards: every process is still the one that was started (they backed
 * off and resumed, none crashed); requests received during the outage were
 * held unacked in RabbitMQ and processed afterwards; each payout was sent
 * once and each deposit reported once.
 */
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { eventually } from "../helpers/rabbit.ts";
import * as amqp from "amqplib";
import { RABBIT_URL } from "../helpers/env.ts";
import { startFaultStack, randomAddress, type FaultStack } from "./lib/fault-stack.ts";

let s: FaultStack;

/** Withdraw requests still waiting on their queue, not yet delivered to a bridge. */
async function requestsReady(): Promise<number> {
  const conn = await amqp.connect(RABBIT_URL);
  try {
    const ch = await conn.createChannel();
    return (await ch.checkQueue(s.env.config.rmq_config.withdraw.queue)).messageCount;
  } finally {
    await conn.close();
  }
}

before(async () => {
  s = await startFaultStack({ confirmHeight: 3, proxy: { mysql: true } });
});

after(async () => {
  await s?.stop();
});

test("MariaDB cut under load: workers back off and resume, requests wait unacked, nothing lost or doubled", { timeout: 300_000 }, async (t) => {
  const started = Date.now();
  const procs = await s.startRoles();
  const watched = Array.from({ length: 8 }, () => randomAddress());
  for (const [i, a] of watched.entries()) await s.topup(a, `mo-topup-${i}`);
  s.startMining(250);

  // 1. normal traffic
  for (let i = 0; i < 5; i++) await s.withdraw(`mo-w-${i}`, randomAddress(), `${i + 1}.9`);
  for (let i = 0; i < 3; i++) await s.deposit(watched[i]!, `${i + 1}.1`);

  // 2. MySQL goes away while a batch of payouts is on its way through the sender
  await s.pay("mo-p", Array.from({ length: 10 }, (_, i) => ({ orderId: `o${i}`, to: randomAddress(), amount: `${i}.${2 * i + 1}` })));
  await eventually(async () => (await s.env.db.prisma.transfer.count({ where: { queueId: "mo-p" } })) === 10, 30_000, 5);
  await s.proxies.mysql!.cut();
  const states = await s.env.db.prisma.transfer.groupBy({ by: ["state"], where: { queueId: "mo-p" }, _count: true });
  t.diagnostic(`cut with the batch at ${JSON.stringify(states.map((x) => [x.state, x._count]))}`);

  // 3. during the outage: requests arrive (and must wait, unacked), deposits are mined
  const bridge = s.alive("bridge")[0]!;
  const failedPersists = () => bridge.output().match(/cannot persist request batch/g)?.length ?? 0;
  for (let i = 5; i < 10; i++) await s.withdraw(`mo-w-${i}`, randomAddress(), `${i + 1}.9`);
  for (let i = 3; i < 8; i++) await s.deposit(watched[i]!, `${i + 1}.1`);
  // the bridge holds every request (none left ready on the queue) and has failed to persist since
  await eventually(async () => (await requestsReady()) === 0, 30_000, 100);
  const held = failedPersists();
  await eventually(() => failedPersists() > held, 30_000, 100);
  assert.equal(await s.env.db.prisma.request.count({ where: { queueId: { in: ["mo-w-5", "mo-w-9"] } } }), 0, "nothing persisted while MySQL is away");

  // 4. MySQL is back
  await s.proxies.mysql!.restore();
  await s.settle(180_000);
  t.diagnostic(`20 payouts and 8 deposits final after ${Date.now() - started} ms`);
  const { redeliveries, outOfOrder } = await s.verify();
  t.diagnostic(`notifications delivered again with the same id: ${redeliveries}; final before pending: ${outOfOrder}`);
  for (const p of procs) assert.ok(p.alive, `${p.name} survived the outage`);
  assert.equal(s.procs.processes().length, 4, "no process was restarted");
});
