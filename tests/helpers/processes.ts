/**
 * Gateway processes for fault tests, started the way production starts them:
 * `node bin/payment.mjs start --config <file> --role <r>...`, secrets in the
 * environment (PAYMENT_KEY, PAYMENT_MASTER_KEY; never argv), each process's
 * stdout and stderr written straight to its own log file (so a SIGKILL loses
 * nothing already printed, and the secrets test can grep every byte any
 * process ever wrote). CLI commands run the same way and are logged too.
 *
 * Children are SIGKILLed if the test process exits without stopping them,
 * so a failed test never leaves workers running on the shared services.
 *
 * @example
 * const group = createProcessGroup({ configFile, secrets: { key, masterKey } });
 * const bridge = group.start("bridge", ["bridge"]);
 * await bridge.ready();
 * await bridge.kill(); // SIGKILL
 * await group.start("bridge", ["bridge"]).ready();
 */
import { spawn, type ChildProcess } from "node:child_process";
import { closeSync, mkdtempSync, openSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";

const BIN = path.resolve(import.meta.dirname, "../../bin/payment.mjs");
/** what `payment start` logs (info) once every role has started */
const READY_LINE = "payment gateway running";

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface ProcessSecrets {
  /** communication key (bridge) */
  key?: string;
  /** wallet master key (transfer-sender, wallet CLI) */
  masterKey?: Buffer;
}

export interface RoleProcess {
  /** unique within the group, e.g. "bridge.2" */
  name: string;
  roles: string[];
  pid: number;
  logFile: string;
  /** everything the process printed so far */
  output(): string;
  readonly alive: boolean;
  exited: Promise<Exit>;
  /** resolves once the process logged that every role started; rejects if it exits first */
  ready(timeoutMs?: number): Promise<void>;
  /** send `signal` (default SIGKILL) and wait for the exit */
  kill(signal?: NodeJS.Signals): Promise<Exit>;
  /** SIGTERM (drain), SIGKILL after `timeoutMs` */
  stop(timeoutMs?: number): Promise<Exit>;
}

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export interface ProcessGroup {
  logDir: string;
  configFile: string;
  start(base: string, roles: string[], opts?: { failpoints?: string; logLevel?: string; env?: Record<string, string> }): RoleProcess;
  /** every process started so far (dead ones too) */
  processes(): RoleProcess[];
  /** run `payment <args> --config <file>` to completion */
  cli(args: string[], opts?: { stdin?: string; env?: Record<string, string> }): Promise<CliResult>;
  /** the text of every log file in logDir (processes and CLI runs) */
  logs(): { file: string; text: string }[];
  stopAll(): Promise<void>;
}

/** Write a config (a parsed Config or raw input) as a JSON file for child processes. */
export function writeConfigFile(config: object, dir?: string): string {
  const d = dir ?? mkdtempSync(path.join(tmpdir(), "payment-config-"));
  const file = path.join(d, "config.json");
  // `chains` is derived by parseConfig, not a config key
  const { chains: _chains, ...raw } = config as Record<string, unknown>;
  writeFileSync(file, JSON.stringify(raw, null, 2));
  return file;
}

const live = new Set<ChildProcess>();
let exitHook = false;
function killOrphansOnExit() {
  if (exitHook) return;
  exitHook = true;
  process.on("exit", () => {
    for (const c of live) {
      try {
        c.kill("SIGKILL");
      } catch {
        /* gone */
      }
    }
  });
}

export function createProcessGroup(opts: { configFile: string; secrets: ProcessSecrets; logDir?: string; logLevel?: string; env?: Record<string, string> }): ProcessGroup {
  killOrphansOnExit();
  const logDir = opts.logDir ?? mkdtempSync(path.join(tmpdir(), "payment-procs-"));
  const all: RoleProcess[] = [];
  const counters = new Map<string, number>();
  let cliRuns = 0;

  const baseEnv = (extra?: Record<string, string>): NodeJS.ProcessEnv => {
    // none of the parent's own gateway settings leak into a child
    const env: NodeJS.ProcessEnv = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("PAYMENT_")));
    if (opts.secrets.key) env.PAYMENT_KEY = opts.secrets.key;
    if (opts.secrets.masterKey) env.PAYMENT_MASTER_KEY = opts.secrets.masterKey.toString("hex");
    return { ...env, ...opts.env, ...extra };
  };

  function start(base: string, roles: string[], o: { failpoints?: string; logLevel?: string; env?: Record<string, string> } = {}): RoleProcess {
    const n = (counters.get(base) ?? 0) + 1;
    counters.set(base, n);
    const name = `${base}.${n}`;
    const logFile = path.join(logDir, `${name}.log`);
    const fd = openSync(logFile, "a");
    const args = [BIN, "start", "--config", opts.configFile, ...roles.flatMap((r) => ["--role", r])];
    let child: ChildProcess;
    try {
      child = spawn(process.execPath, args, {
        env: baseEnv({
          PAYMENT__LOG__LEVEL: o.logLevel ?? opts.logLevel ?? "info",
          ...(o.failpoints ? { PAYMENT_FAILPOINTS: o.failpoints } : {}),
          ...o.env,
        }),
        stdio: ["ignore", fd, fd],
      });
    } finally {
      closeSync(fd);
    }
    live.add(child);
    const exited = new Promise<Exit>((resolve) =>
      child.on("exit", (code, signal) => {
        live.delete(child);
        resolve({ code, signal });
      }),
    );
    const output = () => readFileSync(logFile, "utf8");
    const alive = () => child.exitCode === null && child.signalCode === null;
    const proc: RoleProcess = {
      name,
      roles,
      pid: child.pid!,
      logFile,
      output,
      get alive() {
        return alive();
      },
      exited,
      async ready(timeoutMs = 60_000) {
        const end = Date.now() + timeoutMs;
        for (;;) {
          if (output().includes(READY_LINE)) return;
          if (!alive()) throw new Error(`${name} exited before it was ready:\n${output().slice(-3000)}`);
          if (Date.now() > end) throw new Error(`${name} not ready after ${timeoutMs} ms:\n${output().slice(-3000)}`);
          await new Promise((r) => setTimeout(r, 100));
        }
      },
      async kill(signal: NodeJS.Signals = "SIGKILL") {
        if (alive()) child.kill(signal);
        return exited;
      },
      async stop(timeoutMs = 20_000) {
        if (!alive()) return exited;
        child.kill("SIGTERM");
        const t = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
        const e = await exited;
        clearTimeout(t);
        return e;
      },
    };
    all.push(proc);
    return proc;
  }

  function cli(args: string[], o: { stdin?: string; env?: Record<string, string> } = {}): Promise<CliResult> {
    const logFile = path.join(logDir, `cli.${++cliRuns}.log`);
    return new Promise((resolve, reject) => {
      const child = spawn(process.execPath, [BIN, ...args, "--config", opts.configFile], {
        env: baseEnv({ PAYMENT__LOG__LEVEL: opts.logLevel ?? "info", ...o.env }),
        stdio: ["pipe", "pipe", "pipe"],
      });
      live.add(child);
      let stdout = "";
      let stderr = "";
      child.stdout!.on("data", (d) => (stdout += d));
      child.stderr!.on("data", (d) => (stderr += d));
      child.on("error", reject);
      child.on("close", (code) => {
        live.delete(child);
        writeFileSync(logFile, `$ payment ${args.join(" ")}\n--- stdout\n${stdout}\n--- stderr\n${stderr}\n--- exit ${code}\n`);
        resolve({ code, stdout, stderr });
      });
      child.stdin!.end(o.stdin ?? "");
    });
  }

  return {
    logDir,
    configFile: opts.configFile,
    start,
    processes: () => [...all],
    cli,
    logs: () =>
      readdirSync(logDir)
        .filter((f) => f.endsWith(".log"))
        .map((f) => ({ file: path.join(logDir, f), text: readFileSync(path.join(logDir, f), "utf8") })),
    async stopAll() {
      await Promise.all(all.map((p) => p.stop()));
    },
  };
}
