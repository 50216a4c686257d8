/**
 * Replay. An attacker who can read the request queue (or a business system
 * that resends) captures a valid signed withdraw and publishes the exact
 * same bytes again:
 *
 * - within max_clock_skew_s: the queue_id is already used with the same
 *   body, so it is a duplicate and has no effect at all (no second transfer,
 *   no second notification);
 * - after max_clock_skew_s: refused `expired` before anything else, again
 *   with no effect;
 * - with any field changed (the signature no longer matches): refused
 *   `bad_signature`.
 *
 * The recipient receives the amount exactly once.
 */
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { eventually, nowS } from "../helpers/rabbit.ts";
import { signMessage } from "../../shared/domain/signature.ts";
import { startFaultStack, randomAddress, sleep, HOT, type FaultStack } from "./lib/fault-stack.ts";

const SKEW_S = 4;
let s: FaultStack;

before(async () => {
  s = await startFaultStack({ confirmHeight: 2, config: (c) => ({ ...c, max_clock_skew_s: SKEW_S }) });
  await s.startRoles(["bridge", "transfer-sender", "confirmation"]);
});

after(async () => {
  await s?.stop();
});

test("a captured request replayed within the window is a duplicate, after it expired, tampered bad_signature: paid once", { timeout: 120_000 }, async () => {
  const to = randomAddress();
  const captured = JSON.stringify(
    signMessage({ queue_id: "replay-1", from_address: HOT, to_address: to, amount: "12.34", chain: "ETH", symbol: "USDT", timestamp: nowS() }, s.env.key),
  );
  const sentAt = Date.now();
  await s.biz.sendRaw("withdraw", captured);
  await eventually(() => s.env.db.prisma.request.findFirst({ where: { queueId: "replay-1" } }), 10_000, 20);

  // 1. within the window: the same bytes again
  await s.biz.sendRaw("withdraw", captured);
  await eventually(async () => (await s.env.db.prisma.auditEvent.count({ where: { event: "request.duplicate", queueId: "replay-1" } })) === 1, 10_000, 20);
  assert.ok(Date.now() - sentAt < (SKEW_S - 1) * 1000, "the replay was handled inside the window");

  s.startMining(200);
  const final = await s.biz.waitFor("withdraw", (n) => n.queue_id === "replay-1" && n.status === 1, 60_000);
  assert.equal(final.amount_exact, "12.34");

  // 2. after the window: the same bytes are refused as expired
  await sleep(Math.max(0, sentAt + (SKEW_S + 2) * 1000 - Date.now()));
  await s.biz.sendRaw("withdraw", captured);
  const expired = await s.biz.waitFor("withdraw", (n) => n.queue_id === "replay-1" && n.error === "expired", 20_000);
  assert.equal(expired.status, 0);

  // 3. tampered: another recipient under the captured signature
  const tampered = { ...(JSON.parse(captured) as Record<string, unknown>), to_address: randomAddress(), timestamp: nowS() };
  await s.biz.sendRaw("withdraw", JSON.stringify(tampered));
  const bad = await s.biz.waitFor("withdraw", (n) => n.queue_id === "replay-1" && n.error === "bad_signature", 20_000);
  assert.equal(bad.status, 0);

  await sleep(1_500);
  const transfers = await s.env.db.prisma.transfer.findMany({ where: { queueId: "replay-1" }, include: { attempts: true } });
  assert.equal(transfers.length, 1, "one transfer for the queue_id");
  assert.equal(transfers[0]!.attempts.length, 1, "one signed transaction");
  assert.equal(await s.usdtOf(to), 12_340_000n, "paid exactly once");
  assert.equal(await s.usdtOf(tampered.to_address as string), 0n);
  const notes = s.biz.received("withdraw").filter((n) => n.queue_id === "replay-1");
  assert.deepEqual(
    notes.map((n) => `${n.status}${n.error ? `:${n.error}` : ""}`).sort(),
    ["0:bad_signature", "0:expired", "1", "2"],
    "one pending and one final notification for the transfer, one refusal per bad replay, nothing for the duplicate",
  );
  // refusals do not reserve the queue_id and change nothing
  const reqs = await s.env.db.prisma.request.findMany({ where: { kind: "withdraw" }, orderBy: { id: "asc" } });
  assert.deepEqual(
    reqs.map((r) => [r.queueId, r.state === "rejected", r.error]),
    [
      ["replay-1", false, null],
      [null, true, "expired"],
      [null, true, "bad_signature"],
    ],
  );
  assert.ok(s.biz.allSigned());
});
