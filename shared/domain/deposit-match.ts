/**
 * Deciding what a scanned block (or a re-fetched receipt) means for the
 * deposit rows already stored: insert new deposits, follow re-mined ones to
 * their new block, or leave rows alone. Pure, so every case is unit tested.
 *
 * Why "follow" needs care: after a reorg the same transaction can be mined
 * again in another block. Its ERC-20 log indexes are block-wide, so they
 * usually change; the deposit identity (chain, tx hash, log index) would
 * then look new, and a naive insert would report the same money twice. So a
 * found transfer is first paired with a stored row of the same transaction
 * and the same content (class, symbol, from, to, amount):
 *   1. exact pairs: same block hash and log index (nothing changed);
 *   2. the rest, in log-index order within each content group, with stored
 *      rows that sit in ANOTHER block: the transaction moved, the row
 *      follows it (if still `seen`), or, if it was already final, the
 *      finding is a conflict for an operator, never a second deposit.
 * Unpaired found transfers are new deposits, unless their slot
 * (tx hash, log index) stays taken by a different row (a re-executed
 * transaction that now emits something else there): also a conflict.
 *
 * @example
 * planDeposits(found, stored) // { inserts, moves, unchanged, conflicts }
 */
import { classOf, type ChainTransfer } from "./chain-transfers.ts";

export type DepositState = "seen" | "confirmed" | "reorged";

export interface FoundDeposit extends ChainTransfer {
  blockNumber: number;
  blockHash: string;
}

export interface StoredDeposit {
  id: string;
  txHash: string;
  logIndex: number;
  symbol: string;
  from: string;
  to: string;
  units: bigint;
  blockNumber: number;
  blockHash: string;
  state: DepositState;
}

export interface DepositMove {
  id: string;
  /** where the row is now (the guard of the update) */
  fromBlockHash: string;
  fromLogIndex: number;
  to: FoundDeposit;
}

/** One guarded UPDATE of a row's log index (and, on the last step, block). */
export interface MoveStep {
  id: string;
  txHash: string;
  fromLogIndex: number;
  toLogIndex: number;
  /** false for a temporary parking step that breaks a cycle of swaps */
  final: boolean;
  move: DepositMove;
}

export interface Conflict {
  found: FoundDeposit;
  /** the stored row that makes the finding unusable, when there is one */
  storedId: string | null;
  reason: "final-elsewhere" | "slot-taken";
}

export interface DepositPlan {
  inserts: FoundDeposit[];
  moves: DepositMove[];
  /** moves in an order that never collides on (tx hash, log index) */
  steps: MoveStep[];
  unchanged: { found: FoundDeposit; stored: StoredDeposit }[];
  conflicts: Conflict[];
}

const contentKey = (t: { txHash: string; logIndex: number; symbol: string; from: string; to: string; units: bigint }) =>
  [t.txHash, classOf(t.logIndex), t.symbol, t.from, t.to, t.units.toString()].join("|");
const slotKey = (txHash: string, logIndex: number) => `${txHash}|${logIndex}`;

const byLogIndex = <T extends { logIndex: number }>(a: T, b: T) => a.logIndex - b.logIndex;

/**
 * `stored` must hold every row of the transactions in `found` (any state),
 * read under lock in the same transaction the plan is applied in.
 */
export function planDeposits(found: readonly FoundDeposit[], stored: readonly StoredDeposit[]): DepositPlan {
  const plan: DepositPlan = { inserts: [], moves: [], steps: [], unchanged: [], conflicts: [] };
  const storedByContent = new Map<string, StoredDeposit[]>();
  for (const s of stored) {
    const k = contentKey(s);
    storedByContent.set(k, [...(storedByContent.get(k) ?? []), s]);
  }
  const foundByContent = new Map<string, FoundDeposit[]>();
  for (const f of found) {
    const k = contentKey(f);
    foundByContent.set(k, [...(foundByContent.get(k) ?? []), f]);
  }

  const unpaired: FoundDeposit[] = [];
  for (const [k, group] of foundByContent) {
    const candidates = [...(storedByContent.get(k) ?? [])].sort(byLogIndex);
    const taken = new Set<StoredDeposit>();
    const rest: FoundDeposit[] = [];
    // 1. exact pairs
    for (const f of [...group].sort(byLogIndex)) {
      const s = candidates.find((c) => !taken.has(c) && c.blockHash === f.blockHash && c.logIndex === f.logIndex);
      if (s) {
        taken.add(s);
        plan.unchanged.push({ found: f, stored: s });
      } else rest.push(f);
    }
    // 2. in order, with rows left behind in another block
    // (one transaction is in one block, so `rest` shares a block hash)
    const elsewhere = candidates.filter((c) => !taken.has(c) && c.blockHash !== rest[0]?.blockHash);
    for (const f of rest) {
      const s = elsewhere.shift();
      if (!s) {
        unpaired.push(f);
      } else if (s.state === "seen") {
        plan.moves.push({ id: s.id, fromBlockHash: s.blockHash, fromLogIndex: s.logIndex, to: f });
      } else {
        plan.conflicts.push({ found: f, storedId: s.id, reason: "final-elsewhere" });
      }
    }
  }

  // A move onto a slot held by a row that stays put cannot happen (the
  // re-executed transaction emits something else there): the row stays and
  // the finding is a conflict. Repeat, since a row kept in place may in turn
  // block another move.
  for (let changed = true; changed; ) {
    changed = false;
    const moving = new Set(plan.moves.map((m) => m.id));
    const staying = new Map<string, string>();
    for (const s of stored) if (!moving.has(s.id)) staying.set(slotKey(s.txHash, s.logIndex), s.id);
    for (const m of [...plan.moves]) {
      const holder = staying.get(slotKey(m.to.txHash, m.to.logIndex));
      if (holder !== undefined && holder !== m.id) {
        plan.moves.splice(plan.moves.indexOf(m), 1);
        plan.conflicts.push({ found: m.to, storedId: holder, reason: "slot-taken" });
        changed = true;
      }
    }
  }

  // Slots after the moves; an insert into a slot still held is a conflict.
  const occupied = new Map<string, string>();
  for (const s of stored) occupied.set(slotKey(s.txHash, s.logIndex), s.id);
  for (const m of plan.moves) occupied.delete(slotKey(m.to.txHash, m.fromLogIndex));
  for (const m of plan.moves) occupied.set(slotKey(m.to.txHash, m.to.logIndex), m.id);
  for (const f of unpaired.sort(byLogIndex)) {
    const holder = occupied.get(slotKey(f.txHash, f.logIndex));
    if (holder !== undefined) {
      plan.conflicts.push({ found: f, storedId: holder, reason: "slot-taken" });
    } else {
      occupied.set(slotKey(f.txHash, f.logIndex), "new");
      plan.inserts.push(f);
    }
  }
  plan.steps = orderMoves(plan.moves, stored);
  return plan;
}

/** Parking slots for cycle breaking: far below any real internal index. */
const PARK_BASE = -1_000_000;

/**
 * Order the moves so each UPDATE targets a free (tx hash, log index) slot
 * (the unique key would reject it otherwise). A transaction re-mined whole
 * shifts all its logs by one offset, so a simple order always exists; a
 * cycle (two rows swapping slots) is broken by parking one row first.
 */
export function orderMoves(moves: readonly DepositMove[], stored: readonly { txHash: string; logIndex: number }[]): MoveStep[] {
  const occupied = new Set(stored.map((s) => slotKey(s.txHash, s.logIndex)));
  const pending = moves.map((m) => ({ move: m, at: m.fromLogIndex }));
  const movingFrom = new Set(moves.map((m) => slotKey(m.to.txHash, m.fromLogIndex)));
  for (const m of moves) {
    const target = slotKey(m.to.txHash, m.to.logIndex);
    if (occupied.has(target) && !movingFrom.has(target)) throw new Error(`move of deposit ${m.id} targets a slot held by a row that does not move`);
  }
  const steps: MoveStep[] = [];
  let parked = 0;
  while (pending.length > 0) {
    const i = pending.findIndex((p) => p.at === p.move.to.logIndex || !occupied.has(slotKey(p.move.to.txHash, p.move.to.logIndex)));
    if (i >= 0) {
      const p = pending.splice(i, 1)[0]!;
      occupied.delete(slotKey(p.move.to.txHash, p.at));
      occupied.add(slotKey(p.move.to.txHash, p.move.to.logIndex));
      steps.push({ id: p.move.id, txHash: p.move.to.txHash, fromLogIndex: p.at, toLogIndex: p.move.to.logIndex, final: true, move: p.move });
      continue;
    }
    const p = pending[0]!;
    let park = PARK_BASE - parked++;
    while (occupied.has(slotKey(p.move.to.txHash, park))) park = PARK_BASE - parked++;
    occupied.delete(slotKey(p.move.to.txHash, p.at));
    occupied.add(slotKey(p.move.to.txHash, park));
    steps.push({ id: p.move.id, txHash: p.move.to.txHash, fromLogIndex: p.at, toLogIndex: park, final: false, move: p.move });
    p.at = park;
  }
  return steps;
}
