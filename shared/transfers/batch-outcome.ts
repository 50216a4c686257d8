/**
 * The outcome of ONE transfer carried by a batch transaction: a payout in
 * BatchExecutor.pay (the hot wallet's transaction to itself; bit
 * `batch_index` of the Batch event the wallet emits) or a deposit wallet in
 * DepositSweeper.sweep (the collection wallet's transaction to the sweeper;
 * bit `batch_index` of the Sweep event the sweeper emits). The transaction's
 * receipt says success for the whole call only.
 *
 * Positive evidence only: the item counts as paid when the transaction
 * succeeded AND our code ran in the wallet (the event is there, from the
 * wallet's address, for exactly the batch's item count) AND its bit is set.
 * A reverted transaction paid nothing; a mined one without the event paid
 * nothing either (the wallet did not delegate to our executor when it ran:
 * a self-call to a plain EOA "succeeds" and does nothing).
 */
import { Transaction } from "ethers";
import { payOutcome, sweepOutcome } from "../adapters/delegation-calls.ts";
import type { Receipt } from "./chain-reads.ts";

export interface BatchItem {
  index: number;
  size: number;
}

/** The batch item of an attempt row, or null for a transaction of its own. */
export function batchItemOf(a: { batch_index: number | null; batch_size: number | null }): BatchItem | null {
  return a.batch_index !== null && a.batch_size !== null ? { index: a.batch_index, size: a.batch_size } : null;
}

/** 1 when this item was paid or swept, else 0 (the receipt's status for a transaction of its own). */
export function itemStatus(receipt: Receipt, attempt: { from_address: string; raw_tx: string }, item: BatchItem | null): number {
  if (!item) return receipt.status;
  const from = attempt.from_address.toLowerCase();
  // which contract: a wallet's call to itself is a payout batch; a call to another address, the sweeper
  const to = (Transaction.from(attempt.raw_tx).to ?? "").toLowerCase();
  const o = to === from ? payOutcome(receipt, from, item.size) : sweepOutcome(receipt, to, item.size);
  return o.kind === "executed" && o.done[item.index] === true ? 1 : 0;
}
