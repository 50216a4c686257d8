/**
 * The collection wallet: paying for a wallet that is short (fallback on),
 * and receiving sweeps of deposit wallets, which get gas from it first when
 * they hold tokens but no ETH. Sweeps and gas top-ups are transfers of
 * their own going through the same exactly-once path, with no business
 * notification.
 */
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import path from "node:path";
import { Wallet, parseEther } from "ethers";
import { nowS, eventually } from "../helpers/rabbit.ts";
import { ANVIL_KEYS } from "../../shared/devchain/anvil.ts";
import { startTransferStack, randomAddress, HOT, COLLECTION, type TransferStack } from "../helpers/transfer-stack.ts";
import { createChainWatch } from "../../workers/chain-watch/main.ts";

const BIN = path.resolve(import.meta.dirname, "../../bin/payment.mjs");
let s: TransferStack;
let poor: string;

before(async () => {
  s = await startTransferStack({
    config: (c) => ({ ...c, eth_config: { ...c.eth_config!, fallback_to_collection: true, min_gas_eth: "0.002", gas_topup_eth: "0.005", hold_s: 0 } }),
  });
  await s.mint(COLLECTION, 2_000_000_000_000n);
  poor = await s.importWallet(Wallet.createRandom().privateKey, "hot");
  await s.mint(poor, 10_000_000n);
  s.startMining(100);
});

after(async () => {
  await s?.stop();
});

const withdraw = (queueId: string, from: string, to: string, amount: string) =>
  s.biz.send("withdraw", { queue_id: queueId, from_address: from, to_address: to, amount, chain: "ETH", symbol: "USDT", timestamp: nowS() });

test("a wallet without gas: the collection wallet pays, and the notifications say so", async () => {
  const to = randomAddress();
  const before = await s.usdtOf(COLLECTION);
  await withdraw("w-fb-gas", poor, to, "5");
  const pending = await s.biz.waitFor("withdraw", (n) => n.queue_id === "w-fb-gas" && n.status === 2, 30_000);
  const final = await s.biz.waitFor("withdraw", (n) => n.queue_id === "w-fb-gas" && n.status !== 2, 60_000);
  assert.equal(final.status, 1);
  assert.equal(pending.from_address, COLLECTION);
  assert.equal(final.from_address, COLLECTION);
  assert.equal(await s.usdtOf(to), 5_000_000n);
  assert.equal(await s.usdtOf(poor), 10_000_000n, "the short wallet kept its tokens");
  assert.equal(await s.usdtOf(COLLECTION), before - 5_000_000n);
  const t = await s.env.db.prisma.transfer.findFirst({ where: { queueId: "w-fb-gas" } });
  assert.equal(t?.requestedFrom, poor);
  assert.equal(t?.fromAddress, COLLECTION);
});

test("a wallet short of tokens: the collection wallet pays; short everywhere: insufficient_balance", async () => {
  const to = randomAddress();
  await withdraw("w-fb-bal", HOT, to, "1000001");
  const tooMuch = randomAddress();
  await withdraw("w-fb-none", HOT, tooMuch, "5000000");
  const paid = await s.biz.waitFor("withdraw", (n) => n.queue_id === "w-fb-bal" && n.status !== 2, 60_000);
  assert.equal(paid.status, 1);
  assert.equal(paid.from_address, COLLECTION);
  assert.equal(await s.usdtOf(to), 1_000_001_000_000n);
  const none = await s.biz.waitFor("withdraw", (n) => n.queue_id === "w-fb-none", 30_000);
  assert.equal(none.status, 0);
  assert.equal(none.error, "insufficient_balance");
  assert.equal(await s.usdtOf(tooMuch), 0n);
});

test("payment sweep moves deposit wallets' tokens to the collection wallet, topping up gas first; no business notification", async () => {
  const funder = new Wallet(ANVIL_KEYS[4]!, s.provider);
  const d1 = await s.importWallet(Wallet.createRandom().privateKey, "deposit");
  const d2 = await s.importWallet(Wallet.createRandom().privateKey, "deposit");
  const d3 = await s.importWallet(Wallet.createRandom().privateKey, "deposit");
  await s.mint(d1, 30_500_000n);
  await s.mint(d2, 12_250_000n);
  await s.mint(d3, 500_000n);
  // d1 and d2 are watched for ETH: d1's ETH from outside is a deposit, d2's gas top-up from us is not
  const watch = createChainWatch(s.env);
  await watch.start();
  for (const d of [d1, d2]) {
    await s.biz.send("topup", { queue_id: `watch-eth-${d}`, chain: "ETH", symbol: "ETH", address: d, timestamp: nowS() });
    await eventually(() => s.env.db.prisma.watchedAddress.findFirst({ where: { symbol: "ETH", address: d, active: true } }));
  }
  const funded = await (await funder.sendTransaction({ to: d1, value: parseEther("0.01") })).wait();
  const collectionBefore = await s.usdtOf(COLLECTION);
  const notesBefore = s.biz.received("withdraw").length + s.biz.received("pay").length;

  const r = await new Promise<{ code: number | null; out: string }>((resolve) => {
    const child = spawn(process.execPath, [BIN, "sweep", "--min", "1", "--config", s.configFile()], { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    child.stdout.on("data", (d) => (out += d));
    child.stderr.on("data", (d) => (out += d));
    child.on("close", (code) => resolve({ code, out }));
  });
  assert.equal(r.code, 0, r.out);
  assert.match(r.out, new RegExp(`${d1}\\s+30.5 USDT\\s+sweep\\n`));
  assert.match(r.out, new RegExp(`${d2}\\s+12.25 USDT\\s+sweep after gas top-up \\(\\+0.005 ETH for gas\\)`));
  assert.match(r.out, new RegExp(`${d3}\\s+0.5 USDT\\s+skip: below minimum`));

  await eventually(async () => (await s.env.db.prisma.transfer.count({ where: { kind: { in: ["sweep", "gas_topup"] }, state: "confirmed" } })) === 3, 90_000);
  assert.equal(await s.usdtOf(d1), 0n);
  assert.equal(await s.usdtOf(d2), 0n);
  assert.equal(await s.usdtOf(d3), 500_000n);
  assert.equal(await s.usdtOf(COLLECTION), collectionBefore + 42_750_000n);
  const topup = await s.env.db.prisma.transfer.findFirst({ where: { kind: "gas_topup" } });
  assert.equal(topup?.toAddress, d2);
  assert.equal(topup?.fromAddress, COLLECTION);
  assert.equal(topup?.amount.toFixed(), "0.005");
  const sweeps = await s.env.db.prisma.transfer.findMany({ where: { kind: "sweep" }, orderBy: { id: "asc" } });
  assert.deepEqual(sweeps.map((x) => [x.fromAddress, x.toAddress, x.amount.toFixed()]), [
    [d1, COLLECTION, "30.5"],
    [d2, COLLECTION, "12.25"],
  ]);
  for (const x of sweeps) assert.match(x.queueId, new RegExp(`^sweep-\\d+-${x.requestedFrom}$`));
  // the collection wallet's book: -5 and -1000001 paid on fallback, +42.75 swept in
  const book = await s.env.db.prisma.balance.findFirst({ where: { address: COLLECTION, symbol: "USDT" } });
  assert.equal(book?.amount.toFixed(), "-999963.25");
  // notifications are written with the transitions they report: none for any sweep or top-up
  const internal = (await s.env.db.prisma.transfer.findMany({ where: { kind: { in: ["sweep", "gas_topup"] } } })).map((x) => x.queueId);
  assert.equal(await s.env.db.prisma.notification.count({ where: { queueId: { in: internal } } }), 0, "no business notification for internal transfers");
  assert.equal(s.biz.received("withdraw").length + s.biz.received("pay").length, notesBefore);

  // chain-watch has scanned past the top-up's block: the outside ETH was reported, our own top-up was not
  const cursor = await s.env.db.prisma.chainCursor.findFirstOrThrow();
  await eventually(async () => (await s.env.db.prisma.chainCursor.findFirstOrThrow()).blockNumber > cursor.blockNumber);
  await s.biz.waitFor("topup", (n) => n.tx_hash === funded!.hash && n.status === 2);
  await watch.stop();
  assert.equal(await s.env.db.prisma.deposit.count({ where: { toAddress: d2 } }), 0, "a gas top-up is not a deposit");
  assert.deepEqual(s.biz.received("topup").filter((n) => n.address === d2 && n.tx_hash), []);
});
