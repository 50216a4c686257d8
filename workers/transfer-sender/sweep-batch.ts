/**
 * Sweeps through the DepositSweeper (EIP-7702): the collection wallet
 * empties many deposit wallets in ONE transaction it sends and pays for,
 * carrying each deposit wallet's authorization (signed with that wallet's
 * key for its current account nonce). No ETH is ever sent to a deposit
 * wallet. Called with the collection wallet's lease held (the caller also
 * holds the lease of the deposit wallet whose job started it).
 *
 * Exactly once, as for every transfer: one database transaction locks the
 * collection wallet's nonce counter and the sweep rows, signs, and commits
 * every swept wallet's transfer as `signed` with one tx_attempt row each
 * (same hash and raw bytes, its item index) before the caller broadcasts.
 * A sweep's transfer keeps `requested_from` = its deposit wallet (whose
 * tokens move) and gets `from_address` = the collection wallet (whose nonce
 * and gas carry it): confirmation follows the collection wallet's nonce and
 * reads the wallet's bit of the receipt's Sweep event.
 *
 * A wallet is left out of the batch (and swept the old way, by its own
 * transaction after a gas top-up, in the same drain) when the sweeper path
 * cannot be sure of it: the node's pending nonce differs from its nonce at
 * the block (a transaction of its own is on its way, its authorization's
 * nonce would be stale), its balance at the block is short of the sweep, or
 * an estimate fails. When the collection wallet cannot pay the batch's
 * worst-case gas, nothing is batched: every sweep goes the old way.
 */
import type { SigningKey } from "ethers";
import type { Logger } from "../../shared/logger.ts";
import { RetryableError } from "../../shared/domain/errors.ts";
import { decimalToUnits } from "../../shared/domain/amount.ts";
import { assetOf } from "../../shared/domain/assets.ts";
import { planNonces } from "../../shared/domain/nonce-plan.ts";
import { feeCap, maxGasCost, suggestFees } from "../../shared/domain/fees.ts";
import { MAX_BATCH_AMOUNT, SWEEP_BASE_GAS, SWEEP_GAS_PER_ITEM, sweepItemGas } from "../../shared/domain/delegation-batch-plan.ts";
import { inTransaction } from "../../shared/adapters/db/sql.ts";
import { delegationTarget, signAuthorization, signDelegationTx } from "../../shared/adapters/eip7702.ts";
import { encodeSweep } from "../../shared/adapters/delegation-calls.ts";
import { isTransientRpcError } from "../../shared/adapters/chain.ts";
import type { SenderChain, SenderContext } from "../../shared/transfers/context.ts";
import { loadTransfers, TRANSFER_COLUMNS, type TransferRow } from "../../shared/transfers/rows.ts";
import { transferCall } from "../../shared/transfers/tx-build.ts";
import type { SignedItem } from "../../shared/transfers/broadcast.ts";
import { markSigned, type SignedAttempt } from "../../shared/transfers/chain-transitions.ts";
import { ACTOR, MAX_BATCH, advanceNonce, freeFunds } from "./sign-batch.ts";
import { logToJobs } from "../../shared/jobs/job-log.ts";

/** even one wallet goes through the sweeper: its own way costs a top-up transaction and strands the top-up's rest */
const MIN_SWEEP_ITEMS = 1;

interface Wallet {
  row: TransferRow;
  units: bigint;
  key: SigningKey;
  /** the wallet's account nonce at the block (its authorization's nonce) */
  nonce: bigint;
  delegated: boolean;
  gas: bigint;
}

/** The queued sweeps of `chain` into the collection wallet, oldest first. */
async function queuedSweeps(ctx: SenderContext, chain: string, collection: string, symbol: string): Promise<TransferRow[]> {
  return (await ctx.pool.query(
    `SELECT ${TRANSFER_COLUMNS} FROM transfer WHERE chain = ? AND kind = 'sweep' AND state = 'queued' AND to_address = ? AND symbol = ? AND requested_from <> ? ORDER BY id LIMIT ?`,
    [chain, collection, symbol, collection, MAX_BATCH],
  )) as TransferRow[];
}

/**
 * Sign one sweeper transaction for the queued sweeps of `symbol` on the
 * chain (up to MAX_BATCH wallets) and commit them `signed`. Returns what to
 * broadcast (empty when nothing was batched).
 */
export async function signSweeperBatch(ctx: SenderContext, chain: SenderChain, collection: string, sweeper: string, symbol: string, log: Logger): Promise<SignedItem[]> {
  const cfg = chain.config;
  const asset = assetOf(cfg, symbol);
  if (!asset || asset.native) return [];
  const rows = await queuedSweeps(ctx, chain.key, collection, symbol);
  if (rows.length < MIN_SWEEP_ITEMS) return [];

  // 1. the node, at one block: every wallet's balance, nonce (at the block and pending), code and estimate
  let wallets: Wallet[] = [];
  let head: Awaited<ReturnType<SenderChain["reads"]["head"]>>;
  let fees: ReturnType<typeof suggestFees>;
  let pendingNonce: bigint;
  let accountNonce: bigint;
  let eth: bigint;
  let chainId: bigint;
  try {
    head = await chain.reads.head();
    const [tip, pending, latest, ethBalance, id] = await Promise.all([
      chain.reads.tip(),
      chain.reads.nonce(collection, "pending"),
      chain.reads.nonce(collection, head.number),
      chain.reads.ethBalance(collection, head.number),
      chain.chainId(),
    ]);
    fees = suggestFees(head.baseFee, tip, feeCap(cfg, head.baseFee, tip));
    pendingNonce = pending;
    accountNonce = latest;
    eth = ethBalance;
    chainId = id;
    const facts = await Promise.all(
      rows.map(async (row) => {
        const units = decimalToUnits(row.amount, asset.decimals);
        const w = row.requested_from;
        const [balance, nonceAt, noncePending, code, estimate] = await Promise.all([
          chain.reads.tokenBalance(asset.token, w, head.number),
          chain.reads.nonce(w, head.number),
          chain.reads.nonce(w, "pending"),
          chain.reads.code(w, head.number),
          chain.reads.estimateGas(transferCall(asset, w, collection, units), "latest").catch((e: unknown) => {
            if (isTransientRpcError(e)) throw e;
            return null;
          }),
        ]);
        return { row, units, balance, nonceAt, noncePending, code, estimate };
      }),
    );
    for (const f of facts) {
      if (f.units <= 0n || f.units > MAX_BATCH_AMOUNT || f.balance < f.units || f.nonceAt !== f.noncePending || f.estimate === null) continue;
      if ((await ctx.keystore.walletKind(chain.key, f.row.requested_from)) !== "deposit") continue;
      const delegated = delegationTarget(f.code) === sweeper;
      wallets.push({ row: f.row, units: f.units, key: await ctx.keystore.signingKey(chain.key, f.row.requested_from), nonce: f.nonceAt, delegated, gas: sweepItemGas(f.estimate, !delegated) });
    }
  } catch (e) {
    if (e instanceof RetryableError) throw e;
    throw new RetryableError(`node unavailable while preparing a sweep into ${collection}`, { cause: e });
  }
  if (wallets.length < MIN_SWEEP_ITEMS) return [];
  // within the gas budget, in id order
  let gasLimit = SWEEP_BASE_GAS;
  const fit: Wallet[] = [];
  for (const w of wallets) {
    if (gasLimit + w.gas > BigInt(cfg.batch_gas_budget)) break;
    gasLimit += w.gas;
    fit.push(w);
  }
  wallets = fit;
  if (wallets.length < MIN_SWEEP_ITEMS) return [];
  const collectionKey = await ctx.keystore.signingKey(chain.key, collection);

  // 2. one transaction: nonce counter and rows locked, the batch signed and committed `signed`
  const signed = await inTransaction(ctx.pool, async (conn): Promise<SignedItem[]> => {
    const stored = (await conn.query("SELECT next_nonce FROM sender_nonce WHERE chain = ? AND address = ? FOR UPDATE", [chain.key, collection])) as { next_nonce: bigint }[];
    const live = new Map((await loadTransfers(conn, wallets.map((w) => w.row.id), { forUpdate: true })).map((r) => [r.id, r]));
    const members = wallets.filter((w) => live.get(w.row.id)?.state === "queued");
    if (members.length < MIN_SWEEP_ITEMS) return [];
    const limit = SWEEP_BASE_GAS + members.reduce((s, w) => s + w.gas, 0n);
    // the collection wallet pays the whole batch's worst-case gas; short: every sweep goes its own way
    const free = await freeFunds(conn, chain, collection, { accountNonce, eth, tokens: new Map() });
    if (free.eth < maxGasCost(limit, fees)) {
      log.warn({ collection, need: maxGasCost(limit, fees).toString(), free: free.eth.toString() }, "sender: the collection wallet cannot pay a sweeper batch's gas; sweeping the old way");
      return [];
    }
    const nonces = planNonces(stored[0]?.next_nonce ?? null, pendingNonce, 1);
    const nonce = nonces.nonces[0]!;
    const tx = signDelegationTx(collectionKey, {
      chainId,
      nonce,
      to: sweeper,
      data: encodeSweep(
        asset.token,
        members.map((w) => ({ wallet: w.row.requested_from, amount: w.units })),
        SWEEP_GAS_PER_ITEM,
      ),
      gasLimit: limit,
      fees,
      authorizations: members.filter((w) => !w.delegated).map((w) => signAuthorization(w.key, { chainId, address: sweeper, nonce: w.nonce })),
    });
    const attempts: SignedAttempt[] = members.map((w, index) => ({ row: w.row, gasLimit: limit, nonce, hash: tx.hash, raw: tx.raw, batch: { index, size: members.length } }));
    await advanceNonce(conn, chain.key, collection, stored[0]?.next_nonce ?? null, nonces.next);
    await markSigned(conn, chain.key, collection, attempts, fees, { actor: ACTOR, nowMs: ctx.now(), fallback: false });
    log.info({ collection, sweeper, wallets: members.length, nonce: nonce.toString(), tx_hash: tx.hash }, "sender: sweep batch signed");
    return attempts.map((a) => ({ transferId: a.row.id, nonce, hash: tx.hash, raw: tx.raw }));
  });
  const line = (s: SignedItem) => `signed: swept by the collection wallet ${collection} through the DepositSweeper, nonce ${s.nonce}, tx ${s.hash} (one transaction for ${signed.length} wallets)`;
  await logToJobs(ctx.queues, "send-transfer", signed.map((s) => ({ id: s.transferId, line: line(s) })), log);
  return signed;
}

/** Symbols of the queued sweeps requested from `wallet` (what a deposit wallet's drain hands to the sweeper). */
export async function queuedSweepSymbols(ctx: SenderContext, chain: string, wallet: string): Promise<string[]> {
  const rows = (await ctx.pool.query("SELECT DISTINCT symbol FROM transfer WHERE chain = ? AND kind = 'sweep' AND state = 'queued' AND requested_from = ?", [chain, wallet])) as {
    symbol: string;
  }[];
  return rows.map((r) => r.symbol);
}
