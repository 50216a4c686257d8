/**
 * Poison at the door (SPEC §3 "One id, one outcome", "Limits on input").
 * A corpus of hostile and broken messages, signed and unsigned (oversize
 * ids and addresses, deep nesting, duplicated keys, NUL bytes, non-objects,
 * oversize batches and messages, a number the signature does not cover),
 * is sent between valid withdrawals, a hundred poison messages in a row in
 * the middle, and the bridge process is SIGKILLed halfway and started again.
 *
 * Every valid withdrawal is answered `2` then `1` and paid exactly once;
 * every poison message ends on the dead-letter queue with its reason or is
 * refused once under its id; nothing hostile moves money; intake never
 * stops. (main at 950ff67: the first oversize id jammed the whole intake:
 * its refusal's audit row failed ER_DATA_TOO_LONG, the batch was retried
 * every 8 s forever and nothing behind it was taken in.)
 */
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { eventually, nowS } from "../helpers/rabbit.ts";
import { signMessage } from "../../shared/domain/signature.ts";
import { poisonCorpus, type Poison } from "../helpers/poison-corpus.ts";
import { startFaultStack, randomAddress, HOT, type FaultStack } from "./lib/fault-stack.ts";

const MAX_BATCH = 5;
const MAX_BYTES = 16 * 1024;
let s: FaultStack;

before(async () => {
  s = await startFaultStack({ confirmHeight: 2, config: (c) => ({ ...c, limits: { max_batch: MAX_BATCH, max_message_bytes: MAX_BYTES } }) });
  await s.startRoles(["bridge", "transfer-sender", "confirmation"]);
});

after(async () => {
  await s?.stop();
});

test("a poison corpus between valid withdrawals, with a SIGKILL of the bridge halfway: every valid request answered, nothing hostile moves money, intake never stops", { timeout: 300_000 }, async () => {
  const valid: { queueId: string; to: string; amount: string }[] = [];
  const sendValid = async (n: number) => {
    const v = { queueId: `valid-${n}`, to: randomAddress(), amount: `${n}.5` };
    valid.push(v);
    await s.withdraw(v.queueId, v.to, v.amount);
  };
  const poison: Poison[] = [];
  const sendPoison = async (round: number) => {
    for (const p of poisonCorpus({ key: s.env.key, round, from: HOT, maxBatch: MAX_BATCH, maxBytes: MAX_BYTES })) {
      poison.push(p);
      await s.biz.sendRaw(p.kind, p.bytes);
    }
  };
  s.startMining(200);

  await sendValid(1);
  await sendPoison(1);
  await sendValid(2);
  // a hundred poison messages in a row, then a valid request
  for (let round = 2; round <= 6; round++) await sendPoison(round);
  await sendValid(3);
  // the bridge dies with messages in flight; another one takes over
  await s.alive("bridge")[0]!.kill("SIGKILL");
  await sendPoison(7);
  await sendValid(4);
  await s.startRoles(["bridge"]);
  await sendPoison(8);
  await sendValid(5);
  // a refusal that takes its id, then the cause fixed and the same bytes replayed: still one refusal
  const unknownWallet = Buffer.from(JSON.stringify(signMessage({ queue_id: "from-unknown", from_address: randomAddress(), to_address: randomAddress(), amount: "3", chain: "ETH", symbol: "USDT", timestamp: nowS() }, s.env.key)));
  await s.biz.sendRaw("withdraw", unknownWallet);
  await s.biz.waitFor("withdraw", (n) => n.queue_id === "from-unknown");
  const replayed = JSON.parse(unknownWallet.toString()) as { from_address: string };
  await s.env.db.prisma.wallet.create({ data: { chain: "ETH", address: replayed.from_address, kind: "hot", encryptedKey: "x", keyId: "test" } });
  await s.biz.sendRaw("withdraw", unknownWallet);
  await s.biz.waitForDead((d) => d.reason === "duplicate" && d.text === unknownWallet.toString());

  await s.settle(180_000);
  assert.ok(poison.length >= 8 * 20, `${poison.length} poison messages sent`);

  // every poison message is settled: dead-lettered with its reason, or refused once
  for (const p of poison) {
    if (p.dead) {
      const d = await s.biz.waitForDead((d) => d.text === p.bytes.toString("utf8") && d.kind === p.kind, 60_000).catch(() => null);
      assert.ok(d, `${p.name}: on the dead-letter queue`);
      assert.equal(d.reason, p.dead, `${p.name}: ${d.detail}`);
    } else {
      const r = p.refused!;
      await s.biz.waitFor(p.kind, (n) => n.queue_id === r.queueId, 60_000);
    }
  }
  // the positive signal that every answer that would ever be published has been:
  // a refusal written after all of the above, on each response queue used
  for (const kind of ["topup", "withdraw", "pay"] as const) {
    const q = `sentinel-${kind}`;
    const body = kind === "topup" ? { queue_id: q, chain: "BTC", symbol: "USDT", address: randomAddress() } : { queue_id: q, from_address: HOT, to_address: randomAddress(), amount: "1", order_id: "o1", chain: "BTC", symbol: "USDT" };
    await s.biz.send(kind, { ...body, timestamp: nowS() });
    await s.biz.waitFor(kind, (n) => n.queue_id === q);
  }

  for (const p of poison.filter((p) => p.refused)) {
    assert.deepEqual(s.biz.outcomes(p.kind, p.refused!.queueId), [`0:${p.refused!.code}`], `${p.name}: one refusal`);
  }
  assert.deepEqual(s.biz.outcomes("withdraw", "from-unknown"), ["0:unknown_wallet"], "a refused id is taken: its replay is not paid");
  for (const v of valid) assert.deepEqual(s.biz.outcomes("withdraw", v.queueId), ["2", "1"], v.queueId);
  // nothing else was ever answered: only valid ids, refused ids and sentinels
  const answered = new Set([...s.biz.received("withdraw"), ...s.biz.received("pay"), ...s.biz.received("topup")].map((n) => String(n.queue_id)));
  const expected = new Set([...valid.map((v) => v.queueId), ...poison.flatMap((p) => (p.refused ? [p.refused.queueId] : [])), "from-unknown", "sentinel-topup", "sentinel-withdraw", "sentinel-pay"]);
  assert.deepEqual([...answered].sort(), [...expected].sort());

  // money: exactly the valid withdrawals, each once (checked against the chain and MySQL)
  for (const v of valid) assert.equal(await s.usdtOf(v.to), BigInt(v.amount.replace(".5", "500000")), `${v.queueId} paid once`);
  const rows = await s.env.db.prisma.transfer.findMany({ include: { attempts: true } });
  assert.deepEqual(rows.map((r) => r.queueId).sort(), valid.map((v) => v.queueId).sort(), "no transfer for anything hostile");
  for (const r of rows) assert.equal(r.attempts.length, 1, `${r.queueId}: one signed transaction`);
  assert.equal(await s.usdtOf(replayed.from_address), 0n);
  await eventually(async () => (await s.env.db.prisma.auditEvent.count({ where: { event: "request.dead_lettered" } })) >= poison.filter((p) => p.dead).length, 20_000, 100);
});
