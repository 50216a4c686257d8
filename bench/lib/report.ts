/**
 * Benchmark results: each bench writes bench/results/<name>.json with its
 * figures and the raw ceiling measured in the same run; `writeBenchmarksMd`
 * renders every result into BENCHMARKS.md with the machine, date and commit.
 */
import { execSync } from "node:child_process";
import { cpus, totalmem } from "node:os";
import { mkdirSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import path from "node:path";

export const RESULTS_DIR = path.resolve(import.meta.dirname, "../results");
const MD = path.resolve(import.meta.dirname, "../../BENCHMARKS.md");

export interface Row {
  metric: string;
  value: string;
  /** the raw ceiling measured in the same run, when there is one */
  raw?: string;
  /** value / raw */
  ratio?: string;
  target?: string;
  met?: boolean;
}

export interface BenchResult {
  name: string;
  title: string;
  /** what was measured, how, and what bounds it */
  description: string;
  rows: Row[];
  notes?: string[];
  params: Record<string, unknown>;
  at: string;
  commit: string;
  machine: string;
  smoke: boolean;
}

export function machine(): string {
  const c = cpus();
  return `${c.length} x ${c[0]?.model ?? "cpu"}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB RAM, Node ${process.version}, ${process.platform}`;
}

/** HEAD, marked when the code run differs from it (changes outside the results this writes) */
export function commit(): string {
  try {
    const head = execSync("git rev-parse --short HEAD", { encoding: "utf8" }).trim();
    const dirty = execSync("git status --porcelain --untracked-files=no", { encoding: "utf8" })
      .split("\n")
      .filter((l) => l.trim() && !/ (BENCHMARKS\.md|bench\/results\/)/.test(l));
    return dirty.length > 0 ? `${head} + uncommitted changes` : head;
  } catch {
    return "unknown";
  }
}

export function saveResult(r: Omit<BenchResult, "at" | "commit" | "machine">): BenchResult {
  const full: BenchResult = { ...r, at: new Date().toISOString(), commit: commit(), machine: machine() };
  if (r.smoke) return full; // smoke runs (CI) keep the scripts working; they are not figures
  mkdirSync(RESULTS_DIR, { recursive: true });
  writeFileSync(path.join(RESULTS_DIR, `${r.name}.json`), JSON.stringify(full, null, 2) + "\n");
  writeBenchmarksMd();
  return full;
}

export function printResult(r: BenchResult): void {
  console.log(`\n${r.title}${r.smoke ? " (smoke size: not a figure)" : ""}`);
  console.table(r.rows.map((x) => ({ metric: x.metric, value: x.value, raw: x.raw ?? "", ratio: x.ratio ?? "", target: x.target ?? "", met: x.met === undefined ? "" : x.met ? "yes" : "NO" })));
  for (const n of r.notes ?? []) console.log(`- ${n}`);
}

export function writeBenchmarksMd(): void {
  const files = readdirSync(RESULTS_DIR).filter((f) => f.endsWith(".json")).sort();
  const order = ["ingest", "poison", "detect", "head-latency", "confirm", "send", "memory", "row-writes", "gas-7702"];
  const results = files
    .map((f) => JSON.parse(readFileSync(path.join(RESULTS_DIR, f), "utf8")) as BenchResult)
    .sort((a, b) => (order.indexOf(a.name) + 100) % 100 - (order.indexOf(b.name) + 100) % 100);
  const lines: string[] = [
    "# Benchmarks",
    "",
    "Written by `npm run bench` (one script per benchmark under `bench/`, each writing `bench/results/<name>.json`).",
    "Every benchmark starts the real system against the local Redis, RabbitMQ, MariaDB and an anvil node, and",
    "measures its raw ceiling in the same run, so the ratio survives a noisy machine. Figures, not assertions:",
    "the test suite has no timing assertions.",
    "",
    "- all: `npm run bench` (each full benchmark takes under about three minutes); one: `npx tsx bench/<name>.ts`",
    "- CI: `npm run bench:smoke` runs every script at a tiny size and writes nothing",
    "- the CPU of each process during the measured window is in each benchmark's notes (2 cores = 200%)",
    "- this virtual machine's speed drifts between runs (the raw ceilings moved by 15-20 % between runs on one day):",
    "  compare ratios across runs, absolute figures only within one",
    "- where a target is missed, the benchmark's section says what bounds it and what was changed for it",
    "- profile the measured section only: `BENCH_PROFILE=/tmp/prof npx tsx bench/<name>.ts`, then",
    "  `npx tsx bench/lib/profile-summary.ts /tmp/prof/<name>.cpuprofile 30 --ours` (self time charged to this project's functions)",
    "",
    "| benchmark | result | raw ceiling (same run) | ratio | target | met |",
    "|---|---|---|---|---|---|",
  ];
  for (const r of results) {
    for (const row of r.rows) {
      lines.push(`| ${r.name}: ${row.metric} | ${row.value} | ${row.raw ?? "—"} | ${row.ratio ?? "—"} | ${row.target ?? "—"} | ${row.met === undefined ? "—" : row.met ? "yes" : "**no**"} |`);
    }
  }
  for (const r of results) {
    lines.push("", `## ${r.title}`, "", r.description, "", `Run ${r.at} at commit \`${r.commit}\` on ${r.machine}.`, "");
    lines.push("Parameters: " + Object.entries(r.params).map(([k, v]) => `${k}=${JSON.stringify(v)}`).join(", "), "");
    for (const n of r.notes ?? []) lines.push(`- ${n}`);
  }
  writeFileSync(MD, lines.join("\n") + "\n");
}

export const fmt = (n: number, digits = 0) => n.toLocaleString("en-US", { maximumFractionDigits: digits, minimumFractionDigits: digits });
export const isSmoke = () => process.argv.includes("--smoke") || process.env.BENCH_SMOKE === "1";

/** p-th percentile (0..100) of a list of numbers. */
export function percentile(values: number[], p: number): number {
  if (values.length === 0) return NaN;
  const s = [...values].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))]!;
}
