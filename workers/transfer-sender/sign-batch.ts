/**
 * Sign a batch of queued transfers of ONE sending address, exactly once.
 * Called with the address's Redis lease held (see send-transfer.ts); the
 * database is the real guard:
 *
 *   1. outside any transaction: node reads at one block B (balances, the
 *      account nonce at B), the pending nonce, fees, a gas estimate each;
 *   2. one transaction: lock the sender_nonce row and the transfer rows
 *      (FOR UPDATE: a concurrent `remove` waits, or we skip what it
 *      cancelled), read what is already in flight and the 24 h policy usage,
 *      decide each transfer in id order (policy -> would it revert ->
 *      balance and gas, cumulatively), plan consecutive nonces for the ones
 *      that go, sign them, insert their tx_attempt rows, move them to
 *      `signed`, advance sender_nonce with a guarded update, and end the
 *      others (failed / awaiting_approval) with their notifications;
 *   3. only after COMMIT does the caller broadcast.
 *
 * A crash before COMMIT leaves nothing (the signatures never left the
 * process); after it, every transfer has its one nonce and raw transaction,
 * which any retry re-broadcasts instead of signing anew.
 *
 * Money in flight: the node's balance at B already reflects every mined
 * transaction with a nonce below the account nonce at B, so what our own
 * signed-but-unmined transactions will still spend is exactly those with
 * nonce >= that account nonce: their amounts and their worst-case gas
 * (gas limit x max fee) are reserved before anything new is signed.
 */
import type { Pool } from "mariadb";
import { isError, type SigningKey } from "ethers";
import type { Logger } from "../../shared/logger.ts";
import { RetryableError, type ErrorCode } from "../../shared/domain/errors.ts";
import { decimalToUnits } from "../../shared/domain/amount.ts";
import { planNonces } from "../../shared/domain/nonce-plan.ts";
import { suggestFees, capFromGwei, gasLimitFromEstimate, maxGasCost, type Fees } from "../../shared/domain/fees.ts";
import { decide, policyLimits, type PolicyLimits } from "../../shared/domain/policy.ts";
import { isTransientRpcError } from "../../shared/adapters/chain.ts";
import { isDuplicateKey, placeholders, type Conn } from "../../shared/adapters/db/sql.ts";
import { insertAudit, insertNotifications, type AuditEntry } from "../../shared/adapters/db/outbox.ts";
import type { NotificationDraft } from "../../shared/domain/notifications.ts";
import type { SenderChain, SenderContext } from "./context.ts";
import { TRANSFER_COLUMNS, isBusinessKind, transferNotes, type TransferRow } from "./transfer-rows.ts";
import { assetOf, signCall, transferCall, type Asset } from "./tx-build.ts";
import type { CallRequest } from "./chain-reads.ts";

export const ACTOR = "transfer-sender";
/** transfers of one address signed under one lease hold */
export const MAX_BATCH = 200;

export interface SignedItem {
  transferId: bigint;
  nonce: bigint;
  hash: string;
  raw: string;
}

export interface GasShortSweep {
  row: TransferRow;
  /** wei the sweep needs for gas, and what the wallet has free */
  need: bigint;
  have: bigint;
}

export interface BatchResult {
  /** committed as `signed`, in nonce order: broadcast these */
  signed: SignedItem[];
  /** short here, to be retried from the collection wallet */
  deferred: bigint[];
  /** sweeps waiting for gas from the collection wallet */
  gasShort: GasShortSweep[];
  /** notifications were written (wake the outbox) */
  notified: boolean;
  /** queued transfers this batch looked at (MAX_BATCH: there may be more) */
  considered: number;
}

type Estimate = { ok: bigint } | { fail: "reverts" | "funds" };

interface Candidate {
  row: TransferRow;
  asset: Asset | null;
  units: bigint | null;
  call: CallRequest | null;
  estimate: Estimate | null;
}

interface Ending {
  row: TransferRow;
  code: ErrorCode;
  detail: string;
  /** the wallet that tried, for the notification's from_address */
  from: string;
}

export interface BatchScope {
  /** null: every queued transfer requested from this address; else exactly these ids */
  ids: bigint[] | null;
  /** this is the collection wallet paying for transfers short elsewhere */
  fallback: boolean;
  /** queued transfers already set aside in this lease hold (deferred, waiting for gas) */
  exclude?: bigint[];
}

export async function signQueuedBatch(ctx: SenderContext, chain: SenderChain, sender: string, scope: BatchScope, log: Logger): Promise<BatchResult> {
  const result: BatchResult = { signed: [], deferred: [], gasShort: [], notified: false, considered: 0 };
  const rows = scope.ids
    ? ((await ctx.pool.query(`SELECT ${TRANSFER_COLUMNS} FROM transfer WHERE id IN (${scope.ids.map(() => "?").join(",")}) AND state = 'queued' ORDER BY id`, scope.ids)) as TransferRow[])
    : ((await ctx.pool.query(
        `SELECT ${TRANSFER_COLUMNS} FROM transfer WHERE chain = ? AND requested_from = ? AND state = 'queued'${
          scope.exclude?.length ? ` AND id NOT IN (${scope.exclude.map(() => "?").join(",")})` : ""
        } ORDER BY id LIMIT ?`,
        [chain.key, sender, ...(scope.exclude ?? []), MAX_BATCH],
      )) as TransferRow[]);
  result.considered = rows.length;
  if (rows.length === 0) return result;
  const keystore = ctx.keystore;
  const cfg = chain.config;
  const collection = cfg.collection_address ?? null;
  const fallbackOpen =
    !scope.fallback && cfg.fallback_to_collection && collection !== null && collection !== sender && (await keystore.walletKind(chain.key, collection)) !== null;

  // Ends decided before touching the node: an asset no longer configured, an amount finer than the asset.
  const early: Ending[] = [];
  const candidates: Candidate[] = [];
  for (const row of rows) {
    const asset = assetOf(cfg, row.symbol);
    if (!asset) {
      early.push({ row, code: "unknown_symbol", detail: `${row.symbol} is not configured on ${row.chain}`, from: sender });
      continue;
    }
    let units: bigint;
    try {
      units = decimalToUnits(row.amount, asset.decimals);
    } catch {
      early.push({ row, code: "invalid_amount", detail: `amount has more decimals than ${row.symbol} (${asset.decimals})`, from: sender });
      continue;
    }
    candidates.push({ row, asset, units, call: transferCall(asset, sender, row.to_address, units), estimate: null });
  }
  if ((await keystore.walletKind(chain.key, sender)) === null) {
    for (const c of candidates) early.push({ row: c.row, code: "unknown_wallet", detail: `${sender} is not a wallet of this gateway on ${chain.key}`, from: sender });
    candidates.length = 0;
  }

  // 1. the node, at one block
  let fees: Fees = { maxFeePerGas: 0n, maxPriorityFeePerGas: 0n };
  let ethBalance = 0n;
  let accountNonce = 0n;
  let pendingNonce = 0n;
  const tokenBalance = new Map<string, bigint>();
  let chainId = 0n;
  if (candidates.length > 0) {
    try {
      const head = await chain.reads.head();
      const tokens = [...new Set(candidates.filter((c) => c.asset && !c.asset.native).map((c) => (c.asset as { token: string }).token))];
      const [tip, pending, latest, eth, balances, id] = await Promise.all([
        chain.reads.tip(),
        chain.reads.nonce(sender, "pending"),
        chain.reads.nonce(sender, head.number),
        chain.reads.ethBalance(sender, head.number),
        Promise.all(tokens.map((t) => chain.reads.tokenBalance(t, sender, head.number))),
        chain.chainId(),
        Promise.all(candidates.map(async (c) => (c.estimate = await estimate(chain, c.call!)))),
      ]);
      fees = suggestFees(head.baseFee, tip, capFromGwei(cfg.max_fee_gwei));
      pendingNonce = pending;
      accountNonce = latest;
      ethBalance = eth;
      tokens.forEach((t, i) => tokenBalance.set(t, balances[i]!));
      chainId = id;
    } catch (e) {
      if (e instanceof RetryableError) throw e;
      throw new RetryableError(`node unavailable while preparing transfers from ${sender}`, { cause: e });
    }
  }
  const key: SigningKey | null = candidates.length > 0 ? await keystore.signingKey(chain.key, sender) : null;
  const policyOf = policyTable(ctx, chain);
  // Velocity headroom is shared beyond this address's lease (all wallets for the total; a wallet's
  // transfers paid by the collection wallet for the per-wallet limit): serialise who spends it.
  const needsVelocityLock = candidates.some((c) => {
    if (!isBusinessKind(c.row.kind)) return false;
    const l = policyOf(c.row.symbol, c.asset!.decimals);
    return l.velocityTotal !== null || l.velocityPerWallet !== null;
  });

  const notes: NotificationDraft[] = [];
  const ended: { symbol: string; code: ErrorCode }[] = [];
  await inLockedTransaction(ctx.pool, needsVelocityLock ? `payment:velocity:${chain.key}` : null, async (conn) => {
    result.signed = [];
    result.deferred = [];
    result.gasShort = [];
    notes.length = 0;
    ended.length = 0;
    const audit: AuditEntry[] = [];
    const endings: Ending[] = [...early];
    const holds: { row: TransferRow; detail: string }[] = [];

    const stored = (await conn.query("SELECT next_nonce FROM sender_nonce WHERE chain = ? AND address = ? FOR UPDATE", [chain.key, sender])) as {
      next_nonce: bigint;
    }[];
    const live = new Map(
      ((await conn.query(`SELECT id, state, approved_by FROM transfer WHERE id IN (${rows.map(() => "?").join(",")}) FOR UPDATE`, rows.map((r) => r.id))) as {
        id: bigint;
        state: string;
        approved_by: string | null;
      }[]).map((r) => [r.id, r]),
    );
    const stillQueued = (row: TransferRow) => live.get(row.id)?.state === "queued";

    // what our own unmined transactions will still take from this wallet
    const inflight = (await conn.query(
      `SELECT t.symbol, t.amount, MAX(a.gas_limit * a.max_fee_per_gas) AS gas_cost FROM transfer t JOIN tx_attempt a ON a.transfer_id = t.id
       WHERE t.chain = ? AND t.from_address = ? AND t.state IN ('signed', 'sent', 'mined') AND t.nonce >= ? GROUP BY t.id, t.symbol, t.amount`,
      [chain.key, sender, accountNonce],
    )) as { symbol: string; amount: string; gas_cost: string }[];
    let ethFree = ethBalance;
    const tokenFree = new Map(tokenBalance);
    for (const f of inflight) {
      ethFree -= BigInt(f.gas_cost);
      const asset = assetOf(cfg, f.symbol);
      if (!asset) continue;
      if (asset.native) ethFree -= decimalToUnits(f.amount, asset.decimals);
      else tokenFree.set(asset.token, (tokenFree.get(asset.token) ?? 0n) - decimalToUnits(f.amount, asset.decimals));
    }

    const usage = await policyUsage(conn, chain.key, candidates.filter((c) => isBusinessKind(c.row.kind)));
    const toSign: { c: Candidate; gasLimit: bigint }[] = [];
    for (const c of candidates) {
      if (!stillQueued(c.row)) continue;
      const asset = c.asset!;
      const units = c.units!;
      const row = c.row;
      const approved = live.get(row.id)?.approved_by != null;
      if (isBusinessKind(row.kind)) {
        const limits = policyOf(row.symbol, asset.decimals);
        const u = usage.get(row.symbol) ?? { wallet: 0n, total: 0n };
        const d = decide({ amount: units, to: row.to_address, approved }, limits, u);
        const base = { actor: ACTOR, queueId: row.queue_id, orderId: row.order_id || null, address: row.requested_from, subjectType: "transfer", subjectId: row.id };
        if (d.action === "reject") {
          audit.push({ ...base, event: "policy.rejected", data: { rule: d.rule, detail: d.detail } });
          endings.push({ row, code: "policy_rejected", detail: d.detail, from: row.requested_from });
          continue;
        }
        if (d.action === "hold") {
          audit.push({ ...base, event: "policy.held", data: { rule: d.rule, detail: d.detail } });
          holds.push({ row, detail: d.detail });
          continue;
        }
        audit.push({ ...base, event: "policy.allowed", data: { approved_by: live.get(row.id)?.approved_by ?? null, sender } });
      }
      const est = c.estimate!;
      const tokenHave = asset.native ? ethFree : (tokenFree.get(asset.token) ?? 0n);
      let short: "insufficient_balance" | "insufficient_gas" | null = null;
      let gasLimit = 0n;
      let needEth = 0n;
      if (units > tokenHave) short = "insufficient_balance";
      else if ("fail" in est && est.fail === "reverts") {
        endings.push({ row, code: "reverted", detail: "the transfer would revert on chain (gas estimation failed); nothing was sent", from: sender });
        continue;
      } else if ("fail" in est) short = "insufficient_gas";
      else {
        gasLimit = gasLimitFromEstimate(est.ok);
        needEth = maxGasCost(gasLimit, fees) + (asset.native ? units : 0n);
        if (needEth > ethFree) short = asset.native && units > ethFree ? "insufficient_balance" : "insufficient_gas";
      }
      if (short) {
        if (fallbackOpen && isBusinessKind(row.kind)) result.deferred.push(row.id);
        else if (row.kind === "sweep" && short === "insufficient_gas" && !scope.fallback) {
          result.gasShort.push({ row, need: needEth > 0n ? needEth : maxGasCost(100_000n, fees), have: ethFree > 0n ? ethFree : 0n });
        } else {
          const what = short === "insufficient_balance" ? `${row.symbol} balance` : `${cfg.native_symbol} for gas`;
          endings.push({ row, code: short, detail: `${sender} has too little ${what}${scope.fallback ? " (collection wallet fallback)" : ""}`, from: sender });
        }
        continue;
      }
      if (asset.native) ethFree -= needEth;
      else {
        ethFree -= needEth;
        tokenFree.set(asset.token, tokenHave - units);
      }
      if (isBusinessKind(row.kind)) {
        const u = usage.get(row.symbol) ?? { wallet: 0n, total: 0n };
        usage.set(row.symbol, { wallet: u.wallet + units, total: u.total + units });
      }
      toSign.push({ c, gasLimit });
    }

    // nonces, signatures, and the rows that make them permanent
    if (toSign.length > 0) {
      const plan = planNonces(stored[0]?.next_nonce ?? null, pendingNonce, toSign.length);
      if (plan.skipped > 0n) {
        log.warn({ sender, skipped: plan.skipped.toString(), from: plan.first.toString() }, "sender: the chain is ahead of our nonce counter (key used elsewhere?); skipping ahead");
        audit.push({ actor: ACTOR, event: "nonce.skipped", address: sender, data: { skipped: plan.skipped, first: plan.first } });
      }
      const attempts = toSign.map(({ c, gasLimit }, i) => {
        const nonce = plan.nonces[i]!;
        const signed = signCall(key!, chainId, nonce, c.call!, gasLimit, fees);
        return { c, gasLimit, nonce, ...signed };
      });
      if (stored.length === 0) {
        try {
          await conn.query("INSERT INTO sender_nonce (chain, address, next_nonce, updated_at) VALUES (?, ?, ?, NOW(3))", [chain.key, sender, plan.next]);
        } catch (e) {
          if (isDuplicateKey(e)) throw new RetryableError(`another process created the nonce counter of ${sender} first`, { cause: e });
          throw e;
        }
      } else {
        const res = (await conn.query("UPDATE sender_nonce SET next_nonce = ?, updated_at = NOW(3) WHERE chain = ? AND address = ? AND next_nonce = ?", [
          plan.next,
          chain.key,
          sender,
          stored[0]!.next_nonce,
        ])) as { affectedRows: number };
        if (Number(res.affectedRows) !== 1) throw new RetryableError(`nonce counter of ${sender} moved under us`);
      }
      await conn.query(
        `INSERT INTO tx_attempt (transfer_id, chain, from_address, nonce, tx_hash, raw_tx, max_fee_per_gas, max_priority_fee_per_gas, gas_limit, state) VALUES ${placeholders(attempts.length, 10)}`,
        attempts.flatMap((a) => [a.c.row.id, chain.key, sender, a.nonce, a.hash, a.raw, fees.maxFeePerGas, fees.maxPriorityFeePerGas, a.gasLimit, "signed"]),
      );
      const ids = attempts.map((a) => a.c.row.id);
      const moved = (await conn.query(
        `UPDATE transfer t JOIN tx_attempt a ON a.transfer_id = t.id
         SET t.state = 'signed', t.from_address = a.from_address, t.nonce = a.nonce, t.tx_hash = a.tx_hash, t.updated_at = NOW(3)
         WHERE t.id IN (${ids.map(() => "?").join(",")}) AND t.state = 'queued'`,
        ids,
      )) as { affectedRows: number };
      // The rows are locked FOR UPDATE above, so this can only fail on a bug; never commit a half batch.
      if (Number(moved.affectedRows) !== attempts.length) throw new Error(`signed ${attempts.length} transfers but moved ${moved.affectedRows}`);
      for (const a of attempts) {
        audit.push({
          actor: ACTOR,
          event: "transfer.signed",
          queueId: a.c.row.queue_id,
          orderId: a.c.row.order_id || null,
          address: sender,
          subjectType: "transfer",
          subjectId: a.c.row.id,
          data: { nonce: a.nonce, tx_hash: a.hash, max_fee_per_gas: fees.maxFeePerGas, max_priority_fee_per_gas: fees.maxPriorityFeePerGas, gas_limit: a.gasLimit, fallback: scope.fallback },
        });
        result.signed.push({ transferId: a.c.row.id, nonce: a.nonce, hash: a.hash, raw: a.raw });
      }
    }

    // transfers that end here
    const nowMs = ctx.now();
    for (const e of endings) {
      if (!stillQueued(e.row)) continue;
      const res = (await conn.query(
        "UPDATE transfer SET state = 'failed', error = ?, error_detail = ?, finalized_at = NOW(3), updated_at = NOW(3) WHERE id = ? AND state = 'queued'",
        [e.code, e.detail.slice(0, 512), e.row.id],
      )) as { affectedRows: number };
      if (Number(res.affectedRows) !== 1) continue;
      ended.push({ symbol: e.row.symbol, code: e.code });
      notes.push(...transferNotes(e.row, 0, nowMs, { fromAddress: e.from }, e.code, e.detail));
      audit.push({
        actor: ACTOR,
        event: "transfer.failed",
        queueId: e.row.queue_id,
        orderId: e.row.order_id || null,
        address: e.row.requested_from,
        subjectType: "transfer",
        subjectId: e.row.id,
        data: { error: e.code, detail: e.detail },
      });
    }
    for (const h of holds) {
      await conn.query("UPDATE transfer SET state = 'awaiting_approval', error_detail = ?, updated_at = NOW(3) WHERE id = ? AND state = 'queued'", [
        h.detail.slice(0, 512),
        h.row.id,
      ]);
    }
    await insertNotifications(conn, notes);
    await insertAudit(conn, audit);
  });

  for (const e of ended) ctx.metrics.transfers.inc({ chain: chain.key, symbol: e.symbol, status: e.code });
  result.notified = notes.length > 0;
  if (result.signed.length > 0) log.info({ sender, signed: result.signed.length, first_nonce: result.signed[0]!.nonce.toString() }, "sender: batch signed");
  return result;
}

async function estimate(chain: SenderChain, call: CallRequest): Promise<Estimate> {
  try {
    // At `latest`, not pending: see ChainReads.estimateGas. What our own
    // pending transfers change is the sender's balance (checked separately)
    // and their recipients' balances, which they only raise (a recipient
    // holding a balance is cheaper to pay, so `latest` errs high). A
    // recipient emptying its own balance before we are mined is covered no
    // better by `pending`; gasLimitFromEstimate's margin stays on top.
    return { ok: await chain.reads.estimateGas(call, "latest") };
  } catch (e) {
    if (isError(e, "CALL_EXCEPTION")) return { fail: "reverts" };
    if (isError(e, "INSUFFICIENT_FUNDS")) return { fail: "funds" };
    if (isTransientRpcError(e)) throw new RetryableError("node unavailable while estimating gas", { cause: e });
    throw e;
  }
}

function policyTable(ctx: SenderContext, chain: SenderChain) {
  const cache = new Map<string, PolicyLimits>();
  return (symbol: string, decimals: number) => {
    let l = cache.get(symbol);
    if (!l) cache.set(symbol, (l = policyLimits(ctx.config.policy, chain.key, symbol, decimals)));
    return l;
  };
}

/**
 * Rolling 24 h usage per symbol of the candidates' requesting wallet and of
 * all wallets: withdraw/pay transfers signed or beyond (not failed or
 * cancelled), timed by when they were sent (or signed, until sent).
 */
async function policyUsage(conn: Conn, chain: string, business: Candidate[]) {
  const out = new Map<string, { wallet: bigint; total: bigint }>();
  if (business.length === 0) return out;
  const wallet = business[0]!.row.requested_from;
  const symbols = [...new Set(business.map((c) => c.row.symbol))];
  // Two branches so each uses the (chain, sent_at) index: rows sent in the
  // last 24 h, and rows signed but not yet marked sent (sent_at NULL).
  const inSymbols = symbols.map(() => "?").join(",");
  const rows = (await conn.query(
    `SELECT symbol, COALESCE(SUM(amount), 0) AS total, COALESCE(SUM(CASE WHEN requested_from = ? THEN amount ELSE 0 END), 0) AS wallet
     FROM (
       SELECT symbol, amount, requested_from FROM transfer
        WHERE chain = ? AND sent_at >= NOW(3) - INTERVAL 1 DAY AND kind IN ('withdraw', 'pay') AND symbol IN (${inSymbols})
          AND state IN ('signed', 'sent', 'mined', 'confirmed')
       UNION ALL
       SELECT symbol, amount, requested_from FROM transfer
        WHERE chain = ? AND sent_at IS NULL AND updated_at >= NOW(3) - INTERVAL 1 DAY AND kind IN ('withdraw', 'pay') AND symbol IN (${inSymbols})
          AND state IN ('signed', 'sent', 'mined', 'confirmed')
     ) recent
     GROUP BY symbol`,
    [wallet, chain, ...symbols, chain, ...symbols],
  )) as { symbol: string; total: string; wallet: string }[];
  for (const r of rows) {
    const c = business.find((x) => x.row.symbol === r.symbol)!;
    out.set(r.symbol, { wallet: decimalToUnits(r.wallet, c.asset!.decimals), total: decimalToUnits(r.total, c.asset!.decimals) });
  }
  return out;
}

/**
 * A transaction, optionally under a MySQL named lock held until after
 * COMMIT (velocity limits span more than one sending address, so two
 * batches must not both spend the same headroom). Deadlocks and
 * lock-wait timeouts are retried: nothing of a rolled-back attempt escaped.
 */
async function inLockedTransaction(pool: Pool, lockName: string | null, fn: (conn: Conn) => Promise<void>): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    const conn = await pool.getConnection();
    let locked = false;
    try {
      if (lockName) {
        const got = (await conn.query("SELECT GET_LOCK(?, 10) AS ok", [lockName])) as { ok: bigint | number | null }[];
        if (Number(got[0]?.ok) !== 1) throw new RetryableError(`busy: could not take ${lockName}`);
        locked = true;
      }
      await conn.beginTransaction();
      try {
        await fn(conn);
        await conn.commit();
        return;
      } catch (e) {
        await conn.rollback().catch(() => undefined);
        const errno = (e as { errno?: number }).errno;
        if ((errno === 1213 || errno === 1205) && attempt < 4) continue;
        throw e;
      }
    } finally {
      if (locked) await conn.query("SELECT RELEASE_LOCK(?)", [lockName]).catch(() => undefined);
      await conn.release().catch(() => undefined);
    }
  }
}
