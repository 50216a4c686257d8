/**
 * Summarise a .cpuprofile: self time by function and by package/file.
 *
 *   npx tsx bench/lib/profile-summary.ts <file.cpuprofile> [top=30]
 */
import { readFileSync } from "node:fs";

interface Node {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
const file = process.argv[2];
if (!file) throw new Error("usage: profile-summary <file.cpuprofile> [top]");
const top = Number(process.argv[3] ?? 30);
const p = JSON.parse(readFileSync(file, "utf8")) as { nodes: Node[]; samples: number[]; timeDeltas: number[] };
const byId = new Map(p.nodes.map((n) => [n.id, n]));
const self = new Map<number, number>();
p.samples.forEach((id, i) => self.set(id, (self.get(id) ?? 0) + (p.timeDeltas[i] ?? 0)));
const total = [...self.values()].reduce((a, b) => a + b, 0);

const where = (url: string) => {
  if (!url) return "(native)";
  const m = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (m) return m[1]!;
  return url.replace(/^.*\/work\/main\//, "").replace(/^file:\/\//, "");
};
const fn = new Map<string, number>();
const pkg = new Map<string, number>();
for (const [id, t] of self) {
  const n = byId.get(id)!;
  const k = `${n.callFrame.functionName || "(anonymous)"}  ${where(n.callFrame.url)}:${n.callFrame.lineNumber + 1}`;
  fn.set(k, (fn.get(k) ?? 0) + t);
  const w = where(n.callFrame.url);
  pkg.set(w, (pkg.get(w) ?? 0) + t);
}
const show = (m: Map<string, number>, title: string) => {
  console.log(`\n${title} (total ${(total / 1000).toFixed(0)} ms)`);
  for (const [k, t] of [...m].sort((a, b) => b[1] - a[1]).slice(0, top)) console.log(`${((100 * t) / total).toFixed(1).padStart(5)}%  ${(t / 1000).toFixed(0).padStart(6)} ms  ${k}`);
};
show(pkg, "self time by package / file");
show(fn, "self time by function");

// `--callers NAME`: whose calls the self time of functions named NAME comes from (3 frames up)
const ci = process.argv.indexOf("--callers");
if (ci > 0) {
  const name = process.argv[ci + 1]!;
  const parent = new Map<number, number>();
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const stacks = new Map<string, number>();
  for (const [id, t] of self) {
    const n = byId.get(id)!;
    if (n.callFrame.functionName !== name) continue;
    const chain: string[] = [];
    for (let cur = parent.get(id), k = 0; cur !== undefined && k < Number(process.env.DEPTH ?? 6); cur = parent.get(cur), k++) {
      const f = byId.get(cur)!.callFrame;
      chain.push(`${f.functionName || "(anon)"}@${where(f.url)}:${f.lineNumber + 1}`);
    }
    const key = chain.join(" < ");
    stacks.set(key, (stacks.get(key) ?? 0) + t);
  }
  show(stacks, `callers of ${name}`);
}

// `--ours`: self time of everything (libraries included) charged to the nearest frame of this project's code
if (process.argv.includes("--ours")) {
  const parent = new Map<number, number>();
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const mine = (url: string) => /\/work\/main\/(?!node_modules)/.test(url);
  const charged = new Map<string, number>();
  for (const [id, t] of self) {
    let cur: number | undefined = id;
    let key = "(no project frame)";
    while (cur !== undefined) {
      const f = byId.get(cur)!.callFrame;
      if (mine(f.url)) {
        key = `${f.functionName || "(anonymous)"}  ${where(f.url)}:${f.lineNumber + 1}`;
        break;
      }
      cur = parent.get(cur);
    }
    if (byId.get(id)!.callFrame.functionName === "(idle)") key = "(idle)";
    charged.set(key, (charged.get(key) ?? 0) + t);
  }
  show(charged, "time charged to the nearest project frame");
}
