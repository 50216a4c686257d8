/**
 * MySQL/MariaDB access: one mariadb connection pool shared by Prisma Client
 * (through the MariaDB driver adapter, no native engine needed) and by the
 * few hot paths that batch with raw SQL.
 *
 * Failure modes: a restarted or unreachable server makes queries reject with
 * connection errors; callers treat those as retryable (the pool reconnects on
 * its own). Nothing connects at import time: `createDb` opens the pool.
 */
import * as mariadb from "mariadb";
import { PrismaMariaDb } from "@prisma/adapter-mariadb";
import { PrismaClient } from "./generated/client.ts";

export type { PrismaClient };
export { Prisma } from "./generated/client.ts";

export interface Db {
  prisma: PrismaClient;
  pool: mariadb.Pool;
  /** database name in use */
  database: string;
  close(): Promise<void>;
}

/** Connection settings from a mysql:// (or mariadb://) URL. */
export function poolConfigFromUrl(url: string, connectionLimit = 10): mariadb.PoolConfig & { database: string } {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new Error("mysql_url is not a valid URL (mysql://user:password@host:3306/database)");
  }
  if (!["mysql:", "mariadb:"].includes(u.protocol)) throw new Error("mysql_url must start with mysql:// or mariadb://");
  const database = decodeURIComponent(u.pathname.replace(/^\//, ""));
  if (!database) throw new Error("mysql_url must name a database (mysql://host:3306/payment)");
  return {
    host: u.hostname || "127.0.0.1",
    port: u.port ? Number(u.port) : 3306,
    user: decodeURIComponent(u.username || "root"),
    password: decodeURIComponent(u.password),
    database,
    connectionLimit,
    // Every DATETIME is UTC, including CURRENT_TIMESTAMP(3) defaults.
    timezone: "+00:00",
    prepareCacheLength: 0,
    acquireTimeout: 20_000,
    connectTimeout: 5_000,
    // Keep DECIMAL exact (strings) and BIGINT lossless (bigint).
    decimalAsNumber: false,
    bigIntAsNumber: false,
    insertIdAsNumber: false,
  };
}

/** Each pool's connection limit (the mariadb pool does not say it): see namedLock's `extraConnections`. */
const poolLimits = new WeakMap<mariadb.Pool, number>();

/** The most connections `pool` opens (10, mariadb's default, for a pool not made by createDb). */
export function poolLimitOf(pool: mariadb.Pool): number {
  return poolLimits.get(pool) ?? 10;
}

export function createDb(opts: { url: string; poolSize?: number }): Db {
  const config = poolConfigFromUrl(opts.url, opts.poolSize ?? 10);
  const pool = mariadb.createPool(config);
  poolLimits.set(pool, config.connectionLimit!);
  const adapter = new PrismaMariaDb(pool, { database: config.database });
  const prisma = new PrismaClient({ adapter });
  let closed = false;
  return {
    prisma,
    pool,
    database: config.database,
    async close() {
      if (closed) return;
      closed = true;
      await prisma.$disconnect().catch(() => undefined);
      await pool.end().catch(() => undefined);
    },
  };
}
