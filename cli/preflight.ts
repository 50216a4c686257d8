/**
 * Before starting roles: check that each service the roles need answers, and
 * say which one does not and how to start it, instead of a stack trace.
 */
import { Redis } from "ioredis";
import * as amqp from "amqplib";
import * as mariadb from "mariadb";
import { JsonRpcProvider } from "ethers";
import type { Config } from "../shared/config/load-config.ts";
import { ConfigError } from "../shared/config/load-config.ts";
import { poolConfigFromUrl } from "../shared/adapters/db/client.ts";
import { redactUrl, type Logger } from "../shared/logger.ts";
import type { Role } from "./roles.ts";

export interface ServiceCheck {
  name: string;
  ok: boolean;
  detail: string;
  hint: string;
}

const timeout = <T>(p: Promise<T>, ms: number, what: string) =>
  Promise.race([p, new Promise<T>((_, reject) => setTimeout(() => reject(new Error(`${what}: no answer in ${ms} ms`)), ms))]);

export async function checkRedis(url: string): Promise<ServiceCheck> {
  const r = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null, connectTimeout: 2000 });
  r.on("error", () => undefined);
  try {
    await timeout(r.connect().then(() => r.ping()), 3000, "redis");
    return { name: "Redis", ok: true, detail: redactUrl(url), hint: "" };
  } catch (e) {
    return { name: "Redis", ok: false, detail: `${redactUrl(url)}: ${(e as Error).message}`, hint: "docker compose up -d redis" };
  } finally {
    r.disconnect();
  }
}

export async function checkMysql(url: string, opts: { databaseMayBeMissing?: boolean } = {}): Promise<ServiceCheck> {
  const cfg = poolConfigFromUrl(url, 1);
  try {
    const conn = await timeout(mariadb.createConnection({ ...cfg, database: opts.databaseMayBeMissing ? undefined : cfg.database, connectTimeout: 2000 }), 3000, "mysql");
    await conn.end();
    return { name: "MySQL", ok: true, detail: redactUrl(url), hint: "" };
  } catch (e) {
    const unknownDb = (e as { errno?: number }).errno === 1049;
    return {
      name: "MySQL",
      ok: false,
      detail: `${redactUrl(url)}: ${(e as Error).message}`,
      hint: unknownDb ? "npx payment migrate   (creates the database)" : "docker compose up -d mysql",
    };
  }
}

export async function checkRabbit(urls: string[]): Promise<ServiceCheck> {
  const errors: string[] = [];
  for (const url of urls) {
    try {
      const c = await timeout(amqp.connect(url, { timeout: 2000 }), 3000, "rabbitmq");
      await c.close();
      return { name: "RabbitMQ", ok: true, detail: redactUrl(url), hint: "" };
    } catch (e) {
      errors.push(`${redactUrl(url)}: ${(e as Error).message}`);
    }
  }
  return { name: "RabbitMQ", ok: false, detail: errors.join("; "), hint: "docker compose up -d rabbitmq" };
}

export async function checkNode(rpcUrl: string): Promise<ServiceCheck> {
  const p = new JsonRpcProvider(rpcUrl, undefined, { staticNetwork: true });
  try {
    const n = await timeout(p.send("eth_blockNumber", []), 3000, "node");
    return { name: "Ethereum node", ok: true, detail: `${redactUrl(rpcUrl)} at block ${BigInt(n)}`, hint: "" };
  } catch (e) {
    return { name: "Ethereum node", ok: false, detail: `${redactUrl(rpcUrl)}: ${(e as Error).message}`, hint: "check eth_config.rpc_url (docker compose up -d anvil for a dev chain)" };
  } finally {
    p.destroy();
  }
}

/** Run the checks the roles need; throw a ConfigError listing what is down. */
export async function preflight(config: Config, opts: { roles: Role[]; logger?: Logger; databaseMayBeMissing?: boolean }): Promise<ServiceCheck[]> {
  const checks: Promise<ServiceCheck>[] = [checkRedis(config.redis.cluster_nodes?.[0] ?? config.redis_url), checkMysql(config.mysql_url, opts)];
  if (opts.roles.includes("bridge")) {
    const urls = Array.isArray(config.rmq_config.sub_addr) ? config.rmq_config.sub_addr : [config.rmq_config.sub_addr];
    checks.push(checkRabbit(urls));
  }
  if (opts.roles.some((r) => r === "chain-watch" || r === "transfer-sender" || r === "confirmation")) {
    for (const c of Object.values(config.chains)) checks.push(checkNode(c.rpc_url));
  }
  const results = await Promise.all(checks);
  const down = results.filter((r) => !r.ok);
  if (down.length > 0) {
    const lines = down.map((d) => `  ${d.name} does not answer (${d.detail})\n    start it: ${d.hint}`);
    throw new ConfigError(`cannot start: a service is not reachable\n${lines.join("\n")}`);
  }
  for (const r of results) opts.logger?.info({ service: r.name, at: r.detail }, "service answers");
  return results;
}
