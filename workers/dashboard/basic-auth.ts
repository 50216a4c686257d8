/**
 * HTTP Basic authentication for the operators' pages (Bull Board can retry,
 * remove and promote jobs, so it must never be open).
 *
 * Comparison is constant-time: user and password are each hashed to a
 * fixed-length SHA-256 digest and compared with `timingSafeEqual` (which
 * needs equal lengths, so comparing raw strings would leak the length), and
 * both comparisons always run so the answer time does not say which one
 * failed.
 */
import { createHash, timingSafeEqual } from "node:crypto";
import type { NextFunction, Request, Response } from "express";

const digest = (s: string) => createHash("sha256").update(s, "utf8").digest();

/** Constant-time equality of two strings of any length. */
export function safeEqual(a: string, b: string): boolean {
  return timingSafeEqual(digest(a), digest(b));
}

/** user/password from an `Authorization: Basic …` header, or null. */
export function parseBasicAuth(header: string | undefined): { user: string; password: string } | null {
  if (!header) return null;
  const m = /^Basic\s+([A-Za-z0-9+/=._~-]+)\s*$/i.exec(header);
  if (!m) return null;
  const decoded = Buffer.from(m[1]!, "base64").toString("utf8");
  const colon = decoded.indexOf(":");
  if (colon < 0) return null;
  return { user: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
}

export function basicAuth(opts: { user: string; password: string; realm?: string }) {
  const challenge = `Basic realm="${opts.realm ?? "payment dashboard"}", charset="UTF-8"`;
  return (req: Request, res: Response, next: NextFunction) => {
    const given = parseBasicAuth(req.headers.authorization);
    // Always run both comparisons (no short-circuit) against something.
    const userOk = safeEqual(given?.user ?? "", opts.user);
    const passOk = safeEqual(given?.password ?? "", opts.password);
    if (given && userOk && passOk) {
      next();
      return;
    }
    res.set("WWW-Authenticate", challenge).set("Cache-Control", "no-store").status(401).type("text/plain").send("authentication required\n");
  };
}
