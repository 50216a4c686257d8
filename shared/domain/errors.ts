/**
 * The gateway's error tree. Every failure that reaches a business system
 * carries one of the SPEC §3 codes; the top-level split says whether doing
 * the same thing again can help (retryable) or never will (permanent).
 *
 * Processors throw these; one place (shared/jobs/worker.ts) maps permanent
 * errors to BullMQ's UnrecoverableError so BullMQ does not retry them.
 */

/**
 * SPEC §3 `error` codes (status 0), in the order the SPEC lists them.
 * `bad_signature` and `duplicate` are not among them: they are reasons on
 * the dead-letter queue, never an answer (SPEC "One id, one outcome").
 */
export const ERROR_CODES = [
  "expired",
  "invalid_request",
  "invalid_amount",
  "unknown_chain",
  "unknown_symbol",
  "unknown_wallet",
  "insufficient_balance",
  "insufficient_gas",
  "reverted",
  "reorged",
  "dropped",
  "cancelled",
  "already_sent",
  "policy_rejected",
  "internal",
] as const;

export type ErrorCode = (typeof ERROR_CODES)[number];

/** The codes a request can be refused with at the door (answered once; the id is then taken). */
export type RefusalCode = Extract<ErrorCode, "expired" | "invalid_request" | "invalid_amount" | "unknown_chain" | "unknown_symbol" | "unknown_wallet" | "policy_rejected">;

export interface PaymentErrorOptions {
  cause?: unknown;
  /** human-readable detail, safe to show to the business system */
  detail?: string;
}

export abstract class PaymentError extends Error {
  abstract readonly retryable: boolean;
  readonly code: ErrorCode;
  readonly detail: string | undefined;

  constructor(code: ErrorCode, message: string, opts: PaymentErrorOptions = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.code = code;
    this.detail = opts.detail;
    this.name = new.target.name;
  }
}

/** Doing it again later may succeed (node unreachable, lock busy, DB restart). */
export class RetryableError extends PaymentError {
  readonly retryable = true;
  constructor(message: string, opts: PaymentErrorOptions & { code?: ErrorCode } = {}) {
    super(opts.code ?? "internal", message, opts);
  }
}

/** Doing it again will fail the same way; the subject ends with `code`. */
export class PermanentError extends PaymentError {
  readonly retryable = false;
  constructor(code: ErrorCode, message: string, opts: PaymentErrorOptions = {}) {
    super(code, message, opts);
  }
}

/** A request refused at the door (bad signature, bad field, duplicate...). */
export class RequestRejected extends PermanentError {}

/** Short, secret-free description of any thrown value, for logs and rows. */
export function describeError(e: unknown): string {
  if (e instanceof Error) {
    const code = (e as { code?: unknown }).code;
    return `${e.name}${typeof code === "string" ? `(${code})` : ""}: ${e.message}`.slice(0, 500);
  }
  return String(e).slice(0, 500);
}
