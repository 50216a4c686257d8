/**
 * Counts the rows a process writes to MySQL, per table, by wrapping the
 * mariadb pool every role of the process shares (its `query` and the
 * `query` of the connections it hands out). Row operations, not statements:
 * an INSERT counts the rows it added (INSERT IGNORE skips are not writes), an
 * upsert (`ON DUPLICATE KEY UPDATE`) counts each of its rows once although
 * MySQL reports an updated row as 2 affected rows, an UPDATE or DELETE counts
 * the rows it changed. For the bench only: it parses statement heads, which
 * is exact for this project's SQL and nothing else.
 */
import type { Pool, PoolConnection } from "mariadb";

export type RowCounts = Record<string, number>;

const HEAD = /^\s*(?:INSERT\s+(?:IGNORE\s+)?INTO\s+`?(\w+)`?|UPDATE\s+`?(\w+)`?|DELETE\s+FROM\s+`?(\w+)`?)/i;

/** Number of `(…)` value tuples after VALUES (the rows an INSERT offers). */
function tuples(sql: string): number {
  const v = /\bVALUES\b/i.exec(sql);
  if (!v) return 1;
  let depth = 0;
  let n = 0;
  for (let i = v.index; i < sql.length; i++) {
    const c = sql[i];
    if (c === "(") {
      if (depth === 0) n++;
      depth++;
    } else if (c === ")") depth--;
    else if (depth === 0 && /[A-Za-z]/.test(c!) && /^ON\s+DUPLICATE/i.test(sql.slice(i))) break;
  }
  return Math.max(n, 1);
}

function rowsOf(sql: string, result: unknown): { table: string; rows: number } | null {
  const m = HEAD.exec(sql);
  if (!m) return null;
  const affected = Number((result as { affectedRows?: number } | null)?.affectedRows ?? (Array.isArray(result) ? result.length : 0));
  const table = (m[1] ?? m[2] ?? m[3])!.toLowerCase();
  // INSERT ... RETURNING answers rows, not an OK packet
  const rows = m[1] ? Math.min(affected, tuples(sql)) : affected;
  return { table, rows };
}

export interface RowCounter {
  /** a copy of the counts so far */
  snapshot(): RowCounts;
  reset(): void;
}

/** Start counting the rows written through `pool` (and its connections). */
export function countRowWrites(pool: Pool): RowCounter {
  let counts: RowCounts = {};
  const add = (sql: unknown, result: unknown) => {
    const text = typeof sql === "string" ? sql : (sql as { sql?: string } | null)?.sql;
    if (!text) return;
    const r = rowsOf(text, result);
    if (r && r.rows > 0) counts[r.table] = (counts[r.table] ?? 0) + r.rows;
  };
  const wrap = <T extends { query: Pool["query"] }>(target: T) => {
    const original = target.query.bind(target);
    target.query = (async (sql: unknown, values?: unknown) => {
      const result = await original(sql as string, values);
      add(sql, result);
      return result;
    }) as Pool["query"];
  };
  wrap(pool);
  const getConnection = pool.getConnection.bind(pool);
  const wrapped = new WeakSet<PoolConnection>();
  pool.getConnection = async () => {
    const conn = await getConnection();
    if (!wrapped.has(conn)) {
      wrapped.add(conn);
      wrap(conn);
    }
    return conn;
  };
  return {
    snapshot: () => ({ ...counts }),
    reset() {
      counts = {};
    },
  };
}

/** b - a, table by table, leaving out zeros. */
export function diffCounts(a: RowCounts, b: RowCounts): RowCounts {
  const out: RowCounts = {};
  for (const t of new Set([...Object.keys(a), ...Object.keys(b)])) {
    const d = (b[t] ?? 0) - (a[t] ?? 0);
    if (d !== 0) out[t] = d;
  }
  return out;
}

export const totalOf = (c: RowCounts) => Object.values(c).reduce((s, n) => s + n, 0);
