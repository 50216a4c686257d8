/**
 * Before starting roles: check that each service the roles need answers, and
 * say which one does not and how to start it, instead of a stack trace.
 */
import type { Config } from "../shared/config/load-config.ts";
import { ConfigError, rabbitUrls } from "../shared/config/load-config.ts";
import type { Logger } from "../shared/logger.ts";
import type { Role } from "./roles.ts";
import { checkMysql, checkNode, checkRabbit, checkRedis, type ServiceCheck } from "../workers/dashboard/service-checks.ts";

// The checks live beside the dashboard's /health, which runs the same ones.
export { checkMysql, checkNode, checkRabbit, checkRedis, type ServiceCheck };

/** Run the checks the roles need; throw a ConfigError listing what is down. */
export async function preflight(config: Config, opts: { roles: Role[]; logger?: Logger; databaseMayBeMissing?: boolean }): Promise<ServiceCheck[]> {
  const checks: Promise<ServiceCheck>[] = [checkRedis(config.redis.cluster_nodes?.[0] ?? config.redis_url), checkMysql(config.mysql_url, opts)];
  if (opts.roles.includes("bridge")) {
    checks.push(checkRabbit(rabbitUrls(config)));
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
