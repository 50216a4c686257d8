/**
 * Withdrawal policy decisions: a table of each rule, then properties: a
 * transfer is never allowed past a cap or velocity limit, a held transfer is
 * always above the threshold, approval lifts only the threshold; cap and
 * threshold look at the request's total, never at one order alone.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { decide, policyLimits, type PolicyConfig } from "../../shared/domain/policy.ts";

const A = "0x" + "aa".repeat(20);
const B = "0x" + "bb".repeat(20);
const base: PolicyConfig = { per_request_cap: {}, velocity_24h_per_wallet: {}, velocity_24h_total: {}, approval_threshold: {}, deny_list: [] };
const none = { wallet: 0n, total: 0n };

describe("policyLimits", () => {
  it("reads per-symbol limits, chain:symbol wins, exact units", () => {
    const l = policyLimits({ ...base, per_request_cap: { USDT: "100.5", "ETH:USDT": "50" }, approval_threshold: { USDT: "10" } }, "ETH", "USDT", 6);
    assert.equal(l.perRequestCap, 50_000_000n);
    assert.equal(l.approvalThreshold, 10_000_000n);
    assert.equal(l.velocityTotal, null);
    const other = policyLimits({ ...base, per_request_cap: { USDT: "100.5", "ETH:USDT": "50" } }, "BSC", "USDT", 6);
    assert.equal(other.perRequestCap, 100_500_000n);
  });
  it("refuses a limit finer than the asset", () => {
    assert.throws(() => policyLimits({ ...base, per_request_cap: { USDT: "0.0000001" } }, "ETH", "USDT", 6));
  });
});

describe("decide: one rule at a time", () => {
  const cases: [string, PolicyConfig, { amount: bigint; requestTotal?: bigint; to: string; approved: boolean }, { wallet: bigint; total: bigint }, string][] = [
    ["no limits", base, { amount: 10n ** 30n, to: A, approved: false }, none, "allow"],
    ["deny list (any case)", { ...base, deny_list: [A.toUpperCase().replace("0X", "0x")] }, { amount: 1n, to: A, approved: true }, none, "reject:deny_list"],
    ["allow list miss", { ...base, allow_list: [B] }, { amount: 1n, to: A, approved: false }, none, "reject:allow_list"],
    ["allow list hit", { ...base, allow_list: [A] }, { amount: 1n, to: A, approved: false }, none, "allow"],
    ["cap: equal is allowed", { ...base, per_request_cap: { USDT: "1" } }, { amount: 1_000_000n, to: A, approved: false }, none, "allow"],
    ["cap: above", { ...base, per_request_cap: { USDT: "1" } }, { amount: 1_000_001n, to: A, approved: true }, none, "reject:per_request_cap"],
    ["wallet velocity", { ...base, velocity_24h_per_wallet: { USDT: "10" } }, { amount: 2_000_000n, to: A, approved: false }, { wallet: 9_000_000n, total: 9_000_000n }, "reject:velocity_24h_per_wallet"],
    ["wallet velocity exactly full", { ...base, velocity_24h_per_wallet: { USDT: "10" } }, { amount: 1_000_000n, to: A, approved: false }, { wallet: 9_000_000n, total: 0n }, "allow"],
    ["total velocity", { ...base, velocity_24h_total: { USDT: "10" } }, { amount: 2_000_000n, to: A, approved: false }, { wallet: 0n, total: 9_000_000n }, "reject:velocity_24h_total"],
    ["threshold holds", { ...base, approval_threshold: { USDT: "5" } }, { amount: 5_000_001n, to: A, approved: false }, none, "hold:approval_threshold"],
    ["threshold: approved passes", { ...base, approval_threshold: { USDT: "5" } }, { amount: 5_000_001n, to: A, approved: true }, none, "allow"],
    ["cap: one small order of a request over the cap", { ...base, per_request_cap: { USDT: "100" } }, { amount: 60_000_000n, requestTotal: 180_000_000n, to: A, approved: false }, none, "reject:per_request_cap"],
    ["threshold: three orders of 60 with a threshold of 100", { ...base, approval_threshold: { USDT: "100" } }, { amount: 60_000_000n, requestTotal: 180_000_000n, to: A, approved: false }, none, "hold:approval_threshold"],
    ["threshold: an approved order of a held request passes", { ...base, approval_threshold: { USDT: "100" } }, { amount: 60_000_000n, requestTotal: 180_000_000n, to: A, approved: true }, none, "allow"],
    ["velocity before holding", { ...base, approval_threshold: { USDT: "5" }, velocity_24h_total: { USDT: "6" } }, { amount: 5_500_000n, to: A, approved: false }, { wallet: 0n, total: 1_000_000n }, "reject:velocity_24h_total"],
  ];
  for (const [name, cfg, subject, usage, want] of cases) {
    it(name, () => {
      const d = decide({ ...subject, requestTotal: subject.requestTotal ?? subject.amount }, policyLimits(cfg, "ETH", "USDT", 6), usage);
      assert.equal(d.action === "allow" ? "allow" : `${d.action}:${d.rule}`, want);
      if (d.action !== "allow") assert.ok(d.detail.length > 0);
    });
  }
});

describe("decide: properties", () => {
  const opt = fc.option(fc.bigInt({ min: 0n, max: 10n ** 12n }), { nil: undefined });
  const units = fc.bigInt({ min: 1n, max: 10n ** 12n });
  const text = (u: bigint | undefined): Record<string, string> => (u === undefined ? {} : { USDT: (Number(u) / 1e6).toFixed(6) });
  it("never allows past a cap or velocity limit; holds only above the threshold; approval lifts only the threshold", () => {
    fc.assert(
      fc.property(opt, opt, opt, opt, units, fc.bigInt({ min: 0n, max: 10n ** 12n }), fc.bigInt({ min: 0n, max: 10n ** 12n }), fc.bigInt({ min: 0n, max: 10n ** 12n }), fc.boolean(), (cap, vw, vt, th, amount, others, uw, ut, approved) => {
        const cfg = { ...base, per_request_cap: text(cap), velocity_24h_per_wallet: text(vw), velocity_24h_total: text(vt), approval_threshold: text(th) };
        const limits = policyLimits(cfg, "ETH", "USDT", 6);
        const requestTotal = amount + others;
        const d = decide({ amount, requestTotal, to: A, approved }, limits, { wallet: uw, total: ut });
        if (d.action === "allow") {
          if (limits.perRequestCap !== null) assert.ok(requestTotal <= limits.perRequestCap);
          if (limits.velocityPerWallet !== null) assert.ok(uw + amount <= limits.velocityPerWallet);
          if (limits.velocityTotal !== null) assert.ok(ut + amount <= limits.velocityTotal);
          if (!approved && limits.approvalThreshold !== null) assert.ok(requestTotal <= limits.approvalThreshold);
        }
        if (d.action === "hold") {
          assert.ok(!approved && limits.approvalThreshold !== null && requestTotal > limits.approvalThreshold);
        }
        const asApproved = decide({ amount, requestTotal, to: A, approved: true }, limits, { wallet: uw, total: ut });
        if (d.action === "reject") assert.deepEqual(asApproved, d, "approval does not lift hard limits");
        if (d.action === "hold") assert.equal(asApproved.action, "allow");
      }),
    );
  });
});
