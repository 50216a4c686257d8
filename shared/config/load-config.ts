/**
 * Loads the configuration once: JSON file (path from --config or
 * PAYMENT_CONFIG), then environment overrides, then zod validation. A bad
 * value stops the process with a message naming the key. The result is
 * deeply frozen and passed down; nothing else reads process.env for config.
 *
 * Environment overrides: `PAYMENT__A__B=value` sets key path a.b (matched
 * case-insensitively to keys already in the file, lowercased otherwise except
 * under maps of operator-chosen names such as `tokens`); the
 * value is read as JSON when it parses (numbers, booleans, arrays), else as
 * text. `PAYMENT_DASHBOARD_PASSWORD` sets dashboard.password.
 *
 * Secrets never live in the file: the communication key comes from --key,
 * PAYMENT_KEY or PAYMENT_KEY_FILE; the wallet master key from
 * PAYMENT_MASTER_KEY or PAYMENT_MASTER_KEY_FILE.
 */
import { readFileSync } from "node:fs";
import { z } from "zod";
import { configSchema, type ChainConfig, type RmqRoutes } from "./schema.ts";


type Parsed = z.output<typeof configSchema>;

export type Config = Readonly<
  Omit<Parsed, "rmq_config"> & {
    rmq_config: Parsed["rmq_config"] & RmqRoutes;
    /** every chain in `net`, with its key */
    chains: Readonly<Record<string, Readonly<ChainConfig & { key: string }>>>;
  }
>;

/** `rmq_config.sub_addr` as a list: one URL, or a cluster's nodes tried in turn. */
export function rabbitUrls(config: Pick<Config, "rmq_config">): string[] {
  const a = config.rmq_config.sub_addr;
  return Array.isArray(a) ? [...a] : [a];
}

export class ConfigError extends Error {
  override name = "ConfigError";
}

const ENV_PREFIX = "PAYMENT__";

/**
 * Maps whose keys are names the operator chose (token symbols, chain keys,
 * assets), not schema keys: a new key under them keeps its case, so
 * `PAYMENT__ETH_CONFIG__TOKENS__USDC__ADDRESS` adds token "USDC", not "usdc"
 * (requests name the symbol exactly).
 */
const NAMED_MAPS = new Set(["tokens", "evm_chains", "per_request_cap", "velocity_24h_per_wallet", "velocity_24h_total", "approval_threshold"]);

function setPath(target: Record<string, unknown>, path: string[], value: unknown): void {
  let node = target;
  let parent = "";
  path.forEach((raw, i) => {
    const existing = Object.keys(node).find((k) => k.toLowerCase() === raw.toLowerCase());
    const key = existing ?? (NAMED_MAPS.has(parent) ? raw : raw.toLowerCase());
    parent = key.toLowerCase();
    if (i === path.length - 1) {
      node[key] = value;
      return;
    }
    const next = node[key];
    if (typeof next !== "object" || next === null || Array.isArray(next)) node[key] = {};
    node = node[key] as Record<string, unknown>;
  });
}

function envValue(text: string): unknown {
  try {
    const v: unknown = JSON.parse(text);
    // A number a double cannot hold exactly (an amount like
    // "0.30000000000000001" or "1000000000000000000000") stays text, so
    // decimal amounts never pass through a float; numeric keys then report
    // the text at its key path instead of taking a silently rounded value.
    if (typeof v === "number" && String(v) !== text.trim()) return text;
    return v;
  } catch {
    return text;
  }
}

/** Apply PAYMENT__* overrides to a raw config object (a copy is returned). */
export function applyEnvOverrides(raw: Record<string, unknown>, env: NodeJS.ProcessEnv): Record<string, unknown> {
  const out = structuredClone(raw);
  for (const [name, value] of Object.entries(env)) {
    if (!name.startsWith(ENV_PREFIX) || value === undefined) continue;
    const path = name.slice(ENV_PREFIX.length).split("__").filter(Boolean);
    if (path.length > 0) setPath(out, path, envValue(value));
  }
  if (env.PAYMENT_DASHBOARD_PASSWORD) setPath(out, ["dashboard", "password"], env.PAYMENT_DASHBOARD_PASSWORD);
  return out;
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === "object") {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}

function formatIssues(error: z.ZodError): string {
  return error.issues.map((i) => `  ${i.path.join(".") || "(root)"}: ${i.message}`).join("\n");
}

interface SchemaDef {
  type: string;
  innerType?: { _zod: { def: SchemaDef } };
  in?: { _zod: { def: SchemaDef } };
  shape?: Record<string, { _zod: { def: SchemaDef } }>;
  valueType?: { _zod: { def: SchemaDef } };
  element?: { _zod: { def: SchemaDef } };
}

/**
 * Keys of `input` the schema does not know, as dotted paths. zod drops them
 * silently; a misspelt key (`confim_height`) would leave its setting at the
 * default without a word, so the process says which ones it ignored.
 */
export function unknownKeys(input: unknown, def: SchemaDef = (configSchema as unknown as { _zod: { def: SchemaDef } })._zod.def, path = ""): string[] {
  const inner = def.innerType ?? def.in;
  if (inner) return unknownKeys(input, inner._zod.def, path);
  if (typeof input !== "object" || input === null) return [];
  const at = (k: string | number) => (path ? `${path}.${k}` : String(k));
  if (def.type === "array" && def.element && Array.isArray(input)) return input.flatMap((v, i) => unknownKeys(v, def.element!._zod.def, at(i)));
  if (Array.isArray(input)) return [];
  const entries = Object.entries(input);
  if (def.type === "record" && def.valueType) return entries.flatMap(([k, v]) => unknownKeys(v, def.valueType!._zod.def, at(k)));
  if (def.type !== "object" || !def.shape) return [];
  const shape = def.shape;
  return entries.flatMap(([k, v]) => (k in shape ? unknownKeys(v, shape[k]!._zod.def, at(k)) : [at(k)]));
}

const warningsOf = new WeakMap<Config, string[]>();

/** What loading the config noticed without refusing it (unknown keys), for the process to log. */
export function configWarnings(config: Config): string[] {
  return warningsOf.get(config) ?? [];
}

/** Validate a raw object (file content with overrides applied). */
export function parseConfig(raw: unknown): Config {
  // zod says only "Invalid input" for a missing key of a union type (every
  // string field takes a number too); name the real problem.
  const result = configSchema.safeParse(raw, {
    error: (issue) => (issue.input === undefined ? "required" : undefined),
  });
  if (!result.success) throw new ConfigError(`invalid configuration:\n${formatIssues(result.error)}`);
  const cfg = result.data;
  const chains: Record<string, ChainConfig & { key: string }> = {};
  for (const key of cfg.net) {
    const chain = key === "ETH" ? (cfg.eth_config ?? cfg.evm_chains[key]) : cfg.evm_chains[key];
    if (!chain) {
      const where = key === "ETH" ? "eth_config" : `evm_chains.${key}`;
      throw new ConfigError(`invalid configuration:\n  ${where}: required because net lists "${key}"`);
    }
    for (const symbol of Object.keys(chain.tokens)) {
      if (symbol === chain.native_symbol) {
        throw new ConfigError(`invalid configuration:\n  ${key}.tokens.${symbol}: clashes with the native symbol`);
      }
    }
    chains[key] = { ...chain, key };
  }
  const config = deepFreeze({ ...cfg, rmq_config: cfg.rmq_config as Config["rmq_config"], chains }) as Config;
  const unknown = unknownKeys(raw);
  if (unknown.length > 0) warningsOf.set(config, [`unknown configuration key(s) ignored: ${unknown.join(", ")}`]);
  return config;
}

/** Read the file (if any), apply env overrides, validate. */
export function loadConfig(opts: { file?: string | undefined; env?: NodeJS.ProcessEnv } = {}): Config {
  const env = opts.env ?? process.env;
  const file = opts.file ?? env.PAYMENT_CONFIG;
  let raw: Record<string, unknown> = {};
  if (file) {
    let text: string;
    try {
      text = readFileSync(file, "utf8");
    } catch (e) {
      throw new ConfigError(`cannot read config file ${file}: ${(e as Error).message}`);
    }
    try {
      raw = JSON.parse(text) as Record<string, unknown>;
    } catch (e) {
      throw new ConfigError(`config file ${file} is not valid JSON: ${(e as Error).message}`);
    }
    if (typeof raw !== "object" || raw === null || Array.isArray(raw)) throw new ConfigError(`config file ${file} must hold a JSON object`);
  }
  return parseConfig(applyEnvOverrides(raw, env));
}
