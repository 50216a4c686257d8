/**
 * Wait for a transaction's receipt by polling it. Not ethers'
 * `tx.wait()`/`waitForTransaction`: when anvil's automine has not produced
 * the receipt by ethers' first look, ethers waits for a block number it has
 * not seen yet, and after `evm_revert` or `anvil_reorg` the next block
 * reuses a number it has seen: it would wait for ever (it hung a test run
 * for its whole timeout).
 */
import assert from "node:assert/strict";
import type { JsonRpcProvider, TransactionReceipt } from "ethers";

export async function receiptOf(provider: Pick<JsonRpcProvider, "getTransactionReceipt">, hash: string, timeoutMs = 60_000): Promise<TransactionReceipt> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const r = await provider.getTransactionReceipt(hash);
    if (r) return r;
    if (Date.now() > deadline) return assert.fail(`no receipt for ${hash} after ${timeoutMs} ms`);
    await new Promise((done) => setTimeout(done, 20));
  }
}
