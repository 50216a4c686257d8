/**
 * A TCP proxy in front of any service (RabbitMQ, MariaDB, Redis, an EVM
 * node's HTTP or WebSocket port) that a fault test can cut and restore:
 *
 * - `cut()`     destroys every open connection and stops listening, so new
 *               connections are refused (ECONNREFUSED): what a restarted or
 *               unreachable server looks like to its clients;
 * - `restore()` listens again on the same port; clients reconnect by
 *               themselves (or do not: that is what the tests find out).
 *
 * Point the code under test at `url`/`port` instead of the service itself.
 *
 * @example
 * const proxy = await startTcpProxy({ port: 5672 });
 * const url = `amqp://guest:guest@127.0.0.1:${proxy.port}`;
 * await proxy.cut(); ...; await proxy.restore();
 */
import net from "node:net";

export interface TcpProxy {
  /** the port clients connect to (stable across cut/restore) */
  readonly port: number;
  /** connections currently open through the proxy */
  readonly connections: number;
  /** connections accepted since start */
  readonly accepted: number;
  readonly up: boolean;
  cut(): Promise<void>;
  restore(): Promise<void>;
  close(): Promise<void>;
}

export async function startTcpProxy(target: { host?: string; port: number }, opts: { port?: number } = {}): Promise<TcpProxy> {
  const host = target.host ?? "127.0.0.1";
  const sockets = new Set<net.Socket>();
  let server: net.Server | null = null;
  let port = opts.port ?? 0;
  let accepted = 0;

  const listen = () =>
    new Promise<void>((resolve, reject) => {
      const s = net.createServer((client) => {
        accepted++;
        const upstream = net.connect(target.port, host);
        sockets.add(client).add(upstream);
        client.setNoDelay(true);
        upstream.setNoDelay(true);
        client.pipe(upstream).pipe(client);
        const close = () => {
          client.destroy();
          upstream.destroy();
          sockets.delete(client);
          sockets.delete(upstream);
        };
        client.on("error", close).on("close", close);
        upstream.on("error", close).on("close", close);
      });
      s.once("error", reject);
      s.listen(port, "127.0.0.1", () => {
        s.off("error", reject);
        port = (s.address() as net.AddressInfo).port;
        server = s;
        resolve();
      });
    });

  async function cut() {
    const s = server;
    server = null;
    // close() waits for open connections, so destroy them first
    const closing = new Promise<void>((r) => (s ? s.close(() => r()) : r()));
    for (const sock of sockets) sock.destroy();
    sockets.clear();
    await closing;
  }

  await listen();
  return {
    get port() {
      return port;
    },
    get connections() {
      return sockets.size / 2;
    },
    get accepted() {
      return accepted;
    },
    get up() {
      return server !== null;
    },
    cut,
    async restore() {
      if (server) return;
      // The port may linger for a moment after close on a busy machine.
      for (let i = 0; ; i++) {
        try {
          await listen();
          return;
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code !== "EADDRINUSE" || i > 50) throw e;
          await new Promise((r) => setTimeout(r, 100));
        }
      }
    },
    close: cut,
  };
}
