/**
 * Drift between prisma/schema.prisma and prisma/migrations (CONTRIBUTING.md, schema changes): the
 * migrations are hand-written in Prisma's style because the native schema
 * engine cannot run here, so nothing else would notice a column the schema
 * has and the SQL lacks (or a different type, nullability, default, index or
 * foreign key) until a query failed in production.
 *
 * The schema side comes from Prisma's own parser: the prisma-schema WASM
 * module shipped inside the `prisma` package, asked for the DMMF. The
 * database side is information_schema of a database freshly migrated by
 * `migrate()`. Differences are listed one per line.
 *
 * Then every model is exercised through the generated client on that
 * database: one row created (parents first) and read back exactly.
 */
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import * as mariadb from "mariadb";
import { migrate } from "../../shared/adapters/db/migrate.ts";
import { createDb, poolConfigFromUrl, type Db } from "../../shared/adapters/db/client.ts";
import { LIMITS } from "../../shared/domain/limits.ts";
import { ERROR_CODES } from "../../shared/domain/errors.ts";

const MYSQL_ROOT = process.env.TEST_MYSQL_URL ?? "mysql://root@127.0.0.1:3306";
const SCHEMA_FILE = path.resolve(import.meta.dirname, "../../prisma/schema.prisma");

// ------------------------------------------------------------------ DMMF

interface DmmfField {
  name: string;
  dbName?: string | null;
  kind: "scalar" | "object" | "enum" | "unsupported";
  isList: boolean;
  isRequired: boolean;
  isId: boolean;
  isUnique: boolean;
  isUpdatedAt: boolean;
  hasDefaultValue: boolean;
  type: string;
  nativeType?: [string, string[]] | null;
  default?: unknown;
  relationFromFields?: string[];
  relationToFields?: string[];
  relationOnDelete?: string;
  relationOnUpdate?: string;
}
interface DmmfModel {
  name: string;
  dbName: string | null;
  fields: DmmfField[];
  primaryKey: { name: string | null; fields: string[] } | null;
}
interface DmmfIndex {
  model: string;
  type: "id" | "unique" | "normal" | "fulltext";
  dbName?: string | null;
  fields: { name: string }[];
}
interface Dmmf {
  datamodel: { models: DmmfModel[]; enums: { name: string; values: { name: string; dbName: string | null }[] }[]; indexes: DmmfIndex[] };
}

/** The few WebAssembly and wasm-bindgen names used here (tsconfig has no DOM lib). */
interface WasmExports {
  memory: { buffer: ArrayBuffer };
  __wbindgen_externrefs: { grow(n: number): number; set(i: number, v: unknown): void; get(i: number): unknown };
  __wbindgen_start(): void;
  __wbindgen_malloc(len: number, align: number): number;
  __wbindgen_free(ptr: number, len: number, align: number): void;
  get_dmmf(ptr: number, len: number): [number, number, number, number];
}
const WA = (globalThis as unknown as {
  WebAssembly: {
    Module: { new (bytes: Uint8Array): object; imports(m: object): { module: string; name: string }[] };
    Instance: new (m: object, imports: object) => { exports: unknown };
  };
}).WebAssembly;

/**
 * Prisma's schema parser without its CLI: instantiate the wasm-bindgen module
 * the CLI bundles. Its four imports are found by their stable prefixes (the
 * suffixes are build hashes), so a Prisma upgrade keeps working or fails here
 * with a clear message.
 */
function getDmmf(schema: string): Dmmf {
  const require = createRequire(import.meta.url);
  const wasmPath = path.join(path.dirname(require.resolve("prisma/package.json")), "build", "prisma_schema_build_bg.wasm");
  const module = new WA.Module(readFileSync(wasmPath));
  const decoder = new TextDecoder("utf-8", { fatal: true });
  // the glue below runs only after `ex` is set (during __wbindgen_start and calls)
  const text = (ptr: number, len: number) => decoder.decode(new Uint8Array(ex.memory.buffer, ptr, len));
  const glue: Record<string, (...a: number[]) => unknown> = {};
  for (const imp of WA.Module.imports(module)) {
    const n = imp.name;
    if (n.startsWith("__wbg_Error_")) glue[n] = (p, l) => new Error(text(p!, l!));
    else if (n.startsWith("__wbg_set_message_")) glue[n] = () => undefined;
    else if (n.startsWith("__wbg___wbindgen_throw_"))
      glue[n] = (p, l) => {
        throw new Error(text(p!, l!));
      };
    else if (n === "__wbindgen_init_externref_table")
      glue[n] = () => {
        const t = ex.__wbindgen_externrefs;
        const b = t.grow(4);
        t.set(0, undefined);
        t.set(b, undefined);
        t.set(b + 1, null);
        t.set(b + 2, true);
        t.set(b + 3, false);
      };
    else throw new Error(`prisma-schema wasm wants an unknown import ${imp.module}.${n}: update getDmmf() for this Prisma version`);
  }
  const ex = new WA.Instance(module, { __wbindgen_placeholder__: glue }).exports as WasmExports;
  ex.__wbindgen_start();
  const input = new TextEncoder().encode(JSON.stringify({ prismaSchema: schema, noColor: true }));
  const ptr = ex.__wbindgen_malloc(input.length, 1);
  new Uint8Array(ex.memory.buffer, ptr, input.length).set(input);
  const [outPtr, outLen, errRef, isErr] = ex.get_dmmf(ptr, input.length);
  if (isErr) {
    const err = ex.__wbindgen_externrefs.get(errRef) as Error;
    throw new Error(`prisma/schema.prisma does not parse: ${err.message}`);
  }
  try {
    return JSON.parse(text(outPtr, outLen)) as Dmmf;
  } finally {
    ex.__wbindgen_free(outPtr, outLen, 1);
  }
}

// ------------------------------------------------- expected vs actual shape

interface Column {
  type: string;
  nullable: boolean;
  default: string | null;
  autoIncrement: boolean;
}
interface Shape {
  tables: Map<string, { columns: Map<string, Column>; indexes: Map<string, string>; foreignKeys: Map<string, string>; collation?: string }>;
}

const SCALAR_DEFAULT_TYPE: Record<string, string> = {
  String: "varchar(191)",
  Int: "int",
  BigInt: "bigint",
  Boolean: "tinyint(1)",
  DateTime: "datetime(3)",
  Decimal: "decimal(65,30)",
  Float: "double",
  Json: "longtext",
  Bytes: "longblob",
};

function nativeToSql([name, args]: [string, string[]]): string {
  const lower = name.toLowerCase();
  const map: Record<string, string> = { unsignedint: "int unsigned", unsignedbigint: "bigint unsigned", int: "int", bigint: "bigint" };
  return `${map[lower] ?? lower}${args.length ? `(${args.join(",")})` : ""}`;
}

/** MariaDB shows int(11) and bigint(20); Prisma and MySQL 8 do not. */
function normaliseType(t: string): string {
  return t.toLowerCase().replace(/\b(int|bigint|smallint|mediumint)\(\d+\)/g, "$1").replace(/, /g, ",");
}

function normaliseDefault(d: unknown): string | null {
  if (d === null || d === undefined) return null;
  let s = String(d);
  if (s === "NULL") return null;
  if (/^'.*'$/s.test(s)) s = s.slice(1, -1).replace(/''/g, "'");
  if (/^-?[0-9]+(\.[0-9]+)?$/.test(s)) return String(Number(s));
  return s.toLowerCase();
}

function expectedShape(dmmf: Dmmf): Shape {
  const tables: Shape["tables"] = new Map();
  const enums = new Map(dmmf.datamodel.enums.map((e) => [e.name, e.values.map((v) => v.dbName ?? v.name)]));
  const tableOf = new Map(dmmf.datamodel.models.map((m) => [m.name, m.dbName ?? m.name]));
  for (const m of dmmf.datamodel.models) {
    const table = m.dbName ?? m.name;
    const colOf = new Map(m.fields.map((f) => [f.name, f.dbName ?? f.name]));
    const columns = new Map<string, Column>();
    const foreignKeys = new Map<string, string>();
    for (const f of m.fields) {
      if (f.kind === "object") {
        if (f.relationFromFields?.length) {
          const cols = f.relationFromFields.map((x) => colOf.get(x)!);
          const target = dmmf.datamodel.models.find((x) => x.name === f.type)!;
          const targetCols = f.relationToFields!.map((x) => target.fields.find((y) => y.name === x)!.dbName ?? x);
          // Prisma's referential defaults: required -> Restrict, optional -> SetNull; updates Cascade
          const onDelete = f.relationOnDelete ?? (f.isRequired ? "Restrict" : "SetNull");
          const onUpdate = f.relationOnUpdate ?? "Cascade";
          const rule = (r: string) => r.replace(/([a-z])([A-Z])/g, "$1 $2").toUpperCase();
          foreignKeys.set(`${table}_${cols.join("_")}_fkey`, `(${cols.join(",")}) -> ${tableOf.get(f.type)}(${targetCols.join(",")}) ON DELETE ${rule(onDelete)} ON UPDATE ${rule(onUpdate)}`);
        }
        continue;
      }
      const type =
        f.kind === "enum"
          ? `enum(${enums.get(f.type)!.map((v) => `'${v}'`).join(",")})`
          : f.nativeType
            ? nativeToSql(f.nativeType)
            : SCALAR_DEFAULT_TYPE[f.type] ?? `?${f.type}`;
      const def = f.default as { name?: string } | string | number | boolean | undefined;
      let dbDefault: string | null = null;
      let autoIncrement = false;
      if (def !== undefined && typeof def === "object" && def !== null && "name" in def) {
        if (def.name === "autoincrement") autoIncrement = true;
        else if (def.name === "now") dbDefault = `current_timestamp(${f.nativeType?.[1][0] ?? "3"})`;
        // uuid(), cuid()... are filled in by the client, not the database
      } else if (def !== undefined) {
        dbDefault = normaliseDefault(typeof def === "boolean" ? (def ? 1 : 0) : def);
      }
      columns.set(colOf.get(f.name)!, { type: normaliseType(type), nullable: !f.isRequired, default: dbDefault, autoIncrement });
    }
    const indexes = new Map<string, string>();
    for (const idx of dmmf.datamodel.indexes.filter((i) => i.model === m.name)) {
      const cols = idx.fields.map((x) => colOf.get(x.name)!);
      if (idx.type === "id") indexes.set("PRIMARY", `primary (${cols.join(",")})`);
      else {
        const suffix = idx.type === "unique" ? "key" : "idx";
        // Prisma's default index names, which `prisma migrate diff` checks too
        const name = idx.dbName ?? `${table}_${cols.join("_")}_${suffix}`;
        indexes.set(name, `${idx.type === "unique" ? "unique" : "index"} (${cols.join(",")})`);
      }
    }
    tables.set(table, { columns, indexes, foreignKeys, collation: "utf8mb4_unicode_ci" });
  }
  return { tables };
}

async function actualShape(conn: mariadb.Connection, database: string): Promise<Shape> {
  const tables: Shape["tables"] = new Map();
  const tableRows: { TABLE_NAME: string; TABLE_COLLATION: string }[] = await conn.query(
    "SELECT TABLE_NAME, TABLE_COLLATION FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME <> '_prisma_migrations'",
    [database],
  );
  for (const t of tableRows) tables.set(t.TABLE_NAME, { columns: new Map(), indexes: new Map(), foreignKeys: new Map(), collation: t.TABLE_COLLATION });
  const cols: { TABLE_NAME: string; COLUMN_NAME: string; COLUMN_TYPE: string; IS_NULLABLE: string; COLUMN_DEFAULT: string | null; EXTRA: string }[] = await conn.query(
    "SELECT TABLE_NAME, COLUMN_NAME, COLUMN_TYPE, IS_NULLABLE, COLUMN_DEFAULT, EXTRA FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? ORDER BY TABLE_NAME, ORDINAL_POSITION",
    [database],
  );
  for (const c of cols) {
    tables.get(c.TABLE_NAME)?.columns.set(c.COLUMN_NAME, {
      type: normaliseType(c.COLUMN_TYPE),
      nullable: c.IS_NULLABLE === "YES",
      default: normaliseDefault(c.COLUMN_DEFAULT),
      autoIncrement: /auto_increment/i.test(c.EXTRA),
    });
  }
  const stats: { TABLE_NAME: string; INDEX_NAME: string; NON_UNIQUE: number | bigint; COLUMN_NAME: string }[] = await conn.query(
    "SELECT TABLE_NAME, INDEX_NAME, NON_UNIQUE, COLUMN_NAME FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = ? ORDER BY TABLE_NAME, INDEX_NAME, SEQ_IN_INDEX",
    [database],
  );
  const grouped = new Map<string, { table: string; unique: boolean; cols: string[] }>();
  for (const s of stats) {
    const k = `${s.TABLE_NAME}.${s.INDEX_NAME}`;
    const g = grouped.get(k) ?? { table: s.TABLE_NAME, unique: Number(s.NON_UNIQUE) === 0, cols: [] };
    g.cols.push(s.COLUMN_NAME);
    grouped.set(k, g);
  }
  for (const [k, g] of grouped) {
    const name = k.slice(g.table.length + 1);
    const kind = name === "PRIMARY" ? "primary" : g.unique ? "unique" : "index";
    tables.get(g.table)?.indexes.set(name, `${kind} (${g.cols.join(",")})`);
  }
  const fks: { TABLE_NAME: string; CONSTRAINT_NAME: string; COLUMN_NAME: string; REFERENCED_TABLE_NAME: string; REFERENCED_COLUMN_NAME: string; DELETE_RULE: string; UPDATE_RULE: string }[] =
    await conn.query(
      `SELECT k.TABLE_NAME, k.CONSTRAINT_NAME, k.COLUMN_NAME, k.REFERENCED_TABLE_NAME, k.REFERENCED_COLUMN_NAME, r.DELETE_RULE, r.UPDATE_RULE
         FROM information_schema.KEY_COLUMN_USAGE k
         JOIN information_schema.REFERENTIAL_CONSTRAINTS r ON r.CONSTRAINT_SCHEMA = k.CONSTRAINT_SCHEMA AND r.CONSTRAINT_NAME = k.CONSTRAINT_NAME
        WHERE k.TABLE_SCHEMA = ? AND k.REFERENCED_TABLE_NAME IS NOT NULL
        ORDER BY k.TABLE_NAME, k.CONSTRAINT_NAME, k.ORDINAL_POSITION`,
      [database],
    );
  const fkGroups = new Map<string, (typeof fks)[number][]>();
  for (const f of fks) fkGroups.set(`${f.TABLE_NAME}.${f.CONSTRAINT_NAME}`, [...(fkGroups.get(`${f.TABLE_NAME}.${f.CONSTRAINT_NAME}`) ?? []), f]);
  for (const group of fkGroups.values()) {
    const f = group[0]!;
    tables.get(f.TABLE_NAME)?.foreignKeys.set(
      f.CONSTRAINT_NAME,
      `(${group.map((g) => g.COLUMN_NAME).join(",")}) -> ${f.REFERENCED_TABLE_NAME}(${group.map((g) => g.REFERENCED_COLUMN_NAME).join(",")}) ON DELETE ${f.DELETE_RULE} ON UPDATE ${f.UPDATE_RULE}`,
    );
  }
  return { tables };
}

/** Every difference, one readable line each ("schema says X, database has Y"). */
function diff(want: Shape, have: Shape): string[] {
  const out: string[] = [];
  const show = (c: Column | undefined) =>
    c ? `${c.type}${c.nullable ? " NULL" : " NOT NULL"}${c.default !== null ? ` DEFAULT ${c.default}` : ""}${c.autoIncrement ? " AUTO_INCREMENT" : ""}` : "(absent)";
  for (const t of new Set([...want.tables.keys(), ...have.tables.keys()])) {
    const w = want.tables.get(t);
    const h = have.tables.get(t);
    if (!w) {
      out.push(`table ${t}: in the database, not in schema.prisma`);
      continue;
    }
    if (!h) {
      out.push(`table ${t}: in schema.prisma, not created by the migrations`);
      continue;
    }
    if (w.collation !== h.collation) out.push(`table ${t}: collation ${h.collation}, Prisma uses ${w.collation}`);
    for (const c of new Set([...w.columns.keys(), ...h.columns.keys()])) {
      const a = show(w.columns.get(c));
      const b = show(h.columns.get(c));
      if (a !== b) out.push(`column ${t}.${c}: schema.prisma says ${a}; database has ${b}`);
    }
    for (const i of new Set([...w.indexes.keys(), ...h.indexes.keys()])) {
      const a = w.indexes.get(i);
      const b = h.indexes.get(i);
      // MySQL creates an index for a foreign key that has none; Prisma expects that
      if (!a && b && h.foreignKeys.has(i)) continue;
      if (a !== b) out.push(`index ${t}.${i}: schema.prisma says ${a ?? "(absent)"}; database has ${b ?? "(absent)"}`);
    }
    for (const f of new Set([...w.foreignKeys.keys(), ...h.foreignKeys.keys()])) {
      const a = w.foreignKeys.get(f);
      const b = h.foreignKeys.get(f);
      if (a !== b) out.push(`foreign key ${t}.${f}: schema.prisma says ${a ?? "(absent)"}; database has ${b ?? "(absent)"}`);
    }
  }
  return out;
}

// ------------------------------------------------------------------ tests

describe("schema.prisma and prisma/migrations agree", () => {
  const database = `payment_test_${randomBytes(5).toString("hex")}`;
  const url = `${MYSQL_ROOT}/${database}`;
  let conn: mariadb.Connection;
  let db: Db | undefined;
  let dmmf: Dmmf;

  before(async () => {
    dmmf = getDmmf(readFileSync(SCHEMA_FILE, "utf8"));
    await migrate(url);
    conn = await mariadb.createConnection({ ...poolConfigFromUrl(url, 1) });
  });

  after(async () => {
    await db?.close();
    await conn?.query(`DROP DATABASE IF EXISTS \`${database}\``).catch(() => undefined);
    await conn?.end();
  });

  it("the diff helpers notice a difference (so an empty diff means something)", () => {
    const want = expectedShape(dmmf);
    const broken = structuredClone(want);
    const [table, t] = [...broken.tables.entries()][0]!;
    const [col, c] = [...t.columns.entries()][0]!;
    t.columns.set(col, { ...c, nullable: !c.nullable });
    t.columns.set("ghost", { type: "int", nullable: true, default: null, autoIncrement: false });
    assert.deepEqual(diff(want, broken), [
      `column ${table}.${col}: schema.prisma says ${c.type}${c.nullable ? " NULL" : " NOT NULL"}${c.default !== null ? ` DEFAULT ${c.default}` : ""}${c.autoIncrement ? " AUTO_INCREMENT" : ""}; database has ${c.type}${!c.nullable ? " NULL" : " NOT NULL"}${c.default !== null ? ` DEFAULT ${c.default}` : ""}${c.autoIncrement ? " AUTO_INCREMENT" : ""}`,
      `column ${table}.ghost: schema.prisma says (absent); database has int NULL`,
    ]);
  });

  it("tables, columns (type, nullability, default), indexes, unique keys and foreign keys match", async () => {
    const want = expectedShape(dmmf);
    const have = await actualShape(conn, database);
    assert.ok(want.tables.size >= 12, "the schema has its models");
    const problems = diff(want, have);
    assert.deepEqual(problems, [], `schema.prisma and the migrated database differ:\n  ${problems.join("\n  ")}\n(add a migration under prisma/migrations, never edit an applied one)`);
  });

  it("every column that stores input is at least as wide as its limit (shared/domain/limits.ts)", async () => {
    // by column name, across every table: an id, an address, a chain or symbol, an error code, a raw body
    const need = (column: string): number | null => {
      if (column === "queue_id" || column === "order_id") return LIMITS.idChars;
      if (column === "address" || column.endsWith("_address") || column === "requested_from") return LIMITS.addressChars;
      if (column === "chain" || column === "symbol") return LIMITS.nameChars;
      if (column === "error") return Math.max(...ERROR_CODES.map((c) => c.length));
      if (column === "error_detail") return LIMITS.detailChars;
      return null;
    };
    const cols = (await conn.query(
      "SELECT TABLE_NAME t, COLUMN_NAME c, CHARACTER_MAXIMUM_LENGTH chars, CHARACTER_OCTET_LENGTH octets FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND CHARACTER_MAXIMUM_LENGTH IS NOT NULL",
      [database],
    )) as { t: string; c: string; chars: bigint | number; octets: bigint | number }[];
    const narrow: string[] = [];
    let checked = 0;
    for (const col of cols) {
      const min = need(col.c);
      if (min !== null) {
        checked++;
        if (Number(col.chars) < min) narrow.push(`${col.t}.${col.c}: ${col.chars} characters < ${min}`);
      }
    }
    const raw = cols.find((c) => c.t === "request" && c.c === "raw_body")!;
    if (Number(raw.octets) < LIMITS.rawBodyBytes) narrow.push(`request.raw_body: ${raw.octets} bytes < ${LIMITS.rawBodyBytes}`);
    assert.ok(checked >= 20, `only ${checked} input columns found`);
    assert.deepEqual(narrow, []);
  });

  it("every model can be written and read back exactly through the generated client", async () => {
    db = createDb({ url, poolSize: 2 });
    const models = dmmf.datamodel.models;
    const created = new Map<string, Record<string, unknown>>();
    const enums = new Map(dmmf.datamodel.enums.map((e) => [e.name, e.values[0]!.name]));
    // parents before children
    const order: DmmfModel[] = [];
    const visit = (m: DmmfModel, seen: Set<string>) => {
      if (order.includes(m) || seen.has(m.name)) return;
      seen.add(m.name);
      for (const f of m.fields) if (f.kind === "object" && f.relationFromFields?.length) visit(models.find((x) => x.name === f.type)!, seen);
      order.push(m);
    };
    for (const m of models) visit(m, new Set());

    const sample = (f: DmmfField): unknown => {
      const len = f.nativeType && /char/i.test(f.nativeType[0]) ? Number(f.nativeType[1][0] ?? 8) : 191;
      switch (f.type) {
        case "String":
          return "é😀".slice(0, Math.min(len, 3)) + "x".repeat(Math.max(0, Math.min(len, 12) - 3));
        case "Int":
          return 2_000_000_000;
        case "BigInt":
          return 9_007_199_254_740_993n; // above 2^53: must stay exact
        case "Boolean":
          return false;
        case "DateTime":
          return new Date("2026-11-25T12:34:56.789Z");
        case "Decimal":
          return f.nativeType?.[1][1] === "0" ? "123456789012345678901234567890" : "12345678901234567890.123456789012345678";
        case "Json":
          return { a: 1 };
        default:
          if (enums.has(f.type)) return enums.get(f.type);
          throw new Error(`no sample for ${f.type}`);
      }
    };

    for (const m of order) {
      const data: Record<string, unknown> = {};
      const fkFields = new Map<string, unknown>();
      for (const f of m.fields) {
        if (f.kind === "object" && f.relationFromFields?.length) {
          const parent = created.get(f.type)!;
          f.relationFromFields.forEach((from, i) => fkFields.set(from, parent[f.relationToFields![i]!]));
        }
      }
      for (const f of m.fields) {
        if (f.kind === "object" || f.isUpdatedAt) continue;
        if (fkFields.has(f.name)) data[f.name] = fkFields.get(f.name);
        else if (f.default && typeof f.default === "object" && (f.default as { name: string }).name === "autoincrement") continue;
        else data[f.name] = sample(f);
      }
      type Delegate = { create(a: unknown): Promise<Record<string, unknown>>; findMany(): Promise<Record<string, unknown>[]> };
      const delegate: Delegate = (db.prisma as unknown as Record<string, Delegate>)[m.name[0]!.toLowerCase() + m.name.slice(1)]!;
      const row = await delegate.create({ data });
      created.set(m.name, row);
      const [back, ...more]: Record<string, unknown>[] = await delegate.findMany();
      assert.equal(more.length, 0, m.name);
      for (const [k, v] of Object.entries(data)) {
        const got: unknown = back![k];
        const norm = (x: unknown) => (x instanceof Date ? x.toISOString() : typeof x === "object" && x !== null && "toFixed" in x ? (x as { toFixed(): string }).toFixed() : x);
        assert.deepEqual(norm(got), norm(v), `${m.name}.${k} read back differently`);
      }
    }
    assert.equal(created.size, models.length);
  });
});
