/**
 * The one place the sizes of business input are decided (SPEC §3 "Limits on
 * input"). Validation refuses anything larger, and every column that stores
 * or echoes such a value is at least this wide: tests/integration/
 * schema-drift.test.ts reads the migrated columns and fails if one is
 * narrower than the limit it stores. A refusal's audit row or answer can
 * therefore never fail on the database (`ER_DATA_TOO_LONG` once jammed the
 * whole intake: an oversize id was echoed into a 128-character column).
 */
export const LIMITS = {
  /** queue_id, order_id: printable ASCII (columns VARCHAR(128) utf8mb4_bin) */
  idChars: 128,
  /** `0x` + 40 hex digits */
  addressChars: 42,
  /** configured chain keys and asset symbols (columns VARCHAR(16)) */
  nameChars: 16,
  /** an amount as text (echoed in refusals; DECIMAL(65,18) holds 47 integer digits) */
  amountChars: 100,
  /** object/array nesting of a request; the deepest valid one (a pay batch) is 3 */
  depth: 8,
  /** `request.raw_body` is MEDIUMTEXT (16 MiB); `limits.max_message_bytes` may not exceed it */
  rawBodyBytes: 16 * 1024 * 1024 - 1,
  /** human-readable detail in answers, audit rows and `transfer.error_detail` */
  detailChars: 512,
} as const;

/**
 * A business id: 1-128 printable ASCII characters, no leading or trailing
 * space. ASCII because ids are compared byte for byte (utf8mb4_bin) and must
 * mean the same thing to every consumer; no edge spaces because MySQL's PAD
 * SPACE collations compare "a " equal to "a".
 */
export const ID_RE = /^[\x21-\x7e](?:[\x20-\x7e]{0,126}[\x21-\x7e])?$/;

/** An address as it must be sent: exactly 0x and 40 hex digits (any case). */
export const ADDRESS_RE = /^0x[0-9a-fA-F]{40}$/;

/** Chain keys and symbols: what the config can name (letters, digits, `_`, `-`, `.`). */
export const NAME_RE = /^[A-Za-z0-9_.-]{1,16}$/;

export const isId = (v: unknown): v is string => typeof v === "string" && ID_RE.test(v);
export const isAddress = (v: unknown): v is string => typeof v === "string" && ADDRESS_RE.test(v);
export const isName = (v: unknown): v is string => typeof v === "string" && NAME_RE.test(v);

/** `text` cut to `max` characters (for details built from input). */
export const clip = (text: string, max: number = LIMITS.detailChars): string => (text.length <= max ? text : `${text.slice(0, max - 1)}…`);
