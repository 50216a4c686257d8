/**
 * The compiled contracts must match their Solidity source: editing a .sol
 * without running `npm run build:contracts` would silently deploy the old
 * bytecode. Two sets, compiled apart: the production EIP-7702 contracts
 * (shared/contracts) and the development/test ones (shared/devchain/contracts).
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import path from "node:path";
import { pathToFileURL } from "node:url";

// Imported by URL so `tsc -p .` does not pull scripts/ (outside tsconfig's include) into the program.
const { sourceHash } = (await import(pathToFileURL(path.resolve(import.meta.dirname, "../../scripts/build-contracts.ts")).href)) as {
  sourceHash(set?: "production" | "devchain"): string;
};

const file = path.resolve(import.meta.dirname, "../../shared/devchain/contracts/artifacts.json");
const productionFile = path.resolve(import.meta.dirname, "../../shared/contracts/artifacts.json");

type Abi = { type: string; name?: string; inputs?: { type: string }[]; outputs?: { type: string }[] }[];

describe("devchain artifacts", () => {
  const artifacts = JSON.parse(readFileSync(file, "utf8")) as {
    sourceHash: string;
    solc: string;
    contracts: Record<string, { abi: { type: string; name?: string }[]; bytecode: string }>;
  };

  it("were built from the current .sol sources (after editing one run `node --import tsx scripts/build-contracts.ts`)", () => {
    assert.equal(artifacts.sourceHash, sourceHash());
  });

  it("hold deployable bytecode and the ABI the gateway relies on", () => {
    const usdt = artifacts.contracts.TestUSDT;
    assert.ok(usdt, "TestUSDT is compiled");
    assert.match(usdt.bytecode, /^0x(?:[0-9a-f]{2})+$/);
    const fns = new Set(usdt.abi.filter((e) => e.type === "function").map((e) => e.name));
    for (const f of ["transfer", "balanceOf", "decimals", "mint"]) assert.ok(fns.has(f), `TestUSDT.${f}`);
    assert.ok(usdt.abi.some((e) => e.type === "event" && e.name === "Transfer"));
    // like mainnet USDT, transfer returns nothing: the gateway must cope with it
    const transfer = usdt.abi.find((e) => e.type === "function" && e.name === "transfer") as { outputs?: unknown[] } | undefined;
    assert.deepEqual(transfer?.outputs, []);
  });
});

describe("production (EIP-7702) artifacts", () => {
  const artifacts = JSON.parse(readFileSync(productionFile, "utf8")) as {
    sourceHash: string;
    settings: { evmVersion: string; optimizer: { enabled: boolean; runs: number } };
    contracts: Record<string, { abi: Abi; bytecode: string; deployedBytecode: string }>;
  };

  it("were built from the current shared/contracts/*.sol (after editing one run `npm run build:contracts`)", () => {
    assert.equal(artifacts.sourceHash, sourceHash("production"));
  });

  it("hold only the production contracts, with init and runtime bytecode and the compiler settings", () => {
    assert.deepEqual(Object.keys(artifacts.contracts).sort(), ["BatchExecutor", "DepositSweeper"]);
    for (const c of Object.values(artifacts.contracts)) {
      assert.match(c.bytecode, /^0x(?:[0-9a-f]{2})+$/);
      assert.match(c.deployedBytecode, /^0x(?:[0-9a-f]{2})+$/);
    }
    assert.equal(artifacts.settings.evmVersion, "cancun");
    assert.equal(artifacts.settings.optimizer.enabled, true);
  });

  it("expose the entry points and events the gateway encodes and decodes", () => {
    const sig = (abi: Abi, type: string, name: string) => {
      const e = abi.find((x) => x.type === type && x.name === name);
      return e && `${name}(${(e.inputs ?? []).map((i) => i.type).join(",")})`;
    };
    const exec = artifacts.contracts.BatchExecutor!.abi;
    assert.equal(sig(exec, "function", "pay"), "pay(address,uint32,uint256[])");
    assert.equal(sig(exec, "event", "Batch"), "Batch(uint256,uint256[])");
    const sweeper = artifacts.contracts.DepositSweeper!.abi;
    assert.equal(sig(sweeper, "function", "sweep"), "sweep(address,uint32,uint256[])");
    assert.equal(sig(sweeper, "function", "pull"), "pull(address,uint256)");
    assert.equal(sig(sweeper, "event", "Sweep"), "Sweep(uint256,uint256[])");
    assert.equal(sig(sweeper, "event", "NativeSwept"), "NativeSwept(uint256)");
    // the collector is fixed at deployment, never settable afterwards
    assert.deepEqual(sweeper.find((x) => x.type === "constructor")?.inputs?.map((i) => i.type), ["address"]);
    assert.ok(!exec.some((x) => x.type === "constructor"), "the executor takes no deployment arguments");
  });
});
