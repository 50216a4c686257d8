/**
 * `batching` checked at start against the real node: anvil's default
 * hardfork (Prague) accepts EIP-7702 transactions, anvil run as Cancun does
 * not. Unset, the mode follows the node; "7702" on a node without it stops
 * the start with the key named; "off" is never probed into anything else.
 */
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { JsonRpcProvider } from "ethers";
import { startAnvil, type Anvil } from "../../shared/devchain/anvil.ts";
import { parseConfig, ConfigError } from "../../shared/config/load-config.ts";
import { supports7702 } from "../../shared/adapters/eip7702.ts";
import { checkBatching } from "../../cli/preflight.ts";

let prague: Anvil;
let cancun: Anvil;

before(async () => {
  [prague, cancun] = await Promise.all([startAnvil(), startAnvil({ extraArgs: ["--hardfork", "cancun"] })]);
});

after(async () => {
  await Promise.all([prague?.stop(), cancun?.stop()]);
});

const config = (batching?: string) =>
  parseConfig({
    net: ["ETH", "OLD"],
    eth_config: { rpc_url: prague.rpcUrl, ...(batching ? { batching } : {}) },
    evm_chains: { OLD: { rpc_url: cancun.rpcUrl, ...(batching ? { batching } : {}) } },
  });

describe("EIP-7702 support, probed at start", () => {
  it("the probe tells a Prague node from a Cancun one, sending nothing", async () => {
    for (const [node, expected] of [
      [prague, true],
      [cancun, false],
    ] as const) {
      const provider = new JsonRpcProvider(node.rpcUrl, undefined, { staticNetwork: true });
      try {
        const block = await provider.getBlockNumber();
        assert.equal(await supports7702(provider), expected);
        assert.equal(await provider.getBlockNumber(), block, "nothing was mined");
      } finally {
        provider.destroy();
      }
    }
  });

  it("unset: 7702 where the node supports it, off where it does not", async () => {
    assert.deepEqual(await checkBatching(config()), { ETH: "7702", OLD: "off" });
  });

  it("\"off\" stays off on any node", async () => {
    assert.deepEqual(await checkBatching(config("off")), { ETH: "off", OLD: "off" });
  });

  it("\"7702\" on a node without it stops the start, naming the chain's key", async () => {
    await assert.rejects(checkBatching(config("7702")), (e) => e instanceof ConfigError && /OLD\.batching: "7702" but the node does not accept EIP-7702/.test(e.message));
  });
});
