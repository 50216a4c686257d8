/**
 * Gas for deposit wallets. A sweep from a deposit wallet that holds tokens
 * but too little ETH for its gas is not failed: the collection wallet sends
 * it ETH first, as a transfer of kind `gas_topup` going through the same
 * exactly-once path (its own row, nonce and confirmation), and the sweep
 * waits until that top-up is mined.
 *
 * One top-up per sweep (queue_id `gas-for-<sweep id>`, unique), so a sweep
 * that is still short after its top-up arrived ends `insufficient_gas`
 * instead of draining the collection wallet in a loop. Any top-up already
 * on its way to the wallet (e.g. created by `payment sweep`) is waited for.
 */
import type { Logger } from "../../shared/logger.ts";
import { formatUnits } from "../../shared/domain/amount.ts";
import { tryParseAmount } from "../../shared/domain/amount.ts";
import { inTransaction } from "../../shared/adapters/db/sql.ts";
import { enqueue } from "../../shared/jobs/registry.ts";
import type { SenderChain, SenderContext } from "../../shared/transfers/context.ts";
import { createTransfers } from "../../shared/transfers/transitions.ts";
import { ACTOR, type GasShortSweep } from "./sign-batch.ts";
import { endUnsigned } from "./end-transfer.ts";

export type TopupOutcome = "waiting" | "ended";

/** Amount of a top-up: up to `gas_topup_eth`, and at least twice what the sweep needs, minus what the wallet has. */
export function topupAmount(targetWei: bigint, needWei: bigint, haveWei: bigint): bigint {
  const target = targetWei > 2n * needWei ? targetWei : 2n * needWei;
  return target > haveWei ? target - haveWei : 0n;
}

export async function requestGasTopup(ctx: SenderContext, chain: SenderChain, short: GasShortSweep, log: Logger): Promise<TopupOutcome> {
  const sweep = short.row;
  const wallet = sweep.requested_from;
  const cfg = chain.config;
  const collection = cfg.collection_address;
  if (!collection || collection === wallet) {
    await endUnsigned(ctx, sweep, "insufficient_gas", `${wallet} has too little ${cfg.native_symbol} for gas and no collection wallet can top it up`, ACTOR);
    return "ended";
  }
  const onTheWay = (await ctx.pool.query(
    "SELECT id FROM transfer WHERE kind = 'gas_topup' AND chain = ? AND to_address = ? AND state IN ('queued', 'awaiting_approval', 'signed', 'sent') LIMIT 1",
    [chain.key, wallet],
  )) as { id: bigint }[];
  if (onTheWay.length > 0) return "waiting";
  const queueId = `gas-for-${sweep.id}`;
  const mine = (await ctx.pool.query("SELECT id, state FROM transfer WHERE kind = 'gas_topup' AND queue_id = ? AND order_id = ''", [queueId])) as {
    id: bigint;
    state: string;
  }[];
  if (mine.length > 0) {
    await endUnsigned(ctx, sweep, "insufficient_gas", `${wallet} is still short of gas after a top-up (${mine[0]!.state})`, ACTOR);
    return "ended";
  }
  const target = tryParseAmount(cfg.gas_topup_eth, cfg.native_decimals);
  const amount = topupAmount(target.ok ? target.units : 0n, short.need, short.have);
  if (amount === 0n) return "waiting";
  const amountText = formatUnits(amount, cfg.native_decimals);
  const [id] = await inTransaction(ctx.pool, (conn) =>
    createTransfers(
      conn,
      [{ kind: "gas_topup", queueId, chain: chain.key, symbol: cfg.native_symbol, from: collection, to: wallet, amount: amountText, audit: { for_sweep: sweep.id } }],
      { actor: ACTOR, nowMs: ctx.now() },
      { ignoreDuplicates: true },
    ),
  );
  if (id) {
    await enqueue(ctx.queues, "send-transfer", { transferId: id.toString(), label: `gas_topup ${queueId}` });
    log.info({ wallet, amount: amountText, sweep: sweep.id.toString() }, "sender: deposit wallet short of gas; top-up from the collection wallet requested");
  }
  return "waiting";
}
