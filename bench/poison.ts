/**
 * poison: does hostile input slow down an honest request? The time from
 * publishing a signed request to its answer on the response queue (a
 * validly signed refusal: the whole path bridge -> MySQL -> outbox ->
 * RabbitMQ), measured
 *   - alone, with the bridge idle;
 *   - right behind a hundred honest requests (accepted withdrawals), the
 *     same load without hostility, for comparison;
 *   - right behind a hundred poison messages (tests/helpers/poison-corpus.ts:
 *     oversize ids, deep nesting, duplicated keys, non-objects, unsigned...);
 *   - across a restart: the hundred poison messages and the request queued
 *     while no bridge runs, then a bridge started; compared with the request
 *     queued alone the same way.
 * Raw baseline in the same run: a RabbitMQ round trip (publish, consume on
 * the response side, no work).
 *
 *   npx tsx bench/poison.ts [--smoke] [--n 30]
 */
import * as amqp from "amqplib";
import { RABBIT_URL } from "../tests/helpers/env.ts";
import { poisonCorpus } from "../tests/helpers/poison-corpus.ts";
import { signMessage } from "../shared/domain/signature.ts";
import { declareRoutes } from "../shared/adapters/amqp.ts";
import { RMQ_ROUTE_KEYS } from "../shared/config/schema.ts";
import { createBridge } from "../bridge/main.ts";
import { fmt, isSmoke, printResult, saveResult } from "./lib/report.ts";
import { argNumber, createBenchEnv, runMain } from "./lib/bench-env.ts";

const smoke = isSmoke();
const N = argNumber("--n", smoke ? 3 : 30);
const RESTARTS = smoke ? 1 : 8;
const POISON = 100;

const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))]!;

async function main() {
  const env = await createBenchEnv({ anvil: false });
  const rmq = env.config.rmq_config;
  const conn = await amqp.connect(RABBIT_URL, { noDelay: true });
  const ch = await conn.createConfirmChannel();
  await declareRoutes(ch, RMQ_ROUTE_KEYS.map((k) => rmq[k]));
  const hot = "0x" + "ab".repeat(20);
  await env.db.prisma.wallet.create({ data: { chain: "ETH", address: hot, kind: "hot", encryptedKey: "bench", keyId: "bench" } });

  // answers, by queue_id, with the time they arrived
  const answered = new Map<string, number>();
  const waiting = new Map<string, () => void>();
  const listener = await conn.createChannel();
  await listener.consume(rmq.withdraw_resp.queue, (m) => {
    if (!m) return;
    const id = (JSON.parse(m.content.toString()) as { queue_id: string }).queue_id;
    answered.set(id, performance.now());
    waiting.get(id)?.();
    listener.ack(m);
  });
  const drainDead = await conn.createChannel();
  await drainDead.consume(rmq.dead.queue, (m) => m && drainDead.ack(m));

  const publish = async (kind: "topup" | "withdraw" | "pay" | "remove", body: Buffer) => {
    ch.publish(rmq[kind].exchange, rmq[kind].routing[0]!, body, { persistent: true });
  };
  let seq = 0;
  // a signed request the gateway refuses at once (unknown chain): answered through the whole path
  const honest = () => {
    const queueId = `honest-${seq++}`;
    const body = Buffer.from(JSON.stringify(signMessage({ queue_id: queueId, from_address: hot, to_address: hot, amount: "1", chain: "BTC", symbol: "USDT", timestamp: Math.floor(Date.now() / 1000) }, env.key)));
    return { queueId, body };
  };
  const answer = (queueId: string) =>
    new Promise<number>((resolve) => {
      if (answered.has(queueId)) return resolve(answered.get(queueId)!);
      waiting.set(queueId, () => resolve(answered.get(queueId)!));
    });
  let round = 0;
  const poison = async (count: number) => {
    let sent = 0;
    while (sent < count) {
      for (const p of poisonCorpus({ key: env.key, round: round++, from: hot, maxBatch: env.config.limits.max_batch, maxBytes: env.config.limits.max_message_bytes })) {
        if (sent++ >= count) break;
        await publish(p.kind, p.bytes);
      }
    }
  };
  const honestLoad = async (count: number) => {
    for (let i = 0; i < count; i++) {
      const body = { queue_id: `load-${seq++}`, from_address: hot, to_address: "0x" + (seq + 1).toString(16).padStart(40, "0"), amount: "1.5", chain: "ETH", symbol: "USDT", timestamp: Math.floor(Date.now() / 1000) };
      await publish("withdraw", Buffer.from(JSON.stringify(signMessage(body, env.key))));
    }
  };
  const timeOne = async (before: () => Promise<void>) => {
    await before();
    const h = honest();
    const t0 = performance.now();
    await publish("withdraw", h.body);
    await ch.waitForConfirms();
    return (await answer(h.queueId)) - t0;
  };

  // raw: a RabbitMQ round trip to a consumer, no work
  const rawQ = `bench.poison.raw.${Date.now()}`;
  await ch.assertQueue(rawQ, { durable: false, autoDelete: true });
  const rawCh = await conn.createChannel();
  const rawGot = new Map<string, () => void>();
  await rawCh.consume(rawQ, (m) => {
    if (!m) return;
    rawCh.ack(m);
    rawGot.get(m.content.toString())?.();
  });
  const raw: number[] = [];
  for (let i = 0; i < N; i++) {
    const id = `raw-${i}`;
    const got = new Promise<void>((r) => rawGot.set(id, r));
    const t0 = performance.now();
    ch.sendToQueue(rawQ, Buffer.from(id));
    await got;
    raw.push(performance.now() - t0);
  }

  let bridge = createBridge({ ...env, communicationKey: env.key });
  await bridge.start();
  await timeOne(async () => undefined); // warm-up
  const alone: number[] = [];
  const behindHonest: number[] = [];
  const behind: number[] = [];
  for (let i = 0; i < N; i++) {
    alone.push(await timeOne(async () => undefined));
    behindHonest.push(await timeOne(() => honestLoad(POISON)));
    behind.push(await timeOne(() => poison(POISON)));
  }
  await bridge.stop();

  // across a restart: queued while no bridge runs, then a bridge starts
  const restart = async (before: () => Promise<void>) => {
    await before();
    const h = honest();
    await publish("withdraw", h.body);
    await ch.waitForConfirms();
    bridge = createBridge({ ...env, communicationKey: env.key });
    const t0 = performance.now();
    await bridge.start();
    const ms = (await answer(h.queueId)) - t0;
    await bridge.stop();
    return ms;
  };
  const cleanRestart: number[] = [];
  const honestRestart: number[] = [];
  const poisonRestart: number[] = [];
  for (let i = 0; i < RESTARTS; i++) {
    cleanRestart.push(await restart(async () => undefined));
    honestRestart.push(await restart(() => honestLoad(POISON)));
    poisonRestart.push(await restart(() => poison(POISON)));
  }

  const row = (metric: string, xs: number[], base: number[], ratioTo: number[] | null, target?: string, met?: boolean) => ({
    metric: `${metric} p50 ms (p95 ${fmt(pct(xs, 95))})`,
    value: fmt(pct(xs, 50)),
    raw: fmt(pct(base, 50)),
    ratio: ratioTo ? (pct(xs, 50) / pct(ratioTo, 50)).toFixed(2) : undefined,
    target,
    met,
  });
  const result = saveResult({
    name: "poison",
    title: "poison — an honest request's answer time behind a hundred poison messages (one bridge process)",
    description:
      "Time from publishing a signed request (refused at once: unknown chain, so it travels bridge -> MySQL -> outbox -> response queue) to its answer. " +
      "Alone; right behind 100 poison messages (the fault tests' corpus: oversize ids, deep nesting, duplicated keys, non-objects, unsigned, oversize batches...); " +
      "and across a restart (the poison and the request queued while no bridge runs, timed from the new bridge's start, against the request queued alone). " +
      "Raw: a RabbitMQ publish-to-consumer round trip, no work. Ratios: against the same request behind the same number of honest requests, and after a start without poison.",
    rows: [
      row("answer, alone", alone, raw, null),
      row("answer, behind 100 honest withdrawals", behindHonest, raw, alone),
      row("answer, behind 100 poison messages (ratio: to behind 100 honest)", behind, raw, behindHonest, "<= 2x behind honest", pct(behind, 50) <= 2 * pct(behindHonest, 50)),
      row("answer after a bridge start, alone in the queue", cleanRestart, raw, null),
      row("answer after a bridge start, behind 100 honest withdrawals", honestRestart, raw, cleanRestart),
      row("answer after a bridge start, behind 100 poison messages (ratio: to behind 100 honest)", poisonRestart, raw, honestRestart, "<= 2x behind honest", pct(poisonRestart, 50) <= 2 * pct(honestRestart, 50)),
    ],
    params: { n: N, restarts: RESTARTS, poison: POISON },
    notes: [
      "The hundred poison messages are settled in the same batches as the honest one (dead letters go out on one confirm channel, refusals through the outbox); " +
        "none of them can fail its batch, so nothing waits for a retry or a backoff: what they cost is reading them. They are much larger than honest " +
        "requests (the corpus averages about 5 KB a message against 250 bytes: ids of 10,000 characters, a batch of max_batch + 1 orders, messages at the " +
        "size limit), and every signed one is verified (canonical JSON + HMAC) before anything else is decided.",
      "Before this work (main at 950ff67) the first oversize id jammed the intake: the honest request behind it was never answered.",
    ],
    smoke,
  });
  printResult(result);
  await listener.close();
  await drainDead.close();
  await rawCh.close();
  await ch.close();
  await conn.close();
  await env.cleanup();
}

runMain(main);
