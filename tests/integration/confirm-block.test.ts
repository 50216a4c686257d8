/**
 * Confirming a block's deposits together: when the confirming head arrives,
 * chain-watch wakes one confirmation job of the due block (the jobs' own
 * timers are minutes away here), that run finalises every deposit of the
 * block at once, and every deposit is still final exactly once with its
 * exact amount credited, however many jobs and workers run.
 */
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { createTestEnv, type TestEnv } from "../helpers/env.ts";
import { eventually } from "../helpers/rabbit.ts";
import { chainTools, startDepositStack, type ChainTools, type DepositStack } from "../helpers/deposit-stack.ts";
import { quiescent } from "../helpers/quiet.ts";
import { startRpcProxy } from "../helpers/rpc-proxy.ts";
import { createConfirmationWorker } from "../../workers/confirmation/main.ts";
import { formatUnits } from "../../shared/domain/amount.ts";

let env: TestEnv;
let stack: DepositStack;
let chain: ChainTools;
let second: ReturnType<typeof createConfirmationWorker>;
const CONFIRM = 3;

before(async () => {
  // block_time_ms of a minute: the jobs' own timers fire minutes after the deposits are due
  env = await createTestEnv({ anvil: true, config: (c) => ({ ...c, eth_config: { ...c.eth_config!, confirm_height: CONFIRM, block_time_ms: 60_000 } }) });
  chain = await chainTools(env);
  stack = await startDepositStack(env);
  second = createConfirmationWorker(env);
  await second.start();
});

after(async () => {
  await second?.stop();
  await stack?.stop();
  chain?.close();
  await env?.cleanup();
});

const address = (block: number, i: number) => `0x${block.toString(16).padStart(2, "0")}${i.toString(16).padStart(38, "0")}`;

/** One block with a deposit to each address (the first one twice); returns the block number. */
async function depositBlock(tag: number, count: number): Promise<{ block: number; to: string[]; units: bigint[] }> {
  const to = Array.from({ length: count }, (_, i) => address(tag, i + 1));
  await env.db.prisma.watchedAddress.createMany({ data: to.map((a) => ({ chain: "ETH", symbol: "USDT", address: a })) });
  const recipients = [...to, to[0]!];
  const units = recipients.map((_, i) => 1_000_000n + BigInt(i) * 1_001n);
  const tx = await chain.usdt.getFunction("mintMany")(recipients, units);
  const receipt = (await tx.wait())!;
  assert.equal(receipt.logs.length, recipients.length);
  await eventually(() => stack.biz.received("topup").filter((n) => n.status === 2 && n.block_height === receipt.blockNumber).length === recipients.length);
  return { block: receipt.blockNumber!, to: recipients, units };
}

const finalsOf = (block: number) => stack.biz.received("topup").filter((n) => n.status === 1 && n.block_height === block);

test("the confirming head finalises every deposit of the due block at once, each exactly once, credited exactly", async () => {
  const { block, to, units } = await depositBlock(0xb1, 30);
  await chain.mine(CONFIRM);
  // 31 finals within seconds: only the head-driven wake-up can do that (the timers are minutes away)
  await eventually(() => finalsOf(block).length === to.length);

  const deposits = await env.db.prisma.deposit.findMany({ where: { blockNumber: block }, orderBy: { id: "asc" } });
  assert.equal(deposits.length, to.length);
  assert.ok(deposits.every((d) => d.state === "confirmed" && d.confirmations >= CONFIRM));
  // one run did it: the first deposit's job finalised the whole block
  const job = await env.queues.confirm.getJob(`deposit-${deposits[0]!.id}`);
  assert.equal((job?.returnvalue as { finalized_with_block?: number } | undefined)?.finalized_with_block, to.length);

  // the siblings' own jobs, run now, change nothing
  await env.queues.confirm.promoteJobs();
  await eventually(async () => (await env.queues.confirm.getJobCounts("delayed", "waiting", "active")).delayed === 0);
  await eventually(async () => {
    const c = await env.queues.confirm.getJobCounts("waiting", "active");
    return c.waiting === 0 && c.active === 0;
  });
  assert.equal(new Set(finalsOf(block).map((n) => n.notification_id)).size, to.length);
  assert.equal(finalsOf(block).length, to.length);

  const expected = new Map<string, bigint>();
  to.forEach((a, i) => expected.set(a, (expected.get(a) ?? 0n) + units[i]!));
  for (const [a, sum] of expected) {
    const b = await env.db.prisma.balance.findFirstOrThrow({ where: { address: a, symbol: "USDT" } });
    assert.equal(b.amount.toFixed(), formatUnits(sum, 6), `balance of ${a}`);
  }
  assert.ok(stack.biz.allSigned());
});

test("every job of a due block running at once on two workers still finalises each deposit once", async () => {
  const { block, to } = await depositBlock(0xb2, 20);
  // the timers fire together with the wake-up: every job of the block runs now, on either worker
  await chain.mine(CONFIRM);
  await env.queues.confirm.promoteJobs();
  await eventually(() => finalsOf(block).length >= to.length);
  const jobs = (await env.db.prisma.deposit.findMany({ where: { blockNumber: block }, select: { id: true } })).map((d) => `deposit-${d.id}`);
  // a sibling that ran while the other worker held the block may have rescheduled itself a block
  // time away (a minute here): run those now too, until every job of the block has completed
  await eventually(async () => {
    await env.queues.confirm.promoteJobs();
    const states = await Promise.all(jobs.map(async (id) => (await env.queues.confirm.getJob(id))?.getState()));
    return states.every((st) => st === "completed");
  });
  await quiescent(env, stack.biz, { jobs });
  assert.equal(finalsOf(block).length, to.length);
  const ids = (await env.db.prisma.deposit.findMany({ where: { blockNumber: block }, select: { id: true } })).map((d) => d.id);
  assert.equal(await env.db.prisma.notification.count({ where: { dedupeKey: { in: ids.map((id) => `deposit-${id}-1`) } } }), to.length);
  assert.equal(await env.db.prisma.deposit.count({ where: { blockNumber: block, state: "confirmed" } }), to.length);
});

test("more blocks due at once than the pool has connections, behind a slow node (as after a node outage): every deposit final, no job ever failed waiting for a connection", async () => {
  // The workers here share one pool of 5 connections (tests/helpers/env.ts); twelve blocks fall due with
  // one head, and a third worker reads receipts through a node that answers them 300 ms late, so block
  // finalisations overlap while each holds its block's lock (and the lock's connection).
  const proxy = await startRpcProxy(env.anvil!.rpcUrl, () => undefined, { delayMs: (c) => (c.method === "eth_getTransactionReceipt" ? 300 : 0) });
  const slow = createConfirmationWorker({ ...env, config: { ...env.config, chains: { ETH: { ...env.config.chains.ETH!, rpc_url: proxy.url } } } });
  await slow.start();
  try {
    await manyBlocksDue();
  } finally {
    await slow.stop();
    await proxy.close();
  }
});

async function manyBlocksDue() {
  const blocks: { block: number; to: string[] }[] = [];
  for (let i = 0; i < 12; i++) blocks.push(await depositBlock(0xc0 + i, 2));
  await chain.mine(CONFIRM);
  // every job of every block runs now, on either worker, not only the one the head wakes per block
  await env.queues.confirm.promoteJobs();
  const all = blocks.reduce((n, b) => n + b.to.length, 0);
  await eventually(() => blocks.reduce((n, b) => n + finalsOf(b.block).length, 0) === all, 90_000);
  const ids = (await env.db.prisma.deposit.findMany({ where: { blockNumber: { in: blocks.map((b) => b.block) } }, select: { id: true } })).map((d) => `deposit-${d.id}`);
  await eventually(async () => {
    await env.queues.confirm.promoteJobs();
    const states = await Promise.all(ids.map(async (id) => (await env.queues.confirm.getJob(id))?.getState()));
    return states.every((st) => st === "completed");
  }, 60_000);
  const jobs = await Promise.all(ids.map((id) => env.queues.confirm.getJob(id)));
  // a failed attempt leaves its error in the job's stacktrace even after a later attempt completed it
  const failedOnce = jobs.filter((j) => (j?.stacktrace?.length ?? 0) > 0 || j?.failedReason);
  assert.deepEqual(
    failedOnce.map((j) => `${j!.id}: ${j!.failedReason ?? j!.stacktrace?.[0]?.split("\n")[0]}`),
    [],
    "a job failed on its way (a block-lock holder waiting for a pool connection other holders keep)",
  );
  for (const b of blocks) assert.equal(finalsOf(b.block).length, b.to.length, `block ${b.block}`);
}
