/**
 * Per-address log files: one JSON-lines file per address, rotated before it
 * passes the size limit, rotated files gzipped, secrets redacted, nothing
 * lost across rotations.
 */
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { gunzipSync } from "node:zlib";
import { createAddressLog } from "../../shared/adapters/address-log.ts";

let root: string;
let dir: string;
const A = "0x" + "a1".repeat(20);
const B = "0x" + "b2".repeat(20);

before(() => {
  root = mkdtempSync(path.join(tmpdir(), "payment-address-log-"));
  dir = path.join(root, "logs"); // created by the log itself
});
after(() => rmSync(root, { recursive: true, force: true }));

/** Every line of an address: rotated .gz files in name order, then the live file. */
function allLines(address: string): Record<string, unknown>[] {
  const files = readdirSync(dir).filter((f) => f.startsWith(`${address}_`)).sort();
  const text = [...files.map((f) => gunzipSync(readFileSync(path.join(dir, f))).toString("utf8")), readFileSync(path.join(dir, `${address}.log`), "utf8")].join("");
  return text.split("\n").filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>);
}

test("one file per address, rotated at the size limit, rotated files gzipped, nothing lost", async () => {
  const errors: unknown[] = [];
  let clock = Date.UTC(2026, 0, 2, 12, 0, 0);
  const log = createAddressLog({ dir, maxBytes: 1024, onError: (e) => errors.push(e), now: () => new Date((clock += 1000)) });
  for (let i = 0; i < 60; i++) log.write(A.toUpperCase().replace("0X", "0x"), "WithdrawReq", { n: i, queue_id: `w-${i}`, amount: "100.5", privateKey: "0xdeadbeef" });
  log.write(B, "TopupReq", { queue_id: "t-1" });
  await log.close();
  assert.deepEqual(errors, []);

  const files = readdirSync(dir).sort();
  assert.ok(files.includes(`${A}.log`) && files.includes(`${B}.log`), files.join(","));
  const rotated = files.filter((f) => f.startsWith(`${A}_`));
  assert.ok(rotated.length >= 3, `rotations: ${files.join(",")}`);
  assert.ok(rotated.every((f) => /^0x[0-9a-f]{40}_\d{8}_\d{6}(_\d+)?\.log\.gz$/.test(f)), rotated.join(","));
  assert.ok(!files.some((f) => /_\d{6}(_\d+)?\.log$/.test(f)), "no uncompressed leftovers after close()");
  for (const f of [`${A}.log`, ...rotated]) {
    const size = f.endsWith(".gz") ? gunzipSync(readFileSync(path.join(dir, f))).length : statSync(path.join(dir, f)).size;
    assert.ok(size <= 1024, `${f} is ${size} bytes`);
  }

  const lines = allLines(A);
  assert.deepEqual(lines.map((l) => l.n), Array.from({ length: 60 }, (_, i) => i), "every event, in order");
  assert.equal(lines[0]!.event, "WithdrawReq");
  assert.equal(lines[0]!.address, A);
  assert.equal(lines[0]!.amount, "100.5");
  assert.equal(lines[0]!.privateKey, "[redacted]");
  assert.match(String(lines[0]!.time), /^2026-01-02T12:00:\d\d\.000Z$/);
  assert.deepEqual(allLines(B).map((l) => l.queue_id), ["t-1"]);
});

test("a non-address is refused through onError, never thrown; no dir means a no-op", async () => {
  const errors: unknown[] = [];
  const log = createAddressLog({ dir, maxBytes: 1024, onError: (e) => errors.push(e) });
  log.write("../../etc/passwd", "x");
  log.write("0x1234", "x");
  await log.close();
  assert.equal(errors.length, 2);
  assert.ok(!readdirSync(dir).some((f) => f.includes("passwd") || f.startsWith("0x1234")));

  const off = createAddressLog({ dir: undefined, maxBytes: 1024 });
  off.write(A, "x");
  await off.close();
});

test("an existing file is appended to and its size counts toward the limit", async () => {
  const log1 = createAddressLog({ dir, maxBytes: 400 });
  log1.write(B, "first", { pad: "x".repeat(150) });
  await log1.close();
  const before = readdirSync(dir).filter((f) => f.startsWith(`${B}_`)).length;
  const log2 = createAddressLog({ dir, maxBytes: 400 });
  log2.write(B, "second", { pad: "y".repeat(150) });
  await log2.close();
  const after = readdirSync(dir).filter((f) => f.startsWith(`${B}_`)).length;
  assert.equal(after, before + 1, "the second process rotated the file it found");
  assert.deepEqual(allLines(B).map((l) => l.event), ["TopupReq", "first", "second"]);
});
