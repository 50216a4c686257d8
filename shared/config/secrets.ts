/**
 * Secrets, read from the environment or files, never from the config file or
 * argv (except the communication key's --key, kept for the old system's
 * users). They are held in closures, never logged (see shared/logger.ts
 * redaction) and never put into job payloads or notifications.
 */
import { readFileSync } from "node:fs";
import { ConfigError } from "./load-config.ts";

export interface Secrets {
  /** shared HMAC key with the business system (bridge only) */
  communicationKey?: string;
  /** 32-byte AES-256-GCM key encrypting wallet keys (signers only) */
  masterKey?: Buffer;
}

function fromFile(path: string, what: string): string {
  try {
    return readFileSync(path, "utf8").trim();
  } catch (e) {
    throw new ConfigError(`cannot read ${what} file ${path}: ${(e as Error).message}`);
  }
}

/** Parse a 64-hex-char master key; the error names the variable, never the value. */
export function parseMasterKey(text: string, source: string): Buffer {
  const hex = text.trim().replace(/^0x/, "");
  if (!/^[0-9a-fA-F]{64}$/.test(hex)) throw new ConfigError(`${source}: must be 64 hex characters (32 bytes)`);
  return Buffer.from(hex, "hex");
}

/**
 * What to tell an operator who passed a secret on the command line: argv is
 * readable by every user of the machine (ps, /proc/<pid>/cmdline) and kept in
 * shell history. `--key` stays for the old system's users, with this warning.
 */
export function argvSecretWarnings(opts: { key?: string | undefined }): string[] {
  if (opts.key === undefined) return [];
  return [
    "--key puts the communication key in this process's command line, readable by every user of the machine (ps, /proc) and kept in shell history: set PAYMENT_KEY or PAYMENT_KEY_FILE instead",
  ];
}

export function loadSecrets(opts: { key?: string | undefined; env?: NodeJS.ProcessEnv } = {}): Secrets {
  const env = opts.env ?? process.env;
  const secrets: Secrets = {};
  const key = opts.key ?? env.PAYMENT_KEY ?? (env.PAYMENT_KEY_FILE ? fromFile(env.PAYMENT_KEY_FILE, "PAYMENT_KEY_FILE") : undefined);
  if (key !== undefined) {
    if (key.length < 16) throw new ConfigError("communication key: must be at least 16 characters");
    secrets.communicationKey = key;
  }
  if (env.PAYMENT_MASTER_KEY) secrets.masterKey = parseMasterKey(env.PAYMENT_MASTER_KEY, "PAYMENT_MASTER_KEY");
  else if (env.PAYMENT_MASTER_KEY_FILE) {
    secrets.masterKey = parseMasterKey(fromFile(env.PAYMENT_MASTER_KEY_FILE, "PAYMENT_MASTER_KEY_FILE"), "PAYMENT_MASTER_KEY_FILE");
  }
  return secrets;
}
