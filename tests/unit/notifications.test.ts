/**
 * Notification bodies (SPEC §3 "Notifications"): the SPEC's fields, `amount`
 * as a JSON number and `amount_exact` as exact text, a stable
 * `notification_id` consumers can dedupe by, and bodies that survive JSON and
 * signing unchanged.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { parse as parseLossless } from "lossless-json";
import {
  depositNotification,
  transferNotification,
  removeNotification,
  pendingPredecessorKey,
  rejectionNotifications,
  type DepositFacts,
  type TransferFacts,
} from "../../shared/domain/notifications.ts";
import { formatUnits } from "../../shared/domain/amount.ts";
import { signMessage, verifyMessage } from "../../shared/domain/signature.ts";

const NOW = 1_758_610_297_123;
const KEY = "test-communication-key-0123456789";

const deposit: DepositFacts = {
  id: 41n,
  queueId: "topup_1",
  chain: "ETH",
  symbol: "USDT",
  toAddress: "0x4e5b000000000000000000000000000000000001",
  fromAddress: "0x9999000000000000000000000000000000000002",
  amount: "100.500001",
  txHash: "0x" + "ab".repeat(32),
  logIndex: 3,
  blockNumber: 123n,
  confirmations: 0,
};

const transfer: TransferFacts = {
  id: 7n,
  kind: "pay",
  queueId: "pay_456",
  orderId: "order_789",
  chain: "ETH",
  symbol: "USDT",
  fromAddress: "0x1111111111111111111111111111111111111111",
  toAddress: "0x3333333333333333333333333333333333333333",
  amount: "200",
  txHash: "0x" + "cd".repeat(32),
  blockNumber: 456n,
  confirmations: 20,
};

const keys = (o: object) => Object.keys(o).sort();

describe("deposit notifications (topup)", () => {
  it("have the SPEC fields, amount as a number and amount_exact as text", () => {
    const n = depositNotification(deposit, 2, NOW);
    assert.deepEqual(n.body, {
      notification_id: "deposit-41-2",
      queue_id: "topup_1",
      chain: "ETH",
      symbol: "USDT",
      address: deposit.toAddress,
      from_address: deposit.fromAddress,
      amount: 100.500001,
      amount_exact: "100.500001",
      tx_hash: deposit.txHash,
      log_index: 3,
      block_height: 123,
      confirmations: 0,
      status: 2,
      timestamp: 1_758_610_297,
    });
    assert.equal(n.kind, "topup");
    assert.equal(n.address, deposit.toAddress);
    assert.equal(n.queueId, "topup_1");
    assert.equal(n.dedupeKey, n.body.notification_id);
  });

  it("a deposit without a topup queue_id says null", () => {
    assert.equal(depositNotification({ ...deposit, queueId: null }, 1, NOW).body.queue_id, null);
  });

  it("a final failure carries its error code", () => {
    const n = depositNotification(deposit, 0, NOW, "reorged");
    assert.equal(n.body.status, 0);
    assert.equal(n.body.error, "reorged");
    assert.ok(!("error" in depositNotification(deposit, 1, NOW).body));
  });

  it("notification_id is stable per deposit and status, independent of time and confirmations", () => {
    const a = depositNotification(deposit, 1, NOW);
    const b = depositNotification({ ...deposit, confirmations: 25 }, 1, NOW + 3_600_000);
    assert.equal(a.body.notification_id, b.body.notification_id);
    assert.notEqual(depositNotification(deposit, 2, NOW).dedupeKey, a.dedupeKey, "seen and final are two notifications");
    assert.notEqual(depositNotification({ ...deposit, id: 42n }, 1, NOW).dedupeKey, a.dedupeKey);
    assert.equal(depositNotification({ ...deposit, id: "41" }, 1, NOW).dedupeKey, a.dedupeKey, "string and bigint ids agree");
  });
});

describe("transfer notifications (withdraw, pay)", () => {
  it("pay: one per order, with order_id", () => {
    const n = transferNotification(transfer, 1, NOW);
    assert.deepEqual(keys(n.body), keys({
      notification_id: 0, queue_id: 0, order_id: 0, chain: 0, symbol: 0, from_address: 0, to_address: 0,
      amount: 0, amount_exact: 0, tx_hash: 0, block_height: 0, confirmations: 0, status: 0, timestamp: 0,
    }));
    assert.equal(n.body.order_id, "order_789");
    assert.equal(n.body.amount, 200);
    assert.equal(n.body.amount_exact, "200");
    assert.equal(n.body.block_height, 456);
    assert.equal(n.kind, "pay");
  });

  it("withdraw: no order_id; from_address is the wallet used", () => {
    const n = transferNotification({ ...transfer, kind: "withdraw", orderId: "", fromAddress: "0xc011ec7100000000000000000000000000000000" }, 2, NOW);
    assert.ok(!("order_id" in n.body));
    assert.equal(n.body.from_address, "0xc011ec7100000000000000000000000000000000");
    assert.equal(n.kind, "withdraw");
  });

  it("a failure before anything was sent has null tx fields, the code and a readable message", () => {
    const n = transferNotification({ ...transfer, txHash: null, blockNumber: null, confirmations: 0 }, 0, NOW, "insufficient_balance", "wallet holds 10 USDT");
    assert.equal(n.body.tx_hash, null);
    assert.equal(n.body.block_height, null);
    assert.equal(n.body.error, "insufficient_balance");
    assert.equal(n.body.error_message, "wallet holds 10 USDT");
  });

  it("notification_id is stable per transfer and status", () => {
    assert.equal(transferNotification(transfer, 1, NOW).dedupeKey, transferNotification({ ...transfer, confirmations: 99 }, 1, NOW + 1).dedupeKey);
    assert.notEqual(transferNotification(transfer, 1, NOW).dedupeKey, transferNotification(transfer, 2, NOW).dedupeKey);
    assert.notEqual(transferNotification(transfer, 1, NOW).dedupeKey, depositNotification({ ...deposit, id: transfer.id }, 1, NOW).dedupeKey, "no clash between subjects");
  });
});

describe("remove notifications", () => {
  it("have queue_id, msg_type, chain, symbol, address, status", () => {
    const n = removeNotification(9n, { queueId: "rm_1", msgType: "topup", chain: "ETH", symbol: "USDT", address: deposit.toAddress }, 1, NOW);
    assert.deepEqual(n.body, {
      notification_id: "remove-9",
      queue_id: "rm_1",
      msg_type: "topup",
      chain: "ETH",
      symbol: "USDT",
      address: deposit.toAddress,
      status: 1,
      timestamp: 1_758_610_297,
    });
    const failed = removeNotification(9n, { queueId: "rm_2", msgType: "withdraw", chain: null, symbol: null, address: null }, 0, NOW, "already_sent", "transfer was broadcast");
    assert.equal(failed.body.error, "already_sent");
    assert.equal(failed.body.status, 0);
  });
});

describe("rejection notifications", () => {
  it("answer status 0 with the code, echoing the message; the amount as text only", () => {
    const [n, ...rest] = rejectionNotifications(5n, "withdraw", { queue_id: "w1", from_address: "0xaa", amount: "1e2" }, [], "invalid_amount", "amount: bad", NOW);
    assert.equal(rest.length, 0);
    assert.equal(n!.body.status, 0);
    assert.equal(n!.body.error, "invalid_amount");
    assert.equal(n!.body.error_message, "amount: bad");
    assert.equal(n!.body.amount_exact, "1e2");
    assert.ok(!("amount" in n!.body), "a refused amount may not be a number at all");
    assert.equal(n!.body.queue_id, "w1");
    assert.equal(n!.address, "0xaa");
  });

  it("a refused pay batch is answered once per order_id, each with its own stable id", () => {
    const ns = rejectionNotifications(6n, "pay", { queue_id: "p1" }, ["o1", "o2", "o3"], "unknown_symbol", "x", NOW);
    assert.deepEqual(ns.map((n) => n.body.order_id), ["o1", "o2", "o3"]);
    assert.equal(new Set(ns.map((n) => n.dedupeKey)).size, 3);
    assert.deepEqual(
      rejectionNotifications(6n, "pay", { queue_id: "p1" }, ["o1", "o2", "o3"], "unknown_symbol", "x", NOW + 5000).map((n) => n.dedupeKey),
      ns.map((n) => n.dedupeKey),
    );
  });

  it("a pay whose orders cannot be listed one by one is answered once for the request", () => {
    const ns = rejectionNotifications(8n, "pay", { queue_id: "p2" }, null, "invalid_request", "transactions: batch of 9000 exceeds the limit of 500", NOW);
    assert.equal(ns.length, 1);
    assert.equal(ns[0]!.body.queue_id, "p2");
    assert.equal("order_id" in ns[0]!.body, false);
  });

  it("a topup without queue_id still gets an answer with queue_id null", () => {
    const [n] = rejectionNotifications(7n, "topup", {}, null, "expired", "timestamp is more than 300 s away from the server clock", NOW);
    assert.equal(n!.body.queue_id, null);
    assert.equal(n!.queueId, null);
  });
});

describe("notification bodies: properties", () => {
  it("amount_exact is exact, amount is the nearest double, and the body signs and verifies through JSON", () => {
    fc.assert(
      fc.property(fc.bigInt({ min: 0n, max: (1n << 256n) - 1n }), fc.integer({ min: 0, max: 36 }), fc.constantFrom(0, 1, 2) as fc.Arbitrary<0 | 1 | 2>, (units, d, status) => {
        const amount = formatUnits(units, d);
        for (const n of [depositNotification({ ...deposit, amount }, status, NOW), transferNotification({ ...transfer, amount }, status, NOW)]) {
          assert.equal(n.body.amount_exact, amount);
          assert.equal(n.body.amount, Number(amount));
          assert.ok(Number.isFinite(n.body.amount));
          const wire = JSON.stringify(signMessage(n.body, KEY));
          assert.equal(verifyMessage(parseLossless(wire) as Record<string, unknown>, KEY), true);
          assert.equal((JSON.parse(wire) as { amount_exact: string }).amount_exact, amount);
        }
      }),
      { numRuns: 300 },
    );
  });
});

it("a final follows its own 2: the pending predecessor key of transfer and deposit finals, none otherwise", () => {
  assert.equal(pendingPredecessorKey("transfer-42-1"), "transfer-42-2");
  assert.equal(pendingPredecessorKey("transfer-42-0"), "transfer-42-2");
  assert.equal(pendingPredecessorKey("deposit-7-1"), "deposit-7-2");
  assert.equal(pendingPredecessorKey("deposit-7-0"), "deposit-7-2");
  for (const k of ["transfer-42-2", "deposit-7-2", "remove-3", "reject-5", "reject-5-2", "transfer--1", "transfer-x-1", "transfer-1-1 ", "xtransfer-1-1"]) assert.equal(pendingPredecessorKey(k), null, k);
});
