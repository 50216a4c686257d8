/**
 * The gauges that are facts about the whole gateway rather than about one
 * process: queue depths (BullMQ, shared in Redis), the outbox backlog and
 * pending confirmations (MySQL), chain head and lag (node + chain_cursor),
 * and whether each dependency answers. The dashboard recomputes them on every
 * scrape, so they are correct however many processes run each role; the
 * counters (requests, deposits, transfers, notifications) stay per process
 * and Prometheus sums them across the processes it scrapes.
 *
 * A source that does not answer in time leaves its gauges ABSENT (the
 * label-less outbox gauge: 0) rather than stale: an old queue depth shown as
 * current would hide an outage. The outage itself is reported by
 * `payment_dependency_up{service} == 0`, which the alert rules watch.
 */
import { Gauge } from "prom-client";
import type { Config } from "../../shared/config/load-config.ts";
import type { Db } from "../../shared/adapters/db/client.ts";
import type { Logger } from "../../shared/logger.ts";
import type { Metrics } from "../../shared/metrics.ts";
import { QUEUE_NAMES, type Queues } from "../../shared/jobs/registry.ts";
import type { HealthReport } from "./health.ts";
import { withTimeout } from "../../shared/adapters/service-checks.ts";

export const DEPENDENCY_UP_METRIC = "payment_dependency_up";

/** BullMQ job states reported per queue. */
export const QUEUE_STATES = ["waiting", "active", "delayed", "prioritized", "waiting-children", "failed", "completed"] as const;

export interface GlobalGaugesDeps {
  config: Config;
  db: Db;
  queues: Queues;
  metrics: Metrics;
  logger: Logger;
  /** health checks (dependency gauges, chain heads) */
  health: () => Promise<HealthReport>;
  timeoutMs?: number;
}

/**
 * The metrics the dashboard adds to the shared ones (shared/metrics.ts):
 * the dependency gauge, registered once per registry (several dashboards
 * may share one in tests).
 */
export function registerDashboardMetrics(metrics: Metrics): Gauge<"service"> {
  const existing = metrics.registry.getSingleMetric(DEPENDENCY_UP_METRIC);
  if (existing) return existing as Gauge<"service">;
  return new Gauge({
    name: DEPENDENCY_UP_METRIC,
    help: "1 when the service answered the dashboard's last check, else 0 (redis, mysql, rabbitmq, node.<chain>)",
    labelNames: ["service"],
    registers: [metrics.registry],
  });
}

export function createGlobalGauges(deps: GlobalGaugesDeps) {
  const { metrics, config } = deps;
  const timeoutMs = deps.timeoutMs ?? 2000;
  const up = registerDashboardMetrics(metrics);
  const chains = Object.keys(config.chains);
  const log = (what: string) => (err: unknown) => deps.logger.warn({ err: String(err), what }, "metrics: source did not answer; gauges left absent");

  async function queueDepths() {
    const counts = await withTimeout(Promise.all(QUEUE_NAMES.map((q) => deps.queues[q].getJobCounts(...QUEUE_STATES))), timeoutMs, "redis");
    metrics.queueDepth.reset();
    QUEUE_NAMES.forEach((queue, i) => {
      for (const state of QUEUE_STATES) metrics.queueDepth.set({ queue, state }, counts[i]![state] ?? 0);
    });
  }

  async function outbox() {
    const rows = (await withTimeout(deps.db.pool.query("SELECT COUNT(*) AS n FROM notification WHERE state = 'pending'"), timeoutMs, "mysql")) as { n: bigint }[];
    metrics.outboxPending.set(Number(rows[0]!.n));
  }

  /**
   * A transfer normally leaves `signed` within milliseconds (broadcast right
   * after its commit). One that stays there is being refused by the node (its
   * wallet's ETH fell short of the gas, its fee cap is under the base fee) or
   * the node is down: it is re-broadcast as it is, never re-signed, and every
   * later transfer of that wallet waits behind its nonce. The age of the
   * oldest such transaction is what an operator must see.
   */
  async function unbroadcast() {
    const rows = (await withTimeout(
      deps.db.pool.query(
        `SELECT t.chain, TIMESTAMPDIFF(SECOND, MIN(a.created_at), NOW(3)) AS age
         FROM transfer t JOIN tx_attempt a ON a.transfer_id = t.id
         WHERE t.state = 'signed' GROUP BY t.chain`,
      ),
      timeoutMs,
      "mysql",
    )) as { chain: string; age: bigint | number | null }[];
    const age = new Map<string, number>(chains.map((c) => [c, 0]));
    for (const r of rows) age.set(r.chain, Math.max(0, Number(r.age ?? 0)));
    metrics.unbroadcastOldest.reset();
    for (const [chain, seconds] of age) metrics.unbroadcastOldest.set({ chain }, seconds);
  }

  /**
   * Held transfers wait for an operator (SPEC §7); deposits pending long past
   * their due block wait for evidence (their transaction mined again, or its
   * nonce taken by another one at depth) and are never ended by a timer.
   */
  async function waitingForPeople(heads: Record<string, bigint>) {
    const [held, overdue] = (await withTimeout(
      Promise.all([
        deps.db.pool.query("SELECT chain, COUNT(*) AS n FROM transfer WHERE state = 'held' GROUP BY chain"),
        Promise.all(
          chains.map(async (chain) => {
            const head = heads[chain];
            if (head === undefined) return null;
            // due at block + confirm_height; overdue once as many blocks again have passed
            const before = head - 2n * BigInt(config.chains[chain]!.confirm_height);
            const rows = (await deps.db.pool.query("SELECT COUNT(*) AS n FROM deposit WHERE chain = ? AND state = 'seen' AND block_number < ?", [chain, before])) as { n: bigint }[];
            return { chain, n: Number(rows[0]!.n) };
          }),
        ),
      ]),
      timeoutMs,
      "mysql",
    )) as [{ chain: string; n: bigint }[], ({ chain: string; n: number } | null)[]];
    metrics.heldTransfers.reset();
    const counts = new Map<string, number>(chains.map((c) => [c, 0]));
    for (const r of held) counts.set(r.chain, Number(r.n));
    for (const [chain, n] of counts) metrics.heldTransfers.set({ chain }, n);
    metrics.depositsOverdue.reset();
    for (const o of overdue) if (o) metrics.depositsOverdue.set({ chain: o.chain }, o.n);
  }

  async function pendingAndCursors(heads: Record<string, bigint>) {
    const [deposits, transfers, cursors] = (await withTimeout(
      Promise.all([
        deps.db.pool.query("SELECT chain, COUNT(*) AS n FROM deposit WHERE state = 'seen' GROUP BY chain"),
        deps.db.pool.query("SELECT chain, COUNT(*) AS n FROM transfer WHERE state IN ('sent', 'mined') GROUP BY chain"),
        deps.db.pool.query("SELECT chain, block_number FROM chain_cursor"),
      ]),
      timeoutMs,
      "mysql",
    )) as [{ chain: string; n: bigint }[], { chain: string; n: bigint }[], { chain: string; block_number: bigint }[]];
    const pending = new Map<string, number>(chains.map((c) => [c, 0]));
    for (const r of [...deposits, ...transfers]) pending.set(r.chain, (pending.get(r.chain) ?? 0) + Number(r.n));
    metrics.pendingConfirmations.reset();
    for (const [chain, n] of pending) metrics.pendingConfirmations.set({ chain }, n);
    metrics.chainLag.reset();
    for (const c of cursors) {
      const head = heads[c.chain];
      // lag can be negative for a moment when the cursor is read after the head
      if (head !== undefined) metrics.chainLag.set({ chain: c.chain }, Math.max(0, Number(head - BigInt(c.block_number))));
    }
  }

  return {
    /** Recompute every global gauge; never throws (a failed source is logged). */
    async refresh(): Promise<void> {
      const health = await deps.health();
      up.reset();
      up.set({ service: "redis" }, health.checks.redis.ok ? 1 : 0);
      up.set({ service: "mysql" }, health.checks.mysql.ok ? 1 : 0);
      up.set({ service: "rabbitmq" }, health.checks.rabbitmq.ok ? 1 : 0);
      metrics.chainHead.reset();
      for (const chain of chains) {
        up.set({ service: `node.${chain}` }, health.checks.node[chain]?.ok ? 1 : 0);
        const head = health.heads[chain];
        if (head !== undefined) metrics.chainHead.set({ chain }, Number(head));
      }
      await Promise.all([
        queueDepths().catch((e) => {
          metrics.queueDepth.reset();
          log("queue depths")(e);
        }),
        outbox().catch((e) => {
          metrics.outboxPending.reset();
          log("outbox")(e);
        }),
        unbroadcast().catch((e) => {
          metrics.unbroadcastOldest.reset();
          log("unbroadcast transfers")(e);
        }),
        waitingForPeople(health.heads).catch((e) => {
          metrics.heldTransfers.reset();
          metrics.depositsOverdue.reset();
          log("held transfers, overdue deposits")(e);
        }),
        pendingAndCursors(health.heads).catch((e) => {
          metrics.pendingConfirmations.reset();
          metrics.chainLag.reset();
          log("pending confirmations")(e);
        }),
      ]);
    },
  };
}
