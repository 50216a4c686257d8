/**
 * phaseClock: each mark observes the time since the previous one under its
 * phase (the sender's payment_sender_phase_seconds, read by BENCHMARKS.md send).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { createMetrics, phaseClock } from "../../shared/metrics.ts";

test("each mark observes the time since the previous mark, under its phase and chain", async () => {
  const metrics = createMetrics({ defaults: false });
  const mark = phaseClock(metrics, "ETH");
  await new Promise((r) => setTimeout(r, 30));
  mark("node");
  mark("sign");
  const values = (await metrics.senderPhase.get()).values;
  const of = (phase: string, suffix: string) => values.find((v) => v.metricName === `payment_sender_phase_seconds_${suffix}` && v.labels.phase === phase && v.labels.chain === "ETH")?.value;
  assert.equal(of("node", "count"), 1);
  assert.equal(of("sign", "count"), 1);
  assert.ok(of("node", "sum")! >= 0.025, `node took the 30 ms wait: ${of("node", "sum")}`);
  assert.ok(of("sign", "sum")! < 0.025, `sign starts where node ended: ${of("sign", "sum")}`);
});
