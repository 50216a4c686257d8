/**
 * The test-only failpoint hook: a no-op unless armed by PAYMENT_FAILPOINTS,
 * and a real SIGKILL (no exit handlers, nothing after it runs) when armed.
 */
import { it } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import path from "node:path";

const mod = path.resolve(import.meta.dirname, "../../shared/runtime/failpoints.ts");
const script = `import { failpoint } from ${JSON.stringify(mod)};
process.on("exit", () => console.log("exit-handler"));
failpoint("other"); console.log("passed-other");
failpoint("before-broadcast"); console.log("passed-armed");`;

it("does nothing when not armed and SIGKILLs when armed", () => {
  const run = (env: Record<string, string>) =>
    spawnSync(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script], { env: { ...process.env, ...env }, encoding: "utf8", timeout: 30_000 });
  const off = run({ PAYMENT_FAILPOINTS: "" });
  assert.equal(off.status, 0);
  assert.match(off.stdout, /passed-other[\s\S]*passed-armed/);
  const on = run({ PAYMENT_FAILPOINTS: "after-broadcast, before-broadcast" });
  assert.equal(on.signal, "SIGKILL");
  assert.match(on.stdout, /passed-other/);
  assert.doesNotMatch(on.stdout, /passed-armed|exit-handler/);
});
