/**
 * Configuration (SPEC §6): file + environment overrides, validated with zod,
 * clear errors naming the key; secrets from the environment or files only,
 * never echoed in an error.
 */
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { parseConfig, loadConfig, applyEnvOverrides, ConfigError, configWarnings, unknownKeys } from "../../shared/config/load-config.ts";
import { loadSecrets, parseMasterKey } from "../../shared/config/secrets.ts";
import { decideBatching } from "../../shared/adapters/eip7702.ts";

const USDT = "0xdAC17F958D2ee523a2206206994597C13D831ec7";
const minimal = { eth_config: { rpc_url: "http://127.0.0.1:8545" } };

/** the configuration example of SPEC §6 */
const SPEC_EXAMPLE = {
  net: ["ETH"],
  rmq_config: {
    sub_addr: "amqp://guest:guest@127.0.0.1:5672",
    topup: { queue: "pay.recharge.queue", exchange: "pay.exchange", routing: ["pay.recharge.routing.key"] },
  },
  redis_url: "redis://127.0.0.1:6379",
  mysql_url: "mysql://root:root@127.0.0.1:3306/payment",
  eth_config: {
    rpc_url: "http://127.0.0.1:8545",
    ws_url: "ws://127.0.0.1:8545",
    confirm_height: 20,
    tokens: { USDT: { address: USDT, decimals: 6 } },
    collection_address: "0xABCDEF0000000000000000000000000000000001",
    fallback_to_collection: true,
  },
};

function configError(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof ConfigError, `a ConfigError, got ${String(e)}`);
    return e.message;
  }
  assert.fail("expected a ConfigError");
}

describe("parseConfig: defaults", () => {
  it("a minimal file gets the old system's queue names and the SPEC defaults", () => {
    const c = parseConfig(minimal);
    assert.deepEqual(c.net, ["ETH"]);
    assert.equal(c.rmq_config.sub_addr, "amqp://guest:guest@127.0.0.1:5672");
    const routes: [keyof typeof c.rmq_config, string, string][] = [
      ["topup", "pay.recharge.queue", "pay.recharge.routing.key"],
      ["withdraw", "pay.withdraw.queue", "pay.withdraw.routing.key"],
      ["pay", "pay.auto.queue", "pay.auto.routing.key"],
      ["remove", "pay.remove.queue", "pay.remove.routing.key"],
      ["topup_resp", "pay.recharge.return.queue", "pay.recharge.return.routing.key"],
      ["withdraw_resp", "pay.withdraw.return.queue", "pay.withdraw.return.routing.key"],
      ["pay_resp", "pay.auto.return.queue", "pay.auto.return.routing.key"],
      ["remove_resp", "pay.remove.return.queue", "pay.remove.return.routing.key"],
      ["dead", "pay.dead.queue", "pay.dead.routing.key"],
    ];
    for (const [k, queue, routing] of routes) {
      assert.deepEqual(c.rmq_config[k], { queue, exchange: "pay.exchange", routing: [routing] }, k);
    }
    assert.equal(c.redis_url, "redis://127.0.0.1:6379");
    assert.equal(c.max_clock_skew_s, 300);
    assert.equal(c.limits.max_batch, 500);
    assert.equal(c.limits.max_message_bytes, 256 * 1024);
    const eth = c.chains.ETH!;
    assert.equal(eth.key, "ETH");
    assert.equal(eth.confirm_height, 20);
    assert.equal(eth.native_symbol, "ETH");
    assert.equal(eth.native_decimals, 18);
    assert.deepEqual(eth.tokens, {});
    assert.equal(eth.fallback_to_collection, false);
    assert.equal(c.dashboard.port, 3000);
    assert.equal(c.dashboard.password, undefined);
  });

  it("the SPEC §6 example parses; addresses are lowercased", () => {
    const c = parseConfig(SPEC_EXAMPLE);
    assert.equal(c.chains.ETH!.tokens.USDT!.address, USDT.toLowerCase());
    assert.equal(c.chains.ETH!.collection_address, "0xabcdef0000000000000000000000000000000001");
    assert.equal(c.chains.ETH!.fallback_to_collection, true);
  });

  it("is deeply frozen", () => {
    const c = parseConfig({ ...minimal, eth_config: { ...minimal.eth_config, tokens: { USDT: { address: USDT, decimals: 6 } } } });
    assert.ok(Object.isFrozen(c));
    assert.ok(Object.isFrozen(c.chains.ETH!.tokens.USDT));
    assert.ok(Object.isFrozen(c.rmq_config.topup.routing));
    assert.throws(() => {
      (c as { max_clock_skew_s: number }).max_clock_skew_s = 1;
    }, TypeError);
  });

  it("other EVM chains come from evm_chains, keyed like net", () => {
    const c = parseConfig({ net: ["ETH", "BSC"], ...minimal, evm_chains: { BSC: { rpc_url: "http://127.0.0.1:8546", native_symbol: "BNB" } } });
    assert.deepEqual(Object.keys(c.chains).sort(), ["BSC", "ETH"]);
    assert.equal(c.chains.BSC!.native_symbol, "BNB");
  });
});

describe("batching (EIP-7702) per chain", () => {
  it("is unset by default (decided at start from the node), and takes \"7702\" or \"off\", also from the environment", () => {
    assert.equal(parseConfig(minimal).chains.ETH!.batching, undefined);
    assert.equal(parseConfig({ eth_config: { ...minimal.eth_config, batching: "off" } }).chains.ETH!.batching, "off");
    const env = applyEnvOverrides(minimal, { PAYMENT__ETH_CONFIG__BATCHING: "7702" });
    assert.equal(parseConfig(env).chains.ETH!.batching, "7702");
  });

  it("at start: unset means 7702 where the node supports it, off where not; 7702 on a node without it stops the start naming the key", () => {
    assert.equal(decideBatching("ETH", undefined, true), "7702");
    assert.equal(decideBatching("ETH", undefined, false), "off");
    assert.equal(decideBatching("ETH", "off", true), "off");
    assert.equal(decideBatching("ETH", "7702", true), "7702");
    assert.match(configError(() => decideBatching("BSC", "7702", false)), /BSC\.batching: "7702" but the node does not accept EIP-7702/);
  });
});

describe("parseConfig: errors name the key", () => {
  const cases: [string, unknown, RegExp][] = [
    ["missing eth_config", {}, /eth_config: required because net lists "ETH"/],
    ["missing eth_config.rpc_url", { eth_config: {} }, /eth_config\.rpc_url: required/],
    ["rpc_url not a URL", { eth_config: { rpc_url: "localhost 8545" } }, /eth_config\.rpc_url: .*URL/i],
    ["confirm_height a string in the file", { eth_config: { rpc_url: "http://a", confirm_height: "x" } }, /eth_config\.confirm_height: .*number/],
    ["confirm_height zero", { eth_config: { rpc_url: "http://a", confirm_height: 0 } }, /eth_config\.confirm_height/],
    ["token decimals too large", { eth_config: { rpc_url: "http://a", tokens: { USDT: { address: USDT, decimals: 99 } } } }, /eth_config\.tokens\.USDT\.decimals/],
    ["token decimals beyond what the database stores", { eth_config: { rpc_url: "http://a", tokens: { USDT: { address: USDT, decimals: 24 } } } }, /eth_config\.tokens\.USDT\.decimals: at most 18/],
    ["native decimals beyond what the database stores", { eth_config: { rpc_url: "http://a", native_decimals: 19 } }, /eth_config\.native_decimals: at most 18/],
    ["token address missing", { eth_config: { rpc_url: "http://a", tokens: { USDT: { decimals: 6 } } } }, /eth_config\.tokens\.USDT\.address: required/],
    ["token address malformed", { eth_config: { rpc_url: "http://a", tokens: { USDT: { address: "0x12", decimals: 6 } } } }, /eth_config\.tokens\.USDT\.address: must be a 0x-prefixed 20-byte hex address/],
    ["token named like the native coin", { eth_config: { rpc_url: "http://a", tokens: { ETH: { address: USDT, decimals: 18 } } } }, /ETH\.tokens\.ETH: clashes with the native symbol/],
    ["net lists a chain without config", { net: ["ETH", "BSC"], ...minimal }, /evm_chains\.BSC: required because net lists "BSC"/],
    ["net not an array", { net: "ETH", ...minimal }, /net: .*array/],
    ["empty queue name", { ...minimal, rmq_config: { topup: { queue: "" } } }, /rmq_config\.topup\.queue/],
    ["max_batch not a number", { ...minimal, limits: { max_batch: "x" } }, /limits\.max_batch/],
    ["policy amount as a float-looking text", { ...minimal, policy: { per_request_cap: { USDT: "1e6" } } }, /policy\.per_request_cap\.USDT: must be a decimal amount/],
    ["deny list entry malformed", { ...minimal, policy: { deny_list: ["nope"] } }, /policy\.deny_list\.0/],
    ["log level unknown", { ...minimal, log: { level: "verbose" } }, /log\.level/],
    ["batching neither 7702 nor off", { eth_config: { rpc_url: "http://a", batching: "on" } }, /eth_config\.batching/],
  ];
  for (const [title, raw, re] of cases) {
    it(title, () => assert.match(configError(() => parseConfig(raw)), re));
  }

  it("lists every problem, not just the first", () => {
    const msg = configError(() => parseConfig({ eth_config: { rpc_url: "http://a", confirm_height: -1 }, max_clock_skew_s: "x" }));
    assert.match(msg, /eth_config\.confirm_height/);
    assert.match(msg, /max_clock_skew_s/);
  });
});

describe("applyEnvOverrides", () => {
  const file = { eth_config: { rpc_url: "http://a", tokens: { USDT: { address: USDT, decimals: 6 } } } };

  it("PAYMENT__ETH_CONFIG__CONFIRM_HEIGHT=5 sets a number", () => {
    const c = parseConfig(applyEnvOverrides(file, { PAYMENT__ETH_CONFIG__CONFIRM_HEIGHT: "5" }));
    assert.equal(c.chains.ETH!.confirm_height, 5);
  });

  it("matches existing keys case-insensitively and keeps the file's spelling", () => {
    const out = applyEnvOverrides(file, { PAYMENT__ETH_CONFIG__TOKENS__usdt__DECIMALS: "8" });
    assert.deepEqual(Object.keys((out.eth_config as { tokens: object }).tokens), ["USDT"]);
    assert.equal(parseConfig(out).chains.ETH!.tokens.USDT!.decimals, 8);
  });

  it("a new token symbol keeps its case (requests name it exactly)", () => {
    const c = parseConfig(
      applyEnvOverrides(file, {
        PAYMENT__ETH_CONFIG__TOKENS__USDC__ADDRESS: "0x" + "cc".repeat(20),
        PAYMENT__ETH_CONFIG__TOKENS__USDC__DECIMALS: "6",
      }),
    );
    assert.deepEqual(Object.keys(c.chains.ETH!.tokens).sort(), ["USDC", "USDT"]);
    assert.equal(c.chains.ETH!.tokens.USDC!.decimals, 6);
  });

  it("new schema keys are lowercased; chain keys and policy assets keep their case", () => {
    const out = applyEnvOverrides({}, {
      PAYMENT__ETH_CONFIG__RPC_URL: "http://b",
      PAYMENT__NET: '["ETH","BSC"]',
      PAYMENT__EVM_CHAINS__BSC__RPC_URL: "http://c",
      PAYMENT__POLICY__PER_REQUEST_CAP__USDT: "1000",
    });
    assert.deepEqual(out, {
      eth_config: { rpc_url: "http://b" },
      net: ["ETH", "BSC"],
      evm_chains: { BSC: { rpc_url: "http://c" } },
      policy: { per_request_cap: { USDT: 1000 } },
    });
    const c = parseConfig(out);
    assert.equal(c.chains.BSC!.rpc_url, "http://c");
    assert.equal(c.policy.per_request_cap.USDT, "1000", "a number from the environment is kept as decimal text");
  });

  it("values are JSON when they parse, text otherwise", () => {
    const out = applyEnvOverrides(minimal, {
      PAYMENT__ETH_CONFIG__FALLBACK_TO_COLLECTION: "true",
      PAYMENT__REDIS_URL: "redis://10.0.0.1:6379",
      PAYMENT__DASHBOARD__USER: "1234",
      PAYMENT__LIMITS__MAX_BATCH: "50",
    });
    const c = parseConfig(out);
    assert.equal(c.chains.ETH!.fallback_to_collection, true);
    assert.equal(c.redis_url, "redis://10.0.0.1:6379");
    assert.equal(c.dashboard.user, "1234", "a numeric text for a string field stays text");
    assert.equal(c.limits.max_batch, 50);
  });

  it("a bad override is reported at its key path", () => {
    assert.match(configError(() => parseConfig(applyEnvOverrides(minimal, { PAYMENT__ETH_CONFIG__CONFIRM_HEIGHT: "soon" }))), /eth_config\.confirm_height/);
  });

  it("PAYMENT_DASHBOARD_PASSWORD sets dashboard.password; other variables are ignored; the input is not changed", () => {
    const input = structuredClone(minimal);
    const out = applyEnvOverrides(input, { PAYMENT_DASHBOARD_PASSWORD: "s3cret", PAYMENT_KEY: "k".repeat(20), PAYMENT_X: "1", PAYMENT__: "1", HOME: "/root" });
    assert.deepEqual(out, { ...minimal, dashboard: { password: "s3cret" } });
    assert.deepEqual(input, minimal);
  });
});

describe("loadConfig", () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(path.join(tmpdir(), "payment-config-"));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it("reads --config, then PAYMENT_CONFIG, with env overrides on top", () => {
    const f = path.join(dir, "a.json");
    writeFileSync(f, JSON.stringify({ eth_config: { rpc_url: "http://file", confirm_height: 7 } }));
    assert.equal(loadConfig({ file: f, env: {} }).chains.ETH!.confirm_height, 7);
    assert.equal(loadConfig({ env: { PAYMENT_CONFIG: f } }).chains.ETH!.rpc_url, "http://file");
    const c = loadConfig({ file: f, env: { PAYMENT__ETH_CONFIG__CONFIRM_HEIGHT: "9" } });
    assert.equal(c.chains.ETH!.confirm_height, 9);
  });

  it("works from the environment alone", () => {
    const c = loadConfig({ env: { PAYMENT__ETH_CONFIG__RPC_URL: "http://env" } });
    assert.equal(c.chains.ETH!.rpc_url, "http://env");
  });

  it("a missing, non-JSON or non-object file is a clear error naming it", () => {
    assert.match(configError(() => loadConfig({ file: path.join(dir, "none.json"), env: {} })), /cannot read config file .*none\.json/);
    const bad = path.join(dir, "bad.json");
    writeFileSync(bad, "{ eth_config: }");
    assert.match(configError(() => loadConfig({ file: bad, env: {} })), /bad\.json is not valid JSON/);
    const arr = path.join(dir, "arr.json");
    writeFileSync(arr, "[1]");
    assert.match(configError(() => loadConfig({ file: arr, env: {} })), /must hold a JSON object/);
    const nul = path.join(dir, "null.json");
    writeFileSync(nul, "null");
    assert.match(configError(() => loadConfig({ file: nul, env: {} })), /must hold a JSON object/);
  });
});

describe("loadSecrets", () => {
  const MASTER = "ab".repeat(32);
  let dir: string;
  before(() => {
    dir = mkdtempSync(path.join(tmpdir(), "payment-secrets-"));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it("reads the communication key from --key, PAYMENT_KEY or PAYMENT_KEY_FILE, in that order", () => {
    const f = path.join(dir, "key");
    writeFileSync(f, "file-communication-key-0001\n");
    assert.equal(loadSecrets({ env: { PAYMENT_KEY_FILE: f } }).communicationKey, "file-communication-key-0001");
    assert.equal(loadSecrets({ env: { PAYMENT_KEY: "env-communication-key-01", PAYMENT_KEY_FILE: f } }).communicationKey, "env-communication-key-01");
    assert.equal(loadSecrets({ key: "argv-communication-key-1", env: { PAYMENT_KEY: "env-communication-key-01" } }).communicationKey, "argv-communication-key-1");
    assert.deepEqual(loadSecrets({ env: {} }), {});
  });

  it("a short communication key is refused without echoing it", () => {
    const msg = configError(() => loadSecrets({ env: { PAYMENT_KEY: "short-Secret" } }));
    assert.match(msg, /at least 16 characters/);
    assert.ok(!msg.includes("short-Secret"));
  });

  it("the master key is 64 hex characters (0x and uppercase allowed), from PAYMENT_MASTER_KEY or a file", () => {
    assert.deepEqual(loadSecrets({ env: { PAYMENT_MASTER_KEY: MASTER } }).masterKey, Buffer.from(MASTER, "hex"));
    assert.deepEqual(loadSecrets({ env: { PAYMENT_MASTER_KEY: `0x${MASTER.toUpperCase()}` } }).masterKey, Buffer.from(MASTER, "hex"));
    const f = path.join(dir, "master");
    writeFileSync(f, `${MASTER}\n`);
    assert.deepEqual(loadSecrets({ env: { PAYMENT_MASTER_KEY_FILE: f } }).masterKey, Buffer.from(MASTER, "hex"));
    assert.equal(loadSecrets({ env: { PAYMENT_MASTER_KEY: MASTER } }).masterKey!.length, 32);
  });

  it("a malformed master key names the variable, never the value", () => {
    const bads = [MASTER.slice(0, 63), MASTER + "a", "zz" + MASTER.slice(2), MASTER.slice(0, 32), `${MASTER.slice(0, 40)} ${MASTER.slice(41)}`];
    for (const bad of bads) {
      const msg = configError(() => loadSecrets({ env: { PAYMENT_MASTER_KEY: bad } }));
      assert.match(msg, /PAYMENT_MASTER_KEY: must be 64 hex characters/);
      assert.ok(!msg.includes(bad) && !msg.includes(bad.slice(0, 16)), "value leaked into the error");
    }
    const f = path.join(dir, "badmaster");
    writeFileSync(f, "not-a-key-secret-value");
    const msg = configError(() => loadSecrets({ env: { PAYMENT_MASTER_KEY_FILE: f } }));
    assert.match(msg, /PAYMENT_MASTER_KEY_FILE/);
    assert.ok(!msg.includes("not-a-key-secret-value"));
    assert.throws(() => parseMasterKey("", "X"), ConfigError);
  });

  it("a missing key file is named", () => {
    assert.match(configError(() => loadSecrets({ env: { PAYMENT_MASTER_KEY_FILE: path.join(dir, "nope") } })), /cannot read PAYMENT_MASTER_KEY_FILE file/);
  });
});

describe("applyEnvOverrides: amounts never pass through a float", () => {
  it("a decimal a double cannot hold stays exact text", () => {
    const c = parseConfig(
      applyEnvOverrides(minimal, {
        PAYMENT__POLICY__APPROVAL_THRESHOLD__USDT: "0.30000000000000001",
        PAYMENT__POLICY__PER_REQUEST_CAP__ETH: "1000000000000000000000",
        PAYMENT__ETH_CONFIG__GAS_TOPUP_ETH: "0.005",
      }),
    );
    assert.equal(c.policy.approval_threshold.USDT, "0.30000000000000001");
    assert.equal(c.policy.per_request_cap.ETH, "1000000000000000000000");
    assert.equal(c.chains.ETH!.gas_topup_eth, "0.005");
  });
});

describe("unknown keys: ignored by the schema, named in a warning", () => {
  it("the SPEC example and a config using every section have none", () => {
    const spec = {
      ...SPEC_EXAMPLE,
      eth_config: { ...SPEC_EXAMPLE.eth_config, tokens: { ...SPEC_EXAMPLE.eth_config.tokens, "my.token": { address: USDT, decimals: 6 } } },
      policy: { per_request_cap: { USDT: "1000" } },
      redis: { sentinels: [{ host: "a", port: 26379 }] },
    };
    assert.deepEqual(unknownKeys(spec), []);
    assert.deepEqual(configWarnings(parseConfig(spec)), []);
  });
  it("misspelt keys at any depth, in maps and arrays, are listed by path", () => {
    const raw = {
      ...minimal,
      eth_config: { ...minimal.eth_config, confim_height: 50, tokens: { USDT: { address: USDT, decimal: 6 } } },
      redis: { sentinels: [{ host: "a", port: 1, hots: "b" }] },
      dashbord: { port: 1 },
    };
    assert.deepEqual(unknownKeys(raw).sort(), ["dashbord", "eth_config.confim_height", "eth_config.tokens.USDT.decimal", "redis.sentinels.0.hots"]);
  });
  it("the loaded config carries one warning naming them; values still parse", () => {
    const c = parseConfig({ ...minimal, eth_config: { ...minimal.eth_config, confim_height: 50 } });
    assert.equal(c.chains.ETH!.confirm_height, 20);
    assert.deepEqual(configWarnings(c), ["unknown configuration key(s) ignored: eth_config.confim_height"]);
  });
});
