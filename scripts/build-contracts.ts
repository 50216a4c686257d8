/**
 * Compiles shared/devchain/contracts/*.sol with solcjs (offline, from npm)
 * into artifacts.json, which `payment dev`, the tests and the benchmarks
 * deploy. tests/unit/devchain-artifacts.test.ts checks the artifact matches
 * the source, so run `npm run build:contracts` after editing a contract.
 */
import { createHash } from "node:crypto";
import { readFileSync, writeFileSync, readdirSync } from "node:fs";
import path from "node:path";
import solc from "solc";

const dir = path.resolve(import.meta.dirname, "../shared/devchain/contracts");

export function sourceHash(): string {
  const h = createHash("sha256");
  for (const f of readdirSync(dir).filter((f) => f.endsWith(".sol")).sort()) h.update(f).update(readFileSync(path.join(dir, f)));
  return h.digest("hex");
}

export function compile() {
  const sources = Object.fromEntries(
    readdirSync(dir)
      .filter((f) => f.endsWith(".sol"))
      .map((f) => [f, { content: readFileSync(path.join(dir, f), "utf8") }]),
  );
  const input = {
    language: "Solidity",
    sources,
    settings: { optimizer: { enabled: true, runs: 200 }, evmVersion: "cancun", outputSelection: { "*": { "*": ["abi", "evm.bytecode.object"] } } },
  };
  const out = JSON.parse(solc.compile(JSON.stringify(input)));
  const errors = (out.errors ?? []).filter((e: { severity: string }) => e.severity === "error");
  if (errors.length) throw new Error(errors.map((e: { formattedMessage: string }) => e.formattedMessage).join("\n"));
  const contracts: Record<string, { abi: unknown; bytecode: string }> = {};
  for (const file of Object.values(out.contracts) as Record<string, { abi: unknown; evm: { bytecode: { object: string } } }>[]) {
    for (const [name, c] of Object.entries(file)) contracts[name] = { abi: c.abi, bytecode: `0x${c.evm.bytecode.object}` };
  }
  return { solc: solc.version(), sourceHash: sourceHash(), contracts };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  writeFileSync(path.join(dir, "artifacts.json"), JSON.stringify(compile(), null, 1) + "\n");
  console.log("wrote shared/devchain/contracts/artifacts.json");
}
