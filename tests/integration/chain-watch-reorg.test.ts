/**
 * Reorgs (anvil_reorg) below confirm_height: a deposit whose transaction
 * leaves the chain ends status 0 `reorged` and is never final; a deposit
 * whose transaction is mined again (at another log index) is followed and
 * finalised exactly once.
 */
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { Contract, Wallet } from "ethers";
import { createTestEnv, type TestEnv } from "../helpers/env.ts";
import { eventually, type Note } from "../helpers/rabbit.ts";
import { chainTools, newAddress, startDepositStack, type ChainTools, type DepositStack } from "../helpers/deposit-stack.ts";
import { artifact } from "../../shared/devchain/anvil.ts";

let env: TestEnv;
let stack: DepositStack;
let chain: ChainTools;
const CONFIRM = 3;

before(async () => {
  env = await createTestEnv({ anvil: true, config: (c) => ({ ...c, eth_config: { ...c.eth_config!, confirm_height: CONFIRM } }) });
  chain = await chainTools(env);
  stack = await startDepositStack(env);
});

after(async () => {
  await stack?.stop();
  chain?.close();
  await env?.cleanup();
});

const forTx = (hash: string, status: number) => (n: Note) => n.tx_hash === hash && n.status === status;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A funded USDT holder whose transfers we sign ourselves (raw bytes to replay in anvil_reorg). */
async function rawTransfer(keyIndex: number, to: string, units: bigint): Promise<{ raw: string; hash: string }> {
  const wallet = new Wallet(env.anvil!.keys[keyIndex]!, chain.provider);
  const token = new Contract(env.usdt!, artifact("TestUSDT").abi);
  const nonce = await chain.provider.getTransactionCount(wallet.address, "pending");
  const fee = await chain.provider.getFeeData();
  const raw = await wallet.signTransaction({
    type: 2,
    chainId: BigInt(env.anvil!.chainId),
    to: env.usdt!,
    data: token.interface.encodeFunctionData("transfer", [to, units]),
    nonce,
    gasLimit: 100_000n,
    maxFeePerGas: fee.maxFeePerGas! * 2n,
    maxPriorityFeePerGas: fee.maxPriorityFeePerGas!,
  });
  return { raw, hash: (await chain.provider.send("eth_sendRawTransaction", [raw])) as string };
}

async function fund(keyIndex: number) {
  await (await chain.usdt.getFunction("mint")(new Wallet(env.anvil!.keys[keyIndex]!).address, 10n ** 12n)).wait();
}

test("a reorg that drops a pending deposit's transaction ends it reorged, never final", async () => {
  const addr = newAddress(0xc1);
  await stack.topup("USDT", addr, "topup-reorg-1");
  // sent from its own account: the reorg drops it, and a shared sender's local nonce would go stale
  await fund(6);
  const sent = await rawTransfer(6, addr, 42_000_000n);
  const receipt = await eventually(async () => (await chain.provider.getTransactionReceipt(sent.hash))!);
  const seen = await stack.biz.waitFor("topup", forTx(receipt.hash, 2));
  assert.equal(seen.amount_exact, "42");

  // replace the deposit's block (depth 1 < confirm_height) with an empty one
  await chain.provider.send("anvil_reorg", [1, []]);
  assert.equal(await chain.provider.send("eth_getTransactionReceipt", [receipt.hash]), null);

  const failed = await stack.biz.waitFor("topup", forTx(receipt.hash, 0));
  assert.equal(failed.error, "reorged");
  assert.equal(failed.amount_exact, "42");
  assert.equal(failed.queue_id, "topup-reorg-1");

  await chain.mine(CONFIRM + 2);
  await sleep(1_000);
  assert.equal(stack.biz.received("topup").filter(forTx(receipt.hash, 1)).length, 0);
  const d = await env.db.prisma.deposit.findFirstOrThrow({ where: { txHash: receipt.hash.toLowerCase() } });
  assert.equal(d.state, "reorged");
  assert.equal(d.error, "reorged");
  assert.equal(await env.db.prisma.balance.count({ where: { address: addr } }), 0);
  assert.ok(stack.biz.allSigned());
});

test("a deposit re-mined in the replacing block at another log index is followed and final once", async () => {
  await fund(4);
  await fund(5);
  const addr = newAddress(0xc2);
  await stack.topup("USDT", addr);
  const deposit = await rawTransfer(4, addr, 100_500_001n);
  const first = await eventually(() => chain.provider.send("eth_getTransactionReceipt", [deposit.hash]));
  const seen = await stack.biz.waitFor("topup", forTx(deposit.hash, 2));
  assert.equal(seen.log_index, 0);
  const row = await env.db.prisma.deposit.findFirstOrThrow({ where: { txHash: deposit.hash } });

  // another transfer goes first in the replacing block, so ours moves to log index 1
  const other = await rawTransfer(5, newAddress(0xc3), 5n);
  await eventually(() => chain.provider.send("eth_getTransactionReceipt", [other.hash]));
  const depth = (await chain.head()) - Number(first.blockNumber) + 1;
  assert.ok(depth < CONFIRM);
  await chain.provider.send("anvil_reorg", [depth, [[other.raw, 0], [deposit.raw, 0]]]);
  const again = await chain.provider.send("eth_getTransactionReceipt", [deposit.hash]);
  assert.notEqual(again.blockHash, first.blockHash);
  assert.equal(Number(again.logs[0].logIndex), 1);

  await eventually(async () => {
    const d = await env.db.prisma.deposit.findUniqueOrThrow({ where: { id: row.id } });
    return d.blockHash === again.blockHash && d.logIndex === 1;
  });
  await chain.mine(CONFIRM);
  const final = await stack.biz.waitFor("topup", forTx(deposit.hash, 1));
  assert.equal(final.amount_exact, "100.500001");
  assert.equal(final.log_index, 1);
  assert.equal(final.block_height, Number(again.blockNumber));

  await chain.mine(2);
  await sleep(1_000);
  const notes = stack.biz.received("topup").filter((n) => n.tx_hash === deposit.hash);
  assert.deepEqual(notes.map((n) => n.status).sort(), [1, 2]);
  assert.equal(await env.db.prisma.deposit.count({ where: { txHash: deposit.hash } }), 1);
  const balance = await env.db.prisma.balance.findFirstOrThrow({ where: { address: addr, symbol: "USDT" } });
  assert.equal(balance.amount.toFixed(), "100.500001");
  const audit = await env.db.prisma.auditEvent.findMany({ where: { subjectType: "deposit", subjectId: row.id, event: "deposit.followed" } });
  assert.ok(audit.length >= 1, "the move is audited");
});
