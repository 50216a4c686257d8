/**
 * Payments are readable on the dashboard (SPEC §7): each transfer job's
 * data says what it pays (kind, ids, chain, asset, amount, from, to; never a
 * secret), its Logs tab tells the steps (signed with nonce N, broadcast,
 * mined in block B, confirmations x/y, final), and a business-level failure
 * (status 0) is a failed job with its code, never a green completion, also
 * when the job is retried from the board.
 */
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import type { Queue } from "bullmq";
import { nowS, eventually } from "../helpers/rabbit.ts";
import { failedSendJob, startTransferStack, randomAddress, HOT, type TransferStack } from "../helpers/transfer-stack.ts";

const DENIED = randomAddress();
let s: TransferStack;

before(async () => {
  s = await startTransferStack({ config: (c) => ({ ...c, policy: { deny_list: [DENIED] } }) });
  s.startMining(100);
});

after(async () => {
  await s?.stop();
});

const withdraw = (queueId: string, to: string, amount: string) =>
  s.biz.send("withdraw", { queue_id: queueId, from_address: HOT, to_address: to, amount, chain: "ETH", symbol: "USDT", timestamp: nowS() });

const logsOf = async (queue: Queue, jobId: string) => (await queue.getJobLogs(jobId, 0, -1)).logs;

test("a withdrawal's send and confirm jobs carry the payment and log each step to its final", async () => {
  const to = randomAddress();
  await withdraw("w-board-ok", to, "12.5");
  const final = await s.biz.waitFor("withdraw", (n) => n.queue_id === "w-board-ok" && n.status !== 2, 60_000);
  assert.equal(final.status, 1);
  const t = await s.env.db.prisma.transfer.findFirstOrThrow({ where: { queueId: "w-board-ok" } });
  const payment = { kind: "withdraw", queue_id: "w-board-ok", chain: "ETH", asset: "USDT", amount: "12.5", from: HOT, to };

  const send = (await s.env.queues.transfer.getJob(`send-${t.id}`))!;
  assert.equal(send.name, `send-transfer withdraw w-board-ok: 12.5 USDT to ${to.slice(0, 12)}…`);
  assert.deepEqual(send.data.payment, payment);
  const sendLogs = await logsOf(s.env.queues.transfer, `send-${t.id}`);
  assert.equal(sendLogs.length, 2, sendLogs.join("\n"));
  assert.match(sendLogs[0]!, new RegExp(`signed: nonce ${t.nonce} from ${HOT}, tx ${t.txHash}$`));
  assert.match(sendLogs[1]!, new RegExp(`broadcast: the node took tx ${t.txHash}`));

  const confirm = (await s.env.queues.confirm.getJob(`transfer-${t.id}`))!;
  assert.deepEqual(confirm.data.payment, payment);
  await eventually(async () => (await confirm.getState()) === "completed", 10_000);
  const confirmLogs = await logsOf(s.env.queues.confirm, `transfer-${t.id}`);
  assert.match(confirmLogs[0]!, new RegExp(`mined in block ${t.blockNumber} \\(tx ${t.txHash}\\)`));
  const required = s.env.config.chains.ETH!.confirm_height;
  assert.match(confirmLogs.at(-1)!, new RegExp(`final: status 1 after \\d+/${required} confirmations, tx ${t.txHash} in block ${t.blockNumber}`));
  assert.ok(confirmLogs.slice(1, -1).every((l) => /confirmations \d+\/\d+$/.test(l)), confirmLogs.join("\n"));
  for (const l of [...sendLogs, ...confirmLogs]) assert.doesNotMatch(l, /private|secret|key/i);
});

test("a withdrawal refused by policy: status 0 for the business, a failed job with its code on the board, and a board retry fails it the same way", async () => {
  await withdraw("w-board-denied", DENIED, "3");
  const n = await s.biz.waitFor("withdraw", (x) => x.queue_id === "w-board-denied", 30_000);
  assert.equal(n.status, 0);
  assert.equal(n.error, "policy_rejected");
  const t = await s.env.db.prisma.transfer.findFirstOrThrow({ where: { queueId: "w-board-denied" } });
  const job = await failedSendJob(s, t.id);
  assert.match(job.failedReason, /^policy_rejected: withdraw w-board-denied ended status 0 \(policy_rejected: /);
  assert.equal(job.attemptsMade, 1, "a permanent failure is not retried");

  // Retry from the board: the job runs again (positive signal: it is taken and fails once more), nothing is sent.
  await job.retry("failed");
  await eventually(async () => {
    const j = (await s.env.queues.transfer.getJob(`send-${t.id}`))!;
    return (await j.getState()) === "failed" && j.attemptsMade === 2;
  }, 30_000);
  assert.equal((await s.env.db.prisma.transfer.findUniqueOrThrow({ where: { id: t.id } })).state, "failed");
  assert.equal(await s.env.db.prisma.txAttempt.count({ where: { transferId: t.id } }), 0);
  assert.deepEqual(
    s.biz.received("withdraw").filter((x) => x.queue_id === "w-board-denied").map((x) => x.status),
    [0],
  );
});
