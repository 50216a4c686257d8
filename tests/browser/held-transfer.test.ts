/**
 * The operator's promise, in a real browser (headless Chromium): a
 * withdrawal no wallet can cover is held (SPEC §7) and shows in Bull
 * Board's failed list saying what is short and what it pays; after the
 * wallet is funded, the board's Retry button sends it through the
 * exactly-once path once (the business sees `2` then `1`, one signed
 * transaction), however often Retry is pressed. The screenshot of the held
 * job is the one in docs/operations.md (tests/artifacts/board-held-transfer.png).
 */
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, statSync } from "node:fs";
import path from "node:path";
import type { BrowserContext, Page } from "playwright-core";
import { Wallet } from "ethers";
import { nowS, eventually } from "../helpers/rabbit.ts";
import { ARTIFACTS, closeBrowsers, launchBrowser } from "../helpers/browser.ts";
import { receiptOf } from "../helpers/receipts.ts";
import { startTransferStack, randomAddress, type TransferStack } from "../helpers/transfer-stack.ts";
import { createDashboard } from "../../workers/dashboard/main.ts";

const USER = "ops";
const PASSWORD = "browser-test-password";

let s: TransferStack;
let dash: ReturnType<typeof createDashboard>;
let poor: string;
let browser: BrowserContext;

before(async () => {
  s = await startTransferStack({
    config: (c) => ({ ...c, eth_config: { ...c.eth_config!, hold_s: 3600 }, dashboard: { port: 0, user: USER, password: PASSWORD } }),
  });
  dash = createDashboard({ ...s.env, checkTimeoutMs: 500 });
  await dash.start();
  // a hot wallet with gas and 10 USDT
  poor = await s.importWallet(Wallet.createRandom().privateKey, "hot");
  await receiptOf(s.provider, (await new Wallet(s.env.anvil!.keys[5]!, s.provider).sendTransaction({ to: poor, value: 10n ** 18n })).hash);
  await s.mint(poor, 10_000_000n);
  s.startMining(100);
  browser = await launchBrowser({ username: USER, password: PASSWORD }, { width: 1280, height: 900 });
});

after(async () => {
  await closeBrowsers();
  await dash?.stop();
  await s?.stop();
});

test("a held withdrawal is in the failed list with its amount and what is short; funded, Retry sends it once", async () => {
  const to = randomAddress();
  await s.biz.send("withdraw", { queue_id: "w-browser-held", from_address: poor, to_address: to, amount: "50", chain: "ETH", symbol: "USDT", timestamp: nowS() });
  const t = await eventually(() => s.env.db.prisma.transfer.findFirst({ where: { queueId: "w-browser-held", state: "held" } }), 30_000);
  await eventually(async () => (await (await s.env.queues.transfer.getJob(`send-${t.id}`))?.getState()) === "failed", 30_000);

  const page = browser.pages()[0] ?? (await browser.newPage());
  const base = `http://127.0.0.1:${dash.port}/admin/queues`;
  await page.goto(`${base}/queue/transfer?status=failed`);
  const card = page.locator(`a[href^="/admin/queues/queue/transfer/send-${t.id}"]`).first();
  await card.waitFor({ timeout: 15_000 });
  // the failed list says what is short (wallet, asset, needed, available) and what the job pays
  await page.getByText(/insufficient_balance: held: 0x[0-9a-f]{40} has too little USDT: needs 50, has 10 free/).first().waitFor({ timeout: 15_000 });
  await page.getByText(`send-transfer withdraw w-browser-held: 50 USDT to ${to.slice(0, 12)}…`).first().waitFor({ timeout: 15_000 });
  await page.getByRole("button", { name: "Data" }).or(page.getByText("Data", { exact: true })).first().click();
  await page.getByText(/amount:\s*"50"/).first().waitFor({ timeout: 15_000 });
  const body = await page.locator("body").innerText();
  for (const fact of [to, poor, "w-browser-held", "USDT"]) assert.ok(body.includes(fact), `the failed list shows ${fact}`);
  assert.doesNotMatch(body, /privateKey|encrypted_key|master/i, "no secret on the board");
  mkdirSync(ARTIFACTS, { recursive: true });
  const shot = path.join(ARTIFACTS, "board-held-transfer.png");
  await page.screenshot({ path: shot, fullPage: true });
  assert.ok(statSync(shot).size > 10_000, "a real screenshot was written");
  assert.deepEqual(s.biz.received("withdraw").filter((n) => n.queue_id === "w-browser-held"), [], "nothing reported while held");

  // fund the wallet, then press Retry on the job (twice: a second press must not send twice)
  await s.mint(poor, 100_000_000n);
  assert.equal(await pressJobAction(page, "Retry"), true, "the failed job has a Retry button");
  // a second press (the card may already have left the failed list) must not send twice
  await page.goto(`${base}/queue/transfer?status=failed`);
  await pressJobAction(page, "Retry");

  const final = await s.biz.waitFor("withdraw", (n) => n.queue_id === "w-browser-held" && n.status !== 2, 60_000);
  assert.equal(final.status, 1);
  assert.equal(final.amount_exact, "50");
  assert.equal(await s.usdtOf(to), 50_000_000n);
  // the confirmation job's final line is the positive signal that nothing else is coming for this id
  await eventually(async () => (await s.env.queues.confirm.getJobLogs(`transfer-${t.id}`)).logs.some((l) => l.includes("final: status 1")), 30_000);
  await eventually(async () => (await s.env.db.prisma.notification.count({ where: { state: "pending" } })) === 0, 30_000);
  assert.deepEqual(s.biz.received("withdraw").filter((n) => n.queue_id === "w-browser-held").map((n) => n.status), [2, 1]);
  assert.equal(await s.env.db.prisma.txAttempt.count({ where: { transferId: t.id } }), 1, "one signed transaction");

  // the job is now completed on the board, its Logs tab telling the steps
  await page.goto(`${base}/queue/transfer/send-${t.id}`);
  await page.getByRole("button", { name: "Logs" }).or(page.getByText("Logs", { exact: true })).first().click();
  await page.getByText(/signed: nonce \d+ from 0x[0-9a-f]{40}/).first().waitFor({ timeout: 15_000 });
  await page.screenshot({ path: path.join(ARTIFACTS, "board-released-transfer-logs.png"), fullPage: true });
});

/**
 * Press a job card's icon button by its tooltip (Bull Board's job actions
 * are icons whose name shows on hover), confirming its dialog if one opens.
 * False when no button has that tooltip (no failed job on the page).
 */
async function pressJobAction(page: Page, name: string): Promise<boolean> {
  const buttons = page.locator("main button, button");
  const tooltip = page.locator('[role="tooltip"], [data-side]');
  for (let i = 0; i < (await buttons.count()); i++) {
    const b = buttons.nth(i);
    if (!(await b.isVisible()) || (await b.innerText()).trim() !== "") continue;
    await b.hover();
    const shown = await tooltip
      .filter({ hasText: new RegExp(`^${name}$`) })
      .first()
      .waitFor({ timeout: 1_000 })
      .then(
        () => true,
        () => false,
      );
    if (!shown) continue;
    await b.click();
    const confirm = page.getByRole("button", { name: "Confirm" });
    if (await confirm.waitFor({ timeout: 2_000 }).then(() => true, () => false)) await confirm.click();
    return true;
  }
  return false;
}
