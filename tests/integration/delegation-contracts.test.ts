/**
 * The EIP-7702 contracts on a real chain (anvil, whose default hardfork has
 * EIP-7702), driven through the gateway's own adapters: authorizations and
 * type-4 transactions signed with shared/adapters/eip7702.ts, calls and
 * receipts through shared/adapters/delegation-calls.ts, the contracts put
 * in place by ensureDeployed.
 *
 * Each rule of shared/contracts/*.sol is proven here on chain:
 * - access: an attacker calling the delegated hot wallet, the executor's
 *   deployment, the sweeper, or a delegated deposit wallet directly is
 *   refused and moves nothing; a front-run authorization or a look-alike
 *   sweeper of the attacker's gains nothing;
 * - isolation: a blocked recipient, a reverting, gas-burning or re-entering
 *   recipient, a token returning false, a deposit wallet that cannot pay or
 *   is not delegated, each fails its own item and nothing else, and every
 *   item's outcome is read from the receipt;
 * - revocation: a wallet delegating to address(0) is a plain EOA again and
 *   a batch sent to it does nothing, which the receipt shows.
 */
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { Contract, ContractFactory, JsonRpcProvider, NonceManager, SigningKey, Wallet, computeAddress, isError, randomBytes, type Authorization, type TransactionReceipt } from "ethers";
import { startAnvil, deploy, artifact, type Anvil, type DevContract } from "../../shared/devchain/anvil.ts";
import { signAuthorization, signDelegationTx, signRevocation, signSelfAuthorization, readDelegation } from "../../shared/adapters/eip7702.ts";
import { ensureDeployed, plannedContract, productionArtifact, contractInterface } from "../../shared/adapters/delegation-contracts.ts";
import { encodePay, encodeSweep, payOutcome, sweepOutcome, nativeSwept } from "../../shared/adapters/delegation-calls.ts";
import { receiptOf } from "../helpers/receipts.ts";

const FEES = { maxFeePerGas: 50_000_000_000n, maxPriorityFeePerGas: 1_000_000_000n };
const UNAUTHORIZED = contractInterface("BatchExecutor").getError("Unauthorized")!.selector;

const mined = (hash: string) => receiptOf(provider, hash);

let anvil: Anvil;
let provider: JsonRpcProvider;
let chainId: bigint;
let owner: NonceManager;
let usdt: Contract;
let executor: string;
let sweeper: string;
let collection: SigningKey;

const addr = (k: SigningKey) => computeAddress(k.publicKey).toLowerCase();
const usdtOf = async (a: string) => (await usdt.balanceOf!(a)) as bigint;
const ethOf = (a: string) => provider.getBalance(a);

async function freshKey(eth = 10n ** 18n): Promise<SigningKey> {
  const k = new SigningKey(randomBytes(32));
  if (eth > 0n) await provider.send("anvil_setBalance", [addr(k), `0x${eth.toString(16)}`]);
  return k;
}

/** Test counterparties, deployed by a key of their own (`owner`'s NonceManager must stay the only user of its key). */
async function deployDev(name: DevContract): Promise<Contract> {
  return new Contract(await deploy(anvil.rpcUrl, anvil.keys[3]!, name), artifact(name).abi, owner);
}

interface Send {
  to: string;
  data?: string;
  value?: bigint;
  /** fixed gas limit: skips estimation (which refuses a transaction that would revert) */
  gasLimit?: bigint;
  authorizations?: Authorization[];
  /** add the sender's own authorization to delegate to this target */
  selfDelegate?: string;
}

/** Sign with the adapter, broadcast, wait: the receipt, reverted or not. */
async function send(key: SigningKey, s: Send): Promise<TransactionReceipt> {
  const from = addr(key);
  const nonce = BigInt(await provider.getTransactionCount(from, "pending"));
  const authorizations = [...(s.authorizations ?? []), ...(s.selfDelegate ? [signSelfAuthorization(key, chainId, s.selfDelegate, nonce)] : [])];
  const req = { to: s.to, data: s.data ?? "0x", value: s.value ?? 0n };
  const gasLimit =
    s.gasLimit ?? ((await provider.estimateGas({ ...req, from, ...(authorizations.length ? { type: 4, authorizationList: authorizations } : {}) })) * 12n) / 10n;
  const signed = signDelegationTx(key, { chainId, nonce, ...req, gasLimit, fees: FEES, authorizations });
  const hash = (await provider.send("eth_sendRawTransaction", [signed.raw])) as string;
  assert.equal(hash.toLowerCase(), signed.hash);
  return mined(hash);
}


/** The revert data of a call that must fail. */
async function revertData(from: string, to: string, data: string): Promise<string> {
  try {
    await provider.call({ from, to, data });
  } catch (e) {
    assert.ok(isError(e, "CALL_EXCEPTION"), String(e));
    return e.data ?? "";
  }
  return assert.fail("the call succeeded");
}

before(async () => {
  anvil = await startAnvil();
  provider = new JsonRpcProvider(anvil.rpcUrl, undefined, { staticNetwork: true, cacheTimeout: -1 });
  chainId = BigInt(anvil.chainId);
  owner = new NonceManager(new Wallet(anvil.keys[0]!, provider));
  usdt = new Contract(await deploy(anvil.rpcUrl, anvil.keys[0]!, "TestUSDT"), artifact("TestUSDT").abi, owner);
  collection = await freshKey();
  const deployer = new Wallet(anvil.keys[1]!, provider);
  executor = (await ensureDeployed(provider, deployer, plannedContract("BatchExecutor"))).contract.address;
  sweeper = (await ensureDeployed(provider, deployer, plannedContract("DepositSweeper", addr(collection)))).contract.address;
});

after(async () => {
  provider?.destroy();
  await anvil?.stop();
});

describe("BatchExecutor: a hot wallet pays many orders in one transaction", () => {
  async function hotWallet(tokens = 10n ** 12n): Promise<SigningKey> {
    const k = await freshKey();
    await mined((await usdt.mint!(addr(k), tokens)).hash);
    return k;
  }
  const recipients = (n: number) => Array.from({ length: n }, () => Wallet.createRandom().address.toLowerCase());

  it("delegates and pays USDT (whose transfer returns nothing) to each recipient, exactly, with every item's outcome in the receipt", async () => {
    const hot = await hotWallet();
    const items = recipients(5).map((to, i) => ({ to, amount: 1_000_000n * BigInt(i + 1) + 7n }));
    const receipt = await send(hot, { to: addr(hot), data: encodePay(await usdt.getAddress(), items), selfDelegate: executor });
    assert.equal(receipt.status, 1);
    assert.equal(await readDelegation(provider, addr(hot)), executor);
    assert.deepEqual(payOutcome(receipt, addr(hot), items.length), { kind: "executed", done: [true, true, true, true, true] });
    for (const i of items) assert.equal(await usdtOf(i.to), i.amount);
    // the token saw transfers FROM the hot wallet itself, one per order
    const token = (await usdt.getAddress()).toLowerCase();
    const transfers = receipt.logs.filter((l) => l.address.toLowerCase() === token);
    assert.equal(transfers.length, 5);

    // already delegated: the next batch is a plain self-call, no authorization
    const more = recipients(3).map((to) => ({ to, amount: 5n }));
    const again = await send(hot, { to: addr(hot), data: encodePay(await usdt.getAddress(), more) });
    assert.deepEqual(payOutcome(again, addr(hot), 3), { kind: "executed", done: [true, true, true] });
  });

  it("a blocked recipient in the middle fails alone; the orders around it are paid", async () => {
    const hot = await hotWallet();
    const items = recipients(5).map((to) => ({ to, amount: 3_000_000n }));
    await mined((await usdt.setBlocked!(items[2]!.to, true)).hash);
    const before = await usdtOf(addr(hot));
    const receipt = await send(hot, { to: addr(hot), data: encodePay(await usdt.getAddress(), items), selfDelegate: executor });
    assert.equal(receipt.status, 1);
    assert.deepEqual(payOutcome(receipt, addr(hot), 5), { kind: "executed", done: [true, true, false, true, true] });
    assert.equal(await usdtOf(items[2]!.to), 0n);
    for (const i of [0, 1, 3, 4]) assert.equal(await usdtOf(items[i]!.to), 3_000_000n);
    assert.equal(await usdtOf(addr(hot)), before - 4n * 3_000_000n);
  });

  it("a short balance fails the orders it cannot cover, in order, and nothing else", async () => {
    const hot = await hotWallet(25n);
    const items = recipients(4).map((to) => ({ to, amount: 10n }));
    const receipt = await send(hot, { to: addr(hot), data: encodePay(await usdt.getAddress(), items), selfDelegate: executor });
    assert.deepEqual(payOutcome(receipt, addr(hot), 4), { kind: "executed", done: [true, true, false, false] });
    assert.equal(await usdtOf(addr(hot)), 5n);
  });

  it("a token whose transfer returns false fails that order (return value checked), the others are paid", async () => {
    const token = await deployDev("TestBoolToken");
    const hot = await hotWallet();
    await mined((await token.mint!(addr(hot), 1000n)).hash);
    const items = recipients(3).map((to) => ({ to, amount: 100n }));
    await mined((await token.setBlocked!(items[1]!.to, true)).hash);
    const receipt = await send(hot, { to: addr(hot), data: encodePay(await token.getAddress(), items), selfDelegate: executor });
    assert.deepEqual(payOutcome(receipt, addr(hot), 3), { kind: "executed", done: [true, false, true] });
    assert.equal(await token.balanceOf!(addr(hot)), 800n);
  });

  it("ETH: a reverting, a gas-burning and a re-entering recipient each fail or stay alone; the others are paid and the re-entry is refused", async () => {
    const hot = await freshKey(10n ** 19n);
    const reverting = await deployDev("RevertingReceiver");
    const burner = await deployDev("GasBurner");
    const reentrant = await deployDev("ReentrantReceiver");
    const plain = recipients(3);
    const items = [
      { to: plain[0]!, amount: 1000n },
      { to: (await reverting.getAddress()).toLowerCase(), amount: 1000n },
      { to: (await burner.getAddress()).toLowerCase(), amount: 1000n },
      { to: plain[1]!, amount: 1000n },
      { to: (await reentrant.getAddress()).toLowerCase(), amount: 1000n },
      { to: plain[2]!, amount: 1000n },
    ];
    const receipt = await send(hot, { to: addr(hot), data: encodePay(null, items, 60_000), selfDelegate: executor });
    assert.equal(receipt.status, 1);
    // the re-entering recipient's own payment goes through; its attempt to make the wallet pay again does not
    assert.deepEqual(payOutcome(receipt, addr(hot), 6), { kind: "executed", done: [true, false, false, true, true, true] });
    for (const a of plain) assert.equal(await ethOf(a), 1000n);
    assert.equal(await ethOf(items[1]!.to), 0n);
    assert.equal(await ethOf(items[2]!.to), 0n);
    assert.equal(await reentrant.attempts!(), 1n);
    assert.equal(await reentrant.succeeded!(), 0n);
    assert.equal(await ethOf(items[4]!.to), 1000n);
  });

  it("a transaction without the gas to give an item its full allowance reverts whole: no order fails for want of gas", async () => {
    const hot = await hotWallet();
    const items = recipients(20).map((to) => ({ to, amount: 1n }));
    const data = encodePay(await usdt.getAddress(), items);
    const receipt = await send(hot, { to: addr(hot), data, selfDelegate: executor, gasLimit: 300_000n });
    assert.equal(receipt.status, 0);
    assert.deepEqual(payOutcome(receipt, addr(hot), 20), { kind: "reverted" });
    for (const i of items) assert.equal(await usdtOf(i.to), 0n);
  });

  it("whatever the transaction's gas limit, an item never fails for want of gas it was allowed: the whole transaction reverts instead", async () => {
    // a recipient that needs ~220,000 gas and gets a 300,000 allowance: with too
    // little gas left the node would hand it 63/64 of the rest, it would fail,
    // and the 1/64 kept back would still emit the result: a false failure
    const hot = await freshKey(10n ** 19n);
    await send(hot, { to: addr(hot), data: encodePay(null, [{ to: Wallet.createRandom().address, amount: 1n }]), selfDelegate: executor });
    const hungry = await deployDev("GasHungryReceiver");
    const data = encodePay(null, [{ to: await hungry.getAddress(), amount: 1n }], 300_000);
    let mined = 0;
    for (let gasLimit = 100_000n; gasLimit <= 600_000n; gasLimit += 5_000n) {
      const snapshot = await provider.send("evm_snapshot", []);
      const r = await send(hot, { to: addr(hot), data, gasLimit });
      if (r.status === 1) {
        mined += 1;
        assert.deepEqual(payOutcome(r, addr(hot), 1), { kind: "executed", done: [true] }, `gas limit ${gasLimit}`);
        assert.equal(await hungry.slots!(0), 1n);
      }
      await provider.send("evm_revert", [snapshot]);
    }
    assert.ok(mined > 0, "some gas limits are enough");
  });

  it("access: an attacker calling the delegated wallet or the executor itself is refused and moves nothing", async () => {
    const hot = await hotWallet();
    await send(hot, { to: addr(hot), data: encodePay(await usdt.getAddress(), [{ to: Wallet.createRandom().address, amount: 1n }]), selfDelegate: executor });
    const attacker = await freshKey();
    const loot = encodePay(await usdt.getAddress(), [{ to: addr(attacker), amount: 1_000_000n }]);
    assert.equal((await revertData(addr(attacker), addr(hot), loot)).slice(0, 10), UNAUTHORIZED);
    assert.equal((await revertData(addr(attacker), executor, loot)).slice(0, 10), UNAUTHORIZED);
    const ethLoot = encodePay(null, [{ to: addr(attacker), amount: 10n ** 17n }]);
    assert.equal((await revertData(addr(attacker), addr(hot), ethLoot)).slice(0, 10), UNAUTHORIZED);
    // and mined: reverted, balances untouched
    const before = await usdtOf(addr(hot));
    const ethBefore = await ethOf(addr(hot));
    for (const [to, data] of [
      [addr(hot), loot],
      [executor, loot],
      [addr(hot), ethLoot],
    ] as const) {
      const r = await send(attacker, { to, data, gasLimit: 200_000n });
      assert.equal(r.status, 0);
      assert.deepEqual(payOutcome(r, addr(hot), 1), { kind: "reverted" });
    }
    assert.equal(await usdtOf(addr(hot)), before);
    assert.equal(await usdtOf(addr(attacker)), 0n);
    assert.equal(await ethOf(addr(hot)), ethBefore);
  });

  it("a delegated hot wallet still accepts ETH like an EOA (a top-up, with or without call data)", async () => {
    const hot = await hotWallet();
    await send(hot, { to: addr(hot), data: encodePay(await usdt.getAddress(), [{ to: Wallet.createRandom().address, amount: 1n }]), selfDelegate: executor });
    const funder = await freshKey();
    const before = await ethOf(addr(hot));
    assert.equal((await send(funder, { to: addr(hot), value: 5n })).status, 1);
    assert.equal((await send(funder, { to: addr(hot), value: 7n, data: "0x1234" })).status, 1);
    assert.equal(await ethOf(addr(hot)), before + 12n);
  });

  it("revocation: delegating to address(0) makes it a plain EOA again; a batch sent afterwards does nothing, and the receipt says so", async () => {
    const hot = await hotWallet();
    await send(hot, { to: addr(hot), data: encodePay(await usdt.getAddress(), [{ to: Wallet.createRandom().address, amount: 1n }]), selfDelegate: executor });
    assert.equal(await readDelegation(provider, addr(hot)), executor);
    const nonce = BigInt(await provider.getTransactionCount(addr(hot), "pending"));
    const revoked = await send(hot, { to: addr(hot), authorizations: [signRevocation(hot, chainId, nonce + 1n)], gasLimit: 100_000n });
    assert.equal(revoked.status, 1);
    assert.equal(await provider.getCode(addr(hot)), "0x");
    assert.equal(await readDelegation(provider, addr(hot)), null);
    const items = recipients(2).map((to) => ({ to, amount: 1n }));
    const r = await send(hot, { to: addr(hot), data: encodePay(await usdt.getAddress(), items), gasLimit: 200_000n });
    assert.equal(r.status, 1, "a call to a plain EOA succeeds...");
    assert.deepEqual(payOutcome(r, addr(hot), 2), { kind: "not-executed" }, "...and pays nothing");
    for (const i of items) assert.equal(await usdtOf(i.to), 0n);
  });
});

describe("DepositSweeper: the collection wallet empties many deposit wallets, paying all the gas", () => {
  async function depositWallet(tokens: bigint, eth = 0n): Promise<SigningKey> {
    const k = await freshKey(eth);
    if (tokens > 0n) await mined((await usdt.mint!(addr(k), tokens)).hash);
    return k;
  }
  /** never-delegated wallets: their first authorization has nonce 0 */
  const authorize = (keys: SigningKey[]) => keys.map((k) => signAuthorization(k, { chainId, address: sweeper, nonce: 0n }));
  const sweepItems = async (keys: SigningKey[]) => Promise.all(keys.map(async (k) => ({ wallet: addr(k), amount: await usdtOf(addr(k)) })));

  it("sweeps never-delegated wallets' tokens, and ETH where there is some, into the collection wallet in one transaction; they end with 0 of both", async () => {
    const wallets = [await depositWallet(5_000_000n), await depositWallet(7_250_000n, 3n * 10n ** 15n), await depositWallet(1n)];
    const items = await sweepItems(wallets);
    const before = await usdtOf(addr(collection));
    const ethBefore = await ethOf(addr(collection));
    const receipt = await send(collection, { to: sweeper, data: encodeSweep(await usdt.getAddress(), items), authorizations: authorize(wallets) });
    assert.equal(receipt.status, 1);
    assert.deepEqual(sweepOutcome(receipt, sweeper, 3), { kind: "executed", done: [true, true, true] });
    for (const w of wallets) {
      assert.equal(await usdtOf(addr(w)), 0n);
      assert.equal(await ethOf(addr(w)), 0n);
      assert.equal(await readDelegation(provider, addr(w)), sweeper);
    }
    assert.equal(await usdtOf(addr(collection)), before + 5_000_000n + 7_250_000n + 1n);
    assert.deepEqual(nativeSwept(receipt, items.map((i) => i.wallet)), new Map([[addr(wallets[1]!), 3n * 10n ** 15n]]));
    const fee = receipt.gasUsed * receipt.gasPrice;
    assert.equal(await ethOf(addr(collection)), ethBefore - fee + 3n * 10n ** 15n, "the collection wallet paid the gas and got the ETH");
  });

  it("ETH only (no token): each wallet's ETH goes to the collector, the amounts in the items are ignored", async () => {
    const wallets = [await depositWallet(10n, 4_000n), await depositWallet(0n, 6_000n)];
    const items = wallets.map((w) => ({ wallet: addr(w), amount: 123n }));
    const receipt = await send(collection, { to: sweeper, data: encodeSweep(null, items), authorizations: authorize(wallets) });
    assert.deepEqual(sweepOutcome(receipt, sweeper, 2), { kind: "executed", done: [true, true] });
    assert.deepEqual(
      nativeSwept(receipt, items.map((i) => i.wallet)),
      new Map([
        [addr(wallets[0]!), 4_000n],
        [addr(wallets[1]!), 6_000n],
      ]),
    );
    assert.equal(await ethOf(addr(wallets[0]!)), 0n);
    assert.equal(await usdtOf(addr(wallets[0]!)), 10n, "no token moves in an ETH-only sweep");
  });

  it("a wallet whose transfer reverts, and one not delegated to the sweeper, fail alone; the rest are swept", async () => {
    const wallets = [await depositWallet(100n), await depositWallet(200n), await depositWallet(300n), await depositWallet(400n)];
    await mined((await usdt.setBlocked!(addr(wallets[1]!), true)).hash);
    const items = await sweepItems(wallets);
    // wallet 3 signs no authorization: a call to it "succeeds" doing nothing and must not count
    const receipt = await send(collection, { to: sweeper, data: encodeSweep(await usdt.getAddress(), items), authorizations: authorize(wallets.slice(0, 3)) });
    assert.equal(receipt.status, 1);
    assert.deepEqual(sweepOutcome(receipt, sweeper, 4), { kind: "executed", done: [true, false, true, false] });
    assert.deepEqual(await Promise.all(wallets.map((w) => usdtOf(addr(w)))), [0n, 200n, 0n, 400n]);
  });

  it("access: an attacker calling the sweeper, or a delegated deposit wallet directly, is refused; the collector cannot run sweep through a wallet either", async () => {
    const w = await depositWallet(1_000n);
    await send(collection, { to: sweeper, data: encodeSweep(await usdt.getAddress(), [{ wallet: addr(w), amount: 1n }]), authorizations: authorize([w]) });
    const attacker = await freshKey();
    const token = await usdt.getAddress();
    const pull = contractInterface("DepositSweeper").encodeFunctionData("pull", [token, 999n]);
    const sweepIt = encodeSweep(token, [{ wallet: addr(w), amount: 999n }]);
    assert.equal((await revertData(addr(attacker), sweeper, sweepIt)).slice(0, 10), UNAUTHORIZED);
    assert.equal((await revertData(addr(attacker), addr(w), pull)).slice(0, 10), UNAUTHORIZED);
    assert.equal((await revertData(addr(attacker), addr(w), sweepIt)).slice(0, 10), UNAUTHORIZED);
    assert.equal((await revertData(addr(collection), addr(w), pull)).slice(0, 10), UNAUTHORIZED, "not even the collector calls pull directly");
    assert.equal((await revertData(addr(collection), addr(w), sweepIt)).slice(0, 10), UNAUTHORIZED, "sweep runs only on the deployment");
    for (const [to, data] of [
      [sweeper, sweepIt],
      [addr(w), pull],
    ] as const) {
      assert.equal((await send(attacker, { to, data, gasLimit: 200_000n })).status, 0);
    }
    assert.equal(await usdtOf(addr(w)), 999n);
    assert.equal(await usdtOf(addr(attacker)), 0n);
  });

  it("front-running: an attacker who lands a deposit wallet's authorization first only installs our sweeper, and cannot use it", async () => {
    const w = await depositWallet(5_000n);
    const attacker = await freshKey();
    // the attacker submits our wallet's signed authorization in his own transaction
    const stolen = await send(attacker, { to: addr(attacker), authorizations: authorize([w]), gasLimit: 100_000n });
    assert.equal(stolen.status, 1);
    assert.equal(await readDelegation(provider, addr(w)), sweeper);
    const token = await usdt.getAddress();
    assert.equal((await send(attacker, { to: addr(w), data: contractInterface("DepositSweeper").encodeFunctionData("pull", [token, 5_000n]), gasLimit: 200_000n })).status, 0);
    // nothing to initialise, nothing he could have set: the collector sweeps it as planned
    const receipt = await send(collection, { to: sweeper, data: encodeSweep(token, [{ wallet: addr(w), amount: 5_000n }]) });
    assert.deepEqual(sweepOutcome(receipt, sweeper, 1), { kind: "executed", done: [true] });
    assert.equal(await usdtOf(addr(attacker)), 0n);
    assert.equal(await usdtOf(addr(w)), 0n);
  });

  it("a look-alike sweeper deployed by an attacker for himself cannot pull from our delegated wallets", async () => {
    const w = await depositWallet(5_000n);
    await send(collection, { to: sweeper, data: encodeSweep(await usdt.getAddress(), [{ wallet: addr(w), amount: 1n }]), authorizations: authorize([w]) });
    const attacker = await freshKey();
    const a = productionArtifact("DepositSweeper");
    const fake = await (await new ContractFactory(a.abi, a.bytecode, new Wallet(attacker.privateKey, provider)).deploy(addr(attacker))).waitForDeployment();
    const receipt = await send(attacker, { to: await fake.getAddress(), data: encodeSweep(await usdt.getAddress(), [{ wallet: addr(w), amount: 4_999n }]) });
    assert.equal(receipt.status, 1);
    assert.deepEqual(sweepOutcome(receipt, await fake.getAddress(), 1), { kind: "executed", done: [false] });
    assert.equal(await usdtOf(addr(w)), 4_999n);
  });

  it("a delegated deposit wallet still receives ETH deposits like an EOA; a revoked one is no longer swept", async () => {
    const w = await depositWallet(50n);
    await send(collection, { to: sweeper, data: encodeSweep(await usdt.getAddress(), [{ wallet: addr(w), amount: 10n }]), authorizations: authorize([w]) });
    const user = await freshKey();
    assert.equal((await send(user, { to: addr(w), value: 1000n })).status, 1);
    assert.equal((await send(user, { to: addr(w), value: 1000n, data: "0xabcdef" })).status, 1);
    assert.equal(await ethOf(addr(w)), 2000n);

    // the wallet's key revokes (it has 2000 wei, not enough gas: the collector relays the authorization)
    const revoke = signRevocation(w, chainId, BigInt(await provider.getTransactionCount(addr(w))));
    assert.equal((await send(collection, { to: addr(collection), authorizations: [revoke], gasLimit: 100_000n })).status, 1);
    assert.equal(await readDelegation(provider, addr(w)), null);
    const receipt = await send(collection, { to: sweeper, data: encodeSweep(await usdt.getAddress(), [{ wallet: addr(w), amount: 40n }]) });
    assert.deepEqual(sweepOutcome(receipt, sweeper, 1), { kind: "executed", done: [false] });
    assert.equal(await usdtOf(addr(w)), 40n);
    assert.equal(await ethOf(addr(w)), 2000n);
  });
});

describe("ensureDeployed: idempotent, deterministic", () => {
  it("a second run finds the code and sends nothing; the address is the CREATE2 one of the committed init code", async () => {
    const deployer = new Wallet(anvil.keys[2]!, provider);
    const nonce = await provider.getTransactionCount(deployer.address);
    const again = await ensureDeployed(provider, deployer, plannedContract("BatchExecutor"));
    assert.equal(again.status, "present");
    assert.equal(again.txHash, null);
    assert.equal(await provider.getTransactionCount(deployer.address), nonce);
    assert.equal((await provider.getCode(executor)).toLowerCase(), productionArtifact("BatchExecutor").deployedBytecode);
  });

  it("each collection wallet gets its own sweeper, whose collector is fixed in its code", async () => {
    const other = Wallet.createRandom().address.toLowerCase();
    const planned = plannedContract("DepositSweeper", other);
    assert.notEqual(planned.address, sweeper);
    const r = await ensureDeployed(provider, new Wallet(anvil.keys[2]!, provider), planned);
    assert.equal(r.status, "deployed");
    assert.match(r.txHash!, /^0x[0-9a-f]{64}$/);
    const c = new Contract(planned.address, productionArtifact("DepositSweeper").abi, provider);
    assert.equal(((await c.collector!()) as string).toLowerCase(), other);
  });

  it("a creation mined at once is found, through a provider with ethers' default 250 ms call cache (as payment dev's)", async () => {
    // anvil here mines each transaction as it arrives: the creation lands well within 250 ms of the
    // "no code yet" read, which ethers' cache would answer again (CI saw it as a reverted creation)
    const cached = new JsonRpcProvider(anvil.rpcUrl, undefined, { staticNetwork: true });
    try {
      const planned = plannedContract("DepositSweeper", Wallet.createRandom().address.toLowerCase());
      const r = await ensureDeployed(cached, new Wallet(anvil.keys[2]!, cached), planned);
      assert.equal(r.status, "deployed");
      assert.notEqual(await provider.getCode(planned.address), "0x");
    } finally {
      cached.destroy();
    }
  });
});
