/**
 * `payment start --key …` still works (the old system's users pass the
 * communication key so), but says at start that argv is the wrong place for
 * it, and never prints the key itself.
 */
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import path from "node:path";
import { createTestEnv, type TestEnv } from "../helpers/env.ts";
import { writeConfigFile } from "../helpers/processes.ts";

const BIN = path.resolve(import.meta.dirname, "../../bin/payment.mjs");
let env: TestEnv;
before(async () => {
  env = await createTestEnv();
});
after(async () => env?.cleanup());

test("payment start --key warns that the key is in argv and points to PAYMENT_KEY / PAYMENT_KEY_FILE", async () => {
  const file = writeConfigFile(env.config);
  const { PAYMENT_KEY: _k, PAYMENT_KEY_FILE: _f, ...clean } = process.env;
  const child = spawn(process.execPath, [BIN, "start", "--config", file, "--role", "bridge", "--key", env.key], {
    env: { ...clean, PAYMENT__LOG__LEVEL: "info" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  child.stdout.on("data", (d) => (out += d));
  child.stderr.on("data", (d) => (out += d));
  const exited = new Promise<number | null>((r) => child.on("exit", (code) => r(code)));
  try {
    // the role started with the key from argv: the warning was logged before it
    await new Promise<void>((resolve, reject) => {
      const check = () => (out.includes("payment gateway running") ? resolve() : undefined);
      child.stdout.on("data", check);
      void exited.then(() => reject(new Error(`payment start exited: ${out}`)));
    });
    const warning = out.split("\n").find((l) => l.includes("--key puts the communication key"));
    assert.ok(warning, out);
    assert.match(warning, /PAYMENT_KEY or PAYMENT_KEY_FILE/);
    assert.equal(JSON.parse(warning).level, 40, "logged as a warning");
    assert.ok(!out.includes(env.key), "the key itself is never printed");
  } finally {
    child.kill("SIGTERM");
    await exited;
  }
});
