/**
 * What the bridge does with a batch of request messages: validate each,
 * then in ONE MySQL transaction record every request and its effect (watch,
 * queued transfers, cancellation, or the refusal's answer in the outbox),
 * then enqueue the BullMQ jobs. The consumer acks only after this resolves.
 *
 * Exactly-once at the door: (kind, queue_id) is unique in `request`. A
 * redelivered or resent message with the same meaning finds its row and
 * causes nothing new (its jobs are re-enqueued, idempotently, in case the
 * process died between commit and enqueue); a different body under a used
 * queue_id is refused `duplicate`. Refused requests do not reserve their
 * queue_id, so a forged message cannot block a legitimate one.
 *
 * Batching is for throughput (one transaction and one addBulk per batch);
 * if two bridge processes race on the same queue_id, the loser's batch
 * fails on the unique key and is redone one message at a time.
 */
import type { Pool } from "mariadb";
import type { Logger } from "../shared/logger.ts";
import { type ValidRequest, type ValidationContext, type RequestKind, validateRequest, type Echo } from "../shared/domain/requests.ts";
import type { ErrorCode } from "../shared/domain/errors.ts";
import { trimDecimal } from "../shared/domain/amount.ts";
import {
  type NotificationDraft,
  rejectionNotifications,
  removeNotification,
  transferNotification,
} from "../shared/domain/notifications.ts";
import { inTransaction, isDuplicateKey, placeholders, type Conn } from "../shared/adapters/db/sql.ts";
import { insertAudit, insertNotifications, type AuditEntry } from "../shared/adapters/db/outbox.ts";
import { enqueueMany, type Queues } from "../shared/jobs/registry.ts";
import type { AddressLog } from "../shared/adapters/address-log.ts";

export interface IncomingMessage {
  kind: RequestKind;
  body: Buffer;
}

export type MessageOutcome =
  | { action: "ack"; result: "accepted" | "rejected" | "duplicate"; code?: ErrorCode }
  | { action: "dead"; reason: string };

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

type Prepared =
  | { i: number; type: "dead"; reason: string }
  | { i: number; type: "rejected"; code: ErrorCode; detail: string; echo: Echo; orderIds: string[]; raw: string; kind: RequestKind; bodyHash: string }
  | { i: number; type: "valid"; request: ValidRequest; bodyHash: string; raw: string };

const ACTOR = "bridge";
const ZERO_HASH = "0".repeat(64);

export function createRequestHandler(deps: RequestHandlerDeps) {
  const now = deps.now ?? Date.now;

  async function handleBatch(items: IncomingMessage[]): Promise<MessageOutcome[]> {
    const ctx = deps.validation();
    const prepared: Prepared[] = items.map((m, i) => {
      const v = validateRequest(m.kind, m.body, ctx);
      const raw = m.body.toString("utf8");
      if (v.outcome === "dead") return { i, type: "dead", reason: v.reason };
      if (v.outcome === "rejected") {
        return { i, type: "rejected", code: v.code, detail: v.detail, echo: v.echo, orderIds: v.orderIds, raw, kind: m.kind, bodyHash: ZERO_HASH };
      }
      return { i, type: "valid", request: v.request, bodyHash: v.bodyHash, raw };
    });
    try {
      return await process(prepared);
    } catch (e) {
      if (!isDuplicateKey(e) || prepared.length === 1) throw e;
      // Another bridge process inserted one of our queue_ids between our
      // check and our insert: redo one by one, each now sees the other's row.
      deps.logger.info({ batch: prepared.length }, "bridge: queue_id race with another process; redoing batch one by one");
      const out: MessageOutcome[] = [];
      for (const p of prepared) out.push(...(await process([{ ...p, i: 0 }])));
      return out;
    }
  }

  async function process(prepared: Prepared[]): Promise<MessageOutcome[]> {
    const outcomes: MessageOutcome[] = new Array(prepared.length);
    const nowMs = now();
    const jobs: { transferId: string; label: string }[] = [];
    let notified = 0;

    await inTransaction(deps.pool, async (conn) => {
      jobs.length = 0;
      const audit: AuditEntry[] = [];
      const notes: NotificationDraft[] = [];

      // 1. duplicates: against the database, then within the batch
      const keyed = prepared.filter((p): p is Extract<Prepared, { type: "valid" }> => p.type === "valid" && p.request.queueId !== null);
      const existing = await findRequests(conn, keyed.map((p) => [p.request.kind, p.request.queueId!]));
      const fresh: Extract<Prepared, { type: "valid" }>[] = [];
      const resent: bigint[] = [];
      const rejected: Extract<Prepared, { type: "rejected" }>[] = [];
      const seenInBatch = new Map<string, string>();
      for (const p of prepared) {
        if (p.type === "dead") {
          outcomes[p.i] = { action: "dead", reason: p.reason };
          continue;
        }
        if (p.type === "rejected") {
          rejected.push(p);
          continue;
        }
        const key = p.request.queueId === null ? null : `${p.request.kind}\u0000${p.request.queueId}`;
        const prior = key ? existing.get(key) : undefined;
        const priorHash = prior?.bodyHash ?? (key ? seenInBatch.get(key) : undefined);
        if (priorHash !== undefined) {
          if (priorHash === p.bodyHash) {
            outcomes[p.i] = { action: "ack", result: "duplicate" };
            if (prior) resent.push(prior.id);
            audit.push({ actor: ACTOR, event: "request.duplicate", queueId: p.request.queueId, data: { kind: p.request.kind, same_body: true } });
          } else {
            rejected.push({
              i: p.i,
              type: "rejected",
              code: "duplicate",
              detail: `queue_id ${p.request.queueId} was already used for a different ${p.request.kind} request`,
              echo: echoOfValid(p.request),
              orderIds: p.request.kind === "pay" ? p.request.orders.map((o) => o.orderId) : [],
              raw: p.raw,
              kind: p.request.kind,
              bodyHash: p.bodyHash,
            });
          }
          continue;
        }
        if (key) seenInBatch.set(key, p.bodyHash);
        fresh.push(p);
      }

      // 2. withdraw/pay must name a wallet we hold
      const senders = fresh.filter((p) => p.request.kind === "withdraw" || p.request.kind === "pay");
      if (senders.length > 0) {
        const known = await knownWallets(conn, senders.map((p) => [p.request.chain!, (p.request as { fromAddress: string }).fromAddress]));
        for (const p of senders) {
          const r = p.request as Extract<ValidRequest, { kind: "withdraw" | "pay" }>;
          if (!known.has(`${r.chain}\u0000${r.fromAddress}`)) {
            fresh.splice(fresh.indexOf(p), 1);
            seenInBatch.delete(`${r.kind}\u0000${r.queueId}`);
            rejected.push({
              i: p.i,
              type: "rejected",
              code: "unknown_wallet",
              detail: `from_address ${r.fromAddress} is not a wallet of this gateway on ${r.chain}`,
              echo: echoOfValid(r),
              orderIds: r.kind === "pay" ? r.orders.map((o) => o.orderId) : [],
              raw: p.raw,
              kind: r.kind,
              bodyHash: p.bodyHash,
            });
          }
        }
      }

      // 3. record every request (refused ones without their queue_id)
      const rows = [
        ...fresh.map((p) => ({
          kind: p.request.kind,
          queueId: p.request.queueId,
          chain: p.request.chain,
          symbol: p.request.symbol,
          bodyHash: p.bodyHash,
          raw: p.raw,
          state: p.request.kind === "withdraw" || p.request.kind === "pay" ? "accepted" : "done",
          error: null as string | null,
        })),
        ...rejected.map((p) => ({
          kind: p.kind,
          queueId: null,
          chain: p.echo.chain?.slice(0, 16) ?? null,
          symbol: p.echo.symbol?.slice(0, 16) ?? null,
          bodyHash: p.bodyHash,
          raw: p.raw,
          state: "rejected",
          error: p.code as string | null,
        })),
      ];
      const ids = await insertRequests(conn, rows);
      const freshIds = ids.slice(0, fresh.length);
      const rejectedIds = ids.slice(fresh.length);

      // 4. refusals: answer on the kind's response queue
      rejected.forEach((p, n) => {
        outcomes[p.i] = { action: "ack", result: "rejected", code: p.code };
        notes.push(...rejectionNotifications(rejectedIds[n]!, p.kind, p.echo, p.orderIds, p.code, p.detail, nowMs));
        audit.push({
          actor: ACTOR,
          event: "request.rejected",
          queueId: p.echo.queue_id ?? null,
          address: p.echo.address ?? p.echo.from_address ?? null,
          subjectType: "request",
          subjectId: rejectedIds[n]!,
          data: { kind: p.kind, error: p.code, detail: p.detail },
        });
      });

      // 5. effects of accepted requests
      const topups = fresh.filter((p) => p.request.kind === "topup");
      if (topups.length > 0) await watch(conn, topups.map((p) => p.request as Extract<ValidRequest, { kind: "topup" }>));
      const transferRows: TransferRow[] = [];
      fresh.forEach((p, n) => {
        const r = p.request;
        const requestId = freshIds[n]!;
        outcomes[p.i] = { action: "ack", result: "accepted" };
        audit.push({
          actor: ACTOR,
          event: "request.accepted",
          queueId: r.queueId,
          address: r.kind === "topup" ? r.address : r.kind === "remove" ? r.address : r.fromAddress,
          subjectType: "request",
          subjectId: requestId,
          data: { kind: r.kind, ...(r.kind === "remove" ? { msg_type: r.msgType } : {}) },
        });
        if (r.kind === "withdraw") {
          transferRows.push({ requestId, kind: "withdraw", queueId: r.queueId, orderId: "", chain: r.chain, symbol: r.symbol, from: r.fromAddress, to: r.toAddress, amount: r.amount });
        } else if (r.kind === "pay") {
          for (const o of r.orders) {
            transferRows.push({ requestId, kind: "pay", queueId: r.queueId, orderId: o.orderId, chain: r.chain, symbol: r.symbol, from: r.fromAddress, to: o.toAddress, amount: o.amount });
          }
        }
      });
      const transferIds = await insertTransfers(conn, transferRows);
      transferRows.forEach((t, n) => {
        const label = t.kind === "pay" ? `pay ${t.queueId}/${t.orderId}` : `withdraw ${t.queueId}`;
        jobs.push({ transferId: transferIds[n]!.toString(), label });
        audit.push({ actor: ACTOR, event: "transfer.queued", queueId: t.queueId, orderId: t.orderId || null, address: t.from, subjectType: "transfer", subjectId: transferIds[n]!, data: { to: t.to, amount: t.amount, symbol: t.symbol } });
      });
      for (const [n, p] of fresh.entries()) {
        if (p.request.kind !== "remove") continue;
        const { notes: n2, audit: a2 } = await remove(conn, freshIds[n]!, p.request, nowMs);
        notes.push(...n2);
        audit.push(...a2);
      }

      // 6. jobs of resent requests whose first delivery may have died before enqueueing
      if (resent.length > 0) {
        const pending = await conn.query(
          `SELECT id, kind, queue_id, order_id FROM transfer WHERE request_id IN (${resent.map(() => "?").join(",")}) AND state = 'queued'`,
          resent,
        );
        for (const t of pending as { id: bigint; kind: string; queue_id: string; order_id: string }[]) {
          jobs.push({ transferId: t.id.toString(), label: t.kind === "pay" ? `pay ${t.queue_id}/${t.order_id}` : `withdraw ${t.queue_id}` });
        }
      }

      notified = await insertNotifications(conn, notes);
      await insertAudit(conn, audit);
    }, { isolation: "READ COMMITTED" });

    if (jobs.length > 0) await enqueueMany(deps.queues, "send-transfer", jobs);
    if (notified > 0) deps.wakeOutbox();
    if (deps.addressLog) logByAddress(deps.addressLog, prepared, outcomes);
    return outcomes;
  }

  return { handleBatch };
}

const LOG_EVENT: Record<RequestKind, string> = { topup: "TopupReq", withdraw: "WithdrawReq", pay: "PayReq", remove: "RemoveReq" };

/** One line per request in the file of the address it concerns (deposit address or paying wallet). */
function logByAddress(log: AddressLog, prepared: Prepared[], outcomes: MessageOutcome[]) {
  for (const p of prepared) {
    const o = outcomes[p.i];
    if (!o || o.action !== "ack" || p.type === "dead") continue;
    const echo = p.type === "valid" ? echoOfValid(p.request) : p.echo;
    const kind = p.type === "valid" ? p.request.kind : p.kind;
    const address = echo.address ?? echo.from_address;
    if (!address) continue;
    log.write(address, LOG_EVENT[kind], { result: o.result, ...(o.code ? { error: o.code } : {}), ...echo });
  }
}

function echoOfValid(r: ValidRequest): Echo {
  switch (r.kind) {
    case "topup":
      return { queue_id: r.queueId, chain: r.chain, symbol: r.symbol, address: r.address };
    case "withdraw":
      return { queue_id: r.queueId, chain: r.chain, symbol: r.symbol, from_address: r.fromAddress, to_address: r.toAddress, amount: r.amount };
    case "pay":
      return { queue_id: r.queueId, chain: r.chain, symbol: r.symbol, from_address: r.fromAddress };
    case "remove":
      return { queue_id: r.queueId, msg_type: r.msgType, chain: r.chain, symbol: r.symbol, address: r.address };
  }
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
  const out = new Map<string, { id: bigint; bodyHash: string }>();
  for (const [kind, queueIds] of groupPairs(keys)) {
    const rows = (await conn.query(
      `SELECT id, kind, queue_id, body_hash FROM request WHERE kind = ? AND queue_id IN (${queueIds.map(() => "?").join(", ")})`,
      [kind, ...queueIds],
    )) as { id: bigint; kind: string; queue_id: string; body_hash: string }[];
    for (const r of rows) out.set(`${r.kind}\u0000${r.queue_id}`, { id: r.id, bodyHash: r.body_hash });
  }
  return out;
}

async function knownWallets(conn: Conn, pairs: [string, string][]) {
  const known = new Set<string>();
  for (const [chain, addresses] of groupPairs(pairs)) {
    const rows = (await conn.query(
      `SELECT chain, address FROM wallet WHERE chain = ? AND address IN (${addresses.map(() => "?").join(", ")})`,
      [chain, ...addresses],
    )) as { chain: string; address: string }[];
    for (const r of rows) known.add(`${r.chain}\u0000${r.address}`);
  }
  return known;
}

async function insertRequests(
  conn: Conn,
  rows: { kind: string; queueId: string | null; chain: string | null; symbol: string | null; bodyHash: string; raw: string; state: string; error: string | null }[],
): Promise<bigint[]> {
  if (rows.length === 0) return [];
  const res = (await conn.query(
    `INSERT INTO request (kind, queue_id, chain, symbol, body_hash, raw_body, state, error, updated_at) VALUES ${rows
      .map(() => "(?, ?, ?, ?, ?, ?, ?, ?, NOW(3))")
      .join(", ")} RETURNING id`,
    rows.flatMap((r) => [r.kind, r.queueId, r.chain, r.symbol, r.bodyHash, r.raw, r.state, r.error]),
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

interface TransferRow {
  requestId: bigint;
  kind: "withdraw" | "pay";
  queueId: string;
  orderId: string;
  chain: string;
  symbol: string;
  from: string;
  to: string;
  amount: string;
}

async function insertTransfers(conn: Conn, rows: TransferRow[]): Promise<bigint[]> {
  if (rows.length === 0) return [];
  const res = (await conn.query(
    `INSERT INTO transfer (request_id, kind, queue_id, order_id, chain, symbol, requested_from, to_address, amount, state, updated_at) VALUES ${rows
      .map(() => "(?, ?, ?, ?, ?, ?, ?, ?, ?, 'queued', NOW(3))")
      .join(", ")} RETURNING id`,
    rows.flatMap((r) => [r.requestId, r.kind, r.queueId, r.orderId, r.chain, r.symbol, r.from, r.to, r.amount]),
  )) as { id: bigint }[];
  return res.map((r) => r.id);
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
    const res = (await conn.query(
      "UPDATE watched_address SET active = 0, removed_at = NOW(3) WHERE chain = ? AND symbol = ? AND address = ? AND active = 1",
      [r.chain, r.symbol, r.address],
    )) as { affectedRows: number };
    const was = Number(res.affectedRows) > 0;
    notes.push(removeNotification(requestId, r, 1, nowMs, undefined, was ? undefined : "address was not being watched"));
    audit.push({ actor: ACTOR, event: was ? "watch.removed" : "watch.remove_noop", queueId: r.queueId, address: r.address, data: { chain: r.chain, symbol: r.symbol } });
    return { notes, audit };
  }
  const transfers = (await conn.query(
    `SELECT id, kind, queue_id, order_id, chain, symbol, requested_from, to_address, amount, state FROM transfer
     WHERE kind = ? AND queue_id = ? FOR UPDATE`,
    [r.msgType, r.queueId],
  )) as { id: bigint; kind: "withdraw" | "pay"; queue_id: string; order_id: string; chain: string; symbol: string; requested_from: string; to_address: string; amount: string; state: string }[];
  if (transfers.length === 0) {
    notes.push(removeNotification(requestId, r, 0, nowMs, "invalid_request", `no ${r.msgType} request with queue_id ${r.queueId}`));
    return { notes, audit };
  }
  const cancellable = new Set(["queued", "awaiting_approval"]);
  const finished = new Set(["failed", "cancelled"]);
  if (transfers.some((t) => !cancellable.has(t.state) && !finished.has(t.state))) {
    notes.push(removeNotification(requestId, r, 0, nowMs, "already_sent", "a transaction for this request has already been signed or sent"));
    audit.push({ actor: ACTOR, event: "transfer.cancel_refused", queueId: r.queueId, data: { msg_type: r.msgType } });
    return { notes, audit };
  }
  const toCancel = transfers.filter((t) => cancellable.has(t.state));
  if (toCancel.length > 0) {
    await conn.query(
      `UPDATE transfer SET state = 'cancelled', error = 'cancelled', finalized_at = NOW(3), updated_at = NOW(3)
       WHERE id IN (${toCancel.map(() => "?").join(",")}) AND state IN ('queued', 'awaiting_approval')`,
      toCancel.map((t) => t.id),
    );
  }
  for (const t of toCancel) {
    const amount = trimDecimal(t.amount);
    notes.push(
      transferNotification(
        { id: t.id, kind: t.kind, queueId: t.queue_id, orderId: t.order_id, chain: t.chain, symbol: t.symbol, fromAddress: t.requested_from, toAddress: t.to_address, amount, txHash: null, blockNumber: null, confirmations: 0 },
        0,
        nowMs,
        "cancelled",
        "cancelled by a remove request",
      ),
    );
    audit.push({ actor: ACTOR, event: "transfer.cancelled", queueId: t.queue_id, orderId: t.order_id || null, address: t.requested_from, subjectType: "transfer", subjectId: t.id });
  }
  notes.push(removeNotification(requestId, r, 1, nowMs));
  return { notes, audit };
}
