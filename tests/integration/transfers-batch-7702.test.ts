/**
 * Payouts through EIP-7702 batches, black-box through the real sender and
 * confirmation on real RabbitMQ, MariaDB, Redis and anvil (batching "7702",
 * the BatchExecutor deployed and recorded as `payment contracts deploy`
 * does):
 *
 * - a `pay` of 200 orders goes out as one transaction of the hot wallet and
 *   costs at most 0.6 of 200 plain USDT transfers measured on the same chain
 *   in the same run; every order gets `2` then `1` with its exact amount and
 *   the batch's tx_hash;
 * - a call that fails inside a batch (its recipient blocked by the token
 *   between signing and mining) gives that order alone `0 reverted`, the
 *   others are paid;
 * - payouts arriving while the wallet's first batch (carrying its
 *   authorization) is unmined wait for it to be mined, then go without one
 *   at the nonce after the authorization's;
 * - an order that would revert already is refused before signing;
 * - a replacement of a stuck batch keeps its nonce and all its orders.
 */
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { SigningKey, Transaction, computeAddress, randomBytes } from "ethers";
import { nowS, eventually, type Note } from "../helpers/rabbit.ts";
import { startTransferStack, waitForNotes, randomAddress, HOT, type TransferStack } from "../helpers/transfer-stack.ts";
import { erc20 } from "../../shared/adapters/chain.ts";
import { delegationTarget } from "../../shared/adapters/eip7702.ts";

let s: TransferStack;

before(async () => {
  // stuck_after_s 1: the replacement test holds a batch unmined; every other batch here is mined within a block time
  s = await startTransferStack({ batching: "7702", config: (c) => ({ ...c, eth_config: { ...c.eth_config!, hold_s: 0, stuck_after_s: 1 } }) });
  s.startMining(100);
});

after(async () => {
  await s?.stop();
});

/** "1.000001" .. "50.999001": assorted amounts with 6 decimals */
const amountOf = (i: number) => `${1 + (i % 50)}.${String(((i * 7919) % 1000) * 1000 + 1).padStart(6, "0")}`;
const unitsOf = (a: string) => {
  const [i, f = ""] = a.split(".");
  return BigInt(i! + f.padEnd(6, "0"));
};

/** statuses per order_id of one queue_id, in the order they arrived */
function statusesByOrder(notes: Note[], queueId: string): Map<string, number[]> {
  const out = new Map<string, number[]>();
  for (const n of notes.filter((x) => x.queue_id === queueId)) out.set(String(n.order_id), [...(out.get(String(n.order_id)) ?? []), n.status]);
  return out;
}

/** gas of `n` plain USDT transfers to fresh recipients from a fresh wallet, one transaction each, on the same chain */
async function plainTransfersGas(n: number): Promise<bigint> {
  const key = new SigningKey(randomBytes(32));
  const from = computeAddress(key.publicKey).toLowerCase();
  await s.provider.send("anvil_setBalance", [from, "0x56bc75e2d63100000"]);
  await s.mint(from, 10n ** 12n);
  const chainId = BigInt(s.env.anvil!.chainId);
  const base = await s.provider.getTransactionCount(from);
  const hashes: string[] = [];
  for (let i = 0; i < n; i++) {
    const tx = Transaction.from({
      type: 2,
      chainId,
      nonce: base + i,
      to: s.env.usdt!,
      data: erc20.encodeFunctionData("transfer", [randomAddress(), unitsOf(amountOf(i))]),
      gasLimit: 100_000n,
      maxFeePerGas: 100_000_000_000n,
      maxPriorityFeePerGas: 1_000_000_000n,
    });
    tx.signature = key.sign(tx.unsignedHash);
    hashes.push(await s.provider.send("eth_sendRawTransaction", [tx.serialized]));
  }
  let gas = 0n;
  for (const h of hashes) {
    const r = await eventually(() => s.provider.getTransactionReceipt(h), 60_000);
    assert.equal(r.status, 1);
    gas += r.gasUsed;
  }
  return gas;
}

test("a pay of 200 orders: one batch transaction, at most 0.6 of the gas of 200 plain transfers, every order 2 then 1 with its exact amount", { timeout: 300_000 }, async () => {
  const q = "p-7702-200";
  const orders = Array.from({ length: 200 }, (_, i) => ({ order_id: `o${i}`, to_address: randomAddress(), amount: amountOf(i) }));
  await s.biz.send("pay", { queue_id: q, from_address: HOT, chain: "ETH", symbol: "USDT", transactions: orders, timestamp: nowS() });
  const finals = await waitForNotes(s.biz, "pay", 1, 200, (x) => x === q, 240_000);

  // the business's view: per order exactly `2` then `1`, the exact amount, the batch's tx_hash
  const byOrder = statusesByOrder(s.biz.received("pay"), q);
  assert.equal(byOrder.size, 200);
  for (const [order, statuses] of byOrder) assert.deepEqual(statuses, [2, 1], `order ${order}`);
  const hashes = new Set(finals.map((n) => String(n.tx_hash)));
  assert.equal(hashes.size, 1, "the 200 orders went out in one transaction");
  const [hash] = [...hashes];
  for (const o of orders) {
    const f = finals.find((n) => n.order_id === o.order_id)!;
    assert.equal(f.amount_exact, o.amount, o.order_id);
    assert.equal(await s.usdtOf(o.to_address), unitsOf(o.amount), o.order_id);
  }
  const pendings = s.biz.received("pay").filter((n) => n.queue_id === q && n.status === 2);
  assert.ok(pendings.every((n) => n.tx_hash === hash), "the status-2 notes name the batch too");
  assert.ok(s.biz.allSigned());

  // the wallet now delegates to our executor (installed by the batch's own authorization)
  assert.equal(delegationTarget(await s.provider.getCode(HOT)), s.executor);

  // what the chain charged, against 200 plain transfers measured now on the same chain
  const receipt = (await s.provider.getTransactionReceipt(hash!))!;
  assert.equal(receipt.type, 4, "type 4: the delegation was installed by the batch itself");
  const plain = await plainTransfersGas(200);
  const ratio = Number(receipt.gasUsed) / Number(plain);
  console.log(`# gas: batch of 200 ${receipt.gasUsed} vs 200 plain ${plain} -> ratio ${ratio.toFixed(3)}`);
  assert.ok(ratio <= 0.6, `ratio ${ratio}`);

  // the books: each order booked its exact share of the one fee, summing to the fee paid
  const rows = await s.env.db.prisma.transfer.findMany({ where: { queueId: q } });
  const fees = rows.reduce((sum, r) => sum + BigInt(r.feePaid!.mul(10 ** 18).toFixed(0)), 0n);
  assert.equal(fees, receipt.gasUsed * receipt.gasPrice);
  const attempts = await s.env.db.prisma.txAttempt.findMany({ where: { transfer: { queueId: q } } });
  assert.equal(attempts.length, 200, "one attempt row per order");
  assert.deepEqual([...new Set(attempts.map((a) => a.batchSize))], [200]);
  assert.deepEqual(
    attempts.map((a) => a.batchIndex).sort((a, b) => a! - b!),
    Array.from({ length: 200 }, (_, i) => i),
  );
});

test("a call that fails inside a batch ends that order alone status 0 `reverted`; the others are paid", { timeout: 120_000 }, async () => {
  const q = "p-7702-isolated";
  const orders = Array.from({ length: 6 }, (_, i) => ({ order_id: `i${i}`, to_address: randomAddress(), amount: amountOf(i) }));
  const victim = orders[3]!;
  await s.stopMining();
  await s.provider.send("evm_setAutomine", [false]);
  try {
    await s.biz.send("pay", { queue_id: q, from_address: HOT, chain: "ETH", symbol: "USDT", transactions: orders, timestamp: nowS() });
    // signed and broadcast (every order reported 2), not mined yet
    await waitForNotes(s.biz, "pay", 2, 6, (x) => x === q, 60_000);
    const rows = await s.env.db.prisma.transfer.findMany({ where: { queueId: q } });
    assert.equal(new Set(rows.map((r) => r.txHash)).size, 1);
    // the token refuses the victim from now on: its transfer inside the batch will revert
    const block = await s.usdt.getFunction("setBlocked").populateTransaction(victim.to_address, true);
    await s.usdt.runner!.sendTransaction!({ ...block, maxPriorityFeePerGas: 50_000_000_000n, maxFeePerGas: 200_000_000_000n });
    await s.mine(1);
    const batch = (await s.provider.getTransactionReceipt(rows[0]!.txHash!))!;
    assert.equal(batch.status, 1, "the batch transaction itself succeeded");
  } finally {
    await s.provider.send("evm_setAutomine", [true]);
    s.startMining(100);
  }
  await waitForNotes(s.biz, "pay", 1, 5, (x) => x === q, 60_000);
  const failed = await s.biz.waitFor("pay", (n) => n.queue_id === q && n.order_id === victim.order_id && n.status === 0, 60_000);
  assert.equal(failed.error, "reverted");
  const byOrder = statusesByOrder(s.biz.received("pay"), q);
  for (const o of orders) assert.deepEqual(byOrder.get(o.order_id), o === victim ? [2, 0] : [2, 1], o.order_id);
  for (const o of orders) assert.equal(await s.usdtOf(o.to_address), o === victim ? 0n : unitsOf(o.amount), o.order_id);
  const row = await s.env.db.prisma.transfer.findFirst({ where: { queueId: q, orderId: victim.order_id } });
  assert.equal(row!.state, "failed");
});

test("an order that would revert already is refused before signing (`0 reverted`, no transaction); the others go out in one batch", { timeout: 120_000 }, async () => {
  const q = "p-7702-refused";
  const orders = Array.from({ length: 6 }, (_, i) => ({ order_id: `r${i}`, to_address: randomAddress(), amount: amountOf(i) }));
  const victim = orders[2]!;
  const block = await s.usdt.getFunction("setBlocked").populateTransaction(victim.to_address, true);
  const tx = await s.usdt.runner!.sendTransaction!(block);
  await eventually(() => s.provider.getTransactionReceipt(tx.hash), 30_000);
  await s.biz.send("pay", { queue_id: q, from_address: HOT, chain: "ETH", symbol: "USDT", transactions: orders, timestamp: nowS() });
  await waitForNotes(s.biz, "pay", 1, 5, (x) => x === q, 60_000);
  const refused = await s.biz.waitFor("pay", (n) => n.queue_id === q && n.order_id === victim.order_id, 60_000);
  assert.equal(refused.status, 0);
  assert.equal(refused.error, "reverted");
  const byOrder = statusesByOrder(s.biz.received("pay"), q);
  for (const o of orders) assert.deepEqual(byOrder.get(o.order_id), o === victim ? [0] : [2, 1], o.order_id);
  const rows = await s.env.db.prisma.transfer.findMany({ where: { queueId: q } });
  const victimRow = rows.find((r) => r.orderId === victim.order_id)!;
  assert.equal(victimRow.txHash, null, "nothing was signed for it");
  assert.equal(await s.env.db.prisma.txAttempt.count({ where: { transferId: victimRow.id } }), 0);
  assert.equal(new Set(rows.filter((r) => r !== victimRow).map((r) => r.txHash)).size, 1, "the five others in one transaction");
  for (const o of orders) assert.equal(await s.usdtOf(o.to_address), o === victim ? 0n : unitsOf(o.amount), o.order_id);
});

/** hold mining (no automine, no interval) while `fn` runs, then mine again */
async function withMiningHeld<T>(fn: () => Promise<T>): Promise<T> {
  await s.stopMining();
  await s.provider.send("evm_setAutomine", [false]);
  try {
    return await fn();
  } finally {
    await s.provider.send("evm_setAutomine", [true]);
    s.startMining(100);
  }
}

test("a fresh wallet: payouts arriving while its first batch (carrying the authorization) is unmined wait for it to be mined, then go at nonce + 2 without one", { timeout: 120_000 }, async () => {
  const key = new SigningKey(randomBytes(32));
  const wallet = await s.importWallet(key.privateKey, "hot");
  await s.provider.send("anvil_setBalance", [wallet, "0x56bc75e2d63100000"]);
  await s.mint(wallet, 10n ** 12n);
  const pay = (q: string) => {
    const orders = Array.from({ length: 5 }, (_, i) => ({ order_id: `${q}-${i}`, to_address: randomAddress(), amount: amountOf(i) }));
    return { orders, send: () => s.biz.send("pay", { queue_id: q, from_address: wallet, chain: "ETH", symbol: "USDT", transactions: orders, timestamp: nowS() }) };
  };
  const a = pay("p-7702-first");
  const b = pay("p-7702-second");
  const txA = await withMiningHeld(async () => {
    await a.send();
    await waitForNotes(s.biz, "pay", 2, 5, (x) => x === "p-7702-first", 60_000);
    await b.send();
    // the positive signal: the second pay's jobs ran and said why they wait
    const bRows = await eventually(async () => {
      const rows = await s.env.db.prisma.transfer.findMany({ where: { queueId: "p-7702-second" } });
      return rows.length === 5 ? rows : null;
    }, 60_000);
    await eventually(async () => {
      const logs = await Promise.all(bRows.map(async (r) => (await s.env.queues.transfer.getJobLogs(`send-${r.id}`, 0, -1)).logs));
      return logs.every((l) => l.some((line) => line.includes("waiting: the batch that installs this wallet's EIP-7702 delegation is not mined yet"))) ? true : null;
    }, 60_000);
    const now = await s.env.db.prisma.transfer.findMany({ where: { queueId: "p-7702-second" } });
    assert.ok(now.every((r) => r.state === "queued" && r.txHash === null), "nothing of the second pay is signed while the authorization is unmined");
    const first = await s.env.db.prisma.transfer.findMany({ where: { queueId: "p-7702-first" } });
    assert.equal(new Set(first.map((r) => r.txHash)).size, 1);
    return (await s.provider.getTransaction(first[0]!.txHash!))!;
  });
  await waitForNotes(s.biz, "pay", 1, 10, (x) => x === "p-7702-first" || x === "p-7702-second", 60_000);
  const second = await s.env.db.prisma.transfer.findMany({ where: { queueId: "p-7702-second" } });
  assert.equal(new Set(second.map((r) => r.txHash)).size, 1, "the second pay in one batch");
  const txB = (await s.provider.getTransaction(second[0]!.txHash!))!;
  assert.equal(txA.type, 4);
  assert.equal(txB.type, 2, "the second batch relies on the first's authorization");
  assert.equal(txB.nonce, txA.nonce + 2, "the authorization took the nonce after the first batch's");
  assert.ok(txB.blockNumber! > txA.blockNumber!, "signed after the first was mined");
  for (const o of [...a.orders, ...b.orders]) assert.equal(await s.usdtOf(o.to_address), unitsOf(o.amount), o.order_id);
  assert.equal(await s.provider.getTransactionCount(wallet), txA.nonce + 3);
  const byOrder = statusesByOrder(s.biz.received("pay"), "p-7702-second");
  for (const o of b.orders) assert.deepEqual(byOrder.get(o.order_id), [2, 1], o.order_id);
});

test("a stuck batch is replaced whole: same nonce, every order, a higher fee; each order is paid once and reported with the mined hash", { timeout: 120_000 }, async () => {
  const q = "p-7702-stuck";
  const orders = Array.from({ length: 5 }, (_, i) => ({ order_id: `s${i}`, to_address: randomAddress(), amount: amountOf(i) }));
  const first = await withMiningHeld(async () => {
    await s.biz.send("pay", { queue_id: q, from_address: HOT, chain: "ETH", symbol: "USDT", transactions: orders, timestamp: nowS() });
    await waitForNotes(s.biz, "pay", 2, 5, (x) => x === q, 60_000);
    const rows = await s.env.db.prisma.transfer.findMany({ where: { queueId: q } });
    const hash = rows[0]!.txHash!;
    // unmined past stuck_after_s: confirmation hands it to the sender, which replaces it for all five
    await eventually(async () => {
      const attempts = await s.env.db.prisma.txAttempt.findMany({ where: { transfer: { queueId: q } } });
      return attempts.length === 10 && attempts.every((x) => x.state === "broadcast" || x.state === "signed") ? attempts : null;
    }, 60_000);
    return { hash, nonce: rows[0]!.nonce! };
  });
  const finals = await waitForNotes(s.biz, "pay", 1, 5, (x) => x === q, 60_000);
  const attempts = await s.env.db.prisma.txAttempt.findMany({ where: { transfer: { queueId: q } }, orderBy: { id: "asc" } });
  assert.deepEqual([...new Set(attempts.map((x) => x.nonce))], [first.nonce], "every attempt keeps the batch's nonce");
  const hashes = [...new Set(attempts.map((x) => x.txHash))];
  assert.ok(hashes.length >= 2 && hashes[0] === first.hash);
  for (const h of hashes) assert.equal(attempts.filter((x) => x.txHash === h).length, 5, "each attempt carries the whole batch");
  const mined = new Set(finals.map((n) => n.tx_hash));
  assert.equal(mined.size, 1);
  const minedHash = String([...mined][0]);
  assert.equal((await s.provider.getTransactionReceipt(minedHash))!.status, 1);
  // a batch's raw bytes are stored once, on its item 0's row
  const rawOf = (hash: string) => attempts.find((x) => x.txHash === hash && x.batchIndex === 0)!.rawTx;
  assert.ok(attempts.every((x) => (x.batchIndex === 0) === (x.rawTx !== "")), "only item 0 stores the raw transaction");
  assert.equal(Transaction.from(rawOf(minedHash)).data, Transaction.from(rawOf(first.hash)).data, "the replacement pays exactly the same items");
  for (const o of orders) assert.equal(await s.usdtOf(o.to_address), unitsOf(o.amount), o.order_id);
  const byOrder = statusesByOrder(s.biz.received("pay"), q);
  for (const o of orders) assert.deepEqual(byOrder.get(o.order_id), [2, 1], o.order_id);
});
