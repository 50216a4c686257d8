/**
 * Wallet keys at rest: AES-256-GCM (Node's crypto) under the master key.
 *
 * Row format (`wallet.encrypted_key`): base64(iv | ciphertext | tag) with a
 * fresh random 12-byte IV per encryption and the 16-byte GCM tag. The
 * additional authenticated data is the wallet's address, so a ciphertext
 * copied onto another row fails to decrypt instead of signing for the wrong
 * wallet. `wallet.key_id` is the first 16 hex characters of SHA-256(master
 * key): it says which master key a row needs, so rotation can tell rows it
 * must re-encrypt from rows it cannot read, without ever storing the key.
 *
 * A private key is decrypted only to sign, in the transfer-sender, and is
 * never logged, returned to a caller that prints, or put in a job payload.
 * (JavaScript strings cannot be wiped; keeping the decrypted key's lifetime
 * to one signing batch is the mitigation.)
 *
 * Failure modes: a wrong master key or a tampered row throws KeystoreError
 * (a permanent error: retrying cannot help); the message names the wallet,
 * never key material.
 */
import { createCipheriv, createDecipheriv, createHash, randomBytes } from "node:crypto";
import { SigningKey, computeAddress } from "ethers";
import type { Pool } from "mariadb";

const IV_BYTES = 12;
const TAG_BYTES = 16;
const PRIVATE_KEY_RE = /^(0x)?[0-9a-fA-F]{64}$/;

export class KeystoreError extends Error {
  override name = "KeystoreError";
}

/** Which master key encrypted a row: first 16 hex of its SHA-256. */
export function masterKeyId(masterKey: Buffer): string {
  assertMasterKey(masterKey);
  return createHash("sha256").update(masterKey).digest("hex").slice(0, 16);
}

function assertMasterKey(masterKey: Buffer): void {
  if (!Buffer.isBuffer(masterKey) || masterKey.length !== 32) throw new KeystoreError("the master key must be 32 bytes");
}

const aad = (address: string) => Buffer.from(`payment-wallet:${address.toLowerCase()}`, "utf8");

/** Normalise and check a private key's text; the error never echoes the input. */
export function normalisePrivateKey(text: string): string {
  const t = text.trim();
  if (!PRIVATE_KEY_RE.test(t)) throw new KeystoreError("a private key is 64 hex characters (32 bytes), optionally 0x-prefixed");
  const hex = `0x${t.replace(/^0x/, "").toLowerCase()}`;
  const n = BigInt(hex);
  // secp256k1 group order: keys must be in [1, n-1]
  if (n === 0n || n >= 0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141n) throw new KeystoreError("not a valid secp256k1 private key");
  return hex;
}

/** The lowercase address of a private key. */
export function addressOfKey(privateKey: string): string {
  return computeAddress(new SigningKey(normalisePrivateKey(privateKey)).publicKey).toLowerCase();
}

export interface EncryptedKey {
  encryptedKey: string;
  keyId: string;
}

/** Encrypt a private key for the wallet row of `address`. */
export function encryptPrivateKey(masterKey: Buffer, privateKey: string, address: string): EncryptedKey {
  assertMasterKey(masterKey);
  const plain = Buffer.from(normalisePrivateKey(privateKey).slice(2), "hex");
  const iv = randomBytes(IV_BYTES);
  const cipher = createCipheriv("aes-256-gcm", masterKey, iv, { authTagLength: TAG_BYTES });
  cipher.setAAD(aad(address));
  const body = Buffer.concat([cipher.update(plain), cipher.final()]);
  plain.fill(0);
  return { encryptedKey: Buffer.concat([iv, body, cipher.getAuthTag()]).toString("base64"), keyId: masterKeyId(masterKey) };
}

/**
 * Decrypt a wallet row's key (0x-hex). Checks the key id first (a clear
 * error for "encrypted under another master key"), then GCM authenticity,
 * then that the key really belongs to `address`.
 */
export function decryptPrivateKey(masterKey: Buffer, row: { address: string; encryptedKey: string; keyId: string }): string {
  const id = masterKeyId(masterKey);
  if (row.keyId !== id) throw new KeystoreError(`wallet ${row.address} is encrypted under master key ${row.keyId}, not the current one (${id})`);
  const raw = Buffer.from(row.encryptedKey, "base64");
  if (raw.length !== IV_BYTES + 32 + TAG_BYTES) throw new KeystoreError(`wallet ${row.address}: encrypted key has the wrong length`);
  const decipher = createDecipheriv("aes-256-gcm", masterKey, raw.subarray(0, IV_BYTES), { authTagLength: TAG_BYTES });
  decipher.setAAD(aad(row.address));
  decipher.setAuthTag(raw.subarray(raw.length - TAG_BYTES));
  let plain: Buffer;
  try {
    plain = Buffer.concat([decipher.update(raw.subarray(IV_BYTES, raw.length - TAG_BYTES)), decipher.final()]);
  } catch {
    throw new KeystoreError(`wallet ${row.address}: encrypted key failed authentication (wrong master key or tampered row)`);
  }
  const key = `0x${plain.toString("hex")}`;
  plain.fill(0);
  if (addressOfKey(key) !== row.address.toLowerCase()) throw new KeystoreError(`wallet ${row.address}: decrypted key belongs to another address`);
  return key;
}

/** Re-encrypt one row's key from `from` to `to` (rotation). */
export function reencrypt(from: Buffer, to: Buffer, row: { address: string; encryptedKey: string; keyId: string }): EncryptedKey {
  return encryptPrivateKey(to, decryptPrivateKey(from, row), row.address);
}

export interface Keystore {
  /**
   * A signing key for one of our wallets, for one signing batch. Throws
   * KeystoreError when the wallet is unknown or cannot be decrypted.
   *
   * @example
   * const key = await keystore.signingKey("ETH", "0xabc…");
   * tx.signature = key.sign(tx.unsignedHash);
   */
  signingKey(chain: string, address: string): Promise<SigningKey>;
  /** the wallet's kind, or null when it is not ours */
  walletKind(chain: string, address: string): Promise<string | null>;
}

export function createKeystore(deps: { pool: Pool; masterKey: Buffer }): Keystore {
  assertMasterKey(deps.masterKey);
  const masterKey = deps.masterKey;
  const load = async (chain: string, address: string) => {
    const rows = (await deps.pool.query("SELECT address, kind, encrypted_key, key_id FROM wallet WHERE chain = ? AND address = ?", [
      chain,
      address.toLowerCase(),
    ])) as { address: string; kind: string; encrypted_key: string; key_id: string }[];
    return rows[0] ?? null;
  };
  return {
    async signingKey(chain, address) {
      const row = await load(chain, address);
      if (!row) throw new KeystoreError(`no wallet ${address} on ${chain}`);
      return new SigningKey(decryptPrivateKey(masterKey, { address: row.address, encryptedKey: row.encrypted_key, keyId: row.key_id }));
    },
    async walletKind(chain, address) {
      return (await load(chain, address))?.kind ?? null;
    },
  };
}
