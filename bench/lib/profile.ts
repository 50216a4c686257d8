/**
 * CPU profile of the measured section only (not the setup): with
 * BENCH_PROFILE=<dir> set, `startProfile()`/`stopProfile(name)` write
 * <dir>/<name>.cpuprofile (open it in Chrome DevTools, or summarise it with
 * `npx tsx bench/lib/profile-summary.ts <file>`). A no-op otherwise.
 */
import { Session } from "node:inspector/promises";
import { mkdirSync, writeFileSync } from "node:fs";
import path from "node:path";

let session: Session | null = null;

export async function startProfile(): Promise<void> {
  if (!process.env.BENCH_PROFILE) return;
  session = new Session();
  session.connect();
  await session.post("Profiler.enable");
  await session.post("Profiler.setSamplingInterval", { interval: 200 });
  await session.post("Profiler.start");
}

export async function stopProfile(name: string): Promise<void> {
  if (!session || !process.env.BENCH_PROFILE) return;
  const { profile } = await session.post("Profiler.stop");
  session.disconnect();
  session = null;
  mkdirSync(process.env.BENCH_PROFILE, { recursive: true });
  const file = path.join(process.env.BENCH_PROFILE, `${name}.cpuprofile`);
  writeFileSync(file, JSON.stringify(profile));
  console.log(`cpu profile: ${file}`);
}
