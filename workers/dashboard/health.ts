/**
 * `GET /health`: does every service the gateway depends on answer right now?
 * Redis, MySQL, RabbitMQ and each configured chain's node, checked in
 * parallel with a short timeout (a probe that hangs is worse than one that
 * says "down"), using the same checks as `payment start`'s preflight.
 *
 * The endpoint is unauthenticated (load balancers and orchestrators probe
 * it), so the answer says only up/down and a short reason, never a URL: RPC
 * URLs often carry a provider API key in their path. Full details go to the
 * log. Concurrent probes share one run of the checks.
 */
import { rabbitUrls, type Config } from "../../shared/config/load-config.ts";
import type { RedisFactory } from "../../shared/adapters/redis.ts";
import type { Logger } from "../../shared/logger.ts";
import { checkMysql, checkNode, checkRabbit, checkRedis, type ServiceCheck } from "../../shared/adapters/service-checks.ts";

export interface CheckResult {
  ok: boolean;
  /** short reason when down, URLs removed */
  error?: string;
}

export interface HealthReport {
  status: "ok" | "down";
  /** names of what is down, e.g. ["rabbitmq", "node.ETH"] */
  down: string[];
  checks: { redis: CheckResult; mysql: CheckResult; rabbitmq: CheckResult; node: Record<string, CheckResult> };
  /** head block per chain, for the chain metrics (not sent to clients) */
  heads: Record<string, bigint>;
}

/** A check's failure reason without anything that looks like a URL or an address. */
export function publicReason(detail: string): string {
  return detail
    .replace(/^\S+:\/\/\S*?: /, "")
    .replace(/\b[a-z][a-z0-9+.-]*:\/\/\S+/gi, "<url>")
    .replace(/\[?[0-9a-f:.]*[0-9a-f]\]?:\d{1,5}\b/gi, "<host>")
    .replace(/\b[\w.-]+\.[a-z]{2,}(:\d{1,5})?\b/gi, "<host>")
    .slice(0, 200);
}

const result = (c: ServiceCheck): CheckResult => (c.ok ? { ok: true } : { ok: false, error: publicReason(c.detail) });

export function createHealth(deps: { config: Config; redis: RedisFactory; logger: Logger; timeoutMs?: number }) {
  const { config } = deps;
  const timeoutMs = deps.timeoutMs ?? 2000;
  const rabbitUrlList = rabbitUrls(config);
  let inFlight: Promise<HealthReport> | null = null;

  async function run(): Promise<HealthReport> {
    const chains = Object.values(config.chains);
    const [redis, mysql, rabbitmq, ...nodes] = await Promise.all([
      // through the factory, so Sentinel/Cluster settings apply; the timeout
      // and the disconnect afterwards bound the probe while Redis is down
      checkRedis(() => deps.redis.create("health"), { timeoutMs }),
      checkMysql(config.mysql_url, { timeoutMs }),
      checkRabbit(rabbitUrlList, { timeoutMs }),
      ...chains.map((c) => checkNode(c.rpc_url, { timeoutMs })),
    ]);
    const node: Record<string, CheckResult> = {};
    const heads: Record<string, bigint> = {};
    const down: string[] = [];
    const note = (name: string, c: ServiceCheck) => {
      if (c.ok) return;
      down.push(name);
      deps.logger.warn({ service: name, detail: c.detail }, "health: service does not answer");
    };
    note("redis", redis!);
    note("mysql", mysql!);
    note("rabbitmq", rabbitmq!);
    chains.forEach((c, i) => {
      const n = nodes[i]!;
      node[c.key] = result(n);
      if (n.head !== undefined) heads[c.key] = n.head;
      note(`node.${c.key}`, n);
    });
    return {
      status: down.length === 0 ? "ok" : "down",
      down,
      checks: { redis: result(redis!), mysql: result(mysql!), rabbitmq: result(rabbitmq!), node },
      heads,
    };
  }

  return {
    /** Run the checks (or join the run already in progress). */
    check(): Promise<HealthReport> {
      inFlight ??= run().finally(() => {
        inFlight = null;
      });
      return inFlight;
    },
  };
}
