/**
 * MySQL named locks (shared/adapters/db/sql.ts namedLock) on a real MariaDB:
 * one holder per name; a holder that may need more of the pool's connections
 * (`extraConnections`) is refused past the pool's limit less those, so such
 * holders can never all be waiting for a connection another one keeps; and
 * every way out (release, a lock taken by someone else) gives the place back.
 */
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { createTestEnv, type TestEnv } from "../helpers/env.ts";
import { namedLock, tryNamedLock, type NamedLock } from "../../shared/adapters/db/sql.ts";
import { poolLimitOf } from "../../shared/adapters/db/client.ts";

let env: TestEnv;

before(async () => {
  env = await createTestEnv();
});

after(async () => {
  await env?.cleanup();
});

test("one holder per name; released, it is free again", async () => {
  const a = await tryNamedLock(env.db.pool, "t:one");
  assert.ok(a);
  assert.equal(await tryNamedLock(env.db.pool, "t:one"), null);
  await a.release();
  const b = await tryNamedLock(env.db.pool, "t:one");
  assert.ok(b);
  await b.release();
});

test("holders that need more connections: at most the pool's limit less those, each of them able to get them", async () => {
  const pool = env.db.pool;
  const limit = poolLimitOf(pool);
  assert.equal(limit, 5, "the test pool's size (tests/helpers/env.ts)");
  const extra = 2;
  const held: NamedLock[] = [];
  for (let i = 0; ; i++) {
    const l = await tryNamedLock(pool, `t:needy:${i}`, { extraConnections: extra });
    if (!l) break;
    held.push(l);
  }
  assert.equal(held.length, limit - extra);
  // what the limit is for: every holder can take its extra connections at once (no pool timeout)
  const conns = await Promise.all(held.slice(0, 1).flatMap(() => Array.from({ length: extra }, () => pool.getConnection())));
  for (const c of conns) await c.release();
  // a lock that needs nothing more is not counted against them
  const plain = await tryNamedLock(pool, "t:plain");
  assert.ok(plain);
  await plain.release();
  // one released: one more can come in
  await held.pop()!.release();
  const next = await tryNamedLock(pool, "t:needy:next", { extraConnections: extra });
  assert.ok(next);
  held.push(next);
  assert.equal(await tryNamedLock(pool, "t:needy:over", { extraConnections: extra }), null);
  for (const l of held) await l.release();
});

test("a name another session holds gives its place back (no leak of the holder count)", async () => {
  const pool = env.db.pool;
  const other = await namedLock(pool, "t:taken");
  assert.ok(other);
  for (let i = 0; i < 10; i++) assert.equal(await tryNamedLock(pool, "t:taken", { extraConnections: 2 }), null);
  await other.release();
  const held: NamedLock[] = [];
  for (let i = 0; i < 3; i++) {
    const l = await tryNamedLock(pool, `t:after:${i}`, { extraConnections: 2 });
    assert.ok(l, `holder ${i}: the refused tries above left no count behind`);
    held.push(l);
  }
  for (const l of held) await l.release();
});
