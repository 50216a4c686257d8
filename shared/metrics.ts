/**
 * Prometheus metrics (prom-client), one registry per process, created by the
 * process entry point and passed down (nothing is registered at import time,
 * so tests can build as many as they like). The dashboard role serves them
 * at /metrics; every role's process can expose its own registry.
 */
import { Counter, Gauge, Registry, collectDefaultMetrics } from "prom-client";

export function createMetrics(opts: { defaults?: boolean } = {}) {
  const registry = new Registry();
  if (opts.defaults !== false) collectDefaultMetrics({ register: registry, prefix: "payment_process_" });
  const metrics = {
    registry,
    chainHead: new Gauge({ name: "payment_chain_head_block", help: "Latest block number seen on the chain", labelNames: ["chain"], registers: [registry] }),
    chainLag: new Gauge({ name: "payment_chain_lag_blocks", help: "Blocks between the chain head and the scan cursor", labelNames: ["chain"], registers: [registry] }),
    requests: new Counter({ name: "payment_requests_total", help: "Requests received from RabbitMQ by kind and result", labelNames: ["kind", "result"], registers: [registry] }),
    deposits: new Counter({ name: "payment_deposits_total", help: "Deposits by chain, symbol and status reached", labelNames: ["chain", "symbol", "status"], registers: [registry] }),
    transfers: new Counter({ name: "payment_transfers_total", help: "Outgoing transfers by chain, symbol and status reached", labelNames: ["chain", "symbol", "status"], registers: [registry] }),
    pendingConfirmations: new Gauge({ name: "payment_pending_confirmations", help: "Deposits and transfers waiting for confirmations", labelNames: ["chain"], registers: [registry] }),
    notifications: new Counter({ name: "payment_notifications_total", help: "Notifications published by kind and status", labelNames: ["kind", "status"], registers: [registry] }),
    queueDepth: new Gauge({ name: "payment_queue_jobs", help: "BullMQ jobs per queue and state", labelNames: ["queue", "state"], registers: [registry] }),
    outboxPending: new Gauge({ name: "payment_outbox_pending", help: "Notifications waiting in the outbox", registers: [registry] }),
    unbroadcastOldest: new Gauge({
      name: "payment_transfer_unbroadcast_seconds",
      help: "Age of the oldest transfer signed but not yet accepted by the node (0: none), per chain",
      labelNames: ["chain"],
      registers: [registry],
    }),
  };
  return metrics;
}

export type Metrics = ReturnType<typeof createMetrics>;
