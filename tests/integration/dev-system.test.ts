/**
 * `payment dev` as a new operator meets it, in its own names (a prefix and a
 * database of this test): every role up on a fresh dev chain, the book
 * clean against the chain from the start and after the demo, its queues
 * named with its prefix, and the demo leaving no notification unacked.
 */
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import * as amqp from "amqplib";
import { Redis } from "ioredis";
import * as mariadb from "mariadb";
import { MYSQL_ROOT, RABBIT_URL, REDIS_URL } from "../helpers/env.ts";
import { eventually } from "../helpers/rabbit.ts";
import { operatorShell, PAYMENT_BIN, runPayment } from "../helpers/payment-cli.ts";
import { prefixedRoutes, RMQ_ROUTE_KEYS } from "../../shared/config/schema.ts";
import { poolConfigFromUrl } from "../../shared/adapters/db/client.ts";

const id = randomBytes(4).toString("hex");
const prefix = `test-${id}-dev`;
const database = `test_${id}_dev`;
const routes = prefixedRoutes(prefix);
let devDir: string;
let dev: ChildProcess | undefined;
let devOutput = "";

const shellEnv = () => operatorShell({ PAYMENT_DEV_DIR: devDir });
const cli = (args: string[]) => runPayment(args, { env: shellEnv() });

before(async () => {
  devDir = mkdtempSync(path.join(tmpdir(), "payment-dev-"));
  const child = spawn(
    process.execPath,
    [PAYMENT_BIN, "dev", "--dashboard-port", "0", "--confirm-height", "2", "--prefix", prefix, "--mysql-url", `${MYSQL_ROOT}/${database}`, "--redis-url", REDIS_URL, "--amqp-url", RABBIT_URL],
    { env: { ...shellEnv(), PAYMENT__LOG__LEVEL: "warn" }, stdio: ["ignore", "pipe", "pipe"] },
  );
  dev = child;
  child.stdout!.on("data", (d) => (devOutput += d));
  child.stderr!.on("data", (d) => (devOutput += d));
  // ends as soon as it runs or exits (an exit is reported with its output at once, not after the timeout)
  await eventually(() => child.exitCode !== null || devOutput.includes("payment dev is running"), 180_000);
  if (child.exitCode !== null) throw new Error(`payment dev exited ${child.exitCode}:\n${devOutput}`);
});

after(async () => {
  if (dev && dev.exitCode === null) {
    const exited = new Promise((resolve) => dev!.once("exit", resolve));
    dev.kill("SIGTERM");
    await exited;
  }
  const conn = await amqp.connect(RABBIT_URL);
  const ch = await conn.createChannel();
  for (const k of RMQ_ROUTE_KEYS) await ch.deleteQueue(routes[k].queue);
  await ch.deleteExchange(routes.topup.exchange);
  await conn.close();
  const redis = new Redis(REDIS_URL);
  let cursor = "0";
  do {
    const [next, keys] = await redis.scan(cursor, "MATCH", `${prefix}:*`, "COUNT", 1000);
    if (keys.length > 0) await redis.unlink(...keys);
    cursor = next;
  } while (cursor !== "0");
  redis.disconnect();
  const admin = await mariadb.createConnection({ ...poolConfigFromUrl(`${MYSQL_ROOT}/mysql`, 1), database: undefined });
  await admin.query(`DROP DATABASE IF EXISTS \`${database}\``);
  await admin.end();
  rmSync(devDir, { recursive: true, force: true });
});

test("a fresh dev system: reconcile is clean, as the README writes it (its config found in .dev/)", async () => {
  const r = await cli(["reconcile"]);
  assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
  assert.match(r.stdout, /book balances match the chain \(4 balances checked\)/, "ETH and USDT of the hot and collection wallets");
  assert.match(r.stderr, /the dev system's/);
});

test("its queues and exchange carry its prefix, like its Redis keys", async () => {
  assert.match(devOutput, new RegExp(`queues ${prefix}\\.pay\\.\\*\\.queue on exchange ${prefix}\\.pay\\.exchange`));
  const conn = await amqp.connect(RABBIT_URL);
  try {
    const ch = await conn.createChannel();
    // the bridge consumes the prefixed request queues
    await eventually(async () => (await ch.checkQueue(routes.withdraw.queue)).consumerCount === 1);
    assert.equal(routes.withdraw.exchange, `${prefix}.pay.exchange`);
    await ch.close();
  } finally {
    await conn.close();
  }
});

test("the demo prints both notifications and acks them; reconcile stays clean", async () => {
  const demo = await cli(["dev-tools", "demo", "--amount", "1.5"]);
  assert.equal(demo.code, 0, `${demo.stdout}\n${demo.stderr}\n${devOutput.slice(-3000)}`);
  assert.match(demo.stdout, /"status":2/);
  assert.match(demo.stdout, /"status":1/);
  const conn = await amqp.connect(RABBIT_URL);
  try {
    const ch = await conn.createChannel();
    const left = await ch.checkQueue(routes.topup_resp.queue);
    assert.equal(left.consumerCount, 0, "the demo's listener is gone");
    assert.equal(left.messageCount, 0, "nothing it printed is left for the next listener");
    await ch.close();
  } finally {
    await conn.close();
  }
  const r = await cli(["reconcile"]);
  assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
  assert.match(r.stdout, /book balances match the chain \(5 balances checked\)/, "the deposit address too");
});
