/**
 * New-head notifications over WebSocket (ethers WebSocketProvider, a
 * `newHeads` subscription), used only as a wake-up signal: the scanner
 * always reads the head itself over HTTP, so a missed, duplicated or
 * out-of-order notification changes nothing but latency.
 *
 * Failure modes: the node refuses or drops the socket (restart, proxy
 * timeout) -> `connected` turns false, the scanner polls at the short
 * interval, and we reconnect with exponential backoff. ethers does not
 * reconnect by itself, and a request pending on a dead socket is rejected
 * when the provider is destroyed, so nothing is sent before the socket is
 * open (the subscription is the only request).
 */
import { WebSocketProvider, type Network } from "ethers";
import type { Logger } from "../../shared/logger.ts";

interface SocketLike {
  addEventListener(type: "open" | "close" | "error", fn: (ev: unknown) => void): void;
}

export interface HeadWatcherOptions {
  url: string;
  network: Network;
  logger: Logger;
  onHead: (blockNumber: number) => void;
  reconnectMinMs?: number;
  reconnectMaxMs?: number;
}

export interface HeadWatcher {
  start(): void;
  stop(): Promise<void>;
  /** true while the socket is open and subscribed */
  readonly connected: boolean;
}

export function createHeadWatcher(opts: HeadWatcherOptions): HeadWatcher {
  const minMs = opts.reconnectMinMs ?? 500;
  const maxMs = opts.reconnectMaxMs ?? 30_000;
  let provider: WebSocketProvider | null = null;
  let connected = false;
  let stopped = false;
  let failures = 0;
  let retryTimer: NodeJS.Timeout | null = null;

  const destroy = (p: WebSocketProvider) => {
    try {
      void Promise.resolve(p.destroy()).catch(() => undefined);
    } catch {
      /* already closed */
    }
  };

  function connect() {
    retryTimer = null;
    if (stopped) return;
    let p: WebSocketProvider;
    try {
      p = new WebSocketProvider(opts.url, opts.network, { staticNetwork: opts.network });
    } catch (e) {
      scheduleReconnect(String(e));
      return;
    }
    provider = p;
    let down = false;
    const sock = p.websocket as unknown as SocketLike;
    sock.addEventListener("open", () => {
      if (down || stopped) return;
      p.on("block", (n: number) => opts.onHead(Number(n))).then(
        () => {
          if (down || stopped) return;
          connected = true;
          failures = 0;
          opts.logger.info({ url: redact(opts.url) }, "chain-watch: websocket subscribed to new heads");
        },
        (err: unknown) => onDown(`subscribe failed: ${String(err)}`),
      );
    });
    const onDown = (why: string) => {
      if (down) return;
      down = true;
      const wasConnected = connected;
      connected = false;
      if (provider === p) provider = null;
      destroy(p);
      if (stopped) return;
      if (wasConnected) opts.logger.warn({ why }, "chain-watch: websocket down; polling until it is back");
      scheduleReconnect(why);
    };
    sock.addEventListener("close", () => onDown("closed"));
    sock.addEventListener("error", (ev) => onDown(`error: ${String((ev as { message?: string })?.message ?? ev)}`));
  }

  function scheduleReconnect(why: string) {
    if (stopped || retryTimer) return;
    const delay = Math.min(minMs * 2 ** Math.min(failures, 10), maxMs);
    failures++;
    opts.logger.debug({ why, delay }, "chain-watch: websocket reconnect scheduled");
    retryTimer = setTimeout(connect, delay);
    retryTimer.unref();
  }

  return {
    start() {
      stopped = false;
      connect();
    },
    async stop() {
      stopped = true;
      connected = false;
      if (retryTimer) clearTimeout(retryTimer);
      retryTimer = null;
      const p = provider;
      provider = null;
      if (p) destroy(p);
    },
    get connected() {
      return connected;
    },
  };
}

function redact(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = "***";
    // API keys often live in the path or query of hosted node URLs
    return `${u.protocol}//${u.host}`;
  } catch {
    return "[unparseable url]";
  }
}
