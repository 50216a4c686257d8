/**
 * `payment reconcile`: book balances compared with the chain (anvil), the
 * differences reported, and adopted on request with an audit row.
 */
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { Contract, JsonRpcProvider, NonceManager, Wallet } from "ethers";
import { createTestEnv, type TestEnv } from "../helpers/env.ts";
import { artifact } from "../../shared/devchain/anvil.ts";
import { compareBalances, adoptChain } from "../../cli/commands/reconcile.ts";

let env: TestEnv;
const matching = Wallet.createRandom().address.toLowerCase();
const short = Wallet.createRandom().address.toLowerCase();

before(async () => {
  env = await createTestEnv({ anvil: true });
  const provider = new JsonRpcProvider(env.anvil!.rpcUrl, undefined, { staticNetwork: true });
  const token = new Contract(env.usdt!, artifact("TestUSDT").abi, new NonceManager(new Wallet(env.anvil!.keys[0]!, provider)));
  await (await token.getFunction("mint")(matching, 100_500_001n)).wait();
  await (await token.getFunction("mint")(short, 7_000_000n)).wait();
  provider.destroy();
  await env.db.prisma.balance.createMany({
    data: [
      { chain: "ETH", address: matching, symbol: "USDT", amount: "100.500001" },
      { chain: "ETH", address: short, symbol: "USDT", amount: "5" },
    ],
  });
});
after(async () => env.cleanup());

test("reports exactly the differing balances, then adopts the chain's figure with an audit row", async () => {
  const lines = await compareBalances(env.config, env.db, { symbol: "USDT" });
  const byAddress = new Map(lines.map((l) => [l.address, l]));
  assert.equal(byAddress.get(matching)!.difference, "0");
  assert.deepEqual({ ...byAddress.get(short)! }, { chain: "ETH", address: short, kind: "watched", symbol: "USDT", book: "5", onChain: "7", difference: "2" });

  await adoptChain(env.db, lines.filter((l) => l.difference !== "0"), "test-operator");
  const after = await compareBalances(env.config, env.db, { symbol: "USDT" });
  assert.ok(after.every((l) => l.difference === "0"));
  const audit = await env.db.prisma.auditEvent.findMany({ where: { event: "balance.adopted_chain" } });
  assert.equal(audit.length, 1);
  assert.equal(audit[0]!.address, short);
  assert.match(audit[0]!.data!, /"book":"5"/);
});
