/**
 * What the bridge does with a batch of request messages (SPEC §3, "One id,
 * one outcome"): validate each, then in ONE MySQL transaction consult the id
 * ledger, record every request and its effect (watch, queued transfers,
 * cancellation, or the refusal's answer in the outbox) and an audit row for
 * every message, then enqueue the BullMQ jobs. The consumer acks only after
 * this resolves.
 *
 * The id ledger is the `request` table: (kind, queue_id) is unique, and both
 * accepted requests and validly signed refusals take their id. A later
 * message under a taken id is a duplicate whatever it says (another body, a
 * replay after the window, a retry after the cause of a refusal was fixed):
 * it changes nothing, is never answered, and goes to the dead-letter queue
 * as `duplicate`. The only exception is a redelivery of the very same bytes
 * (RabbitMQ's redelivered flag, or our own retry of a batch whose commit may
 * have landed): acked silently, its jobs enqueued again in case the first
 * delivery died between commit and enqueue. Unauthenticated messages never
 * reach the ledger, so a forged message cannot take a business's id.
 *
 * Batching is for throughput (one transaction and one addBulk per batch).
 * Everything a message can write is bounded by construction (limits.ts), so
 * a batch fails only on an infrastructure fault, or on our own bug, which
 * the consumer isolates by splitting the batch (request-consumer.ts). If two
 * bridge processes race on the same queue_id, the loser's batch fails on the
 * unique key and is redone one message at a time.
 */
import { createHash } from "node:crypto";
import type { Pool } from "mariadb";
import type { Logger } from "../shared/logger.ts";
import { type ValidRequest, type ValidationContext, type Echo, type DeadReason, validateRequest } from "../shared/domain/requests.ts";
import { REQUEST_KINDS, REQUEST_KIND_SPECS, type RequestKind } from "../shared/domain/request-kinds.ts";
import { decideIds, ledgerKey, type LedgerEntry } from "../shared/domain/id-ledger.ts";
import type { RefusalCode } from "../shared/domain/errors.ts";
import { describeError } from "../shared/domain/errors.ts";
import { clip } from "../shared/domain/limits.ts";
import {
  type NotificationDraft,
  rejectionNotifications,
  removeNotification,
} from "../shared/domain/notifications.ts";
import { affected, inList, inTransaction, isDuplicateKey, placeholders, type Conn } from "../shared/adapters/db/sql.ts";
import { insertAudit, insertNotifications, type AuditEntry } from "../shared/adapters/db/outbox.ts";
import { cancelRequest, createTransfers, type NewTransfer } from "../shared/transfers/transitions.ts";
import { PAYMENT_COLUMNS, transferJob, type PaymentFacts } from "../shared/transfers/rows.ts";
import { enqueueMany, type Queues } from "../shared/jobs/registry.ts";
import { followerDelays } from "../shared/domain/send-pacing.ts";
import type { AddressLog } from "../shared/adapters/address-log.ts";

export interface IncomingMessage {
  kind: RequestKind;
  body: Buffer;
  /** RabbitMQ redelivered it, or this is our retry of its batch: the same bytes may already be recorded */
  redelivered: boolean;
}

export type MessageOutcome =
  | { action: "ack"; result: "accepted" | "redelivered" }
  | { action: "ack"; result: "rejected"; code: RefusalCode }
  | { action: "dead"; reason: DeadReason; detail: string };

export interface RequestHandlerDeps {
  pool: Pool;
  queues: Queues;
  logger: Logger;
  /** built per call so the clock moves */
  validation: () => ValidationContext;
  /** wake the outbox publisher after notifications were written */
  wakeOutbox: () => void;
  /** optional per-address log files (the old system's TopupReq/WithdrawReq lines) */
  addressLog?: AddressLog;
  now?: () => number;
}

/** One message after validation, before the ledger is consulted. */
type Checked =
  | (Common & { type: "dead"; reason: DeadReason; detail: string; claimedQueueId: string | null })
  | (Common & Recorded & { type: "rejected"; queueId: string | null; code: RefusalCode; detail: string; echo: Echo; orderIds: string[] | null })
  | (Common & Recorded & { type: "valid"; queueId: string | null; request: ValidRequest; echo: Echo });

interface Common {
  /** position in the batch */
  i: number;
  kind: RequestKind;
  bytes: number;
  redelivered: boolean;
}

/** What a message that will be recorded (refused or accepted) keeps; a dead one is kept by the dead-letter queue. */
interface Recorded {
  /** sha256 of the exact bytes: what a redelivery is recognised by (`request.body_hash`) */
  rawHash: string;
  /** the body as text */
  raw: string;
}

type Refused = Extract<Checked, { type: "rejected" }>;
type Accepted = Extract<Checked, { type: "valid" }>;

const ACTOR = "bridge";

const walletKey = (chain: string, address: string) => `${chain}\u0000${address}`;
const sha256 = (b: Buffer) => createHash("sha256").update(b).digest("hex");

function check(m: IncomingMessage, i: number, ctx: ValidationContext): Checked {
  const common = { i, kind: m.kind, bytes: m.body.length, redelivered: m.redelivered };
  let v: ReturnType<typeof validateRequest>;
  try {
    v = validateRequest(m.kind, m.body, ctx);
  } catch (err) {
    // validation is pure and total; if it ever throws, that message alone is dead
    return { ...common, type: "dead", reason: "internal", detail: clip(`validation failed: ${describeError(err)}`), claimedQueueId: null };
  }
  if (v.outcome === "dead") return { ...common, type: "dead", reason: v.reason, detail: v.detail, claimedQueueId: v.claimedQueueId };
  const recorded: Recorded = { rawHash: sha256(m.body), raw: m.body.toString("utf8") };
  if (v.outcome === "rejected") return { ...common, ...recorded, type: "rejected", queueId: v.queueId, code: v.code, detail: v.detail, echo: v.echo, orderIds: v.orderIds };
  return { ...common, ...recorded, type: "valid", queueId: v.request.queueId, request: v.request, echo: v.echo };
}

export function createRequestHandler(deps: RequestHandlerDeps) {
  const now = deps.now ?? Date.now;

  async function handleBatch(items: IncomingMessage[]): Promise<MessageOutcome[]> {
    const ctx = deps.validation();
    const checked = items.map((m, i) => check(m, i, ctx));
    try {
      return await settleBatch(checked);
    } catch (e) {
      if (!isDuplicateKey(e)) throw e;
      // Another batch (of this process or another) took one of our queue_ids
      // between our ledger read and our insert. Its row is committed by the
      // time the unique key refuses ours (the insert waits for its
      // transaction), so redoing one by one sees it: a duplicate.
      deps.logger.info({ batch: checked.length }, "bridge: queue_id race with another batch; redoing one by one");
      const out: MessageOutcome[] = [];
      for (const c of checked) out.push(await settleAlone(c));
      return out;
    }
  }

  /**
   * One message of a batch that lost a queue_id race, settled on its own. It
   * can lose a race of its own too: another batch may take its id between
   * this ledger read and this insert (the messages before it were being
   * redone meanwhile). The unique key refuses ours only once the other row
   * is committed, so the next read sees it and the message is a duplicate:
   * a second try always settles it (a third is allowed, never more). Left to
   * the consumer instead, the error would split the batch as if a message
   * had caused it, and redo the ones already settled here as redeliveries.
   */
  async function settleAlone(c: Checked): Promise<MessageOutcome> {
    for (let attempt = 1; ; attempt++) {
      try {
        return (await settleBatch([{ ...c, i: 0 }]))[0]!;
      } catch (e) {
        if (!isDuplicateKey(e) || attempt >= 3) throw e;
      }
    }
  }

  async function settleBatch(checked: Checked[]): Promise<MessageOutcome[]> {
    const outcomes: MessageOutcome[] = new Array(checked.length);
    const nowMs = now();
    const jobs: ReturnType<typeof transferJob>[] = [];
    let notified = 0;

    await inTransaction(deps.pool, async (conn) => {
      jobs.length = 0;
      const audit: AuditEntry[] = [];
      const notes: NotificationDraft[] = [];

      // 1. the id ledger (shared/domain/id-ledger.ts), before anything can be answered
      const identified = checked.filter((c): c is Refused | Accepted => c.type !== "dead");
      const ledger = await findRequests(conn, identified.flatMap((c) => (c.queueId === null ? [] : [[c.kind, c.queueId] as [string, string]])));
      const wallets = await knownWallets(
        conn,
        identified.flatMap((c) => (c.type === "valid" && (c.request.kind === "withdraw" || c.request.kind === "pay") ? [[c.request.chain, c.request.fromAddress] as [string, string]] : [])),
      );
      const refused: Refused[] = [];
      const accepted: Accepted[] = [];
      const redelivered: bigint[] = [];
      const decisions = decideIds(identified, ledger);
      const decisionOf = new Map(identified.map((c, n) => [c, decisions[n]!]));
      for (const c of checked) {
        if (c.type === "dead") {
          outcomes[c.i] = { action: "dead", reason: c.reason, detail: c.detail };
          audit.push({ actor: ACTOR, event: "request.dead_lettered", queueId: c.claimedQueueId, data: { kind: c.kind, reason: c.reason, detail: c.detail, bytes: c.bytes } });
          continue;
        }
        const d = decisionOf.get(c)!;
        if (d.decision === "redelivery") {
          outcomes[c.i] = { action: "ack", result: "redelivered" };
          if (d.priorId !== null) redelivered.push(d.priorId);
          audit.push({ actor: ACTOR, event: "request.redelivered", queueId: c.queueId, data: { kind: c.kind } });
        } else if (d.decision === "duplicate") {
          outcomes[c.i] = { action: "dead", reason: "duplicate", detail: d.detail };
          audit.push({ actor: ACTOR, event: "request.duplicate", queueId: c.queueId, data: { kind: c.kind, same_bytes: d.sameBytes, first: d.first } });
        } else if (c.type === "rejected") refused.push(c);
        else if ((c.request.kind === "withdraw" || c.request.kind === "pay") && !wallets.has(walletKey(c.request.chain, c.request.fromAddress))) {
          refused.push({ ...c, type: "rejected", code: "unknown_wallet", detail: `from_address ${c.request.fromAddress} is not a wallet of this gateway on ${c.request.chain}`, orderIds: c.request.kind === "pay" ? c.request.orders.map((o) => o.orderId) : null });
        } else accepted.push(c);
      }

      // 2. record every request that is not dead: accepted and refused alike take their id
      const ids = await insertRequests(conn, [
        ...accepted.map((c) => ({ kind: c.kind, queueId: c.queueId, chain: c.request.chain, symbol: c.request.symbol, rawHash: c.rawHash, raw: c.raw, state: c.kind === "withdraw" || c.kind === "pay" ? "accepted" : "done", error: null })),
        ...refused.map((c) => ({ kind: c.kind, queueId: c.queueId, chain: c.echo.chain ?? null, symbol: c.echo.symbol ?? null, rawHash: c.rawHash, raw: c.raw, state: "rejected", error: c.code })),
      ]);
      const acceptedIds = ids.slice(0, accepted.length);
      const refusedIds = ids.slice(accepted.length);

      // 3. refusals: answered once on the kind's response queue
      refused.forEach((c, n) => {
        outcomes[c.i] = { action: "ack", result: "rejected", code: c.code };
        notes.push(...rejectionNotifications(refusedIds[n]!, c.kind, c.echo, c.orderIds, c.code, c.detail, nowMs));
        audit.push({
          actor: ACTOR,
          event: "request.rejected",
          queueId: c.queueId,
          address: c.echo.address ?? c.echo.from_address ?? null,
          subjectType: "request",
          subjectId: refusedIds[n]!,
          data: { kind: c.kind, error: c.code, detail: c.detail },
        });
      });

      // 4. effects of accepted requests
      accepted.forEach((c, n) => {
        outcomes[c.i] = { action: "ack", result: "accepted" };
        const r = c.request;
        audit.push({
          actor: ACTOR,
          event: "request.accepted",
          queueId: r.queueId,
          address: r.kind === "topup" || r.kind === "remove" ? r.address : r.fromAddress,
          subjectType: "request",
          subjectId: acceptedIds[n]!,
          data: { kind: r.kind, ...(r.kind === "remove" ? { msg_type: r.msgType } : {}) },
        });
      });
      const effect = await applyEffects(conn, accepted.map((c, n) => ({ requestId: acceptedIds[n]!, request: c.request })), nowMs);
      jobs.push(...effect.jobs);
      notes.push(...effect.notes);
      audit.push(...effect.audit);

      // 5. jobs of redelivered requests whose first delivery may have died before enqueueing
      if (redelivered.length > 0) jobs.push(...(await queuedTransferJobs(conn, redelivered)));

      notified = await insertNotifications(conn, notes);
      await insertAudit(conn, audit);
    }, { isolation: "READ COMMITTED" });

    if (jobs.length > 0) {
      // per wallet, the first job drains it; the others start staggered behind it (shared/domain/send-pacing.ts)
      const delays = followerDelays(jobs.map((j) => `${j.payment.chain}:${j.payment.from}`));
      await enqueueMany(deps.queues, "send-transfer", jobs, (i) => (delays[i]! > 0 ? { delay: delays[i] } : {}));
    }
    if (notified > 0) deps.wakeOutbox();
    if (deps.addressLog) logByAddress(deps.addressLog, checked, outcomes);
    return outcomes;
  }

  return { handleBatch };
}

/** One line per request in the file of the address it concerns (deposit address or paying wallet). */
function logByAddress(log: AddressLog, checked: Checked[], outcomes: MessageOutcome[]) {
  for (const c of checked) {
    const o = outcomes[c.i];
    if (!o || o.action !== "ack" || c.type === "dead") continue;
    const address = c.echo.address ?? c.echo.from_address;
    if (!address) continue;
    log.write(address, REQUEST_KIND_SPECS[c.kind].logEvent, { result: o.result, ...(o.result === "rejected" ? { error: o.code } : {}), ...c.echo });
  }
}

type Effect = (conn: Conn, accepted: { requestId: bigint; request: ValidRequest }[], nowMs: number) => Promise<EffectResult>;
interface EffectResult {
  jobs: ReturnType<typeof transferJob>[];
  notes: NotificationDraft[];
  audit: AuditEntry[];
}

const only = <K extends RequestKind>(kind: K, accepted: { requestId: bigint; request: ValidRequest }[]) =>
  accepted.filter((a): a is { requestId: bigint; request: Extract<ValidRequest, { kind: K }> } => a.request.kind === kind);

/** What an accepted request of each kind does, batched per kind. */
const EFFECTS: Record<RequestKind, Effect> = {
  topup: async (conn, accepted) => {
    await watch(conn, only("topup", accepted).map((a) => a.request));
    return { jobs: [], notes: [], audit: [] };
  },
  // one effect for both: a batch's withdrawals and payouts are queued in one INSERT (applyEffects)
  withdraw: queueTransfers,
  pay: queueTransfers,
  remove: async (conn, accepted, nowMs) => {
    const out: EffectResult = { jobs: [], notes: [], audit: [] };
    for (const a of only("remove", accepted)) {
      const { notes, audit } = await remove(conn, a.requestId, a.request, nowMs);
      out.notes.push(...notes);
      out.audit.push(...audit);
    }
    return out;
  },
};

/** Each distinct effect once, with the accepted requests of every kind it serves, in batch order. */
async function applyEffects(conn: Conn, accepted: { requestId: bigint; request: ValidRequest }[], nowMs: number): Promise<EffectResult> {
  const out: EffectResult = { jobs: [], notes: [], audit: [] };
  for (const effect of new Set(REQUEST_KINDS.map((k) => EFFECTS[k]))) {
    const mine = accepted.filter((a) => EFFECTS[a.request.kind] === effect);
    if (mine.length === 0) continue;
    const r = await effect(conn, mine, nowMs);
    out.jobs.push(...r.jobs);
    out.notes.push(...r.notes);
    out.audit.push(...r.audit);
  }
  return out;
}

/** withdraw and pay: one queued transfer per payout (shared/transfers writes it and its audit row), and its send job. */
async function queueTransfers(conn: Conn, accepted: { requestId: bigint; request: ValidRequest }[], nowMs: number): Promise<EffectResult> {
  const rows: NewTransfer[] = [];
  for (const { requestId, request: r } of accepted) {
    if (r.kind === "withdraw") {
      rows.push({ requestId, kind: "withdraw", queueId: r.queueId, chain: r.chain, symbol: r.symbol, from: r.fromAddress, to: r.toAddress, amount: r.amount });
    } else if (r.kind === "pay") {
      for (const o of r.orders) {
        rows.push({ requestId, kind: "pay", queueId: r.queueId, orderId: o.orderId, chain: r.chain, symbol: r.symbol, from: r.fromAddress, to: o.toAddress, amount: o.amount });
      }
    }
  }
  // without ignoreDuplicates: a racing batch's insert aborts ours, which handleBatch redoes one by one
  const transferIds = await createTransfers(conn, rows, { actor: ACTOR, nowMs });
  return {
    jobs: rows.map((t, n) =>
      transferJob({ id: transferIds[n]!, kind: t.kind, queue_id: t.queueId, order_id: t.orderId ?? "", chain: t.chain, symbol: t.symbol, amount: t.amount, requested_from: t.from, to_address: t.to }),
    ),
    notes: [],
    audit: [],
  };
}

async function queuedTransferJobs(conn: Conn, requestIds: bigint[]) {
  const pending = (await conn.query(`SELECT ${PAYMENT_COLUMNS} FROM transfer WHERE request_id IN (${inList(requestIds.length)}) AND state = 'queued'`, requestIds)) as PaymentFacts[];
  return pending.map(transferJob);
}

/** Group pairs by their first element, for `a = ? AND b IN (...)` lookups (index range scans). */
function groupPairs(pairs: [string, string][]): Map<string, string[]> {
  const m = new Map<string, string[]>();
  for (const [a, b] of pairs) m.set(a, [...(m.get(a) ?? []), b]);
  return m;
}

// MariaDB does not turn `(a, b) IN ((?, ?), ...)` into index ranges: it scans
// the whole index. Hence one query per kind/chain. No FOR UPDATE: the unique
// key on (kind, queue_id) is the guard (a racing insert fails the batch, which
// is then redone one message at a time), and gap locks would serialise batches.
async function findRequests(conn: Conn, keys: [string, string][]) {
  const out = new Map<string, LedgerEntry>();
  for (const [kind, queueIds] of groupPairs(keys)) {
    const rows = (await conn.query(
      `SELECT id, kind, queue_id, body_hash, state FROM request WHERE kind = ? AND queue_id IN (${inList(queueIds.length)})`,
      [kind, ...queueIds],
    )) as { id: bigint; kind: string; queue_id: string; body_hash: string; state: string }[];
    for (const r of rows) out.set(ledgerKey(r.kind, r.queue_id), { id: r.id, rawHash: r.body_hash, state: r.state });
  }
  return out;
}

async function knownWallets(conn: Conn, pairs: [string, string][]) {
  const known = new Set<string>();
  for (const [chain, addresses] of groupPairs(pairs)) {
    const rows = (await conn.query(
      `SELECT chain, address FROM wallet WHERE chain = ? AND address IN (${inList(addresses.length)})`,
      [chain, ...addresses],
    )) as { chain: string; address: string }[];
    for (const r of rows) known.add(walletKey(r.chain, r.address));
  }
  return known;
}

async function insertRequests(
  conn: Conn,
  rows: { kind: string; queueId: string | null; chain: string | null; symbol: string | null; rawHash: string; raw: string; state: string; error: string | null }[],
): Promise<bigint[]> {
  if (rows.length === 0) return [];
  const res = (await conn.query(
    `INSERT INTO request (kind, queue_id, chain, symbol, body_hash, raw_body, state, error, updated_at) VALUES ${rows
      .map(() => "(?, ?, ?, ?, ?, ?, ?, ?, NOW(3))")
      .join(", ")} RETURNING id`,
    rows.flatMap((r) => [r.kind, r.queueId, r.chain, r.symbol, r.rawHash, r.raw, r.state, r.error]),
  )) as { id: bigint }[];
  return res.map((r) => r.id);
}

async function watch(conn: Conn, topups: Extract<ValidRequest, { kind: "topup" }>[]): Promise<void> {
  await conn.query(
    `INSERT INTO watched_address (chain, symbol, address, queue_id, active) VALUES ${placeholders(topups.length, 5)}
     ON DUPLICATE KEY UPDATE active = 1, removed_at = NULL, queue_id = COALESCE(VALUES(queue_id), queue_id)`,
    topups.flatMap((t) => [t.chain, t.symbol, t.address, t.queueId, 1]),
  );
}

/**
 * remove: stop watching, or cancel a withdraw/pay nothing of which has been
 * signed yet. All-or-nothing for a batch: once any order of it may be on
 * chain, the answer is `already_sent` and nothing is cancelled.
 */
async function remove(conn: Conn, requestId: bigint, r: Extract<ValidRequest, { kind: "remove" }>, nowMs: number) {
  const notes: NotificationDraft[] = [];
  const audit: AuditEntry[] = [];
  if (r.msgType === "topup") {
    const was =
      affected(await conn.query("UPDATE watched_address SET active = 0, removed_at = NOW(3) WHERE chain = ? AND symbol = ? AND address = ? AND active = 1", [r.chain, r.symbol, r.address])) > 0;
    notes.push(removeNotification(requestId, r, 1, nowMs, undefined, was ? undefined : "address was not being watched"));
    audit.push({ actor: ACTOR, event: was ? "watch.removed" : "watch.remove_noop", queueId: r.queueId, address: r.address, data: { chain: r.chain, symbol: r.symbol } });
    return { notes, audit };
  }
  const cancel = await cancelRequest(conn, r.msgType, r.queueId, { actor: ACTOR, nowMs });
  if (cancel.kind === "none") {
    notes.push(removeNotification(requestId, r, 0, nowMs, "invalid_request", `no ${r.msgType} request with queue_id ${r.queueId}`));
    return { notes, audit };
  }
  if (cancel.kind === "already_sent") {
    notes.push(removeNotification(requestId, r, 0, nowMs, "already_sent", "a transaction for this request has already been signed or sent"));
    return { notes, audit };
  }
  notes.push(removeNotification(requestId, r, 1, nowMs));
  return { notes, audit };
}
