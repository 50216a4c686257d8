/**
 * A bare `GET /metrics` endpoint for a process that does not run the
 * dashboard (`metrics.port` in the config). Counters such as
 * payment_transfers_total live in the process that counts them, so when the
 * roles run as separate processes (docker compose, --scale) Prometheus must
 * scrape each of them and sum; the gateway-wide gauges come from the
 * dashboard alone, so they are not repeated here.
 *
 * Unauthenticated like the dashboard's /metrics: bind it to a private
 * interface.
 */
import { createServer, type Server } from "node:http";
import { closeServer, listening } from "./http-listen.ts";
import type { Logger } from "../logger.ts";
import type { Metrics } from "../metrics.ts";

export function createMetricsServer(deps: { metrics: Metrics; logger: Logger; host: string; port: number }) {
  let server: Server | null = null;
  let boundPort = 0;
  return {
    get port() {
      return boundPort;
    },
    async start() {
      if (server) return;
      const s = createServer((req, res) => {
        if (req.method !== "GET" || (req.url ?? "").split("?")[0] !== "/metrics") {
          res.writeHead(404, { "content-type": "text/plain" }).end("not found\n");
          return;
        }
        deps.metrics.registry.metrics().then(
          (text) => res.writeHead(200, { "content-type": deps.metrics.registry.contentType }).end(text),
          (err: unknown) => {
            deps.logger.error({ err: String(err) }, "metrics: collection failed");
            res.writeHead(500, { "content-type": "text/plain" }).end("internal error\n");
          },
        );
      });
      s.listen(deps.port, deps.host);
      boundPort = await listening(s, { host: deps.host, port: deps.port, portKey: "metrics.port" });
      server = s;
      deps.logger.info({ host: deps.host, port: boundPort }, "metrics: listening");
    },
    async stop() {
      const s = server;
      if (!s) return;
      server = null;
      await closeServer(s);
    },
  };
}
