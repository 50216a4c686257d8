/**
 * Builds a process's shared dependencies (config, secrets, logger, MySQL,
 * Redis, BullMQ queues, metrics) and runs a set of roles until SIGTERM or
 * SIGINT, then drains them in reverse order and exits 0.
 */
import type { Config } from "../shared/config/load-config.ts";
import type { Secrets } from "../shared/config/secrets.ts";
import { createLogger, type Logger } from "../shared/logger.ts";
import { createDb } from "../shared/adapters/db/client.ts";
import { createRedisFactory } from "../shared/adapters/redis.ts";
import { createQueues } from "../shared/jobs/registry.ts";
import { createMetrics } from "../shared/metrics.ts";
import type { RoleDeps } from "../shared/runtime/role-deps.ts";

export interface Runtime extends RoleDeps {
  secrets: Secrets;
  close(): Promise<void>;
}

export function createRuntime(config: Config, secrets: Secrets, logger?: Logger): Runtime {
  const log = logger ?? createLogger({ level: config.log.level });
  const db = createDb({ url: config.mysql_url, poolSize: config.mysql_pool_size });
  const redis = createRedisFactory(config);
  const queues = createQueues(redis);
  const metrics = createMetrics();
  return {
    config,
    secrets,
    logger: log,
    db,
    redis,
    queues,
    metrics,
    async close() {
      await queues.close().catch(() => undefined);
      await db.close();
    },
  };
}

export interface Service {
  name: string;
  start(): Promise<void>;
  stop(): Promise<void>;
}

/**
 * Start `services` in order; on SIGTERM/SIGINT stop them in reverse, close
 * the runtime and exit. A second signal exits at once.
 */
export async function runServices(runtime: Runtime, services: Service[], opts: { drainTimeoutMs?: number } = {}): Promise<void> {
  const { logger } = runtime;
  const started: Service[] = [];
  let stopping = false;
  const stopAll = async (signal: string) => {
    if (stopping) {
      logger.warn({ signal }, "second signal: exiting without draining");
      process.exit(1);
    }
    stopping = true;
    logger.info({ signal }, "draining and stopping");
    const timer = setTimeout(() => {
      logger.error("drain timed out; exiting");
      process.exit(1);
    }, opts.drainTimeoutMs ?? 30_000);
    timer.unref();
    for (const s of [...started].reverse()) {
      try {
        await s.stop();
      } catch (err) {
        logger.error({ err, service: s.name }, "error while stopping");
      }
    }
    await runtime.close();
    logger.info("stopped");
    logger.flush?.();
    process.exit(0);
  };
  process.on("SIGTERM", () => void stopAll("SIGTERM"));
  process.on("SIGINT", () => void stopAll("SIGINT"));
  for (const s of services) {
    if (stopping) return;
    await s.start();
    started.push(s);
  }
  logger.info({ roles: services.map((s) => s.name) }, "payment gateway running");
}
