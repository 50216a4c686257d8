/**
 * The roles one process can run (`payment start --role R`), each built from
 * the process runtime. `all` runs every role in one process.
 *
 * Each factory imports its role's code when it is called, so a process loads
 * only the roles it starts (a chain-watch process never loads express, Bull
 * Board or the signer): that is most of its resident memory at rest.
 */
import { ConfigError } from "../shared/config/load-config.ts";
import type { Runtime, Service } from "./runtime.ts";

export const ROLES = ["bridge", "chain-watch", "transfer-sender", "confirmation", "dashboard"] as const;
export type Role = (typeof ROLES)[number];

type RoleFactory = (rt: Runtime) => Promise<Service>;

const factories: Partial<Record<Role, RoleFactory>> = {
  dashboard: async (rt) => {
    const { createDashboard } = await import("../workers/dashboard/main.ts");
    const dashboard = createDashboard(rt);
    return { name: "dashboard", start: dashboard.start, stop: dashboard.stop };
  },
  bridge: async (rt) => {
    if (!rt.secrets.communicationKey) throw new ConfigError("the bridge needs the communication key: set PAYMENT_KEY (or --key, PAYMENT_KEY_FILE)");
    const { createBridge } = await import("../bridge/main.ts");
    const bridge = createBridge({ ...rt, communicationKey: rt.secrets.communicationKey });
    return { name: "bridge", start: bridge.start, stop: bridge.stop };
  },
  "chain-watch": async (rt) => {
    const { createChainWatch } = await import("../workers/chain-watch/main.ts");
    const watch = createChainWatch(rt);
    return { name: "chain-watch", start: watch.start, stop: watch.stop };
  },
  "transfer-sender": async (rt) => {
    if (!rt.secrets.masterKey) throw new ConfigError("the transfer-sender needs the wallet master key: set PAYMENT_MASTER_KEY (or PAYMENT_MASTER_KEY_FILE)");
    const { createTransferSender } = await import("../workers/transfer-sender/main.ts");
    const sender = createTransferSender({ ...rt, masterKey: rt.secrets.masterKey });
    return { name: "transfer-sender", start: sender.start, stop: sender.stop };
  },
  confirmation: async (rt) => {
    const [{ createConfirmationWorker }, { createMaintenance }] = await Promise.all([
      import("../workers/confirmation/main.ts"),
      import("../workers/maintenance/main.ts"),
    ]);
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

/** Build the services of `roles`, importing only their code (in ROLES order, one at a time). */
export async function buildServices(rt: Runtime, roles: Role[]): Promise<Service[]> {
  const services: Service[] = [];
  for (const role of roles) {
    const factory = factories[role];
    if (!factory) throw new ConfigError(`role ${role} is not available in this build`);
    services.push(await factory(rt));
  }
  // A process without the dashboard can still expose its own counters.
  const { port, host } = rt.config.metrics;
  if (port !== undefined && !roles.includes("dashboard")) {
    const { createMetricsServer } = await import("../shared/runtime/metrics-server.ts");
    const server = createMetricsServer({ metrics: rt.metrics, logger: rt.logger, host, port });
    services.push({ name: "metrics", start: server.start, stop: server.stop });
  }
  return services;
}
