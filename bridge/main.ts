/**
 * The bridge role: RabbitMQ in (requests -> MySQL + BullMQ) and RabbitMQ out
 * (outbox -> signed notifications). Built from explicit dependencies; it
 * opens its own RabbitMQ connection and Redis subscriber on `start()`.
 */
import { rabbitUrls, type Config } from "../shared/config/load-config.ts";
import type { Db } from "../shared/adapters/db/client.ts";
import type { Logger } from "../shared/logger.ts";
import type { Metrics } from "../shared/metrics.ts";
import { type RedisFactory, closeRedis } from "../shared/adapters/redis.ts";
import { AmqpConnection, declareRoutes } from "../shared/adapters/amqp.ts";
import type { Queues } from "../shared/jobs/registry.ts";
import { assetCatalog } from "../shared/domain/requests.ts";
import { REQUEST_KINDS, REQUEST_KIND_SPECS, type RequestKind } from "../shared/domain/request-kinds.ts";
import { isTransientDbError } from "../shared/adapters/db/sql.ts";
import { outboxChannel } from "../shared/adapters/db/outbox.ts";
import { createRequestHandler } from "./request-handler.ts";
import { createRequestConsumer } from "./request-consumer.ts";
import { createOutboxPublisher } from "./outbox-publisher.ts";
import { RMQ_ROUTE_KEYS } from "../shared/config/schema.ts";
import { createAddressLog } from "../shared/adapters/address-log.ts";
import { withTimeout } from "../shared/adapters/service-checks.ts";

/** A health probe that gives up instead of waiting for a dead service (Redis commands wait while it is down). */
const answers = (probe: () => Promise<unknown>, timeoutMs = 2_000): Promise<boolean> =>
  withTimeout(Promise.resolve().then(probe), timeoutMs, "probe").then(
    () => true,
    () => false,
  );

export interface BridgeDeps {
  config: Config;
  communicationKey: string;
  db: Db;
  redis: RedisFactory;
  queues: Queues;
  logger: Logger;
  metrics: Metrics;
}

export function createBridge(deps: BridgeDeps) {
  const { config, logger } = deps;
  const rmq = config.rmq_config;
  const urls = rabbitUrls(config);
  const amqp = new AmqpConnection({ urls, heartbeatS: rmq.heartbeat_s, logger, name: `payment-bridge-${process.pid}` });
  const assets = assetCatalog(config.chains);
  const addressLog = createAddressLog({
    dir: config.log.address_log_dir,
    maxBytes: config.log.address_log_max_bytes,
    onError: (err) => logger.warn({ err: String(err) }, "bridge: per-address log write failed"),
  });
  const byKind = <T>(f: (kind: RequestKind) => T) => Object.fromEntries(REQUEST_KINDS.map((k) => [k, f(k)])) as Record<RequestKind, T>;
  const requestRoutes = byKind((k) => rmq[REQUEST_KIND_SPECS[k].requestRoute]);

  const publisher = createOutboxPublisher({
    pool: deps.db.pool,
    amqp,
    logger: logger.child({ component: "outbox" }),
    routes: byKind((k) => rmq[REQUEST_KIND_SPECS[k].responseRoute]),
    communicationKey: deps.communicationKey,
    onPublished: (n) => {
      deps.metrics.notifications.inc({ kind: n.kind, status: String(n.status) });
      if (n.address) addressLog.write(n.address, REQUEST_KIND_SPECS[n.kind].respLogEvent, { queue_id: n.queueId, status: n.status, notification_id: n.notificationId });
    },
  });
  const handler = createRequestHandler({
    pool: deps.db.pool,
    queues: deps.queues,
    logger,
    validation: () => ({
      key: deps.communicationKey,
      nowMs: Date.now(),
      maxSkewS: config.max_clock_skew_s,
      maxMessageBytes: config.limits.max_message_bytes,
      maxBatch: config.limits.max_batch,
      assets,
    }),
    wakeOutbox: () => publisher.wake(),
    addressLog,
  });
  const consumer = createRequestConsumer({
    amqp,
    logger: logger.child({ component: "consumer" }),
    routes: requestRoutes,
    deadRoute: rmq.dead,
    prefetch: rmq.prefetch,
    handleBatch: handler.handleBatch,
    // by the driver's code first; an error we cannot place is judged by asking both stores directly
    isInfrastructureFault: async (err) =>
      isTransientDbError(err) || !(await answers(() => deps.db.pool.query("SELECT 1"))) || !(await answers(() => deps.queues.transfer.count())),
    onOutcome: (kind, o) => {
      const result = o.action === "dead" ? "dead_letter" : o.result === "rejected" ? o.code : o.result;
      deps.metrics.requests.inc({ kind, result });
      if (o.action === "dead") deps.metrics.deadLettered.inc({ kind, reason: o.reason });
      if (o.action === "ack" && o.result === "rejected") logger.info({ kind, code: o.code }, "bridge: request refused");
    },
  });

  let subscriber: ReturnType<RedisFactory["create"]> | null = null;

  return {
    amqp,
    handler,
    publisher,
    async start() {
      amqp.onConnect(async (conn) => {
        const ch = await conn.createChannel();
        try {
          await declareRoutes(ch, RMQ_ROUTE_KEYS.map((k) => rmq[k]));
        } finally {
          await ch.close().catch(() => undefined);
        }
      });
      subscriber = deps.redis.create("outbox-wake");
      subscriber.on("message", () => publisher.wake());
      subscriber.on("error", (err) => logger.warn({ err: String(err) }, "bridge: redis subscriber error"));
      await subscriber.subscribe(outboxChannel(deps.redis.prefix));
      await consumer.start();
      publisher.start();
      await amqp.start();
      logger.info("bridge: started");
    },
    async stop() {
      await consumer.stop();
      await publisher.stop();
      if (subscriber) await closeRedis(subscriber);
      await amqp.close();
      await addressLog.close();
      logger.info("bridge: stopped");
    },
  };
}
