/**
 * Run the `payment` command as an operator does (`node bin/payment.mjs ...`)
 * and collect what it printed and its exit code.
 */
import { spawn } from "node:child_process";
import path from "node:path";

export const PAYMENT_BIN = path.resolve(import.meta.dirname, "../../bin/payment.mjs");

export interface PaymentRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** An operator's shell: this process's environment without any of its PAYMENT_* settings, plus `extra`. */
export function operatorShell(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const base = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("PAYMENT_")));
  return { ...base, ...extra };
}

export function runPayment(args: string[], opts: { env?: NodeJS.ProcessEnv; stdin?: string } = {}): Promise<PaymentRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [PAYMENT_BIN, ...args], { env: opts.env ?? operatorShell(), stdio: ["pipe", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(opts.stdin ?? "");
  });
}
