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

/**
 * Compare two strings by Unicode code point (not UTF-16 code unit): equal
 * units are skipped, and the first difference is judged by the code points
 * that contain it (starting one unit earlier when the shared unit before is
 * the high half of a pair in either string).
 */
const low = (u: number) => u >= 0xdc00 && u <= 0xdfff;

export function compareCodePoints(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x === y) continue;
    // below the surrogates (every key we sign) a unit is its code point
    if (x < 0xd800 && y < 0xd800) return x < y ? -1 : 1;
    const prev = i > 0 ? a.charCodeAt(i - 1) : 0;
    // the shared unit before is a high half that pairs with the unit here in at least one string
    const at = prev >= 0xd800 && prev <= 0xdbff && (low(x) || low(y)) ? i - 1 : i;
    return a.codePointAt(at)! < b.codePointAt(at)! ? -1 : 1;
  }
  return a.length === b.length ? 0 : a.length < b.length ? -1 : 1;
}

function renderNumber(text: string, style: NumberStyle): string {
  if (style === "literal") return text;
  const n = Number(text);
  // JSON has no Infinity/NaN; a literal that overflows a double keeps its text.
  return Number.isFinite(n) ? JSON.stringify(n) : text;
}

const JSON_NUMBER_RE = /^(-?)([0-9]+)(?:\.([0-9]+))?(?:[eE]([+-]?[0-9]+))?$/;

/**
 * The exact decimal value of a JSON number literal as `sign digits e exp`
 * with no leading or trailing zeros ("1.50" and "15e-1" -> "15e-1"), or null
 * when the text is not a JSON number. Exact for any exponent (bigint).
 */
export function decimalValueKey(text: string): string | null {
  const m = JSON_NUMBER_RE.exec(text);
  if (!m) return null;
  const [, sign = "", intPart = "", fracPart = "", expText = "0"] = m;
  let digits = (intPart + fracPart).replace(/^0+/, "");
  if (digits === "") return "0";
  let exp = BigInt(expText) - BigInt(fracPart.length);
  const kept = digits.replace(/0+$/, "");
  exp += BigInt(digits.length - kept.length);
  digits = kept;
  return `${sign}${digits}e${exp}`;
}

/**
 * SPEC §3 "Signatures", the number rule: a number literal is acceptable only
 * if its exact value equals the value of the text canonical JSON writes for
 * it. `1.50` (written `1.5`) passes; `1.000000000000000001` (written `1`)
 * does not, because the signed text and the executed amount would differ.
 */
export function numberSurvivesCanonical(text: string): boolean {
  const exact = decimalValueKey(text);
  return exact !== null && exact === decimalValueKey(renderNumber(text, "js"));
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
