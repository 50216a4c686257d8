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

/**
 * Take a MySQL named lock, waiting up to `waitS` seconds (0: not at all);
 * null when another session holds it. The name is scoped to the current
 * database: one server's lock namespace is shared by every database on it,
 * and two gateways (or two test databases) must not wait for each other. The
 * lock lives on its own pooled connection and dies with it, so a crashed
 * holder never leaves it taken.
 */
export async function namedLock(pool: mariadb.Pool, name: string, waitS = 0): Promise<NamedLock | null> {
  const conn = await pool.getConnection();
  try {
    const rows = (await conn.query(`SELECT GET_LOCK(${SCOPED_LOCK}, ?) AS ok`, [name, waitS])) as { ok: bigint | number | null }[];
    if (Number(rows[0]?.ok) !== 1) {
      await conn.release().catch(() => undefined);
      return null;
    }
  } catch (e) {
    await conn.release().catch(() => undefined);
    throw e;
  }
  let released = false;
  return {
    conn,
    async release() {
      if (released) return;
      released = true;
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
export const tryNamedLock = (pool: mariadb.Pool, name: string) => namedLock(pool, name, 0);

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
