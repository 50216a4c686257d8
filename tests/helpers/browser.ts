/**
 * Headless Chromium for the browser tests (playwright-core drives the
 * distribution's Chromium: `apt-get install -y chromium`, or $CHROMIUM_PATH),
 * with the flags this machine needs and a fresh, throw-away profile per
 * launch (removed by `closeAll`).
 */
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { chromium, type BrowserContext } from "playwright-core";

export const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
export const ARTIFACTS = path.resolve(import.meta.dirname, "../artifacts");

const profiles: string[] = [];
const contexts: BrowserContext[] = [];

export async function launchBrowser(credentials?: { username: string; password: string }, viewport = { width: 1280, height: 800 }): Promise<BrowserContext> {
  assert.ok(existsSync(CHROMIUM), `Chromium not found at ${CHROMIUM}: apt-get install -y chromium (or set CHROMIUM_PATH)`);
  const dir = mkdtempSync(path.join(tmpdir(), "payment-chromium-"));
  profiles.push(dir);
  // --user-data-dir is given by launchPersistentContext (the fresh `dir`), --headless by `headless: true`.
  const ctx = await chromium.launchPersistentContext(dir, {
    executablePath: CHROMIUM,
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
    viewport,
    ...(credentials ? { httpCredentials: credentials } : {}),
  });
  contexts.push(ctx);
  return ctx;
}

/** Close every browser this process launched and remove their profiles. */
export async function closeBrowsers(): Promise<void> {
  await Promise.all(contexts.splice(0).map((c) => c.close().catch(() => undefined)));
  for (const d of profiles.splice(0)) rmSync(d, { recursive: true, force: true });
}
