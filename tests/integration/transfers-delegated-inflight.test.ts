/**
 * A node that keeps one transaction of a delegated (EIP-7702) account in
 * its pool, as geth and reth do: the proxy in front of anvil names itself
 * geth and refuses a raw transaction of the hot wallet while the wallet
 * delegates (or its authorization is pending) and another of its
 * transactions is unmined, with geth's error. The sender keeps one batch
 * in flight per delegated wallet there (delegated_in_flight unset: 1 off
 * anvil): the node refuses nothing, no job fails, every order gets `2`
 * then `1`, and the wallet's later batches waited for the one before.
 */
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { Transaction } from "ethers";
import { startTransferStack, waitForNotes, queueThreePays, startSenderVia, HOT, type TransferStack } from "../helpers/transfer-stack.ts";
import { startRpcProxy, type RpcProxy } from "../helpers/rpc-proxy.ts";
import { delegationTarget } from "../../shared/adapters/eip7702.ts";

let s: TransferStack;
let proxy: RpcProxy;
let refused = 0;
/** the hot wallet may not have another transaction in the pool now (read before each request) */
let limited = false;
/** the nonce of the last type-4 transaction of the hot wallet the node took */
let authNonce = -1;

before(async () => {
  // a block a second: long enough that a batch sent right after the one before is met by the limit
  s = await startTransferStack({ sender: false, batching: "7702", config: (c) => ({ ...c, eth_config: { ...c.eth_config!, block_time_ms: 1_000 } }) });
  const hot = HOT.toLowerCase();
  proxy = await startRpcProxy(
    s.env.anvil!.rpcUrl,
    (c) => {
      if (c.method === "web3_clientVersion") return { result: "Geth/v1.15.11-stable-36b2371c/linux-amd64/go1.24.2" };
      if (c.method !== "eth_sendRawTransaction") return undefined;
      const tx = Transaction.from(String(c.params[0]));
      if (tx.from?.toLowerCase() !== hot) return undefined;
      if (limited) {
        refused++;
        return { error: { code: -32000, message: "in-flight transaction limit reached for delegated accounts" } };
      }
      // taken: a second one in the same request meets the limit
      limited = true;
      if (tx.type === 4) authNonce = tx.nonce;
      return undefined;
    },
    {
      before: async (calls) => {
        if (!calls.some((c) => c.method === "eth_sendRawTransaction")) return;
        const [latest, pending, code] = await Promise.all([
          s.provider.send("eth_getTransactionCount", [HOT, "latest"]),
          s.provider.send("eth_getTransactionCount", [HOT, "pending"]),
          s.provider.send("eth_getCode", [HOT, "latest"]),
        ]);
        const delegates = delegationTarget(String(code)) !== null || Number(latest) <= authNonce;
        limited = delegates && Number(pending) > Number(latest);
      },
    },
  );
  await s.provider.send("evm_setAutomine", [false]);
  s.startMining(1_000);
});

after(async () => {
  await proxy?.close();
  await s?.stop();
});

test("behind a node that takes one transaction of a delegated wallet: one batch in flight at a time, nothing refused, every order 2 then 1", { timeout: 300_000 }, async () => {
  const requests = await queueThreePays(s, "infl");
  const sender = await startSenderVia(s, proxy.url);
  try {
    await waitForNotes(s.biz, "pay", 1, 450, (q) => q.startsWith("infl-"), 240_000);
  } finally {
    await sender.stop();
  }

  // the business's view: per order `2` then `1`, once
  for (const { q } of requests) {
    const notes = s.biz.received("pay").filter((n) => n.queue_id === q);
    const byOrder = new Map<string, number[]>();
    for (const n of notes) byOrder.set(String(n.order_id), [...(byOrder.get(String(n.order_id)) ?? []), Number(n.status)]);
    assert.equal(byOrder.size, 150, q);
    for (const [order, statuses] of byOrder) assert.deepEqual(statuses, [2, 1], `${q} ${order}`);
  }
  assert.ok(s.biz.allSigned());

  // the node refused nothing, and no job spent its attempts on it
  assert.equal(refused, 0, "no transaction of the delegated wallet was sent while another was unmined");
  assert.equal((await s.env.queues.transfer.getJobCounts("failed")).failed, 0);

  // several batches, each sent only once the one before was mined (the positive signal that the limit was met)
  const rows = await s.env.db.prisma.transfer.findMany({ where: { queueId: { startsWith: "infl-" } } });
  const hashes = [...new Set(rows.map((r) => r.txHash!))];
  assert.ok(hashes.length >= 3, `${hashes.length} batch transactions`);
  const txs = (await Promise.all(hashes.map((h) => s.provider.getTransaction(h)))).map((t) => t!).sort((a, b) => a.nonce - b.nonce);
  for (let k = 1; k < txs.length; k++) assert.ok(txs[k]!.blockNumber! > txs[k - 1]!.blockNumber!, `batch ${k} mined in a later block than batch ${k - 1}`);
  const logs = await Promise.all(rows.slice(0, 450).map(async (r) => (await s.env.queues.transfer.getJobLogs(`send-${r.id}`, 0, -1)).logs));
  assert.ok(
    logs.some((l) => l.some((line) => line.includes("waiting: the node keeps one transaction at a time of a wallet that delegates"))),
    "some payouts waited for the wallet's batch before to be mined",
  );
});
