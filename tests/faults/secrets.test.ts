/**
 * Secrets never leave the processes that need them. A full run: every role
 * as its own process at DEBUG log level, per-address log files on, a
 * deposit wallet imported through the CLI (key on stdin), a deposit to it,
 * withdrawals and a pay batch signed by the hot wallet, a sweep signed by
 * the imported deposit wallet (after a gas top-up signed by the collection
 * wallet), `payment history`, `payment wallet list`, `payment notify
 * redeliver`. Then everything the run left behind is searched for the
 * private keys (hex with and without 0x, and a 32-hex-digit slice of each),
 * the master key (hex and base64) and the communication key:
 *
 * - every byte any process or CLI command printed;
 * - the per-address log files;
 * - every value of every Redis key under the test's prefix (job hashes with
 *   their `data`, return values and stack traces, event streams, leases);
 * - every row of every table of the database (notification bodies, audit
 *   rows, raw requests; the wallet table holds only ciphertext);
 * - every notification the business system received.
 */
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readdirSync, readFileSync, statSync } from "node:fs";
import { gunzipSync } from "node:zlib";
import { tmpdir } from "node:os";
import path from "node:path";
import { Wallet } from "ethers";
import { Redis } from "ioredis";
import { REDIS_URL } from "../helpers/env.ts";
import { eventually } from "../helpers/rabbit.ts";
import { addressOfKey } from "../../shared/adapters/keystore.ts";
import { startFaultStack, randomAddress, HOT, HOT_KEY, COLLECTION_KEY, type FaultStack } from "./lib/fault-stack.ts";

let s: FaultStack;
const addressLogDir = mkdtempSync(path.join(tmpdir(), "payment-addrlog-"));
const depositKey = Wallet.createRandom().privateKey;

before(async () => {
  s = await startFaultStack({ confirmHeight: 2, logLevel: "debug", config: (c) => ({ ...c, log: { ...c.log, address_log_dir: addressLogDir } }) });
});

after(async () => {
  await s?.stop();
});

/** Every string value under `prefix:*`, whatever the key's type. */
async function dumpRedis(prefix: string): Promise<string> {
  const r = new Redis(REDIS_URL);
  const out: string[] = [];
  try {
    let cursor = "0";
    do {
      const [next, keys] = await r.scan(cursor, "MATCH", `${prefix}:*`, "COUNT", 1000);
      cursor = next;
      for (const k of keys) {
        const type = await r.type(k);
        if (type === "string") out.push(k, (await r.get(k)) ?? "");
        else if (type === "hash") out.push(k, JSON.stringify(await r.hgetall(k)));
        else if (type === "list") out.push(k, JSON.stringify(await r.lrange(k, 0, -1)));
        else if (type === "set") out.push(k, JSON.stringify(await r.smembers(k)));
        else if (type === "zset") out.push(k, JSON.stringify(await r.zrange(k, 0, -1, "WITHSCORES")));
        else if (type === "stream") out.push(k, JSON.stringify(await r.xrange(k, "-", "+")));
        else out.push(k, `(${type})`);
      }
    } while (cursor !== "0");
  } finally {
    r.disconnect();
  }
  return out.join("\n");
}

/** Every row of every table of the test database, as JSON. */
async function dumpDatabase(): Promise<string> {
  const tables = (await s.env.db.pool.query("SELECT table_name AS t FROM information_schema.tables WHERE table_schema = DATABASE()")) as { t: string }[];
  const out: string[] = [];
  for (const { t } of tables) {
    const rows = (await s.env.db.pool.query(`SELECT * FROM \`${t}\``)) as unknown[];
    out.push(`-- ${t}`, JSON.stringify(rows, (_k, v: unknown) => (typeof v === "bigint" ? v.toString() : v)));
  }
  return out.join("\n");
}

function filesUnder(dir: string): string[] {
  return readdirSync(dir).flatMap((f) => {
    const p = path.join(dir, f);
    return statSync(p).isDirectory() ? filesUnder(p) : [p];
  });
}

test("no private key, master key or communication key in any log, job, notification, audit row or CLI output of a full run", { timeout: 300_000 }, async (t) => {
  await s.startRoles();

  // a deposit wallet imported by an operator, key on stdin
  const imported = await s.procs.cli(["wallet", "import", "--kind", "deposit", "--label", "secrets-test"], { stdin: `${depositKey}\n` });
  assert.equal(imported.code, 0, imported.stderr);
  const depositAddress = addressOfKey(depositKey);
  assert.match(imported.stdout, new RegExp(depositAddress));

  await s.topup(depositAddress, "sec-topup");
  s.startMining(200);
  await s.deposit(depositAddress, "25.5");
  for (let i = 0; i < 3; i++) await s.withdraw(`sec-w-${i}`, randomAddress(), `${i + 1}.5`);
  await s.pay("sec-p", [0, 1, 2].map((i) => ({ orderId: `o${i}`, to: randomAddress(), amount: `0.${i + 1}` })));
  await s.settle(120_000);
  await s.verify();

  // the imported key signs too: the sweep (after a gas top-up from the collection wallet)
  const sweep = await s.procs.cli(["sweep"]);
  assert.equal(sweep.code, 0, sweep.stderr);
  await eventually(async () => (await s.env.db.prisma.transfer.findFirst({ where: { kind: "sweep", fromAddress: depositAddress } }))?.state === "confirmed", 120_000, 200);
  assert.ok(await s.env.db.prisma.transfer.findFirst({ where: { kind: "gas_topup", state: "confirmed" } }), "the collection wallet signed a gas top-up");

  for (const args of [["history", "sec-w-0"], ["history", depositAddress], ["history", HOT, "--json"], ["wallet", "list"], ["notify", "redeliver", "sec-w-1"]]) {
    const r = await s.procs.cli(args);
    assert.equal(r.code, 0, `${args.join(" ")}: ${r.stderr}`);
  }
  await s.biz.waitFor("withdraw", (n) => n.queue_id === "sec-w-1" && s.biz.received("withdraw").filter((x) => x.queue_id === "sec-w-1").length > 2, 30_000);
  await s.procs.stopAll(); // everything flushed

  const haystacks: { where: string; text: string }[] = [
    ...s.procs.logs().map((l) => ({ where: l.file, text: l.text })),
    ...filesUnder(addressLogDir).map((f) => ({ where: f, text: f.endsWith(".gz") ? gunzipSync(readFileSync(f)).toString("utf8") : readFileSync(f, "utf8") })),
    { where: "redis", text: await dumpRedis(s.env.redis.prefix) },
    { where: "database", text: await dumpDatabase() },
    { where: "notifications received", text: JSON.stringify(["topup", "withdraw", "pay", "remove"].flatMap((k) => s.biz.received(k as "topup"))) },
  ];
  // the haystacks hold what they should: the search looks at real material
  const all = haystacks.map((h) => h.text).join("\n").toLowerCase();
  assert.ok(all.includes('"level":20'), "debug lines were logged");
  assert.ok(all.includes("send-transfer") && all.includes("confirm-deposit"), "job payloads were dumped");
  assert.ok(all.includes("transfer.sent") && all.includes("notification_id"), "audit rows and notifications were dumped");
  assert.ok(all.includes(depositAddress) && all.includes(HOT), "addresses appear; only keys must not");

  const hex = (k: string) => k.toLowerCase().replace(/^0x/, "");
  const needles: { what: string; value: string }[] = [];
  for (const [what, key] of [
    ["hot wallet key", HOT_KEY],
    ["collection wallet key", COLLECTION_KEY],
    ["imported deposit wallet key", depositKey],
  ] as const) {
    needles.push({ what: `${what} (0x)`, value: `0x${hex(key)}` }, { what, value: hex(key) }, { what: `${what} (slice)`, value: hex(key).slice(16, 48) });
  }
  needles.push(
    { what: "master key", value: s.env.masterKey.toString("hex") },
    { what: "master key (base64)", value: s.env.masterKey.toString("base64").toLowerCase() },
    { what: "communication key", value: s.env.key.toLowerCase() },
  );
  const leaks = (text: string) => needles.filter((n) => text.toLowerCase().includes(n.value)).map((n) => n.what);
  assert.deepEqual(leaks(`noise ${HOT_KEY} noise ${s.env.key}`), ["hot wallet key (0x)", "hot wallet key", "hot wallet key (slice)", "communication key"], "the search finds what it looks for");

  const found = haystacks.flatMap((h) => leaks(h.text).map((what) => `${what} in ${h.where}`));
  assert.deepEqual(found, [], "secrets found");
  t.diagnostic(`searched ${haystacks.length} sources, ${Math.round(all.length / 1024)} KiB, for ${needles.length} secret forms: none found`);
});
