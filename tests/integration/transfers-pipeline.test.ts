/**
 * A wallet's drain signs its next batch while the batch before it is being
 * broadcast (send-transfer.ts drain, step 2), and keeps every promise of a
 * serial drain: each batch is stored `signed` before any of it is
 * broadcast, the node receives the transactions in nonce order with no gap
 * and none twice, and every order is reported `2` once and paid its exact
 * amount once. The node here answers eth_sendRawTransaction 400 ms late,
 * so the overlap is there to see: the second batch's attempt rows are
 * written before the first batch's broadcast has ended.
 */
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { Transaction } from "ethers";
import { eventually } from "../helpers/rabbit.ts";
import { startTransferStack, waitForNotes, queueThreePays, startSenderVia, HOT, type TransferStack } from "../helpers/transfer-stack.ts";
import { startRpcProxy, type RpcProxy } from "../helpers/rpc-proxy.ts";

let s: TransferStack;
let proxy: RpcProxy;
/** the nonce of every raw transaction the node was sent, in the order it arrived */
const arrived: number[] = [];

before(async () => {
  // plain transactions (one per order): three drains' worth of batches (200, 200, 50) from one wallet
  s = await startTransferStack({ sender: false, batching: "off" });
  proxy = await startRpcProxy(
    s.env.anvil!.rpcUrl,
    (c) => {
      if (c.method === "eth_sendRawTransaction") arrived.push(Transaction.from(String(c.params[0])).nonce);
      return undefined;
    },
    { delayMs: (c) => (c.method === "eth_sendRawTransaction" ? 400 : 0) },
  );
});

after(async () => {
  await proxy?.close();
  await s?.stop();
});

test("the next batch is signed while the one before is broadcast: nonce order at the node, each order sent and reported once", { timeout: 300_000 }, async () => {
  const startNonce = Number(await s.provider.send("eth_getTransactionCount", [HOT, "latest"]));
  const requests = await queueThreePays(s, "pipe");
  const sender = await startSenderVia(s, proxy.url);
  try {
    const pending = await waitForNotes(s.biz, "pay", 2, 450, (q) => q.startsWith("pipe-"), 180_000);
    assert.equal(pending.length, 450, "each order reported 2 once");
  } finally {
    await sender.stop();
  }

  // at the node: consecutive nonces in arrival order, none twice
  assert.deepEqual(
    arrived,
    Array.from({ length: 450 }, (_, i) => startNonce + i),
    "raw transactions reached the node in nonce order, each once",
  );

  // the overlap: some batch was signed (its attempt rows written) while the batch before it was still being broadcast
  const attempts = await s.env.db.prisma.txAttempt.findMany({ where: { transfer: { queueId: { startsWith: "pipe-" } } }, orderBy: { nonce: "asc" } });
  assert.equal(attempts.length, 450, "one attempt per order");
  // the rows of one signing transaction share their created_at (one INSERT)
  const byCommit = new Map<number, typeof attempts>();
  for (const a of attempts) byCommit.set(a.createdAt.getTime(), [...(byCommit.get(a.createdAt.getTime()) ?? []), a]);
  const batches = [...byCommit.values()].sort((x, y) => Number(x[0]!.nonce - y[0]!.nonce));
  assert.ok(batches.length >= 3, `signed in ${batches.length} transactions of rows`);
  const overlapped = batches.slice(1).some((b, k) => {
    const before = batches[k]!;
    const broadcastEnded = Math.max(...before.map((a) => a.broadcastAt!.getTime()));
    return b[0]!.createdAt.getTime() < broadcastEnded;
  });
  assert.ok(overlapped, "a batch was signed while the one before it was being broadcast");
  // and never before the one before it was stored: every batch's rows come after the previous batch's
  for (let k = 1; k < batches.length; k++) assert.ok(batches[k]![0]!.createdAt.getTime() >= batches[k - 1]![0]!.createdAt.getTime());

  // each recipient paid its exact amount, once
  s.startMining(50);
  await eventually(async () => ((await s.provider.send("eth_getTransactionCount", [HOT, "latest"])) === `0x${(startNonce + 450).toString(16)}` ? true : null), 60_000, 100);
  await s.stopMining();
  for (const { orders } of requests) {
    for (const o of orders.slice(0, 20)) {
      const [i, f] = o.amount.split(".");
      assert.equal(await s.usdtOf(o.to_address), BigInt(i! + f!.padEnd(6, "0")), o.to_address);
    }
  }
  assert.ok(s.biz.allSigned());
});
