/**
 * The deposit path end to end on real RabbitMQ, Redis, MariaDB and anvil:
 * topup -> chain-watch sees the transfer -> status 2 -> confirmation waits
 * for confirm_height blocks -> status 1 with the book balance credited, once.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { Contract, NonceManager, Wallet } from "ethers";
import { eventually, nowS } from "../helpers/rabbit.ts";
import { depositSuite, forTx, newAddress } from "../helpers/deposit-stack.ts";
import { quiescent } from "../helpers/quiet.ts";
import { artifact, deploy } from "../../shared/devchain/anvil.ts";
import { enqueue } from "../../shared/jobs/registry.ts";

const CONFIRM = 3;
const s = depositSuite((c) => ({ ...c, eth_config: { ...c.eth_config!, confirm_height: CONFIRM, trace_internal: true } }));

test("a USDT deposit of 100.500001 is reported seen, then final only after confirm_height blocks, once, signed, credited exactly", async () => {
  const addr = newAddress(0xa1);
  await s.stack.topup("USDT", addr, "topup-usdt-1");
  const receipt = await s.chain.sendUsdt(addr, 100_500_001n);

  const seen = await s.stack.biz.waitFor("topup", forTx(receipt.hash, 2));
  assert.equal(seen.amount_exact, "100.500001");
  assert.equal(seen.amount, 100.500001);
  assert.equal(seen.symbol, "USDT");
  assert.equal(seen.address, addr);
  assert.equal(seen.queue_id, "topup-usdt-1");
  assert.equal(seen.block_height, receipt.blockNumber);
  assert.equal(seen.log_index, receipt.logs[0]!.index);

  // confirm_height - 1 blocks: the job checks at that head (it records the depth it saw) and must not finalise
  await s.chain.mine(CONFIRM - 1);
  const deposit = await eventually(async () => {
    const d = await s.env.db.prisma.deposit.findFirst({ where: { txHash: receipt.hash.toLowerCase() } });
    return d && d.confirmations === CONFIRM - 1 ? d : null;
  });
  assert.equal((await s.env.db.prisma.deposit.findUniqueOrThrow({ where: { id: deposit.id } })).state, "seen");
  assert.equal(await s.env.db.prisma.notification.count({ where: { dedupeKey: `deposit-${deposit.id}-1` } }), 0);
  assert.equal(s.stack.biz.received("topup").filter(forTx(receipt.hash, 1)).length, 0);

  await s.chain.mine(1);
  const final = await s.stack.biz.waitFor("topup", forTx(receipt.hash, 1));
  assert.equal(final.amount_exact, "100.500001");
  assert.equal(final.queue_id, "topup-usdt-1");
  assert.ok(Number(final.confirmations) >= CONFIRM);
  assert.equal(final.block_height, receipt.blockNumber);

  const balance = await s.env.db.prisma.balance.findFirstOrThrow({ where: { address: addr, symbol: "USDT" } });
  assert.equal(balance.amount.toFixed(), "100.500001");

  // Running the job again (a retry, a rebuilt job) changes nothing.
  const old = await s.env.queues.confirm.getJob(`deposit-${deposit.id}`);
  await old?.remove();
  const again = await enqueue(s.env.queues, "confirm-deposit", { depositId: deposit.id.toString() });
  await eventually(async () => (await again.getState()) === "completed");
  await quiescent(s.env, s.stack.biz, { jobs: [again.id!] });
  assert.equal(s.stack.biz.received("topup").filter(forTx(receipt.hash, 1)).length, 1);
  assert.equal(s.stack.biz.received("topup").filter(forTx(receipt.hash, 2)).length, 1);
  assert.equal(await s.env.db.prisma.notification.count({ where: { address: addr } }), 2);
  assert.equal((await s.env.db.prisma.balance.findFirstOrThrow({ where: { address: addr, symbol: "USDT" } })).amount.toFixed(), "100.500001");
  assert.ok(s.stack.biz.allSigned());
});

test("an ETH deposit of 0.123456789012345678 is reported twice with the exact amount", async () => {
  const addr = newAddress(0xa2);
  await s.stack.topup("ETH", addr);
  const receipt = await s.chain.sendEth(addr, 123_456_789_012_345_678n);
  const seen = await s.stack.biz.waitFor("topup", forTx(receipt.hash, 2));
  assert.equal(seen.amount_exact, "0.123456789012345678");
  assert.equal(seen.symbol, "ETH");
  assert.equal(seen.log_index, -1);
  assert.equal(seen.queue_id, null);
  await s.chain.mine(CONFIRM);
  const final = await s.stack.biz.waitFor("topup", forTx(receipt.hash, 1));
  assert.equal(final.amount_exact, "0.123456789012345678");
  const balance = await s.env.db.prisma.balance.findFirstOrThrow({ where: { address: addr, symbol: "ETH" } });
  assert.equal(balance.amount.toFixed(), "0.123456789012345678");
  assert.ok(s.stack.biz.allSigned());
});

test("unwatched and removed addresses get nothing; a deposit seen before the remove still finishes", async () => {
  const unwatched = newAddress(0xa3);
  const removed = newAddress(0xa4);
  const marker = newAddress(0xa5);
  await s.stack.topup("USDT", removed, "topup-removed");
  await s.stack.topup("USDT", marker);
  // watched for ETH only: a USDT transfer to it is not a match
  await s.stack.topup("ETH", unwatched);

  const before = await s.chain.sendUsdt(removed, 7_000_000n);
  await s.stack.biz.waitFor("topup", forTx(before.hash, 2));

  await s.stack.biz.send("remove", { queue_id: "rm-topup-1", msg_type: "topup", chain: "ETH", symbol: "USDT", address: removed, timestamp: nowS() });
  const rm = await s.stack.biz.waitFor("remove", (n) => n.queue_id === "rm-topup-1");
  assert.equal(rm.status, 1);

  const toUnwatched = await s.chain.sendUsdt(unwatched, 1_000_000n);
  const afterRemove = await s.chain.sendUsdt(removed, 8_000_000n);
  const mark = await s.chain.sendUsdt(marker, 1n);
  // the marker's block is later, so both earlier blocks have been scanned
  await s.stack.biz.waitFor("topup", forTx(mark.hash, 2));
  for (const r of [toUnwatched, afterRemove]) {
    assert.equal(await s.env.db.prisma.deposit.count({ where: { txHash: r.hash.toLowerCase() } }), 0);
    assert.equal(s.stack.biz.received("topup").filter((n) => n.tx_hash === r.hash).length, 0);
  }

  await s.chain.mine(CONFIRM);
  const final = await s.stack.biz.waitFor("topup", forTx(before.hash, 1));
  assert.equal(final.amount_exact, "7");
  assert.equal(final.queue_id, "topup-removed");
});

test("an internal ETH transfer made by a contract is found with the call tracer and confirmed", async () => {
  const forwarder = await deploy(s.env.anvil!.rpcUrl, s.env.anvil!.keys[3]!, "Forwarder");
  const addr = newAddress(0xa6);
  const other = newAddress(0xa7);
  await s.stack.topup("ETH", addr);
  const sender = new NonceManager(new Wallet(s.env.anvil!.keys[3]!, s.chain.provider));
  const fwd = new Contract(forwarder, artifact("Forwarder").abi, sender);
  const tx = await fwd.getFunction("forward")([other, addr], [5n, 1_000_000_000_000_000n], { value: 1_000_000_000_000_005n });
  const receipt = (await tx.wait())!;
  const seen = await s.stack.biz.waitFor("topup", forTx(receipt.hash, 2));
  // second value transfer of the transaction (depth-first): -2 - 1
  assert.equal(seen.log_index, -3);
  assert.equal(seen.amount_exact, "0.001");
  assert.equal(seen.from_address, forwarder);
  await s.chain.mine(CONFIRM);
  const final = await s.stack.biz.waitFor("topup", forTx(receipt.hash, 1));
  assert.equal(final.log_index, -3);
  assert.equal(final.amount_exact, "0.001");
});

test("the watched-address lookup is one indexed query", async () => {
  const rows = (await s.env.db.pool.query("EXPLAIN SELECT symbol, address, queue_id FROM watched_address WHERE chain = ? AND address IN (?, ?) AND active = 1", [
    "ETH",
    newAddress(1),
    newAddress(2),
  ])) as { key: string | null; type: string }[];
  assert.equal(rows.length, 1);
  assert.match(String(rows[0]!.key), /watched_address_chain_address_idx|watched_address_chain_symbol_address_key/);
  assert.notEqual(rows[0]!.type, "ALL");
});
