/**
 * "Does this service answer?" checks, shared by `payment start`'s preflight
 * (cli/preflight.ts) and the dashboard's `GET /health`, so the two can never
 * disagree about what "up" means.
 *
 * Each check opens its own short-lived connection with a short timeout and
 * always closes it: a probe must never hang on a dead server (ioredis and
 * amqplib would otherwise keep retrying in the background), and must test
 * reachability from scratch rather than trust a pooled connection that may
 * be half-dead. A check never throws: it returns `ok: false` with the reason,
 * URLs with their passwords masked.
 */
import { Redis } from "ioredis";
import * as amqp from "amqplib";
import * as mariadb from "mariadb";
import { JsonRpcProvider, Network } from "ethers";
import { poolConfigFromUrl } from "./db/client.ts";
import type { RedisClient } from "./redis.ts";
import { redactUrl } from "../logger.ts";

export interface ServiceCheck {
  name: string;
  ok: boolean;
  detail: string;
  /** how to bring it up (preflight prints it) */
  hint: string;
  /** node checks: the head block number the node reported */
  head?: bigint;
}

export interface CheckOptions {
  /** give up after this long (default 3000 ms; /health uses less) */
  timeoutMs?: number;
}

const DEFAULT_TIMEOUT_MS = 3000;

/** Reject with "<what>: no answer in N ms" unless `p` settles first. */
export function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<T>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer in ${ms} ms`)), ms);
  });
  return Promise.race([p, expired]).finally(() => clearTimeout(timer));
}

const message = (e: unknown) => (e instanceof Error ? e.message || e.constructor.name : String(e));

/**
 * Redis: PING on a fresh connection. `target` is a URL, or a function making
 * a connection (the dashboard passes its RedisFactory so Sentinel and Cluster
 * settings are honoured); the connection is always disconnected afterwards.
 */
export async function checkRedis(target: string | (() => RedisClient), opts: CheckOptions = {}): Promise<ServiceCheck> {
  const ms = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const where = typeof target === "string" ? redactUrl(target) : "configured redis";
  const r: RedisClient =
    typeof target === "string"
      ? new Redis(target, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null, connectTimeout: ms })
      : target();
  // the socket error (ECONNREFUSED, auth) says more than "Connection is closed."
  let socketError: unknown;
  r.on("error", (e) => (socketError = e));
  try {
    const ping = typeof target === "string" ? (r as Redis).connect().then(() => r.ping()) : r.ping();
    await withTimeout(ping, ms, "redis");
    return { name: "Redis", ok: true, detail: where, hint: "" };
  } catch (e) {
    return { name: "Redis", ok: false, detail: `${where}: ${message(socketError ?? e)}`, hint: "docker compose up -d redis" };
  } finally {
    r.disconnect();
  }
}

/** MySQL/MariaDB: open and close one connection (not through the pool). */
export async function checkMysql(url: string, opts: CheckOptions & { databaseMayBeMissing?: boolean } = {}): Promise<ServiceCheck> {
  const ms = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const cfg = poolConfigFromUrl(url, 1);
  const connecting = mariadb.createConnection({ ...cfg, database: opts.databaseMayBeMissing ? undefined : cfg.database, connectTimeout: ms });
  try {
    const conn = await withTimeout(connecting, ms, "mysql");
    await conn.end();
    return { name: "MySQL", ok: true, detail: redactUrl(url), hint: "" };
  } catch (e) {
    // a connection that arrives after we gave up must still be closed
    connecting.then((c) => c.end()).catch(() => undefined);
    const unknownDb = (e as { errno?: number }).errno === 1049;
    return {
      name: "MySQL",
      ok: false,
      detail: `${redactUrl(url)}: ${message(e)}`,
      hint: unknownDb ? "npx payment migrate   (creates the database)" : "docker compose up -d mysql",
    };
  }
}

/** RabbitMQ: the first URL of the list (a cluster) that accepts a connection. */
export async function checkRabbit(urls: string[], opts: CheckOptions = {}): Promise<ServiceCheck> {
  const ms = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const errors: string[] = [];
  for (const url of urls) {
    const connecting = amqp.connect(url, { timeout: ms });
    try {
      const c = await withTimeout(connecting, ms, "rabbitmq");
      await c.close();
      return { name: "RabbitMQ", ok: true, detail: redactUrl(url), hint: "" };
    } catch (e) {
      connecting.then((c) => c.close()).catch(() => undefined);
      errors.push(`${redactUrl(url)}: ${message(e)}`);
    }
  }
  return { name: "RabbitMQ", ok: false, detail: errors.join("; "), hint: "docker compose up -d rabbitmq" };
}

/** EVM node: eth_blockNumber; the head is returned for the chain metrics. */
export async function checkNode(rpcUrl: string, opts: CheckOptions = {}): Promise<ServiceCheck> {
  const ms = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  // A static network: eth_blockNumber needs no chain id, and without one
  // ethers keeps re-detecting the network (and printing so) while the node is down.
  const network = Network.from(1);
  const p = new JsonRpcProvider(rpcUrl, network, { staticNetwork: network, batchMaxCount: 1 });
  try {
    const n = BigInt(await withTimeout(p.send("eth_blockNumber", []) as Promise<string>, ms, "node"));
    return { name: "Ethereum node", ok: true, detail: `${redactUrl(rpcUrl)} at block ${n}`, hint: "", head: n };
  } catch (e) {
    return {
      name: "Ethereum node",
      ok: false,
      detail: `${redactUrl(rpcUrl)}: ${message(e)}`,
      hint: "check eth_config.rpc_url (docker compose up -d anvil for a dev chain)",
    };
  } finally {
    p.destroy();
  }
}
