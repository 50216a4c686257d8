/**
 * RabbitMQ connection that survives broker restarts.
 *
 * Failure modes and what we do about them:
 * - broker down at start or later: reconnect with capped exponential backoff,
 *   trying each URL of a cluster list in turn; `onConnect` hooks re-declare
 *   the topology and restart consumers on every new connection;
 * - connection lost with messages unacked: RabbitMQ redelivers them (the
 *   bridge's handling is idempotent), and acks on the dead channel are dropped;
 * - publish while disconnected: `publish` waits for the next connection (the
 *   outbox keeps the notification meanwhile, so nothing is lost on a crash).
 *
 * Nothing connects at import time; `start()` does.
 */
import * as amqp from "amqplib";
import type { Logger } from "../logger.ts";
import { redactUrl } from "../logger.ts";
import type { RmqRoute } from "../config/schema.ts";

export type AmqpChannel = amqp.Channel;
export type AmqpConfirmChannel = amqp.ConfirmChannel;
export type AmqpMessage = amqp.ConsumeMessage;

export interface AmqpConnectionOptions {
  urls: string[];
  heartbeatS?: number;
  logger: Logger;
  /** name shown in the RabbitMQ management UI */
  name?: string;
}

type ConnectHook = (conn: amqp.ChannelModel) => Promise<void>;

export class AmqpConnection {
  private conn: amqp.ChannelModel | null = null;
  private hooks: ConnectHook[] = [];
  private stopped = false;
  private waiters: ((c: amqp.ChannelModel) => void)[] = [];
  private attempt = 0;
  private loop: Promise<void> | null = null;

  constructor(private readonly opts: AmqpConnectionOptions) {}

  get connected(): boolean {
    return this.conn !== null;
  }

  /** Run `hook` now if connected and after every reconnect. */
  onConnect(hook: ConnectHook): void {
    this.hooks.push(hook);
    if (this.conn) void this.runHook(this.conn, hook);
  }

  /** Start connecting; resolves on the first successful connection. */
  start(): Promise<void> {
    if (!this.loop) this.loop = this.connectLoop();
    return this.waitConnected().then(() => undefined);
  }

  /** Resolves with the live connection (waits while disconnected). */
  waitConnected(): Promise<amqp.ChannelModel> {
    if (this.conn) return Promise.resolve(this.conn);
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  async close(): Promise<void> {
    this.stopped = true;
    const c = this.conn;
    this.conn = null;
    if (c) await c.close().catch(() => undefined);
  }

  private async runHook(conn: amqp.ChannelModel, hook: ConnectHook): Promise<void> {
    try {
      await hook(conn);
    } catch (err) {
      this.opts.logger.error({ err }, "amqp: connect hook failed; reconnecting");
      await conn.close().catch(() => undefined);
    }
  }

  private async connectLoop(): Promise<void> {
    while (!this.stopped) {
      const url = this.opts.urls[this.attempt % this.opts.urls.length]!;
      try {
        const conn = await amqp.connect(withHeartbeat(url, this.opts.heartbeatS ?? 30), {
          timeout: 5_000,
          // TCP_NODELAY: without it a small frame (a publish, an ack, a confirm) waits for the
          // peer's delayed ACK, about 40 ms on Linux, on every round trip (measured: 44 ms vs 0.5 ms)
          noDelay: true,
          clientProperties: { connection_name: this.opts.name ?? "payment" },
        });
        this.attempt = 0;
        const closed = new Promise<void>((resolve) => {
          conn.on("close", () => resolve());
          conn.on("error", (err) => this.opts.logger.warn({ err: String(err) }, "amqp: connection error"));
        });
        conn.on("blocked", (reason) => this.opts.logger.warn({ reason }, "amqp: broker blocked publishing"));
        this.conn = conn;
        this.opts.logger.info({ url: redactUrl(url) }, "amqp: connected");
        for (const hook of this.hooks) await this.runHook(conn, hook);
        const waiters = this.waiters.splice(0);
        if (this.conn === conn) for (const w of waiters) w(conn);
        else this.waiters.push(...waiters);
        await closed;
        if (this.conn === conn) this.conn = null;
        if (!this.stopped) this.opts.logger.warn("amqp: connection closed; reconnecting");
      } catch (err) {
        this.attempt++;
        const delay = Math.min(200 * 2 ** Math.min(this.attempt, 5), 5_000);
        this.opts.logger.warn({ url: redactUrl(url), err: String(err), retryInMs: delay }, "amqp: cannot connect");
        await new Promise((r) => setTimeout(r, delay));
      }
    }
  }
}

function withHeartbeat(url: string, seconds: number): string {
  try {
    const u = new URL(url);
    if (!u.searchParams.has("heartbeat")) u.searchParams.set("heartbeat", String(seconds));
    return u.toString();
  } catch {
    return url;
  }
}

/** Declare the exchange(s), durable queues and their bindings (idempotent). */
export async function declareRoutes(ch: amqp.Channel, routes: RmqRoute[]): Promise<void> {
  for (const r of routes) {
    await ch.assertExchange(r.exchange, "direct", { durable: true });
    await ch.assertQueue(r.queue, { durable: true });
    for (const key of r.routing) await ch.bindQueue(r.queue, r.exchange, key);
  }
}

/** Publish persistent JSON on a confirm channel and wait for the broker's ack. */
export function publishConfirmed(
  ch: amqp.ConfirmChannel,
  route: RmqRoute,
  body: Buffer,
  props: amqp.Options.Publish = {},
): Promise<void> {
  return new Promise((resolve, reject) => {
    ch.publish(route.exchange, route.routing[0]!, body, { persistent: true, contentType: "application/json", ...props }, (err) =>
      err ? reject(err) : resolve(),
    );
  });
}
