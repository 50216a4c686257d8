/**
 * Before starting roles: check that each service the roles need answers, and
 * say which one does not and how to start it, instead of a stack trace; and,
 * for the roles that send, that each chain's node supports what its
 * `batching` setting asks for (EIP-7702), see resolveBatching.
 */
import type { Config } from "../shared/config/load-config.ts";
import { rabbitUrls } from "../shared/config/load-config.ts";
import { CliError } from "./context.ts";
import type { Logger } from "../shared/logger.ts";
import type { Role } from "./roles.ts";
import { checkMysql, checkNode, checkRabbit, checkRedis, type ServiceCheck } from "../shared/adapters/service-checks.ts";
import { createChainClient } from "../shared/adapters/chain.ts";
import { resolveBatching, type BatchingMode } from "../shared/adapters/eip7702.ts";

// The same checks as the dashboard's /health (shared/adapters/service-checks.ts).
export { checkMysql, checkNode, checkRabbit, checkRedis, type ServiceCheck };

/** Run the checks the roles need; throw a CliError (exit 1) listing what is down. */
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
    throw new CliError(`cannot start: a service is not reachable\n${lines.join("\n")}`);
  }
  for (const r of results) opts.logger?.info({ service: r.name, at: r.detail }, "service answers");
  if (opts.roles.includes("transfer-sender")) await checkBatching(config, opts.logger);
  return results;
}

/**
 * Each chain's batching mode: its `batching` setting, or "7702" where the
 * node accepts EIP-7702 transactions. Throws a ConfigError naming the key
 * when "7702" is asked of a node without it.
 */
export async function checkBatching(config: Config, logger?: Logger): Promise<Record<string, BatchingMode>> {
  const modes: Record<string, BatchingMode> = {};
  for (const chain of Object.values(config.chains)) {
    const client = createChainClient(chain);
    try {
      modes[chain.key] = await resolveBatching(chain, client.provider);
    } finally {
      client.close();
    }
    logger?.info({ chain: chain.key, batching: modes[chain.key], configured: chain.batching ?? "default" }, "batching");
  }
  return modes;
}
