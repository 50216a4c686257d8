/**
 * The migration runner (shared/adapters/db/migrate.ts) keeps Prisma's rules
 * and bookkeeping: idempotent, refuses edited migrations, stops after a failed
 * one until it is resolved (P3009), refuses a non-empty database that was
 * never migrated (P3005), one migrator at a time, and `_prisma_migrations`
 * rows laid out as `prisma migrate deploy` expects. Each test uses its own
 * database and migrations folder, and drops them.
 */
import { describe, it, after } from "node:test";
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, appendFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import * as mariadb from "mariadb";
import { migrate, listMigrations, splitStatements, MigrationError, MIGRATIONS_DIR } from "../../shared/adapters/db/migrate.ts";
import { poolConfigFromUrl } from "../../shared/adapters/db/client.ts";

const MYSQL_ROOT = process.env.TEST_MYSQL_URL ?? "mysql://root@127.0.0.1:3306";

const cleanups: (() => Promise<void> | void)[] = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

/** A fresh database name (created by migrate() or by the test) dropped at the end. */
function freshDatabase(): { name: string; url: string } {
  const name = `payment_test_${randomBytes(5).toString("hex")}`;
  cleanups.push(() => withServer((c) => c.query(`DROP DATABASE IF EXISTS \`${name}\``)));
  return { name, url: `${MYSQL_ROOT}/${name}` };
}

/** A copy of prisma/migrations that a test may change. */
function migrationsCopy(): string {
  const dir = mkdtempSync(path.join(tmpdir(), "payment-migrations-"));
  cpSync(MIGRATIONS_DIR, dir, { recursive: true });
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

async function withServer<T>(fn: (c: mariadb.Connection) => Promise<T>, database?: string): Promise<T> {
  const cfg = poolConfigFromUrl(`${MYSQL_ROOT}/${database ?? "mysql"}`, 1);
  const c = await mariadb.createConnection(cfg);
  try {
    return await fn(c);
  } finally {
    await c.end();
  }
}

interface Row {
  id: string;
  checksum: string;
  finished_at: Date | null;
  migration_name: string;
  logs: string | null;
  rolled_back_at: Date | null;
  started_at: Date;
  applied_steps_count: number;
}

const rows = (database: string) => withServer((c) => c.query("SELECT * FROM _prisma_migrations ORDER BY started_at, migration_name") as Promise<Row[]>, database);

async function rejects(p: Promise<unknown>, re: RegExp): Promise<MigrationError> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof MigrationError, `a MigrationError, got ${String(e)}`);
    assert.match(e.message, re);
    return e;
  }
  assert.fail(`expected a MigrationError matching ${re}`);
}

describe("migrate()", () => {
  const all = listMigrations().map((m) => m.name);

  it("creates and migrates an empty database, with Prisma's bookkeeping rows", async () => {
    const db = freshDatabase();
    const r = await migrate(db.url);
    assert.equal(r.createdDatabase, true);
    assert.deepEqual(r.applied, all);
    assert.deepEqual(r.alreadyApplied, []);

    const got = await rows(db.name);
    assert.deepEqual(got.map((x) => x.migration_name), all);
    for (const row of got) {
      assert.match(row.id, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/, "uuid v4");
      const sql = readFileSync(path.join(MIGRATIONS_DIR, row.migration_name, "migration.sql"));
      assert.equal(row.checksum, createHash("sha256").update(sql).digest("hex"), "sha256 of the file's bytes, lowercase hex");
      assert.ok(row.finished_at instanceof Date);
      assert.ok(row.started_at instanceof Date && row.started_at <= row.finished_at);
      assert.equal(row.logs, null);
      assert.equal(row.rolled_back_at, null);
      assert.equal(Number(row.applied_steps_count), 1);
    }
  });

  it("_prisma_migrations has the layout `prisma migrate deploy` expects", async () => {
    const db = freshDatabase();
    await migrate(db.url);
    const cols: { COLUMN_NAME: string; COLUMN_TYPE: string; IS_NULLABLE: string; COLUMN_DEFAULT: string | null; COLUMN_KEY: string }[] = await withServer((c) =>
      c.query(
        "SELECT COLUMN_NAME, COLUMN_TYPE, IS_NULLABLE, COLUMN_DEFAULT, COLUMN_KEY FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = '_prisma_migrations' ORDER BY ORDINAL_POSITION",
        [db.name],
      ),
    );
    const norm = (t: string) => t.replace(/^int\(\d+\)/, "int");
    assert.deepEqual(
      cols.map((c) => [c.COLUMN_NAME, norm(c.COLUMN_TYPE), c.IS_NULLABLE, c.COLUMN_DEFAULT === "NULL" ? null : c.COLUMN_DEFAULT, c.COLUMN_KEY]),
      [
        ["id", "varchar(36)", "NO", null, "PRI"],
        ["checksum", "varchar(64)", "NO", null, ""],
        ["finished_at", "datetime(3)", "YES", null, ""],
        ["migration_name", "varchar(255)", "NO", null, ""],
        ["logs", "text", "YES", null, ""],
        ["rolled_back_at", "datetime(3)", "YES", null, ""],
        ["started_at", "datetime(3)", "NO", "current_timestamp(3)", ""],
        ["applied_steps_count", "int unsigned", "NO", "0", ""],
      ],
    );
    const [t] = await withServer((c) => c.query("SELECT TABLE_COLLATION FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = '_prisma_migrations'", [db.name]));
    assert.equal(t.TABLE_COLLATION, "utf8mb4_unicode_ci");
    const [s] = await withServer((c) => c.query("SELECT DEFAULT_COLLATION_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?", [db.name]));
    assert.equal(s.DEFAULT_COLLATION_NAME, "utf8mb4_unicode_ci", "a created database uses Prisma's collation");
  });

  it("is idempotent: a second run applies nothing and adds no rows", async () => {
    const db = freshDatabase();
    await migrate(db.url);
    const before = await rows(db.name);
    const r = await migrate(db.url);
    assert.equal(r.createdDatabase, false);
    assert.deepEqual(r.applied, []);
    assert.deepEqual(r.alreadyApplied, all);
    assert.deepEqual(await rows(db.name), before);
  });

  it("applies only the new migration to an older database", async () => {
    const db = freshDatabase();
    const dir = migrationsCopy();
    await migrate(db.url, { dir });
    mkdirSync(path.join(dir, "29990101000000_add_note"));
    writeFileSync(path.join(dir, "29990101000000_add_note", "migration.sql"), "-- AlterTable\nALTER TABLE `wallet` ADD COLUMN `note` VARCHAR(32) NULL;\n");
    const logs: string[] = [];
    const r = await migrate(db.url, { dir, log: (m) => logs.push(m) });
    assert.deepEqual(r.applied, ["29990101000000_add_note"]);
    assert.deepEqual(r.alreadyApplied, all);
    assert.deepEqual(logs, ["applied 29990101000000_add_note"]);
    const [col] = await withServer((c) => c.query("SELECT IS_NULLABLE FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = 'wallet' AND COLUMN_NAME = 'note'", [db.name]));
    assert.equal(col?.IS_NULLABLE, "YES");
  });

  it("refuses a migration edited after it was applied (checksum differs)", async () => {
    const db = freshDatabase();
    const dir = migrationsCopy();
    await migrate(db.url, { dir });
    appendFileSync(path.join(dir, all[0]!, "migration.sql"), "\n-- edited afterwards\n");
    await rejects(migrate(db.url, { dir }), new RegExp(`${all[0]} was edited after it was applied`));
  });

  it("a failed migration keeps its log, blocks the next run (P3009) until resolved, then applies", async () => {
    const db = freshDatabase();
    const dir = migrationsCopy();
    const name = "29990101000000_broken";
    const file = path.join(dir, name, "migration.sql");
    mkdirSync(path.join(dir, name));
    writeFileSync(file, "-- CreateTable\nCREATE TABLE `half` (`id` INTEGER NOT NULL, PRIMARY KEY (`id`));\n\n-- AlterTable\nALTER TABLE `no_such_table` ADD COLUMN `x` INTEGER NULL;\n");

    await rejects(migrate(db.url, { dir }), /migration 29990101000000_broken failed: .*no_such_table/);
    const failed = (await rows(db.name)).find((r) => r.migration_name === name)!;
    assert.equal(failed.finished_at, null);
    assert.equal(failed.rolled_back_at, null);
    assert.match(failed.logs ?? "", /no_such_table/);
    assert.equal(Number(failed.applied_steps_count), 0);

    // the next run refuses, even with the script fixed, until an operator resolves it
    await rejects(migrate(db.url, { dir }), /29990101000000_broken failed earlier \(P3009\)/);
    writeFileSync(file, "-- CreateTable\nCREATE TABLE IF NOT EXISTS `half` (`id` INTEGER NOT NULL, PRIMARY KEY (`id`));\n");
    await rejects(migrate(db.url, { dir }), /P3009/);

    // `prisma migrate resolve --rolled-back` does exactly this
    await withServer((c) => c.query("UPDATE _prisma_migrations SET rolled_back_at = NOW(3) WHERE migration_name = ? AND finished_at IS NULL", [name]), db.name);
    const r = await migrate(db.url, { dir });
    assert.deepEqual(r.applied, [name]);
    const both = (await rows(db.name)).filter((x) => x.migration_name === name);
    assert.equal(both.length, 2, "the rolled-back attempt stays on record");
    assert.equal(both.filter((x) => x.finished_at !== null).length, 1);
  });

  it("refuses a non-empty database that was never migrated (P3005) and leaves it untouched", async () => {
    const db = freshDatabase();
    await withServer(async (c) => {
      await c.query(`CREATE DATABASE \`${db.name}\``);
      await c.query(`CREATE TABLE \`${db.name}\`.legacy (id INT PRIMARY KEY)`);
    });
    await rejects(migrate(db.url), /not empty and was never migrated \(P3005\)/);
    const tables: { TABLE_NAME: string }[] = await withServer((c) => c.query("SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = ?", [db.name]));
    assert.deepEqual(tables.map((t) => t.TABLE_NAME), ["legacy"]);
  });

  it("an existing empty database is migrated (not created)", async () => {
    const db = freshDatabase();
    await withServer((c) => c.query(`CREATE DATABASE \`${db.name}\` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci`));
    const r = await migrate(db.url);
    assert.equal(r.createdDatabase, false);
    assert.deepEqual(r.applied, all);
  });

  it("two migrators at once apply each migration exactly once", async () => {
    const db = freshDatabase();
    const [a, b] = await Promise.all([migrate(db.url), migrate(db.url)]);
    assert.deepEqual([...a.applied, ...b.applied].sort(), all, "applied once in total");
    assert.deepEqual([...a.alreadyApplied, ...b.alreadyApplied].sort(), all);
    assert.equal((await rows(db.name)).length, all.length);
  });
});

describe("splitStatements", () => {
  it("splits Prisma's scripts at `;` line ends and drops comment lines between statements", () => {
    const sql = "-- CreateTable\nCREATE TABLE `a` (\n    `id` INTEGER NOT NULL,\n    PRIMARY KEY (`id`)\n) DEFAULT CHARACTER SET utf8mb4;\n\n-- AddForeignKey\nALTER TABLE `b` ADD CONSTRAINT `f` FOREIGN KEY (`a_id`) REFERENCES `a`(`id`) ON DELETE RESTRICT ON UPDATE CASCADE;\n";
    assert.deepEqual(splitStatements(sql), [
      "CREATE TABLE `a` (\n    `id` INTEGER NOT NULL,\n    PRIMARY KEY (`id`)\n) DEFAULT CHARACTER SET utf8mb4",
      "ALTER TABLE `b` ADD CONSTRAINT `f` FOREIGN KEY (`a_id`) REFERENCES `a`(`id`) ON DELETE RESTRICT ON UPDATE CASCADE",
    ]);
  });

  it("keeps a last statement without `;` and ignores a trailing comment", () => {
    assert.deepEqual(splitStatements("SELECT 1;\nSELECT 2\n"), ["SELECT 1", "SELECT 2"]);
    assert.deepEqual(splitStatements("SELECT 1;\n-- the end\n"), ["SELECT 1"]);
    assert.deepEqual(splitStatements(""), []);
  });

  it("splits every committed migration into statements that each start with SQL", () => {
    for (const m of listMigrations()) {
      const stmts = splitStatements(m.sql);
      assert.ok(stmts.length > 0, m.name);
      for (const s of stmts) assert.match(s, /^(CREATE|ALTER|DROP|INSERT|UPDATE|DELETE|RENAME)\b/i, `${m.name}: ${s.slice(0, 60)}`);
    }
  });
});
