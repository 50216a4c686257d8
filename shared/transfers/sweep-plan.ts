/**
 * Planning a sweep: deposit wallets' tokens consolidated into the collection
 * wallet. Each sweep is a transfer of kind `sweep` with its own id
 * (queue_id `sweep-<unix seconds>-<address>`), sent by the transfer-sender
 * through the same exactly-once path as a withdrawal. A wallet with too
 * little ETH for the gas gets a `gas_topup` transfer from the collection
 * wallet first (queue_id `gas-<unix seconds>-<address>`); its sweep waits
 * for it (see gas-topup.ts).
 *
 * With the chain's DepositSweeper recorded (EIP-7702, `payment contracts
 * deploy`), no top-up is planned: the transfer-sender sweeps the wallets
 * from the collection wallet in one transaction that pays all the gas
 * (workers/transfer-sender/sweep-batch.ts).
 *
 * A wallet that already has a sweep on its way is skipped, so running the
 * command twice never sweeps the same tokens twice (the second would only
 * fail on the balance anyway: in-flight amounts are reserved).
 */
import type { Pool } from "mariadb";
import type { Config } from "../config/load-config.ts";
import type { Queues } from "../jobs/registry.ts";
import { enqueueMany } from "../jobs/registry.ts";
import { inTransaction } from "../adapters/db/sql.ts";
import { formatUnits, tryParseAmount } from "../domain/amount.ts";
import { assetOf } from "../domain/assets.ts";
import type { ChainReads } from "./chain-reads.ts";
import { createTransfers, type NewTransfer } from "./transitions.ts";
import { currentDelegationContracts } from "../adapters/db/delegation-contracts.ts";

export interface SweepOptions {
  chain: string;
  symbol: string;
  /** sweep only balances of at least this many base units (>= 1) */
  minUnits: bigint;
  dryRun: boolean;
  actor: string;
  nowMs: number;
}

export interface SweepLine {
  address: string;
  /** exact decimal text of the token balance seen */
  balance: string;
  action: "sweep" | "sweep after gas top-up" | "skip: below minimum" | "skip: a sweep is already on its way";
  gasTopup?: string;
}

export class SweepError extends Error {
  override name = "SweepError";
}

export async function planSweeps(deps: { config: Config; pool: Pool; queues: Queues; reads: ChainReads }, o: SweepOptions): Promise<SweepLine[]> {
  const cfg = deps.config.chains[o.chain];
  if (!cfg) throw new SweepError(`unknown chain ${o.chain}`);
  const asset = assetOf(cfg, o.symbol);
  if (!asset) throw new SweepError(`${o.symbol} is not configured on ${o.chain}`);
  if (asset.native) throw new SweepError(`sweeping the native coin is not supported: a wallet's ${o.symbol} pays its own gas`);
  const collection = cfg.collection_address;
  if (!collection) throw new SweepError(`eth_config.collection_address is not set for ${o.chain}`);
  // EIP-7702: the collection wallet sweeps through its DepositSweeper and pays the gas itself, so no
  // top-up is planned. If the sender finds the chain not batching after all, it tops a short wallet up
  // itself (gas-topup.ts): the old path needs nothing from here.
  const viaSweeper = cfg.batching !== "off" && (await currentDelegationContracts(deps.pool, o.chain, collection)).sweeper !== null;
  const minGas = tryParseAmount(cfg.min_gas_eth, cfg.native_decimals);
  const target = tryParseAmount(cfg.gas_topup_eth, cfg.native_decimals);

  const wallets = (await deps.pool.query("SELECT address FROM wallet WHERE chain = ? AND kind = 'deposit' AND address <> ? ORDER BY id", [o.chain, collection])) as {
    address: string;
  }[];
  const busy = new Set(
    ((await deps.pool.query(
      "SELECT DISTINCT requested_from FROM transfer WHERE kind = 'sweep' AND chain = ? AND symbol = ? AND state IN ('queued', 'awaiting_approval', 'signed', 'sent', 'mined')",
      [o.chain, o.symbol],
    )) as { requested_from: string }[]).map((r) => r.requested_from),
  );
  const lines: SweepLine[] = [];
  const rows: (NewTransfer & { kind: "sweep" | "gas_topup" })[] = [];
  const ts = Math.floor(o.nowMs / 1000);
  for (let i = 0; i < wallets.length; i += 50) {
    const chunk = wallets.slice(i, i + 50);
    const balances = await Promise.all(
      chunk.map(async (w) => ({ address: w.address, token: await deps.reads.tokenBalance(asset.token, w.address, "latest"), eth: await deps.reads.ethBalance(w.address, "latest") })),
    );
    for (const b of balances) {
      const balance = formatUnits(b.token, asset.decimals);
      if (b.token === 0n || b.token < o.minUnits) {
        if (b.token > 0n) lines.push({ address: b.address, balance, action: "skip: below minimum" });
        continue;
      }
      if (busy.has(b.address)) {
        lines.push({ address: b.address, balance, action: "skip: a sweep is already on its way" });
        continue;
      }
      const line: SweepLine = { address: b.address, balance, action: "sweep" };
      if (!viaSweeper && minGas.ok && target.ok && b.eth < minGas.units && target.units > b.eth) {
        line.action = "sweep after gas top-up";
        line.gasTopup = formatUnits(target.units - b.eth, cfg.native_decimals);
        rows.push({ kind: "gas_topup", queueId: `gas-${ts}-${b.address}`, chain: o.chain, from: collection, to: b.address, symbol: cfg.native_symbol, amount: line.gasTopup });
      }
      rows.push({ kind: "sweep", queueId: `sweep-${ts}-${b.address}`, chain: o.chain, from: b.address, to: collection, symbol: o.symbol, amount: balance });
      lines.push(line);
    }
  }
  if (o.dryRun || rows.length === 0) return lines;

  const created = await inTransaction(deps.pool, (conn) => createTransfers(conn, rows, { actor: o.actor, nowMs: o.nowMs }, { ignoreDuplicates: true }));
  const ids = rows.flatMap((r, i) => (created[i] ? [{ id: created[i], kind: r.kind, queueId: r.queueId }] : []));
  // gas top-ups first: their sweeps wait for them anyway
  const ordered = [...ids.filter((x) => x.kind === "gas_topup"), ...ids.filter((x) => x.kind === "sweep")];
  await enqueueMany(
    deps.queues,
    "send-transfer",
    ordered.map((x) => ({ transferId: x.id.toString(), label: `${x.kind} ${x.queueId}`.slice(0, 200) })),
  );
  return lines;
}
