/**
 * The dashboard role: one HTTP server for operators and their tools.
 *
 * - `/admin/queues`: Bull Board over every BullMQ queue, behind HTTP Basic
 *   auth (`dashboard.user` / `dashboard.password`). Without a password the
 *   role refuses to start: an open board can retry and delete jobs.
 * - `GET /health`: 200 `{status:"ok", checks}` when Redis, MySQL, RabbitMQ
 *   and every chain's node answer, else 503 naming what is down.
 * - `GET /metrics`: Prometheus text of this process's registry, with the
 *   gateway-wide gauges (queue depths, outbox, pending confirmations, chain
 *   head/lag, dependencies up) recomputed on each scrape.
 *
 * /health and /metrics are unauthenticated, as probes and scrapers expect;
 * they reveal no URLs or secrets. Bind the dashboard to a private interface
 * (default 127.0.0.1) or put it behind a proxy when exposing /admin/queues.
 *
 * @example
 * const dash = createDashboard({ config, db, redis, queues, logger, metrics });
 * await dash.start(); // dash.port is the bound port (config port 0 = ephemeral)
 */
import type { Server } from "node:http";
import express, { type NextFunction, type Request, type Response } from "express";
import { ConfigError } from "../../shared/config/load-config.ts";
import { basicAuth } from "./basic-auth.ts";
import { closeServer, listening } from "../../shared/runtime/http-listen.ts";
import { createBullBoardRouter } from "./bull-board.ts";
import { createHealth } from "./health.ts";
import { createGlobalGauges } from "./global-gauges.ts";
import type { RoleDeps } from "../../shared/runtime/role-deps.ts";

export interface DashboardDeps extends RoleDeps {
  /** per-check timeout for /health and the scrape-time gauges (default 2000 ms) */
  checkTimeoutMs?: number;
}

export const BOARD_PATH = "/admin/queues";

export function createDashboard(deps: DashboardDeps) {
  const { config } = deps;
  const { host, port: wantedPort, user, password } = config.dashboard;
  if (!password) {
    throw new ConfigError(
      "the dashboard needs a password: set dashboard.password in the config file or PAYMENT_DASHBOARD_PASSWORD in the environment (it will not serve an open dashboard)",
    );
  }
  const logger = deps.logger.child({ component: "dashboard" });
  const health = createHealth({ config, redis: deps.redis, logger, timeoutMs: deps.checkTimeoutMs });
  const gauges = createGlobalGauges({ ...deps, logger, health: health.check, timeoutMs: deps.checkTimeoutMs });

  const app = express();
  app.disable("x-powered-by");
  app.set("trust proxy", false);
  app.use((_req, res, next) => {
    res.set("X-Content-Type-Options", "nosniff");
    next();
  });

  app.get("/health", async (_req, res) => {
    const report = await health.check();
    res
      .status(report.status === "ok" ? 200 : 503)
      .set("Cache-Control", "no-store")
      .json({ status: report.status, ...(report.down.length ? { down: report.down } : {}), checks: report.checks });
  });

  app.get("/metrics", async (_req, res) => {
    await gauges.refresh();
    res.set("Content-Type", deps.metrics.registry.contentType).send(await deps.metrics.registry.metrics());
  });

  app.get("/", (_req, res) => res.redirect(BOARD_PATH));
  app.use(BOARD_PATH, basicAuth({ user, password }), (_req, res, next) => {
    res.set("Cache-Control", "no-store").set("X-Frame-Options", "DENY");
    next();
  });
  app.use(BOARD_PATH, createBullBoardRouter(deps.queues, { basePath: BOARD_PATH }));

  app.use((err: unknown, _req: Request, res: Response, _next: NextFunction) => {
    logger.error({ err: String(err) }, "dashboard: request failed");
    if (!res.headersSent) res.status(500).type("text/plain").send("internal error\n");
  });

  let server: Server | null = null;
  let boundPort = 0;

  return {
    app,
    /** the port actually bound (useful when the config says 0) */
    get port() {
      return boundPort;
    },
    async start() {
      if (server) return;
      const s = app.listen(wantedPort, host);
      boundPort = await listening(s, { host, port: wantedPort, portKey: "dashboard.port" });
      server = s;
      logger.info({ host, port: boundPort, board: BOARD_PATH }, "dashboard: listening");
    },
    async stop() {
      const s = server;
      if (!s) return;
      server = null;
      await closeServer(s);
      logger.info("dashboard: stopped");
    },
  };
}
