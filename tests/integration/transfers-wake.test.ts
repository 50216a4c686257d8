/**
 * Transfers' confirmations are woken by the chain head, as deposits' are
 * (issue 11, fault 6): with a block time configured far above the chain's
 * real one (the default 12 s on a fast chain), a transfer must not wait for
 * its confirmation job's timer. chain-watch wakes the job when it sees the
 * transaction in a block, and again when the block becomes due.
 */
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { nowS } from "../helpers/rabbit.ts";
import { startTransferStack, randomAddress, HOT, type TransferStack } from "../helpers/transfer-stack.ts";
import { createChainWatch } from "../../workers/chain-watch/main.ts";

let s: TransferStack;
let watch: ReturnType<typeof createChainWatch>;

before(async () => {
  // block_time_ms a minute: every confirmation timer is at least a minute away
  s = await startTransferStack({ config: (c) => ({ ...c, eth_config: { ...c.eth_config!, block_time_ms: 60_000 } }) });
  watch = createChainWatch(s.env);
  await watch.start();
  s.startMining(100);
});

after(async () => {
  await watch?.stop();
  await s?.stop();
});

test("a transfer is final soon after its block is confirm_height deep, not a block_time_ms timer later", async () => {
  const to = randomAddress();
  await s.biz.send("withdraw", { queue_id: "w-woken", from_address: HOT, to_address: to, amount: "4", chain: "ETH", symbol: "USDT", timestamp: nowS() });
  await s.biz.waitFor("withdraw", (n) => n.queue_id === "w-woken" && n.status === 2, 30_000);
  // well under the first timer (60 s)
  const final = await s.biz.waitFor("withdraw", (n) => n.queue_id === "w-woken" && n.status !== 2, 30_000);
  assert.equal(final.status, 1, JSON.stringify(final));
  assert.equal(await s.usdtOf(to), 4_000_000n);
});
