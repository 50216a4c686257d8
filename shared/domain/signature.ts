/**
 * HMAC-SHA256 signatures over canonical JSON (SPEC §3), for requests we
 * receive and notifications we send. Comparison is constant-time.
 *
 * @example
 * const body = signMessage({status: 1, queue_id: "w1"}, key); // adds `sign`
 * verifyMessage(body, key) // true
 */
import { createHmac, timingSafeEqual } from "node:crypto";
import { canonicalize, type NumberStyle } from "./canonical-json.ts";

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
 * True when `message.sign` is the HMAC of the message under `key`, with
 * numbers rendered either as JSON writes their value or as received.
 */
export function verifyMessage(message: Record<string, unknown>, key: string | Buffer): boolean {
  const given = message.sign;
  if (typeof given !== "string") return false;
  // Uppercase hex is the same signature; anything else can never match.
  const normalized = given.toLowerCase();
  if (!SIGN_RE.test(normalized)) return false;
  const givenBytes = Buffer.from(normalized, "hex");
  let ok = false;
  for (const style of ["js", "literal"] as const) {
    const expected = Buffer.from(computeSignature(message, key, style), "hex");
    // Evaluate both styles every time so timing does not reveal which matched.
    ok = timingSafeEqual(expected, givenBytes) || ok;
  }
  return ok;
}
