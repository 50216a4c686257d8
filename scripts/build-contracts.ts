/**
 * Compiles each contract set with solcjs (offline, from npm) into its own
 * artifacts.json:
 *
 *   shared/contracts/*.sol           production: the EIP-7702 delegation
 *                                    targets `payment contracts deploy` puts
 *                                    on real chains (bytecode, runtime
 *                                    bytecode, ABI, compiler settings)
 *   shared/devchain/contracts/*.sol  development and tests only: the test
 *                                    token and test receivers `payment dev`,
 *                                    the tests and the benchmarks deploy
 *
 * The sets are compiled apart so a test contract can never change a
 * production artifact. tests/unit/devchain-artifacts.test.ts checks each
 * artifact matches its sources: run `npm run build:contracts` after editing
 * a contract.
 */
import { createHash } from "node:crypto";
import { readFileSync, writeFileSync, readdirSync } from "node:fs";
import path from "node:path";
import solc from "solc";

const root = path.resolve(import.meta.dirname, "..");

export const CONTRACT_SETS = {
  production: path.join(root, "shared", "contracts"),
  devchain: path.join(root, "shared", "devchain", "contracts"),
} as const;
export type ContractSet = keyof typeof CONTRACT_SETS;

/** Fixed for every set: changing them changes the production bytecode (and its deployed addresses). */
export const COMPILER_SETTINGS = { optimizer: { enabled: true, runs: 200 }, evmVersion: "cancun" } as const;

const solFiles = (dir: string) => readdirSync(dir).filter((f) => f.endsWith(".sol")).sort();

export function sourceHash(set: ContractSet = "devchain"): string {
  const dir = CONTRACT_SETS[set];
  const h = createHash("sha256");
  for (const f of solFiles(dir)) h.update(f).update(readFileSync(path.join(dir, f)));
  return h.digest("hex");
}

interface SolcContract {
  abi: unknown;
  evm: { bytecode: { object: string }; deployedBytecode: { object: string } };
}

export function compile(set: ContractSet = "devchain") {
  const dir = CONTRACT_SETS[set];
  const sources = Object.fromEntries(solFiles(dir).map((f) => [f, { content: readFileSync(path.join(dir, f), "utf8") }]));
  const input = {
    language: "Solidity",
    sources,
    settings: { ...COMPILER_SETTINGS, outputSelection: { "*": { "*": ["abi", "evm.bytecode.object", "evm.deployedBytecode.object"] } } },
  };
  const out = JSON.parse(solc.compile(JSON.stringify(input)));
  const errors = (out.errors ?? []).filter((e: { severity: string }) => e.severity === "error");
  if (errors.length) throw new Error(errors.map((e: { formattedMessage: string }) => e.formattedMessage).join("\n"));
  const contracts: Record<string, { abi: unknown; bytecode: string; deployedBytecode?: string }> = {};
  for (const file of Object.values(out.contracts) as Record<string, SolcContract>[]) {
    for (const [name, c] of Object.entries(file)) {
      contracts[name] = { abi: c.abi, bytecode: `0x${c.evm.bytecode.object}` };
      // what an operator compares with eth_getCode (immutables are zeros here)
      if (set === "production") contracts[name]!.deployedBytecode = `0x${c.evm.deployedBytecode.object}`;
    }
  }
  return { solc: solc.version(), settings: COMPILER_SETTINGS, sourceHash: sourceHash(set), contracts };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  for (const set of Object.keys(CONTRACT_SETS) as ContractSet[]) {
    const file = path.join(CONTRACT_SETS[set], "artifacts.json");
    writeFileSync(file, JSON.stringify(compile(set), null, 1) + "\n");
    console.log(`wrote ${path.relative(root, file)}`);
  }
}
