/**
 * What every role is built from: the process's parsed config and its shared
 * connections. Roles receive these (nothing connects at import time); the
 * process runtime (`cli/runtime.ts`) is one.
 */
import type { Config } from "../config/load-config.ts";
import type { Db } from "../adapters/db/client.ts";
import type { RedisFactory } from "../adapters/redis.ts";
import type { Queues } from "../jobs/registry.ts";
import type { Logger } from "../logger.ts";
import type { Metrics } from "../metrics.ts";

export interface RoleDeps {
  config: Config;
  db: Db;
  redis: RedisFactory;
  queues: Queues;
  logger: Logger;
  metrics: Metrics;
}
