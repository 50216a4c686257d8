/**
 * Held transfers (SPEC §7): a transfer no wallet can pay is not failed at
 * once. Nothing is sent to the business; its job sits in the transfer
 * queue's failed list with what is short and the payment it is about; an
 * operator funds the wallet and retries it (Bull Board or `payment retry`),
 * which sends it through the exactly-once path, or rejects it (`payment
 * reject`), which ends it status 0 with its code; nobody acting, it ends so
 * after hold_s.
 */
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import type { Job } from "bullmq";
import { Wallet } from "ethers";
import { nowS, eventually } from "../helpers/rabbit.ts";
import { failedSendJob, startTransferStack, randomAddress, type TransferStack } from "../helpers/transfer-stack.ts";
import { retryTransfers } from "../../cli/commands/retry.ts";
import { rejectTransfers } from "../../cli/commands/approve.ts";
import { reconcileJobs } from "../../workers/maintenance/reconcile.ts";

let s: TransferStack;
let poor: string;

before(async () => {
  s = await startTransferStack({ config: (c) => ({ ...c, eth_config: { ...c.eth_config!, hold_s: 3600 } }) });
  poor = await s.importWallet(Wallet.createRandom().privateKey, "hot");
  await (await new Wallet(s.env.anvil!.keys[5]!, s.provider).sendTransaction({ to: poor, value: 10n ** 18n })).wait();
  await s.mint(poor, 10_000_000n);
  s.startMining(100);
});

after(async () => {
  await s?.stop();
});

const withdraw = (queueId: string, to: string, amount: string) =>
  s.biz.send("withdraw", { queue_id: queueId, from_address: poor, to_address: to, amount, chain: "ETH", symbol: "USDT", timestamp: nowS() });
const notesOf = (queueId: string) => s.biz.received("withdraw").filter((n) => n.queue_id === queueId);

/** The transfer's send job once it has failed (the positive signal that the sender decided). */
async function failedJob(queueId: string): Promise<Job> {
  const t = await eventually(() => s.env.db.prisma.transfer.findFirst({ where: { queueId } }), 30_000);
  return failedSendJob(s, t.id);
}

test("a withdrawal no wallet can pay is held: no notification, its job failed with what is short and the payment; `payment retry` after funding sends it once", async () => {
  const to = randomAddress();
  await withdraw("w-held-retry", to, "50");
  const job = await failedJob("w-held-retry");
  const t = await s.env.db.prisma.transfer.findFirstOrThrow({ where: { queueId: "w-held-retry" } });
  assert.equal(t.state, "held");
  assert.equal(t.error, "insufficient_balance");
  assert.match(job.failedReason, /insufficient_balance: held: 0x[0-9a-f]{40} has too little USDT: needs 50, has 10 free/);
  assert.deepEqual(job.data.payment, { kind: "withdraw", queue_id: "w-held-retry", chain: "ETH", asset: "USDT", amount: "50", from: poor, to });
  assert.deepEqual(notesOf("w-held-retry"), [], "nothing reported while held");

  await s.mint(poor, 100_000_000n);
  const [line] = await retryTransfers({ db: s.env.db, queues: s.env.queues }, { queueId: "w-held-retry" }, "operator:test");
  assert.match(line!.action, /^released from hold \(insufficient_balance\); send job retried/);
  const final = await s.biz.waitFor("withdraw", (n) => n.queue_id === "w-held-retry" && n.status !== 2, 60_000);
  assert.equal(final.status, 1);
  assert.equal(await s.usdtOf(to), 50_000_000n);
  assert.deepEqual(notesOf("w-held-retry").map((n) => n.status), [2, 1]);
  assert.equal(await s.env.db.prisma.txAttempt.count({ where: { transferId: t.id } }), 1);
});

test("Bull Board's Retry on the failed job releases the transfer the same way", async () => {
  const to = randomAddress();
  await withdraw("w-held-board", to, "500");
  const job = await failedJob("w-held-board");
  await s.mint(poor, 500_000_000n);
  await job.retry("failed"); // what the board's Retry button calls
  const final = await s.biz.waitFor("withdraw", (n) => n.queue_id === "w-held-board" && n.status !== 2, 60_000);
  assert.equal(final.status, 1);
  assert.equal(await s.usdtOf(to), 500_000_000n);
  const events = (await s.env.db.prisma.auditEvent.findMany({ where: { queueId: "w-held-board" }, orderBy: { id: "asc" } })).map((e) => e.event);
  assert.ok(events.indexOf("transfer.held") < events.indexOf("transfer.released") && events.indexOf("transfer.released") < events.indexOf("transfer.signed"), events.join(", "));
});

test("`payment reject` ends a held transfer status 0 with the code it was held for, once", async () => {
  const to = randomAddress();
  await withdraw("w-held-reject", to, "1000000");
  await failedJob("w-held-reject");
  const [d] = await rejectTransfers({ db: s.env.db }, { queueId: "w-held-reject" }, "operator:test", "not worth it");
  assert.equal(d!.note, "rejected (status 0 insufficient_balance)");
  const n = await s.biz.waitFor("withdraw", (x) => x.queue_id === "w-held-reject", 30_000);
  assert.equal(n.status, 0);
  assert.equal(n.error, "insufficient_balance");
  assert.match(String(n.error_message), /too little USDT.*rejected by an operator: not worth it/);
  assert.equal(notesOf("w-held-reject").length, 1);
  assert.equal(await s.env.db.prisma.txAttempt.count({ where: { transfer: { queueId: "w-held-reject" } } }), 0);
});

test("nobody acting, a held transfer ends status 0 with its code after hold_s", async () => {
  await withdraw("w-held-expire", randomAddress(), "2000000");
  await failedJob("w-held-expire");
  const t = await s.env.db.prisma.transfer.findFirstOrThrow({ where: { queueId: "w-held-expire" } });
  const config = { ...s.env.config, chains: { ETH: { ...s.env.config.chains.ETH!, hold_s: 1 } } };
  const deps = { pool: s.env.db.pool, queues: s.env.queues, logger: s.env.logger, metrics: s.env.metrics, config };
  // held for more than hold_s by the database's clock (the one the expiry reads)
  await eventually(async () => ((await s.env.db.pool.query("SELECT held_at < NOW(3) - INTERVAL 1 SECOND AS due FROM transfer WHERE id = ?", [t.id])) as { due: number }[])[0]!.due === 1, 10_000);
  const r = await reconcileJobs(deps);
  assert.ok(r.expired >= 1);
  const n = await s.biz.waitFor("withdraw", (x) => x.queue_id === "w-held-expire", 30_000);
  assert.equal(n.status, 0);
  assert.equal(n.error, "insufficient_balance");
  assert.match(String(n.error_message), /held 1 s and nobody retried it/);
  assert.equal((await s.env.db.prisma.transfer.findUniqueOrThrow({ where: { id: t.id } })).state, "failed");
});
