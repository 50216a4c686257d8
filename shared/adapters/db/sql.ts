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

export type Conn = mariadb.PoolConnection;

const DEADLOCK = 1213;
const LOCK_WAIT_TIMEOUT = 1205;
const DUPLICATE_KEY = 1062;

const errnoOf = (e: unknown) => (e as { errno?: number } | null)?.errno;

export function isDuplicateKey(e: unknown): boolean {
  return errnoOf(e) === DUPLICATE_KEY;
}

/** Connection-level failures: the server restarted or is unreachable. */
export function isTransientDbError(e: unknown): boolean {
  const err = e as { fatal?: boolean; code?: string; errno?: number } | null;
  if (!err) return false;
  if (err.errno === DEADLOCK || err.errno === LOCK_WAIT_TIMEOUT) return true;
  return (
    err.fatal === true ||
    ["ECONNREFUSED", "ECONNRESET", "ETIMEDOUT", "EPIPE", "ER_GET_CONNECTION_TIMEOUT", "ER_CONNECTION_TIMEOUT", "ER_SOCKET_UNEXPECTED_CLOSE", "ER_CLOSING_POOL"].includes(
      err.code ?? "",
    )
  );
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
 * Take a MySQL named lock without waiting; null when another session holds
 * it. The name is scoped to the current database (several databases share
 * one server's lock namespace). The lock lives on its own pooled connection
 * and dies with it, so a crashed holder never leaves it taken.
 */
export async function tryNamedLock(pool: mariadb.Pool, name: string): Promise<NamedLock | null> {
  const conn = await pool.getConnection();
  try {
    const rows = (await conn.query("SELECT GET_LOCK(CONCAT('payment:', SHA1(CONCAT(DATABASE(), '|', ?))), 0) AS ok", [name])) as { ok: bigint | number | null }[];
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
        await conn.query("SELECT RELEASE_LOCK(CONCAT('payment:', SHA1(CONCAT(DATABASE(), '|', ?))))", [name]);
      } catch {
        // never hand a connection that may still hold the lock back to the pool
        conn.destroy();
        return;
      }
      await conn.release().catch(() => undefined);
    },
  };
}

/** `(?, ?, ?), (?, ?, ?)` for a multi-row insert. */
export function placeholders(rows: number, cols: number): string {
  const one = `(${Array(cols).fill("?").join(", ")})`;
  return Array(rows).fill(one).join(", ");
}
