/**
 * Broadcasting a drained batch as one JSON-RPC batch (workers/transfer-sender/
 * broadcast.ts `broadcastMany`) against a real anvil: each transaction's
 * outcome is classified like a single call's (ethers codes and asking the node,
 * never message text), one refused transaction leaves the others of the batch
 * alone, and a node that is unreachable or does not answer batches changes
 * nothing that was decided before.
 */
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { SigningKey, Transaction, Wallet, isError, makeError } from "ethers";
import { startAnvil, type Anvil } from "../../shared/devchain/anvil.ts";
import { createChainClient, type ChainClient } from "../../shared/adapters/chain.ts";
import { createLogger } from "../../shared/logger.ts";
import { createChainReads } from "../../shared/transfers/chain-reads.ts";
import { broadcastMany } from "../../shared/transfers/broadcast.ts";
import type { SenderChain } from "../../shared/transfers/context.ts";

const log = createLogger({ level: "silent" });
let anvil: Anvil;
let client: ChainClient;
let down: ChainClient;

const chainOf = (c: ChainClient): SenderChain => ({ key: "ETH", config: c.config as SenderChain["config"], reads: createChainReads(c.provider), chainId: async () => BigInt(anvil.chainId) });
const clientFor = (rpcUrl: string) => createChainClient({ key: "ETH", rpc_url: rpcUrl, chain_id: anvil.chainId } as Parameters<typeof createChainClient>[0]);

function signed(key: string, nonce: number, value = 1n) {
  const tx = Transaction.from({
    type: 2,
    chainId: anvil.chainId,
    nonce,
    to: Wallet.createRandom().address,
    value,
    gasLimit: 21_000n,
    maxFeePerGas: 100n * 10n ** 9n,
    maxPriorityFeePerGas: 10n ** 9n,
  });
  tx.signature = new SigningKey(key).sign(tx.unsignedHash);
  return { raw: tx.serialized, hash: tx.hash!.toLowerCase() };
}

before(async () => {
  anvil = await startAnvil();
  client = clientFor(anvil.rpcUrl);
  down = clientFor("http://127.0.0.1:1");
});

after(async () => {
  client?.close();
  down?.close();
  await anvil?.stop();
});

test("one batch: a refused transaction in the middle leaves the others out, in nonce order; already known and nonce too low count as out", async () => {
  const chain = chainOf(client);
  const key = anvil.keys[3]!;
  const from = new Wallet(key).address;
  // one mined transaction (automine), so its nonce is used on chain
  const mined = signed(key, Number(await client.provider.send("eth_getTransactionCount", [from, "pending"])));
  await client.provider.send("eth_sendRawTransaction", [mined.raw]);
  await client.provider.send("evm_setAutomine", [false]);
  try {
    const n = Number(await client.provider.send("eth_getTransactionCount", [from, "pending"]));
    const first = signed(key, n);
    const known = signed(key, n + 1);
    await client.provider.send("eth_sendRawTransaction", [known.raw]); // already in the pool when the batch comes
    const broke = signed(Wallet.createRandom().privateKey, 0); // a wallet without a wei
    const last = signed(key, n + 2);
    const reused = signed(key, n - 1); // another transaction on the mined nonce
    const batch = [first, known, broke, last, reused];

    // what the node said, call by call, as ethers codes
    const errors = await chain.reads.sendRawBatch(batch.map((b) => b.raw));
    assert.equal(errors.length, batch.length);
    assert.equal(errors[0], null);
    assert.equal(errors[3], null);
    assert.ok(errors[2] && isError(errors[2], "INSUFFICIENT_FUNDS"), `insufficient funds: ${String(errors[2])}`);
    assert.ok(errors[4] && isError(errors[4], "NONCE_EXPIRED"), `nonce too low: ${String(errors[4])}`);

    // the same batch again through broadcastMany: everything but the broke wallet's is out
    const outcomes = await broadcastMany(chain, batch, log);
    assert.deepEqual(outcomes, ["out", "out", "refused", "out", "out"]);
    for (const b of [first, known, last]) assert.ok(await client.provider.send("eth_getTransactionByHash", [b.hash]), "in the pool");
    assert.equal(await client.provider.send("eth_getTransactionByHash", [broke.hash]), null);
    assert.equal(await client.provider.send("eth_getTransactionByHash", [reused.hash]), null);

    await client.provider.send("evm_mine", []);
    for (const b of [first, known, last]) {
      const r = (await client.provider.send("eth_getTransactionReceipt", [b.hash])) as { status: string } | null;
      assert.equal(r?.status, "0x1", "mined, in nonce order");
    }
  } finally {
    await client.provider.send("evm_setAutomine", [true]);
  }
});

test("the node unreachable: every transaction of the batch is node-down (stays signed, re-broadcast later)", async () => {
  const key = anvil.keys[4]!;
  const batch = [signed(key, 0), signed(key, 1)];
  assert.deepEqual(await broadcastMany(chainOf(down), batch, log), ["node-down", "node-down"]);
  assert.equal(await client.provider.send("eth_getTransactionByHash", [batch[0]!.hash]), null);
});

test("a node that does not answer a batch as a batch: the transactions go one call at a time, classified the same", async () => {
  const real = chainOf(client);
  let batches = 0;
  const chain: SenderChain = {
    ...real,
    reads: {
      ...real.reads,
      async sendRawBatch() {
        batches++;
        throw makeError("the node did not answer the batch call by call", "BAD_DATA", { value: { error: "batch too large" } });
      },
    },
  };
  const key = anvil.keys[5]!;
  const from = new Wallet(key).address;
  const n = Number(await client.provider.send("eth_getTransactionCount", [from, "pending"]));
  const batch = [signed(key, n), signed(Wallet.createRandom().privateKey, 0), signed(key, n + 1)];
  assert.deepEqual(await broadcastMany(chain, batch, log), ["out", "refused", "out"]);
  assert.equal(batches, 1);
  assert.equal(Number(await client.provider.send("eth_getTransactionCount", [from, "latest"])), n + 2, "both mined (automine)");
});

test("sendRawBatch: an answer with none of the batch's ids rejects the whole batch (BAD_DATA)", async () => {
  const { createServer } = await import("node:http");
  const server = createServer((req, res) => {
    req.resume();
    req.on("end", () => {
      res.setHeader("content-type", "application/json");
      res.end(JSON.stringify({ jsonrpc: "2.0", id: null, error: { code: -32600, message: "batch too large" } }));
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  const c = clientFor(`http://127.0.0.1:${(server.address() as { port: number }).port}`);
  try {
    await assert.rejects(chainOf(c).reads.sendRawBatch([signed(anvil.keys[6]!, 0).raw]), (e: unknown) => isError(e, "BAD_DATA"));
  } finally {
    c.close();
    await new Promise((r) => server.close(r));
  }
});
