/**
 * The compiled contracts that `payment dev`, the tests and the benchmarks
 * deploy must match their Solidity source: editing a .sol without running
 * `npm run build:contracts` would silently deploy the old bytecode.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import path from "node:path";
import { pathToFileURL } from "node:url";

// Imported by URL so `tsc -p .` does not pull scripts/ (outside tsconfig's include) into the program.
const { sourceHash } = (await import(pathToFileURL(path.resolve(import.meta.dirname, "../../scripts/build-contracts.ts")).href)) as { sourceHash(): string };

const file = path.resolve(import.meta.dirname, "../../shared/devchain/contracts/artifacts.json");

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
