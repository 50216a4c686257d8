/**
 * HMAC-SHA256 signatures over canonical JSON (SPEC §3), for requests we
 * receive and notifications we send. Comparison is constant-time.
 *
 * @example
 * const body = signMessage({status: 1, queue_id: "w1"}, key); // adds `sign`
 * verifyMessage(body, key) // true
 */
import { createHmac, timingSafeEqual } from "node:crypto";
import { isLosslessNumber } from "lossless-json";
import { canonicalize, numberSurvivesCanonical, type NumberStyle } from "./canonical-json.ts";

const SIGN_RE = /^[0-9a-f]{64}$/;

function withoutSign(message: Record<string, unknown>): Record<string, unknown> {
  const { sign: _sign, ...rest } = message;
  return rest;
}

/** lowercase hex HMAC-SHA256 of canonical(message without "sign"). */
export function computeSignature(message: Record<string, unknown>, key: string | Buffer, style: NumberStyle = "js"): string {
  return createHmac("sha256", key).update(canonicalize(withoutSign(message), style), "utf8").digest("hex");
}

/** A copy of `message` with its `sign` field set. */
export function signMessage<T extends Record<string, unknown>>(message: T, key: string | Buffer): T & { sign: string } {
  return { ...message, sign: computeSignature(message, key) };
}

/**
 * The number literals (as parsed by lossless-json) of a message: whether
 * one breaks the number rule (its exact value is not the value canonical
 * JSON writes for it), and whether any is spelt other than JSON writes it
 * (`1.50`), which is when the two signing styles give different texts.
 * Walks with an explicit stack: called on input whose depth is bounded, but
 * it must not recurse.
 */
function inspectNumbers(message: unknown): { breaking: string | null; respelt: boolean } {
  const todo: unknown[] = [message];
  let respelt = false;
  while (todo.length > 0) {
    const v = todo.pop();
    if (isLosslessNumber(v)) {
      const text = (v as { value: string }).value;
      if (!numberSurvivesCanonical(text)) return { breaking: text, respelt: true };
      if (!respelt && canonicalize(v) !== text) respelt = true;
    } else if (Array.isArray(v)) todo.push(...v);
    else if (v !== null && typeof v === "object") todo.push(...Object.values(v));
  }
  return { breaking: null, respelt };
}

/**
 * True when `message.sign` is the HMAC of the message under `key`, with
 * numbers rendered either as JSON writes their value or as received, and
 * every number literal obeys the number rule (inspectNumbers): otherwise
 * what was signed and what would be executed could differ.
 */
export function verifyMessage(message: Record<string, unknown>, key: string | Buffer): boolean {
  const given = message.sign;
  if (typeof given !== "string") return false;
  const numbers = inspectNumbers(message);
  if (numbers.breaking !== null) return false;
  // Uppercase hex is the same signature; anything else can never match.
  const normalized = given.toLowerCase();
  if (!SIGN_RE.test(normalized)) return false;
  const givenBytes = Buffer.from(normalized, "hex");
  // When every number is spelt as JSON writes it the two styles are one
  // text: one HMAC. Whether a second one is computed depends only on the
  // message (which its sender knows), never on the key or the expected
  // signature, so it reveals nothing; the comparison is constant-time.
  const styles = numbers.respelt ? (["js", "literal"] as const) : (["js"] as const);
  let ok = false;
  for (const style of styles) {
    const expected = Buffer.from(computeSignature(message, key, style), "hex");
    ok = timingSafeEqual(expected, givenBytes) || ok;
  }
  return ok;
}
