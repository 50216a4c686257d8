/**
 * Per id the business sees `2` before the final, even when the `2` is in a
 * dead bridge's hands: a transfer's status-2 notification claimed by a
 * bridge that died (its lease still running) and its status-1 final pending
 * behind it. The live bridge publishes what comes after (the positive
 * signal that it went past the final) but holds the final back; once the
 * dead bridge's lease ends, the business gets `2`, then `1`.
 */
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { createTestEnv, type TestEnv } from "../helpers/env.ts";
import { createBusinessClient, eventually, type BusinessClient } from "../helpers/rabbit.ts";
import { createBridge } from "../../bridge/main.ts";
import { transferNotification, type TransferFacts } from "../../shared/domain/notifications.ts";
import { insertNotifications } from "../../shared/adapters/db/outbox.ts";

let env: TestEnv;
let biz: BusinessClient;
let bridge: ReturnType<typeof createBridge>;

before(async () => {
  env = await createTestEnv({ anvil: false });
  biz = await createBusinessClient(env.config, env.key);
});

after(async () => {
  await bridge?.stop();
  await biz?.close();
  await env?.cleanup();
});

const facts = (id: number, queueId: string): TransferFacts => ({
  id: String(id),
  kind: "withdraw",
  queueId,
  orderId: queueId,
  chain: "ETH",
  symbol: "USDT",
  fromAddress: `0x${"11".repeat(20)}`,
  toAddress: `0x${"22".repeat(20)}`,
  amount: "1.5",
  txHash: `0x${"ab".repeat(32)}`,
  blockNumber: 7,
  confirmations: 3,
});

test("a final waits for its `2` held by a dead bridge's claim, then follows it", { timeout: 60_000 }, async () => {
  const now = Date.now();
  await insertNotifications(env.db.pool as never, [transferNotification(facts(900, "w-order"), 2, now), transferNotification(facts(900, "w-order"), 1, now)]);
  // the `2` was claimed by a bridge that died: its lease has 4 s to run
  await env.db.pool.query("UPDATE notification SET claimed_by = 'dead-bridge-1', claimed_until = NOW(3) + INTERVAL 4 SECOND WHERE dedupe_key = 'transfer-900-2'");
  // and something unrelated after them
  await insertNotifications(env.db.pool as never, [transferNotification(facts(901, "w-later"), 2, now)]);

  bridge = createBridge({ ...env, communicationKey: env.key });
  await bridge.start();
  // positive signal: the publisher went past the final (the later row is out)
  await eventually(() => (biz.received("withdraw").some((n) => n.queue_id === "w-later") ? true : null), 20_000, 50);
  assert.deepEqual(
    biz.received("withdraw").filter((n) => n.queue_id === "w-order").map((n) => n.status),
    [],
    "the final is held back while its 2 is in the dead bridge's hands",
  );

  // the lease ends: 2, then 1
  await eventually(() => (biz.received("withdraw").filter((n) => n.queue_id === "w-order").length >= 2 ? true : null), 30_000, 50);
  assert.deepEqual(
    biz.received("withdraw").filter((n) => n.queue_id === "w-order").map((n) => n.status),
    [2, 1],
  );
  assert.ok(biz.allSigned());
});
