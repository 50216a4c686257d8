/**
 * CPU used by each process of the system during a measured window (Linux
 * /proc), as a share of one core: this process (the roles under test),
 * anvil, MariaDB, RabbitMQ and Redis. On a 2-core machine the sum says
 * whether a benchmark is CPU-bound and who spends it. The servers are shared,
 * so on a busy machine their share includes other users' work.
 */
import { readdirSync, readFileSync } from "node:fs";

const SERVERS: Record<string, string> = { mariadbd: "mariadb", mysqld: "mariadb", "beam.smp": "rabbitmq", "redis-server": "redis" };
const TICK_MS = 10; // USER_HZ is 100 on Linux

function ticks(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return Number(fields[11]) + Number(fields[12]); // utime + stime
  } catch {
    return NaN;
  }
}

function serverPids(): Map<number, string> {
  const out = new Map<number, string>();
  for (const d of readdirSync("/proc")) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const comm = readFileSync(`/proc/${d}/comm`, "utf8").trim();
      if (SERVERS[comm]) out.set(Number(d), SERVERS[comm]);
    } catch {
      /* gone */
    }
  }
  return out;
}

export interface CpuWindow {
  /** per process: percent of one core over the window, e.g. { "this process": 92, mariadb: 60 } */
  stop(): Record<string, number>;
}

/** Start measuring; `extra` names more processes (e.g. anvil's pid). */
export function cpuWindow(extra: Record<string, number | undefined> = {}): CpuWindow {
  if (process.platform !== "linux") return { stop: () => ({}) };
  const pids = new Map<number, string>([[process.pid, "this process"], ...serverPids()]);
  for (const [name, pid] of Object.entries(extra)) if (pid) pids.set(pid, name);
  const t0 = performance.now();
  const before = new Map([...pids.keys()].map((p) => [p, ticks(p)]));
  return {
    stop() {
      const ms = performance.now() - t0;
      const out: Record<string, number> = {};
      for (const [pid, name] of pids) {
        const d = ticks(pid) - before.get(pid)!;
        if (Number.isFinite(d)) out[name] = (out[name] ?? 0) + Math.round((100 * d * TICK_MS) / ms);
      }
      return out;
    },
  };
}

/** "this process 92%, mariadb 60%, ..." */
export const describeCpu = (c: Record<string, number>) =>
  Object.entries(c)
    .sort((a, b) => b[1] - a[1])
    .map(([k, v]) => `${k} ${v}%`)
    .join(", ");
