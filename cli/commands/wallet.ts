/**
 * `payment wallet import|create|list|rotate-master-key`: our wallets and
 * their keys at rest (AES-256-GCM under PAYMENT_MASTER_KEY, see
 * shared/adapters/keystore.ts).
 *
 *   import --kind deposit|hot|collection [--chain ETH] [--label L]
 *       the private key is read from stdin: never from argv (visible to
 *       every user in `ps`), never echoed when stdin is a terminal.
 *   create [--kind deposit] ...   a fresh random key; prints the address only
 *   list                          addresses, kinds, labels, key ids; no secrets
 *   rotate-master-key             re-encrypt every row from PAYMENT_MASTER_KEY
 *       to a new key (PAYMENT_NEW_MASTER_KEY, or stdin) in ONE transaction;
 *       refuses (changing nothing) when a row is under a key id it does not
 *       know, so no wallet is ever left unreadable.
 *
 * Nothing here prints or logs key material; errors name wallets and key ids.
 */
import type { Command } from "commander";
import type { Pool } from "mariadb";
import { Wallet } from "ethers";
import { parseMasterKey } from "../../shared/config/secrets.ts";
import { ConfigError } from "../../shared/config/load-config.ts";
import { affected, inTransaction, isDuplicateKey } from "../../shared/adapters/db/sql.ts";
import { insertAudit } from "../../shared/adapters/db/outbox.ts";
import { addressOfKey, encryptPrivateKey, masterKeyId, normalisePrivateKey, reencrypt, KeystoreError } from "../../shared/adapters/keystore.ts";
import { CliError, CONFIG_OPTION_HELP, parseChain, parseChoice, runCli, UsageError, type CliContext } from "../context.ts";
import { operatorName } from "./notify.ts";

export const WALLET_KINDS = ["deposit", "hot", "collection"] as const;
export type WalletKind = (typeof WALLET_KINDS)[number];

export interface WalletInfo {
  chain: string;
  address: string;
  kind: string;
  label: string | null;
  keyId: string;
  createdAt: Date;
}

/** Read a secret from stdin: without echo on a terminal, else the whole input. */
export async function readSecret(prompt: string): Promise<string> {
  const stdin = process.stdin;
  if (stdin.isTTY) {
    process.stderr.write(prompt);
    stdin.setRawMode(true);
    stdin.resume();
    stdin.setEncoding("utf8");
    return new Promise((resolve, reject) => {
      let text = "";
      const onData = (chunk: string) => {
        for (const ch of chunk) {
          if (ch === "\r" || ch === "\n" || ch === "\u0004") {
            done();
            resolve(text);
            return;
          }
          if (ch === "\u0003") {
            done();
            reject(new CliError("cancelled"));
            return;
          }
          if (ch === "\u007f" || ch === "\b") text = text.slice(0, -1);
          else text += ch;
        }
      };
      const done = () => {
        stdin.off("data", onData);
        stdin.setRawMode(false);
        stdin.pause();
        process.stderr.write("\n");
      };
      stdin.on("data", onData);
    });
  }
  const chunks: Buffer[] = [];
  for await (const chunk of stdin) chunks.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as string));
  return Buffer.concat(chunks).toString("utf8").trim();
}

export function requireMasterKey(ctx: Pick<CliContext, "secrets">): Buffer {
  const { masterKey } = ctx.secrets();
  if (!masterKey) throw new UsageError("set PAYMENT_MASTER_KEY (or PAYMENT_MASTER_KEY_FILE): wallet keys are encrypted under it");
  return masterKey;
}

export async function storeWallet(pool: Pool, masterKey: Buffer, w: { chain: string; kind: WalletKind; privateKey: string; label?: string | undefined; actor: string; event: string }): Promise<string> {
  let key: string;
  try {
    key = normalisePrivateKey(w.privateKey);
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  const address = addressOfKey(key);
  const enc = encryptPrivateKey(masterKey, key, address);
  try {
    await inTransaction(pool, async (conn) => {
      await conn.query("INSERT INTO wallet (chain, address, kind, encrypted_key, key_id, label, updated_at) VALUES (?, ?, ?, ?, ?, ?, NOW(3))", [
        w.chain,
        address,
        w.kind,
        enc.encryptedKey,
        enc.keyId,
        w.label ?? null,
      ]);
      await insertAudit(conn, [{ actor: w.actor, event: w.event, address, subjectType: "wallet", data: { chain: w.chain, kind: w.kind, key_id: enc.keyId, label: w.label ?? null } }]);
    });
  } catch (e) {
    if (isDuplicateKey(e)) throw new CliError(`wallet ${address} already exists on ${w.chain}`);
    throw e;
  }
  return address;
}

export async function listWallets(pool: Pool, filter: { chain?: string | undefined; kind?: string | undefined } = {}): Promise<WalletInfo[]> {
  const where: string[] = [];
  const args: string[] = [];
  if (filter.chain) {
    where.push("chain = ?");
    args.push(filter.chain);
  }
  if (filter.kind) {
    where.push("kind = ?");
    args.push(filter.kind);
  }
  const rows = (await pool.query(
    `SELECT chain, address, kind, label, key_id, created_at FROM wallet ${where.length ? `WHERE ${where.join(" AND ")}` : ""} ORDER BY chain, kind, id`,
    args,
  )) as { chain: string; address: string; kind: string; label: string | null; key_id: string; created_at: Date }[];
  return rows.map((r) => ({ chain: r.chain, address: r.address, kind: r.kind, label: r.label, keyId: r.key_id, createdAt: r.created_at }));
}

export interface RotationResult {
  fromKeyId: string;
  toKeyId: string;
  reencrypted: number;
  alreadyRotated: number;
}

/** Re-encrypt every wallet from `from` to `to`, all or nothing. */
export async function rotateMasterKey(pool: Pool, from: Buffer, to: Buffer, actor: string): Promise<RotationResult> {
  const fromKeyId = masterKeyId(from);
  const toKeyId = masterKeyId(to);
  if (fromKeyId === toKeyId) throw new UsageError("the new master key is the current one");
  return inTransaction(pool, async (conn) => {
    const rows = (await conn.query("SELECT id, chain, address, encrypted_key, key_id FROM wallet ORDER BY id FOR UPDATE")) as {
      id: number;
      chain: string;
      address: string;
      encrypted_key: string;
      key_id: string;
    }[];
    const unknown = rows.filter((r) => r.key_id !== fromKeyId && r.key_id !== toKeyId);
    if (unknown.length > 0) {
      const ids = [...new Set(unknown.map((r) => r.key_id))].join(", ");
      throw new CliError(`${unknown.length} wallet(s) are encrypted under master key id(s) ${ids}, neither the current (${fromKeyId}) nor the new one; nothing was changed`);
    }
    let reencrypted = 0;
    for (const r of rows) {
      if (r.key_id === toKeyId) continue;
      let next;
      try {
        next = reencrypt(from, to, { address: r.address, encryptedKey: r.encrypted_key, keyId: r.key_id });
      } catch (e) {
        if (e instanceof KeystoreError) throw new CliError(`${e.message}; nothing was changed`);
        throw e;
      }
      const res = (await conn.query("UPDATE wallet SET encrypted_key = ?, key_id = ?, updated_at = NOW(3) WHERE id = ? AND key_id = ?", [
        next.encryptedKey,
        next.keyId,
        r.id,
        fromKeyId,
      ]));
      if (affected(res) !== 1) throw new Error(`wallet ${r.address} changed during rotation`);
      reencrypted++;
    }
    await insertAudit(conn, [{ actor, event: "wallet.master_key_rotated", data: { from_key_id: fromKeyId, to_key_id: toKeyId, reencrypted, already_rotated: rows.length - reencrypted } }]);
    return { fromKeyId, toKeyId, reencrypted, alreadyRotated: rows.length - reencrypted };
  });
}

interface WalletKeyOpts {
  kind: string;
  chain: string;
  label?: string;
  config?: string;
}

/** Import or create: check the options and the master key before the key is read or made, then store it encrypted. */
function storeWithKey(opts: WalletKeyOpts, event: string, privateKeyOf: () => Promise<string>, report: (address: string) => void): Promise<void> {
  return runCli(opts.config, async (ctx) => {
    const kind = parseChoice(opts.kind, WALLET_KINDS, "--kind");
    parseChain(ctx.config, opts.chain);
    const masterKey = requireMasterKey(ctx);
    const privateKey = await privateKeyOf();
    report(await storeWallet(ctx.db.pool, masterKey, { chain: opts.chain, kind, privateKey, label: opts.label, actor: operatorName(), event }));
  });
}

export function register(program: Command): void {
  const wallet = program.command("wallet").description("our wallets: import, create, list, rotate the master key");
  wallet
    .command("import")
    .description("import a private key read from stdin (never from argv), encrypted under PAYMENT_MASTER_KEY")
    .requiredOption("--kind <kind>", `wallet kind: ${WALLET_KINDS.join(", ")}`)
    .option("--chain <chain>", "chain key", "ETH")
    .option("--label <label>", "a note for operators")
    .option("-c, --config <file>", CONFIG_OPTION_HELP)
    .action((opts: WalletKeyOpts) =>
      storeWithKey(
        opts,
        "wallet.imported",
        async () => {
          const privateKey = await readSecret("private key (hex, not echoed): ");
          if (!privateKey) throw new UsageError("no private key on stdin");
          return privateKey;
        },
        (address) => console.log(`imported ${opts.kind} wallet ${address} on ${opts.chain}`),
      ),
    );
  wallet
    .command("create")
    .description("create a wallet with a new random key; prints its address")
    .option("--kind <kind>", `wallet kind: ${WALLET_KINDS.join(", ")}`, "deposit")
    .option("--chain <chain>", "chain key", "ETH")
    .option("--label <label>", "a note for operators")
    .option("-c, --config <file>", CONFIG_OPTION_HELP)
    .action((opts: WalletKeyOpts) => storeWithKey(opts, "wallet.created", async () => Wallet.createRandom().privateKey, (address) => console.log(address)));
  wallet
    .command("list")
    .description("list wallets (no secrets)")
    .option("--chain <chain>", "only this chain")
    .option("--kind <kind>", "only this kind")
    .option("--json", "JSON lines")
    .option("-c, --config <file>", CONFIG_OPTION_HELP)
    .action(async (opts: { chain?: string; kind?: string; json?: boolean; config?: string }) => {
      await runCli(opts.config, async (ctx) => {
        if (opts.kind !== undefined) parseChoice(opts.kind, WALLET_KINDS, "--kind");
        if (opts.chain !== undefined) parseChain(ctx.config, opts.chain);
        const list = await listWallets(ctx.db.pool, { chain: opts.chain, kind: opts.kind });
        if (opts.json) {
          for (const w of list) console.log(JSON.stringify({ chain: w.chain, address: w.address, kind: w.kind, label: w.label, key_id: w.keyId, created_at: w.createdAt.toISOString() }));
          return;
        }
        if (list.length === 0) console.log("no wallets");
        for (const w of list) console.log(`${w.chain}  ${w.address}  ${w.kind.padEnd(10)}  key ${w.keyId}  ${w.label ?? ""}`.trimEnd());
      });
    });
  wallet
    .command("rotate-master-key")
    .description("re-encrypt every wallet key from PAYMENT_MASTER_KEY to a new key (PAYMENT_NEW_MASTER_KEY or stdin), in one transaction")
    .option("-c, --config <file>", CONFIG_OPTION_HELP)
    .action(async (opts: { config?: string }) => {
      await runCli(opts.config, async (ctx) => {
        const from = requireMasterKey(ctx);
        let to: Buffer;
        try {
          to = process.env.PAYMENT_NEW_MASTER_KEY
            ? parseMasterKey(process.env.PAYMENT_NEW_MASTER_KEY, "PAYMENT_NEW_MASTER_KEY")
            : parseMasterKey(await readSecret("new master key (64 hex, not echoed): "), "the new master key on stdin");
        } catch (e) {
          if (e instanceof ConfigError) throw new UsageError(e.message);
          throw e;
        }
        const r = await rotateMasterKey(ctx.db.pool, from, to, operatorName());
        console.log(`re-encrypted ${r.reencrypted} wallet(s) from master key ${r.fromKeyId} to ${r.toKeyId}${r.alreadyRotated ? ` (${r.alreadyRotated} already under the new key)` : ""}`);
        console.log("now set PAYMENT_MASTER_KEY to the new key and restart the transfer-sender processes");
      });
    });
}
