/**
 * What every chain benchmark needs: a test environment (own database, Redis
 * prefix, RabbitMQ queues and anvil, from tests/helpers/env.ts) configured
 * like production rather than like the tests (confirm_height 20, slow polling
 * so the WebSocket head subscription does the work, a 10-connection pool),
 * a driver that fills blocks with token transfers, bulk-inserted watches,
 * and a raw listener on a response queue that timestamps each notification.
 */
import * as amqp from "amqplib";
import { Interface, JsonRpcProvider, Network, Wallet, WebSocketProvider } from "ethers";
import { createTestEnv, RABBIT_URL, type TestEnv } from "../../tests/helpers/env.ts";
import { createDb, type Db } from "../../shared/adapters/db/client.ts";
import { placeholders } from "../../shared/adapters/db/sql.ts";
import { artifact } from "../../shared/devchain/anvil.ts";
import type { ConfigInput } from "../../shared/config/schema.ts";
import { buildServices, type Role } from "../../cli/roles.ts";
import type { Runtime } from "../../cli/runtime.ts";

type ChainInput = NonNullable<ConfigInput["eth_config"]>;

export interface BenchEnvOptions {
  /** start an anvil with the test token (default true) */
  anvil?: boolean;
  /** extra anvil arguments, e.g. a higher block gas limit */
  anvilArgs?: string[];
  /** chain settings over the production-like defaults */
  chain?: Partial<ChainInput>;
  poolSize?: number;
  config?: (c: ConfigInput) => ConfigInput;
}

/** The test env with a production-sized pool (the tests use 5 connections). */
export type BenchEnv = TestEnv & { db: Db };

export async function createBenchEnv(opts: BenchEnvOptions = {}): Promise<BenchEnv> {
  const poolSize = opts.poolSize ?? 10;
  const env = await createTestEnv({
    anvil: opts.anvil === false ? false : { extraArgs: opts.anvilArgs ?? [] },
    config: (c) => {
      const base: ConfigInput = {
        ...c,
        mysql_pool_size: poolSize,
        eth_config: {
          ...c.eth_config!,
          confirm_height: 20,
          poll_interval_ms: 2_000,
          rescan_interval_ms: 30_000,
          block_time_ms: 1_000,
          ...opts.chain,
        },
      };
      return opts.config ? opts.config(base) : base;
    },
  });
  const small = env.db;
  await small.close();
  const db = createDb({ url: env.config.mysql_url, poolSize });
  const cleanup = env.cleanup;
  return Object.assign(env, {
    db,
    async cleanup() {
      await db.close();
      await cleanup();
    },
  });
}

/**
 * Start roles exactly as `payment start --role ...` builds them
 * (cli/roles.ts), on the bench env's connections, in this process.
 */
export async function startRoles(env: BenchEnv, roles: Role[], config: BenchEnv["config"] = env.config): Promise<{ stop(): Promise<void> }> {
  const rt: Runtime = {
    config,
    secrets: { communicationKey: env.key, masterKey: env.masterKey },
    logger: env.logger,
    db: env.db,
    redis: env.redis,
    queues: env.queues,
    metrics: env.metrics,
    close: async () => undefined,
  };
  const services = await buildServices(rt, roles);
  const started: typeof services = [];
  for (const s of services) {
    await s.start();
    started.push(s);
  }
  let stopped = false;
  return {
    async stop() {
      if (stopped) return;
      stopped = true;
      for (const s of started.reverse()) await s.stop();
    },
  };
}

/** A distinct, valid-looking lowercase address per (tag, i). */
export const benchAddress = (tag: number, i: number) => `0x${tag.toString(16).padStart(4, "0")}${i.toString(16).padStart(36, "0")}`;

/** Watch `addresses` for `symbol` with raw multi-row INSERTs (the bridge's topup path is benchmarked by ingest). */
export async function insertWatched(db: Db, chain: string, symbol: string, addresses: string[], batch = 10_000): Promise<void> {
  for (let i = 0; i < addresses.length; i += batch) {
    const chunk = addresses.slice(i, i + batch);
    await db.pool.query(
      `INSERT INTO watched_address (chain, symbol, address, queue_id, active) VALUES ${placeholders(chunk.length, 5)}`,
      chunk.flatMap((a, j) => [chain, symbol, a, `bench-${i + j}`, 1]),
    );
  }
}

/**
 * The token owner's side of anvil: blocks full of USDT transfers made with
 * TestUSDT.mintMany (one Transfer log per recipient), signed locally and
 * mined on demand with automine off.
 */
export interface ChainDriver {
  provider: JsonRpcProvider;
  setAutomine(on: boolean): Promise<void>;
  /** send (not mine) mintMany transactions paying `units(i)` to each recipient, `perTx` recipients per transaction */
  mintMany(to: string[], units: (i: number) => bigint, perTx?: number): Promise<string[]>;
  mine(blocks?: number): Promise<void>;
  head(): Promise<number>;
  close(): void;
}

const usdtAbi = new Interface(artifact("TestUSDT").abi);

export async function chainDriver(env: TestEnv): Promise<ChainDriver> {
  const network = Network.from(BigInt(env.anvil!.chainId));
  const provider = new JsonRpcProvider(env.anvil!.rpcUrl, network, { staticNetwork: network, polling: false, batchMaxCount: 50, cacheTimeout: -1 });
  const owner = new Wallet(env.anvil!.keys[0]!);
  let nonce = Number(await provider.send("eth_getTransactionCount", [owner.address, "pending"]));
  const gwei = 10n ** 9n;
  return {
    provider,
    async setAutomine(on) {
      await provider.send("evm_setAutomine", [on]);
    },
    async mintMany(to, units, perTx = 500) {
      const raws: string[] = [];
      for (let i = 0; i < to.length; i += perTx) {
        const chunk = to.slice(i, i + perTx);
        const data = usdtAbi.encodeFunctionData("mintMany", [chunk, chunk.map((_, j) => units(i + j))]);
        raws.push(
          await owner.signTransaction({
            type: 2,
            chainId: env.anvil!.chainId,
            nonce: nonce++,
            to: env.usdt!,
            data,
            gasLimit: 200_000n + 40_000n * BigInt(chunk.length),
            maxFeePerGas: 100n * gwei,
            maxPriorityFeePerGas: gwei,
          }),
        );
      }
      return Promise.all(raws.map((r) => provider.send("eth_sendRawTransaction", [r]) as Promise<string>));
    },
    async mine(blocks = 1) {
      await provider.send("anvil_mine", [`0x${blocks.toString(16)}`]);
    },
    async head() {
      return Number(await provider.send("eth_blockNumber", []));
    },
    close: () => provider.destroy(),
  };
}

/** Block headers over WebSocket, timestamped on arrival (the "raw" side of the latency benchmarks). */
export interface HeadClock {
  /** resolves with the arrival time (performance.now()) of block `n`'s header */
  arrival(n: number): Promise<number>;
  close(): Promise<void>;
}

export async function headClock(env: TestEnv): Promise<HeadClock> {
  const network = Network.from(BigInt(env.anvil!.chainId));
  const ws = new WebSocketProvider(env.anvil!.wsUrl, network, { staticNetwork: network });
  const seen = new Map<number, number>();
  const waiters = new Map<number, (t: number) => void>();
  // ethers' block subscriber emits the number from the newHeads message itself (no fetch)
  await ws.on("block", (b: number) => {
    const t = performance.now();
    const n = Number(b);
    seen.set(n, t);
    waiters.get(n)?.(t);
    waiters.delete(n);
  });
  await sleep(300); // let the eth_subscribe round trip finish before anything is mined
  return {
    arrival(n) {
      const t = seen.get(n);
      if (t !== undefined) return Promise.resolve(t);
      return new Promise((resolve) => waiters.set(n, resolve));
    },
    async close() {
      await ws.destroy();
    },
  };
}

export interface Received {
  body: Record<string, unknown>;
  /** performance.now() on arrival */
  at: number;
}

/** A business system's consumer of one response queue, timestamping arrivals. */
export interface NoteListener {
  received: Received[];
  /** resolves when `pred` has held for `n` notifications */
  waitCount(pred: (b: Record<string, unknown>) => boolean, n: number, timeoutMs?: number): Promise<Received[]>;
  close(): Promise<void>;
}

export async function listenNotes(queue: string): Promise<NoteListener> {
  const conn = await amqp.connect(RABBIT_URL, { noDelay: true });
  const ch = await conn.createChannel();
  const received: Received[] = [];
  const checks = new Set<() => void>();
  await ch.assertQueue(queue, { durable: true });
  // no acks: the business side should cost this machine as little as possible
  await ch.consume(
    queue,
    (m) => {
      if (!m) return;
      received.push({ body: JSON.parse(m.content.toString()) as Record<string, unknown>, at: performance.now() });
      checks.forEach((c) => c());
    },
    { noAck: true },
  );
  return {
    received,
    waitCount(pred, n, timeoutMs = 120_000) {
      return new Promise((resolve, reject) => {
        let count = 0;
        let scanned = 0;
        const hits: Received[] = [];
        const check = () => {
          for (; scanned < received.length; scanned++) {
            if (pred(received[scanned]!.body)) {
              count++;
              hits.push(received[scanned]!);
            }
          }
          if (count >= n) {
            checks.delete(check);
            clearTimeout(timer);
            resolve(hits);
          }
        };
        const timer = setTimeout(() => {
          checks.delete(check);
          reject(new Error(`timed out: ${count} of ${n} notifications on ${queue}`));
        }, timeoutMs);
        checks.add(check);
        check();
      });
    },
    async close() {
      await ch.close().catch(() => undefined);
      await conn.close().catch(() => undefined);
    },
  };
}

/**
 * Run a benchmark's main and exit when it is done: a connection some
 * library leaves open must not keep `npm run bench` waiting for ever.
 */
export function runMain(main: () => Promise<void>): void {
  main().then(
    () => process.exit(0),
    (e: unknown) => {
      console.error(e);
      process.exit(1);
    },
  );
}

/** progress on stderr (BENCH_VERBOSE=1), stamped with wall-clock time */
export function phase(what: string): void {
  if (process.env.BENCH_VERBOSE) console.error(`${new Date().toISOString()} ${what}`);
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** `--name value` from argv, as a number. */
export function argNumber(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : fallback;
}
