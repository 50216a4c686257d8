/**
 * Raw SQL helpers for the hot paths that batch (bridge ingest, block scans,
 * finalisation), on the same pool Prisma uses.
 *
 * Failure modes: deadlocks and lock-wait timeouts between concurrent workers
 * are retried a few times here (the transaction is rolled back, so retrying
 * is safe); connection loss (server restart) surfaces as a transient error
 * for the caller's job/consumer to retry later.
 */
import type * as mariadb from "mariadb";
import { RetryableError } from "../../domain/errors.ts";
import { poolLimitOf } from "./client.ts";

export type Conn = mariadb.PoolConnection;

const DEADLOCK = 1213;
const LOCK_WAIT_TIMEOUT = 1205;
const DUPLICATE_KEY = 1062;

const errnoOf = (e: unknown) => (e as { errno?: number } | null)?.errno;

export function isDuplicateKey(e: unknown): boolean {
  return errnoOf(e) === DUPLICATE_KEY;
}

/**
 * Server-side errors that say the database, not the statement, is at fault:
 * shutting down (1053), connection killed (1927), query interrupted (1317),
 * read-only after a failover (1290), disk or table full (1021, 1114), too
 * many connections (1040).
 */
const SERVER_FAULTS = new Set([DEADLOCK, LOCK_WAIT_TIMEOUT, 1053, 1927, 1317, 1290, 1021, 1114, 1040]);
const CONNECTION_CODES = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ETIMEDOUT",
  "EPIPE",
  "EHOSTUNREACH",
  "ER_GET_CONNECTION_TIMEOUT",
  "ER_CONNECTION_TIMEOUT",
  "ER_SOCKET_UNEXPECTED_CLOSE",
  "ER_CLOSING_POOL",
  "ER_CONNECTION_ALREADY_CLOSED",
  "ER_POOL_ALREADY_CLOSED",
]);

/**
 * An infrastructure fault of the database (unreachable, restarting, locked,
 * full): doing the same work again later can succeed. Anything else a
 * statement fails with (data too long, bad value, constraint) is caused by
 * what was written, and retrying it unchanged fails forever. Classified by
 * the driver's errno/code/SQLSTATE class (08: connection exception), never
 * by message text.
 */
export function isTransientDbError(e: unknown): boolean {
  const err = e as { fatal?: boolean; code?: string; errno?: number; sqlState?: string } | null;
  if (!err || typeof err !== "object") return false;
  return (
    err.fatal === true ||
    (err.errno !== undefined && SERVER_FAULTS.has(err.errno)) ||
    CONNECTION_CODES.has(err.code ?? "") ||
    (typeof err.sqlState === "string" && err.sqlState.startsWith("08"))
  );
}

/** Rows an INSERT/UPDATE/DELETE changed (the OK packet's affectedRows). */
export function affected(result: unknown): number {
  return Number((result as { affectedRows?: number | bigint } | null)?.affectedRows ?? 0);
}

export interface TransactionOptions {
  attempts?: number;
  /**
   * READ COMMITTED takes no gap locks: right for batches whose safety comes
   * from unique keys rather than from locking absent rows.
   */
  isolation?: "READ COMMITTED" | "REPEATABLE READ";
}

/** Run `fn` in a transaction on one pooled connection; retries deadlocks. */
export async function inTransaction<T>(pool: mariadb.Pool, fn: (conn: Conn) => Promise<T>, opts: TransactionOptions | number = {}): Promise<T> {
  return transactionLoop(() => pool.getConnection(), true, fn, opts);
}

/** Like inTransaction, on a connection the caller holds and keeps (e.g. one holding a named lock). */
export async function inTransactionOn<T>(conn: Conn, fn: (conn: Conn) => Promise<T>, opts: TransactionOptions | number = {}): Promise<T> {
  return transactionLoop(async () => conn, false, fn, opts);
}

async function transactionLoop<T>(acquire: () => Promise<Conn>, release: boolean, fn: (conn: Conn) => Promise<T>, opts: TransactionOptions | number): Promise<T> {
  const { attempts = 4, isolation } = typeof opts === "number" ? { attempts: opts } : opts;
  for (let attempt = 1; ; attempt++) {
    const conn = await acquire();
    try {
      // pipelined: one round trip for both
      if (isolation) await Promise.all([conn.query(`SET TRANSACTION ISOLATION LEVEL ${isolation}`), conn.beginTransaction()]);
      else await conn.beginTransaction();
      const result = await fn(conn);
      await conn.commit();
      return result;
    } catch (e) {
      await conn.rollback().catch(() => undefined);
      const errno = errnoOf(e);
      if ((errno === DEADLOCK || errno === LOCK_WAIT_TIMEOUT) && attempt < attempts) {
        await new Promise((r) => setTimeout(r, 5 * attempt + Math.random() * 20));
        continue;
      }
      throw e;
    } finally {
      if (release) await conn.release().catch(() => undefined);
    }
  }
}

export interface NamedLock {
  /** the connection holding the lock: run the locked work on it */
  conn: Conn;
  release(): Promise<void>;
}

/** Per pool, the named-lock holders now that may wait for more of its connections (see namedLock). */
const needyHolders = new WeakMap<mariadb.Pool, number>();

/**
 * Take a MySQL named lock, waiting up to `waitS` seconds (0: not at all);
 * null when another session holds it. The name is scoped to the current
 * database: one server's lock namespace is shared by every database on it,
 * and two gateways (or two test databases) must not wait for each other. The
 * lock lives on its own pooled connection and dies with it, so a crashed
 * holder never leaves it taken.
 *
 * `extraConnections`: how many more of the pool's connections the holder
 * may wait for while it holds the lock (work not run on the lock's own
 * connection). Each such holder keeps one connection; with more of them
 * than the pool's limit less `extraConnections`, every one of them can be
 * waiting for a connection another keeps, until the pool times out, and
 * their retries meet the same wall (seen after a node outage, when many
 * blocks' deposits fell due at once). So past that many holders on the
 * pool (at least one), this answers null, as if the lock were taken: the
 * caller comes back later.
 */
export async function namedLock(pool: mariadb.Pool, name: string, waitS = 0, opts: { extraConnections?: number } = {}): Promise<NamedLock | null> {
  const extra = opts.extraConnections ?? 0;
  let counted = false;
  if (extra > 0) {
    const holders = needyHolders.get(pool) ?? 0;
    if (holders >= Math.max(1, poolLimitOf(pool) - extra)) return null;
    needyHolders.set(pool, holders + 1);
    counted = true;
  }
  const uncount = () => {
    if (!counted) return;
    counted = false;
    needyHolders.set(pool, (needyHolders.get(pool) ?? 1) - 1);
  };
  let conn: Conn;
  try {
    conn = await pool.getConnection();
  } catch (e) {
    uncount();
    throw e;
  }
  try {
    const rows = (await conn.query(`SELECT GET_LOCK(${SCOPED_LOCK}, ?) AS ok`, [name, waitS])) as { ok: bigint | number | null }[];
    if (Number(rows[0]?.ok) !== 1) {
      uncount();
      await conn.release().catch(() => undefined);
      return null;
    }
  } catch (e) {
    uncount();
    await conn.release().catch(() => undefined);
    throw e;
  }
  let released = false;
  return {
    conn,
    async release() {
      if (released) return;
      released = true;
      uncount();
      try {
        await conn.query(`SELECT RELEASE_LOCK(${SCOPED_LOCK})`, [name]);
      } catch {
        // never hand a connection that may still hold the lock back to the pool
        conn.destroy();
        return;
      }
      await conn.release().catch(() => undefined);
    },
  };
}

/** The server-wide name of a lock of this database (see namedLock). */
const SCOPED_LOCK = "CONCAT('payment:', SHA1(CONCAT(DATABASE(), '|', ?)))";

/** A named lock without waiting (see namedLock). */
export const tryNamedLock = (pool: mariadb.Pool, name: string, opts: { extraConnections?: number } = {}) => namedLock(pool, name, 0, opts);

/**
 * A transaction under a named lock held until after COMMIT (work that must
 * not interleave beyond the rows it locks, e.g. spending a headroom shared
 * by several wallets), or a plain one when `name` is null. A lock still
 * busy after `waitS` seconds is a RetryableError for the caller's job.
 */
export async function inLockedTransaction<T>(pool: mariadb.Pool, name: string | null, waitS: number, fn: (conn: Conn) => Promise<T>): Promise<T> {
  if (name === null) return inTransaction(pool, fn);
  const lock = await namedLock(pool, name, waitS);
  if (!lock) throw new RetryableError(`busy: could not take the lock ${name} in ${waitS} s`);
  try {
    return await inTransactionOn(lock.conn, fn);
  } finally {
    await lock.release();
  }
}

/** `?, ?, ?` for an IN (...) list of `n` values. */
export function inList(n: number): string {
  return Array(n).fill("?").join(", ");
}

/** `(?, ?, ?), (?, ?, ?)` for a multi-row insert. */
export function placeholders(rows: number, cols: number): string {
  const one = `(${Array(cols).fill("?").join(", ")})`;
  return Array(rows).fill(one).join(", ");
}
