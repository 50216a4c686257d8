/**
 * The operator commands as an operator runs them (`node bin/payment.mjs ...`)
 * against a real MariaDB, Redis and anvil: where the configuration comes
 * from (and what is said when there is none), the one exit-code convention
 * (0 done, 1 failed or found differences, 2 bad usage), malformed
 * addresses and ids refused, a taken port named with the setting that
 * changes it, and dev-tools acking every notification it printed.
 */
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import * as amqp from "amqplib";
import { JsonRpcProvider, Wallet } from "ethers";
import { createTestEnv, RABBIT_URL, type TestEnv } from "../helpers/env.ts";
import { eventually } from "../helpers/rabbit.ts";
import { operatorShell, runPayment } from "../helpers/payment-cli.ts";
import { signMessage } from "../../shared/domain/signature.ts";
import { listen } from "../../cli/commands/dev-tools.ts";
import { masterKeyId } from "../../shared/adapters/keystore.ts";

let env: TestEnv;
let tmp: string;
let configFile: string;
let emptyDevDir: string;
let devDir: string;
const hot = Wallet.createRandom().address.toLowerCase();

/** An operator's shell without a configuration unless a test gives one (no dev system either). */
const shellEnv = (extra: Record<string, string> = {}) => operatorShell({ PAYMENT_DEV_DIR: emptyDevDir, ...extra });
const cli = (args: string[], env: NodeJS.ProcessEnv = shellEnv()) => runPayment(args, { env });

before(async () => {
  env = await createTestEnv({ anvil: true });
  tmp = mkdtempSync(path.join(tmpdir(), "payment-cli-"));
  configFile = path.join(tmp, "config.json");
  const { chains: _c, ...raw } = env.config as unknown as Record<string, unknown>;
  writeFileSync(configFile, JSON.stringify(raw));
  emptyDevDir = path.join(tmp, "no-dev");
  devDir = path.join(tmp, "dev");
  mkdirSync(devDir);
  writeFileSync(path.join(devDir, "config.json"), JSON.stringify(raw));
  await env.db.prisma.wallet.create({ data: { chain: "ETH", address: hot, kind: "hot", encryptedKey: "not-a-real-key", keyId: "test" } });
  await env.db.prisma.transfer.create({
    data: { kind: "withdraw", queueId: "w-ended", chain: "ETH", symbol: "USDT", requestedFrom: hot, toAddress: hot, amount: "1", state: "confirmed", finalizedAt: new Date() },
  });
});

after(async () => {
  await env?.cleanup();
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

test("the configuration: --config, PAYMENT_CONFIG, else the dev system's; each named on stderr", async () => {
  const byFlag = await cli(["history", "none-such", "--config", configFile]);
  assert.match(byFlag.stderr, new RegExp(`configuration .*config\\.json \\(--config\\)`));
  const byEnv = await cli(["history", "none-such"], shellEnv({ PAYMENT_CONFIG: configFile }));
  assert.match(byEnv.stderr, /configuration .*config\.json \(PAYMENT_CONFIG\)/);
  const dev = await cli(["history", "none-such"], shellEnv({ PAYMENT_DEV_DIR: devDir }));
  assert.match(dev.stderr, /configuration .*dev\/config\.json: the dev system's \(`npm run dev`\)/);
  for (const r of [byFlag, byEnv, dev]) {
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /nothing recorded for queue_id none-such/);
    assert.equal(r.stdout, "", "stdout is left to the command's output");
  }
});

test("with the dev configuration, the dev keys kept beside it are used where the environment sets none", async () => {
  const devKeys = path.join(tmp, "dev-keys");
  mkdirSync(devKeys);
  writeFileSync(path.join(devKeys, "config.json"), JSON.stringify(JSON.parse(readFileSync(configFile, "utf8"))));
  writeFileSync(path.join(devKeys, "master.key"), env.masterKey.toString("hex") + "\n", { mode: 0o600 });
  const r = await cli(["wallet", "create", "--label", "made with the dev key"], shellEnv({ PAYMENT_DEV_DIR: devKeys }));
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /the dev system's, with its keys/);
  const w = await env.db.prisma.wallet.findFirst({ where: { address: r.stdout.trim() } });
  assert.equal(w?.keyId, masterKeyId(env.masterKey));
  // any other configuration never picks up the dev keys
  const other = await cli(["wallet", "create"], shellEnv({ PAYMENT_DEV_DIR: devKeys, PAYMENT_CONFIG: configFile }));
  assert.equal(other.code, 2);
  assert.match(other.stderr, /set PAYMENT_MASTER_KEY/);
});

test("no configuration at all: says so and how to give one (exit 2)", async () => {
  const r = await cli(["reconcile"]);
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /no configuration found: give one with --config <file> or PAYMENT_CONFIG=<file>/);
  assert.match(r.stderr, /npm run dev/);
  assert.doesNotMatch(r.stderr, /eth_config/);
});

test("bad usage exits 2: unknown command or option, missing argument, malformed address or id", async () => {
  const withConfig = shellEnv({ PAYMENT_CONFIG: configFile });
  const cases: [string[], RegExp][] = [
    [["no-such-command"], /unknown command/],
    [["history"], /missing required argument/],
    [["reconcile", "--no-such-option"], /unknown option/],
    [["reconcile", "--address", "0xZZ"], /--address "0xZZ" is not an address \(0x followed by 40 hex digits\)/],
    [["reconcile", "--chain", "BSC"], /unknown chain "BSC" \(configured: ETH\)/],
    [["reconcile", "--symbol", "DOGE"], /--symbol DOGE is not configured/],
    [["history", "0x1234"], /0x1234 is not an address \(0x followed by 40 hex digits\), and nothing recorded for queue_id 0x1234/],
    [["history", "x", "--limit", "0"], /--limit/],
    [["retry", " padded"], /queue_id " padded" is not an id/],
    [["retry", "w-ended", "--kind", "deposit"], /--kind must be one of withdraw, pay, sweep, gas_topup/],
    [["wallet", "list", "--kind", "cold"], /--kind must be one of deposit, hot, collection/],
  ];
  for (const [args, message] of cases) {
    const r = await cli(args, withConfig);
    assert.equal(r.code, 2, `${args.join(" ")}: ${r.stderr}`);
    assert.match(r.stderr, message, args.join(" "));
  }
});

test("--help states the exit codes and exits 0; a command that cannot act exits 1", async () => {
  for (const args of [["--help"], ["reconcile", "--help"], ["wallet", "import", "--help"]]) {
    const r = await cli(args);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /Exit status: 0 done; 1 failed, or found what it looks for/);
  }
  const withConfig = shellEnv({ PAYMENT_CONFIG: configFile });
  const ended = await cli(["retry", "w-ended"], withConfig);
  assert.equal(ended.code, 1, ended.stderr);
  assert.match(ended.stdout, /ended confirmed: an ended transfer is never retried/);
  const unknown = await cli(["retry", "w-unknown"], withConfig);
  assert.equal(unknown.code, 1);
  assert.match(unknown.stderr, /no transfer with queue_id w-unknown/);
  const notify = await cli(["notify", "redeliver", "w-unknown"], withConfig);
  assert.equal(notify.code, 1);
  assert.match(notify.stderr, /no notification recorded for queue_id w-unknown/);
});

test("reconcile: differences exit 1 with a hint; adopted, the book matches and it exits 0", async () => {
  const withConfig = shellEnv({ PAYMENT_CONFIG: configFile });
  const provider = new JsonRpcProvider(env.anvil!.rpcUrl, undefined, { staticNetwork: true });
  await provider.send("anvil_setBalance", [hot, "0x56bc75e2d63100000"]); // 100 ETH
  provider.destroy();
  await env.db.prisma.transfer.create({
    data: { kind: "withdraw", queueId: "w-in-flight", chain: "ETH", symbol: "USDT", requestedFrom: hot, fromAddress: hot, toAddress: hot, amount: "1", state: "sent" },
  });
  const differs = await cli(["reconcile", "--address", hot.toUpperCase().replace("0X", "0x")], withConfig);
  assert.equal(differs.code, 1, differs.stderr);
  assert.match(differs.stdout, /100/);
  assert.match(differs.stderr, /1 transfer\(s\) and 0 deposit\(s\) of these addresses are on chain but not final yet/);
  assert.match(differs.stderr, /--adopt-chain/);
  const adopt = await cli(["reconcile", "--adopt-chain"], withConfig);
  assert.equal(adopt.code, 0, adopt.stderr);
  const clean = await cli(["reconcile"], withConfig);
  assert.equal(clean.code, 0, clean.stderr);
  assert.match(clean.stdout, /book balances match the chain/);
});

async function holdPort(): Promise<Server> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return server;
}

test("a taken dashboard port is named with the setting that changes it (exit 2, no stack)", async () => {
  const taken = await holdPort();
  const port = (taken.address() as { port: number }).port;
  try {
    const file = path.join(tmp, "dashboard.json");
    const { chains: _c, ...raw } = env.config as unknown as Record<string, unknown>;
    writeFileSync(file, JSON.stringify({ ...raw, dashboard: { host: "127.0.0.1", port, user: "ops" } }));
    const r = await cli(["start", "--role", "dashboard", "--config", file], shellEnv({ PAYMENT_DASHBOARD_PASSWORD: "pw-for-the-test" }));
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, new RegExp(`dashboard\\.port: cannot listen on 127\\.0\\.0\\.1:${port} \\(another process listens there\\); .*PAYMENT__DASHBOARD__PORT`));
    assert.doesNotMatch(r.stderr, /EADDRINUSE|at .*\.ts:\d+/);

    // payment dev checks before starting anything, and names its flag
    const dev = await cli(
      ["dev", "--dashboard-port", String(port), "--prefix", `test.${env.id}.dev`, "--mysql-url", `${env.config.mysql_url}_dev`],
      shellEnv({ PAYMENT_DEV_DIR: path.join(tmp, "dev-port") }),
    );
    assert.equal(dev.code, 2, dev.stderr);
    assert.match(dev.stderr, new RegExp(`the dashboard cannot listen on 127\\.0\\.0\\.1:${port} .*--dashboard-port <port>`));
  } finally {
    taken.close();
  }
});

test("dev-tools listen acks every notification it printed: the next listener does not get it again", async () => {
  const conn = await amqp.connect(RABBIT_URL);
  try {
    const ch = await conn.createChannel();
    const { topup_resp: topup, remove_resp: remove } = env.config.rmq_config;
    for (const r of [topup, remove]) await ch.assertQueue(r.queue, { durable: true });
    const printed: number[] = [];
    const listening = listen(env.config, env.key, (_kind, n) => printed.push(Number(n.seq)) === 3);
    // as in the demo, the last notification arrives once the listener is up (it sets up remove_resp last)
    await eventually(async () => (await ch.checkQueue(remove.queue)).consumerCount === 1);
    for (const seq of [1, 2, 3]) ch.sendToQueue(topup.queue, Buffer.from(JSON.stringify(signMessage({ seq, status: 1 }, env.key))));
    await listening;
    assert.deepEqual(printed, [1, 2, 3]);
    // the broker counts an unacked message as ready again once the listener's connection is gone
    await eventually(async () => (await ch.checkQueue(topup.queue)).consumerCount === 0);
    const left = await ch.checkQueue(topup.queue);
    assert.equal(left.messageCount, 0, "every printed notification was acked");
    await ch.close();
  } finally {
    await conn.close();
  }
});
