/**
 * `payment contracts deploy|list` as an operator runs them, on anvil and a
 * real MariaDB: the deployer key comes in through stdin only; the EIP-7702
 * contracts land at their CREATE2 addresses and are recorded once; running
 * it again (or after a crash between deploying and recording) sends nothing
 * and records what is there; a key of one of the gateway's own wallets is
 * refused; a chain with batching "off" is left alone. `contracts check`
 * finds a wallet delegated to a contract that is not ours; `contracts revoke`
 * (refused while batching is on) clears every delegation of our wallets
 * through a relayer, ours or not, and check is clean after it.
 */
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { JsonRpcProvider, SigningKey, Wallet } from "ethers";
import { createTestEnv, type TestEnv } from "../helpers/env.ts";
import { encryptPrivateKey, addressOfKey } from "../../shared/adapters/keystore.ts";
import { ensureDeployed, plannedContract } from "../../shared/adapters/delegation-contracts.ts";
import { currentDelegationContracts } from "../../shared/adapters/db/delegation-contracts.ts";
import { runPayment, type PaymentRun } from "../helpers/payment-cli.ts";
import { readDelegation, signAuthorization, signDelegationTx, signSelfAuthorization } from "../../shared/adapters/eip7702.ts";
import { receiptOf } from "../helpers/receipts.ts";

const COLLECTOR = "0x00000000000000000000000000000000000c0113";
let env: TestEnv;
let configFile: string;
let provider: JsonRpcProvider;
const outputs: string[] = [];

before(async () => {
  env = await createTestEnv({ anvil: true, config: (c) => ({ ...c, eth_config: { ...c.eth_config!, collection_address: COLLECTOR } }) });
  provider = new JsonRpcProvider(env.anvil!.rpcUrl, undefined, { staticNetwork: true, cacheTimeout: -1 });
  configFile = path.join(mkdtempSync(path.join(tmpdir(), "payment-contracts-")), "config.json");
  const { chains: _c, ...raw } = env.config as unknown as Record<string, unknown>;
  writeFileSync(configFile, JSON.stringify(raw));
});

after(async () => {
  const all = outputs.join("\n").toLowerCase();
  for (const k of env.anvil!.keys) assert.ok(!all.includes(k.slice(2)), "a private key appeared in CLI output");
  provider?.destroy();
  await env?.cleanup();
});

async function cli(args: string[], opts: { stdin?: string; env?: Record<string, string> } = {}): Promise<PaymentRun> {
  const run = await runPayment([...args, "--config", configFile], { env: { ...process.env, ...opts.env }, stdin: opts.stdin });
  outputs.push(run.stdout, run.stderr);
  return run;
}

const rows = () => env.db.prisma.delegationContract.findMany({ orderBy: { id: "asc" } });
const executor = plannedContract("BatchExecutor").address;
const sweeper = plannedContract("DepositSweeper", COLLECTOR).address;

test("deploy puts both contracts at their CREATE2 addresses and records them, with an audit row each", async () => {
  const key = env.anvil!.keys[5]!;
  const r = await cli(["contracts", "deploy"], { stdin: `${key}\n` });
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, new RegExp(`ETH  BatchExecutor +${executor}  deployed in 0x[0-9a-f]{64}, recorded`));
  assert.match(r.stdout, new RegExp(`ETH  DepositSweeper +${sweeper}  deployed in 0x[0-9a-f]{64}, recorded`));
  for (const a of [executor, sweeper]) assert.notEqual(await provider.getCode(a), "0x");
  const recorded = await rows();
  assert.deepEqual(
    recorded.map((x) => [x.chain, x.kind, x.address, x.collector, x.deployedBy]),
    [
      ["ETH", "batch_executor", executor, null, addressOfKey(key)],
      ["ETH", "sweeper", sweeper, COLLECTOR, addressOfKey(key)],
    ],
  );
  assert.ok(recorded.every((x) => /^0x[0-9a-f]{64}$/.test(x.deployTxHash ?? "") && x.blockNumber !== null));
  const audits = await env.db.prisma.auditEvent.findMany({ where: { event: "delegation_contract_recorded" } });
  assert.equal(audits.length, 2);
  assert.deepEqual(await currentDelegationContracts(env.db.pool, "ETH", COLLECTOR), { batchExecutor: executor, sweeper });
});

test("deploy again sends nothing and changes nothing", async () => {
  const key = env.anvil!.keys[5]!;
  const nonce = await provider.getTransactionCount(addressOfKey(key));
  const before = await rows();
  const r = await cli(["contracts", "deploy", "--chain", "ETH"], { stdin: key });
  assert.equal(r.code, 0, r.stderr);
  assert.equal((r.stdout.match(/already on chain, already recorded/g) ?? []).length, 2, r.stdout);
  assert.equal(await provider.getTransactionCount(addressOfKey(key)), nonce);
  assert.deepEqual(await rows(), before);
  assert.equal(await env.db.prisma.auditEvent.count({ where: { event: "delegation_contract_recorded" } }), 2);
});

test("a contract deployed but not recorded (a crash in between) is found and recorded, nothing sent", async () => {
  const other = Wallet.createRandom().address.toLowerCase();
  await writeConfigWithCollector(other);
  const planned = plannedContract("DepositSweeper", other);
  const r0 = await ensureDeployed(provider, new Wallet(env.anvil!.keys[6]!, provider), planned);
  assert.equal(r0.status, "deployed");
  const key = env.anvil!.keys[5]!;
  const nonce = await provider.getTransactionCount(addressOfKey(key));
  const r = await cli(["contracts", "deploy"], { stdin: key });
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, new RegExp(`DepositSweeper +${planned.address}  already on chain, recorded`));
  assert.equal(await provider.getTransactionCount(addressOfKey(key)), nonce);
  const row = (await rows()).find((x) => x.address === planned.address)!;
  assert.equal(row.deployTxHash, null, "found on chain: no deployment of ours to name");
  assert.equal(row.collector, other);

  const list = await cli(["contracts", "list"]);
  assert.equal(list.code, 0, list.stderr);
  assert.match(list.stdout, new RegExp(`ETH  BatchExecutor +${executor}  recorded, code on chain`));
  assert.match(list.stdout, new RegExp(`ETH  DepositSweeper +${planned.address}  recorded, code on chain  collector ${other}`));
  assert.match(list.stdout, new RegExp(`ETH  sweeper +${sweeper}  deployed in 0x[0-9a-f]{64}`), "the earlier sweeper stays in the history");
  await writeConfigWithCollector(COLLECTOR);
});

test("a key of one of the gateway's wallets is refused before anything is sent; batching \"off\" leaves the chain alone", async () => {
  const key = env.anvil!.keys[7]!;
  const address = addressOfKey(key);
  const e = encryptPrivateKey(env.masterKey, key, address);
  await env.db.prisma.wallet.create({ data: { chain: "ETH", address, kind: "hot", encryptedKey: e.encryptedKey, keyId: e.keyId } });
  const nonce = await provider.getTransactionCount(address);
  const r = await cli(["contracts", "deploy"], { stdin: key });
  assert.equal(r.code, 1);
  assert.match(r.stderr, /is the gateway's hot wallet on ETH: deploy from another account/);
  assert.equal(await provider.getTransactionCount(address), nonce);

  const off = await cli(["contracts", "deploy"], { env: { PAYMENT__ETH_CONFIG__BATCHING: "off" } });
  assert.equal(off.code, 0, off.stderr);
  assert.match(off.stdout, /ETH: batching is "off": nothing to deploy/);
  const bad = await cli(["contracts", "deploy"], { stdin: "not a key" });
  assert.equal(bad.code, 2, "a malformed key is bad usage");
  assert.match(bad.stderr, /a private key is 64 hex characters/);
});

async function writeConfigWithCollector(collector: string) {
  const { chains: _c, ...raw } = env.config as unknown as Record<string, unknown> & { eth_config: Record<string, unknown> };
  writeFileSync(configFile, JSON.stringify({ ...raw, eth_config: { ...raw.eth_config, collection_address: collector } }));
}

test("check names a wallet delegated elsewhere; revoke (batching off, relayer key from stdin) clears every delegation of ours, audited; check is clean again", async () => {
  const { chainId } = await provider.getNetwork();
  const fees = { maxFeePerGas: 50_000_000_000n, maxPriorityFeePerGas: 1_000_000_000n };
  const ours = async (kind: "hot" | "deposit") => {
    const w = Wallet.createRandom();
    const e = encryptPrivateKey(env.masterKey, w.privateKey, w.address.toLowerCase());
    await env.db.prisma.wallet.create({ data: { chain: "ETH", address: w.address.toLowerCase(), kind, encryptedKey: e.encryptedKey, keyId: e.keyId } });
    await provider.send("anvil_setBalance", [w.address, "0x" + (10n ** 18n).toString(16)]);
    return new SigningKey(w.privateKey);
  };
  // a hot wallet delegating to our executor (its own type-4 transaction), a deposit wallet to something else
  const hot = await ours("hot");
  const deposit = await ours("deposit");
  const hotAddress = new Wallet(hot.privateKey).address.toLowerCase();
  const depositAddress = new Wallet(deposit.privateKey).address.toLowerCase();
  const foreign = Wallet.createRandom().address.toLowerCase();
  const own = signDelegationTx(hot, { chainId, nonce: 0n, to: hotAddress, data: "0x", gasLimit: 100_000n, fees, authorizations: [signSelfAuthorization(hot, chainId, executor, 0n)] });
  assert.equal((await receiptOf(provider, await provider.send("eth_sendRawTransaction", [own.raw]))).status, 1);
  const relayed = signAuthorization(deposit, { chainId, address: foreign, nonce: 0n });
  const payer = new SigningKey(env.anvil!.keys[8]!);
  const payerNonce = BigInt(await provider.getTransactionCount(new Wallet(payer.privateKey).address, "pending"));
  const carry = signDelegationTx(payer, { chainId, nonce: payerNonce, to: depositAddress, data: "0x", gasLimit: 100_000n, fees, authorizations: [relayed] });
  assert.equal((await receiptOf(provider, await provider.send("eth_sendRawTransaction", [carry.raw]))).status, 1);
  assert.equal(await readDelegation(provider, hotAddress), executor);
  assert.equal(await readDelegation(provider, depositAddress), foreign);

  const masterKey = { PAYMENT_MASTER_KEY: env.masterKey.toString("hex") };
  const check = await cli(["contracts", "check"]);
  assert.equal(check.code, 1, "a delegation that is not ours is a difference");
  assert.match(check.stdout, new RegExp(`hot +${hotAddress}  delegates to our batch_executor ${executor}`));
  assert.match(check.stdout, new RegExp(`deposit +${depositAddress}  DELEGATES TO ${foreign}, not one of our contracts`));
  assert.match(check.stdout, /1 delegate to our contracts, \d+ to nothing, 1 elsewhere/);

  const on = await cli(["contracts", "revoke"], { stdin: env.anvil!.keys[6]!, env: masterKey });
  assert.equal(on.code, 1);
  assert.match(on.stderr, /batching is unset .*: a sender would delegate the wallets again/);
  const off = { ...masterKey, PAYMENT__ETH_CONFIG__BATCHING: "off" };
  const dry = await cli(["contracts", "revoke", "--dry-run"], { env: off });
  assert.equal(dry.code, 0, dry.stderr);
  assert.match(dry.stdout, new RegExp(`${hotAddress}  delegates to ${executor}: would be revoked`));
  assert.equal(await readDelegation(provider, hotAddress), executor, "a dry run sends nothing");
  const mine = await cli(["contracts", "revoke"], { stdin: env.anvil!.keys[7]!, env: off });
  assert.equal(mine.code, 1, "the relayer is never one of our wallets");
  assert.match(mine.stderr, /is the gateway's hot wallet on ETH: relay from another account/);

  const r = await cli(["contracts", "revoke"], { stdin: env.anvil!.keys[6]!, env: off });
  assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
  assert.match(r.stdout, new RegExp(`hot +${hotAddress}  revoked in 0x[0-9a-f]{64}`));
  assert.match(r.stdout, new RegExp(`deposit +${depositAddress}  revoked in 0x[0-9a-f]{64}`));
  for (const a of [hotAddress, depositAddress]) assert.equal(await provider.getCode(a), "0x");
  const audit = await env.db.prisma.auditEvent.findMany({ where: { event: "delegation.revoked" }, orderBy: { id: "asc" } });
  assert.deepEqual(audit.map((a) => a.address).sort(), [hotAddress, depositAddress].sort());
  // its own delegating transaction, its authorization in it, the relayed revocation: each took one nonce
  assert.equal(await provider.getTransactionCount(hotAddress), 3, "the wallet sent nothing for the revocation: the relayer carried it");

  const clean = await cli(["contracts", "check"]);
  assert.equal(clean.code, 0, clean.stderr);
  assert.match(clean.stdout, /0 delegate to our contracts, \d+ to nothing, 0 elsewhere/);
  const again = await cli(["contracts", "revoke"], { env: off });
  assert.equal(again.code, 0);
  assert.match(again.stdout, /ETH: no wallet of ours delegates: nothing to revoke/);
});
