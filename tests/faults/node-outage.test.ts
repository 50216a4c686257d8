/**
 * The Ethereum node unreachable for a while: every role reaches it through
 * two cuttable TCP proxies, one for JSON-RPC over HTTP and one for the
 * WebSocket, and both are cut together while payouts are being signed and
 * broadcast and deposits keep arriving on the chain (which goes on mining:
 * only our view of it is gone).
 *
 * First the WebSocket alone is cut: polling alone finds the deposits. Then
 * both are cut. Afterwards: chain-watch noticed the socket drop and polled,
 * resubscribed, and backfilled every block mined meanwhile from its cursor
 * (every deposit made during the outage is reported, once); the payouts
 * caught mid-send were re-broadcast from their stored signed transactions
 * or signed once after the node came back: each recipient holds exactly
 * its amount.
 */
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { eventually } from "../helpers/rabbit.ts";
import { startFaultStack, randomAddress, type FaultStack } from "./lib/fault-stack.ts";

let s: FaultStack;

before(async () => {
  s = await startFaultStack({ confirmHeight: 3, proxy: { rpc: true, ws: true } });
});

after(async () => {
  await s?.stop();
});

test("node RPC and WebSocket cut during deposits and sends: polling, reconnect, backfill, sends retried once", { timeout: 300_000 }, async (t) => {
  const started = Date.now();
  await s.startRoles();
  const watched = Array.from({ length: 10 }, () => randomAddress());
  for (const [i, a] of watched.entries()) await s.topup(a, `no-topup-${i}`);
  s.startMining(250);
  const watch = s.alive("chain-watch")[0]!;
  await eventually(() => watch.output().includes("websocket subscribed to new heads"), 30_000, 100);

  // 1. normal traffic, first with only the WebSocket gone: polling alone finds the deposits
  await s.proxies.ws!.cut();
  await eventually(() => watch.output().includes("websocket down; polling until it is back"), 10_000, 100);
  for (let i = 0; i < 5; i++) await s.withdraw(`no-w-${i}`, randomAddress(), `${i + 1}.3`);
  for (let i = 0; i < 3; i++) await s.deposit(watched[i]!, `${i + 1}.7`);
  for (const d of s.deposits) await s.biz.waitFor("topup", (n) => n.tx_hash === d.txHash && n.status === 2, 30_000);
  await s.proxies.ws!.restore();
  await eventually(() => (watch.output().match(/websocket subscribed to new heads/g)?.length ?? 0) >= 2, 30_000, 100);

  // 2. a batch of payouts is being signed/broadcast when the node goes away
  await s.pay("no-p", Array.from({ length: 10 }, (_, i) => ({ orderId: `o${i}`, to: randomAddress(), amount: `${i}.${2 * i + 1}` })));
  await eventually(async () => (await s.env.db.prisma.transfer.count({ where: { queueId: "no-p", state: { not: "queued" } } })) > 0, 30_000, 5);
  const failedScans = () => watch.output().match(/chain-watch: scan failed; retrying/g)?.length ?? 0;
  const failedBefore = failedScans();
  await Promise.all([s.proxies.rpc!.cut(), s.proxies.ws!.cut()]);
  // a scan failed after the cut: a block fetched just before it is committed by now, or never
  await eventually(() => failedScans() > failedBefore, 30_000, 100);
  const cutAt = await s.env.db.prisma.chainCursor.findFirstOrThrow();
  const states = await s.env.db.prisma.transfer.groupBy({ by: ["state"], where: { queueId: "no-p" }, _count: true });
  t.diagnostic(`cut with the batch at ${JSON.stringify(states.map((x) => [x.state, x._count]))}, cursor ${cutAt.blockNumber}`);

  // 3. during the outage: more payouts requested, deposits mined, many blocks
  for (let i = 5; i < 10; i++) await s.withdraw(`no-w-${i}`, randomAddress(), `${i + 1}.3`);
  for (let i = 3; i < 10; i++) await s.deposit(watched[i]!, `${i + 1}.7`);
  await s.mine(30); // more than catchup_concurrency blocks to backfill
  // the scanner has tried twice more since those blocks exist: it would have scanned them by now
  const failedAfterMining = failedScans();
  await eventually(() => failedScans() >= failedAfterMining + 2, 30_000, 100);
  assert.equal((await s.env.db.prisma.chainCursor.findFirstOrThrow()).blockNumber, cutAt.blockNumber, "nothing scanned while the node is unreachable");
  await eventually(() => watch.output().includes("websocket down; polling until it is back"), 10_000, 100);

  // 4. the node is back
  await Promise.all([s.proxies.rpc!.restore(), s.proxies.ws!.restore()]);
  await s.settle(180_000);
  t.diagnostic(`20 payouts and 10 deposits final after ${Date.now() - started} ms`);
  const { redeliveries, outOfOrder } = await s.verify();
  t.diagnostic(`notifications delivered again with the same id: ${redeliveries}; final before pending: ${outOfOrder}`);

  const out = watch.output();
  assert.ok(watch.alive, "the same chain-watch process throughout");
  assert.ok((out.match(/websocket subscribed to new heads/g)?.length ?? 0) >= 3, "resubscribed after each outage");
  const head = BigInt(await s.provider.send("eth_blockNumber", []));
  const cursor = await s.env.db.prisma.chainCursor.findFirstOrThrow();
  assert.ok(cursor.blockNumber >= head - 2n, `cursor ${cursor.blockNumber} caught up with head ${head}`);
  if (states.some((x) => x.state === "signed")) {
    // caught between signing and broadcasting: the same signed transactions went out afterwards
    assert.match(s.alive("transfer-sender")[0]!.output(), /re-broadcasting signed transactions/);
  }
  // every deposit made while the node was away was found by the backfill
  for (const d of s.deposits.slice(3)) assert.equal(await s.env.db.prisma.deposit.count({ where: { txHash: d.txHash } }), 1);
});
