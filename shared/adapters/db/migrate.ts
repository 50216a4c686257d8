/**
 * Applies prisma/migrations/<timestamp>_<name>/migration.sql in order, keeping
 * Prisma's own `_prisma_migrations` bookkeeping, so a database migrated here is
 * accepted later by `prisma migrate deploy` / `migrate status` where Prisma's
 * native schema engine is installed (it cannot be downloaded on every build
 * machine, see prisma.config.ts).
 *
 * Safety rules copied from Prisma: one migrator at a time (GET_LOCK); a
 * migration whose checksum changed after it was applied is refused; a failed
 * migration (finished_at NULL, not rolled back) blocks further runs (P3009);
 * a non-empty database that was never migrated is refused (P3005).
 */
import { createHash, randomUUID } from "node:crypto";
import { readdirSync, readFileSync, existsSync } from "node:fs";
import path from "node:path";
import * as mariadb from "mariadb";
import { poolConfigFromUrl } from "./client.ts";
import { fromRoot } from "../../paths.ts";

export const MIGRATIONS_DIR = fromRoot("prisma", "migrations");

export interface MigrateResult {
  applied: string[];
  alreadyApplied: string[];
  createdDatabase: boolean;
}

export class MigrationError extends Error {
  override name = "MigrationError";
}

interface MigrationRow {
  migration_name: string;
  checksum: string;
  finished_at: Date | null;
  rolled_back_at: Date | null;
}

export function listMigrations(dir = MIGRATIONS_DIR): { name: string; sql: string; checksum: string }[] {
  return readdirSync(dir, { withFileTypes: true })
    .filter((d) => d.isDirectory() && existsSync(path.join(dir, d.name, "migration.sql")))
    .map((d) => d.name)
    .sort()
    .map((name) => {
      const bytes = readFileSync(path.join(dir, name, "migration.sql"));
      return { name, sql: bytes.toString("utf8"), checksum: createHash("sha256").update(bytes).digest("hex") };
    });
}

/** Split a migration script into statements (Prisma's scripts: `;` at line end, `--` comments). */
export function splitStatements(sql: string): string[] {
  const out: string[] = [];
  let current: string[] = [];
  for (const line of sql.split("\n")) {
    // comments and blank lines between statements are not sent: a blank line
    // kept before a comment made the comment part of the next statement
    if ((/^\s*--/.test(line) || line.trim() === "") && current.length === 0) continue;
    current.push(line);
    if (/;\s*$/.test(line)) {
      const stmt = current.join("\n").trim().replace(/;\s*$/, "");
      if (stmt) out.push(stmt);
      current = [];
    }
  }
  const rest = current.join("\n").trim();
  if (rest && !/^(--.*\s*)*$/.test(rest)) out.push(rest);
  return out;
}

const CREATE_TABLE = `CREATE TABLE IF NOT EXISTS _prisma_migrations (
  id VARCHAR(36) PRIMARY KEY NOT NULL,
  checksum VARCHAR(64) NOT NULL,
  finished_at DATETIME(3),
  migration_name VARCHAR(255) NOT NULL,
  logs TEXT,
  rolled_back_at DATETIME(3),
  started_at DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  applied_steps_count INTEGER UNSIGNED NOT NULL DEFAULT 0
) DEFAULT CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci`;

/**
 * Bring the database named in `url` to the latest schema, creating the
 * database itself if the server does not have it yet.
 */
export async function migrate(url: string, opts: { dir?: string; log?: (msg: string) => void } = {}): Promise<MigrateResult> {
  const log = opts.log ?? (() => undefined);
  const cfg = poolConfigFromUrl(url, 1);
  const { database } = cfg;
  const result: MigrateResult = { applied: [], alreadyApplied: [], createdDatabase: false };

  const admin = await mariadb.createConnection({ ...cfg, database: undefined });
  try {
    const exists = await admin.query("SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?", [database]);
    if (exists.length === 0) {
      await admin.query(`CREATE DATABASE IF NOT EXISTS \`${database.replace(/`/g, "``")}\` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci`);
      result.createdDatabase = true;
      log(`created database ${database}`);
    }
  } finally {
    await admin.end();
  }

  const conn = await mariadb.createConnection({ ...cfg, multipleStatements: false });
  try {
    const [lock] = await conn.query("SELECT GET_LOCK('prisma_migrate', 10) AS l");
    if (Number(lock.l) !== 1) throw new MigrationError("another migration is running (could not take the prisma_migrate lock in 10 s)");
    try {
      const tables: { TABLE_NAME: string }[] = await conn.query(
        "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = ?",
        [database],
      );
      const hasBookkeeping = tables.some((t) => t.TABLE_NAME === "_prisma_migrations");
      if (!hasBookkeeping && tables.length > 0) {
        throw new MigrationError(
          `database ${database} is not empty and was never migrated (P3005): baseline it or use an empty database`,
        );
      }
      await conn.query(CREATE_TABLE);
      const rows: MigrationRow[] = await conn.query(
        "SELECT migration_name, checksum, finished_at, rolled_back_at FROM _prisma_migrations ORDER BY started_at",
      );
      const failed = rows.find((r) => r.finished_at === null && r.rolled_back_at === null);
      if (failed) {
        throw new MigrationError(
          `migration ${failed.migration_name} failed earlier (P3009): fix the database, then mark it rolled back before migrating again`,
        );
      }
      const done = new Map(rows.filter((r) => r.finished_at !== null).map((r) => [r.migration_name, r]));
      for (const m of listMigrations(opts.dir)) {
        const prior = done.get(m.name);
        if (prior) {
          if (prior.checksum !== m.checksum) {
            throw new MigrationError(`migration ${m.name} was edited after it was applied (checksum differs)`);
          }
          result.alreadyApplied.push(m.name);
          continue;
        }
        const id = randomUUID();
        await conn.query("INSERT INTO _prisma_migrations (id, checksum, migration_name, started_at) VALUES (?, ?, ?, NOW(3))", [
          id,
          m.checksum,
          m.name,
        ]);
        try {
          for (const stmt of splitStatements(m.sql)) await conn.query(stmt);
        } catch (e) {
          await conn.query("UPDATE _prisma_migrations SET logs = ? WHERE id = ?", [String((e as Error).message), id]);
          throw new MigrationError(`migration ${m.name} failed: ${(e as Error).message}`);
        }
        await conn.query("UPDATE _prisma_migrations SET applied_steps_count = 1, finished_at = NOW(3) WHERE id = ?", [id]);
        result.applied.push(m.name);
        log(`applied ${m.name}`);
      }
    } finally {
      await conn.query("SELECT RELEASE_LOCK('prisma_migrate')").catch(() => undefined);
    }
  } finally {
    await conn.end();
  }
  return result;
}
