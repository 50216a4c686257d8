/**
 * Run every benchmark, one process each, in order (`npm run bench`), or all
 * of them at a tiny size to keep the scripts working (`npm run bench:smoke`,
 * for CI: writes no results). A script that fails makes the run fail; a
 * target that is missed does not (benchmarks are figures, not tests).
 *
 *   npx tsx bench/run-all.ts [--smoke] [--only detect,confirm]
 */
import { spawn } from "node:child_process";
import path from "node:path";
import { isSmoke } from "./lib/report.ts";

const BENCHMARKS = ["ingest", "poison", "detect", "head-latency", "confirm", "send", "memory", "row-writes", "gas-7702"];
const smoke = isSmoke();
const onlyArg = process.argv.indexOf("--only");
const only = onlyArg > 0 ? process.argv[onlyArg + 1]!.split(",") : BENCHMARKS;
const unknown = only.filter((n) => !BENCHMARKS.includes(n));
if (unknown.length > 0) throw new Error(`unknown benchmark(s): ${unknown.join(", ")} (known: ${BENCHMARKS.join(", ")})`);

/** a benchmark taking longer than this is stuck: killed and counted as failed */
const LIMIT_MS = smoke ? 120_000 : 360_000;

function run(name: string): Promise<number | null> {
  const script = path.resolve(import.meta.dirname, `${name}.ts`);
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ["--import", "tsx", script, ...(smoke ? ["--smoke"] : [])], { stdio: "inherit" });
    const timer = setTimeout(() => {
      console.error(`${name}: still running after ${LIMIT_MS / 1000} s; killing it`);
      child.kill("SIGKILL");
    }, LIMIT_MS);
    child.once("exit", (code) => {
      clearTimeout(timer);
      resolve(code);
    });
  });
}

const outcomes: { name: string; code: number | null; s: number }[] = [];
for (const name of BENCHMARKS.filter((n) => only.includes(n))) {
  console.log(`\n=== ${name}${smoke ? " (smoke)" : ""} ===`);
  const t = performance.now();
  const code = await run(name);
  outcomes.push({ name, code, s: (performance.now() - t) / 1000 });
}
console.log("\n" + outcomes.map((o) => `${o.name.padEnd(14)} ${o.code === 0 ? "ok    " : `FAILED (${o.code})`} ${o.s.toFixed(1)} s`).join("\n"));
if (!smoke) console.log("\nfigures: bench/results/*.json, BENCHMARKS.md");
process.exitCode = outcomes.every((o) => o.code === 0) ? 0 : 1;
