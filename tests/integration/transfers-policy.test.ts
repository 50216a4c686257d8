/**
 * The withdrawal policy end to end: per-request cap, destination deny list,
 * approval threshold with `payment approve` / `payment reject` run as an
 * operator would, rolling 24 h velocity per wallet and overall. Refusals
 * reach the business system as status 0 `policy_rejected`; every decision
 * is in the audit trail.
 */
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import path from "node:path";
import { nowS, eventually } from "../helpers/rabbit.ts";
import { ANVIL_KEYS } from "../../shared/devchain/anvil.ts";
import { startTransferStack, waitForNotes, randomAddress, HOT, type TransferStack } from "../helpers/transfer-stack.ts";

const BIN = path.resolve(import.meta.dirname, "../../bin/payment.mjs");
const DENIED = randomAddress();
let s: TransferStack;
let hot2: string;

before(async () => {
  s = await startTransferStack({
    config: (c) => ({
      ...c,
      policy: {
        per_request_cap: { USDT: "1000" },
        velocity_24h_per_wallet: { USDT: "1500" },
        velocity_24h_total: { "ETH:USDT": "1700" },
        approval_threshold: { USDT: "100" },
        deny_list: [DENIED.toUpperCase().replace("0X", "0x")],
      },
    }),
  });
  hot2 = await s.importWallet(ANVIL_KEYS[3]!, "hot");
  await s.mint(hot2, 10_000_000_000n);
  s.startMining(100);
});

after(async () => {
  await s?.stop();
});

function operator(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args, "--config", s.configFile()], { env: { ...process.env, PAYMENT_OPERATOR: "alice" }, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, stdout, stderr }));
  });
}

const withdraw = (queueId: string, to: string, amount: string, from = HOT) =>
  s.biz.send("withdraw", { queue_id: queueId, from_address: from, to_address: to, amount, chain: "ETH", symbol: "USDT", timestamp: nowS() });
const policyEvents = (queueId: string) => s.env.db.prisma.auditEvent.findMany({ where: { queueId, event: { startsWith: "policy." } }, orderBy: { id: "asc" } });

test("above the per-request cap: status 0 policy_rejected, nothing signed, the decision audited", async () => {
  const to = randomAddress();
  await withdraw("w-cap", to, "1000.5");
  const n = await s.biz.waitFor("withdraw", (x) => x.queue_id === "w-cap", 30_000);
  assert.equal(n.status, 0);
  assert.equal(n.error, "policy_rejected");
  assert.match(String(n.error_message), /per-request cap 1000/);
  assert.equal(await s.env.db.prisma.txAttempt.count({ where: { transfer: { queueId: "w-cap" } } }), 0);
  const [e] = await policyEvents("w-cap");
  assert.equal(e!.event, "policy.rejected");
  assert.equal(JSON.parse(e!.data!).rule, "per_request_cap");
});

test("a destination on the deny list is refused", async () => {
  await withdraw("w-deny", DENIED, "1");
  const n = await s.biz.waitFor("withdraw", (x) => x.queue_id === "w-deny", 30_000);
  assert.equal(n.error, "policy_rejected");
  assert.match(String(n.error_message), /deny list/);
  assert.equal(await s.usdtOf(DENIED), 0n);
});

test("above the approval threshold a transfer waits; `payment approve` sends it", async () => {
  const to = randomAddress();
  await withdraw("w-big", to, "150");
  await eventually(async () => (await s.env.db.prisma.transfer.findFirst({ where: { queueId: "w-big" } }))?.state === "awaiting_approval", 30_000);
  await new Promise((r) => setTimeout(r, 500));
  assert.equal(s.biz.received("withdraw").filter((n) => n.queue_id === "w-big").length, 0, "nothing reported while held");
  assert.equal(await s.usdtOf(to), 0n);

  const r = await operator(["approve", "w-big"]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /approved; it will be sent/);
  const final = await s.biz.waitFor("withdraw", (x) => x.queue_id === "w-big" && x.status !== 2, 60_000);
  assert.equal(final.status, 1);
  assert.equal(await s.usdtOf(to), 150_000_000n);
  const t = await s.env.db.prisma.transfer.findFirst({ where: { queueId: "w-big" } });
  assert.equal(t?.approvedBy, "operator:alice");
  assert.deepEqual((await policyEvents("w-big")).map((e) => e.event), ["policy.held", "policy.approved", "policy.allowed"]);
  const approvedBy = (await policyEvents("w-big")).find((e) => e.event === "policy.approved")!.actor;
  assert.equal(approvedBy, "operator:alice");

  const again = await operator(["approve", "w-big"]);
  assert.equal(again.code, 1, "nothing left to approve");
});

test("`payment reject --order` refuses one held order of a batch; the others go", async () => {
  const [a, b] = [randomAddress(), randomAddress()];
  await s.biz.send("pay", {
    queue_id: "p-mixed",
    from_address: HOT,
    chain: "ETH",
    symbol: "USDT",
    transactions: [
      { order_id: "o-held", to_address: a, amount: "120" },
      { order_id: "o-small", to_address: b, amount: "5" },
    ],
    timestamp: nowS(),
  });
  await s.biz.waitFor("pay", (x) => x.queue_id === "p-mixed" && x.order_id === "o-small" && x.status === 1, 60_000);
  await eventually(async () => (await s.env.db.prisma.transfer.findFirst({ where: { queueId: "p-mixed", orderId: "o-held" } }))?.state === "awaiting_approval");
  const r = await operator(["reject", "p-mixed", "--order", "o-held", "--reason", "not expected"]);
  assert.equal(r.code, 0, r.stderr);
  const n = await s.biz.waitFor("pay", (x) => x.queue_id === "p-mixed" && x.order_id === "o-held", 30_000);
  assert.equal(n.status, 0);
  assert.equal(n.error, "policy_rejected");
  assert.match(String(n.error_message), /not expected/);
  assert.equal(await s.usdtOf(a), 0n);
  assert.equal(await s.usdtOf(b), 5_000_000n);
});

test("the rolling 24 h limit per wallet stops a batch exactly where it would be exceeded", async () => {
  // used so far from HOT: 150 + 5 = 155; limit 1500; 13 x 99 fit (1442), the 14th would not
  const orders = Array.from({ length: 15 }, (_, i) => ({ order_id: `v${i}`, to_address: randomAddress(), amount: "99" }));
  await s.biz.send("pay", { queue_id: "p-velocity", from_address: HOT, chain: "ETH", symbol: "USDT", transactions: orders, timestamp: nowS() });
  const ok = await waitForNotes(s.biz, "pay", 1, 13, (q) => q === "p-velocity", 90_000);
  const refused = await waitForNotes(s.biz, "pay", 0, 2, (q) => q === "p-velocity", 30_000);
  assert.deepEqual(ok.map((n) => n.order_id).sort(), orders.slice(0, 13).map((o) => o.order_id).sort());
  assert.deepEqual(refused.map((n) => n.order_id).sort(), ["v13", "v14"]);
  for (const n of refused) {
    assert.equal(n.error, "policy_rejected");
    assert.match(String(n.error_message), /sending wallet's 24 h total/);
  }
  for (const o of orders.slice(13)) assert.equal(await s.usdtOf(o.to_address), 0n);
});

test("the rolling 24 h limit across all wallets stops another wallet too", async () => {
  // total so far 1442; limit 1700: two more of 99 from another wallet fit (1640), a third would not
  const orders = Array.from({ length: 3 }, (_, i) => ({ order_id: `t${i}`, to_address: randomAddress(), amount: "99" }));
  await s.biz.send("pay", { queue_id: "p-total", from_address: hot2, chain: "ETH", symbol: "USDT", transactions: orders, timestamp: nowS() });
  const ok = await waitForNotes(s.biz, "pay", 1, 2, (q) => q === "p-total", 90_000);
  const [refused] = await waitForNotes(s.biz, "pay", 0, 1, (q) => q === "p-total", 30_000);
  assert.deepEqual(ok.map((n) => n.order_id).sort(), ["t0", "t1"]);
  assert.equal(refused!.order_id, "t2");
  assert.match(String(refused!.error_message), /24 h total of all wallets/);
});

test("every withdraw/pay transfer has its policy decision in the audit trail", async () => {
  const transfers = await s.env.db.prisma.transfer.findMany({ where: { kind: { in: ["withdraw", "pay"] } } });
  for (const t of transfers) {
    const decisions = await s.env.db.prisma.auditEvent.count({ where: { subjectType: "transfer", subjectId: t.id, event: { startsWith: "policy." } } });
    assert.ok(decisions >= 1, `transfer ${t.queueId}/${t.orderId} has no policy decision`);
  }
  assert.ok(s.biz.allSigned());
});
