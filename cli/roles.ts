/**
 * The roles one process can run (`payment start --role R`), each built from
 * the process runtime. `all` runs every role in one process.
 */
import { ConfigError } from "../shared/config/load-config.ts";
import { createBridge } from "../bridge/main.ts";
import { createDashboard } from "../workers/dashboard/main.ts";
import { createMetricsServer } from "../workers/dashboard/metrics-server.ts";
import { createChainWatch } from "../workers/chain-watch/main.ts";
import { createConfirmationWorker } from "../workers/confirmation/main.ts";
import { createTransferSender } from "../workers/transfer-sender/main.ts";
import { createMaintenance } from "../workers/maintenance/main.ts";
import type { Runtime, Service } from "./runtime.ts";

export const ROLES = ["bridge", "chain-watch", "transfer-sender", "confirmation", "dashboard"] as const;
export type Role = (typeof ROLES)[number];

type RoleFactory = (rt: Runtime) => Service;

const factories: Partial<Record<Role, RoleFactory>> = {
  dashboard: (rt) => {
    const dashboard = createDashboard(rt);
    return { name: "dashboard", start: dashboard.start, stop: dashboard.stop };
  },
  bridge: (rt) => {
    if (!rt.secrets.communicationKey) throw new ConfigError("the bridge needs the communication key: set PAYMENT_KEY (or --key, PAYMENT_KEY_FILE)");
    const bridge = createBridge({ ...rt, communicationKey: rt.secrets.communicationKey });
    return { name: "bridge", start: bridge.start, stop: bridge.stop };
  },
  "chain-watch": (rt) => {
    const watch = createChainWatch(rt);
    return { name: "chain-watch", start: watch.start, stop: watch.stop };
  },
  "transfer-sender": (rt) => {
    if (!rt.secrets.masterKey) throw new ConfigError("the transfer-sender needs the wallet master key: set PAYMENT_MASTER_KEY (or PAYMENT_MASTER_KEY_FILE)");
    const sender = createTransferSender({ ...rt, masterKey: rt.secrets.masterKey });
    return { name: "transfer-sender", start: sender.start, stop: sender.stop };
  },
  confirmation: (rt) => {
    const worker = createConfirmationWorker(rt);
    // The reconciler rides with confirmation: both exist to finish what MySQL says is unfinished.
    const maintenance = createMaintenance({ ...rt, intervalMs: rt.config.workers.reconcile_interval_ms });
    return {
      name: "confirmation",
      start: async () => {
        await worker.start();
        await maintenance.start();
      },
      stop: async () => {
        await maintenance.stop();
        await worker.stop();
      },
    };
  },
};

/** Expand `all` and de-duplicate, keeping the start order of ROLES. */
export function resolveRoles(requested: string[]): Role[] {
  const wanted = new Set<string>();
  for (const r of requested.length ? requested : ["all"]) {
    if (r === "all") ROLES.forEach((x) => wanted.add(x));
    else if ((ROLES as readonly string[]).includes(r)) wanted.add(r);
    else throw new ConfigError(`unknown role "${r}" (roles: all, ${ROLES.join(", ")})`);
  }
  return ROLES.filter((r) => wanted.has(r));
}

export function buildServices(rt: Runtime, roles: Role[]): Service[] {
  const services = roles.map((role) => {
    const factory = factories[role];
    if (!factory) throw new ConfigError(`role ${role} is not available in this build`);
    return factory(rt);
  });
  // A process without the dashboard can still expose its own counters.
  const { port, host } = rt.config.metrics;
  if (port !== undefined && !roles.includes("dashboard")) {
    const server = createMetricsServer({ metrics: rt.metrics, logger: rt.logger, host, port });
    services.push({ name: "metrics", start: server.start, stop: server.stop });
  }
  return services;
}
