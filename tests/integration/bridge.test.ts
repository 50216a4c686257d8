/**
 * The bridge against real RabbitMQ, MariaDB and Redis: requests in, rows and
 * jobs written, refusals answered with SPEC codes, unauthenticated and
 * unparseable messages and duplicates dead-lettered with their reason.
 */
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { createTestEnv, type TestEnv } from "../helpers/env.ts";
import { createBusinessClient, eventually, nowS, type BusinessClient } from "../helpers/rabbit.ts";
import { createBridge } from "../../bridge/main.ts";
import { followerDelays } from "../../shared/domain/send-pacing.ts";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";

let env: TestEnv;
let biz: BusinessClient;
let bridge: ReturnType<typeof createBridge>;
const HOT = "0x" + "ab".repeat(20);
const ADDR = "0x4E5B2E1DC63F6B91CB6CD759936495434C7E972F";

const logDir = mkdtempSync(path.join(tmpdir(), "payment-address-log-"));

before(async () => {
  env = await createTestEnv({ config: (c) => ({ ...c, log: { ...c.log, address_log_dir: logDir } }) });
  await env.db.prisma.wallet.create({ data: { chain: "ETH", address: HOT, kind: "hot", encryptedKey: "x", keyId: "test" } });
  biz = await createBusinessClient(env.config, env.key);
  bridge = createBridge({ ...env, communicationKey: env.key });
  await bridge.start();
});

after(async () => {
  await bridge.stop();
  await biz.close();
  await env.cleanup();
  rmSync(logDir, { recursive: true, force: true });
});

test("topup watches the address (lowercased), idempotently", async () => {
  await biz.send("topup", { chain: "ETH", symbol: "USDT", address: ADDR, timestamp: nowS() });
  await biz.send("topup", { chain: "ETH", symbol: "USDT", address: ADDR.toLowerCase(), timestamp: nowS() });
  const rows = await eventually(async () => {
    const r = await env.db.prisma.watchedAddress.findMany();
    const reqs = await env.db.prisma.request.count({ where: { kind: "topup" } });
    return reqs === 2 ? r : null;
  });
  assert.equal(rows.length, 1);
  assert.equal(rows[0]!.address, ADDR.toLowerCase());
  assert.equal(rows[0]!.active, true);
  assert.equal(biz.received("topup").length, 0);
});

test("refusals are answered with their SPEC code, signed", async () => {
  const ts = nowS();
  const cases: { kind: "topup" | "withdraw" | "pay" | "remove"; body: Record<string, unknown>; code: string }[] = [
    { kind: "topup", body: { queue_id: "expired", chain: "ETH", symbol: "USDT", address: ADDR, timestamp: ts - 3600 }, code: "expired" },
    { kind: "topup", body: { queue_id: "no-address", chain: "ETH", symbol: "USDT", timestamp: ts }, code: "invalid_request" },
    { kind: "topup", body: { queue_id: "short-address", chain: "ETH", symbol: "USDT", address: "0x1234", timestamp: ts }, code: "invalid_request" },
    { kind: "topup", body: { queue_id: "chain", chain: "BTC", symbol: "USDT", address: ADDR, timestamp: ts }, code: "unknown_chain" },
    { kind: "topup", body: { queue_id: "symbol", chain: "ETH", symbol: "DOGE", address: ADDR, timestamp: ts }, code: "unknown_symbol" },
    {
      kind: "withdraw",
      body: { queue_id: "w-amount", from_address: HOT, to_address: ADDR, amount: "1.0000001", chain: "ETH", symbol: "USDT", timestamp: ts },
      code: "invalid_amount",
    },
    {
      kind: "withdraw",
      body: { queue_id: "w-wallet", from_address: "0x" + "cd".repeat(20), to_address: ADDR, amount: "1", chain: "ETH", symbol: "USDT", timestamp: ts },
      code: "unknown_wallet",
    },
    {
      kind: "pay",
      body: { queue_id: "p-dup-order", from_address: HOT, chain: "ETH", symbol: "USDT", timestamp: ts, transactions: [{ order_id: "o1", to_address: ADDR, amount: "1" }, { order_id: "o1", to_address: ADDR, amount: "2" }] },
      code: "invalid_request",
    },
  ];
  for (const c of cases) await biz.send(c.kind, c.body);
  for (const c of cases) {
    const n = await biz.waitFor(c.kind, (n) => n.queue_id === c.body.queue_id);
    assert.equal(n.status, 0, `${c.body.queue_id}`);
    assert.equal(n.error, c.code, `${c.body.queue_id}: ${JSON.stringify(n)}`);
  }
  assert.ok(biz.allSigned());
});

test("unauthenticated and unparseable messages go to the dead-letter queue with their reason, unanswered", async () => {
  await biz.send("topup", { queue_id: "bad-sig", chain: "ETH", symbol: "USDT", address: ADDR, timestamp: nowS() }, { key: "another-key-of-16-chars" });
  await biz.sendRaw("withdraw", "this is not json");
  await biz.sendRaw("withdraw", "[1,2,3]");
  const forged = await biz.waitForDead((d) => d.text.includes('"bad-sig"'));
  assert.equal(forged.reason, "bad_signature");
  assert.equal(forged.kind, "topup");
  const junk = await biz.waitForDead((d) => d.text === "[1,2,3]");
  assert.equal(junk.reason, "unparseable");
  assert.match(junk.detail, /not a JSON object/);
  await biz.waitForDead((d) => d.text === "this is not json");
  // the audit trail names the forged message's claimed id, and no answer went out under it
  await eventually(() => env.db.prisma.auditEvent.findFirst({ where: { event: "request.dead_lettered", queueId: "bad-sig" } }));
  assert.deepEqual(biz.outcomes("topup", "bad-sig"), []);
  assert.equal(await env.db.prisma.request.count({ where: { queueId: "bad-sig" } }), 0, "a forged message takes no id");
  assert.equal(await env.db.prisma.transfer.count(), 0);
});

test("withdraw is recorded once with an exact amount and a deterministic job; a duplicate changes nothing and is not answered", async () => {
  const body = { queue_id: "w-1", from_address: HOT, to_address: ADDR, amount: "100.500001", chain: "ETH", symbol: "USDT", timestamp: nowS() };
  await biz.send("withdraw", body);
  await biz.send("withdraw", { ...body, timestamp: nowS() + 1 }); // a resend: same meaning
  await biz.send("withdraw", { ...body, amount: "7" }); // same queue_id, different body
  await biz.waitForDead((d) => d.reason === "duplicate" && d.text.includes('"amount":"7"'));
  await biz.waitForDead((d) => d.reason === "duplicate" && d.text.includes('"amount":"100.500001"'));
  assert.deepEqual(biz.outcomes("withdraw", "w-1"), [], "a queued withdraw has no answer yet, and duplicates get none");
  const transfers = await env.db.prisma.transfer.findMany({ where: { queueId: "w-1" } });
  assert.equal(transfers.length, 1);
  assert.equal(transfers[0]!.amount.toFixed(), "100.500001");
  assert.equal(transfers[0]!.state, "queued");
  const job = await env.queues.transfer.getJob(`send-${transfers[0]!.id}`);
  assert.ok(job, "send job enqueued");
  assert.equal(job!.data.transferId, transfers[0]!.id.toString());
});

test("a pay request's jobs: the wallet's first starts at once, the others are put off (send-pacing)", async () => {
  const orders = Array.from({ length: 4 }, (_, i) => ({ order_id: `o${i}`, to_address: ADDR, amount: `${i + 1}` }));
  await biz.send("pay", { queue_id: "p-pace", from_address: HOT, chain: "ETH", symbol: "USDT", transactions: orders, timestamp: nowS() });
  const transfers = await eventually(async () => {
    const rows = await env.db.prisma.transfer.findMany({ where: { queueId: "p-pace" }, orderBy: { id: "asc" } });
    return rows.length === 4 ? rows : null;
  });
  const jobs = await eventually(async () => {
    const js = await Promise.all(transfers.map((t) => env.queues.transfer.getJob(`send-${t.id}`)));
    return js.every((j) => j) ? js.map((j) => j!) : null;
  });
  assert.deepEqual(jobs.map((j) => j.opts.delay ?? 0), followerDelays(transfers.map(() => `ETH:${HOT}`)));
  assert.equal(await jobs[0]!.getState(), "waiting");
  assert.deepEqual(jobs.map((j) => j.data.payment.order_id), ["o0", "o1", "o2", "o3"]);
});

test("remove cancels a withdraw not yet sent, and stops watching an address", async () => {
  await biz.send("withdraw", { queue_id: "w-2", from_address: HOT, to_address: ADDR, amount: 5, chain: "ETH", symbol: "USDT", timestamp: nowS() });
  await eventually(() => env.db.prisma.transfer.findFirst({ where: { queueId: "w-2" } }));
  await biz.send("remove", { queue_id: "w-2", msg_type: "withdraw", timestamp: nowS() });
  const cancelled = await biz.waitFor("withdraw", (n) => n.queue_id === "w-2");
  assert.equal(cancelled.status, 0);
  assert.equal(cancelled.error, "cancelled");
  assert.equal(cancelled.amount_exact, "5");
  const ok = await biz.waitFor("remove", (n) => n.queue_id === "w-2");
  assert.equal(ok.status, 1);

  await biz.send("remove", { queue_id: "rm-topup", msg_type: "topup", chain: "ETH", symbol: "USDT", address: ADDR, timestamp: nowS() });
  const removed = await biz.waitFor("remove", (n) => n.queue_id === "rm-topup");
  assert.equal(removed.status, 1);
  const w = await env.db.prisma.watchedAddress.findFirst({ where: { address: ADDR.toLowerCase() } });
  assert.equal(w!.active, false);
});

test("per-address log files record requests and the notifications sent for them", async () => {
  const file = path.join(logDir, `${ADDR.toLowerCase()}.log`);
  const lines = await eventually(() => {
    try {
      const l = readFileSync(file, "utf8").trim().split("\n").map((x) => JSON.parse(x) as Record<string, unknown>);
      return l.some((x) => x.event === "RemoveResp") ? l : null;
    } catch {
      return null;
    }
  });
  assert.ok(lines.some((x) => x.event === "TopupReq" && x.result === "accepted"));
  assert.ok(lines.some((x) => x.event === "TopupReq" && x.error === "expired"));
  assert.ok(lines.every((x) => !JSON.stringify(x).includes(env.key)));
});

test("queue_ids differing only in case are different requests; padded ids are dead-lettered", async () => {
  const base = { from_address: HOT, to_address: ADDR, amount: "1", chain: "ETH", symbol: "USDT" };
  for (const queueId of ["Case-1", "case-1", "CASE-1"]) await biz.send("withdraw", { ...base, queue_id: queueId, timestamp: nowS() });
  await biz.send("withdraw", { ...base, queue_id: "case-1 ", timestamp: nowS() });
  const padded = await biz.waitForDead((d) => d.text.includes('"case-1 "'));
  assert.equal(padded.reason, "invalid_request");
  assert.match(padded.detail, /queue_id/);
  const rows = await eventually(async () => {
    const r = await env.db.prisma.transfer.findMany({ where: { kind: "withdraw", amount: "1" } });
    return r.length >= 3 ? r : null;
  });
  assert.deepEqual(rows.map((r) => r.queueId).sort(), ["CASE-1", "Case-1", "case-1"]);
  assert.equal(biz.dead().filter((m) => m.properties.headers?.["x-payment-reason"] === "duplicate" && m.content.toString().toLowerCase().includes("case-1")).length, 0);
});
