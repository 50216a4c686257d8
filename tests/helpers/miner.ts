/**
 * Mining control for tests on anvil: mine now, or every `ms` in the
 * background (interval mining that a test can stop and wait for).
 */
import type { JsonRpcProvider } from "ethers";

export function anvilMiner(provider: JsonRpcProvider, defaultMs: number) {
  let miner: NodeJS.Timeout | null = null;
  let mining: Promise<unknown> = Promise.resolve();
  return {
    async mine(blocks = 1) {
      await provider.send("anvil_mine", [`0x${blocks.toString(16)}`]);
    },
    startMining(ms = defaultMs) {
      if (miner) return;
      miner = setInterval(() => {
        mining = provider.send("anvil_mine", ["0x1"]).catch(() => undefined);
      }, ms);
    },
    /** stop the interval and wait for the block being mined, if any */
    async stopMining() {
      if (miner) clearInterval(miner);
      miner = null;
      await mining;
    },
  };
}
