/**
 * Reorgs (anvil_reorg) below confirm_height: a deposit whose transaction
 * leaves the chain ends status 0 `reorged` and is never final; a deposit
 * whose transaction is mined again (at another log index) is followed and
 * finalised exactly once.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { Contract, Wallet } from "ethers";
import { eventually } from "../helpers/rabbit.ts";
import { depositSuite, forTx, newAddress } from "../helpers/deposit-stack.ts";
import { artifact } from "../../shared/devchain/anvil.ts";

const CONFIRM = 3;
const s = depositSuite((c) => ({ ...c, eth_config: { ...c.eth_config!, confirm_height: CONFIRM } }));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A funded USDT holder whose transfers we sign ourselves (raw bytes to replay in anvil_reorg). */
async function rawTransfer(keyIndex: number, to: string, units: bigint): Promise<{ raw: string; hash: string }> {
  const wallet = new Wallet(s.env.anvil!.keys[keyIndex]!, s.chain.provider);
  const token = new Contract(s.env.usdt!, artifact("TestUSDT").abi);
  const nonce = await s.chain.provider.getTransactionCount(wallet.address, "pending");
  const fee = await s.chain.provider.getFeeData();
  const raw = await wallet.signTransaction({
    type: 2,
    chainId: BigInt(s.env.anvil!.chainId),
    to: s.env.usdt!,
    data: token.interface.encodeFunctionData("transfer", [to, units]),
    nonce,
    gasLimit: 100_000n,
    maxFeePerGas: fee.maxFeePerGas! * 2n,
    maxPriorityFeePerGas: fee.maxPriorityFeePerGas!,
  });
  return { raw, hash: (await s.chain.provider.send("eth_sendRawTransaction", [raw])) as string };
}

async function fund(keyIndex: number) {
  await (await s.chain.usdt.getFunction("mint")(new Wallet(s.env.anvil!.keys[keyIndex]!).address, 10n ** 12n)).wait();
}

test("a reorg that drops a pending deposit's transaction ends it reorged, never final", async () => {
  const addr = newAddress(0xc1);
  await s.stack.topup("USDT", addr, "topup-reorg-1");
  // sent from its own account: the reorg drops it, and a shared sender's local nonce would go stale
  await fund(6);
  const sent = await rawTransfer(6, addr, 42_000_000n);
  const receipt = await eventually(async () => (await s.chain.provider.getTransactionReceipt(sent.hash))!);
  const seen = await s.stack.biz.waitFor("topup", forTx(receipt.hash, 2));
  assert.equal(seen.amount_exact, "42");

  // replace the deposit's block (depth 1 < confirm_height) with an empty one
  await s.chain.provider.send("anvil_reorg", [1, []]);
  assert.equal(await s.chain.provider.send("eth_getTransactionReceipt", [receipt.hash]), null);

  const failed = await s.stack.biz.waitFor("topup", forTx(receipt.hash, 0));
  assert.equal(failed.error, "reorged");
  assert.equal(failed.amount_exact, "42");
  assert.equal(failed.queue_id, "topup-reorg-1");

  await s.chain.mine(CONFIRM + 2);
  await sleep(1_000);
  assert.equal(s.stack.biz.received("topup").filter(forTx(receipt.hash, 1)).length, 0);
  const d = await s.env.db.prisma.deposit.findFirstOrThrow({ where: { txHash: receipt.hash.toLowerCase() } });
  assert.equal(d.state, "reorged");
  assert.equal(d.error, "reorged");
  assert.equal(await s.env.db.prisma.balance.count({ where: { address: addr } }), 0);
  assert.ok(s.stack.biz.allSigned());
});

test("a deposit re-mined in the replacing block at another log index is followed and final once", async () => {
  await fund(4);
  await fund(5);
  const addr = newAddress(0xc2);
  await s.stack.topup("USDT", addr);
  const deposit = await rawTransfer(4, addr, 100_500_001n);
  const first = await eventually(() => s.chain.provider.send("eth_getTransactionReceipt", [deposit.hash]));
  const seen = await s.stack.biz.waitFor("topup", forTx(deposit.hash, 2));
  assert.equal(seen.log_index, 0);
  const row = await s.env.db.prisma.deposit.findFirstOrThrow({ where: { txHash: deposit.hash } });

  // another transfer goes first in the replacing block, so ours moves to log index 1
  const other = await rawTransfer(5, newAddress(0xc3), 5n);
  await eventually(() => s.chain.provider.send("eth_getTransactionReceipt", [other.hash]));
  const depth = (await s.chain.head()) - Number(first.blockNumber) + 1;
  assert.ok(depth < CONFIRM);
  await s.chain.provider.send("anvil_reorg", [depth, [[other.raw, 0], [deposit.raw, 0]]]);
  const again = await s.chain.provider.send("eth_getTransactionReceipt", [deposit.hash]);
  assert.notEqual(again.blockHash, first.blockHash);
  assert.equal(Number(again.logs[0].logIndex), 1);

  await eventually(async () => {
    const d = await s.env.db.prisma.deposit.findUniqueOrThrow({ where: { id: row.id } });
    return d.blockHash === again.blockHash && d.logIndex === 1;
  });
  await s.chain.mine(CONFIRM);
  const final = await s.stack.biz.waitFor("topup", forTx(deposit.hash, 1));
  assert.equal(final.amount_exact, "100.500001");
  assert.equal(final.log_index, 1);
  assert.equal(final.block_height, Number(again.blockNumber));

  await s.chain.mine(2);
  await sleep(1_000);
  const notes = s.stack.biz.received("topup").filter((n) => n.tx_hash === deposit.hash);
  assert.deepEqual(notes.map((n) => n.status).sort(), [1, 2]);
  assert.equal(await s.env.db.prisma.deposit.count({ where: { txHash: deposit.hash } }), 1);
  const balance = await s.env.db.prisma.balance.findFirstOrThrow({ where: { address: addr, symbol: "USDT" } });
  assert.equal(balance.amount.toFixed(), "100.500001");
  const audit = await s.env.db.prisma.auditEvent.findMany({ where: { subjectType: "deposit", subjectId: row.id, event: "deposit.followed" } });
  assert.ok(audit.length >= 1, "the move is audited");
});
