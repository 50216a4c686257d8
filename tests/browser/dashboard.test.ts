/**
 * The operators' dashboard in a real browser (headless Chromium through
 * playwright-core): refused without credentials, then logged in with HTTP
 * Basic auth, the gateway's three queues listed, a permanently failed
 * transfer job opened with its error and data, and a screenshot saved under
 * tests/artifacts/ (gitignored).
 *
 * Run with `npm run test:browser`. Needs Chromium at /usr/bin/chromium
 * (`apt-get install -y chromium`) or at $CHROMIUM_PATH.
 */
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, statSync } from "node:fs";
import path from "node:path";
import type { Worker } from "bullmq";
import { createTestEnv, type TestEnv } from "../helpers/env.ts";
import { eventually } from "../helpers/rabbit.ts";
import { ARTIFACTS, closeBrowsers, launchBrowser } from "../helpers/browser.ts";
import { createDashboard } from "../../workers/dashboard/main.ts";
import { enqueue } from "../../shared/jobs/registry.ts";
import { createWorker } from "../../shared/jobs/worker.ts";
import { PermanentError } from "../../shared/domain/errors.ts";

const USER = "ops";
const PASSWORD = "browser-test-password";

let env: TestEnv;
let dash: ReturnType<typeof createDashboard>;
let worker: Worker;
let base: string;
const launch = launchBrowser;

before(async () => {
  env = await createTestEnv({ config: (c) => ({ ...c, dashboard: { port: 0, user: USER, password: PASSWORD } }) });
  dash = createDashboard({ ...env, checkTimeoutMs: 500 });
  await dash.start();
  base = `http://127.0.0.1:${dash.port}`;
  // A registry job whose processing fails permanently (PermanentError -> UnrecoverableError: no retry).
  worker = createWorker(
    "transfer",
    env.redis,
    {
      "send-transfer": async () => {
        throw new PermanentError("unknown_wallet", "browser test: this transfer fails permanently");
      },
    },
    { concurrency: 1, logger: env.logger },
  );
  void worker.run();
  const job = await enqueue(env.queues, "send-transfer", { transferId: "4242", label: "withdraw browser-test" });
  await eventually(async () => (await job.getState()) === "failed", 10_000);
});

after(async () => {
  await worker?.close();
  await dash?.stop();
  await env?.cleanup();
  await closeBrowsers();
});

test("without (or with wrong) credentials the browser is challenged and refused: 401", async () => {
  for (const creds of [undefined, { username: USER, password: "wrong-password" }]) {
    const ctx = await launch(creds);
    try {
      const page = ctx.pages()[0] ?? (await ctx.newPage());
      // Headless Chromium cannot show a login prompt: with no credentials the
      // navigation fails on the challenge; with wrong ones it ends on the 401.
      const outcome = await page.goto(`${base}/admin/queues`).then(
        (r) => `status ${r?.status()}`,
        (e: Error) => (/ERR_INVALID_AUTH_CREDENTIALS/.test(e.message) ? "challenge unanswered" : e.message),
      );
      assert.equal(outcome, creds ? "status 401" : "challenge unanswered");
      // The same context's own HTTP client (same credentials, if any) sees the answer itself.
      const res = await ctx.request.get(`${base}/admin/queues/api/queues`);
      assert.equal(res.status(), 401);
      assert.match(res.headers()["www-authenticate"] ?? "", /^Basic realm=/);
    } finally {
      await ctx.close();
    }
  }
});

test("logged in: the gateway's queues are listed, a failed job opens with its error, screenshot saved", async () => {
  const ctx = await launch({ username: USER, password: PASSWORD });
  try {
    const page = ctx.pages()[0] ?? (await ctx.newPage());
    const res = await page.goto(`${base}/admin/queues`);
    assert.equal(res?.status(), 200);
    for (const q of ["transfer", "confirm", "maintenance"]) {
      await page.locator(`a[href="/admin/queues/queue/${q}"], a[href^="/admin/queues/queue/${q}?"]`).first().waitFor({ timeout: 15_000 });
    }

    await page.locator('a[href^="/admin/queues/queue/transfer"]').first().click();
    await page.locator('a[href="/admin/queues/queue/transfer?status=failed"]').click();
    const jobLink = page.locator('a[href^="/admin/queues/queue/transfer/send-4242"]');
    await jobLink.waitFor({ timeout: 15_000 });
    await jobLink.click();
    await page.waitForURL(/\/admin\/queues\/queue\/transfer\/send-4242/);
    await page.getByText("send-transfer withdraw browser-test").first().waitFor({ timeout: 15_000 });
    await page.getByText(/unknown_wallet: browser test: this transfer fails permanently/).first().waitFor({ timeout: 15_000 });
    mkdirSync(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: path.join(ARTIFACTS, "dashboard-failed-job-error.png"), fullPage: true });

    await page.getByRole("button", { name: "Data" }).or(page.getByText("Data", { exact: true })).first().click();
    await page.getByText(/"transferId":\s*"4242"|transferId/).first().waitFor({ timeout: 15_000 });
    const body = await page.locator("body").innerText();
    assert.match(body, /4242/);
    assert.doesNotMatch(body, /privateKey|masterKey|PAYMENT_KEY/, "no secret in the job data");

    const shot = path.join(ARTIFACTS, "dashboard-failed-job.png");
    await page.screenshot({ path: shot, fullPage: true });
    assert.ok(statSync(shot).size > 10_000, "a real screenshot was written");
  } finally {
    await ctx.close();
  }
});
