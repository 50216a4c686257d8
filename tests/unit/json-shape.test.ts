/**
 * jsonShapeProblem (SPEC §3 "Limits on input"): the bounded, non-recursive
 * look at depth and duplicated keys that runs before any parser does.
 * Checked against an independent oracle (JSON.parse with a depth count, and
 * a key count from JSON.parse's reviver-free walk of the source objects).
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { jsonShapeProblem } from "../../shared/domain/json-shape.ts";

const RUNS = Number(process.env.PROPERTY_RUNS ?? 400);

function depthOf(v: unknown): number {
  if (Array.isArray(v)) return 1 + Math.max(0, ...v.map(depthOf));
  if (v && typeof v === "object") return 1 + Math.max(0, ...Object.values(v).map(depthOf));
  return 0;
}

describe("jsonShapeProblem", () => {
  it("depth: refuses exactly the texts that nest deeper than the limit", () => {
    fc.assert(
      fc.property(fc.jsonValue({ maxDepth: 12 }), fc.integer({ min: 1, max: 10 }), (value, limit) => {
        const text = JSON.stringify(value);
        const problem = jsonShapeProblem(text, limit);
        const deep = depthOf(value) > limit;
        assert.equal(problem?.problem === "too_deep", deep, text);
        if (!deep) assert.equal(problem, null, text);
      }),
      { numRuns: RUNS },
    );
  });

  it("duplicated keys: found at any depth, however the key is spelt", () => {
    const key = fc.string({ unit: "grapheme", minLength: 1, maxLength: 6 });
    fc.assert(
      fc.property(fc.dictionary(key, fc.jsonValue({ maxDepth: 2 }), { minKeys: 1, maxKeys: 6 }), fc.nat(), fc.boolean(), fc.integer({ min: 0, max: 2 }), (obj, pick, escape, wrap) => {
        const keys = Object.keys(obj);
        const k = keys[pick % keys.length]!;
        // the same key again, possibly written with \u escapes for every character
        const spelt = escape ? `"${Array.from({ length: k.length }, (_, i) => `\\u${k.charCodeAt(i).toString(16).padStart(4, "0")}`).join("")}"` : JSON.stringify(k);
        const inner = `${JSON.stringify(obj).slice(0, -1)},${spelt}:${JSON.stringify(obj[k])}}`;
        const text = wrap === 0 ? inner : wrap === 1 ? `{"a":[1,${inner}]}` : `[${inner}]`;
        assert.equal(jsonShapeProblem(text, 8)?.problem, "duplicate_key", text);
        // and without the repeat, nothing to say
        assert.equal(jsonShapeProblem(JSON.stringify(obj), 8), null);
      }),
      { numRuns: RUNS },
    );
  });

  it("the same key in sibling objects, or as a value, is not a duplicate", () => {
    assert.equal(jsonShapeProblem('{"a":{"k":1},"b":{"k":2},"c":"a","d":["a","a"]}', 8), null);
    assert.equal(jsonShapeProblem('[{"order_id":"o1"},{"order_id":"o2"}]', 8), null);
  });

  it("brackets, braces and quotes inside strings do not count", () => {
    assert.equal(jsonShapeProblem(JSON.stringify({ a: "[[[[[[[[[[{{{{{{{{{{\\\"", b: '"a":1,"a":2' }), 2), null);
  });

  it("a megabyte of brackets is answered without recursion", () => {
    assert.equal(jsonShapeProblem("[".repeat(1 << 20), 8)?.problem, "too_deep");
    assert.equal(jsonShapeProblem(`{"a":${'{"a":'.repeat(200_000)}1${"}".repeat(200_000)}}`, 8)?.problem, "too_deep");
  });
});
