/**
 * Test environment on the real services: each call gets its own MySQL
 * database, Redis key prefix, RabbitMQ exchange and queues (all named with a
 * random id) and, when asked, its own anvil with the test token deployed.
 * `cleanup()` removes all of it.
 */
import { randomBytes } from "node:crypto";
import * as amqp from "amqplib";
import { Redis } from "ioredis";
import { configWarnings, parseConfig, type Config } from "../../shared/config/load-config.ts";
import type { ConfigInput } from "../../shared/config/schema.ts";
import { migrate } from "../../shared/adapters/db/migrate.ts";
import { createDb, type Db } from "../../shared/adapters/db/client.ts";
import { createRedisFactory, type RedisFactory } from "../../shared/adapters/redis.ts";
import { createQueues, type Queues } from "../../shared/jobs/registry.ts";
import { createLogger, type Logger } from "../../shared/logger.ts";
import { createMetrics, type Metrics } from "../../shared/metrics.ts";
import { startAnvil, deploy, type Anvil, type StartAnvilOptions } from "../../shared/devchain/anvil.ts";
import { prefixedRoutes, RMQ_ROUTE_KEYS } from "../../shared/config/schema.ts";

export const MYSQL_ROOT = process.env.TEST_MYSQL_URL ?? "mysql://root@127.0.0.1:3306";
export const RABBIT_URL = process.env.TEST_AMQP_URL ?? "amqp://guest:guest@127.0.0.1:5672";
export const REDIS_URL = process.env.TEST_REDIS_URL ?? "redis://127.0.0.1:6379";

export interface TestEnv {
  id: string;
  config: Config;
  /** communication key */
  key: string;
  masterKey: Buffer;
  db: Db;
  redis: RedisFactory;
  queues: Queues;
  logger: Logger;
  metrics: Metrics;
  anvil?: Anvil;
  /** the USDT-like token's address when anvil was started */
  usdt?: string;
  cleanup(): Promise<void>;
}

export interface TestEnvOptions {
  anvil?: boolean | StartAnvilOptions;
  /** merged over the generated config */
  config?: (base: ConfigInput) => ConfigInput;
}

function deepMerge<T>(a: T, b: Partial<T>): T {
  if (typeof a !== "object" || a === null || Array.isArray(a)) return (b ?? a) as T;
  const out: Record<string, unknown> = { ...(a as Record<string, unknown>) };
  for (const [k, v] of Object.entries(b as Record<string, unknown>)) {
    out[k] = typeof v === "object" && v !== null && !Array.isArray(v) ? deepMerge(out[k], v as never) : v;
  }
  return out as T;
}

export { deepMerge };

/** Route config with every queue, exchange and routing key namespaced by `id`. */
export const testRoutes = (id: string) => prefixedRoutes(`test.${id}`);

export async function createTestEnv(opts: TestEnvOptions = {}): Promise<TestEnv> {
  const id = randomBytes(5).toString("hex");
  const database = `payment_test_${id}`;
  const mysqlUrl = `${MYSQL_ROOT}/${database}`;
  await migrate(mysqlUrl);

  let anvil: Anvil | undefined;
  let usdt: string | undefined;
  if (opts.anvil) {
    anvil = await startAnvil(opts.anvil === true ? {} : opts.anvil);
    usdt = await deploy(anvil.rpcUrl, anvil.keys[0]!, "TestUSDT");
  }

  let input: ConfigInput = {
    net: ["ETH"],
    rmq_config: { sub_addr: RABBIT_URL, ...testRoutes(id) },
    redis_url: REDIS_URL,
    redis: { prefix: `test-${id}` },
    mysql_url: mysqlUrl,
    mysql_pool_size: 5,
    eth_config: {
      rpc_url: anvil?.rpcUrl ?? "http://127.0.0.1:1",
      ws_url: anvil?.wsUrl,
      chain_id: anvil?.chainId ?? 31337,
      confirm_height: 3,
      tokens: usdt ? { USDT: { address: usdt, decimals: 6 } } : { USDT: { address: "0x" + "11".repeat(20), decimals: 6 } },
      poll_interval_ms: 100,
      block_time_ms: 200,
      rescan_interval_ms: 2_000,
    },
    log: { level: (process.env.TEST_LOG_LEVEL as "info" | undefined) ?? "silent" },
  };
  if (opts.config) input = opts.config(input);
  const config = parseConfig(input);
  // a test's config override with a misspelt key would silently test the default
  const warnings = configWarnings(config);
  if (warnings.length > 0) throw new Error(`test config: ${warnings.join("; ")}`);

  const key = `test-communication-key-${id}`;
  const masterKey = randomBytes(32);
  const db = createDb({ url: mysqlUrl, poolSize: 5 });
  const redis = createRedisFactory(config);
  const queues = createQueues(redis);
  const logger = createLogger({ level: config.log.level, name: `test-${id}` });
  const metrics = createMetrics({ defaults: false });

  return {
    id,
    config,
    key,
    masterKey,
    db,
    redis,
    queues,
    logger,
    metrics,
    anvil,
    usdt,
    async cleanup() {
      await queues.close().catch(() => undefined);
      await db.close();
      await anvil?.stop();
      await dropRedisPrefix(`test-${id}`).catch(() => undefined);
      await deleteRabbitTopology(id, config).catch(() => undefined);
      const admin = createDb({ url: `${MYSQL_ROOT}/mysql`, poolSize: 1 });
      await admin.pool.query(`DROP DATABASE IF EXISTS \`${database}\``).catch(() => undefined);
      await admin.close();
    },
  };
}

async function dropRedisPrefix(prefix: string) {
  const r = new Redis(REDIS_URL);
  try {
    let cursor = "0";
    do {
      const [next, keys] = await r.scan(cursor, "MATCH", `${prefix}:*`, "COUNT", 1000);
      cursor = next;
      if (keys.length) await r.del(...keys);
    } while (cursor !== "0");
  } finally {
    r.disconnect();
  }
}

async function deleteRabbitTopology(id: string, config: Config) {
  const conn = await amqp.connect(RABBIT_URL);
  try {
    const ch = await conn.createChannel();
    for (const k of RMQ_ROUTE_KEYS) await ch.deleteQueue(config.rmq_config[k].queue);
    await ch.deleteExchange(`test.${id}.pay.exchange`);
    await ch.close();
  } finally {
    await conn.close();
  }
}
