/**
 * chain-watch across restarts and with several scanners: nothing between
 * the stored cursor and the head is skipped after downtime, one scanner
 * leads per chain, a standby takes over, and two scanners running at once
 * without the lease still report each deposit once.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import type { TransactionReceipt } from "ethers";
import { eventually } from "../helpers/rabbit.ts";
import { depositSuite, forTx, newAddress } from "../helpers/deposit-stack.ts";
import { quiescent } from "../helpers/quiet.ts";
import { createChainWatch } from "../../workers/chain-watch/main.ts";
import { createChainScanner } from "../../workers/chain-watch/scanner.ts";
import { createBlockSource } from "../../workers/chain-watch/block-source.ts";
import { createBlockStore } from "../../workers/chain-watch/block-store.ts";
import { createChainClient } from "../../shared/adapters/chain.ts";
import { blockWindow } from "../../shared/domain/reorg.ts";

const CONFIRM = 3;
const s = depositSuite();

test("deposits mined while chain-watch was down are all found after the restart", async () => {
  const addrs = [0xb1, 0xb2, 0xb3].map(newAddress);
  for (const a of addrs) await s.stack.topup("USDT", a);
  const first = await s.chain.sendUsdt(addrs[0]!, 1_000_000n);
  await s.stack.biz.waitFor("topup", forTx(first.hash, 2));

  await s.stack.watch.stop();
  const missed: TransactionReceipt[] = [];
  missed.push(await s.chain.sendUsdt(addrs[0]!, 2_000_000n));
  await s.chain.mine(5);
  missed.push(await s.chain.sendUsdt(addrs[1]!, 3_000_001n));
  missed.push(await s.chain.sendEth(addrs[2]!, 1n)); // not watched for ETH: must stay unreported
  missed.push(await s.chain.sendUsdt(addrs[2]!, 4_000_000n));
  await s.chain.mine(20); // more than catchup_concurrency blocks behind
  const cursorBefore = await s.env.db.prisma.chainCursor.findFirstOrThrow();
  assert.ok(Number(cursorBefore.blockNumber) < missed[0]!.blockNumber, "nothing was scanned while stopped");

  s.stack.watch = createChainWatch(s.env);
  await s.stack.watch.start();
  for (const r of missed.filter((_, i) => i !== 2)) {
    const seen = await s.stack.biz.waitFor("topup", forTx(r.hash, 2));
    assert.equal(seen.block_height, r.blockNumber);
  }
  assert.equal(s.stack.biz.received("topup").filter((n) => n.tx_hash === missed[2]!.hash).length, 0);
  // backfilled deposits are already deep: they finish without further blocks
  for (const r of missed.filter((_, i) => i !== 2)) await s.stack.biz.waitFor("topup", forTx(r.hash, 1));
  const hashes = new Set(missed.map((r) => r.hash));
  const amounts = s.stack.biz
    .received("topup")
    .filter((n) => n.status === 1 && hashes.has(n.tx_hash as string))
    .map((n) => n.amount_exact)
    .sort();
  assert.deepEqual(amounts, ["2", "3.000001", "4"]);
  // the window of recent blocks is kept and pruned
  const blocks = await s.env.db.prisma.chainBlock.count();
  assert.ok(blocks > 0 && blocks <= blockWindow(CONFIRM, s.env.config.chains.ETH!.lookback_blocks));
});

test("one leader per chain; a standby takes over when the leader stops", async () => {
  const standby = createChainWatch(s.env);
  await standby.start();
  const key = `${s.env.redis.prefix}:chain-watch:leader:ETH`;
  const probe = s.env.redis.create("test-probe");
  try {
    const holder = await probe.get(key);
    assert.ok(holder, "a leader holds the lease");
    await s.stack.watch.stop(); // releases the lease
    await eventually(async () => {
      const now = await probe.get(key);
      return now && now !== holder;
    });
    const addr = newAddress(0xb4);
    await s.stack.topup("USDT", addr);
    const r = await s.chain.sendUsdt(addr, 5_000_000n);
    await s.stack.biz.waitFor("topup", forTx(r.hash, 2));
  } finally {
    s.stack.watch = standby;
    probe.disconnect();
  }
});

test("two scanners without any lease still commit each block and report each deposit once", async () => {
  await s.stack.watch.stop();
  const cfg = s.env.config.chains.ETH!;
  const scanners = [0, 1].map(() => {
    const client = createChainClient(cfg);
    const store = createBlockStore({ pool: s.env.db.pool, chain: "ETH", window: blockWindow(cfg.confirm_height, cfg.lookback_blocks), decimalsOf: (s) => (s === "ETH" ? 18 : 6) });
    const scanner = createChainScanner({ chain: cfg, source: createBlockSource(client.provider, cfg), store, queues: s.env.queues, logger: s.env.logger, metrics: s.env.metrics, wakeOutbox: async () => undefined });
    return { client, scanner };
  });
  const addr = newAddress(0xb5);
  await s.stack.topup("USDT", addr);
  await scanners[0]!.scanner.tick(() => false); // a cursor exists before the deposits (a fresh one starts at the head)
  const txs: TransactionReceipt[] = [];
  for (let i = 1; i <= 4; i++) txs.push(await s.chain.sendUsdt(addr, BigInt(i) * 1_000_000n));
  let moved = 0;
  for (let round = 0; round < 6; round++) {
    const results = await Promise.allSettled(scanners.map((s) => s.scanner.tick(() => false)));
    for (const [i, r] of results.entries()) {
      if (r.status === "rejected") {
        assert.equal((r.reason as Error).name, "CursorMovedError", String(r.reason));
        moved++;
        scanners[i]!.scanner.reset();
      }
    }
  }
  scanners.forEach((s) => s.client.close());
  for (const r of txs) assert.equal(await s.env.db.prisma.deposit.count({ where: { txHash: r.hash.toLowerCase() } }), 1);
  const notes = await s.env.db.prisma.notification.findMany({ where: { address: addr, status: 2 } });
  assert.equal(notes.length, txs.length, "one status-2 notification per deposit");
  const cursor = await s.env.db.prisma.chainCursor.findFirstOrThrow();
  assert.equal(Number(cursor.blockNumber), txs.at(-1)!.blockNumber);
  if (moved > 0) s.env.logger.info({ moved }, "scanners collided on the cursor and backed off");

  // restart the role for the other tests' cleanup
  s.stack.watch = createChainWatch(s.env);
  await s.stack.watch.start();
});

test("the lookback re-fetches recent logs and adds what is missing, once", async () => {
  const addr = newAddress(0xb6);
  const marker = newAddress(0xb7);
  await s.stack.topup("USDT", marker);
  // a transfer in a block scanned before the address was watched: the first scan had no match
  const early = await s.chain.sendUsdt(addr, 6_000_000n);
  const mark = await s.chain.sendUsdt(marker, 1n);
  await s.stack.biz.waitFor("topup", forTx(mark.hash, 2));
  assert.equal(await s.env.db.prisma.deposit.count({ where: { txHash: early.hash.toLowerCase() } }), 0);
  await s.stack.topup("USDT", addr);
  // rescan_interval_ms is 2 s in tests, lookback_blocks 12
  const seen = await s.stack.biz.waitFor("topup", forTx(early.hash, 2), 15_000);
  assert.equal(seen.amount_exact, "6");
  // another lookback pass over the same blocks: one that finds a transfer watched only after the first pass
  const addr2 = newAddress(0xb9);
  const early2 = await s.chain.sendUsdt(addr2, 2_000_000n);
  await s.stack.topup("USDT", addr2);
  await s.stack.biz.waitFor("topup", forTx(early2.hash, 2), 15_000);
  await quiescent(s.env, s.stack.biz, { jobs: [] });
  assert.equal(await s.env.db.prisma.deposit.count({ where: { txHash: early.hash.toLowerCase() } }), 1);
  assert.equal(s.stack.biz.received("topup").filter(forTx(early.hash, 2)).length, 1);
});

test("with the WebSocket unreachable, polling alone follows the chain", async () => {
  await s.stack.watch.stop();
  const eth = s.env.config.chains.ETH!;
  const config = { ...s.env.config, chains: { ETH: { ...eth, ws_url: "ws://127.0.0.1:9" } } };
  s.stack.watch = createChainWatch({ ...s.env, config });
  await s.stack.watch.start();
  const addr = newAddress(0xb8);
  await s.stack.topup("USDT", addr);
  const r = await s.chain.sendUsdt(addr, 9_000_000n);
  await s.stack.biz.waitFor("topup", forTx(r.hash, 2));
  const head = (await s.env.metrics.chainHead.get()).values.find((v) => v.labels.chain === "ETH");
  assert.ok(head && head.value >= r.blockNumber, "chain head metric follows the chain");
});
