/**
 * Sweeps through the DepositSweeper (EIP-7702), black-box on real MariaDB,
 * Redis and anvil through `planSweeps` (what `payment sweep` runs) and the
 * real transfer-sender and confirmation: 20 deposit wallets holding USDT
 * and no ETH are emptied by ONE transaction of the collection wallet, which
 * pays all the gas; no top-up is planned or sent, every wallet ends with 0
 * USDT and 0 ETH, and the gas is at most 0.6 of the old way (a top-up and a
 * transfer per wallet) measured on the same chain in the same run.
 */
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { SigningKey, Transaction, computeAddress, parseEther, randomBytes } from "ethers";
import { eventually } from "../helpers/rabbit.ts";
import { startTransferStack, COLLECTION, type TransferStack } from "../helpers/transfer-stack.ts";
import { planSweeps } from "../../shared/transfers/sweep-plan.ts";
import { createChainReads } from "../../shared/transfers/chain-reads.ts";
import { erc20 } from "../../shared/adapters/chain.ts";
import { delegationTarget } from "../../shared/adapters/eip7702.ts";

let s: TransferStack;
const W = 20;
const HOLDING = 7_250_000n; // 7.25 USDT

before(async () => {
  s = await startTransferStack({ batching: "7702", sweeper: true });
  s.startMining(100);
});

after(async () => {
  await s?.stop();
});

const fresh = () => new SigningKey(randomBytes(32));
const addr = (k: SigningKey) => computeAddress(k.publicKey).toLowerCase();

/** the old way on the same chain: a 0.005 ETH top-up from the collection wallet, then the wallet's own transfer */
async function oldWayGas(n: number): Promise<{ gas: bigint; stranded: bigint }> {
  const chainId = BigInt(s.env.anvil!.chainId);
  const payer = fresh();
  await s.provider.send("anvil_setBalance", [addr(payer), "0x56bc75e2d63100000"]);
  const send = async (key: SigningKey, nonce: number, to: string, data: string, value: bigint) => {
    const tx = Transaction.from({ type: 2, chainId, nonce, to, data, value, gasLimit: 100_000n, maxFeePerGas: 20_000_000_000n, maxPriorityFeePerGas: 1_000_000_000n });
    tx.signature = key.sign(tx.unsignedHash);
    const hash = await s.provider.send("eth_sendRawTransaction", [tx.serialized]);
    return eventually(() => s.provider.getTransactionReceipt(hash), 30_000);
  };
  let gas = 0n;
  let stranded = 0n;
  for (let i = 0; i < n; i++) {
    const w = fresh();
    await s.mint(addr(w), HOLDING);
    gas += (await send(payer, i, addr(w), "0x", parseEther("0.005"))).gasUsed;
    gas += (await send(w, 0, s.env.usdt!, erc20.encodeFunctionData("transfer", [addr(payer), HOLDING]), 0n)).gasUsed;
    stranded += await s.ethOf(addr(w));
  }
  return { gas, stranded };
}

test(`${W} deposit wallets swept in one transaction of the collection wallet: no top-up, 0 ETH left, at most 0.6 of the old way's gas`, { timeout: 240_000 }, async () => {
  const wallets: string[] = [];
  for (let i = 0; i < W; i++) {
    const k = fresh();
    wallets.push(await s.importWallet(k.privateKey, "deposit"));
    await s.mint(wallets[i]!, HOLDING);
  }
  const collectionBefore = await s.usdtOf(COLLECTION);
  const ethBefore = await s.ethOf(COLLECTION);

  const lines = await planSweeps(
    { config: s.env.config, pool: s.env.db.pool, queues: s.env.queues, reads: createChainReads(s.provider) },
    { chain: "ETH", symbol: "USDT", minUnits: 1n, dryRun: false, actor: "test", nowMs: Date.now() },
  );
  assert.equal(lines.length, W);
  assert.ok(lines.every((l) => l.action === "sweep" && l.gasTopup === undefined), "no gas top-up planned");

  await eventually(async () => (await s.env.db.prisma.transfer.count({ where: { kind: "sweep", state: "confirmed" } })) === W, 180_000);
  const rows = await s.env.db.prisma.transfer.findMany({ where: { kind: "sweep" } });
  assert.equal(await s.env.db.prisma.transfer.count({ where: { kind: "gas_topup" } }), 0, "no top-up sent");
  const hashes = new Set(rows.map((r) => r.txHash!));
  assert.equal(hashes.size, 1, "one transaction");
  const hash = [...hashes][0]!;
  const tx = (await s.provider.getTransaction(hash))!;
  assert.equal(tx.from.toLowerCase(), COLLECTION, "sent and paid by the collection wallet");
  assert.equal(tx.to!.toLowerCase(), s.sweeper);
  assert.equal(tx.type, 4);
  for (const r of rows) {
    assert.equal(r.fromAddress, COLLECTION);
    assert.ok(wallets.includes(r.requestedFrom));
  }
  for (const w of wallets) {
    assert.equal(await s.usdtOf(w), 0n, `${w} swept`);
    assert.equal(await s.ethOf(w), 0n, `${w} holds no ETH`);
    assert.equal(delegationTarget(await s.provider.getCode(w)), s.sweeper);
  }
  assert.equal((await s.usdtOf(COLLECTION)) - collectionBefore, BigInt(W) * HOLDING);
  const receipt = (await s.provider.getTransactionReceipt(hash))!;
  assert.equal(ethBefore - (await s.ethOf(COLLECTION)), receipt.gasUsed * receipt.gasPrice, "the collection wallet paid the gas, nothing else");
  const fees = rows.reduce((sum, r) => sum + BigInt(r.feePaid!.mul(10 ** 18).toFixed(0)), 0n);
  assert.equal(fees, receipt.gasUsed * receipt.gasPrice, "the fee is booked once across the wallets");

  const old = await oldWayGas(W);
  const ratio = Number(receipt.gasUsed) / Number(old.gas);
  console.log(`# gas: sweeper ${receipt.gasUsed} for ${W} wallets vs old way ${old.gas} (top-up + transfer each) -> ratio ${ratio.toFixed(3)}; old way stranded ${old.stranded} wei`);
  assert.ok(ratio <= 0.6, `ratio ${ratio}`);
  assert.ok(old.stranded > 0n);
});

test("a second sweep of already delegated wallets carries no authorization; a wallet swept again holds nothing", { timeout: 120_000 }, async () => {
  const sweptBefore = await s.env.db.prisma.transfer.count({ where: { kind: "sweep", state: "confirmed" } });
  const wallets = (await s.env.db.prisma.wallet.findMany({ where: { kind: "deposit" }, orderBy: { id: "asc" } })).slice(0, 3).map((w) => w.address);
  for (const w of wallets) await s.mint(w, 1_000_000n);
  const lines = await planSweeps(
    { config: s.env.config, pool: s.env.db.pool, queues: s.env.queues, reads: createChainReads(s.provider) },
    { chain: "ETH", symbol: "USDT", minUnits: 1n, dryRun: false, actor: "test", nowMs: Date.now() + 1000 },
  );
  assert.equal(lines.filter((l) => l.action === "sweep").length, 3);
  await eventually(async () => (await s.env.db.prisma.transfer.count({ where: { kind: "sweep", state: "confirmed" } })) === sweptBefore + 3, 90_000);
  const rows = await s.env.db.prisma.transfer.findMany({ where: { kind: "sweep" }, orderBy: { id: "desc" }, take: 3 });
  const tx = (await s.provider.getTransaction(rows[0]!.txHash!))!;
  assert.equal(tx.type, 2, "the wallets already delegate to the sweeper");
  for (const w of wallets) assert.equal(await s.usdtOf(w), 0n);
});
