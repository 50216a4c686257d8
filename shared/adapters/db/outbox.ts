/**
 * Writing notifications to the outbox and auditing, inside the caller's
 * transaction, so a state change and its report commit together or not at
 * all. `INSERT IGNORE` on the unique dedupe key makes a repeated write (a
 * retried job, a second worker) a no-op instead of a second notification.
 */
import type { NotificationDraft } from "../../domain/notifications.ts";
import type { Pool } from "mariadb";
import { affected, placeholders, type Conn } from "./sql.ts";

export async function insertNotifications(conn: Conn, drafts: NotificationDraft[]): Promise<number> {
  if (drafts.length === 0) return 0;
  const values = drafts.flatMap((d) => [d.kind, d.dedupeKey, d.queueId, d.address, d.status, JSON.stringify(d.body), "pending"]);
  const res = await conn.query(
    `INSERT IGNORE INTO notification (kind, dedupe_key, queue_id, address, status, body, state) VALUES ${placeholders(drafts.length, 7)}`,
    values,
  );
  return affected(res);
}

export interface AuditEntry {
  actor: string;
  event: string;
  queueId?: string | null;
  orderId?: string | null;
  address?: string | null;
  subjectType?: string | null;
  subjectId?: bigint | string | null;
  data?: Record<string, unknown> | null;
}

const jsonReplacer = (_k: string, v: unknown) => (typeof v === "bigint" ? v.toString() : v);

/** `conn`: the caller's transaction, or the pool for an entry that stands alone. */
export async function insertAudit(conn: Conn | Pool, entries: AuditEntry[]): Promise<void> {
  if (entries.length === 0) return;
  const values = entries.flatMap((e) => [
    e.actor,
    e.event,
    e.queueId ?? null,
    e.orderId ?? null,
    e.address ?? null,
    e.subjectType ?? null,
    e.subjectId ?? null,
    e.data ? JSON.stringify(e.data, jsonReplacer) : null,
  ]);
  await conn.query(
    `INSERT INTO audit_event (actor, event, queue_id, order_id, address, subject_type, subject_id, data) VALUES ${placeholders(entries.length, 8)}`,
    values,
  );
}

/** Redis channel on which writers wake the outbox publisher (bridge). */
export const outboxChannel = (prefix: string) => `${prefix}:outbox`;
