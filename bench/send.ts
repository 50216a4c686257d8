/**
 * send: payouts per second broadcast by the transfer-sender, from one hot
 * wallet and from ten, with blocks mined meanwhile. The raw
 * ceiling, in the same run, is ethers' NonceManager signing and sending the
 * same USDT transfers from as many wallets with the same number in flight.
 *
 *   npx tsx bench/send.ts [--smoke] [--one 2000] [--ten 5000]
 */
import * as amqp from "amqplib";
import { Contract, JsonRpcProvider, Network, NonceManager, SigningKey, Transaction, Wallet } from "ethers";
import { RABBIT_URL } from "../tests/helpers/env.ts";
import { signMessage } from "../shared/domain/signature.ts";
import { encryptPrivateKey } from "../shared/adapters/keystore.ts";
import { erc20 } from "../shared/adapters/chain.ts";
import { decimalToUnits } from "../shared/domain/amount.ts";
import { fmt, isSmoke, printResult, saveResult } from "./lib/report.ts";
import { argNumber, benchAddress, type BenchEnv, chainDriver, type ChainDriver, createBenchEnv, phase, runMain, sleep, startRoles } from "./lib/bench-env.ts";
import { startProfile, stopProfile } from "./lib/profile.ts";
import { SENDER_PHASES } from "../shared/metrics.ts";
import { createChainReads } from "../shared/transfers/chain-reads.ts";
import { erc20TransferData } from "../shared/transfers/tx-build.ts";
import { cpuWindow, describeCpu } from "./lib/cpu.ts";
import { ensureDeployed, plannedContract } from "../shared/adapters/delegation-contracts.ts";
import { recordDelegationContract } from "../shared/adapters/db/delegation-contracts.ts";
import { createProcessGroup, writeConfigFile, type ProcessGroup } from "../tests/helpers/processes.ts";

const smoke = isSmoke();
const ONE = argNumber("one", smoke ? 40 : 2_000);
const TEN = argNumber("ten", smoke ? 100 : 5_000);
const PER_REQUEST = 200;
const BLOCK_MS = argNumber("block-ms", 250);
/** the one-wallet figure issue 13 quotes ("today"), with the raw ceiling of the same run (BENCHMARKS.md at that commit) */
const ISSUE_FIGURE = { rate: 376, raw: 200, commit: "f02151a" };
/** one-wallet rounds, each side once per round */
const ROUNDS = argNumber("rounds", smoke ? 1 : 3);

/** completed send jobs and how many runs they took in all (BullMQ's attemptsStarted counts every start, a put-off one too) */
async function sendJobRuns(env: BenchEnv): Promise<{ completed: number; runs: number }> {
  const done = await env.queues.transfer.getJobs(["completed"], 0, -1);
  return { completed: done.length, runs: done.reduce((a, j) => a + (j.attemptsStarted ?? 0), 0) };
}

/** amount i in USDT, assorted: 1.000001 .. 50.999 */
const amountOf = (i: number) => `${1 + (i % 50)}.${String((i * 7919) % 1000).padStart(3, "0")}`;

interface Payout {
  to: string;
  amount: string;
}

async function main() {
  const env = await createBenchEnv({ anvilArgs: ["--gas-limit", "1000000000"], chain: { block_time_ms: BLOCK_MS } });
  const chain = await chainDriver(env);
  let bridgeGroup: ProcessGroup | null = null;
  let sender: Awaited<ReturnType<typeof startRoles>> | null = null;
  let mining = false;
  let miner: Promise<void> = Promise.resolve();
  const conn = await amqp.connect(RABBIT_URL, { noDelay: true });
  try {
    // our hot wallets, and as many others for the raw runs (a key used elsewhere would skew our nonce counter)
    const wallets: Wallet[] = Array.from({ length: 10 }, () => Wallet.createRandom() as unknown as Wallet);
    const rawWallets: Wallet[] = Array.from({ length: 10 }, () => Wallet.createRandom() as unknown as Wallet);
    for (const w of wallets) {
      const address = w.address.toLowerCase();
      const e = encryptPrivateKey(env.masterKey, w.privateKey, address);
      await env.db.prisma.wallet.create({ data: { chain: "ETH", address, kind: "hot", encryptedKey: e.encryptedKey, keyId: e.keyId } });
    }
    for (const w of [...wallets, ...rawWallets]) await chain.provider.send("anvil_setBalance", [w.address, "0x" + (10n ** 24n).toString(16)]);
    await chain.mintMany(
      [...wallets, ...rawWallets].map((w) => w.address),
      () => 10n ** 15n,
    );
    await chain.mine(1);
    await chain.setAutomine(false);
    mining = true;
    miner = (async () => {
      while (mining) {
        await sleep(BLOCK_MS);
        if (mining) await chain.mine(1);
      }
    })();

    // The bridge runs as production runs it: a process of its own (`payment start --role bridge`), beside the
    // sender in this one. It takes the pay requests in, and publishes the status-2 notifications the sender
    // writes (woken through Redis, as across machines).
    bridgeGroup = createProcessGroup({ configFile: writeConfigFile(env.config), secrets: { key: env.key }, logLevel: "info" });
    const bridge = bridgeGroup.start("bridge", ["bridge"]);
    await bridge.ready(60_000);
    const publisher = await conn.createConfirmChannel();
    let seq = 0;

    /** payouts for `count` transfers spread over `from` wallets, recipients fresh */
    const plan = (from: Wallet[], count: number, tag: number) =>
      from.map((w, k) => ({
        wallet: w,
        payouts: Array.from({ length: Math.ceil(count / from.length) }, (_, j): Payout => ({ to: benchAddress(tag, k * 100_000 + j), amount: amountOf(j) })),
      }));

    // Batching is switched per sender start (the chain's `batching` key), with the BatchExecutor recorded from the
    // start as `payment contracts deploy` does: "off" signs one transaction per payout, "7702" (the node supports
    // it) plans a wallet's token payouts into batches.
    const deployer = Wallet.createRandom().connect(chain.provider);
    await chain.provider.send("anvil_setBalance", [deployer.address, "0x" + (10n ** 21n).toString(16)]);
    const executor = await ensureDeployed(chain.provider, deployer, plannedContract("BatchExecutor"));
    await recordDelegationContract(env.db.pool, "ETH", executor, deployer.address.toLowerCase(), "bench");
    const configWith = (batching: "off" | "7702") => ({ ...env.config, chains: { ...env.config.chains, ETH: { ...env.config.chains.ETH!, batching } } });

    /** `rawAgain`: the raw side's rate measured earlier in this run for the same shape (not run twice) */
    const measure = async (label: string, batching: "off" | "7702", from: Wallet[], rawFrom: Wallet[], count: number, tag: number, rawAgain?: number) => {
      const work = plan(from, count, tag);
      const rawWork = plan(rawFrom, count, tag + 1);
      const n = work.reduce((a, w) => a + w.payouts.length, 0);
      let rawMs = rawAgain === undefined ? 0 : (n / rawAgain) * 1000;
      if (rawAgain === undefined) {

      // raw: ethers NonceManager per wallet, `transfer` calls, 50 in flight in total
      const inflight = Math.max(1, Math.floor(50 / from.length));
      const rawStart = performance.now();
      await Promise.all(
        rawWork.map(async ({ wallet, payouts }) => {
          const signer = new NonceManager(wallet.connect(chain.provider));
          const usdt = new Contract(env.usdt!, erc20, signer);
          let next = 0;
          await Promise.all(
            Array.from({ length: inflight }, async () => {
              for (let i = next++; i < payouts.length; i = next++) {
                const p = payouts[i]!;
                await usdt.getFunction("transfer")(p.to, decimalToUnits(p.amount, 6));
              }
            }),
          );
        }),
      );
      rawMs = performance.now() - rawStart;
      await drainPool(chain, env);
      }

      // the system: pay requests through the bridge, then the sender starts
      const before = await env.db.prisma.transfer.count();
      for (const { wallet, payouts } of work) {
        for (let i = 0; i < payouts.length; i += PER_REQUEST) {
          const body = signMessage(
            {
              queue_id: `bench-pay-${tag}-${seq++}`,
              from_address: wallet.address.toLowerCase(),
              chain: "ETH",
              symbol: "USDT",
              transactions: payouts.slice(i, i + PER_REQUEST).map((p, j) => ({ order_id: `o${i + j}`, to_address: p.to, amount: p.amount })),
              timestamp: Math.floor(Date.now() / 1000),
            },
            env.key,
          );
          publisher.publish(env.config.rmq_config.pay.exchange, env.config.rmq_config.pay.routing[0]!, Buffer.from(JSON.stringify(body)), { persistent: true });
        }
      }
      await publisher.waitForConfirms();
      for (let i = 0; (await env.db.prisma.transfer.count({ where: { state: "queued" } })) < n; i++) {
        if (i > 1200) throw new Error("the bridge did not queue the payouts");
        await sleep(50);
      }
      if ((await env.db.prisma.transfer.count()) - before !== n) throw new Error("unexpected transfers");
      phase(`${label}: ${n} payouts queued`);
      const sentBefore = await sentCount(env);
      const phasesBefore = await phaseSeconds(env);
      const jobsBefore = await sendJobRuns(env);
      // what the system burns idle meanwhile (anvil mining its blocks, the servers' own timers), for the
      // settled figure below, whose window is longer
      const idle = cpuWindow({ anvil: env.anvil?.process.pid, bridge: bridge.pid });
      await sleep(1_000);
      const idleUse = idle.stop();
      await startProfile();
      const cpu = cpuWindow({ anvil: env.anvil?.process.pid, bridge: bridge.pid });
      const t0 = performance.now();
      sender = await startRoles(env, ["transfer-sender"], configWith(batching));
      for (;;) {
        if ((await sentCount(env)) - sentBefore >= n) break;
        await sleep(10);
      }
      const ms = performance.now() - t0;
      const cpuUse = cpu.stop();
      const phasesAfter = await phaseSeconds(env);
      await stopProfile(`send-${label}`);
      // Outside the clock: the phase's own jobs that rescheduled themselves while the drain held the
      // wallet run to completion before the sender stops. Left over, they would stand in the next
      // phase's queue ahead of its jobs (measured: 4,000 of them held the next wallet's first drain
      // back by 3.5 s).
      for (let i = 0; ; i++) {
        const c = await env.queues.transfer.getJobCounts("waiting", "delayed", "active", "prioritized");
        if (Object.values(c).every((v) => v === 0)) break;
        if (i > 1200) throw new Error(`the transfer queue does not settle: ${JSON.stringify(c)}`);
        await sleep(25);
      }
      // The whole cost of a payout: the same CPU window, on until those jobs have ended too (what a sender
      // under steady load pays per payout), and how often a payout's send job ran.
      const settledMs = performance.now() - t0;
      const settledCpu = cpu.stop();
      const jobs = await sendJobRuns(env);
      const jobRuns = (jobs.runs - jobsBefore.runs) / Math.max(1, jobs.completed - jobsBefore.completed);
      await sender.stop();
      sender = null;
      const failed = await env.db.prisma.transfer.count({ where: { state: { in: ["failed", "awaiting_approval", "queued", "signed"] } } });
      if (failed > 0) throw new Error(`${failed} transfers did not go out`);
      await drainPool(chain, env);
      phase(`${label}: sent in ${fmt(ms)} ms (${fmt((n / ms) * 1000)}/s), raw ${fmt(rawMs)} ms`);
      const phases = SENDER_PHASES.map((p) => `${p} ${(((phasesAfter.get(p) ?? 0) - (phasesBefore.get(p) ?? 0)) * 1000 / n).toFixed(2)}`).join(", ");
      // CPU time of every process of the system (this one, anvil, MariaDB, Redis, RabbitMQ) per payout
      const cpuMs = (use: Record<string, number>, windowMs: number) => (Object.values(use).reduce((a, b) => a + b, 0) / 100) * (windowMs / n);
      const cpuPerPayout = cpuMs(cpuUse, ms);
      const cpuPerPayoutSettled = cpuMs(settledCpu, settledMs) - cpuMs(idleUse, settledMs);
      // the same per process: who spends it
      const cpuByProcess = Object.entries(cpuUse)
        .sort((a, b) => b[1] - a[1])
        .map(([k, v]) => `${k} ${((v / 100) * (ms / n)).toFixed(2)}`)
        .join(", ");
      return { n, rate: (n / ms) * 1000, raw: (n / rawMs) * 1000, cpu: describeCpu(cpuUse), cpuPerPayout, cpuPerPayoutSettled, cpuByProcess, jobRuns, phases, ms };
    };

    // One wallet, in alternating rounds (plain then batched, batched then plain, ...): this shared two-core
    // machine drifts by a third between runs minutes apart, so each side's figure is the median of its rounds,
    // and the ratio is taken between medians. Each side has a wallet of its own; the batched wallet's first
    // round also installs its delegation (one block's wait), the later rounds find it installed, as a hot
    // wallet in service does.
    const oneRuns: Awaited<ReturnType<typeof measure>>[] = [];
    const oneBatchedRuns: Awaited<ReturnType<typeof measure>>[] = [];
    let tag = 20;
    for (let r = 0; r < ROUNDS; r++) {
      const plain = async () => oneRuns.push(await measure(`one#${r + 1}`, "off", wallets.slice(0, 1), rawWallets.slice(0, 1), ONE, tag++, oneRuns[0]?.raw));
      const batched = async () => oneBatchedRuns.push(await measure(`one-7702#${r + 1}`, "7702", wallets.slice(1, 2), rawWallets.slice(0, 1), ONE, tag++, oneRuns[0]?.raw));
      if (r % 2 === 0) {
        await plain();
        await batched();
      } else {
        await batched();
        await plain();
      }
    }
    const one = medianRun(oneRuns);
    const oneBatched = medianRun(oneBatchedRuns);
    const ten = await measure("ten", "off", wallets, rawWallets, TEN, 7);
    const tenBatched = await measure("ten-7702", "7702", wallets, rawWallets, TEN, 11, ten.raw);
    const node = await nodeCeilings(env, chain, rawWallets[0]!, smoke ? 50 : 500);
    mining = false;
    await miner;

    const result = saveResult({
      name: "send",
      title: "send — payouts broadcast per second by the transfer-sender",
      description:
        "Batch pay requests (200 payouts each, assorted USDT amounts to fresh addresses) go through the bridge (a process of its own) until every transfer is queued; " +
        "then the transfer-sender role starts (transfer_concurrency 50) and the clock runs until every transfer is `sent` (signed, stored, " +
        `broadcast, status-2 notification written). anvil mines a block every ${BLOCK_MS} ms meanwhile (a short interval keeps the pending pool small: ` +
        "the raw side's estimates, at the node's default block, run against it; ours ask at `latest`). Raw: ethers NonceManager signing and sending " +
        "the same transfers (USDT `transfer`, gas estimated per call like ours) from as many wallets of its own, 50 in flight in total, in the same run.",
      rows: [
        { metric: "payouts/s, one hot wallet", value: fmt(one.rate), raw: fmt(one.raw), ratio: (one.rate / one.raw).toFixed(2), target: ">= 300/s and >= 0.5 of raw", met: one.rate >= 300 && one.rate / one.raw >= 0.5 },
        { metric: "payouts/s, ten hot wallets", value: fmt(ten.rate), raw: fmt(ten.raw), ratio: (ten.rate / ten.raw).toFixed(2), target: ">= 1,000/s and >= 0.5 of raw", met: ten.rate >= 1000 && ten.rate / ten.raw >= 0.5 },
        {
          metric: "payouts/s, one hot wallet, EIP-7702 batches (ratio: to one transaction per payout, this run)",
          value: fmt(oneBatched.rate),
          raw: fmt(one.raw),
          ratio: (oneBatched.rate / one.rate).toFixed(2),
          target: ">= 3x one transaction per payout",
          met: oneBatched.rate >= 3 * one.rate,
        },
        {
          metric: "payouts/s, ten hot wallets, EIP-7702 batches (ratio: to one transaction per payout, this run)",
          value: fmt(tenBatched.rate),
          raw: fmt(ten.raw),
          ratio: (tenBatched.rate / ten.rate).toFixed(2),
        },
      ],
      params: { one_wallet: one.n, rounds: ROUNDS, ten_wallets: ten.n, per_request: PER_REQUEST, block_ms: BLOCK_MS, transfer_concurrency: env.config.workers.transfer_concurrency },
      notes: [
        `One wallet, payouts/s of each round in the order run (the rows give each side's median; a round is ${fmt(ONE)} payouts): ` +
          `one transaction per payout ${oneRuns.map((x) => fmt(x.rate)).join(", ")}; EIP-7702 batches ${oneBatchedRuns.map((x) => fmt(x.rate)).join(", ")}. ` +
          "Rounds alternate which side goes first; the batched wallet's first round includes the one block it waits for the batch that installs its delegation.",
        `The drain's time per payout by phase (ms; payment_sender_phase_seconds, summed over the drains of the median round, divided by its payouts; the wall time per payout for comparison): ` +
          `one wallet (wall ${(one.ms / one.n).toFixed(2)}): ${one.phases}; one wallet, 7702 batches (wall ${(oneBatched.ms / oneBatched.n).toFixed(2)}): ${oneBatched.phases}. ` +
          "Phases: select (the queued rows), node (balances, nonces, fees and gas at one block: one estimate per transfer, or one eth_simulateV1 of them all while they may be batched), lock (the rows again FOR UPDATE), " +
          "plan (funds in flight, policy usage, the planner), sign (nonces and signatures), persist (attempt rows, transfer rows, audit, COMMIT), " +
          "job-logs (a line on each job after broadcasting; the lines written after signing are not waited for), broadcast (JSON-RPC), record (sent rows and status-2 notifications), confirm-jobs (the confirmation jobs added).",
        `CPU while sending, in % of one core (2 cores = 200%): one wallet: ${one.cpu}; ten wallets: ${ten.cpu}; one wallet, 7702 batches: ${oneBatched.cpu}; ten wallets, 7702 batches: ${tenBatched.cpu}. ` +
          `CPU time per payout, all those processes together (ms): one transaction per payout ${one.cpuPerPayout.toFixed(2)}, EIP-7702 batches ${oneBatched.cpuPerPayout.toFixed(2)} (one wallet, median rounds); ` +
          `the same until every send job of the round has ended too (the rest of their runs, after the clock stopped; less what the same processes burn idle over as long, measured for a second before): ${one.cpuPerPayoutSettled.toFixed(2)} and ${oneBatched.cpuPerPayoutSettled.toFixed(2)}; ` +
          `runs per send job: ${one.jobRuns.toFixed(2)} and ${oneBatched.jobRuns.toFixed(2)}; ` +
          `per process (ms per payout), one transaction per payout: ${one.cpuByProcess}; EIP-7702 batches: ${oneBatched.cpuByProcess}. ` +
          "With both cores busy, the ratio of these bounds the ratio of the rates.",
        "EIP-7702 batches remove what is per transaction (sign, broadcast, and most of node in the phase figures above); what is left is per payout. " +
          "For it, earlier: the payouts' gas comes from one eth_simulateV1 of them all (a payout whose simulation fails gets its own " +
          "eth_estimateGas, which alone can refuse it as `reverted` before signing: what the business sees is unchanged); their ERC-20 call data is " +
          "written out instead of going through the ABI coder; the 24 h policy usage is read only when a velocity limit applies; a sent transfer's " +
          "job reads no attempt row while it is younger than stuck_after_s; the drain that signs a wallet's authorizing batch watches for it to be " +
          "mined and goes on; the next batch is signed while the one before is broadcast and recorded; a returning job checks its confirmation " +
          "job with one EXISTS; the returning jobs' row reads are made together; the sender's own Redis connection pipelines what is asked in one " +
          "turn. In this run, new: per wallet the bridge starts the first send job of a batch of requests at once and puts the others (the " +
          "followers) off by 10 s (shared/domain/send-pacing.ts); the drain starts each follower's job (BullMQ promote) as soon as it has sent " +
          "or ended its transfer, so every send job runs once, right after its transfer was handled: runs per send job are 1.00 on both sides " +
          "(the last record: 1.92 and 1.50; this machine on the same day before the change: 2.21 and 2.15, when the followers' short delays " +
          "had run out before the sender started and each ran once to be put off and once to end). And the bridge runs as a process of its " +
          "own, as in production (it took the requests in and publishes the status-2 notifications; before, it ran in the sender's process). " +
          "What bounds one wallet in EIP-7702 batches now: the CPU of the whole system (the CPU note: both cores close to busy), nearly all of " +
          "it per payout and shared with the plain path: the payout's send job (one run, two log lines, its confirmation job: Redis and this " +
          "process), its rows (attempt, transfer twice, three audit rows, the notification: MariaDB), and its status-2 notification (the " +
          "bridge signs it, RabbitMQ takes it). The plain path is bound by its drain's signing side instead (one signature and one estimate " +
          "per payout, the phase figures), so it leaves part of the CPU unused. 3x the plain rate would need the per-payout CPU of the batched " +
          "path a fifth to a quarter lower than here, which none of the changes that keep one job and one audit trail per order gets near: " +
          "one job per drained batch and fewer rows per payout would, and both change what an operator sees per order. " +
          `Against the issue's own figure (${ISSUE_FIGURE.rate}/s from one wallet at ${ISSUE_FIGURE.commit}, when raw ethers made ${ISSUE_FIGURE.raw}/s on that day's machine: ` +
          `${(ISSUE_FIGURE.rate / ISSUE_FIGURE.raw).toFixed(2)} of raw), the batched wallet here makes ${(oneBatched.rate / one.raw).toFixed(2)} of this run's raw ceiling, ` +
          `${(oneBatched.rate / one.raw / (ISSUE_FIGURE.rate / ISSUE_FIGURE.raw)).toFixed(1)}x the issue's figure on that yardstick. ` +
          "Gas per payout, where batches pay off, is in gas-7702.",
        "EIP-7702 rows: the same pay requests, the BatchExecutor recorded as `payment contracts deploy` does and the sender started with `batching: \"7702\"` (\"off\" for the other rows): each wallet's drain plans its token payouts into batches (at most 200, within batch_gas_budget) and signs one transaction per batch (the first also carries the wallet's authorization), stores it for every member, broadcasts it once. The raw column repeats the plain rows' raw figure (one transaction per transfer is all raw ethers can do).",
        `node and signing ceilings, same run: signing USDT transfers in JS (ethers SigningKey) ${fmt(node.signPerS)}/s on one core; ` +
          `pre-signed eth_sendRawTransaction awaited one at a time through a provider configured like ours (2 ms batch stall) ${fmt(node.sequentialPerS)}/s, ` +
          `the same sent as JSON-RPC batches ${fmt(node.batchedPerS)}/s; eth_estimateGas one at a time ${fmt(node.estimateIdlePerS)}/s with an empty pool, ` +
          `${fmt(node.estimateBusyPerS)}/s with ${fmt(node.pending)} transactions pending (anvil estimates against its pending block by default); ` +
          `at \`latest\`, 200 at once (as the sender asks one transaction per payout), ${fmt(node.estimateLatestPerS)}/s with the same pool; ` +
          `the same 200 in one eth_simulateV1 at the head (as the sender asks while it may batch) ${fmt(node.simulatePerS)}/s.`,
        "How a wallet is drained: per wallet one process at a time holds the address's lease and takes up to 200 queued transfers at a time: " +
          "gas for each (one eth_estimateGas each at `latest` in JSON-RPC batches of 100, or one eth_simulateV1 of them all while they may be " +
          "batched), one MySQL transaction that signs and stores them, then, while the next 200 are being signed, the raw transactions as " +
          "explicit JSON-RPC batches in nonce order and one `sent` transaction with the status-2 notifications. The other jobs of the wallet " +
          "wait in BullMQ's delayed set until the drain starts them, find their transfer sent and complete (one that runs before the drain " +
          "reached it reschedules itself, no attempt spent, so the 50 worker slots reach other wallets' jobs). Ten wallets: ten such drains at once, and MariaDB's share of the CPU rises.",
        "Changed in earlier work: gas estimated at `latest` instead of the node's default (anvil: its pending block, rebuilt from the whole pool " +
          "per estimate); explicit JSON-RPC batches for broadcasts (refusals inside a batch classified by ethers code as for one call); waiting " +
          "jobs give their worker slot back.",
      ],
      smoke,
    });
    printResult(result);
  } finally {
    mining = false;
    await miner;
    await (sender as { stop(): Promise<void> } | null)?.stop();
    await bridgeGroup?.stopAll();
    await conn.close().catch(() => undefined);
    chain.close();
    await env.cleanup();
  }
}

/**
 * What the node and JS signing allow, measured on anvil in the same run:
 * the bounds the transfer-sender's design meets (see BENCHMARKS.md).
 */
async function nodeCeilings(env: BenchEnv, chain: ChainDriver, wallet: Wallet, n: number) {
  const network = Network.from(BigInt(env.anvil!.chainId));
  // like shared/adapters/chain.ts's client: requests of one tick are batched after a 2 ms stall
  const provider = new JsonRpcProvider(env.anvil!.rpcUrl, network, { staticNetwork: network, batchMaxCount: 100, batchStallTime: 2 });
  try {
    await drainPool(chain, env);
    const key = new SigningKey(wallet.privateKey);
    let nonce = Number(await provider.send("eth_getTransactionCount", [wallet.address, "pending"]));
    const t = performance.now();
    const raws = Array.from({ length: 2 * n }, (_, i) => {
      const tx = Transaction.from({
        type: 2,
        chainId: env.anvil!.chainId,
        nonce: nonce++,
        to: env.usdt!,
        data: erc20.encodeFunctionData("transfer", [benchAddress(9, i), 1n]),
        gasLimit: 80_000n,
        maxFeePerGas: 100n * 10n ** 9n,
        maxPriorityFeePerGas: 10n ** 9n,
      });
      tx.signature = key.sign(tx.unsignedHash);
      return tx.serialized;
    });
    const signPerS = ((2 * n) / (performance.now() - t)) * 1000;
    const estimate = async (count: number) => {
      const t0 = performance.now();
      for (let i = 0; i < count; i++) {
        await provider.send("eth_estimateGas", [{ from: wallet.address, to: env.usdt, data: erc20.encodeFunctionData("transfer", [benchAddress(9, i), 1n]) }]);
      }
      return (count / (performance.now() - t0)) * 1000;
    };
    const estimateIdlePerS = await estimate(50);
    let t0 = performance.now();
    for (const r of raws.slice(0, n)) await provider.send("eth_sendRawTransaction", [r]);
    const sequentialPerS = (n / (performance.now() - t0)) * 1000;
    t0 = performance.now();
    await Promise.all(raws.slice(n).map((r) => provider.send("eth_sendRawTransaction", [r])));
    const batchedPerS = (n / (performance.now() - t0)) * 1000;
    const estimateBusyPerS = await estimate(20);
    // what the sender does: estimates at `latest`, a drain's worth at once (one JSON-RPC batch per 100)
    t0 = performance.now();
    await Promise.all(
      Array.from({ length: 200 }, (_, i) =>
        provider.send("eth_estimateGas", [{ from: wallet.address, to: env.usdt, data: erc20.encodeFunctionData("transfer", [benchAddress(9, i), 1n]) }, "latest"]),
      ),
    );
    const estimateLatestPerS = (200 / (performance.now() - t0)) * 1000;
    // what the sender does while it may batch: the same 200 transfers in one eth_simulateV1 at the head (ChainReads.simulateCalls)
    const reads = createChainReads(provider);
    const head = await reads.head();
    t0 = performance.now();
    const simulated = await reads.simulateCalls(
      Array.from({ length: 200 }, (_, i) => ({ from: wallet.address, to: env.usdt!, data: erc20TransferData(benchAddress(9, i), 1n), value: 0n })),
      head.number,
    );
    const simulatePerS = simulated ? (200 / (performance.now() - t0)) * 1000 : 0;
    await drainPool(chain, env);
    return { signPerS, sequentialPerS, batchedPerS, estimateIdlePerS, estimateBusyPerS, estimateLatestPerS, simulatePerS, pending: 2 * n };
  } finally {
    provider.destroy();
  }
}

/** the run with the median rate (rounds is odd by default; with an even count, the lower middle) */
function medianRun<T extends { rate: number }>(runs: T[]): T {
  return [...runs].sort((a, b) => a.rate - b.rate)[Math.floor((runs.length - 1) / 2)]!;
}

/** seconds spent so far in each phase of the wallets' drains (the histogram's sums) */
async function phaseSeconds(env: BenchEnv): Promise<Map<string, number>> {
  const m = await env.metrics.senderPhase.get();
  const out = new Map<string, number>();
  for (const v of m.values) {
    if (v.metricName !== "payment_sender_phase_seconds_sum") continue;
    const phase = String(v.labels.phase);
    out.set(phase, (out.get(phase) ?? 0) + v.value);
  }
  return out;
}

async function sentCount(env: BenchEnv): Promise<number> {
  const m = await env.metrics.transfers.get();
  return m.values.filter((v) => v.labels.status === "sent").reduce((a, v) => a + v.value, 0);
}

/** mine until the node's pool is empty, so one phase does not weigh on the next */
async function drainPool(chain: ChainDriver, env?: BenchEnv): Promise<void> {
  for (let i = 0; i < 100; i++) {
    const s = (await chain.provider.send("txpool_status", [])) as { pending: string; queued: string };
    if (Number(s.pending) === 0 && Number(s.queued) === 0) return;
    await chain.mine(1);
  }
  const inspect = (await chain.provider.send("txpool_inspect", [])) as Record<string, Record<string, Record<string, string>>>;
  const stuck = Object.entries(inspect).flatMap(([kind, byFrom]) =>
    Object.entries(byFrom).flatMap(([from, byNonce]) => Object.entries(byNonce).slice(0, 3).map(([nonce, what]) => `${kind} ${from} nonce ${nonce}: ${what}`)),
  );
  const from = Object.keys(inspect.queued ?? {})[0];
  if (from && env) {
    stuck.push(`latest nonce ${await chain.provider.send("eth_getTransactionCount", [from, "latest"])}`);
    const rows = (await env.db.pool.query(
      "SELECT t.nonce, t.state, a.tx_hash, LEFT(a.raw_tx, 4) AS t4, a.broadcast_at, COUNT(*) AS n FROM transfer t JOIN tx_attempt a ON a.transfer_id = t.id WHERE t.from_address = ? GROUP BY t.nonce, t.state, a.tx_hash, t4, a.broadcast_at ORDER BY t.nonce LIMIT 12",
      [from.toLowerCase()],
    )) as unknown[];
    for (const r of rows) stuck.push(JSON.stringify(r, (_, v) => (typeof v === "bigint" ? String(v) : v)));
  }
  throw new Error(`the node's transaction pool does not drain:\n${stuck.slice(0, 30).join("\n")}`);
}

runMain(main);
