/**
 * The wallet CLI as an operator runs it (`node bin/payment.mjs wallet ...`)
 * against a real MariaDB: keys in through stdin only, stored encrypted,
 * listed without secrets, and a master key rotation that leaves every key
 * readable with the new key only (and refuses, changing nothing, when a
 * row is under a key it does not know). No output ever contains a key.
 */
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { randomBytes } from "node:crypto";
import { Wallet } from "ethers";
import { createTestEnv, type TestEnv } from "../helpers/env.ts";
import { decryptPrivateKey, masterKeyId, encryptPrivateKey, addressOfKey, KeystoreError } from "../../shared/adapters/keystore.ts";
import { runPayment, type PaymentRun } from "../helpers/payment-cli.ts";

let env: TestEnv;
let configFile: string;
const outputs: string[] = [];
const secrets: string[] = [];

before(async () => {
  env = await createTestEnv();
  const dir = mkdtempSync(path.join(tmpdir(), "payment-wallet-"));
  configFile = path.join(dir, "config.json");
  const { chains: _c, ...raw } = env.config as unknown as Record<string, unknown>;
  writeFileSync(configFile, JSON.stringify(raw));
  secrets.push(env.masterKey.toString("hex"));
});

after(async () => {
  // Nothing the operator saw contains a private key or a master key.
  const all = outputs.join("\n").toLowerCase();
  for (const s of secrets) assert.ok(!all.includes(s.toLowerCase().replace(/^0x/, "")), "a secret appeared in CLI output");
  await env?.cleanup();
});

async function cli(args: string[], opts: { stdin?: string; env?: Record<string, string> } = {}): Promise<PaymentRun> {
  const run = await runPayment([...args, "--config", configFile], { env: { ...process.env, PAYMENT_MASTER_KEY: env.masterKey.toString("hex"), ...opts.env }, stdin: opts.stdin });
  outputs.push(run.stdout, run.stderr);
  return run;
}

const rows = () => env.db.prisma.wallet.findMany({ orderBy: { id: "asc" } });

test("import reads the key from stdin, stores it encrypted, prints only the address", async () => {
  const key = Wallet.createRandom().privateKey;
  secrets.push(key);
  const r = await cli(["wallet", "import", "--kind", "hot", "--label", "main hot"], { stdin: `${key}\n` });
  assert.equal(r.code, 0, r.stderr);
  const address = addressOfKey(key);
  assert.match(r.stdout, new RegExp(`imported hot wallet ${address} on ETH`));
  const [w] = await rows();
  assert.equal(w!.address, address);
  assert.equal(w!.kind, "hot");
  assert.equal(w!.keyId, masterKeyId(env.masterKey));
  assert.ok(!w!.encryptedKey.includes(key.slice(2, 12)));
  assert.equal(decryptPrivateKey(env.masterKey, w!), key);

  const again = await cli(["wallet", "import", "--kind", "hot"], { stdin: key.slice(2) });
  assert.equal(again.code, 1);
  assert.match(again.stderr, /already exists/);
  // malformed input is bad usage (exit 2), as for every command
  const bad = await cli(["wallet", "import", "--kind", "hot"], { stdin: "not a key" });
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /64 hex characters/);
  const noKind = await cli(["wallet", "import", "--kind", "cold"], { stdin: key });
  assert.equal(noKind.code, 2);
  assert.match(noKind.stderr, /--kind must be one of deposit, hot, collection/);
  const argv = await cli(["wallet", "import", "--kind", "hot", key]);
  assert.notEqual(argv.code, 0, "a key on argv is refused");
  assert.equal((await rows()).length, 1);
});

test("create prints a new deposit address whose key is stored encrypted; list shows no secret", async () => {
  const r = await cli(["wallet", "create", "--kind", "deposit"]);
  assert.equal(r.code, 0, r.stderr);
  const address = r.stdout.trim();
  assert.match(address, /^0x[0-9a-f]{40}$/);
  const w = (await rows()).find((x) => x.address === address)!;
  assert.equal(w.kind, "deposit");
  const key = decryptPrivateKey(env.masterKey, w);
  secrets.push(key);
  assert.equal(addressOfKey(key), address);

  const list = await cli(["wallet", "list"]);
  assert.equal(list.code, 0, list.stderr);
  for (const x of await rows()) {
    assert.ok(list.stdout.includes(x.address));
    assert.ok(!list.stdout.includes(x.encryptedKey));
  }
  assert.match(list.stdout, /main hot/);
  const json = await cli(["wallet", "list", "--json", "--kind", "deposit"]);
  const parsed = json.stdout.trim().split("\n").map((l) => JSON.parse(l) as Record<string, unknown>);
  assert.deepEqual(parsed.map((p) => p.address), [address]);
  assert.deepEqual(Object.keys(parsed[0]!).sort(), ["address", "chain", "created_at", "key_id", "kind", "label"]);
});

test("rotate-master-key re-encrypts every row in one go; only the new key reads them", async () => {
  const before = await rows();
  const plain = before.map((w) => decryptPrivateKey(env.masterKey, w));
  const next = randomBytes(32);
  secrets.push(next.toString("hex"));
  const r = await cli(["wallet", "rotate-master-key"], { env: { PAYMENT_NEW_MASTER_KEY: next.toString("hex") } });
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, new RegExp(`re-encrypted ${before.length} wallet\\(s\\) from master key ${masterKeyId(env.masterKey)} to ${masterKeyId(next)}`));
  const after = await rows();
  after.forEach((w, i) => {
    assert.equal(w.keyId, masterKeyId(next));
    assert.notEqual(w.encryptedKey, before[i]!.encryptedKey);
    assert.equal(decryptPrivateKey(next, w), plain[i]);
    assert.throws(() => decryptPrivateKey(env.masterKey, w), KeystoreError);
  });

  // back again, the new key given on stdin
  const back = await cli(["wallet", "rotate-master-key"], { stdin: env.masterKey.toString("hex"), env: { PAYMENT_MASTER_KEY: next.toString("hex") } });
  assert.equal(back.code, 0, back.stderr);
  for (const [i, w] of (await rows()).entries()) assert.equal(decryptPrivateKey(env.masterKey, w), plain[i]);
});

test("rotation refuses, changing nothing, when a row is under an unknown master key", async () => {
  const stranger = randomBytes(32);
  const key = Wallet.createRandom().privateKey;
  secrets.push(key, stranger.toString("hex"));
  const address = addressOfKey(key);
  const enc = encryptPrivateKey(stranger, key, address);
  await env.db.prisma.wallet.create({ data: { chain: "ETH", address, kind: "deposit", encryptedKey: enc.encryptedKey, keyId: enc.keyId } });
  const before = await rows();
  const next = randomBytes(32);
  const r = await cli(["wallet", "rotate-master-key"], { env: { PAYMENT_NEW_MASTER_KEY: next.toString("hex") } });
  assert.equal(r.code, 1);
  assert.match(r.stderr, new RegExp(`1 wallet\\(s\\) are encrypted under master key id\\(s\\) ${enc.keyId}.*nothing was changed`));
  assert.deepEqual(await rows(), before);
});
