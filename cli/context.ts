/**
 * What every `payment` subcommand shares: where its configuration comes
 * from, the exit-code convention, the checks of the arguments an operator
 * types, and `runCli`, which opens the database and queues for a command
 * body and turns an expected failure into one line on stderr.
 *
 * Exit codes, the same for every command (scripts and cron rely on them):
 *   0  done (including "nothing to do")
 *   1  failed, or found what the command looks for: differences
 *      (reconcile), nothing recorded (history), nothing to act on
 *   2  bad usage: unknown command or option, a malformed argument, no or
 *      an invalid configuration, a missing secret
 */
import path from "node:path";
import { existsSync, readFileSync } from "node:fs";
import { ConfigError, loadConfig, type Config } from "../shared/config/load-config.ts";
import { loadSecrets, type Secrets } from "../shared/config/secrets.ts";
import { createDb, type Db } from "../shared/adapters/db/client.ts";
import { createRedisFactory, closeRedis } from "../shared/adapters/redis.ts";
import { outboxChannel } from "../shared/adapters/db/outbox.ts";
import { createQueues, type Queues } from "../shared/jobs/registry.ts";
import { isAddress, isId } from "../shared/domain/limits.ts";
import { fromRoot } from "../shared/paths.ts";

export const EXIT = { done: 0, failed: 1, usage: 2 } as const;

export const EXIT_HELP = `
Exit status: 0 done; 1 failed, or found what it looks for (differences for
reconcile, nothing recorded for history); 2 bad usage (unknown command or
option, malformed argument, no or invalid configuration, missing secret).`;

export const CONFIG_OPTION_HELP = "configuration file (default: $PAYMENT_CONFIG, else the dev system's .dev/config.json)";

/** An expected failure: one line on stderr, exit 1. */
export class CliError extends Error {
  override name = "CliError";
  readonly exitCode: number = EXIT.failed;
}

/** The operator typed something that cannot be right: exit 2. */
export class UsageError extends CliError {
  override name = "UsageError";
  override readonly exitCode: number = EXIT.usage;
}

/**
 * Name of the dev system (`payment dev`): its Redis key prefix and the
 * prefix of its RabbitMQ queues and exchange, so a dev gateway and a real
 * one on the same Redis and broker never share a key or a queue.
 */
export const DEV_PREFIX = "payment-dev";

/** Where `payment dev` keeps its config and dev keys: `.dev/` of the checkout. */
export const DEV_DIR = process.env.PAYMENT_DEV_DIR ? path.resolve(process.env.PAYMENT_DEV_DIR) : fromRoot(".dev");

export interface ConfigChoice {
  /** the file to read; undefined: environment variables only */
  file: string | undefined;
  source: "--config" | "PAYMENT_CONFIG" | "dev" | "environment";
}

/**
 * Which configuration a command uses: `--config`, else `PAYMENT_CONFIG`,
 * else the dev system's (`.dev/config.json`, written by `npm run dev` in
 * this checkout), else none (the PAYMENT__* environment variables alone).
 */
export function chooseConfig(opts: { file?: string | undefined; env?: NodeJS.ProcessEnv; devDir?: string }): ConfigChoice {
  const env = opts.env ?? process.env;
  if (opts.file) return { file: opts.file, source: "--config" };
  if (env.PAYMENT_CONFIG) return { file: env.PAYMENT_CONFIG, source: "PAYMENT_CONFIG" };
  const dev = path.join(opts.devDir ?? DEV_DIR, "config.json");
  if (existsSync(dev)) return { file: dev, source: "dev" };
  return { file: undefined, source: "environment" };
}

const NO_CONFIG =
  "no configuration found: give one with --config <file> or PAYMENT_CONFIG=<file>" +
  " (in a checkout, `npm run dev` writes the dev system's to .dev/config.json, which is then used by default)";

function describeChoice(choice: ConfigChoice): string {
  const shown = choice.file ? path.relative(process.cwd(), choice.file) || choice.file : "";
  const where = shown.startsWith("..") ? choice.file! : shown;
  switch (choice.source) {
    case "--config":
      return `configuration ${where} (--config)`;
    case "PAYMENT_CONFIG":
      return `configuration ${where} (PAYMENT_CONFIG)`;
    case "dev":
      return `configuration ${where}: the dev system's (\`npm run dev\`); --config or PAYMENT_CONFIG for another`;
    case "environment":
      return "no configuration file: configuration from the PAYMENT__* environment variables";
  }
}

/**
 * The dev system's secrets, as `payment dev` keeps them in its directory,
 * for what the environment does not set: with the dev configuration an
 * operator command (`wallet create`, `start --role bridge`) then works as
 * written, without copying dev keys into the shell. Never for any other
 * configuration.
 */
function withDevSecrets(env: NodeJS.ProcessEnv, devDir: string): { env: NodeJS.ProcessEnv; used: boolean } {
  const out = { ...env };
  let used = false;
  const file = (name: string) => {
    const f = path.join(devDir, name);
    return existsSync(f) ? f : undefined;
  };
  const master = file("master.key");
  if (!env.PAYMENT_MASTER_KEY && !env.PAYMENT_MASTER_KEY_FILE && master) [out.PAYMENT_MASTER_KEY_FILE, used] = [master, true];
  const key = file("communication.key");
  if (!env.PAYMENT_KEY && !env.PAYMENT_KEY_FILE && key) [out.PAYMENT_KEY_FILE, used] = [key, true];
  const password = file("dashboard.password");
  if (!env.PAYMENT_DASHBOARD_PASSWORD && password) [out.PAYMENT_DASHBOARD_PASSWORD, used] = [readFileSync(password, "utf8").trim(), true];
  return { env: out, used };
}

export interface CliConfig {
  config: Config;
  /** where secrets are read from (loadSecrets): the process's, plus the dev keys with the dev configuration */
  env: NodeJS.ProcessEnv;
}

/**
 * Find, load and validate the configuration, saying on stderr which one is
 * used (stdout stays the command's output). Throws a ConfigError that says
 * how to give one when there is none.
 */
export function loadCliConfig(
  file: string | undefined,
  opts: { env?: NodeJS.ProcessEnv; devDir?: string; say?: (line: string) => void } = {},
): CliConfig {
  const devDir = opts.devDir ?? DEV_DIR;
  const choice = chooseConfig({ file, env: opts.env ?? process.env, devDir });
  const say = opts.say ?? ((line: string) => process.stderr.write(`payment: ${line}\n`));
  if (choice.source === "environment") {
    const env = opts.env ?? process.env;
    if (!Object.keys(env).some((k) => k.startsWith("PAYMENT__"))) throw new ConfigError(NO_CONFIG);
    try {
      const config = loadConfig({ env });
      say(describeChoice(choice));
      return { config, env };
    } catch (e) {
      if (e instanceof ConfigError) throw new ConfigError(`${NO_CONFIG}\nand the PAYMENT__* environment variables alone are not a complete one: ${e.message}`);
      throw e;
    }
  }
  const { env, used } = choice.source === "dev" ? withDevSecrets(opts.env ?? process.env, devDir) : { env: opts.env ?? process.env, used: false };
  say(used ? describeChoice(choice).replace("the dev system's", "the dev system's, with its keys") : describeChoice(choice));
  return { config: loadConfig({ file: choice.file, env }), env };
}

/** A 0x address (any case), lowercased; anything else is a usage error naming `what`. */
export function parseAddress(text: string, what = "address"): string {
  const s = text.trim();
  if (!isAddress(s)) throw new UsageError(`${what} ${JSON.stringify(text)} is not an address (0x followed by 40 hex digits)`);
  return s.toLowerCase();
}

/** A queue_id or order_id as requests carry them (1-128 printable ASCII characters). */
export function parseRequestId(text: string, what = "queue_id"): string {
  if (!isId(text)) throw new UsageError(`${what} ${JSON.stringify(text)} is not an id (1-128 printable ASCII characters, no leading or trailing space)`);
  return text;
}

/** One of a fixed list (a wallet kind, a transfer kind...). */
export function parseChoice<T extends string>(text: string, allowed: readonly T[], what: string): T {
  if (!(allowed as readonly string[]).includes(text)) throw new UsageError(`${what} must be one of ${allowed.join(", ")} (not ${JSON.stringify(text)})`);
  return text as T;
}

/** A chain key of the configuration. */
export function parseChain(config: Pick<Config, "chains">, chain: string): string {
  if (!config.chains[chain]) throw new UsageError(`unknown chain ${JSON.stringify(chain)} (configured: ${Object.keys(config.chains).join(", ")})`);
  return chain;
}

/**
 * What `history` and `notify redeliver` are about: an address or a queue_id.
 * `0x` and hex that is not 40 digits long is most likely a mistyped address,
 * but a business may use such queue_ids too: `hexNotAddress` lets the
 * command refuse it as malformed when nothing has that queue_id.
 */
export type Subject = { type: "address"; address: string } | { type: "queue_id"; queueId: string; hexNotAddress?: boolean };

export function parseSubject(arg: string): Subject {
  const s = arg.trim();
  if (isAddress(s)) return { type: "address", address: s.toLowerCase() };
  const queueId = parseRequestId(arg, "queue_id or address");
  return /^0x[0-9a-f]*$/i.test(queueId) ? { type: "queue_id", queueId, hexNotAddress: true } : { type: "queue_id", queueId };
}

/** For a subject nothing is recorded for: a usage error when it was probably a mistyped address. */
export function nothingFor(subject: Subject, what: string): CliError {
  if (subject.type === "queue_id" && subject.hexNotAddress) {
    return new UsageError(`${subject.queueId} is not an address (0x followed by 40 hex digits), and ${what} for queue_id ${subject.queueId}`);
  }
  return new CliError(`${what} for ${subject.type === "address" ? `address ${subject.address}` : `queue_id ${subject.queueId}`}`);
}

export interface CliContext {
  config: Config;
  /** the secrets this command may need (read when asked: most need none) */
  secrets(): Secrets;
  db: Db;
  queues: Queues;
  /** publish an outbox wake-up for a running bridge */
  wakeOutbox(): Promise<void>;
  close(): Promise<void>;
}

export function openCli(configFile: string | undefined): CliContext {
  const { config, env } = loadCliConfig(configFile);
  const db = createDb({ url: config.mysql_url, poolSize: 2 });
  const redis = createRedisFactory(config);
  let queues: Queues | null = null;
  return {
    config,
    secrets: () => loadSecrets({ env }),
    db,
    get queues() {
      return (queues ??= createQueues(redis));
    },
    async wakeOutbox() {
      const r = redis.create("cli-wake");
      try {
        await r.publish(outboxChannel(redis.prefix), "1");
      } finally {
        await closeRedis(r);
      }
    },
    async close() {
      await queues?.close().catch(() => undefined);
      await db.close();
    },
  };
}

/** Report an expected failure as one line on stderr and set its exit code; true if it was one. */
export function reportCliError(e: unknown): boolean {
  if (!(e instanceof CliError)) return false;
  console.error(`payment: ${e.message}`);
  process.exitCode = e.exitCode;
  return true;
}

/** Run a command body with the config, database and queues open; expected failures become one line on stderr and their exit code. */
export async function runCli(configFile: string | undefined, body: (ctx: CliContext) => Promise<void>): Promise<void> {
  const ctx = openCli(configFile);
  try {
    await body(ctx);
  } catch (e) {
    if (!reportCliError(e)) throw e;
  } finally {
    await ctx.close();
  }
}
