/** The gateway's metrics operators rely on (issue: operators' view): served on /metrics, shown on the Grafana dashboard. */
export const GATEWAY_METRICS = [
  "payment_chain_head_block",
  "payment_chain_lag_blocks",
  "payment_requests_total",
  "payment_deposits_total",
  "payment_transfers_total",
  "payment_pending_confirmations",
  "payment_notifications_total",
  "payment_queue_jobs",
  "payment_outbox_pending",
  "payment_dependency_up",
] as const;
