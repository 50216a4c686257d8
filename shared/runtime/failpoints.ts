/**
 * TEST-ONLY fault injection. `failpoint(name)` kills the current process
 * with SIGKILL (no cleanup, no flush: the same as a power cut or the OOM
 * killer) when the environment variable PAYMENT_FAILPOINTS, a comma list,
 * names it; otherwise it does nothing and costs one Set lookup.
 *
 * The crash tests (tests/faults/transfers-crash.test.ts) start a
 * transfer-sender process with e.g. PAYMENT_FAILPOINTS=before-broadcast,
 * let it die there, restart it without the variable, and check that every
 * recipient received exactly its amount. Never set it in production.
 *
 * Points in the transfer-sender:
 *   before-broadcast   signed transactions committed, none broadcast yet
 *   after-broadcast    broadcast, the `sent` state not yet committed
 *   after-sent-commit  `sent` committed, confirmation jobs not yet enqueued
 *
 * PAYMENT_FAILPOINTS is read straight from the environment on purpose: it
 * is not configuration but a test harness switch, and must not be settable
 * from a config file.
 */

let armed: ReadonlySet<string> | null = null;

function points(): ReadonlySet<string> {
  if (armed === null) {
    const raw = process.env.PAYMENT_FAILPOINTS ?? "";
    armed = new Set(raw.split(",").map((s) => s.trim()).filter(Boolean));
  }
  return armed;
}

/** SIGKILL this process if `name` is armed; a no-op otherwise. */
export function failpoint(name: string): void {
  if (!points().has(name)) return;
  process.stderr.write(`failpoint ${name}: killing process ${process.pid} with SIGKILL\n`);
  process.kill(process.pid, "SIGKILL");
  // The signal is delivered asynchronously by the kernel: block until it
  // lands so not one more line of the caller runs.
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 10_000);
}
