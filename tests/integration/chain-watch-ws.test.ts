/**
 * The head watcher against a real anvil behind a TCP proxy we can cut: it
 * subscribes, notices the socket dropping, and resubscribes when the node
 * is reachable again (ethers does not reconnect by itself).
 */
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { JsonRpcProvider, Network } from "ethers";
import { startAnvil, type Anvil } from "../../shared/devchain/anvil.ts";
import { createHeadWatcher } from "../../workers/chain-watch/head-watcher.ts";
import { createLogger } from "../../shared/logger.ts";
import { eventually } from "../helpers/rabbit.ts";
import { startTcpProxy } from "../helpers/tcp-proxy.ts";

let anvil: Anvil;
let rpc: JsonRpcProvider;

before(async () => {
  anvil = await startAnvil();
  const network = Network.from(BigInt(anvil.chainId));
  rpc = new JsonRpcProvider(anvil.rpcUrl, network, { staticNetwork: network });
});

after(async () => {
  rpc?.destroy();
  await anvil?.stop();
});

test("subscribes, notices a dropped socket, and resubscribes when the node is back", async () => {
  const proxy = await startTcpProxy({ port: anvil.port });
  const heads: number[] = [];
  const watcher = createHeadWatcher({
    url: `ws://127.0.0.1:${proxy.port}`,
    network: Network.from(BigInt(anvil.chainId)),
    logger: createLogger({ level: "silent" }),
    onHead: (n) => heads.push(n),
    reconnectMinMs: 50,
    reconnectMaxMs: 200,
  });
  try {
    watcher.start();
    await eventually(() => watcher.connected);
    await rpc.send("anvil_mine", ["0x1"]);
    await eventually(() => heads.includes(1));

    await proxy.cut();
    await eventually(() => !watcher.connected);
    await new Promise((r) => setTimeout(r, 300)); // a few refused reconnects

    await proxy.restore();
    await eventually(() => watcher.connected, 10_000);
    await rpc.send("anvil_mine", ["0x1"]);
    await eventually(() => heads.includes(2));
  } finally {
    await watcher.stop();
    await proxy.cut();
  }
  assert.equal(watcher.connected, false);
});
