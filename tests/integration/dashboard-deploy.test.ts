/**
 * deploy/prometheus/alerts.yml and deploy/grafana/payment-dashboard.json:
 * parsed, every expression names only metrics the gateway exports (with the
 * labels those metrics have), and the seed system's thresholds are there.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import path from "node:path";
import YAML from "yaml";
import { createMetrics } from "../../shared/metrics.ts";
import { registerDashboardMetrics } from "../../workers/dashboard/global-gauges.ts";
import { GATEWAY_METRICS } from "../helpers/metric-names.ts";

const ROOT = path.resolve(import.meta.dirname, "../..");
const read = (f: string) => readFileSync(path.join(ROOT, f), "utf8");

/** Every exported series name with its label names (histograms expanded). */
async function knownMetrics(): Promise<Map<string, Set<string>>> {
  const metrics = createMetrics();
  registerDashboardMetrics(metrics);
  const out = new Map<string, Set<string>>();
  // labels Prometheus adds when scraping
  const target = ["job", "instance", "role"];
  for (const m of await metrics.registry.getMetricsAsJSON()) {
    const metric = metrics.registry.getSingleMetric(m.name) as unknown as { labelNames: string[] };
    const labels = new Set([...metric.labelNames, ...target]);
    const names = String(m.type) === "histogram" ? [`${m.name}_bucket`, `${m.name}_sum`, `${m.name}_count`] : [m.name];
    for (const n of names) out.set(n, n.endsWith("_bucket") ? new Set([...labels, "le"]) : labels);
  }
  out.set("up", new Set(target));
  return out;
}

const PROMQL_WORDS = new Set(["by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset", "and", "or", "unless", "inf", "nan"]);

/** Metric selectors of a PromQL expression: name and the label names it matches on. */
function selectors(expr: string): { name: string; labels: string[] }[] {
  const s = expr
    .replace(/"(?:[^"\\]|\\.)*"/g, '""')
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, " ")
    .replace(/\[[^\]]*\]/g, " ");
  const out: { name: string; labels: string[] }[] = [];
  for (const m of s.matchAll(/(?<![\w.:])([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(\{[^}]*\})?/g)) {
    const [, name, matchers] = m;
    const rest = s.slice(m.index! + m[0].length);
    if (!matchers && /^\s*\(/.test(rest)) continue; // a function or aggregation
    if (PROMQL_WORDS.has(name!.toLowerCase())) continue;
    const labels = matchers ? [...matchers.matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)/g)].map((x) => x[1]!) : [];
    out.push({ name: name!, labels });
  }
  return out;
}

function checkExpr(where: string, expr: string, known: Map<string, Set<string>>) {
  const sels = selectors(expr);
  assert.ok(sels.length > 0, `${where}: no metric in ${expr}`);
  for (const { name, labels } of sels) {
    const allowed = known.get(name);
    assert.ok(allowed, `${where}: unknown metric ${name} in ${expr}`);
    for (const l of labels) assert.ok(allowed.has(l), `${where}: ${name} has no label ${l}`);
  }
}

interface Rule {
  alert: string;
  expr: string;
  for?: string;
  labels: { severity: string };
  annotations: { summary: string };
}

const rules = (YAML.parse(read("deploy/prometheus/alerts.yml")) as { groups: { name: string; rules: Rule[] }[] }).groups.flatMap((g) => g.rules);
const byName = new Map(rules.map((r) => [r.alert, r]));

test("the expression parser finds metric names and labels, and misses nothing", () => {
  assert.deepEqual(selectors('sum by (chain) (rate(payment_x_total{status!~"a|b", job="j"}[5m])) / up > 0.05 and on(chain) other_metric'), [
    { name: "payment_x_total", labels: ["status", "job"] },
    { name: "up", labels: [] },
    { name: "other_metric", labels: [] },
  ]);
  assert.throws(() => checkExpr("t", "rate(payment_not_a_metric[5m]) > 1", new Map([["up", new Set()]])), /unknown metric payment_not_a_metric/);
  assert.throws(() => checkExpr("t", 'up{nolabel="x"}', new Map([["up", new Set(["job"])]])), /has no label nolabel/);
});

test("every alert rule is well-formed and names only exported metrics and labels", async () => {
  const known = await knownMetrics();
  assert.ok(rules.length >= 10);
  for (const r of rules) {
    assert.match(r.alert, /^Payment[A-Za-z]+$/);
    assert.ok(["warning", "critical"].includes(r.labels.severity), `${r.alert} severity`);
    assert.ok(r.annotations.summary.length > 0, `${r.alert} summary`);
    if (r.for !== undefined) assert.match(r.for, /^\d+[smh]$/);
    checkExpr(r.alert, r.expr, known);
  }
  assert.equal(new Set(rules.map((r) => r.alert)).size, rules.length, "alert names are unique");
});

test("the seed system's thresholds and the required alerts are present", () => {
  const expr = (name: string) => byName.get(name)?.expr.replace(/\s+/g, " ") ?? assert.fail(`missing alert ${name}`);
  const sev = (name: string) => byName.get(name)!.labels.severity;
  assert.match(expr("PaymentPendingConfirmationsHigh"), /payment_pending_confirmations.*> 100$/);
  assert.equal(sev("PaymentPendingConfirmationsHigh"), "warning");
  assert.match(expr("PaymentPendingConfirmationsCritical"), /payment_pending_confirmations.*> 500$/);
  assert.equal(sev("PaymentPendingConfirmationsCritical"), "critical");
  assert.match(expr("PaymentTransferFailureRateHigh"), /payment_transfers_total\{status!~"sent\|confirmed\|cancelled"\}.*\/.*payment_transfers_total.*\) > 0\.05 and/);
  assert.equal(sev("PaymentTransferFailureRateHigh"), "warning");
  assert.match(expr("PaymentTransferFailureRateCritical"), /\) > 0\.10 and/);
  assert.equal(sev("PaymentTransferFailureRateCritical"), "critical");
  assert.match(expr("PaymentChainLagging"), /payment_chain_lag_blocks/);
  assert.match(expr("PaymentQueueBacklog"), /payment_queue_jobs\{[^}]*state=~"waiting\|prioritized"/);
  assert.match(expr("PaymentOutboxBacklog"), /payment_outbox_pending/);
  assert.match(expr("PaymentTargetDown"), /^up\{job=~"payment-\.\*"\} == 0$/);
  assert.match(expr("PaymentDependencyDown"), /payment_dependency_up/);
});

test("the Grafana dashboard parses, covers every gateway metric, and its queries name exported metrics", async () => {
  const known = await knownMetrics();
  const dash = JSON.parse(read("deploy/grafana/payment-dashboard.json")) as {
    uid: string;
    title: string;
    templating: { list: { name: string; type: string }[] };
    panels: { id: number; type: string; title: string; datasource?: { uid: string }; targets?: { expr: string; refId: string }[] }[];
  };
  assert.equal(dash.uid, "payment-gateway");
  assert.ok(dash.templating.list.some((v) => v.name === "datasource" && v.type === "datasource"));
  const panels = dash.panels.filter((p) => p.type !== "row");
  assert.equal(new Set(dash.panels.map((p) => p.id)).size, dash.panels.length, "panel ids are unique");
  const used = new Set<string>();
  for (const p of panels) {
    assert.ok(p.targets?.length, `${p.title} has a query`);
    assert.equal(p.datasource?.uid, "${datasource}", `${p.title} uses the datasource variable`);
    for (const t of p.targets!) {
      checkExpr(`panel ${p.title}`, t.expr, known);
      for (const s of selectors(t.expr)) used.add(s.name);
    }
  }
  for (const name of GATEWAY_METRICS) {
    assert.ok(used.has(name), `a panel shows ${name}`);
  }
});
