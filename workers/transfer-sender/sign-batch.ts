/**
 * Sign a batch of queued transfers of ONE sending address, exactly once.
 * Called with the address's Redis lease held (see send-transfer.ts); the
 * database is the real guard:
 *
 *   1. outside any transaction: node reads at one block B (balances, the
 *      account nonce at B), the pending nonce, fees, a gas estimate each
 *      (one simulation of them all when they may be batched);
 *   2. one transaction: lock the sender_nonce row and the transfer rows
 *      (FOR UPDATE: a concurrent `remove` waits, or we skip what it
 *      cancelled), read what is already in flight, the 24 h policy usage and
 *      the requests' totals, let the pure planner (shared/domain/batch-plan.ts)
 *      decide each transfer, plan consecutive nonces for the ones that go,
 *      sign them, and carry the plan out through shared/transfers (signed,
 *      failed, awaiting approval, held), advancing sender_nonce with a
 *      guarded update;
 *   3. only after COMMIT does the caller broadcast.
 *
 * A crash before COMMIT leaves nothing (the signatures never left the
 * process); after it, every transfer has its one nonce and raw transaction,
 * which any retry re-broadcasts instead of signing anew.
 *
 * EIP-7702 batches (the chain's batching resolved "7702" and its
 * BatchExecutor recorded, see ctx.batchExecutor): once the planner has
 * decided each transfer as today (policy, holds, funds: per transfer, at
 * its plain gas), the token payouts it signs are grouped by
 * planPayoutTxs (shared/domain/delegation-batch-plan.ts) into batches under
 * the chain's batch_gas_budget. A batch is ONE transaction of the wallet to
 * itself (BatchExecutor.pay), one nonce, persisted as one tx_attempt row per
 * member (same hash and raw bytes, its item index) in the same COMMIT; the
 * broadcast sends it once for all. The wallet's own authorization rides on
 * the first batch while the wallet does not delegate to the executor yet and
 * no unmined batch of ours installs it; it takes the nonce after its
 * transaction's, so the next transaction gets nonce + 2 (sender_nonce moves
 * past both). Cancellation keeps working per order: a `remove` locks the
 * rows first and the batch is built only from rows still queued under our
 * lock; once signed, an order is in its batch for good.
 *
 * Money in flight: the node's balance at B already reflects every mined
 * transaction with a nonce below the account nonce at B, so what our own
 * signed-but-unmined transactions will still spend is exactly those with
 * nonce >= that account nonce: their amounts and their worst-case gas are
 * reserved before anything new is signed. A replacement the node never took
 * spends nothing: only attempts that went out (or a transfer's first, while
 * none has) count.
 */
import { isError, type SigningKey } from "ethers";
import type { Logger } from "../../shared/logger.ts";
import { RetryableError, type ErrorCode } from "../../shared/domain/errors.ts";
import { decimalToUnits } from "../../shared/domain/amount.ts";
import { assetOf, type Asset } from "../../shared/domain/assets.ts";
import { planNonces } from "../../shared/domain/nonce-plan.ts";
import { suggestFees, feeCap, type Fees } from "../../shared/domain/fees.ts";
import { policyLimits, type PolicyLimits, type PolicyUsage } from "../../shared/domain/policy.ts";
import { planBatch, spendOf, type Estimate, type PlanCandidate, type PlanDecision } from "../../shared/domain/batch-plan.ts";
import { BATCH_MIN_ITEMS, planPayoutTxs, type TxUnit } from "../../shared/domain/delegation-batch-plan.ts";
import { delegationTarget } from "../../shared/adapters/eip7702.ts";
import { isTransientRpcError } from "../../shared/adapters/chain.ts";
import { affected, inList, inLockedTransaction, isDuplicateKey, type Conn } from "../../shared/adapters/db/sql.ts";
import { insertAudit } from "../../shared/adapters/db/outbox.ts";
import { SENDER_ACTOR, type SenderChain, type SenderContext } from "../../shared/transfers/context.ts";
import { isBusinessKind, loadTransfers, queuedFrom, type TransferRow } from "../../shared/transfers/rows.ts";
import { signBatchPay, signCall, transferCall } from "../../shared/transfers/tx-build.ts";
import type { CallRequest } from "../../shared/transfers/chain-reads.ts";
import type { SignedItem } from "../../shared/transfers/broadcast.ts";
import { awaitApproval, fail, hold, type Ending } from "../../shared/transfers/transitions.ts";
import { markSigned, type SignedAttempt } from "../../shared/transfers/chain-transitions.ts";
import { logToJobs } from "../../shared/jobs/job-log.ts";
import { phaseClock } from "../../shared/metrics.ts";

export const ACTOR = SENDER_ACTOR;
/** transfers of one address signed under one lease hold */
export const MAX_BATCH = 200;
/** how long a batch waits for the velocity lock another batch holds */
const VELOCITY_LOCK_WAIT_S = 10;

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
  /** held for an operator (SPEC §7): their jobs report why */
  held: bigint[];
  /** cleared to go, but waiting for a transaction of the wallet to be mined first (see waitFor) */
  waiting: bigint[];
  /**
   * While `waiting` has transfers: the wallet's account nonce at the head
   * that lets them go (the transaction they wait for is mined), and what
   * that transaction is: the one installing the wallet's delegation, or
   * the last one the node may hold of a wallet that delegates.
   */
  waitFor: { nonce: bigint; reason: "delegation" | "in-flight" } | null;
  /** notifications were written (wake the outbox) */
  notified: boolean;
  /** queued transfers this batch looked at (MAX_BATCH: there may be more) */
  considered: number;
  /**
   * Business transfers this batch decided for good (signed, ended, held, sent
   * for approval): nothing is left for their jobs but to read the row and
   * report it (see the drain's startJobs).
   */
  handled: bigint[];
}

interface Candidate {
  row: TransferRow;
  asset: Asset;
  units: bigint;
  call: CallRequest;
  estimate: Estimate | null;
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
  const result: BatchResult = { signed: [], deferred: [], gasShort: [], held: [], waiting: [], waitFor: null, notified: false, considered: 0, handled: [] };
  const mark = phaseClock(ctx.metrics, chain.key);
  const rows = scope.ids ? await loadTransfers(ctx.pool, scope.ids, { states: ["queued"] }) : await queuedFrom(ctx.pool, chain.key, sender, MAX_BATCH, scope.exclude);
  result.considered = rows.length;
  if (rows.length === 0) return result;
  mark("select");
  const keystore = ctx.keystore;
  const cfg = chain.config;
  const collection = cfg.collection_address ?? null;
  const fallbackOpen =
    !scope.fallback && cfg.fallback_to_collection && collection !== null && collection !== sender && (await keystore.walletKind(chain.key, collection)) !== null;

  // Ends decided before touching the node: an asset no longer configured, an amount finer than the asset, a wallet we do not hold.
  const early: Ending[] = [];
  let candidates: Candidate[] = [];
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
  if (candidates.length > 0 && (await keystore.walletKind(chain.key, sender)) === null) {
    for (const c of candidates) early.push({ row: c.row, code: "unknown_wallet", detail: `${sender} is not a wallet of this gateway on ${chain.key}`, from: sender });
    candidates = [];
  }

  // 1. the node, at one block (and, when token payouts may go out in one batch, whom the wallet delegates to)
  const executor = candidates.length > 0 && !scope.fallback && ctx.batchExecutor ? await ctx.batchExecutor(chain.key) : null;
  const node = candidates.length > 0 ? await readNode(chain, sender, candidates, executor !== null) : null;
  const key: SigningKey | null = node ? await keystore.signingKey(chain.key, sender) : null;
  mark("node");
  const policyOf = policyTable(ctx, chain);
  // Velocity headroom is shared beyond this address's lease (all wallets for the total; a wallet's
  // transfers paid by the collection wallet for the per-wallet limit): serialise who spends it.
  const velocityBound = (c: Candidate) => {
    if (!isBusinessKind(c.row.kind)) return false;
    const l = policyOf(c.row.symbol, c.asset.decimals);
    return l.velocityTotal !== null || l.velocityPerWallet !== null;
  };
  const needsVelocityLock = candidates.some(velocityBound);

  const ended: { symbol: string; code: ErrorCode }[] = [];
  await inLockedTransaction(ctx.pool, needsVelocityLock ? `velocity:${chain.key}` : null, VELOCITY_LOCK_WAIT_S, async (conn) => {
    Object.assign(result, { signed: [], deferred: [], gasShort: [], held: [], waiting: [], waitFor: null, notified: false });
    ended.length = 0;
    const step = { actor: ACTOR, nowMs: ctx.now() };

    const stored = (await conn.query("SELECT next_nonce FROM sender_nonce WHERE chain = ? AND address = ? FOR UPDATE", [chain.key, sender])) as { next_nonce: bigint }[];
    const live = new Map((await loadTransfers(conn, rows.map((r) => r.id), { forUpdate: true })).map((r) => [r.id, r]));
    const stillQueued = (row: TransferRow) => live.get(row.id)?.state === "queued";
    const queued = candidates.filter((c) => stillQueued(c.row));
    mark("lock");

    let plan: PlanDecision[] = [];
    let planFacts: { ethFree: bigint; candidates: PlanCandidate[] } | null = null;
    if (node && queued.length > 0) {
      const free = await freeFunds(conn, chain, sender, node);
      const business = queued.filter((c) => isBusinessKind(c.row.kind));
      const planCandidates: PlanCandidate[] = queued.map((c) => ({
        id: c.row.id,
        business: isBusinessKind(c.row.kind),
        sweep: c.row.kind === "sweep",
        asset: c.asset,
        units: c.units,
        to: c.row.to_address,
        approved: live.get(c.row.id)?.approved_by != null,
        request: requestKey(c.row),
        estimate: c.estimate!,
      }));
      planFacts = { ethFree: free.eth, candidates: planCandidates };
      plan = planBatch(
        {
          sender,
          nativeSymbol: cfg.native_symbol,
          nativeDecimals: cfg.native_decimals,
          fees: node.fees,
          ethFree: free.eth,
          tokenFree: free.tokens,
          limits: (symbol) => policyOf(symbol, assetOf(cfg, symbol)!.decimals),
          // only velocity limits read the 24 h usage: without one, the scan of a day's transfers is skipped
          usage: await policyUsage(conn, chain.key, business.filter(velocityBound)),
          requestTotals: await requestTotals(conn, business),
          fallback: scope.fallback,
          fallbackOpen,
          holdShortfalls: cfg.hold_s > 0,
        },
        planCandidates,
      );
    }

    mark("plan");
    // nonces, signatures, and the rows that make them permanent
    const byId = new Map(queued.map((c) => [c.row.id, c]));
    let toSign = plan.flatMap((d) => (d.action === "sign" ? [{ c: byId.get(d.id)!, gasLimit: d.gasLimit }] : []));
    // While a batch of ours that installs the wallet's delegation is unmined, nothing else of the wallet is
    // signed: the transaction after it would take nonce + 2 (the authorization uses nonce + 1), and nodes
    // do not take that well: anvil's pool parks it as "queued" for a nonce + 1 that never comes as a
    // transaction, so it is never mined until replaced; geth and reth allow an account with a pending
    // authorization a single transaction in flight. One block's wait, once per wallet.
    const authNonce = executor !== null && toSign.length > 0 && node!.delegatesTo !== executor ? await authorizationInFlight(conn, chain.key, sender, node!.accountNonce) : null;
    if (authNonce !== null) {
      result.waiting = toSign.map(({ c }) => c.row.id);
      result.waitFor = { nonce: authNonce + 1n, reason: "delegation" };
      toSign = [];
    }
    // geth and reth keep at most one transaction of an account that delegates in their pool and refuse
    // the next ("in-flight transaction limit reached for delegated accounts"): a wallet that delegates
    // gets no more unmined transactions than the node takes (ctx.delegatedInFlight); the rest wait for
    // the one before to be mined. A refused one would stay signed and its jobs would spend their
    // attempts on a node that is only saying "later".
    const cap = executor !== null && toSign.length > 0 && node!.delegatesTo !== null && ctx.delegatedInFlight ? await ctx.delegatedInFlight(chain.key) : null;
    let room = Number.POSITIVE_INFINITY;
    if (cap !== null) {
      const unmined = await unminedNonces(conn, chain.key, sender, node!.accountNonce);
      room = cap - unmined.length;
      if (room <= 0) {
        result.waiting = toSign.map(({ c }) => c.row.id);
        result.waitFor = { nonce: unmined[unmined.length - 1]! + 1n, reason: "in-flight" };
        toSign = [];
      }
    }
    if (toSign.length > 0) {
      // One transaction per transfer, or (EIP-7702) token payouts of this wallet in batches, one nonce each.
      let units: TxUnit<number>[] =
        executor && planFacts
          ? planPayoutTxs(
              toSign.map(({ c, gasLimit }, i) => ({
                id: i,
                // a transfer signed without a gas estimate of its own (none today) goes alone
                business: isBusinessKind(c.row.kind) && c.estimate !== null && "ok" in c.estimate,
                token: c.asset.native ? null : c.asset.token,
                units: c.units,
                estimate: c.estimate !== null && "ok" in c.estimate ? c.estimate.ok : 0n,
                plainGasLimit: gasLimit,
              })),
              {
                wallet: sender,
                gasBudget: BigInt(cfg.batch_gas_budget),
                maxItems: MAX_BATCH,
                maxFeePerGas: node!.fees.maxFeePerGas,
                ethSpare: planFacts.ethFree - spendOf(plan, planFacts.candidates, node!.fees).eth,
              },
            )
          : toSign.map((_, i) => ({ kind: "single", id: i }));
      // The wallet's own authorization rides on the first batch while the wallet does not delegate to the
      // executor yet (no unmined transaction of ours installs it: see authNonce). It uses a nonce of its
      // own (the transaction's nonce + 1): the next transaction after that batch takes nonce + 2, and waits
      // for it to be mined like the later ones of this drain (authNonce).
      // At most `room` transactions go now (a node that limits delegated wallets, see cap above).
      const firstBatch = units.findIndex((u) => u.kind === "batch");
      let authAt = firstBatch >= 0 && node!.delegatesTo !== executor ? firstBatch : -1;
      const keep = Math.min(authAt >= 0 ? authAt + 1 : units.length, room);
      const waitReason = authAt >= 0 && keep === authAt + 1 ? "delegation" : "in-flight";
      if (authAt >= keep) authAt = -1; // the authorizing batch itself waits: no nonce is kept for it
      if (units.length > keep) {
        for (const u of units.slice(keep)) result.waiting.push(...(u.kind === "single" ? [u.id] : u.ids).map((i) => toSign[i]!.c.row.id));
        units = units.slice(0, keep);
      }
      const nonces = planNonces(stored[0]?.next_nonce ?? null, node!.pendingNonce, units.length + (authAt >= 0 ? 1 : 0));
      const nonceOf = (k: number) => nonces.nonces[authAt >= 0 && k > authAt ? k + 1 : k]!;
      // the rest go once the last transaction signed here is mined
      if (result.waiting.length > 0) result.waitFor = { nonce: nonceOf(units.length - 1) + 1n, reason: waitReason };
      if (nonces.skipped > 0n) {
        log.warn({ sender, skipped: nonces.skipped.toString(), from: nonces.first.toString() }, "sender: the chain is ahead of our nonce counter (key used elsewhere?); skipping ahead");
        await insertAudit(conn, [{ actor: ACTOR, event: "nonce.skipped", address: sender, data: { skipped: nonces.skipped, first: nonces.first } }]);
      }
      const allowed = (c: Candidate) => (isBusinessKind(c.row.kind) ? [{ event: "policy.allowed", data: { approved_by: live.get(c.row.id)?.approved_by ?? null, sender } }] : []);
      const attempts: SignedAttempt[] = units.flatMap((u, k) => {
        const nonce = nonceOf(k);
        if (u.kind === "single") {
          const { c, gasLimit } = toSign[u.id]!;
          return [{ row: c.row, gasLimit, nonce, audit: allowed(c), ...signCall(key!, node!.chainId, nonce, c.call, gasLimit, node!.fees) }];
        }
        // ONE signed transaction for every member, persisted for each of them before anything is broadcast
        const members = u.ids.map((i) => toSign[i]!.c);
        const tx = signBatchPay(key!, {
          chainId: node!.chainId,
          nonce,
          wallet: sender,
          delegateTo: k === authAt ? executor! : null,
          token: u.token,
          items: members.map((c) => ({ to: c.row.to_address, amount: c.units })),
          gasLimit: u.gasLimit,
          fees: node!.fees,
        });
        return members.map((c, index) => ({ row: c.row, gasLimit: u.gasLimit, nonce, audit: allowed(c), batch: { index, size: members.length }, ...tx }));
      });
      mark("sign");
      await advanceNonce(conn, chain.key, sender, stored[0]?.next_nonce ?? null, nonces.next);
      await markSigned(conn, chain.key, sender, attempts, node!.fees, { ...step, fallback: scope.fallback });
      result.signed = attempts.map((a) => ({ transferId: a.row.id, nonce: a.nonce, hash: a.hash, raw: a.raw }));
    }

    // transfers that end, wait or step aside here
    const endings: Ending[] = early.filter((e) => stillQueued(e.row));
    const approvals: { row: TransferRow; rule: string; detail: string }[] = [];
    for (const d of plan) {
      const c = byId.get(d.id)!;
      switch (d.action) {
        case "fail":
          endings.push({ row: c.row, code: d.code, detail: d.detail, from: d.rule ? c.row.requested_from : sender, audit: d.rule ? [{ event: "policy.rejected", data: { rule: d.rule, detail: d.detail } }] : [] });
          break;
        case "await-approval":
          approvals.push({ row: c.row, rule: d.rule, detail: d.detail });
          break;
        case "hold":
          if (await hold(conn, c.row, d.code, d.detail, step)) result.held.push(c.row.id);
          break;
        case "defer":
          result.deferred.push(c.row.id);
          break;
        case "gas-short":
          result.gasShort.push({ row: c.row, need: d.need, have: d.have });
          break;
      }
    }
    const failed = await fail(conn, endings, step);
    for (const t of failed) ended.push({ symbol: t.symbol, code: endings.find((e) => e.row.id === t.id)!.code });
    await awaitApproval(conn, approvals, step);
    result.notified = failed.some((t) => isBusinessKind(t.kind));
  });

  mark("persist");
  for (const e of ended) ctx.metrics.transfers.inc({ chain: chain.key, symbol: e.symbol, status: e.code });
  if (result.signed.length > 0) {
    const members = new Map<string, number>();
    for (const x of result.signed) members.set(x.hash, (members.get(x.hash) ?? 0) + 1);
    log.info({ sender, signed: result.signed.length, transactions: members.size, first_nonce: result.signed[0]!.nonce.toString() }, "sender: batch signed");
    const by = scope.fallback ? ` (the collection wallet pays it: ${sender})` : ` from ${sender}`;
    const inBatch = (hash: string) => (members.get(hash)! > 1 ? ` (one EIP-7702 batch of ${members.get(hash)} payouts)` : "");
    // Not awaited: the lines are best effort, and the drain's next batch need not wait for Redis to take
    // 200 of them (the ones written after these, on the same connection, still come after them).
    void logToJobs(ctx.queues, "send-transfer", result.signed.map((s) => ({ id: s.transferId, line: `signed: nonce ${s.nonce}${by}, tx ${s.hash}${inBatch(s.hash)}` })), log);
  }
  if (result.waiting.length > 0) {
    const why =
      result.waitFor?.reason === "in-flight"
        ? "the node keeps one transaction at a time of a wallet that delegates (EIP-7702; delegated_in_flight), and this wallet's last one is not mined yet"
        : "the batch that installs this wallet's EIP-7702 delegation is not mined yet";
    log.info({ sender, waiting: result.waiting.length, until_nonce: result.waitFor?.nonce.toString() }, `sender: waiting: ${why}`);
    await logToJobs(ctx.queues, "send-transfer", result.waiting.map((id) => ({ id, line: `waiting: ${why}` })), log);
  }
  if (result.held.length > 0) log.warn({ sender, held: result.held.length }, "sender: transfers held for an operator (no wallet can pay them)");
  const open = new Set<bigint>([...result.waiting, ...result.deferred, ...result.gasShort.map((g) => g.row.id)]);
  result.handled = rows.filter((r) => isBusinessKind(r.kind) && !open.has(r.id)).map((r) => r.id);
  return result;
}

interface NodeFacts {
  fees: Fees;
  chainId: bigint;
  pendingNonce: bigint;
  /** the account nonce at the block of the balances */
  accountNonce: bigint;
  eth: bigint;
  tokens: Map<string, bigint>;
  /** the contract the wallet delegates to (EIP-7702) at the block, lowercase, or null (read only when batching) */
  delegatesTo: string | null;
}

/** Everything the batch needs from the node, at one block; every candidate's gas estimate is filled in. */
async function readNode(chain: SenderChain, sender: string, candidates: Candidate[], withDelegation: boolean): Promise<NodeFacts> {
  try {
    const head = await chain.reads.head();
    const tokens = [...new Set(candidates.flatMap((c) => (c.asset.native ? [] : [c.asset.token])))];
    const [tip, pending, latest, eth, balances, id, , code] = await Promise.all([
      chain.reads.tip(),
      chain.reads.nonce(sender, "pending"),
      chain.reads.nonce(sender, head.number),
      chain.reads.ethBalance(sender, head.number),
      Promise.all(tokens.map((t) => chain.reads.tokenBalance(t, sender, head.number))),
      chain.chainId(),
      estimateAll(chain, candidates, head.number, withDelegation),
      withDelegation ? chain.reads.code(sender, head.number) : Promise.resolve("0x"),
    ]);
    return {
      fees: suggestFees(head.baseFee, tip, feeCap(chain.config, head.baseFee, tip)),
      chainId: id,
      pendingNonce: pending,
      accountNonce: latest,
      eth,
      tokens: new Map(tokens.map((t, i) => [t, balances[i]!])),
      delegatesTo: delegationTarget(code),
    };
  } catch (e) {
    if (e instanceof RetryableError) throw e;
    throw new RetryableError(`node unavailable while preparing transfers from ${sender}`, { cause: e });
  }
}

/**
 * Fill in every candidate's gas estimate. While the payouts may go out in
 * EIP-7702 batches, one simulation of all of them in a row at the block of
 * the balances (ChainReads.simulateCalls) stands in for the per-payout
 * eth_estimateGas calls, which were a third of a batched payout's time in
 * the drain. What a simulated gas may lack against an estimate (a refund,
 * at most a fifth of it) is covered where it is used: a batch counts each
 * payout's token and balance slot cold although they turn warm after the
 * first, and keeps the last payout's whole reserve on top; a payout sent
 * alone gets gasLimitFromEstimate's margin of at least 25,000. A payout
 * whose simulation failed, or a node without eth_simulateV1, gets its own
 * estimate as before: only that decides `reverts`.
 */
async function estimateAll(chain: SenderChain, candidates: Candidate[], at: bigint, simulate: boolean): Promise<void> {
  const simulated = simulate && candidates.length >= BATCH_MIN_ITEMS ? await chain.reads.simulateCalls(candidates.map((c) => c.call), at) : null;
  await Promise.all(
    candidates.map(async (c, i) => {
      const s = simulated?.[i];
      c.estimate = s ? { ok: s.gasUsed } : await estimate(chain, c.call);
    }),
  );
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

/**
 * What the wallet has free at the block of `node`: its balances minus what
 * our own unmined transactions (nonce >= the account nonce there) will still
 * take. Gas is reserved per transfer at the highest fee of an attempt the
 * node took, or at its first attempt's while none was taken: a replacement
 * the node refused can never be mined, so it reserves nothing.
 */
export async function freeFunds(conn: Conn, chain: SenderChain, sender: string, node: Pick<NodeFacts, "accountNonce" | "eth" | "tokens">): Promise<{ eth: bigint; tokens: Map<string, bigint> }> {
  // Gas per transaction (per nonce: the members of a batch share one), amounts per transfer.
  const [gas, inflight] = await Promise.all([
    conn.query(
      `SELECT t.nonce,
              COALESCE(MAX(CASE WHEN a.broadcast_at IS NOT NULL THEN a.gas_limit * a.max_fee_per_gas END), MIN(a.gas_limit * a.max_fee_per_gas)) AS gas_cost
       FROM transfer t JOIN tx_attempt a ON a.transfer_id = t.id
       WHERE t.chain = ? AND t.from_address = ? AND t.state IN ('signed', 'sent', 'mined') AND t.nonce >= ? GROUP BY t.nonce`,
      [chain.key, sender, node.accountNonce],
    ) as Promise<{ gas_cost: string }[]>,
    // a sweep the collection wallet carries through the DepositSweeper moves the deposit wallet's tokens, not its own
    conn.query(
      "SELECT symbol, amount FROM transfer WHERE chain = ? AND from_address = ? AND state IN ('signed', 'sent', 'mined') AND nonce >= ? AND NOT (kind = 'sweep' AND requested_from <> from_address)",
      [chain.key, sender, node.accountNonce],
    ) as Promise<{ symbol: string; amount: string }[]>,
  ]);
  let eth = node.eth;
  const tokens = new Map(node.tokens);
  for (const g of gas) eth -= BigInt(g.gas_cost);
  for (const f of inflight) {
    const asset = assetOf(chain.config, f.symbol);
    if (!asset) continue;
    if (asset.native) eth -= decimalToUnits(f.amount, asset.decimals);
    else tokens.set(asset.token, (tokens.get(asset.token) ?? 0n) - decimalToUnits(f.amount, asset.decimals));
  }
  return { eth, tokens };
}

/**
 * The nonce of an unmined transaction of ours (nonce >= the account nonce
 * at the node's block) that carries the wallet's authorization already, or
 * null: a batch signed as type 4 (only batches carry one, on their first
 * item's attempt row). It is processed before any later nonce can be, so
 * later batches need none.
 */
async function authorizationInFlight(conn: Conn, chain: string, sender: string, accountNonce: bigint): Promise<bigint | null> {
  const rows = (await conn.query(
    `SELECT t.nonce FROM transfer t JOIN tx_attempt a ON a.transfer_id = t.id
     WHERE t.chain = ? AND t.from_address = ? AND t.state IN ('signed', 'sent', 'mined') AND t.nonce >= ? AND a.batch_index = 0 AND a.raw_tx LIKE '0x04%'
     ORDER BY t.nonce DESC LIMIT 1`,
    [chain, sender, accountNonce],
  )) as { nonce: bigint }[];
  return rows[0] ? BigInt(rows[0].nonce) : null;
}

/** The nonces of our transactions from `sender` not mined at the node's block, ascending (a batch's members share one). */
async function unminedNonces(conn: Conn, chain: string, sender: string, accountNonce: bigint): Promise<bigint[]> {
  const rows = (await conn.query(
    "SELECT DISTINCT nonce FROM transfer WHERE chain = ? AND from_address = ? AND state IN ('signed', 'sent', 'mined') AND nonce >= ? ORDER BY nonce",
    [chain, sender, accountNonce],
  )) as { nonce: bigint }[];
  return rows.map((r) => BigInt(r.nonce));
}

/** Move sender_nonce from what we read under its row lock to `next` (guarded: it must not have moved). */
export async function advanceNonce(conn: Conn, chain: string, sender: string, stored: bigint | null, next: bigint): Promise<void> {
  if (stored === null) {
    try {
      await conn.query("INSERT INTO sender_nonce (chain, address, next_nonce, updated_at) VALUES (?, ?, ?, NOW(3))", [chain, sender, next]);
    } catch (e) {
      if (isDuplicateKey(e)) throw new RetryableError(`another process created the nonce counter of ${sender} first`, { cause: e });
      throw e;
    }
    return;
  }
  const res = await conn.query("UPDATE sender_nonce SET next_nonce = ?, updated_at = NOW(3) WHERE chain = ? AND address = ? AND next_nonce = ?", [next, chain, sender, stored]);
  if (affected(res) !== 1) throw new RetryableError(`nonce counter of ${sender} moved under us`);
}

function policyTable(ctx: SenderContext, chain: SenderChain) {
  const cache = new Map<string, PolicyLimits>();
  return (symbol: string, decimals: number) => {
    let l = cache.get(symbol);
    if (!l) cache.set(symbol, (l = policyLimits(ctx.config.policy, chain.key, symbol, decimals)));
    return l;
  };
}

/** A request's policy identity: its request row (every order of a pay), or the transfer alone. */
const requestKey = (t: Pick<TransferRow, "id" | "request_id">) => (t.request_id !== null ? `r${t.request_id}` : `t${t.id}`);

/** The base units of every transfer of each candidate's request (the policy's cap and threshold apply to these totals). */
async function requestTotals(conn: Conn, business: Candidate[]): Promise<Map<string, bigint>> {
  const out = new Map<string, bigint>();
  const requests = [...new Set(business.flatMap((c) => (c.row.request_id !== null ? [c.row.request_id] : [])))];
  if (requests.length > 0) {
    const rows = (await conn.query(`SELECT request_id, symbol, SUM(amount) AS total FROM transfer WHERE request_id IN (${inList(requests.length)}) GROUP BY request_id, symbol`, requests)) as {
      request_id: bigint;
      symbol: string;
      total: string;
    }[];
    for (const r of rows) {
      const c = business.find((x) => x.row.request_id === r.request_id && x.row.symbol === r.symbol)!;
      out.set(`r${r.request_id}`, decimalToUnits(r.total, c.asset.decimals));
    }
  }
  for (const c of business) if (!out.has(requestKey(c.row))) out.set(requestKey(c.row), c.units);
  return out;
}

/**
 * Rolling 24 h usage per symbol of the candidates' requesting wallet and of
 * all wallets: withdraw/pay transfers signed or beyond (not failed or
 * cancelled), timed by when they were sent (or signed, until sent).
 */
async function policyUsage(conn: Conn, chain: string, business: Candidate[]): Promise<Map<string, PolicyUsage>> {
  const out = new Map<string, PolicyUsage>();
  if (business.length === 0) return out;
  const wallet = business[0]!.row.requested_from;
  const symbols = [...new Set(business.map((c) => c.row.symbol))];
  // Two branches so each uses the (chain, sent_at) index: rows sent in the
  // last 24 h, and rows signed but not yet marked sent (sent_at NULL).
  const inSymbols = inList(symbols.length);
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
    out.set(r.symbol, { wallet: decimalToUnits(r.wallet, c.asset.decimals), total: decimalToUnits(r.total, c.asset.decimals) });
  }
  return out;
}
