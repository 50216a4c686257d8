/**
 * Publishes the notification outbox to the response queues, signed, with
 * publisher confirms; a row is marked sent only after RabbitMQ confirmed it.
 *
 * Delivery is at-least-once: a crash between the broker's confirm and our
 * `sent` update republishes the same body (same notification_id, same
 * signature), which consumers dedupe by id. While RabbitMQ is down the rows
 * simply wait in MySQL; nothing is lost.
 *
 * Several bridge processes share the outbox by claiming rows with a lease
 * (`claimed_until`) in one UPDATE ... ORDER BY id LIMIT n, so a row is
 * normally published by one process; an expired lease (its process died)
 * lets another take over.
 *
 * Wake-ups: writers PUBLISH on a Redis channel after committing; we also poll
 * every `pollMs` in case a wake-up was missed (Redis down, process restart).
 *
 * Throughput: a backlog is drained batch after batch, each published in id
 * order on one channel, with the next batch claimed while this one's
 * confirms come back and the bookkeeping (`sent`) of one batch
 * overlapping the next.
 */
import { randomUUID } from "node:crypto";
import type { Pool, PoolConnection } from "mariadb";
import type { Logger } from "../shared/logger.ts";
import { type AmqpConnection, type AmqpConfirmChannel, publishConfirmed } from "../shared/adapters/amqp.ts";
import type { RmqRoute } from "../shared/config/schema.ts";
import type { RequestKind } from "../shared/domain/request-kinds.ts";
import { signMessage } from "../shared/domain/signature.ts";
import { pendingPredecessorKey } from "../shared/domain/notifications.ts";
import { affected, inList } from "../shared/adapters/db/sql.ts";

export interface OutboxPublisherDeps {
  pool: Pool;
  amqp: AmqpConnection;
  logger: Logger;
  /** response route per notification kind */
  routes: Record<RequestKind, RmqRoute>;
  communicationKey: string;
  batchSize?: number;
  pollMs?: number;
  leaseMs?: number;
  onPublished?: (n: { kind: RequestKind; status: number; address: string | null; queueId: string | null; notificationId: string }) => void;
}

interface Row {
  id: bigint;
  kind: string;
  dedupe_key: string;
  queue_id: string | null;
  address: string | null;
  status: number;
  body: string;
}

export function createOutboxPublisher(deps: OutboxPublisherDeps) {
  const batchSize = deps.batchSize ?? 500;
  const pollMs = deps.pollMs ?? 1_000;
  // Short, because rows a crashed bridge had claimed wait this long (the
  // window in which a final can overtake its pending notification); long
  // enough for a batch's publishes and confirms many times over.
  const leaseMs = deps.leaseMs ?? 10_000;
  const owner = `${process.pid}-${randomUUID().slice(0, 8)}`;
  let running = false;
  let wakeRequested = false;
  let wakeResolve: (() => void) | null = null;
  let loopDone: Promise<void> | null = null;
  let channel: AmqpConfirmChannel | null = null;

  function wake() {
    wakeRequested = true;
    wakeResolve?.();
  }

  async function getChannel(): Promise<AmqpConfirmChannel> {
    if (channel) return channel;
    const conn = await deps.amqp.waitConnected();
    const ch = await conn.createConfirmChannel();
    ch.on("close", () => {
      if (channel === ch) channel = null;
    });
    ch.on("error", (err) => deps.logger.warn({ err: String(err) }, "outbox: channel error"));
    channel = ch;
    return ch;
  }

  /**
   * Claim the next pending rows (a lease in one UPDATE ... ORDER BY id
   * LIMIT) and read them. The claim runs READ COMMITTED: under REPEATABLE
   * READ its index walk would wait for every open transaction that is
   * inserting notifications (a block being committed, a batch of deposits
   * being finalised) and lock the gap after the last pending row against new
   * ones; READ COMMITTED skips rows not yet committed (they are claimed next
   * time) and takes no gap locks. Two claimers still never take the same row:
   * a row locked by one is re-checked by the other against its committed
   * claim and skipped.
   */
  async function claimBatch(): Promise<Row[]> {
    if (!deps.amqp.connected) return [];
    const claim = `${owner}-${randomUUID().slice(0, 8)}`;
    const conn = await deps.pool.getConnection();
    try {
      // pipelined; SET TRANSACTION applies to the next statement's (autocommit) transaction only
      const [, claimed] = (await Promise.all([
        conn.query("SET TRANSACTION ISOLATION LEVEL READ COMMITTED"),
        conn.query(
          `UPDATE notification SET claimed_by = ?, claimed_until = NOW(3) + INTERVAL ? MICROSECOND
           WHERE state = 'pending' AND (claimed_until IS NULL OR claimed_until < NOW(3)) ORDER BY id LIMIT ?`,
          [claim, leaseMs * 1000, batchSize],
        ),
      ])) as [unknown, unknown];
      if (affected(claimed) === 0) return [];
      const rows = (await conn.query(
        // LIMIT: the claim took the first pending rows in id order, so the (state, id) index walk stops
        // right after them instead of reading every pending row (thousands after a big block)
        "SELECT id, kind, dedupe_key, queue_id, address, status, body FROM notification WHERE claimed_by = ? AND state = 'pending' ORDER BY id LIMIT ?",
        [claim, batchSize],
      )) as Row[];
      return await holdBackFinals(conn, rows);
    } finally {
      await conn.release();
    }
  }

  /**
   * Per id the business sees `2` before the final (SPEC §3). Rows in id order
   * on one channel keep that within this process (its earlier claims are
   * published first), but a final claimed here while its `2` is pending in
   * another's hands would overtake it: a bridge killed with the `2` claimed
   * (its lease runs on), another bridge publishing it right now, or a `2`
   * whose publish failed and was given back. Such finals are given back
   * unpublished and claimed again after their `2` (one unique-key lookup
   * per final).
   */
  async function holdBackFinals(conn: PoolConnection, rows: Row[]): Promise<Row[]> {
    const finalOf = new Map<string, Row>();
    for (const r of rows) {
      const before = pendingPredecessorKey(r.dedupe_key);
      if (before) finalOf.set(before, r);
    }
    if (finalOf.size === 0) return rows;
    const keys = [...finalOf.keys()];
    const elsewhere = (await conn.query(
      `SELECT dedupe_key FROM notification WHERE dedupe_key IN (${inList(keys.length)}) AND state = 'pending' AND (claimed_by IS NULL OR claimed_by NOT LIKE ?)`,
      [...keys, `${owner}-%`],
    )) as { dedupe_key: string }[];
    if (elsewhere.length === 0) return rows;
    const held = new Set(elsewhere.map((e) => finalOf.get(e.dedupe_key)!));
    await release([...held]);
    deps.logger.info({ held: held.size }, "outbox: finals held back until their pending notification is published");
    return rows.filter((r) => !held.has(r));
  }

  /** Publish rows in id order (back to back on one channel), then wait for every confirm. Never throws. */
  async function publishRows(rows: Row[]): Promise<{ sent: Row[]; unsent: Row[]; error: unknown }> {
    let ch: AmqpConfirmChannel;
    try {
      ch = await getChannel();
    } catch (error) {
      return { sent: [], unsent: rows, error };
    }
    const results = await Promise.allSettled(
      rows.map(async (row) => {
        const route = deps.routes[row.kind as RequestKind];
        // never marked sent unpublished: notifications are built for the request kinds only (NotificationDraft.kind)
        if (!route) throw new Error(`no response route for notification kind ${row.kind}`);
        const signed = signMessage(JSON.parse(row.body) as Record<string, unknown>, deps.communicationKey);
        await publishConfirmed(ch, route, Buffer.from(JSON.stringify(signed)), { messageId: row.dedupe_key });
      }),
    );
    const sent = rows.filter((_, i) => results[i]!.status === "fulfilled");
    const unsent = rows.filter((_, i) => results[i]!.status === "rejected");
    const failed = results.find((r): r is PromiseRejectedResult => r.status === "rejected");
    return { sent, unsent, error: failed?.reason ?? null };
  }

  /**
   * Mark confirmed rows sent, and give the lease of the others back so a
   * pass retries them at once. The row itself is the audit record of the
   * publish (state, sent_at, attempts; `payment history` shows it): no
   * separate audit row, one write per notification fewer.
   */
  async function record(sent: Row[], unsent: Row[]): Promise<void> {
    if (unsent.length > 0) await release(unsent);
    if (sent.length === 0) return;
    const ids = sent.map((r) => r.id);
    await deps.pool.query(
      `UPDATE notification SET state = 'sent', sent_at = NOW(3), attempts = attempts + 1, claimed_by = NULL, claimed_until = NULL
       WHERE id IN (${inList(ids.length)})`,
      ids,
    );
    for (const r of sent) deps.onPublished?.({ kind: r.kind as RequestKind, status: r.status, address: r.address, queueId: r.queue_id, notificationId: r.dedupe_key });
  }

  async function release(rows: Row[]): Promise<void> {
    if (rows.length === 0) return;
    const ids = rows.map((r) => r.id);
    await deps.pool
      .query(`UPDATE notification SET claimed_by = NULL, claimed_until = NULL WHERE id IN (${inList(ids.length)}) AND state = 'pending'`, ids)
      .catch(() => undefined);
  }

  /** Claim, publish and mark one batch; returns how many were sent. */
  async function publishBatch(): Promise<number> {
    const rows = await claimBatch();
    if (rows.length === 0) return 0;
    const { sent, unsent, error } = await publishRows(rows);
    await record(sent, unsent);
    if (error) throw error;
    return sent.length;
  }

  /**
   * Publish until the outbox is empty, pipelined: the next batch is claimed
   * while this one's confirms come back, and this one's bookkeeping runs
   * while the next is published. Batches are still published one after the
   * other, in id order, on one channel (a status 2 before its status 1).
   */
  async function drain(): Promise<number> {
    let total = 0;
    let recording: Promise<void> = Promise.resolve();
    let recordError: unknown = null;
    let rows = await claimBatch();
    try {
      while (rows.length > 0) {
        const publishing = publishRows(rows);
        const next = running && recordError === null ? claimBatch() : Promise.resolve([]);
        next.catch(() => undefined); // awaited below
        const { sent, unsent, error } = await publishing;
        recording = recording
          .then(() => record(sent, unsent))
          .catch((e: unknown) => {
            recordError ??= e;
          });
        total += sent.length;
        if (error) {
          await release(await next.catch(() => []));
          throw error;
        }
        rows = await next;
      }
    } finally {
      await recording;
    }
    if (recordError) throw recordError;
    return total;
  }

  async function loop(): Promise<void> {
    let failures = 0;
    while (running) {
      wakeRequested = false;
      let n = 0;
      try {
        n = await drain();
        failures = 0;
      } catch (err) {
        failures++;
        deps.logger.error({ err: String(err), failures }, "outbox: publish pass failed; will retry");
        await new Promise((r) => setTimeout(r, Math.min(200 * 2 ** Math.min(failures, 5), 5_000)));
        continue;
      }
      if (n > 0 || wakeRequested) continue;
      await new Promise<void>((resolve) => {
        wakeResolve = resolve;
        setTimeout(resolve, pollMs);
      });
      wakeResolve = null;
    }
  }

  return {
    wake,
    publishBatch,
    start() {
      if (running) return;
      running = true;
      deps.amqp.onConnect(async () => wake());
      loopDone = loop();
    },
    async stop() {
      running = false;
      wake();
      await loopDone;
      const ch = channel;
      channel = null;
      if (ch) await ch.close().catch(() => undefined);
    },
  };
}
