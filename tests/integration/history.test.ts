/**
 * `payment history` and `payment notify redeliver` against requests that
 * went through the real bridge (RabbitMQ in, MySQL, outbox out).
 */
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { createTestEnv, type TestEnv } from "../helpers/env.ts";
import { createBusinessClient, eventually, nowS, type BusinessClient } from "../helpers/rabbit.ts";
import { createBridge } from "../../bridge/main.ts";
import { buildHistory, formatHistory } from "../../cli/commands/history.ts";
import { parseSubject, UsageError } from "../../cli/context.ts";
import { redeliverNotifications, subjectKey } from "../../cli/commands/notify.ts";

const run = promisify(execFile);
let env: TestEnv;
let biz: BusinessClient;
let bridge: ReturnType<typeof createBridge>;
let tmp: string;
let configFile: string;
const HOT = "0x" + "ab".repeat(20);
const USER = "0x4E5B2E1DC63F6B91CB6CD759936495434C7E972F";

before(async () => {
  env = await createTestEnv();
  await env.db.prisma.wallet.create({ data: { chain: "ETH", address: HOT, kind: "hot", encryptedKey: "not-a-real-key", keyId: "test" } });
  biz = await createBusinessClient(env.config, env.key);
  bridge = createBridge({ ...env, communicationKey: env.key });
  await bridge.start();
  tmp = mkdtempSync(path.join(tmpdir(), "payment-history-"));
  configFile = path.join(tmp, "config.json");
  writeFileSync(configFile, JSON.stringify(env.config));

  // A withdraw, a resend with a different body (dead-lettered `duplicate`,
  // never answered), then a remove that cancels it: two notifications.
  const body = { queue_id: "h-1", from_address: HOT, to_address: USER, amount: "12.5", chain: "ETH", symbol: "USDT", timestamp: nowS() };
  await biz.send("withdraw", body);
  await eventually(() => env.db.prisma.transfer.findFirst({ where: { queueId: "h-1" } }));
  await biz.send("withdraw", { ...body, amount: "13" });
  await biz.waitForDead((d) => d.reason === "duplicate" && d.text.includes('"h-1"'));
  await biz.send("remove", { queue_id: "h-1", msg_type: "withdraw", timestamp: nowS() });
  await biz.waitFor("withdraw", (n) => n.queue_id === "h-1" && n.error === "cancelled");
  await biz.waitFor("remove", (n) => n.queue_id === "h-1");
  await eventually(async () => (await env.db.prisma.notification.count({ where: { queueId: "h-1", state: "pending" } })) === 0);
});

after(async () => {
  await bridge?.stop();
  await biz?.close();
  await env?.cleanup();
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

test("subjects: a 0x address (any case) or a queue_id", () => {
  assert.deepEqual(parseSubject(USER), { type: "address", address: USER.toLowerCase() });
  assert.deepEqual(parseSubject("withdraw_123"), { type: "queue_id", queueId: "withdraw_123" });
  // hex that is not an address may still be a queue_id; the command refuses it when nothing has it
  assert.deepEqual(parseSubject("0x1234"), { type: "queue_id", queueId: "0x1234", hexNotAddress: true });
  assert.throws(() => parseSubject(" padded"), UsageError);
  assert.throws(() => parseSubject("x".repeat(129)), UsageError);
  assert.equal(subjectKey("transfer-12-2"), "transfer-12");
  assert.equal(subjectKey("deposit-7-1"), "deposit-7");
  assert.equal(subjectKey("reject-5-1"), "reject-5-1");
  assert.equal(subjectKey("remove-9"), "remove-9");
});

test("history of a queue_id is one time-ordered timeline of rows and audit events", async () => {
  const h = await buildHistory(env.db.prisma, parseSubject("h-1"));
  const events = h.entries.map((e) => e.event);
  for (const e of [
    "request.received",
    "request.accepted",
    "transfer.created",
    "transfer.queued",
    "request.duplicate",
    "transfer.cancelled",
    "notification.queued",
    "notification.published",
  ]) {
    assert.ok(events.includes(e), `${e} in ${events.join(", ")}`);
  }
  for (let i = 1; i < h.entries.length; i++) assert.ok(h.entries[i - 1]!.at <= h.entries[i]!.at, "time-ordered");
  // the dead-lettered resend has no request row; its audit event says why
  const requests = h.entries.filter((e) => e.event === "request.received");
  assert.deepEqual(requests.map((r) => r.details.state).sort(), ["accepted", "done"]);
  const dup = h.entries.find((e) => e.event === "request.duplicate")!;
  assert.deepEqual(dup.details.data, { kind: "withdraw", same_bytes: false, first: "accepted" });
  assert.ok(events.indexOf("request.accepted") < events.indexOf("transfer.cancelled"));
  const created = h.entries.find((e) => e.event === "transfer.created")!;
  assert.equal(created.details.amount, "12.5", "exact amount");
  assert.equal(created.details.state_now, "cancelled");
  assert.equal(h.entries.filter((e) => e.event === "notification.queued").length, 2);

  const text = formatHistory(h);
  assert.match(text, /^history of queue_id h-1: \d+ event\(s\)/);
  assert.match(text, /audit:bridge\s+request\.accepted/);
  assert.doesNotMatch(text, /not-a-real-key|"sign"|sign=/, "no key material or signatures");
});

test("history of an address finds its transfers, notifications and audit events", async () => {
  const h = await buildHistory(env.db.prisma, parseSubject(HOT.toUpperCase().replace("0X", "0x")));
  const events = h.entries.map((e) => e.event);
  assert.ok(events.includes("transfer.created"));
  assert.ok(events.includes("transfer.queued"));
  assert.ok(events.includes("request.received"), "the request is found through the transfer");
  assert.ok(events.includes("notification.queued"), "the cancellation was reported from this wallet");
  const queueIds = new Set(h.entries.map((e) => e.details.queue_id).filter((q) => q !== undefined && q !== null));
  assert.deepEqual([...queueIds], ["h-1"], "nothing unrelated");
  const none = await buildHistory(env.db.prisma, parseSubject("0x" + "99".repeat(20)));
  assert.equal(none.entries.length, 0);
  assert.match(formatHistory(none), /^nothing recorded for address 0x9999/);
});

test("notify redeliver re-sends the latest notification of each subject, same id, audited", async () => {
  const before = biz.received("withdraw").filter((n) => n.queue_id === "h-1").length;
  const dry = await redeliverNotifications(env.db.pool, parseSubject("h-1"), { actor: "operator:test", dryRun: true });
  assert.equal(dry.length, 2, JSON.stringify(dry, (_k, v) => (typeof v === "bigint" ? String(v) : v)));
  assert.equal(await env.db.prisma.notification.count({ where: { queueId: "h-1", state: "pending" } }), 0, "a dry run changes nothing");

  const done = await redeliverNotifications(env.db.pool, parseSubject("h-1"), { actor: "operator:test" });
  assert.deepEqual(done.map((d) => d.was), ["sent", "sent"]);
  const cancelled = done.find((d) => d.notificationId.startsWith("transfer-"))!;
  assert.match(cancelled.notificationId, /^transfer-\d+-0$/);

  const again = await biz.waitFor("withdraw", (n) => n.notification_id === cancelled.notificationId && biz.received("withdraw").filter((x) => x.notification_id === cancelled.notificationId).length === 2);
  const copies = biz.received("withdraw").filter((n) => n.notification_id === cancelled.notificationId);
  assert.equal(copies.length, 2);
  assert.deepEqual(copies[1], copies[0], "the same body and signature");
  assert.equal(again.error, "cancelled");
  await biz.waitFor("remove", () => biz.received("remove").filter((n) => n.queue_id === "h-1").length === 2);
  await eventually(() => biz.received("withdraw").filter((n) => n.queue_id === "h-1").length === before + 1);
  assert.ok(biz.allSigned());

  const audits = await env.db.prisma.auditEvent.findMany({ where: { event: "notification.redeliver" } });
  assert.equal(audits.length, 2);
  assert.ok(audits.every((a) => a.actor === "operator:test" && a.queueId === "h-1"));
});

test("the CLI prints the timeline (text and --json) and redelivers by address", async () => {
  const cli = path.resolve("bin/payment.mjs");
  const envVars = { ...process.env, PAYMENT_CONFIG: configFile };
  const text = await run(process.execPath, [cli, "history", "h-1"], { env: envVars });
  assert.match(text.stdout, /^history of queue_id h-1/);
  assert.match(text.stdout, /notification\.redeliver/);
  const json = JSON.parse((await run(process.execPath, [cli, "history", "h-1", "--json"], { env: envVars })).stdout) as {
    subject: unknown;
    entries: { at: string; event: string }[];
  };
  assert.deepEqual(json.subject, { type: "queue_id", queueId: "h-1" });
  assert.ok(json.entries.some((e) => e.event === "transfer.cancelled"));

  const dry = await run(process.execPath, [cli, "notify", "redeliver", HOT, "--dry-run"], { env: envVars });
  assert.match(dry.stdout, /dry run: \d+ would be redelivered/);
});
