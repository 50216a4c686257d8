/**
 * Money out end to end on real RabbitMQ, MariaDB, Redis and anvil: signed
 * withdraw/pay requests in, one on-chain transfer each, status 2 then a
 * final status, exact amounts, refusals with SPEC codes. Fallback to the
 * collection wallet is off here (see transfers-fallback.test.ts), and so is
 * holding a transfer no wallet can pay (hold_s 0, as the old system did:
 * it ends at once; see transfers-held.test.ts).
 */
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { Wallet } from "ethers";
import { Worker, UnrecoverableError } from "bullmq";
import { nowS, eventually } from "../helpers/rabbit.ts";
import { retryTransfers } from "../../cli/commands/retry.ts";
import { closeRedis } from "../../shared/adapters/redis.ts";
import { startTransferStack, waitForNotes, randomAddress, HOT, type TransferStack } from "../helpers/transfer-stack.ts";
import { quiescent } from "../helpers/quiet.ts";

let s: TransferStack;

before(async () => {
  s = await startTransferStack({ config: (c) => ({ ...c, eth_config: { ...c.eth_config!, hold_s: 0 } }) });
  s.startMining(100);
});

after(async () => {
  await s?.stop();
});

const withdraw = (queueId: string, to: string, amount: string | number, symbol = "USDT", from = HOT) =>
  s.biz.send("withdraw", { queue_id: queueId, from_address: from, to_address: to, amount, chain: "ETH", symbol, timestamp: nowS() });

test("exact amounts of USDT and ETH arrive, reported status 2 then 1, with the tx hash and the exact text", async () => {
  const r1 = randomAddress();
  const r2 = randomAddress();
  const r3 = randomAddress();
  await withdraw("w-exact-usdt", r1, "12.345678");
  await s.biz.send("pay", {
    queue_id: "p-exact-eth",
    from_address: HOT,
    chain: "ETH",
    symbol: "ETH",
    transactions: [
      { order_id: "o1", to_address: r2, amount: "1.000000000000000001" },
      { order_id: "o2", to_address: r3, amount: 0.25 },
    ],
    timestamp: nowS(),
  });
  const finals = [
    await s.biz.waitFor("withdraw", (n) => n.queue_id === "w-exact-usdt" && n.status !== 2, 60_000),
    ...(await waitForNotes(s.biz, "pay", 1, 2, (q) => q === "p-exact-eth")),
  ];
  for (const n of finals) assert.equal(n.status, 1, JSON.stringify(n));
  assert.equal(await s.usdtOf(r1), 12_345_678n);
  assert.equal(await s.ethOf(r2), 1_000_000_000_000_000_001n);
  assert.equal(await s.ethOf(r3), 250_000_000_000_000_000n);

  const pending = s.biz.received("withdraw").filter((n) => n.queue_id === "w-exact-usdt" && n.status === 2);
  assert.equal(pending.length, 1);
  const final = finals[0]!;
  assert.equal(pending[0]!.tx_hash, final.tx_hash);
  assert.match(String(final.tx_hash), /^0x[0-9a-f]{64}$/);
  assert.equal(final.amount_exact, "12.345678");
  assert.equal(final.amount, 12.345678);
  assert.equal(final.from_address, HOT);
  assert.equal(final.to_address, r1);
  assert.ok(Number(final.block_height) > 0);
  const o1 = s.biz.received("pay").find((n) => n.order_id === "o1" && n.status === 1)!;
  assert.equal(o1.amount_exact, "1.000000000000000001");
  assert.ok(s.biz.allSigned());

  // the receipt is on chain and the book balance of the hot wallet was debited exactly
  const receipt = await s.provider.getTransactionReceipt(String(final.tx_hash));
  assert.equal(receipt?.status, 1);
  const book = await s.env.db.prisma.balance.findFirst({ where: { address: HOT, symbol: "USDT" } });
  assert.equal(book?.amount.toFixed(), "-12.345678");
  const t = await s.env.db.prisma.transfer.findFirst({ where: { queueId: "w-exact-usdt" }, include: { attempts: true } });
  assert.equal(t?.state, "confirmed");
  assert.equal(t?.attempts.length, 1);
  assert.equal(t?.attempts[0]!.state, "mined");
});

test("a duplicate withdraw sends once", async () => {
  const to = randomAddress();
  const body = { queue_id: "w-dup", from_address: HOT, to_address: to, amount: "3", chain: "ETH", symbol: "USDT" };
  await s.biz.send("withdraw", { ...body, timestamp: nowS() });
  await s.biz.send("withdraw", { ...body, timestamp: nowS() + 1 });
  await s.biz.waitFor("withdraw", (n) => n.queue_id === "w-dup" && n.status === 1, 60_000);
  await s.biz.send("withdraw", { ...body, timestamp: nowS() + 2 }); // once more, after it was final
  // a request behind it on the same queue is through: so is the duplicate, and whatever it caused
  await withdraw("w-dup-marker", randomAddress(), "1");
  await s.biz.waitFor("withdraw", (n) => n.queue_id === "w-dup-marker" && n.status === 2, 30_000);
  await quiescent(s.env, s.biz);
  assert.equal(await s.usdtOf(to), 3_000_000n);
  assert.equal(await s.env.db.prisma.transfer.count({ where: { queueId: "w-dup" } }), 1);
  assert.equal(await s.env.db.prisma.txAttempt.count({ where: { transfer: { queueId: "w-dup" } } }), 1);
  const notes = s.biz.received("withdraw").filter((n) => n.queue_id === "w-dup");
  assert.deepEqual(notes.map((n) => n.status).sort(), [1, 2]);
});

test("insufficient balance ends status 0 insufficient_balance and sends nothing", async () => {
  const to = randomAddress();
  await withdraw("w-too-much", to, "5000000");
  const n = await s.biz.waitFor("withdraw", (x) => x.queue_id === "w-too-much", 30_000);
  assert.equal(n.status, 0);
  assert.equal(n.error, "insufficient_balance");
  assert.equal(n.from_address, HOT);
  assert.equal(await s.usdtOf(to), 0n);
  assert.equal(await s.env.db.prisma.txAttempt.count({ where: { transfer: { queueId: "w-too-much" } } }), 0);
});

test("a wallet with tokens but no ETH for gas ends insufficient_gas", async () => {
  const poor = Wallet.createRandom();
  const addr = await s.importWallet(poor.privateKey, "hot");
  await s.mint(addr, 50_000_000n);
  const to = randomAddress();
  await withdraw("w-no-gas", to, "1", "USDT", addr);
  const n = await s.biz.waitFor("withdraw", (x) => x.queue_id === "w-no-gas", 30_000);
  assert.equal(n.status, 0);
  assert.equal(n.error, "insufficient_gas");
  assert.equal(await s.usdtOf(to), 0n);
});

test("a batch of 25 payouts of assorted amounts: each recipient holds exactly its amount; 25 pending and 25 final notifications, all signed", async () => {
  const orders = Array.from({ length: 25 }, (_, i) => ({
    order_id: `b${i}`,
    to_address: randomAddress(),
    amount: `${i + 1}.${String((i * 7919) % 1_000_000).padStart(6, "0")}`.replace(/\.?0+$/, ""),
  }));
  await s.biz.send("pay", { queue_id: "p-batch-25", from_address: HOT, chain: "ETH", symbol: "USDT", transactions: orders, timestamp: nowS() });
  const finals = await waitForNotes(s.biz, "pay", 1, 25, (q) => q === "p-batch-25", 120_000);
  const pendings = s.biz.received("pay").filter((n) => n.queue_id === "p-batch-25" && n.status === 2);
  assert.equal(pendings.length, 25);
  assert.equal(finals.length, 25);
  assert.equal(s.biz.received("pay").filter((n) => n.queue_id === "p-batch-25" && n.status === 0).length, 0);
  for (const o of orders) {
    const [int, frac = ""] = o.amount.split(".");
    assert.equal(await s.usdtOf(o.to_address), BigInt(int! + frac.padEnd(6, "0")), o.order_id);
    const f = finals.find((n) => n.order_id === o.order_id)!;
    assert.equal(f.amount_exact, o.amount);
  }
  assert.ok(s.biz.allSigned());
  const rows = await s.env.db.prisma.transfer.findMany({ where: { queueId: "p-batch-25" } });
  for (const f of finals) assert.equal(f.tx_hash, rows.find((r) => r.orderId === f.order_id)!.txHash, "each final names the transaction that paid it");
  // one transaction per order, or (EIP-7702) the orders share batch transactions: one nonce per transaction, gap-free
  const txs = new Map(rows.map((r) => [r.txHash!, r.nonce!]));
  if (s.executor) assert.ok(txs.size < 25, `batched into ${txs.size} transactions`);
  else assert.equal(txs.size, 25);
  const sorted = [...txs.values()].sort((a, b) => (a < b ? -1 : 1));
  sorted.forEach((n, i) => assert.equal(n, sorted[0]! + BigInt(i)));
  await eventually(async () => (await s.env.db.prisma.notification.count({ where: { queueId: "p-batch-25", state: "pending" } })) === 0);
});

test("payment retry re-runs a failed send job through the same path; an ended transfer is never retried", async () => {
  await s.sender!.stop();
  const to = randomAddress();
  await withdraw("w-retry", to, "2.5");
  const t = await eventually(() => s.env.db.prisma.transfer.findFirst({ where: { queueId: "w-retry" } }));
  // The send job fails for good (as after its retries with the node down), before anything was signed.
  const connection = s.env.redis.create("test-failer");
  const failer = new Worker(
    "transfer",
    async () => {
      throw new UnrecoverableError("node unreachable (simulated)");
    },
    { connection, prefix: s.env.redis.prefix },
  );
  // the bridge adds the job right after committing the row: wait for it
  const job = await eventually(() => s.env.queues.transfer.getJob(`send-${t.id}`));
  await eventually(async () => (await job.getState()) === "failed");
  await failer.close();
  await closeRedis(connection);

  const ctx = { db: s.env.db, queues: s.env.queues };
  const [line] = await retryTransfers(ctx, { queueId: "w-retry" }, "operator:test");
  assert.equal(line!.action, "send job retried");
  await s.sender!.start();
  const final = await s.biz.waitFor("withdraw", (n) => n.queue_id === "w-retry" && n.status !== 2, 60_000);
  assert.equal(final.status, 1);
  assert.equal(await s.usdtOf(to), 2_500_000n);

  // retrying again (or a transfer that failed for a business reason) changes nothing
  const [again] = await retryTransfers(ctx, { queueId: "w-retry" }, "operator:test");
  assert.match(again!.action, /^ended confirmed/);
  await withdraw("w-retry-refused", randomAddress(), "90000000");
  await s.biz.waitFor("withdraw", (n) => n.queue_id === "w-retry-refused" && n.status === 0, 30_000);
  const [refused] = await retryTransfers(ctx, { queueId: "w-retry-refused" }, "operator:test");
  assert.match(refused!.action, /^ended failed \(insufficient_balance\)/);
  await quiescent(s.env, s.biz);
  assert.equal(await s.usdtOf(to), 2_500_000n);
  assert.equal(await s.env.db.prisma.txAttempt.count({ where: { transfer: { queueId: "w-retry" } } }), 1);
  assert.equal(await s.env.db.prisma.transfer.count({ where: { queueId: "w-retry-refused", state: "failed" } }), 1);
  assert.equal(await s.env.db.prisma.txAttempt.count({ where: { transfer: { queueId: "w-retry-refused" } } }), 0);
  assert.equal(await s.env.db.prisma.auditEvent.count({ where: { event: "transfer.retry", queueId: "w-retry" } }), 2);
});
