/**
 * The gas limit the transfer-sender signs with (shared/domain/fees.ts
 * `gasLimitFromEstimate`) against a real EVM: a token transfer estimated
 * while the recipient holds a balance still succeeds when the recipient has
 * emptied it before ours is mined (its balance slot goes from zero to
 * non-zero again: 20,000 gas instead of 2,900). A percentage margin alone
 * runs out of gas there, which the second case shows on the same chain.
 */
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { Contract, JsonRpcProvider, Network, NonceManager, Wallet } from "ethers";
import { startAnvil, deploy, artifact, type Anvil } from "../../shared/devchain/anvil.ts";
import { erc20 } from "../../shared/adapters/chain.ts";
import { gasLimitFromEstimate } from "../../shared/domain/fees.ts";
import { eventually } from "../helpers/rabbit.ts";

let anvil: Anvil;
let provider: JsonRpcProvider;
let usdt: string;

before(async () => {
  anvil = await startAnvil();
  // no response cache: nonces are read again right after each transaction
  provider = new JsonRpcProvider(anvil.rpcUrl, Network.from(anvil.chainId), { staticNetwork: true, cacheTimeout: -1 });
  usdt = await deploy(anvil.rpcUrl, anvil.keys[0]!, "TestUSDT");
});

after(async () => {
  provider?.destroy();
  await anvil?.stop();
});

/**
 * Estimate sender -> recipient while the recipient holds tokens, then let the
 * recipient send all of them away, then send ours with `limitOf(estimate)`.
 */
async function transferAfterRecipientEmptied(senderIndex: number, recipientIndex: number, limitOf: (estimate: bigint) => bigint) {
  const owner = new NonceManager(new Wallet(anvil.keys[0]!, provider));
  const sender = new Wallet(anvil.keys[senderIndex]!, provider);
  const recipient = new Wallet(anvil.keys[recipientIndex]!, provider);
  const token = new Contract(usdt, artifact("TestUSDT").abi, owner);
  await (await token.getFunction("mint")(sender.address, 1_000_000n)).wait();
  await (await token.getFunction("mint")(recipient.address, 5_000_000n)).wait();

  const data = erc20.encodeFunctionData("transfer", [recipient.address, 1_000_000n]);
  const estimate = await provider.estimateGas({ from: sender.address, to: usdt, data, blockTag: "latest" });

  // the recipient empties its balance before our transfer is mined
  const away = erc20.encodeFunctionData("transfer", [Wallet.createRandom().address, 5_000_000n]);
  await (await recipient.sendTransaction({ to: usdt, data: away })).wait();

  const tx = await sender.sendTransaction({ to: usdt, data, gasLimit: limitOf(estimate) });
  // anvil mines each transaction at once (automine); a reverted one has a receipt with status 0
  const receipt = await eventually(() => provider.getTransactionReceipt(tx.hash));
  return { estimate, status: receipt.status, gasUsed: receipt.gasUsed };
}

test("a token transfer signed with gasLimitFromEstimate succeeds when the recipient's balance went back to zero meanwhile", async () => {
  const r = await transferAfterRecipientEmptied(1, 2, gasLimitFromEstimate);
  assert.equal(r.status, 1, `reverted: estimate ${r.estimate}, limit ${gasLimitFromEstimate(r.estimate)}, used ${r.gasUsed}`);
  assert.ok(r.gasUsed > r.estimate, "the transfer cost more than estimated (the slot was written from zero)");
});

test("the same with only +20 % runs out of gas: the storage margin is what makes it succeed", async () => {
  const r = await transferAfterRecipientEmptied(3, 4, (e) => (e * 120n + 99n) / 100n);
  assert.equal(r.status, 0);
});
