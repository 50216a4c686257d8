/**
 * Replay (SPEC §3 "One id, one outcome"). An attacker who can read the
 * request queue (or a business system that resends) captures a valid signed
 * withdraw and publishes copies of it. Whatever arrives, the business sees
 * for `replay-1` exactly `2` then `1`, and the recipient is paid once:
 *
 * - the same bytes within max_clock_skew_s: a duplicate, dead-lettered;
 * - the same bytes after max_clock_skew_s: still a duplicate (the id ledger
 *   is consulted before `expired` could be answered), dead-lettered;
 * - a field changed (the signature no longer matches), or an unsigned copy:
 *   dead-lettered `bad_signature`, never answered;
 * - a validly signed copy with another amount: a duplicate, dead-lettered.
 *
 * (main at 950ff67 answered `2, 0:bad_signature, 0:duplicate, 1, 0:expired`:
 * a business that refunds on status 0 would have paid twice.)
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

test("copies of a paid withdraw (same bytes in and after the window, tampered, unsigned, another amount) are dead-lettered; the business sees 2 then 1", { timeout: 120_000 }, async () => {
  const to = randomAddress();
  const body = { queue_id: "replay-1", from_address: HOT, to_address: to, amount: "12.34", chain: "ETH", symbol: "USDT", timestamp: nowS() };
  const captured = JSON.stringify(signMessage(body, s.env.key));
  const sentAt = Date.now();
  await s.biz.sendRaw("withdraw", captured);
  await eventually(() => s.env.db.prisma.request.findFirst({ where: { queueId: "replay-1" } }), 10_000, 20);

  // 1. within the window: the same bytes again, an unsigned copy, and a signed copy with another amount
  await s.biz.sendRaw("withdraw", captured);
  await s.biz.send("withdraw", { ...body, to_address: randomAddress() }, { unsigned: true });
  await s.biz.send("withdraw", { ...body, amount: "99", timestamp: nowS() });
  const sameBytes = await s.biz.waitForDead((d) => d.reason === "duplicate" && d.text === captured);
  assert.match(sameBytes.detail, /replay-1/);
  await s.biz.waitForDead((d) => d.reason === "bad_signature" && d.text.includes("replay-1"));
  await s.biz.waitForDead((d) => d.reason === "duplicate" && d.text.includes('"amount":"99"'));
  assert.ok(Date.now() - sentAt < (SKEW_S - 1) * 1000, "the copies were handled inside the window");

  s.startMining(200);
  const final = await s.biz.waitFor("withdraw", (n) => n.queue_id === "replay-1" && n.status === 1, 60_000);
  assert.equal(final.amount_exact, "12.34");

  // 2. after the window: the same bytes are still a duplicate (not `expired`)
  await sleep(Math.max(0, sentAt + (SKEW_S + 2) * 1000 - Date.now()));
  await s.biz.sendRaw("withdraw", captured);
  await s.biz.waitForDead((d) => d.reason === "duplicate" && d.text === captured && s.biz.dead().filter((m) => m.content.toString() === captured).length === 2);

  // 3. tampered: another recipient under the captured signature
  const tampered = { ...(JSON.parse(captured) as Record<string, unknown>), to_address: randomAddress(), timestamp: nowS() };
  await s.biz.sendRaw("withdraw", JSON.stringify(tampered));
  await s.biz.waitForDead((d) => d.reason === "bad_signature" && d.text.includes(tampered.to_address as string));

  // The positive signal that every copy has been handled and answered if it ever would be:
  // a later refusal on the same response queue (the outbox publishes in order).
  await s.biz.send("withdraw", { ...body, queue_id: "replay-sentinel", chain: "BTC", timestamp: nowS() });
  await s.biz.waitFor("withdraw", (n) => n.queue_id === "replay-sentinel");
  await eventually(async () => (await s.env.db.prisma.notification.count({ where: { state: "pending" } })) === 0, 20_000, 50);

  assert.deepEqual(s.biz.outcomes("withdraw", "replay-1"), ["2", "1"], "one pending and one final notification, nothing else");
  const transfers = await s.env.db.prisma.transfer.findMany({ where: { queueId: "replay-1" }, include: { attempts: true } });
  assert.equal(transfers.length, 1, "one transfer for the queue_id");
  assert.equal(transfers[0]!.attempts.length, 1, "one signed transaction");
  assert.equal(await s.usdtOf(to), 12_340_000n, "paid exactly once");
  assert.equal(await s.usdtOf(tampered.to_address as string), 0n);
  const reqs = await s.env.db.prisma.request.findMany({ where: { kind: "withdraw" }, orderBy: { id: "asc" } });
  assert.deepEqual(
    reqs.map((r) => [r.queueId, r.state, r.error]),
    [
      ["replay-1", "accepted", null],
      ["replay-sentinel", "rejected", "unknown_chain"],
    ],
    "copies leave no request row",
  );
  const audit = await s.env.db.prisma.auditEvent.findMany({ where: { queueId: "replay-1", event: { in: ["request.duplicate", "request.dead_lettered"] } } });
  assert.equal(audit.filter((a) => a.event === "request.duplicate").length, 3);
  assert.equal(audit.filter((a) => a.event === "request.dead_lettered" && a.data?.includes("bad_signature")).length, 2);
  assert.ok(s.biz.allSigned());
});
