/**
 * The withdrawal policy and the funds check stay per order inside an
 * EIP-7702 batch (batching "7702", BatchExecutor recorded): an order to a
 * denied destination ends `0 policy_rejected` alone and an order the wallet
 * cannot cover ends `0 insufficient_balance` alone, while the orders of the
 * same request that pass go out together in one batch transaction and end
 * `2` then `1`.
 */
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { nowS } from "../helpers/rabbit.ts";
import { startTransferStack, waitForNotes, randomAddress, HOT, type TransferStack } from "../helpers/transfer-stack.ts";

let s: TransferStack;
const DENIED = randomAddress();

before(async () => {
  s = await startTransferStack({
    batching: "7702",
    mintHot: 1_000n * 10n ** 6n,
    config: (c) => ({ ...c, eth_config: { ...c.eth_config!, hold_s: 0, fallback_to_collection: false }, policy: { ...c.policy, deny_list: [DENIED] } }),
  });
  s.startMining(100);
});

after(async () => {
  await s?.stop();
});

test("a denied destination and an order beyond the balance end alone; the rest of the request pays in one batch", { timeout: 120_000 }, async () => {
  const q = "p-7702-policy";
  const ok = Array.from({ length: 5 }, (_, i) => ({ order_id: `ok${i}`, to_address: randomAddress(), amount: `${i + 1}.5` }));
  const denied = { order_id: "denied", to_address: DENIED, amount: "1" };
  const tooMuch = { order_id: "too-much", to_address: randomAddress(), amount: "5000" };
  await s.biz.send("pay", { queue_id: q, from_address: HOT, chain: "ETH", symbol: "USDT", transactions: [ok[0], denied, ok[1], ok[2], tooMuch, ok[3], ok[4]], timestamp: nowS() });

  const finals = await waitForNotes(s.biz, "pay", 1, 5, (x) => x === q, 90_000);
  const refused = await waitForNotes(s.biz, "pay", 0, 2, (x) => x === q, 30_000);
  assert.equal(refused.find((n) => n.order_id === "denied")?.error, "policy_rejected");
  assert.equal(refused.find((n) => n.order_id === "too-much")?.error, "insufficient_balance");
  const byOrder = new Map<string, number[]>();
  for (const n of s.biz.received("pay").filter((x) => x.queue_id === q)) byOrder.set(String(n.order_id), [...(byOrder.get(String(n.order_id)) ?? []), n.status]);
  for (const o of ok) assert.deepEqual(byOrder.get(o.order_id), [2, 1], o.order_id);
  assert.deepEqual(byOrder.get("denied"), [0]);
  assert.deepEqual(byOrder.get("too-much"), [0]);
  assert.equal(new Set(finals.map((n) => n.tx_hash)).size, 1, "the five that pass share one batch transaction");
  // "N.5" USDT is N * 10^6 + 500,000 base units
  for (const o of ok) assert.equal(await s.usdtOf(o.to_address), BigInt(o.amount.split(".")[0]!) * 1_000_000n + 500_000n, o.order_id);
  assert.equal(await s.usdtOf(DENIED), 0n);
  assert.equal(await s.usdtOf(tooMuch.to_address), 0n);
});
