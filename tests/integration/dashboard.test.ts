/**
 * The dashboard role on real Redis, MariaDB, RabbitMQ and anvil: Basic auth
 * in front of Bull Board, /health naming what is down, /metrics with the
 * gateway-wide gauges computed from MySQL, Redis and the node.
 */
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { createTestEnv, type TestEnv } from "../helpers/env.ts";
import { parseConfig, ConfigError } from "../../shared/config/load-config.ts";
import { createMetrics } from "../../shared/metrics.ts";
import { enqueue } from "../../shared/jobs/registry.ts";
import { createDashboard } from "../../workers/dashboard/main.ts";
import { parseBasicAuth, safeEqual } from "../../workers/dashboard/basic-auth.ts";
import { redactJobData } from "../../workers/dashboard/bull-board.ts";
import { createMetricsServer } from "../../shared/runtime/metrics-server.ts";
import { eventually } from "../helpers/rabbit.ts";
import { GATEWAY_METRICS } from "../helpers/metric-names.ts";

const PASSWORD = "correct horse battery staple";
let env: TestEnv;
let dash: ReturnType<typeof createDashboard>;
let base: string;

const basic = (user: string, pass: string) => ({ authorization: `Basic ${Buffer.from(`${user}:${pass}`).toString("base64")}` });

before(async () => {
  env = await createTestEnv({ anvil: true, config: (c) => ({ ...c, dashboard: { port: 0, user: "ops", password: PASSWORD } }) });
  dash = createDashboard({ ...env, checkTimeoutMs: 1500 });
  await dash.start();
  base = `http://127.0.0.1:${dash.port}`;
});

after(async () => {
  await dash?.stop();
  await env?.cleanup();
});

/** The same config with the node's RPC URL pointing at a closed port. */
function withDeadNode() {
  const eth = env.config.eth_config!;
  return parseConfig({ ...env.config, eth_config: { ...eth, rpc_url: "http://127.0.0.1:1", ws_url: undefined } });
}

test("refuses to start without a password, naming the setting", () => {
  const config = parseConfig({ ...env.config, dashboard: { port: 0, user: "ops" } });
  assert.throws(
    () => createDashboard({ ...env, config }),
    (e: unknown) => e instanceof ConfigError && /dashboard\.password/.test(e.message) && /PAYMENT_DASHBOARD_PASSWORD/.test(e.message),
  );
});

test("the board answers 401 with a challenge without or with wrong credentials, 200 with them", async () => {
  assert.ok(dash.port > 0, "an ephemeral port was bound");
  const none = await fetch(`${base}/admin/queues`);
  assert.equal(none.status, 401);
  assert.match(none.headers.get("www-authenticate") ?? "", /^Basic realm=/);
  for (const [u, p] of [
    ["ops", "wrong"],
    ["admin", PASSWORD],
    ["ops", PASSWORD + "x"],
    ["ops", ""],
  ] as const) {
    const r = await fetch(`${base}/admin/queues`, { headers: basic(u, p) });
    assert.equal(r.status, 401, `${u}:${p}`);
  }
  const api = await fetch(`${base}/admin/queues/api/queues`);
  assert.equal(api.status, 401, "the board's API is behind the same auth");

  const ok = await fetch(`${base}/admin/queues`, { headers: basic("ops", PASSWORD) });
  assert.equal(ok.status, 200);
  assert.match(await ok.text(), /<html/i);
  const queues = await fetch(`${base}/admin/queues/api/queues`, { headers: basic("ops", PASSWORD) });
  assert.equal(queues.status, 200);
  const names = ((await queues.json()) as { queues: { name: string }[] }).queues.map((q) => q.name).sort();
  assert.deepEqual(names, ["confirm", "maintenance", "transfer"]);
});

test("basic-auth parsing and comparison", () => {
  assert.deepEqual(parseBasicAuth(basic("a", "b:c").authorization), { user: "a", password: "b:c" });
  assert.equal(parseBasicAuth("Bearer xyz"), null);
  assert.equal(parseBasicAuth(`Basic ${Buffer.from("nocolon").toString("base64")}`), null);
  assert.equal(safeEqual("same", "same"), true);
  assert.equal(safeEqual("same", "same-but-longer"), false);
});

test("job data shown on the board has secret-looking fields redacted", () => {
  assert.deepEqual(redactJobData({ transferId: "1", label: "withdraw w1", type: "send-transfer", nested: { privateKey: "0xabc" } }), {
    transferId: "1",
    label: "withdraw w1",
    type: "send-transfer",
    nested: { privateKey: "[redacted]" },
  });
});

test("/health is 200 when everything answers", async () => {
  const r = await fetch(`${base}/health`);
  const body = (await r.json()) as { status: string; checks: Record<string, unknown> };
  assert.equal(r.status, 200, JSON.stringify(body));
  assert.deepEqual(body, { status: "ok", checks: { redis: { ok: true }, mysql: { ok: true }, rabbitmq: { ok: true }, node: { ETH: { ok: true } } } });
});

test("/health is 503 naming the node when its RPC URL points at a closed port", async () => {
  const other = createDashboard({ ...env, config: withDeadNode(), metrics: createMetrics({ defaults: false }), checkTimeoutMs: 1500 });
  await other.start();
  try {
    const r = await fetch(`http://127.0.0.1:${other.port}/health`);
    const text = await r.text();
    assert.equal(r.status, 503, text);
    const body = JSON.parse(text) as { status: string; down: string[]; checks: { node: Record<string, { ok: boolean; error?: string }>; redis: { ok: boolean } } };
    assert.equal(body.status, "down");
    assert.deepEqual(body.down, ["node.ETH"]);
    assert.equal(body.checks.node.ETH!.ok, false);
    assert.equal(body.checks.redis.ok, true);
    assert.doesNotMatch(text, /127\.0\.0\.1:1\b|http:\/\//, "no URL is revealed to unauthenticated callers");

    const m = await (await fetch(`http://127.0.0.1:${other.port}/metrics`)).text();
    assert.match(m, /^payment_dependency_up\{service="node\.ETH"\} 0$/m);
    assert.match(m, /^payment_dependency_up\{service="mysql"\} 1$/m);
    assert.doesNotMatch(m, /^payment_chain_head_block\{/m, "no head is reported while the node is down");
  } finally {
    await other.stop();
  }
});

test("/metrics serves every gateway metric, with global gauges computed on scrape", async () => {
  const { prisma } = env.db;
  await prisma.deposit.create({
    data: { chain: "ETH", symbol: "USDT", txHash: "0x" + "01".repeat(32), logIndex: 0, blockNumber: 1n, blockHash: "0x" + "02".repeat(32), fromAddress: "0x" + "03".repeat(20), toAddress: "0x" + "04".repeat(20), amount: "1.5", state: "seen" },
  });
  await prisma.deposit.create({
    data: { chain: "ETH", symbol: "USDT", txHash: "0x" + "05".repeat(32), logIndex: 0, blockNumber: 1n, blockHash: "0x" + "02".repeat(32), fromAddress: "0x" + "03".repeat(20), toAddress: "0x" + "04".repeat(20), amount: "2", state: "confirmed" },
  });
  for (const [n, state] of [[1, "sent"], [2, "mined"], [3, "confirmed"], [4, "queued"]] as const) {
    await prisma.transfer.create({
      data: { kind: "withdraw", queueId: `m-${n}`, chain: "ETH", symbol: "USDT", requestedFrom: "0x" + "05".repeat(20), toAddress: "0x" + "06".repeat(20), amount: "1", state },
    });
  }
  await prisma.notification.createMany({
    data: [
      { kind: "withdraw", dedupeKey: "m-a", status: 2, body: "{}", state: "pending" },
      { kind: "withdraw", dedupeKey: "m-b", status: 2, body: "{}", state: "pending" },
      { kind: "withdraw", dedupeKey: "m-c", status: 1, body: "{}", state: "sent" },
    ],
  });
  const rpc = await fetch(env.anvil!.rpcUrl, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "eth_blockNumber", params: [] }),
  });
  const head = BigInt(((await rpc.json()) as { result: string }).result);
  // a transfer signed two minutes ago that the node has not accepted yet
  const held = await prisma.transfer.create({
    data: { kind: "withdraw", queueId: "m-signed", chain: "ETH", symbol: "USDT", requestedFrom: "0x" + "05".repeat(20), toAddress: "0x" + "06".repeat(20), amount: "1", state: "signed", nonce: 7n },
  });
  await env.db.pool.query(
    `INSERT INTO tx_attempt (transfer_id, chain, from_address, nonce, tx_hash, raw_tx, max_fee_per_gas, max_priority_fee_per_gas, gas_limit, state, created_at)
     VALUES (?, 'ETH', ?, 7, ?, '0x00', 1, 1, 21000, 'signed', NOW(3) - INTERVAL 120 SECOND)`,
    [held.id, "0x" + "05".repeat(20), "0x" + "0a".repeat(32)],
  );
  await prisma.chainCursor.create({ data: { chain: "ETH", blockNumber: 0n, blockHash: "0x" + "00".repeat(32) } });
  await enqueue(env.queues, "send-transfer", { transferId: "999", label: "withdraw metrics-test" }, { delay: 60_000 });
  env.metrics.transfers.inc({ chain: "ETH", symbol: "USDT", status: "failed" });

  const r = await fetch(`${base}/metrics`);
  assert.equal(r.status, 200);
  assert.match(r.headers.get("content-type") ?? "", /text\/plain/);
  const m = await r.text();
  for (const name of GATEWAY_METRICS) {
    assert.match(m, new RegExp(`^# TYPE ${name} `, "m"), name);
  }
  assert.match(m, /^payment_pending_confirmations\{chain="ETH"\} 3$/m, "1 seen deposit + 1 sent + 1 mined transfer");
  assert.match(m, /^payment_outbox_pending 2$/m);
  const unbroadcast = /^payment_transfer_unbroadcast_seconds\{chain="ETH"\} (\d+)$/m.exec(m);
  assert.ok(unbroadcast && Number(unbroadcast[1]) >= 120 && Number(unbroadcast[1]) < 200, `oldest signed, not broadcast: ${unbroadcast?.[1]}`);
  assert.match(m, /^payment_queue_jobs\{queue="transfer",state="delayed"\} 1$/m);
  assert.match(m, /^payment_queue_jobs\{queue="confirm",state="failed"\} 0$/m);
  assert.match(m, /^payment_transfers_total\{chain="ETH",symbol="USDT",status="failed"\} 1$/m);
  const headLine = /^payment_chain_head_block\{chain="ETH"\} (\d+)$/m.exec(m);
  assert.ok(headLine, m);
  assert.ok(BigInt(headLine[1]!) >= head);
  const lag = /^payment_chain_lag_blocks\{chain="ETH"\} (\d+)$/m.exec(m);
  assert.equal(lag?.[1], headLine[1], "lag = head - cursor (cursor at 0)");
  assert.match(m, /^payment_dependency_up\{service="rabbitmq"\} 1$/m);
  assert.match(m, /^payment_dependency_up\{service="node\.ETH"\} 1$/m);
});

test("a process without the dashboard serves its own counters on metrics.port", async () => {
  const metrics = createMetrics({ defaults: false });
  metrics.transfers.inc({ chain: "ETH", symbol: "USDT", status: "confirmed" }, 2);
  const server = createMetricsServer({ metrics, logger: env.logger, host: "127.0.0.1", port: 0 });
  await server.start();
  try {
    const r = await fetch(`http://127.0.0.1:${server.port}/metrics`);
    assert.equal(r.status, 200);
    assert.match(await r.text(), /^payment_transfers_total\{chain="ETH",symbol="USDT",status="confirmed"\} 2$/m);
    assert.equal((await fetch(`http://127.0.0.1:${server.port}/admin/queues`)).status, 404, "nothing else is served");
  } finally {
    await server.stop();
  }
});

test("`payment start --role dashboard` serves until SIGTERM, and refuses to start without a password", async () => {
  const dir = mkdtempSync(path.join(tmpdir(), "payment-dashboard-"));
  try {
    const file = path.join(dir, "config.json");
    writeFileSync(file, JSON.stringify({ ...env.config, dashboard: { host: "127.0.0.1", port: 0, user: "ops" }, log: { level: "info" } }));
    const cli = path.resolve("bin/payment.mjs");
    const { PAYMENT_DASHBOARD_PASSWORD: _drop, ...baseEnv } = process.env;

    const refused = spawnSync(process.execPath, [cli, "start", "--role", "dashboard", "--config", file], { env: baseEnv, encoding: "utf8", timeout: 60_000 });
    assert.equal(refused.status, 2, refused.stderr);
    assert.match(refused.stderr, /PAYMENT_DASHBOARD_PASSWORD/);

    const child = spawn(process.execPath, [cli, "start", "--role", "dashboard", "--config", file], {
      env: { ...baseEnv, PAYMENT_DASHBOARD_PASSWORD: PASSWORD },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    child.stderr.on("data", (d: Buffer) => (out += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
    const port = await eventually(() => /"msg":"dashboard: listening"/.test(out) && Number(/"port":(\d+)[^\n]*dashboard: listening/.exec(out)?.[1]), 30_000);
    const ok = await fetch(`http://127.0.0.1:${port}/admin/queues`, { headers: basic("ops", PASSWORD) });
    assert.equal(ok.status, 200);
    assert.equal((await fetch(`http://127.0.0.1:${port}/admin/queues`)).status, 401);
    assert.doesNotMatch(out, new RegExp(PASSWORD), "the password is never logged");
    child.kill("SIGTERM");
    assert.equal(await exited, 0, out);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
