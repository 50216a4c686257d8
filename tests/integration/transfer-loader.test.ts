/**
 * The coalesced transfer loader (shared/transfers/rows.ts) on a real
 * MariaDB: reads asked for together go out as one query and each caller
 * gets its own row (or null), exactly as loadTransfer would give it; a read
 * never answers from before it was asked (a commit between two turns is
 * seen); a failed query fails the reads it carried and the next ones work.
 */
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { createTestEnv, type TestEnv } from "../helpers/env.ts";
import { coalescedTransferLoader, loadTransfer } from "../../shared/transfers/rows.ts";
import type { Pool } from "mariadb";

let env: TestEnv;
const ids: bigint[] = [];

before(async () => {
  env = await createTestEnv();
  for (let i = 0; i < 5; i++) {
    const t = await env.db.prisma.transfer.create({
      data: { kind: "pay", queueId: "loader-q", orderId: `o${i}`, chain: "ETH", symbol: "USDT", requestedFrom: "0x" + "1".repeat(40), toAddress: "0x" + "2".repeat(40), amount: `${i}.000001`, state: "queued" },
    });
    ids.push(t.id);
  }
});

after(async () => {
  await env?.cleanup();
});

/** the pool, counting the queries that reach it */
function counting(pool: Pool) {
  const seen: string[] = [];
  const db = { query: (sql: string, values?: unknown) => (seen.push(sql), pool.query(sql, values)) } as unknown as Pool;
  return { db, seen };
}

test("reads asked for in one turn share one query; each gets what loadTransfer gives", async () => {
  const { db, seen } = counting(env.db.pool);
  const load = coalescedTransferLoader(db);
  const missing = ids.at(-1)! + 1_000_000n;
  const asked = [ids[3]!, ids[0]!, missing, ids[3]!, ids[1]!];
  const got = await Promise.all(asked.map((id) => load(id)));
  assert.equal(seen.length, 1, "one query for the turn");
  for (const [k, id] of asked.entries()) assert.deepEqual(got[k], await loadTransfer(env.db.pool, id));
  assert.equal(got[2], null);
  assert.equal(got[0]!.amount, "3.000001000000000000", "DECIMAL as exact text, as loadTransfer reads it");
});

test("a read asked for after a commit sees it; more ids than one query takes are split", async () => {
  const { db, seen } = counting(env.db.pool);
  const load = coalescedTransferLoader(db, 2);
  assert.equal((await load(ids[2]!))!.state, "queued");
  await env.db.pool.query("UPDATE transfer SET state = 'cancelled' WHERE id = ?", [ids[2]!]);
  const got = await Promise.all(ids.map((id) => load(id)));
  assert.equal(got[2]!.state, "cancelled");
  assert.deepEqual(got.map((r) => r!.id), ids);
  assert.equal(seen.length, 1 + Math.ceil(ids.length / 2));
});

test("a failed query fails the reads it carried; the next turn's reads work", async () => {
  let fail = true;
  const db = { query: (sql: string, values?: unknown) => (fail ? Promise.reject(new Error("connection lost")) : env.db.pool.query(sql, values)) } as unknown as Pool;
  const load = coalescedTransferLoader(db);
  const failed = await Promise.allSettled([load(ids[0]!), load(ids[1]!)]);
  assert.deepEqual(failed.map((r) => r.status), ["rejected", "rejected"]);
  fail = false;
  assert.equal((await load(ids[1]!))!.id, ids[1]);
});
