/**
 * Prometheus metrics (prom-client), one registry per process, created by the
 * process entry point and passed down (nothing is registered at import time,
 * so tests can build as many as they like). The dashboard role serves them
 * at /metrics; every role's process can expose its own registry.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";

export function createMetrics(opts: { defaults?: boolean } = {}) {
  const registry = new Registry();
  if (opts.defaults !== false) collectDefaultMetrics({ register: registry, prefix: "payment_process_" });
  const metrics = {
    registry,
    chainHead: new Gauge({ name: "payment_chain_head_block", help: "Latest block number seen on the chain", labelNames: ["chain"], registers: [registry] }),
    chainLag: new Gauge({ name: "payment_chain_lag_blocks", help: "Blocks between the chain head and the scan cursor", labelNames: ["chain"], registers: [registry] }),
    requests: new Counter({ name: "payment_requests_total", help: "Requests received from RabbitMQ by kind and result", labelNames: ["kind", "result"], registers: [registry] }),
    deadLettered: new Counter({
      name: "payment_requests_dead_lettered_total",
      help: "Request messages sent to the dead-letter queue, by kind and reason (bad_signature, duplicate, too_large, unparseable, invalid_request, internal)",
      labelNames: ["kind", "reason"],
      registers: [registry],
    }),
    deposits: new Counter({ name: "payment_deposits_total", help: "Deposits by chain, symbol and status reached", labelNames: ["chain", "symbol", "status"], registers: [registry] }),
    transfers: new Counter({ name: "payment_transfers_total", help: "Outgoing transfers by chain, symbol and status reached", labelNames: ["chain", "symbol", "status"], registers: [registry] }),
    pendingConfirmations: new Gauge({ name: "payment_pending_confirmations", help: "Deposits and transfers waiting for confirmations", labelNames: ["chain"], registers: [registry] }),
    notifications: new Counter({ name: "payment_notifications_total", help: "Notifications published by kind and status", labelNames: ["kind", "status"], registers: [registry] }),
    queueDepth: new Gauge({ name: "payment_queue_jobs", help: "BullMQ jobs per queue and state", labelNames: ["queue", "state"], registers: [registry] }),
    outboxPending: new Gauge({ name: "payment_outbox_pending", help: "Notifications waiting in the outbox", registers: [registry] }),
    heldTransfers: new Gauge({
      name: "payment_transfers_held",
      help: "Transfers held for an operator (no wallet can pay them: fund one and retry, or reject), per chain",
      labelNames: ["chain"],
      registers: [registry],
    }),
    feeCapped: new Counter({
      name: "payment_transfer_fee_capped_total",
      help: "Replacements of a stuck transaction not sent because the fee cap (max_fee_gwei, max_fee_multiple) holds them back, per chain",
      labelNames: ["chain"],
      registers: [registry],
    }),
    depositsOverdue: new Gauge({
      name: "payment_deposits_overdue",
      help: "Deposits still pending although their block is confirm_height blocks past due (their transaction left the chain and nothing took its nonce yet), per chain",
      labelNames: ["chain"],
      registers: [registry],
    }),
    unbroadcastOldest: new Gauge({
      name: "payment_transfer_unbroadcast_seconds",
      help: "Age of the oldest transfer signed but not yet accepted by the node (0: none), per chain",
      labelNames: ["chain"],
      registers: [registry],
    }),
    senderPhase: new Histogram({
      name: "payment_sender_phase_seconds",
      help: "Time a wallet's drain spends per batch in each phase (select, node: reads and gas estimates, lock, plan, sign, persist, job-logs, broadcast, record, confirm-jobs)",
      labelNames: ["chain", "phase"],
      buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers: [registry],
    }),
  };
  return metrics;
}

/** The phases of a wallet's drain, in the order a batch goes through them (payment_sender_phase_seconds). */
export const SENDER_PHASES = ["select", "node", "lock", "plan", "sign", "persist", "job-logs", "broadcast", "record", "confirm-jobs"] as const;
export type SenderPhase = (typeof SENDER_PHASES)[number];

/**
 * Marks the phases of one piece of work: each call observes the time since
 * the previous one (or since the clock was made) under its phase.
 *
 * @example
 * const mark = phaseClock(metrics, "ETH"); await select(); mark("select"); await sign(); mark("sign");
 */
export function phaseClock(metrics: Pick<Metrics, "senderPhase">, chain: string): (phase: SenderPhase) => void {
  let last = performance.now();
  return (phase) => {
    const now = performance.now();
    metrics.senderPhase.observe({ chain, phase }, (now - last) / 1000);
    last = now;
  };
}

export type Metrics = ReturnType<typeof createMetrics>;
