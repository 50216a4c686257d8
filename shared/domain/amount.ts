/**
 * Exact money arithmetic. Amounts travel as decimal text and are converted to
 * base units (bigint) straight from that text; a float never touches them.
 *
 * @example
 * parseAmount("100.500001", 6) // 100500001n
 * formatUnits(100500001n, 6)   // "100.500001"
 */
import { RequestRejected } from "./errors.ts";

/** SPEC §3: digits, optionally a dot and more digits; no sign, exponent, spaces. */
const DECIMAL_RE = /^[0-9]+(?:\.[0-9]+)?$/;
const MAX_UINT256 = (1n << 256n) - 1n;
/** DECIMAL(65,18) in the database keeps 47 integer digits. */
const MAX_INTEGER_DIGITS = 47;
const MAX_TEXT_LENGTH = 100;

export type AmountParse =
  | { ok: true; units: bigint }
  | { ok: false; reason: string };

/**
 * Parse decimal text into base units of an asset with `decimals` decimals.
 * Rejects zero, more fractional digits than the asset has, anything that is
 * not plain decimal text, and values that do not fit uint256 or the database.
 */
export function tryParseAmount(text: string, decimals: number): AmountParse {
  if (text.length === 0 || text.length > MAX_TEXT_LENGTH) return { ok: false, reason: "amount has no digits or is too long" };
  if (!DECIMAL_RE.test(text)) return { ok: false, reason: "amount must be plain decimal text (digits, optional fraction)" };
  const dot = text.indexOf(".");
  const intPart = dot === -1 ? text : text.slice(0, dot);
  const fracPart = dot === -1 ? "" : text.slice(dot + 1);
  if (fracPart.length > decimals) return { ok: false, reason: `amount has more than ${decimals} fractional digits` };
  const intDigits = intPart.replace(/^0+/, "");
  if (intDigits.length > MAX_INTEGER_DIGITS) return { ok: false, reason: "amount is too large" };
  const units = BigInt(intPart + fracPart.padEnd(decimals, "0"));
  if (units === 0n) return { ok: false, reason: "amount must be greater than zero" };
  if (units > MAX_UINT256) return { ok: false, reason: "amount is too large" };
  return { ok: true, units };
}

const JSON_EXPONENT_RE = /^(-?)([0-9]+)(?:\.([0-9]+))?[eE]([+-]?[0-9]+)$/;
/** Beyond this an exponent cannot name a storable amount; expanding it would only cost memory. */
const MAX_EXPONENT = 200;

/**
 * The text of a JSON *number* as plain decimal text, exactly: JSON allows
 * exponents (`1e2`, and JavaScript senders write small and large numbers as
 * `1e-7` / `1e+21`), which a decimal *string* may not use (SPEC §3). Shifts
 * the decimal point in the text, never through a float; trailing fractional
 * zeros the exponent created are dropped ("1.50e1" -> "15"). Anything that is
 * not an exponent form is returned unchanged for tryParseAmount to judge.
 *
 * @example jsonNumberToDecimal("1.5e-7") // "0.00000015"
 */
export function jsonNumberToDecimal(text: string): string {
  const m = JSON_EXPONENT_RE.exec(text);
  if (!m) return text;
  const [, sign = "", intPart = "", fracPart = "", expText = "0"] = m;
  const exp = Number(expText);
  if (!Number.isSafeInteger(exp) || Math.abs(exp) > MAX_EXPONENT) return text;
  const digits = intPart + fracPart;
  const point = intPart.length + exp;
  let int: string;
  let frac: string;
  if (point <= 0) [int, frac] = ["0", "0".repeat(-point) + digits];
  else if (point >= digits.length) [int, frac] = [digits + "0".repeat(point - digits.length), ""];
  else [int, frac] = [digits.slice(0, point), digits.slice(point)];
  int = int.replace(/^0+(?=[0-9])/, "");
  frac = frac.replace(/0+$/, "");
  return `${sign}${int}${frac ? `.${frac}` : ""}`;
}

/** Like tryParseAmount, throwing `invalid_amount`. */
export function parseAmount(text: string, decimals: number): bigint {
  const r = tryParseAmount(text, decimals);
  if (!r.ok) throw new RequestRejected("invalid_amount", r.reason, { detail: r.reason });
  return r.units;
}

/** Base units to the shortest exact decimal text ("100.5", "3", "0.000001"). */
export function formatUnits(units: bigint, decimals: number): string {
  const negative = units < 0n;
  const digits = (negative ? -units : units).toString().padStart(decimals + 1, "0");
  const intPart = digits.slice(0, digits.length - decimals);
  const frac = digits.slice(digits.length - decimals).replace(/0+$/, "");
  return `${negative ? "-" : ""}${intPart}${frac ? `.${frac}` : ""}`;
}

/**
 * Exact decimal text (as MySQL returns DECIMAL(65,18), e.g. "100.500000000000000000")
 * back to base units. Throws if the text has more precision than the asset.
 */
export function decimalToUnits(text: string, decimals: number): bigint {
  const negative = text.startsWith("-");
  const body = negative ? text.slice(1) : text;
  const [intPart = "0", fracRaw = ""] = body.split(".");
  const frac = fracRaw.replace(/0+$/, "");
  if (frac.length > decimals) throw new Error(`decimal ${text} has more than ${decimals} fractional digits`);
  const units = BigInt((intPart || "0") + frac.padEnd(decimals, "0"));
  return negative ? -units : units;
}

/**
 * The `amount` JSON number of a notification, kept for consumers of the old
 * system. It is the nearest double to the exact text; `amount_exact` carries
 * the exact value.
 */
export function toJsonNumber(exact: string): number {
  return Number(exact);
}

/** MySQL DECIMAL text ("50.000000000000000000") to its shortest form ("50"). */
export function trimDecimal(text: string): string {
  if (!text.includes(".")) return text;
  return text.replace(/0+$/, "").replace(/\.$/, "");
}
