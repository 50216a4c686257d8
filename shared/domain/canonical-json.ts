/**
 * Canonical JSON for signatures (SPEC §3): object keys sorted by Unicode code
 * point at every depth, no whitespace, strings and numbers as JSON writes
 * them.
 *
 * Numbers parsed losslessly (LosslessNumber) can be rendered two ways:
 * - "js": the way JSON.stringify writes the number's value (`200.0` -> `200`),
 *   which is what a sender that canonicalises its own in-memory object gets;
 * - "literal": the exact text that was received (`200.0`), which is what a
 *   sender that keeps numbers as decimal text gets.
 * Verification accepts either (both are keyed HMACs of the same message).
 */
import { isLosslessNumber } from "lossless-json";

export type NumberStyle = "js" | "literal";

/** Compare two strings by Unicode code point (not UTF-16 code unit). */
export function compareCodePoints(a: string, b: string): number {
  const ia = a[Symbol.iterator]();
  const ib = b[Symbol.iterator]();
  for (;;) {
    const x = ia.next();
    const y = ib.next();
    if (x.done) return y.done ? 0 : -1;
    if (y.done) return 1;
    const cx = x.value.codePointAt(0)!;
    const cy = y.value.codePointAt(0)!;
    if (cx !== cy) return cx < cy ? -1 : 1;
  }
}

function renderNumber(text: string, style: NumberStyle): string {
  if (style === "literal") return text;
  const n = Number(text);
  // JSON has no Infinity/NaN; a literal that overflows a double keeps its text.
  return Number.isFinite(n) ? JSON.stringify(n) : text;
}

/**
 * Canonical text of a JSON value. Accepts plain JS values and values parsed by
 * lossless-json. `undefined` object members are skipped, as JSON.stringify does.
 *
 * @example canonicalize({b: 1, a: [true, "x"]}) // '{"a":[true,"x"],"b":1}'
 */
export function canonicalize(value: unknown, style: NumberStyle = "js"): string {
  if (value === null) return "null";
  if (isLosslessNumber(value)) return renderNumber((value as { value: string }).value, style);
  switch (typeof value) {
    case "string":
      return JSON.stringify(value);
    case "boolean":
      return value ? "true" : "false";
    case "number":
      if (!Number.isFinite(value)) throw new TypeError("non-finite number is not JSON");
      return JSON.stringify(value);
    case "bigint":
      return value.toString();
    case "object": {
      if (Array.isArray(value)) return `[${value.map((v) => canonicalize(v, style)).join(",")}]`;
      const keys = Object.keys(value as object).filter((k) => (value as Record<string, unknown>)[k] !== undefined);
      keys.sort(compareCodePoints);
      const parts = keys.map((k) => `${JSON.stringify(k)}:${canonicalize((value as Record<string, unknown>)[k], style)}`);
      return `{${parts.join(",")}}`;
    }
    default:
      throw new TypeError(`cannot canonicalize a ${typeof value}`);
  }
}
