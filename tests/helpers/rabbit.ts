/**
 * A business system's side of RabbitMQ, for tests: publish signed requests,
 * collect notifications from the response queues and wait for them.
 */
import * as amqp from "amqplib";
import { signMessage, verifyMessage } from "../../shared/domain/signature.ts";
import type { Config } from "../../shared/config/load-config.ts";
import { declareRoutes } from "../../shared/adapters/amqp.ts";
import { RMQ_ROUTE_KEYS } from "../../shared/config/schema.ts";
import { RABBIT_URL } from "./env.ts";

export type Kind = "topup" | "withdraw" | "pay" | "remove";
export type Note = Record<string, unknown> & { status: number; sign: string };
export interface DeadLetter {
  reason: string;
  detail: string;
  kind: string;
  text: string;
}

export interface BusinessClient {
  /** sign (unless `raw`) and publish a request */
  send(kind: Kind, body: Record<string, unknown>, opts?: { key?: string; unsigned?: boolean }): Promise<void>;
  /** publish exact bytes */
  sendRaw(kind: Kind, bytes: Buffer | string): Promise<void>;
  /** every notification received so far on the kind's response queue */
  received(kind: Kind): Note[];
  /** wait until `pred` holds for some received notification; returns it */
  waitFor(kind: Kind, pred: (n: Note) => boolean, timeoutMs?: number): Promise<Note>;
  /** messages that reached the dead-letter queue */
  dead(): amqp.ConsumeMessage[];
  /** wait until a dead letter matches (its reason header, and its body as text); returns it */
  waitForDead(pred: (d: DeadLetter) => boolean, timeoutMs?: number): Promise<DeadLetter>;
  /**
   * What the business saw for one id, in arrival order and deduplicated by
   * notification_id: "2", "1", "0:expired"... (SPEC "One id, one outcome":
   * one refusal, or "2" then one final).
   */
  outcomes(kind: Kind, queueId: string, orderId?: string): string[];
  /** true when every received notification's signature verifies */
  allSigned(): boolean;
  close(): Promise<void>;
}

export async function createBusinessClient(config: Config, key: string): Promise<BusinessClient> {
  const conn = await amqp.connect(RABBIT_URL, { noDelay: true });
  const ch = await conn.createConfirmChannel();
  const rmq = config.rmq_config;
  await declareRoutes(ch, RMQ_ROUTE_KEYS.map((k) => rmq[k]));
  const got: Record<Kind, Note[]> = { topup: [], withdraw: [], pay: [], remove: [] };
  const dead: amqp.ConsumeMessage[] = [];
  let bad = 0;
  const respKey = { topup: "topup_resp", withdraw: "withdraw_resp", pay: "pay_resp", remove: "remove_resp" } as const;
  const waiters = new Set<() => void>();
  const waitUntil = <T>(find: () => T | undefined, timeoutMs: number, what: () => string) =>
    new Promise<T>((resolve, reject) => {
      const check = () => {
        const hit = find();
        if (hit !== undefined) {
          waiters.delete(check);
          clearTimeout(timer);
          resolve(hit);
        }
      };
      const timer = setTimeout(() => {
        waiters.delete(check);
        reject(new Error(`timed out waiting for ${what()}`));
      }, timeoutMs);
      waiters.add(check);
      check();
    });
  const asDead = (m: amqp.ConsumeMessage): DeadLetter => ({
    reason: String(m.properties.headers?.["x-payment-reason"] ?? ""),
    detail: String(m.properties.headers?.["x-payment-detail"] ?? ""),
    kind: String(m.properties.headers?.["x-payment-kind"] ?? ""),
    text: m.content.toString("utf8"),
  });
  for (const kind of Object.keys(got) as Kind[]) {
    await ch.consume(rmq[respKey[kind]].queue, (m) => {
      if (!m) return;
      const note = JSON.parse(m.content.toString()) as Note;
      if (!verifyMessage(note, key)) bad++;
      got[kind].push(note);
      ch.ack(m);
      waiters.forEach((w) => w());
    });
  }
  await ch.consume(rmq.dead.queue, (m) => {
    if (!m) return;
    dead.push(m);
    ch.ack(m);
    waiters.forEach((w) => w());
  });
  const publish = (kind: Kind, bytes: Buffer) =>
    new Promise<void>((resolve, reject) =>
      ch.publish(rmq[kind].exchange, rmq[kind].routing[0]!, bytes, { persistent: true }, (err) => (err ? reject(err) : resolve())),
    );
  return {
    async send(kind, body, opts = {}) {
      const msg = opts.unsigned ? body : signMessage(body, opts.key ?? key);
      await publish(kind, Buffer.from(JSON.stringify(msg)));
    },
    async sendRaw(kind, bytes) {
      await publish(kind, Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes));
    },
    received: (kind) => got[kind],
    waitFor(kind, pred, timeoutMs = 20_000) {
      return waitUntil(() => got[kind].find(pred), timeoutMs, () => `a ${kind} notification; got ${JSON.stringify(got[kind]).slice(0, 2000)}`);
    },
    dead: () => dead,
    waitForDead(pred, timeoutMs = 20_000) {
      return waitUntil(() => dead.map(asDead).find(pred), timeoutMs, () => `a dead letter; got ${JSON.stringify(dead.map(asDead)).slice(0, 2000)}`);
    },
    outcomes(kind, queueId, orderId) {
      // as a business sees them: deduplicated by notification_id (delivery is at-least-once:
      // a notification published by a bridge killed before it marked it sent comes again, identical)
      const seen = new Set<unknown>();
      return got[kind]
        .filter((n) => n.queue_id === queueId && (orderId === undefined || n.order_id === orderId))
        .filter((n) => !seen.has(n.notification_id) && seen.add(n.notification_id))
        .map((n) => `${n.status}${n.error ? `:${n.error}` : ""}`);
    },
    allSigned: () => bad === 0,
    async close() {
      await ch.close().catch(() => undefined);
      await conn.close().catch(() => undefined);
    },
  };
}

export const nowS = () => Math.floor(Date.now() / 1000);

/** Poll `fn` until it returns a truthy value. */
export async function eventually<T>(fn: () => Promise<T> | T, timeoutMs = 20_000, stepMs = 50): Promise<NonNullable<T>> {
  const end = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v as NonNullable<T>;
    } catch (e) {
      last = e;
    }
    if (Date.now() > end) throw new Error(`condition not met in ${timeoutMs} ms${last ? `: ${String(last)}` : ""}`);
    await new Promise((r) => setTimeout(r, stepMs));
  }
}
