/**
 * Consumes the four request queues with a prefetch window and hands messages
 * to the request handler in small batches; acks a message only after the
 * handler has persisted it and enqueued its jobs (several at once, with
 * `allUpTo`, once every earlier delivery of the channel is done too).
 *
 * No message can hold up another (SPEC §3): every message ends accepted,
 * refused, or on the dead-letter queue with its reason.
 *
 * Failure modes:
 * - MySQL or Redis down (an infrastructure fault, judged by the driver's
 *   error code or, failing that, by a health probe): the batch is retried
 *   with backoff while its messages stay unacked (nothing is lost; if our
 *   connection dies they are redelivered);
 * - any other failure of a batch is caused by one of its messages (our bug:
 *   input is bounded before it is written). The batch is split in halves
 *   until the culprit is alone; it is dead-lettered `internal` and everything
 *   else goes through. Never a whole batch retried forever;
 * - RabbitMQ connection lost: in-flight acks are dropped, RabbitMQ redelivers
 *   (flagged redelivered), the handler recognises the same bytes;
 * - a dead letter: copied to the dead-letter queue (reason in its headers)
 *   with publisher confirms, then acked; if that publish fails it is nacked
 *   back to its queue;
 * - shutdown: consumers are cancelled first, in-flight batches finish and ack,
 *   then the channel closes (anything unacked is redelivered elsewhere).
 */
import type { Logger } from "../shared/logger.ts";
import { type AmqpConnection, type AmqpChannel, type AmqpConfirmChannel, type AmqpMessage, publishConfirmed } from "../shared/adapters/amqp.ts";
import { describeError } from "../shared/domain/errors.ts";
import { clip } from "../shared/domain/limits.ts";
import type { RmqRoute } from "../shared/config/schema.ts";
import type { RequestKind } from "../shared/domain/requests.ts";
import type { IncomingMessage, MessageOutcome } from "./request-handler.ts";

export interface RequestConsumerDeps {
  amqp: AmqpConnection;
  logger: Logger;
  routes: Record<RequestKind, RmqRoute>;
  deadRoute: RmqRoute;
  prefetch: number;
  handleBatch: (items: IncomingMessage[]) => Promise<MessageOutcome[]>;
  /**
   * True when a batch's failure is the infrastructure's (the database or
   * Redis is down): then the batch waits and is retried whole. Otherwise a
   * message of its own is the cause and the batch is split.
   */
  isInfrastructureFault: (err: unknown) => Promise<boolean>;
  /** messages per handler call */
  batchSize?: number;
  /** batches handled at once */
  concurrency?: number;
  onOutcome?: (kind: RequestKind, outcome: MessageOutcome) => void;
}

interface Pending {
  kind: RequestKind;
  msg: AmqpMessage;
  channel: AmqpChannel;
  acks: Acker;
}

/**
 * Acks of one channel with as few frames as possible. Batches finish in any
 * order; a delivery is acked only once it is settled, and then with
 * `allUpTo` for the longest settled run of deliveries: one frame per batch
 * instead of one per message. A delivery settled on its own (dead-lettered
 * and acked, or nacked) is no longer outstanding, so a later multiple ack
 * does not touch it.
 */
interface Acker {
  track(msg: AmqpMessage): void;
  /** `ack`: this delivery is to be acked; false: it was acked or nacked on its own */
  settle(msg: AmqpMessage, ack: boolean): void;
}

function createAcker(channel: AmqpChannel): Acker {
  const order: number[] = []; // delivery tags in arrival order (ascending on a channel)
  let head = 0;
  const settled = new Map<number, { msg: AmqpMessage; ack: boolean }>();
  return {
    track(msg) {
      order.push(msg.fields.deliveryTag);
    },
    settle(msg, ack) {
      settled.set(msg.fields.deliveryTag, { msg, ack });
      let upTo: AmqpMessage | null = null;
      while (head < order.length && settled.has(order[head]!)) {
        const s = settled.get(order[head]!)!;
        settled.delete(order[head]!);
        head++;
        if (s.ack) upTo = s.msg;
      }
      if (head > 4096) {
        order.splice(0, head);
        head = 0;
      }
      if (!upTo) return;
      try {
        channel.ack(upTo, true);
      } catch {
        // The channel closed meanwhile; RabbitMQ will redeliver and the
        // handler will see duplicates with the same body.
      }
    },
  };
}

export function createRequestConsumer(deps: RequestConsumerDeps) {
  const batchSize = deps.batchSize ?? 250;
  const concurrency = deps.concurrency ?? 4;
  const buffer: Pending[] = [];
  let flushScheduled = false;
  let inFlight = 0;
  const idle: (() => void)[] = [];
  let stopping = false;
  let channel: AmqpChannel | null = null;
  let consumerTags: string[] = [];

  function schedule() {
    if (flushScheduled) return;
    flushScheduled = true;
    // setImmediate: gather every delivery that arrived in this I/O turn.
    setImmediate(() => {
      flushScheduled = false;
      pump();
    });
  }

  function pump() {
    while (buffer.length > 0 && inFlight < concurrency) {
      const batch = buffer.splice(0, batchSize);
      inFlight++;
      void runBatch(batch).finally(() => {
        inFlight--;
        if (buffer.length > 0) pump();
        else if (inFlight === 0) idle.splice(0).forEach((f) => f());
      });
    }
  }

  async function runBatch(batch: Pending[]): Promise<void> {
    const outcomes = await settle(batch, false);
    if (!outcomes) return; // stopping: left unacked, RabbitMQ hands them to another consumer
    await Promise.all(
      batch.map(async (p, n) => {
        const outcome = outcomes[n]!;
        deps.onOutcome?.(p.kind, outcome);
        if (outcome.action === "dead") {
          await deadLetter(p, outcome.reason, outcome.detail);
          p.acks.settle(p.msg, false);
          return;
        }
        p.acks.settle(p.msg, true);
      }),
    );
  }

  /**
   * The outcome of every message of `batch`, or null when stopping while
   * the batch waits on the infrastructure. `retried`: the batch (or the one
   * it was split from) failed before, so its commit may have landed: the
   * handler is told to take the same bytes as a redelivery.
   */
  async function settle(batch: Pending[], retried: boolean): Promise<MessageOutcome[] | null> {
    for (let attempt = 0; ; attempt++) {
      const again = retried || attempt > 0;
      try {
        return await deps.handleBatch(batch.map((p) => ({ kind: p.kind, body: p.msg.content, redelivered: again || p.msg.fields.redelivered })));
      } catch (err) {
        if (await deps.isInfrastructureFault(err)) {
          const delay = Math.min(250 * 2 ** Math.min(attempt, 5), 8_000);
          deps.logger.error({ err, batch: batch.length, retryInMs: delay }, "bridge: cannot persist request batch; will retry (messages stay unacked)");
          // Leave them unacked when stopping: closing the channel hands them back to RabbitMQ.
          if (stopping) return null;
          await new Promise((r) => setTimeout(r, delay));
          continue;
        }
        if (batch.length === 1) {
          deps.logger.error({ err, kind: batch[0]!.kind, bytes: batch[0]!.msg.content.length }, "bridge: a request failed on its own; dead-lettered");
          return [{ action: "dead", reason: "internal", detail: clip(describeError(err), 256) }];
        }
        deps.logger.warn({ err: describeError(err), batch: batch.length }, "bridge: a request batch failed for one of its messages; splitting it");
        const mid = batch.length >> 1;
        const left = await settle(batch.slice(0, mid), true);
        const right = left && (await settle(batch.slice(mid), true));
        return left && right ? [...left, ...right] : null;
      }
    }
  }

  /** One confirm channel for dead letters, opened on first use and again after it closes. */
  let deadChannel: Promise<AmqpConfirmChannel> | null = null;
  function deadLetterChannel(): Promise<AmqpConfirmChannel> {
    if (!deadChannel) {
      const opening = deps.amqp.waitConnected().then(async (conn) => {
        const ch = await conn.createConfirmChannel();
        const reset = () => {
          if (deadChannel === opening) deadChannel = null;
        };
        ch.on("close", reset);
        ch.on("error", reset);
        return ch;
      });
      deadChannel = opening;
      opening.catch(() => {
        if (deadChannel === opening) deadChannel = null;
      });
    }
    return deadChannel;
  }

  async function deadLetter(p: Pending, reason: string, detail: string): Promise<void> {
    deps.logger.warn({ kind: p.kind, reason, detail, bytes: p.msg.content.length }, "bridge: request sent to the dead-letter queue");
    try {
      const ch = await deadLetterChannel();
      await publishConfirmed(ch, deps.deadRoute, p.msg.content, {
        contentType: p.msg.properties.contentType,
        headers: {
          "x-payment-reason": reason,
          "x-payment-detail": clip(detail, 256),
          "x-payment-kind": p.kind,
          "x-original-queue": deps.routes[p.kind].queue,
        },
      });
      safeAck(p);
    } catch (err) {
      deps.logger.error({ err }, "bridge: dead-letter publish failed; message left for redelivery");
      try {
        p.channel.nack(p.msg, false, true);
      } catch {
        /* channel gone: RabbitMQ redelivers */
      }
    }
  }

  function safeAck(p: Pending) {
    try {
      p.channel.ack(p.msg);
    } catch {
      // The channel closed meanwhile; RabbitMQ will redeliver and the
      // handler will see a duplicate with the same body.
    }
  }

  async function start(): Promise<void> {
    deps.amqp.onConnect(async (conn) => {
      if (stopping) return;
      const ch = await conn.createChannel();
      ch.on("error", (err) => deps.logger.warn({ err: String(err) }, "bridge: consumer channel error"));
      await ch.prefetch(deps.prefetch);
      channel = ch;
      const acks = createAcker(ch);
      consumerTags = [];
      for (const kind of Object.keys(deps.routes) as RequestKind[]) {
        const { consumerTag } = await ch.consume(
          deps.routes[kind].queue,
          (msg) => {
            if (!msg) return; // consumer cancelled by the broker (queue deleted)
            acks.track(msg);
            buffer.push({ kind, msg, channel: ch, acks });
            if (buffer.length >= batchSize) pump();
            else schedule();
          },
          { noAck: false },
        );
        consumerTags.push(consumerTag);
      }
      deps.logger.info({ prefetch: deps.prefetch, queues: Object.values(deps.routes).map((r) => r.queue) }, "bridge: consuming requests");
    });
  }

  /** Stop taking messages, finish and ack what is in flight. */
  async function stop(): Promise<void> {
    stopping = true;
    const ch = channel;
    if (ch) for (const tag of consumerTags) await ch.cancel(tag).catch(() => undefined);
    if (inFlight > 0 || buffer.length > 0) {
      pump();
      await new Promise<void>((resolve) => {
        idle.push(resolve);
        if (inFlight === 0) resolve();
      });
    }
    if (ch) await ch.close().catch(() => undefined);
    const dead = deadChannel;
    deadChannel = null;
    if (dead) await dead.then((c) => c.close()).catch(() => undefined);
  }

  return { start, stop };
}
