/**
 * Start and stop of the role's HTTP servers (dashboard, bare metrics).
 */
import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import { ConfigError } from "../../shared/config/load-config.ts";

/**
 * Wait until `server` listens; the port actually bound. A port another
 * process holds (or one not allowed) is a configuration error naming
 * `portKey`, the setting that chooses it, instead of an EADDRINUSE stack.
 */
export async function listening(server: Server, where: { host: string; port: number; portKey: string }): Promise<number> {
  try {
    await new Promise<void>((resolve, reject) => {
      server.once("listening", resolve);
      server.once("error", reject);
    });
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === "EADDRINUSE" || code === "EACCES") {
      const why = code === "EADDRINUSE" ? "another process listens there" : "not allowed";
      const envName = `PAYMENT__${where.portKey.toUpperCase().replaceAll(".", "__")}`;
      throw new ConfigError(`${where.portKey}: cannot listen on ${where.host}:${where.port} (${why}); choose another port in the config or with ${envName} (0 picks a free one)`, { cause: e });
    }
    throw e;
  }
  return (server.address() as AddressInfo).port;
}

/**
 * Stop accepting and resolve when open requests are done. Idle keep-alive
 * connections (Bull Board's UI and Prometheus keep them) are closed at once,
 * busy ones after `forceAfterMs`, so a drain never waits on a browser tab.
 */
export function closeServer(server: Server, forceAfterMs = 2000): Promise<void> {
  return new Promise<void>((resolve) => {
    server.close(() => resolve());
    server.closeIdleConnections();
    setTimeout(() => server.closeAllConnections(), forceAfterMs).unref();
  });
}
