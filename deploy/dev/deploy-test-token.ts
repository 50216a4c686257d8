/**
 * Development only (docker compose's `devchain-init`): deploys the USDT-like
 * test token on the compose anvil, from anvil's public account #0 at nonce 0,
 * so it always lands at the same address, the one
 * deploy/config/compose.config.json lists. Idempotent: when the contract is
 * already there it does nothing. Never point this at a real chain.
 *
 * Usage: RPC_URL=http://anvil:8545 node --import tsx deploy/dev/deploy-test-token.ts
 */
import { JsonRpcProvider, Wallet, getCreateAddress } from "ethers";
import { ANVIL_KEYS, deploy } from "../../shared/devchain/anvil.ts";

const rpcUrl = process.env.RPC_URL ?? "http://anvil:8545";
const provider = new JsonRpcProvider(rpcUrl, undefined, { staticNetwork: true });
try {
  const chainId = (await provider.getNetwork()).chainId;
  if (chainId !== 31337n) throw new Error(`refusing to deploy the test token on chain ${chainId}: this script is for the local anvil (31337) only`);
  const deployer = new Wallet(ANVIL_KEYS[0]!);
  const expected = getCreateAddress({ from: deployer.address, nonce: 0 }).toLowerCase();
  if ((await provider.getCode(expected)) !== "0x") {
    console.log(`test token already deployed at ${expected}`);
  } else {
    const nonce = await provider.getTransactionCount(deployer.address);
    if (nonce !== 0) throw new Error(`anvil account #0 already used nonce 0 for something else; reset the chain (docker compose down -v)`);
    const at = await deploy(rpcUrl, ANVIL_KEYS[0]!, "TestUSDT");
    if (at !== expected) throw new Error(`test token deployed at ${at}, expected ${expected}`);
    console.log(`test token (USDT, 6 decimals) deployed at ${at}`);
  }
} finally {
  provider.destroy();
}
