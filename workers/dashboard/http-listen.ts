/**
 * Start and stop of the role's HTTP servers (dashboard, bare metrics).
 */
import type { Server } from "node:http";
import type { AddressInfo } from "node:net";

/** Wait until `server` listens (rejects on e.g. EADDRINUSE); the port actually bound. */
export async function listening(server: Server): Promise<number> {
  await new Promise<void>((resolve, reject) => {
    server.once("listening", resolve);
    server.once("error", reject);
  });
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
