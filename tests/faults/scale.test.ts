/**
 * Horizontal scale: two processes of EVERY role (bridge, chain-watch,
 * transfer-sender, confirmation) on one database, one Redis prefix and one
 * set of RabbitMQ queues, under a mixed load of payouts and deposits.
 * Each deposit is reported once, each payout is sent once (one mined
 * transaction, the recipient holds exactly its amount), and chain-watch
 * does not double-scan: one process leads the chain, the other stands by,
 * and no scanner ever found the cursor moved under it.
 */
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import * as amqp from "amqplib";
import { RABBIT_URL } from "../helpers/env.ts";
import { startFaultStack, randomAddress, type FaultStack } from "./lib/fault-stack.ts";

let s: FaultStack;

before(async () => {
  s = await startFaultStack({ confirmHeight: 3 });
});

after(async () => {
  await s?.stop();
});

test("two processes of every role: each deposit reported once, each payout sent once, one chain scanner", { timeout: 600_000 }, async (t) => {
  const started = Date.now();
  await Promise.all([s.startRoles(), s.startRoles()]);
  t.diagnostic(`8 role processes up in ${Date.now() - started} ms; logs in ${s.procs.logDir}`);

  // the work really is shared: two consumers per request queue, two workers per BullMQ queue
  const conn = await amqp.connect(RABBIT_URL);
  try {
    const ch = await conn.createChannel();
    for (const kind of ["topup", "withdraw", "pay", "remove"] as const) {
      assert.equal((await ch.checkQueue(s.env.config.rmq_config[kind].queue)).consumerCount, 2, `${kind} consumers`);
    }
    await ch.close();
  } finally {
    await conn.close();
  }
  assert.equal((await s.env.queues.transfer.getWorkers()).length, 2, "transfer workers");
  // each confirmation process also runs the maintenance worker on its own queue
  assert.equal((await s.env.queues.confirm.getWorkers()).length, 2, "confirm workers");

  const watched = Array.from({ length: 10 }, () => randomAddress());
  for (const [i, a] of watched.entries()) await s.topup(a, `scale-topup-${i}`);
  s.startMining(200);
  const load: Promise<unknown>[] = [];
  for (let i = 0; i < 10; i++) load.push(s.withdraw(`scale-w-${i}`, randomAddress(), `${i + 1}.${i}1`));
  load.push(s.pay("scale-p", Array.from({ length: 10 }, (_, i) => ({ orderId: `o${i}`, to: randomAddress(), amount: `${i}.${String(i * 2 + 1).padStart(6, "0")}` }))));
  for (const [i, a] of watched.entries()) load.push(s.deposit(a, `${100 + i}.5`));
  await Promise.all(load);
  await s.settle(240_000);
  t.diagnostic(`20 payouts and 10 deposits final after ${Date.now() - started} ms`);
  const { redeliveries, outOfOrder } = await s.verify();
  t.diagnostic(`notifications delivered again with the same id: ${redeliveries}; final before pending: ${outOfOrder}`);

  // chain-watch: one leader at a time (the other stands by), and the cursor
  // guard never caught two scanners committing the same block
  const watchers = s.procs.processes().filter((p) => p.roles.includes("chain-watch"));
  const leaders = watchers.filter((p) => p.output().includes("chain-watch: leading this chain"));
  t.diagnostic(`chain-watch processes that led: ${leaders.map((p) => p.name).join(", ")}`);
  assert.ok(leaders.length >= 1);
  if (leaders.length > 1) {
    // only a hand-over (a lease lapsed on a stalled event loop) may give a second leader
    assert.ok(leaders.some((p) => p.output().includes("lost the leader lease; standing by")), "two leaders without a hand-over");
  }
  for (const p of watchers) assert.ok(!p.output().includes("cursor moved by another scanner"), `${p.name} found the cursor moved by another scanner`);
  const seen = await s.env.db.prisma.notification.groupBy({ by: ["address"], where: { kind: "topup", status: 2 }, _count: true });
  assert.equal(seen.length, 10);
  assert.ok(seen.every((g) => g._count === 1), "each deposit committed once");

  // both transfer-senders and both confirmation processes were alive throughout
  for (const p of s.procs.processes()) assert.ok(p.alive, `${p.name} still running`);
});
