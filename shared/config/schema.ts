/**
 * The configuration file's shape (SPEC §6). It keeps the old system's keys
 * (`net`, `rmq_config`, `eth_config`) and adds what this gateway needs. Every
 * key has a default except the ones that locate a real service or contract.
 */
import { z } from "zod";
import { ADDRESS_RE, LIMITS } from "../domain/limits.ts";

/** A string field that also takes a number from an env override ("1234"). */
const text = (inner: z.ZodString = z.string().min(1)) => z.union([z.string(), z.number().transform(String)]).pipe(inner);
const str = () => text();
const address = () =>
  text(z.string().regex(ADDRESS_RE, "must be a 0x-prefixed 20-byte hex address")).transform((a: string) => a.toLowerCase());
/** Decimal text amount (never a float); a JSON number is taken as its text. */
const decimalText = () => text(z.string().regex(/^[0-9]+(\.[0-9]+)?$/, "must be a decimal amount like \"1000\" or \"0.5\""));

const route = (queue: string) =>
  z
    .object({
      queue: str().default(queue),
      exchange: str().default("pay.exchange"),
      routing: z.array(str()).min(1).default([queue.replace(/\.queue$/, ".routing.key")]),
    })
    .prefault({});

export const RMQ_ROUTE_KEYS = [
  "topup",
  "withdraw",
  "pay",
  "remove",
  "topup_resp",
  "withdraw_resp",
  "pay_resp",
  "remove_resp",
  "dead",
] as const;

const rmqConfig = z
  .object({
    /** one URL, or several (a cluster): connect to the first that answers */
    sub_addr: z.union([str(), z.array(str()).min(1)]).default("amqp://guest:guest@127.0.0.1:5672"),
    /** unacked requests in flight per bridge process */
    prefetch: z.number().int().min(1).max(65535).default(1000),
    heartbeat_s: z.number().int().min(0).default(30),
    topup: route("pay.recharge.queue"),
    withdraw: route("pay.withdraw.queue"),
    pay: route("pay.auto.queue"),
    remove: route("pay.remove.queue"),
    topup_resp: route("pay.recharge.return.queue"),
    withdraw_resp: route("pay.withdraw.return.queue"),
    pay_resp: route("pay.auto.return.queue"),
    remove_resp: route("pay.remove.return.queue"),
    dead: route("pay.dead.queue"),
  })
  .prefault({});

export type RmqRoutes = Record<(typeof RMQ_ROUTE_KEYS)[number], RmqRoute>;

/**
 * Every route with the default names, each queue, exchange and routing key
 * prefixed (`payment-dev.pay.recharge.queue` on `payment-dev.pay.exchange`):
 * a gateway configured with them shares nothing with one using the default
 * names on the same broker (the dev system, each test file).
 */
export function prefixedRoutes(prefix: string): RmqRoutes {
  const defaults = rmqConfig.parse(undefined) as unknown as RmqRoutes;
  const routes = RMQ_ROUTE_KEYS.map((k) => {
    const r = defaults[k];
    return [k, { queue: `${prefix}.${r.queue}`, exchange: `${prefix}.${r.exchange}`, routing: r.routing.map((key) => `${prefix}.${key}`) }] as const;
  });
  return Object.fromEntries(routes) as RmqRoutes;
}

/**
 * Every amount is stored exactly as DECIMAL(65,18): an asset with more
 * decimals could carry a fraction the database cannot hold, and a deposit
 * the scanner cannot store would hold up its chain. Refused at start instead.
 */
const assetDecimals = () => z.number().int().min(0).max(18, "at most 18 (amounts are stored exactly as DECIMAL(65,18))");

const token = z.object({
  address: address(),
  decimals: assetDecimals(),
});

export const chainConfig = z.object({
  rpc_url: str().pipe(z.url()),
  /** WebSocket endpoint for new heads; polling is used when absent or down */
  ws_url: str().pipe(z.url()).optional(),
  /** checked against the node at start when given */
  chain_id: z.number().int().positive().optional(),
  confirm_height: z.number().int().min(1).max(10_000).default(20),
  native_symbol: str().default("ETH"),
  native_decimals: assetDecimals().default(18),
  tokens: z.record(z.string().regex(/^[A-Za-z0-9_.-]{1,16}$/), token).default({}),
  collection_address: address().optional(),
  fallback_to_collection: z.boolean().default(false),
  /** find internal ETH transfers with debug_traceBlockByNumber (callTracer) */
  trace_internal: z.boolean().default(false),
  /** where a fresh cursor starts: "latest" or a block number */
  start_block: z.union([z.literal("latest"), z.number().int().min(0)]).default("latest"),
  poll_interval_ms: z.number().int().min(50).default(2000),
  /** blocks below the head re-scanned periodically (nodes return incomplete logs at the head) */
  lookback_blocks: z.number().int().min(0).max(1000).default(12),
  rescan_interval_ms: z.number().int().min(100).default(30_000),
  /** typical block interval, used to schedule confirmation checks */
  block_time_ms: z.number().int().min(10).default(12_000),
  /** blocks fetched in parallel while catching up */
  catchup_concurrency: z.number().int().min(1).max(64).default(8),
  /** how long a transaction may wait unmined before it is re-sent with a higher fee */
  stuck_after_s: z.number().int().min(1).default(180),
  /** fee increase for a replacement, in percent (nodes require >= 10) */
  fee_bump_percent: z.number().int().min(10).max(1000).default(20),
  /** never pay more than this per gas (gwei), 0 = no cap */
  max_fee_gwei: z.number().min(0).default(0),
  /**
   * never offer more than this many times the current base fee plus tip per
   * gas (0 = no relative cap): a transaction the node does not mine for
   * another reason is not re-priced without end
   */
  max_fee_multiple: z.union([z.literal(0), z.number().int().min(2).max(1000)]).default(4),
  /**
   * a transfer no wallet can pay (short of the asset or of gas) is held this
   * long for an operator to fix the cause and retry it, then ends status 0
   * with its code (SPEC §7); 0 = end it at once
   */
  hold_s: z.number().int().min(0).default(3600),
  /** a deposit wallet holding tokens is topped up to this much ETH for gas */
  gas_topup_eth: decimalText().default("0.005"),
  /** ... when it holds less than this */
  min_gas_eth: decimalText().default("0.002"),
  /**
   * Payouts and sweeps through EIP-7702 delegation (shared/contracts: one
   * transaction pays many orders of a hot wallet, or sweeps many deposit
   * wallets without a gas top-up) or "off" (one transaction per transfer).
   * Unset: "7702" when the node accepts EIP-7702 transactions, probed at
   * start, else "off". "7702" on a node without it stops the start.
   * (The number 7702, as an env override reads it, is taken too.)
   */
  batching: z
    .union([z.string(), z.number().transform(String)])
    .pipe(z.enum(["7702", "off"]))
    .optional(),
  /**
   * most gas one batch payout transaction may plan for (its gas limit):
   * below the chain's block gas limit and EIP-7825's per-transaction cap
   * (16,777,216); 200 USDT payouts plan about 8 million
   */
  batch_gas_budget: z.number().int().min(1_000_000).max(16_777_216).default(12_000_000),
  /**
   * with batching "7702": the most transactions of a hot wallet that
   * delegates (EIP-7702) the sender keeps unmined at the node at once.
   * geth and reth take one from such an account and refuse the next
   * ("in-flight transaction limit reached for delegated accounts"), so
   * unset means 1, except on anvil (no such limit: unlimited). A wallet
   * at its limit waits for the transaction before to be mined.
   */
  delegated_in_flight: z.number().int().min(1).max(1_000).optional(),
});

const policy = z
  .object({
    /** per-asset maximum of one transfer; above it the request is refused */
    per_request_cap: z.record(z.string(), decimalText()).default({}),
    /** per-asset rolling 24 h total per sending wallet */
    velocity_24h_per_wallet: z.record(z.string(), decimalText()).default({}),
    /** per-asset rolling 24 h total across all wallets */
    velocity_24h_total: z.record(z.string(), decimalText()).default({}),
    /** per-asset amount above which an operator must approve */
    approval_threshold: z.record(z.string(), decimalText()).default({}),
    deny_list: z.array(address()).default([]),
    /** when set, only these destinations may be paid */
    allow_list: z.array(address()).optional(),
  })
  .prefault({});

export const configSchema = z.object({
  net: z.array(str()).min(1).default(["ETH"]),
  rmq_config: rmqConfig,
  redis_url: str().default("redis://127.0.0.1:6379"),
  redis: z
    .object({
      /** BullMQ key prefix; on Redis Cluster it must be a hash tag, e.g. "{payment}" */
      prefix: str().default("payment"),
      /** Redis Cluster start-up nodes (redis://host:port); overrides redis_url */
      cluster_nodes: z.array(str()).optional(),
      /** Sentinel mode: the sentinels and the master's name; overrides redis_url */
      sentinels: z.array(z.object({ host: str(), port: z.number().int() })).optional(),
      sentinel_name: str().optional(),
    })
    .prefault({}),
  mysql_url: str().default("mysql://root@127.0.0.1:3306/payment"),
  // at least 2: a deposit block's finaliser keeps its lock's connection and reads with another
  mysql_pool_size: z.number().int().min(2).max(200).default(10),
  eth_config: chainConfig.optional(),
  /** other EVM chains, keyed like `net` entries */
  evm_chains: z.record(z.string(), chainConfig).default({}),
  max_clock_skew_s: z.number().int().min(1).default(300),
  limits: z
    .object({
      /** larger request messages are dead-lettered `too_large`; at most what request.raw_body holds */
      max_message_bytes: z.number().int().min(256).max(LIMITS.rawBodyBytes).default(256 * 1024),
      max_batch: z.number().int().min(1).max(10_000).default(500),
    })
    .prefault({}),
  policy,
  workers: z
    .object({
      transfer_concurrency: z.number().int().min(1).default(50),
      confirmation_concurrency: z.number().int().min(1).default(100),
      /** how often MySQL is compared with BullMQ to rebuild lost jobs */
      reconcile_interval_ms: z.number().int().min(1000).default(60_000),
      /**
       * BullMQ job lock, renewed at half this while the job runs; a job whose
       * process died is taken over after the lock expires and the next
       * stalled check (so recovery takes about lock + stalled interval).
       */
      lock_duration_ms: z.number().int().min(1000).default(15_000),
      stalled_interval_ms: z.number().int().min(500).default(5_000),
    })
    .prefault({}),
  dashboard: z
    .object({
      host: str().default("127.0.0.1"),
      port: z.number().int().min(0).max(65535).default(3000),
      user: str().default("admin"),
      password: str().optional(),
    })
    .prefault({}),
  /**
   * A bare GET /metrics for a process WITHOUT the dashboard role, so each
   * separately run role's counters can be scraped (off when port is unset).
   */
  metrics: z
    .object({
      host: str().default("127.0.0.1"),
      port: z.number().int().min(0).max(65535).optional(),
    })
    .prefault({}),
  log: z
    .object({
      level: z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]).default("info"),
      /** per-address log files (rotated, compressed) under this folder when set */
      address_log_dir: str().optional(),
      address_log_max_bytes: z.number().int().min(1024).default(1024 * 1024),
    })
    .prefault({}),
});

export type ConfigInput = z.input<typeof configSchema>;
export type ChainConfig = z.output<typeof chainConfig>;
export type RmqRoute = { queue: string; exchange: string; routing: string[] };
