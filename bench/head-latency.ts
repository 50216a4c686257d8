/**
 * head-latency: milliseconds from a block being mined to its deposit's
 * status-2 notification arriving on the response queue, with chain-watch
 * following the head over WebSocket (polling only every 10 s as a fallback,
 * the production default). The raw figure, in the same run, is the time to
 * receive the same block's header over a WebSocket newHeads subscription.
 *
 *   npx tsx bench/head-latency.ts [--smoke] [--samples 200] [--watched 100000]
 */
import { fmt, isSmoke, percentile, printResult, saveResult } from "./lib/report.ts";
import { argNumber, benchAddress, chainDriver, createBenchEnv, headClock, insertWatched, listenNotes, runMain, sleep, startRoles } from "./lib/bench-env.ts";
import { startProfile, stopProfile } from "./lib/profile.ts";
import { cpuWindow, describeCpu } from "./lib/cpu.ts";

const smoke = isSmoke();
const SAMPLES = argNumber("samples", smoke ? 5 : 200);
const WATCHED = argNumber("watched", smoke ? 1_000 : 100_000);
const WARMUP = 3;

async function main() {
  const env = await createBenchEnv();
  const chain = await chainDriver(env);
  const listener = await listenNotes(env.config.rmq_config.topup_resp.queue);
  const heads = await headClock(env);
  let roles: Awaited<ReturnType<typeof startRoles>> | null = null;
  try {
    await insertWatched(
      env.db,
      "ETH",
      "USDT",
      Array.from({ length: WATCHED }, (_, i) => benchAddress(2, i)),
    );
    roles = await startRoles(env, ["bridge", "chain-watch"]);
    // chain-watch places its cursor at the head and subscribes to new heads
    for (let i = 0; !(await env.db.prisma.chainCursor.findFirst()); i++) {
      if (i > 200) throw new Error("chain-watch placed no cursor");
      await sleep(50);
    }
    await sleep(1_000);
    await chain.setAutomine(false);

    const total: number[] = [];
    const raw: number[] = [];
    await startProfile();
    const cpu = cpuWindow({ anvil: env.anvil?.process.pid });
    for (let s = 0; s < WARMUP + SAMPLES; s++) {
      const to = benchAddress(2, (s * 7919) % WATCHED);
      const [tx] = await chain.mintMany([to], () => 1_000_000n + BigInt(s));
      const n = (await chain.head()) + 1;
      const header = heads.arrival(n);
      const seen = listener.waitCount((b) => b.tx_hash === tx && b.status === 2, 1, 30_000);
      const t0 = performance.now();
      await chain.mine(1);
      const [h, [note]] = await Promise.all([header, seen]);
      if (s >= WARMUP) {
        raw.push(h - t0);
        total.push(note!.at - t0);
      }
      // blocks at irregular intervals, never aligned with a poll or a timer
      await sleep(50 + ((s * 37) % 150));
    }
    const cpuUse = cpu.stop();
    await stopProfile("head-latency");

    const p50 = percentile(total, 50);
    const p99 = percentile(total, 99);
    const r50 = percentile(raw, 50);
    const r99 = percentile(raw, 99);
    const result = saveResult({
      name: "head-latency",
      title: "head-latency — block mined to its deposit's status 2 on the response queue",
      description:
        `chain-watch and a bridge run with ${fmt(WATCHED)} watched addresses and the production polling interval (WebSocket new heads wake the scanner). ` +
        "Each sample sends one USDT transfer to a watched address with automine off, then mines its block (anvil_mine) at irregular intervals; " +
        "the time runs from the mine call to the status-2 notification arriving at a consumer of the response queue. Path: newHeads -> " +
        "scanner reads the head, the block and its logs by hash (HTTP) -> recipients looked up in MySQL -> one transaction -> Redis wake-up -> " +
        "outbox publisher claims, signs and publishes with a publisher confirm. Raw: the same block's header arriving over a WebSocket subscription.",
      rows: [
        { metric: "p50 ms", value: fmt(p50, 1), raw: fmt(r50, 1), ratio: (p50 / r50).toFixed(1), target: "<= 150 ms", met: p50 <= 150 },
        { metric: "p99 ms", value: fmt(p99, 1), raw: fmt(r99, 1), ratio: (p99 / r99).toFixed(1), target: "<= 500 ms", met: p99 <= 500 },
      ],
      params: { samples: SAMPLES, watched: WATCHED, poll_interval_ms: env.config.chains.ETH!.poll_interval_ms },
      notes: [
        `max ${fmt(Math.max(...total), 1)} ms (raw max ${fmt(Math.max(...raw), 1)} ms) over ${SAMPLES} blocks; ratios here are value / raw (lower is better).`,
        `CPU over the sampling, in % of one core (2 cores = 200%): ${describeCpu(cpuUse)}.`,
        "Most of the time is round trips in series: the head over HTTP, the block and its logs (each call waits the provider's 2 ms batch " +
          "stall), the recipients' lookup, the block's transaction, the Redis wake-up, the outbox's claim and read, and the publisher confirm.",
      ],
      smoke,
    });
    printResult(result);
  } finally {
    await roles?.stop();
    await heads.close();
    await listener.close();
    chain.close();
    await env.cleanup();
  }
}

runMain(main);
