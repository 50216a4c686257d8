/** The gateway's metrics operators rely on (issue: operators' view): served on /metrics, shown on the Grafana dashboard. */
export const GATEWAY_METRICS = [
  "payment_chain_head_block",
  "payment_chain_lag_blocks",
  "payment_requests_total",
  "payment_requests_dead_lettered_total",
  "payment_deposits_total",
  "payment_transfers_total",
  "payment_pending_confirmations",
  "payment_notifications_total",
  "payment_queue_jobs",
  "payment_outbox_pending",
  "payment_dependency_up",
  "payment_transfers_held",
  "payment_deposits_overdue",
  "payment_transfer_unbroadcast_seconds",
  "payment_transfer_fee_capped_total",
] as const;
