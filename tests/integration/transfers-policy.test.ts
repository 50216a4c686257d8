/**
 * The withdrawal policy end to end: per-request cap, destination deny list,
 * approval threshold with `payment approve` / `payment reject` run as an
 * operator would, rolling 24 h velocity per wallet and overall. Refusals
 * reach the business system as status 0 `policy_rejected`; every decision
 * is in the audit trail. Cap and threshold apply to a request's total: a
 * pay batch split into small orders bypasses nothing (SPEC §7).
 */
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { nowS, eventually } from "../helpers/rabbit.ts";
import { ANVIL_KEYS } from "../../shared/devchain/anvil.ts";
import { createLogger } from "../../shared/logger.ts";
import { createTransferSender } from "../../workers/transfer-sender/main.ts";
import { startTransferStack, waitForNotes, randomAddress, HOT, type TransferStack } from "../helpers/transfer-stack.ts";
import { runPayment } from "../helpers/payment-cli.ts";

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

const operator = (args: string[]) => runPayment([...args, "--config", s.configFile()], { env: { ...process.env, PAYMENT_OPERATOR: "alice" } });

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
  // a transition's notification is written with it, in one transaction: none was
  assert.equal(await s.env.db.prisma.notification.count({ where: { queueId: "w-big" } }), 0, "nothing reported while held");
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

test("a pay batch of three orders of 60 under a threshold of 100 waits for an operator as a whole (the threshold is on the request's total)", async () => {
  const orders = ["s0", "s1", "s2"].map((order_id) => ({ order_id, to_address: randomAddress(), amount: "60" }));
  await s.biz.send("pay", { queue_id: "p-split", from_address: HOT, chain: "ETH", symbol: "USDT", transactions: orders, timestamp: nowS() });
  // every order decided (none left queued): held, or signed and on its way
  const rows = await eventually(async () => {
    const r = await s.env.db.prisma.transfer.findMany({ where: { queueId: "p-split" } });
    return r.length === 3 && r.every((t) => t.state !== "queued") ? r : null;
  }, 30_000);
  assert.deepEqual(rows.map((t) => t.state), ["awaiting_approval", "awaiting_approval", "awaiting_approval"]);
  for (const e of await policyEvents("p-split")) assert.match(JSON.parse(e.data!).detail, /request's total 180 is above the approval threshold 100/);
  for (const o of orders) assert.equal(await s.usdtOf(o.to_address), 0n);
  // the operator refuses the batch: each order ends status 0 once, nothing was ever reported before
  const r = await operator(["reject", "p-split", "--reason", "split to dodge the threshold"]);
  assert.equal(r.code, 0, r.stderr);
  const refused = await waitForNotes(s.biz, "pay", 0, 3, (q) => q === "p-split", 30_000);
  assert.ok(refused.every((n) => n.error === "policy_rejected"));
  assert.equal(s.biz.received("pay").filter((n) => n.queue_id === "p-split").length, 3, "no status 2 before the refusal");
});

test("a pay batch over the per-request cap in total is refused as a whole, though every order is under it", async () => {
  const orders = Array.from({ length: 3 }, (_, i) => ({ order_id: `c${i}`, to_address: randomAddress(), amount: "400" }));
  await s.biz.send("pay", { queue_id: "p-over-cap", from_address: HOT, chain: "ETH", symbol: "USDT", transactions: orders, timestamp: nowS() });
  const refused = await waitForNotes(s.biz, "pay", 0, 3, (q) => q === "p-over-cap", 30_000);
  for (const n of refused) {
    assert.equal(n.error, "policy_rejected");
    assert.match(String(n.error_message), /request's total 1200 is above the per-request cap 1000/);
  }
  assert.equal(s.biz.received("pay").filter((n) => n.queue_id === "p-over-cap").length, 3);
  for (const o of orders) assert.equal(await s.usdtOf(o.to_address), 0n);
});

test("`payment reject --order` refuses one order of a held batch; `payment approve --order` sends another", async () => {
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
  // the request's total (125) is above the threshold: both orders wait
  await eventually(async () => (await s.env.db.prisma.transfer.count({ where: { queueId: "p-mixed", state: "awaiting_approval" } })) === 2, 30_000);
  const r = await operator(["reject", "p-mixed", "--order", "o-held", "--reason", "not expected"]);
  assert.equal(r.code, 0, r.stderr);
  const n = await s.biz.waitFor("pay", (x) => x.queue_id === "p-mixed" && x.order_id === "o-held", 30_000);
  assert.equal(n.status, 0);
  assert.equal(n.error, "policy_rejected");
  assert.match(String(n.error_message), /not expected/);
  const ok = await operator(["approve", "p-mixed", "--order", "o-small"]);
  assert.equal(ok.code, 0, ok.stderr);
  await s.biz.waitFor("pay", (x) => x.queue_id === "p-mixed" && x.order_id === "o-small" && x.status === 1, 60_000);
  assert.equal(await s.usdtOf(a), 0n);
  assert.equal(await s.usdtOf(b), 5_000_000n);
});

test("the rolling 24 h limit per wallet stops a run of withdrawals exactly where it would be exceeded", async () => {
  // used so far from HOT: 150 + 5 = 155; limit 1500; 13 x 99 fit (1442), a 14th would not.
  // Separate requests, each under the threshold: velocity adds them up as they are signed (in the
  // order the sender finds them queued, which the bridge's batches need not keep).
  const orders = Array.from({ length: 15 }, (_, i) => ({ queue_id: `w-velocity-${String(i).padStart(2, "0")}`, to: randomAddress() }));
  for (const o of orders) await withdraw(o.queue_id, o.to, "99");
  const ok = await waitForNotes(s.biz, "withdraw", 1, 13, (q) => q.startsWith("w-velocity-"), 90_000);
  const refused = await waitForNotes(s.biz, "withdraw", 0, 2, (q) => q.startsWith("w-velocity-"), 30_000);
  assert.equal(new Set([...ok, ...refused].map((n) => n.queue_id)).size, 15, "each request ends once");
  for (const n of refused) {
    assert.equal(n.error, "policy_rejected");
    assert.match(String(n.error_message), /sending wallet's 24 h total/);
    assert.equal(await s.usdtOf(orders.find((o) => o.queue_id === n.queue_id)!.to), 0n);
  }
});

test("the rolling 24 h limit across all wallets stops another wallet too", async () => {
  // total so far 1442; limit 1700: two more of 99 from another wallet fit (1640), a third would not
  const orders = Array.from({ length: 3 }, (_, i) => ({ queue_id: `w-total-${i}`, to: randomAddress() }));
  for (const o of orders) await withdraw(o.queue_id, o.to, "99", hot2);
  const ok = await waitForNotes(s.biz, "withdraw", 1, 2, (q) => q.startsWith("w-total-"), 90_000);
  const [refused] = await waitForNotes(s.biz, "withdraw", 0, 1, (q) => q.startsWith("w-total-"), 30_000);
  assert.equal(new Set([...ok, refused!].map((n) => n.queue_id)).size, 3, "each request ends once");
  assert.match(String(refused!.error_message), /24 h total of all wallets/);
  assert.equal(await s.usdtOf(orders.find((o) => o.queue_id === refused!.queue_id)!.to), 0n);
});

test("every withdraw/pay transfer has its policy decision in the audit trail", async () => {
  const transfers = await s.env.db.prisma.transfer.findMany({ where: { kind: { in: ["withdraw", "pay"] } } });
  for (const t of transfers) {
    const decisions = await s.env.db.prisma.auditEvent.count({ where: { subjectType: "transfer", subjectId: t.id, event: { startsWith: "policy." } } });
    assert.ok(decisions >= 1, `transfer ${t.queueId}/${t.orderId} has no policy decision`);
  }
  assert.ok(s.biz.allSigned());
});

test("at start the transfer-sender warns about the assets its hot wallets can send with no velocity limit", async () => {
  const lines: string[] = [];
  const logger = createLogger({ level: "warn", destination: { write: (l: string) => void lines.push(l) } });
  const sender = createTransferSender({ ...s.env, logger, masterKey: s.env.masterKey });
  await sender.start();
  try {
    const warned = lines.map((l) => JSON.parse(l) as { msg: string; assets?: string[] }).find((l) => /without any velocity limit/.test(l.msg));
    // USDT has both limits here; the chain's native coin has none
    assert.deepEqual(warned?.assets, ["ETH:ETH"]);
  } finally {
    await sender.stop();
  }
});
