/**
 * Transfers the chain does not simply mine: one that reverts (the token
 * blocks the recipient between signing and mining) ends status 0
 * `reverted`; one stuck in the mempool (mining paused, the node even drops
 * it) is re-broadcast and replaced with a higher fee on the same nonce,
 * and whichever attempt is mined is reported, once; one read through a
 * lagging node (null receipts) is not taken for dropped.
 */
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { Contract, Wallet } from "ethers";
import { nowS, eventually } from "../helpers/rabbit.ts";
import { artifact } from "../../shared/devchain/anvil.ts";
import { startTransferStack, randomAddress, HOT, HOT_KEY, type TransferStack } from "../helpers/transfer-stack.ts";
import { startRpcProxy } from "../helpers/rpc-proxy.ts";
import { quiescent } from "../helpers/quiet.ts";
import { createConfirmationWorker } from "../../workers/confirmation/main.ts";

let s: TransferStack;

before(async () => {
  s = await startTransferStack({ config: (c) => ({ ...c, eth_config: { ...c.eth_config!, stuck_after_s: 2, fee_bump_percent: 25 } }) });
});

after(async () => {
  await s?.provider.send("evm_setAutomine", [true]).catch(() => undefined);
  await s?.stop();
});

const withdraw = (queueId: string, to: string, amount: string) =>
  s.biz.send("withdraw", { queue_id: queueId, from_address: HOT, to_address: to, amount, chain: "ETH", symbol: "USDT", timestamp: nowS() });

test("a transfer that reverts on chain ends status 0 reverted; only its gas is debited", async () => {
  await s.provider.send("evm_setAutomine", [false]);
  const to = randomAddress();
  await withdraw("w-revert", to, "7");
  const pending = await s.biz.waitFor("withdraw", (n) => n.queue_id === "w-revert" && n.status === 2, 30_000);
  // The token's owner blocks the recipient, with a higher tip so it is mined first in the same block.
  const owner = new Wallet(s.env.anvil!.keys[0]!, s.provider);
  const token = new Contract(s.env.usdt!, artifact("TestUSDT").abi, owner);
  await token.getFunction("setBlocked")(to, true, { maxPriorityFeePerGas: 50_000_000_000n, maxFeePerGas: 100_000_000_000n });
  await s.mine(1);
  const receipt = await s.provider.getTransactionReceipt(String(pending.tx_hash));
  assert.equal(receipt?.status, 0, "the transfer reverted on chain");
  await s.provider.send("evm_setAutomine", [true]);
  s.startMining(100);
  const final = await s.biz.waitFor("withdraw", (n) => n.queue_id === "w-revert" && n.status !== 2, 30_000);
  await s.stopMining();
  assert.equal(final.status, 0);
  assert.equal(final.error, "reverted");
  assert.equal(final.tx_hash, pending.tx_hash);
  assert.equal(await s.usdtOf(to), 0n);
  const t = await s.env.db.prisma.transfer.findFirst({ where: { queueId: "w-revert" } });
  assert.equal(t?.state, "failed");
  assert.ok(t!.feePaid!.gt(0));
  const book = await s.env.db.prisma.balance.findFirst({ where: { address: HOT, symbol: "USDT" } });
  assert.equal(book, null, "no token debit for a reverted transfer");
  const gas = await s.env.db.prisma.balance.findFirst({ where: { address: HOT, symbol: "ETH" } });
  assert.equal(gas?.amount.neg().toFixed(), t!.feePaid!.toFixed());
});

test("a stuck transaction, even dropped by the node, is replaced with a higher fee (same nonce) and confirmed once", async () => {
  await s.provider.send("evm_setAutomine", [false]);
  const to = randomAddress();
  await withdraw("w-stuck", to, "4.5");
  const pending = await s.biz.waitFor("withdraw", (n) => n.queue_id === "w-stuck" && n.status === 2, 30_000);
  const first = String(pending.tx_hash);
  assert.ok(await s.provider.send("eth_getTransactionByHash", [first]));
  await s.provider.send("anvil_dropTransaction", [first]);
  assert.equal(await s.provider.send("eth_getTransactionByHash", [first]), null);

  // confirmation notices it is gone (re-broadcasts it), then stuck: the sender replaces it
  const attempts = await eventually(async () => {
    const a = await s.env.db.prisma.txAttempt.findMany({ where: { transfer: { queueId: "w-stuck" } }, orderBy: { id: "asc" } });
    return a.length >= 2 && a[a.length - 1]!.state === "broadcast" ? a : null;
  }, 30_000);
  const last = attempts[attempts.length - 1]!;
  assert.equal(new Set(attempts.map((a) => a.nonce)).size, 1, "every attempt has the same nonce");
  assert.ok(last.maxFeePerGas.gte(attempts[0]!.maxFeePerGas.mul(125).div(100)), "fee cap raised by the bump");
  assert.ok(last.maxPriorityFeePerGas.gte(attempts[0]!.maxPriorityFeePerGas.mul(125).div(100)), "tip raised by the bump");
  assert.ok(await s.provider.send("eth_getTransactionByHash", [last.txHash]), "the replacement is in the pool");

  await s.provider.send("evm_setAutomine", [true]);
  await s.mine(1);
  s.startMining(100);
  const final = await s.biz.waitFor("withdraw", (n) => n.queue_id === "w-stuck" && n.status !== 2, 30_000);
  await s.stopMining();
  assert.equal(final.status, 1, JSON.stringify(final));
  const mined = await s.env.db.prisma.txAttempt.findMany({ where: { transfer: { queueId: "w-stuck" }, state: "mined" } });
  assert.equal(mined.length, 1);
  assert.equal(final.tx_hash, mined[0]!.txHash, "the mined attempt is the one reported");
  assert.equal(await s.provider.getTransactionReceipt(first), null, "the first attempt never made it");
  assert.equal(await s.usdtOf(to), 4_500_000n);
  await quiescent(s.env, s.biz);
  assert.equal(s.biz.received("withdraw").filter((n) => n.queue_id === "w-stuck").length, 2, "one pending + one final notification");
});

test("a transfer whose block is reorged away is re-broadcast, mined again and confirmed once (same tx)", async () => {
  const to = randomAddress();
  await withdraw("w-reorg", to, "6");
  const pending = await s.biz.waitFor("withdraw", (n) => n.queue_id === "w-reorg" && n.status === 2, 30_000);
  const t0 = await eventually(async () => {
    const t = await s.env.db.prisma.transfer.findFirst({ where: { queueId: "w-reorg" } });
    return t?.state === "mined" ? t : null;
  }, 30_000);
  // replace the transfer's block (depth 1 < confirm_height); its transaction is not carried over
  const head = BigInt(await s.provider.send("eth_blockNumber", []));
  assert.equal(head, t0.blockNumber, "the transfer is in the head block");
  await s.provider.send("anvil_reorg", [1, []]);
  assert.equal(await s.provider.send("eth_getTransactionReceipt", [String(pending.tx_hash)]), null, "gone from the chain");
  await eventually(async () => (await s.env.db.prisma.auditEvent.count({ where: { event: "transfer.unmined", queueId: "w-reorg" } })) === 1, 30_000);
  s.startMining(100);
  const final = await s.biz.waitFor("withdraw", (n) => n.queue_id === "w-reorg" && n.status !== 2, 60_000);
  await s.stopMining();
  assert.equal(final.status, 1, JSON.stringify(final));
  assert.equal(final.tx_hash, pending.tx_hash, "the same signed transaction, mined again");
  const t1 = await s.env.db.prisma.transfer.findFirst({ where: { queueId: "w-reorg" } });
  assert.notEqual(t1!.blockHash, t0.blockHash);
  assert.equal(await s.usdtOf(to), 6_000_000n);
  assert.equal(await s.env.db.prisma.txAttempt.count({ where: { transfer: { queueId: "w-reorg" } } }), 1);
  assert.equal(s.biz.received("withdraw").filter((n) => n.queue_id === "w-reorg" && n.status === 1).length, 1);
});

test("a transfer whose nonce another transaction used ends dropped, once that transaction is deep", async () => {
  await s.provider.send("evm_setAutomine", [false]);
  const to = randomAddress();
  await withdraw("w-dropped", to, "8");
  const pending = await s.biz.waitFor("withdraw", (n) => n.queue_id === "w-dropped" && n.status === 2, 30_000);
  const t = (await s.env.db.prisma.transfer.findFirst({ where: { queueId: "w-dropped" } }))!;
  // someone else with the hot wallet's key spends the same nonce, paying more
  const other = new Wallet(HOT_KEY, s.provider);
  await other.sendTransaction({ to: other.address, value: 0n, nonce: Number(t.nonce), maxPriorityFeePerGas: 40_000_000_000n, maxFeePerGas: 90_000_000_000n, gasLimit: 21_000n });
  await s.provider.send("evm_setAutomine", [true]);
  s.startMining(100);
  const final = await s.biz.waitFor("withdraw", (n) => n.queue_id === "w-dropped" && n.status !== 2, 60_000);
  await s.stopMining();
  assert.equal(final.status, 0);
  assert.equal(final.error, "dropped");
  assert.equal(await s.provider.send("eth_getTransactionReceipt", [String(pending.tx_hash)]), null);
  assert.equal(await s.usdtOf(to), 0n);
  const book = await s.env.db.prisma.auditEvent.count({ where: { event: "transfer.dropped", queueId: "w-dropped" } });
  assert.equal(book, 1);
});

test("a mined transfer read through a lagging node (null receipts) is not ended dropped: its receipt is re-read anchored at depth, twice, and it is confirmed", async () => {
  // confirmation is down while the transfer is mined and buried deep
  await s.confirm.stop();
  const to = randomAddress();
  await withdraw("w-lagging", to, "2.75");
  const pending = await s.biz.waitFor("withdraw", (n) => n.queue_id === "w-lagging" && n.status === 2, 30_000);
  const hash = String(pending.tx_hash);
  await eventually(() => s.provider.send("eth_getTransactionReceipt", [hash]), 30_000);
  await s.mine(s.env.config.chains.ETH!.confirm_height + 2);

  // back up behind a load balancer whose backend lags: its first three answers for this receipt are null
  let nulls = 3;
  const proxy = await startRpcProxy(s.env.anvil!.rpcUrl, (c) => {
    if (c.method === "eth_getTransactionReceipt" && String(c.params[0]).toLowerCase() === hash && nulls > 0) {
      nulls--;
      return { result: null };
    }
    return undefined;
  });
  const lagging = createConfirmationWorker({ ...s.env, config: { ...s.env.config, chains: { ETH: { ...s.env.config.chains.ETH!, rpc_url: proxy.url } } } });
  await lagging.start();
  s.startMining(100);
  try {
    const final = await s.biz.waitFor("withdraw", (n) => n.queue_id === "w-lagging" && n.status !== 2, 60_000);
    assert.equal(final.status, 1, JSON.stringify(final));
    assert.equal(final.tx_hash, hash);
    assert.equal(nulls, 0, "the lagging answers were all read");
    assert.equal(await s.usdtOf(to), 2_750_000n);
  } finally {
    await s.stopMining();
    await lagging.stop();
    await proxy.close();
  }
});
