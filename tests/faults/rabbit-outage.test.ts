/**
 * RabbitMQ outage. The bridge process reaches RabbitMQ through a TCP proxy
 * that the test cuts and restores (the business system keeps its own
 * direct connection, as it would to a clustered broker).
 *
 * To be sure requests are in flight, unacked, when the broker goes away,
 * the bridge's MySQL is cut first (through a second proxy, for the bridge
 * only): it receives a batch, cannot persist it and holds it unacked. Then
 * RabbitMQ goes: the broker takes the batch back. MySQL returns while
 * RabbitMQ is still away: the bridge persists the batch but its acks die
 * with the channel. Meanwhile payouts and deposits go final, and their
 * notifications wait in the outbox. RabbitMQ returns: the bridge
 * reconnects, gets the batch again and recognises every message as a
 * duplicate (no second transfer), and the outbox goes out.
 *
 * What the code guarantees for notifications is at-least-once with a stable
 * notification_id (a publish confirmed by the broker whose `sent` mark was
 * lost is published again, identical): the test asserts exactly one id per
 * subject and status, identical bodies for any id seen twice, and reports
 * how many such repeats there were.
 */
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { MYSQL_ROOT } from "../helpers/env.ts";
import { eventually } from "../helpers/rabbit.ts";
import { startTcpProxy, type TcpProxy } from "../helpers/tcp-proxy.ts";
import { startFaultStack, randomAddress, type FaultStack } from "./lib/fault-stack.ts";

let s: FaultStack;
let bridgeDb: TcpProxy;

before(async () => {
  s = await startFaultStack({ confirmHeight: 3, proxy: { rabbit: true } });
  const u = new URL(MYSQL_ROOT);
  bridgeDb = await startTcpProxy({ host: u.hostname, port: Number(u.port || 3306) });
});

after(async () => {
  await s?.stop();
  await bridgeDb?.close();
});

test("RabbitMQ cut with requests unacked and notifications pending: redelivered requests change nothing, the outbox goes out", { timeout: 300_000 }, async (t) => {
  const started = Date.now();
  const dbUrl = new URL(MYSQL_ROOT);
  dbUrl.port = String(bridgeDb.port);
  const bridge = s.procs.start("bridge", ["bridge"], { env: { PAYMENT__MYSQL_URL: `${dbUrl.toString().replace(/\/$/, "")}/${s.env.db.database}` } });
  await Promise.all([bridge.ready(), s.startRoles(["chain-watch", "transfer-sender", "confirmation"])]);
  const watched = Array.from({ length: 10 }, () => randomAddress());
  for (const [i, a] of watched.entries()) await s.topup(a, `ro-topup-${i}`);
  s.startMining(300);

  // 1. warm: payouts and deposits flowing
  for (let i = 0; i < 10; i++) await s.withdraw(`ro-w-${i}`, randomAddress(), `${i + 1}.01`);
  for (let i = 0; i < 5; i++) await s.deposit(watched[i]!, `${i + 1}.5`);
  await eventually(() => s.transfers.every((x) => s.biz.received("withdraw").some((n) => n.queue_id === x.queueId && n.status === 2)), 60_000, 100);

  // 2. the bridge's MySQL goes away: the next requests are received and held unacked
  await bridgeDb.cut();
  for (let i = 10; i < 20; i++) await s.withdraw(`ro-w-${i}`, randomAddress(), `${i + 1}.01`);
  await s.pay("ro-p", Array.from({ length: 5 }, (_, i) => ({ orderId: `o${i}`, to: randomAddress(), amount: `0.${i + 1}` })));
  await eventually(() => bridge.output().includes("cannot persist request batch"), 30_000, 100);
  assert.equal(await s.env.db.prisma.request.count({ where: { queueId: { in: ["ro-w-10", "ro-p"] } } }), 0, "not persisted while MySQL is away");

  // 3. RabbitMQ goes away too: the broker takes the unacked batch back
  await s.proxies.rabbit!.cut();
  const receivedAtCut = s.biz.received("withdraw").length + s.biz.received("topup").length;
  for (let i = 5; i < 10; i++) await s.deposit(watched[i]!, `${i + 1}.5`);

  // 4. MySQL returns while RabbitMQ is still away: the held batch is persisted, its acks are lost
  await bridgeDb.restore();
  await eventually(async () => (await s.env.db.prisma.transfer.count({ where: { queueId: { in: ["ro-p", ...Array.from({ length: 10 }, (_, i) => `ro-w-${10 + i}`)] } } })) === 15, 60_000, 100);
  // ... and the outbox fills: finals of the first payouts, the new deposits, the new payouts' status 2
  await eventually(async () => (await s.env.db.prisma.notification.count({ where: { state: "pending", status: 1 } })) >= 5, 60_000, 100);
  // the bridge knows its broker connection is gone (it publishes only on a live one, marking rows sent after the broker's confirm)
  await eventually(() => bridge.output().includes("amqp: connection closed; reconnecting"), 30_000, 100);
  const pending = await s.env.db.prisma.notification.count({ where: { state: "pending" } });
  assert.equal(s.biz.received("withdraw").length + s.biz.received("topup").length, receivedAtCut, "nothing published while RabbitMQ is away");
  t.diagnostic(`outage: ${pending} notifications waiting in the outbox`);

  // 5. RabbitMQ returns
  await s.proxies.rabbit!.restore();
  await s.settle(180_000);
  t.diagnostic(`30 payouts and 10 deposits final after ${Date.now() - started} ms`);
  const { redeliveries, outOfOrder } = await s.verify();
  t.diagnostic(`notifications delivered again with the same id: ${redeliveries}; final before pending: ${outOfOrder}`);

  // the held batch came back from the broker and was recognised, message by message, as a
  // redelivery of the same bytes: acked silently, neither answered nor dead-lettered
  const again = await s.env.db.prisma.auditEvent.findMany({ where: { event: "request.redelivered" } });
  const againIds = new Set(again.map((d) => d.queueId));
  for (const q of ["ro-p", ...Array.from({ length: 10 }, (_, i) => `ro-w-${10 + i}`)]) assert.ok(againIds.has(q), `${q} redelivered and recognised`);
  assert.equal(s.biz.dead().length, 0, "no redelivery is a dead letter");
  assert.equal(await s.env.db.prisma.request.count({ where: { state: "rejected" } }), 0);
  const out = bridge.output();
  assert.match(out, /amqp: connection closed; reconnecting/);
  assert.equal(out.match(/"amqp: connected"/g)?.length, 2, "connected, then reconnected once");
  assert.ok(bridge.alive, "the same bridge process throughout");
});
