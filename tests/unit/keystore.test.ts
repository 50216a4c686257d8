/**
 * Keys at rest: AES-256-GCM round trip, fresh IV per encryption, the key id,
 * and refusals (wrong master key, tampered row, row moved to another
 * address) that never echo key material.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { randomBytes, createHash } from "node:crypto";
import fc from "fast-check";
import { encryptPrivateKey, decryptPrivateKey, masterKeyId, addressOfKey, reencrypt, KeystoreError, normalisePrivateKey } from "../../shared/adapters/keystore.ts";
import { ANVIL_KEYS } from "../../shared/devchain/anvil.ts";

const master = randomBytes(32);
const KEY = ANVIL_KEYS[3]!;
const ADDR = addressOfKey(KEY);

describe("keystore", () => {
  it("round-trips, with base64(iv|ciphertext|tag) and the key id of the master key", () => {
    const e = encryptPrivateKey(master, KEY, ADDR);
    assert.equal(Buffer.from(e.encryptedKey, "base64").length, 12 + 32 + 16);
    assert.equal(e.keyId, createHash("sha256").update(master).digest("hex").slice(0, 16));
    assert.equal(e.keyId, masterKeyId(master));
    assert.equal(decryptPrivateKey(master, { address: ADDR, ...e }), KEY);
    assert.ok(!e.encryptedKey.includes(KEY.slice(2, 20)));
  });
  it("uses a fresh IV each time", () => {
    const a = encryptPrivateKey(master, KEY, ADDR);
    const b = encryptPrivateKey(master, KEY, ADDR);
    assert.notEqual(a.encryptedKey, b.encryptedKey);
    assert.notDeepEqual(Buffer.from(a.encryptedKey, "base64").subarray(0, 12), Buffer.from(b.encryptedKey, "base64").subarray(0, 12));
  });
  it("refuses another master key, a tampered row and a row moved to another address, without echoing secrets", () => {
    const e = encryptPrivateKey(master, KEY, ADDR);
    const other = randomBytes(32);
    const check = (fn: () => unknown) =>
      assert.throws(fn, (err: unknown) => err instanceof KeystoreError && !err.message.includes(KEY.slice(2)) && !err.message.includes(master.toString("hex")));
    check(() => decryptPrivateKey(other, { address: ADDR, ...e }));
    check(() => decryptPrivateKey(other, { address: ADDR, encryptedKey: e.encryptedKey, keyId: masterKeyId(other) }));
    const raw = Buffer.from(e.encryptedKey, "base64");
    raw[20]! ^= 1;
    check(() => decryptPrivateKey(master, { address: ADDR, encryptedKey: raw.toString("base64"), keyId: e.keyId }));
    check(() => decryptPrivateKey(master, { address: "0x" + "12".repeat(20), ...e }));
  });
  it("re-encrypts to a new master key that alone can read it", () => {
    const e = encryptPrivateKey(master, KEY, ADDR);
    const next = randomBytes(32);
    const r = reencrypt(master, next, { address: ADDR, ...e });
    assert.equal(r.keyId, masterKeyId(next));
    assert.equal(decryptPrivateKey(next, { address: ADDR, ...r }), KEY);
    assert.throws(() => decryptPrivateKey(master, { address: ADDR, ...r }), KeystoreError);
  });
  it("validates private keys without echoing them", () => {
    assert.equal(normalisePrivateKey(KEY.slice(2).toUpperCase()), KEY);
    for (const bad of ["", "0x1234", "zz".repeat(32), "0x" + "00".repeat(32), "f".repeat(64)]) {
      assert.throws(() => normalisePrivateKey(bad), (e: unknown) => e instanceof KeystoreError && (bad.length < 8 || !(e as Error).message.includes(bad)));
    }
  });
  it("property: any valid key round-trips under any master key", () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 32, maxLength: 32 }), fc.uint8Array({ minLength: 32, maxLength: 32 }), (k, m) => {
        const hex = Buffer.from(k).toString("hex");
        let key: string;
        try {
          key = normalisePrivateKey(hex);
        } catch {
          return; // zero or above the group order
        }
        const mk = Buffer.from(m);
        const addr = addressOfKey(key);
        assert.equal(decryptPrivateKey(mk, { address: addr, ...encryptPrivateKey(mk, key, addr) }), key);
      }),
      { numRuns: 50 },
    );
  });
});
