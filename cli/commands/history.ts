/**
 * `payment history <queue_id|address> [--json]`: everything the gateway did
 * for one request or one address, as one time-ordered timeline: requests,
 * transfers and their signed transactions, deposits, watches, notifications
 * and the audit trail every role writes (audit_event).
 *
 * Read-only, through Prisma Client. Nothing secret is printed: no raw
 * request bodies (they carry the signature), no raw signed transactions, no
 * wallet keys, and audit data fields with secret-looking names are redacted.
 *
 * @example
 * payment history withdraw_123
 * payment history 0x4e5b2e1dc63f6b91cb6cd759936495434c7e972f --json
 */
import { InvalidArgumentError, type Command } from "commander";
import type { PrismaClient } from "../../shared/adapters/db/client.ts";
import { CONFIG_OPTION_HELP, nothingFor, parseSubject, runCli, type Subject } from "../context.ts";

export interface TimelineEntry {
  at: Date;
  /** where the fact comes from: a row's column or an audit event */
  source: "request" | "transfer" | "tx" | "deposit" | "watch" | "notification" | "audit";
  event: string;
  /** audit events: which role or operator wrote it */
  actor?: string;
  /** e.g. "transfer#12" */
  ref?: string;
  details: Record<string, unknown>;
}

export interface History {
  subject: Subject;
  entries: TimelineEntry[];
  /** true when some source had more rows than `limit` (oldest left out) */
  truncated: boolean;
}

const SECRET_KEY = /key|secret|password|passphrase|mnemonic|authorization|^sign$|signature|raw/i;

function redact(value: unknown, depth = 0): unknown {
  if (depth > 6 || value === null || typeof value !== "object") return value;
  if (Array.isArray(value)) return value.map((v) => redact(v, depth + 1));
  return Object.fromEntries(Object.entries(value as Record<string, unknown>).map(([k, v]) => [k, SECRET_KEY.test(k) ? "[redacted]" : redact(v, depth + 1)]));
}

function parseJson(text: string | null): unknown {
  if (text === null) return null;
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

const dec = (d: { toFixed(): string } | null) => (d === null ? null : d.toFixed());
const SOURCE_ORDER: TimelineEntry["source"][] = ["request", "audit", "watch", "transfer", "tx", "deposit", "notification"];

/**
 * Collect the timeline of a queue_id or address. `limit` caps the rows read
 * per source (the newest are kept), so a busy collection wallet cannot make
 * the command read the whole database.
 */
export async function buildHistory(prisma: PrismaClient, subject: Subject, opts: { limit?: number } = {}): Promise<History> {
  const take = opts.limit ?? 1000;
  const newest = { orderBy: { id: "desc" as const }, take };
  const byQueue = subject.type === "queue_id" ? subject.queueId : null;
  const addr = subject.type === "address" ? subject.address : null;

  const [audits, transfers, deposits, notifications, watches] = await Promise.all([
    prisma.auditEvent.findMany({ where: byQueue !== null ? { queueId: byQueue } : { address: addr }, ...newest }),
    prisma.transfer.findMany({
      where: byQueue !== null ? { queueId: byQueue } : { OR: [{ requestedFrom: addr! }, { fromAddress: addr }, { toAddress: addr! }] },
      include: { attempts: { orderBy: { id: "asc" } } },
      ...newest,
    }),
    prisma.deposit.findMany({ where: byQueue !== null ? { queueId: byQueue } : { OR: [{ toAddress: addr! }, { fromAddress: addr! }] }, ...newest }),
    prisma.notification.findMany({ where: byQueue !== null ? { queueId: byQueue } : { address: addr }, ...newest }),
    prisma.watchedAddress.findMany({ where: byQueue !== null ? { queueId: byQueue } : { address: addr! }, ...newest }),
  ]);
  // Requests: by queue_id (accepted and refused ones both keep it), plus
  // those the audit trail or transfers point at. A dead-lettered message has
  // no request row: its audit event (request.dead_lettered, with the
  // reason, or request.duplicate) is what names it.
  const requestIds = new Set<bigint>();
  for (const a of audits) if (a.subjectType === "request" && a.subjectId !== null) requestIds.add(a.subjectId);
  for (const t of transfers) if (t.requestId !== null) requestIds.add(t.requestId);
  const requests = await prisma.request.findMany({
    where: byQueue !== null ? { OR: [{ queueId: byQueue }, { id: { in: [...requestIds] } }] } : { id: { in: [...requestIds] } },
    ...newest,
  });
  const truncated = [audits, transfers, deposits, notifications, watches, requests].some((rows) => rows.length >= take);

  const entries: TimelineEntry[] = [];
  const add = (e: TimelineEntry) => entries.push(e);

  for (const r of requests) {
    add({
      at: r.createdAt,
      source: "request",
      event: "request.received",
      ref: `request#${r.id}`,
      details: { kind: r.kind, queue_id: r.queueId, chain: r.chain, symbol: r.symbol, state: r.state, ...(r.error ? { error: r.error } : {}) },
    });
  }
  for (const a of audits) {
    add({
      at: a.at,
      source: "audit",
      event: a.event,
      actor: a.actor,
      ...(a.subjectType ? { ref: `${a.subjectType}#${a.subjectId ?? "?"}` } : {}),
      details: {
        ...(a.queueId !== null ? { queue_id: a.queueId } : {}),
        ...(a.orderId !== null ? { order_id: a.orderId } : {}),
        ...(a.address !== null ? { address: a.address } : {}),
        ...(a.data !== null ? { data: redact(parseJson(a.data)) } : {}),
      },
    });
  }
  for (const w of watches) {
    const details = { chain: w.chain, symbol: w.symbol, address: w.address, queue_id: w.queueId, active: w.active };
    add({ at: w.createdAt, source: "watch", event: "watch.created", details });
    if (w.removedAt) add({ at: w.removedAt, source: "watch", event: "watch.removed", details });
  }
  for (const t of transfers) {
    const ref = `transfer#${t.id}`;
    const who = { kind: t.kind, queue_id: t.queueId, ...(t.orderId ? { order_id: t.orderId } : {}) };
    add({
      at: t.createdAt,
      source: "transfer",
      event: "transfer.created",
      ref,
      details: { ...who, chain: t.chain, symbol: t.symbol, amount: dec(t.amount), from: t.requestedFrom, to: t.toAddress, state_now: t.state },
    });
    if (t.sentAt) add({ at: t.sentAt, source: "transfer", event: "transfer.sent", ref, details: { ...who, from: t.fromAddress, nonce: t.nonce, tx_hash: t.txHash } });
    if (t.finalizedAt) {
      add({
        at: t.finalizedAt,
        source: "transfer",
        event: `transfer.${t.state}`,
        ref,
        details: {
          ...who,
          tx_hash: t.txHash,
          block: t.blockNumber,
          confirmations: t.confirmations,
          ...(t.error ? { error: t.error } : {}),
          ...(t.errorDetail ? { error_detail: t.errorDetail } : {}),
          ...(t.feePaid ? { fee_paid: dec(t.feePaid) } : {}),
          ...(t.approvedBy ? { approved_by: t.approvedBy } : {}),
        },
      });
    }
    for (const a of t.attempts) {
      const details = {
        tx_hash: a.txHash,
        from: a.fromAddress,
        nonce: a.nonce,
        max_fee_per_gas: dec(a.maxFeePerGas),
        max_priority_fee_per_gas: dec(a.maxPriorityFeePerGas),
        gas_limit: dec(a.gasLimit),
        state_now: a.state,
      };
      add({ at: a.createdAt, source: "tx", event: "tx.signed", ref, details });
      if (a.broadcastAt) add({ at: a.broadcastAt, source: "tx", event: "tx.broadcast", ref, details: { tx_hash: a.txHash } });
    }
  }
  for (const d of deposits) {
    const ref = `deposit#${d.id}`;
    const what = { chain: d.chain, symbol: d.symbol, tx_hash: d.txHash, log_index: d.logIndex };
    add({
      at: d.createdAt,
      source: "deposit",
      event: "deposit.seen",
      ref,
      details: { ...what, block: d.blockNumber, from: d.fromAddress, to: d.toAddress, amount: dec(d.amount), queue_id: d.queueId, state_now: d.state },
    });
    if (d.finalizedAt) {
      add({ at: d.finalizedAt, source: "deposit", event: `deposit.${d.state}`, ref, details: { ...what, confirmations: d.confirmations, ...(d.error ? { error: d.error } : {}) } });
    }
  }
  for (const n of notifications) {
    const body = parseJson(n.body) as Record<string, unknown> | null;
    const details = {
      kind: n.kind,
      notification_id: n.dedupeKey,
      status: n.status,
      ...(body && typeof body === "object" && body.error ? { error: body.error } : {}),
      ...(body && typeof body === "object" && body.order_id ? { order_id: body.order_id } : {}),
    };
    add({ at: n.createdAt, source: "notification", event: "notification.queued", ref: `notification#${n.id}`, details: { ...details, state_now: n.state } });
    if (n.sentAt) add({ at: n.sentAt, source: "notification", event: "notification.published", ref: `notification#${n.id}`, details: { ...details, attempts: n.attempts } });
  }

  entries.sort((a, b) => a.at.getTime() - b.at.getTime() || SOURCE_ORDER.indexOf(a.source) - SOURCE_ORDER.indexOf(b.source));
  return { subject, entries, truncated };
}

const jsonSafe = (_k: string, v: unknown) => (typeof v === "bigint" ? v.toString() : v);

function formatValue(v: unknown): string {
  if (typeof v === "bigint") return v.toString();
  if (typeof v === "string") return /\s/.test(v) ? JSON.stringify(v) : v;
  return JSON.stringify(v, jsonSafe);
}

/** One line per entry: time, source (actor), event, ref, key=value details. */
export function formatHistory(h: History): string {
  const what = h.subject.type === "address" ? `address ${h.subject.address}` : `queue_id ${h.subject.queueId}`;
  if (h.entries.length === 0) return `nothing recorded for ${what}\n`;
  const lines = [`history of ${what}: ${h.entries.length} event(s)${h.truncated ? " (long history: oldest rows left out, raise --limit)" : ""}`];
  for (const e of h.entries) {
    const src = e.actor ? `${e.source}:${e.actor}` : e.source;
    const details = Object.entries(e.details)
      .filter(([, v]) => v !== null && v !== undefined)
      .map(([k, v]) => `${k}=${formatValue(v)}`)
      .join(" ");
    lines.push(`${e.at.toISOString()}  ${src.padEnd(16)} ${e.event.padEnd(24)} ${(e.ref ?? "").padEnd(16)} ${details}`.trimEnd());
  }
  return lines.join("\n") + "\n";
}

export function historyJson(h: History): string {
  const { hexNotAddress: _hex, ...subject } = h.subject as Subject & { hexNotAddress?: boolean };
  return JSON.stringify({ subject, truncated: h.truncated, entries: h.entries.map((e) => ({ ...e, at: e.at.toISOString() })) }, jsonSafe, 2) + "\n";
}

function positiveInt(v: string): number {
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < 1) throw new InvalidArgumentError("a whole number of at least 1");
  return n;
}

export function register(program: Command): void {
  program
    .command("history")
    .description("print everything recorded for a queue_id or an address as one timeline (requests, transfers, transactions, deposits, notifications, audit)")
    .argument("<queue_id|address>", "a request's queue_id, or a 0x address")
    .option("-c, --config <file>", CONFIG_OPTION_HELP)
    .option("--json", "print JSON instead of text")
    .option("--limit <n>", "rows read per source, newest first", positiveInt, 1000)
    .action(async (arg: string, opts: { config?: string; json?: boolean; limit: number }) => {
      const subject = parseSubject(arg);
      await runCli(opts.config, async (ctx) => {
        const h = await buildHistory(ctx.db.prisma, subject, { limit: opts.limit });
        if (h.entries.length === 0) throw nothingFor(subject, "nothing recorded");
        process.stdout.write(opts.json ? historyJson(h) : formatHistory(h));
      });
    });
}
