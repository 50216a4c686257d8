/**
 * When a send job that found its wallet's lease held looks again
 * (send-transfer.ts earlyLookDelay): at once when the drain has handled its
 * transfer's id, at about the drain's pace otherwise, on its own doubling
 * schedule without progress, and never later than the cap.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { earlyLookDelay } from "../../workers/transfer-sender/send-transfer.ts";

const mid = () => 0.5;

test("a transfer the drain has reached is read now", () => {
  assert.equal(earlyLookDelay(100n, "100:0.900", 1, mid), null);
  assert.equal(earlyLookDelay(7n, "100:0.900", 3, mid), null);
});

test("a transfer ahead of the drain looks again about when the drain reaches it", () => {
  // 200 ids ahead at 0.9 ms per id: 180 ms, jittered by up to a fifth plus 50 ms
  const d = earlyLookDelay(300n, "100:0.900", 1, mid)!;
  assert.equal(d, 180 * 1.1 + 25);
  // close ahead: at least 100 ms
  assert.equal(earlyLookDelay(101n, "100:0.900", 1, () => 0), 100);
  // far ahead: capped at 10 s (plus jitter)
  assert.equal(earlyLookDelay(10_000_000n, "100:0.900", 1, () => 0), 10_000);
});

test("without progress (or a malformed one) the delay doubles with each run, from 0.5 s up to 4 s", () => {
  for (const progress of [null, "", "x:1", "100", "100:", "-1:2", "1:2:3"]) {
    assert.deepEqual(
      [1, 2, 3, 4, 5, 9].map((runs) => earlyLookDelay(5n, progress, runs, () => 0)),
      [500, 1000, 2000, 4000, 4000, 4000],
      String(progress),
    );
  }
});

test("any id, progress and run count: null only at or below the drain's id, else a delay within [100 ms, 12.1 s]", () => {
  fc.assert(
    fc.property(fc.bigInt({ min: 1n, max: 1n << 60n }), fc.bigInt({ min: 0n, max: 1n << 60n }), fc.double({ min: 0, max: 1e6, noNaN: true }), fc.integer({ min: 0, max: 1000 }), fc.double({ min: 0, max: 0.999, noNaN: true }), (id, last, pace, runs, r) => {
      const d = earlyLookDelay(id, `${last}:${pace.toFixed(3)}`, runs, () => r);
      if (id <= last) assert.equal(d, null);
      else {
        assert.ok(d !== null && d >= 100 && d <= 10_000 * 1.2 + 50, String(d));
      }
    }),
  );
});
