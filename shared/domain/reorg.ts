/**
 * Cursor and reorg bookkeeping for chain-watch. Pure: block references come
 * in, decisions come out.
 *
 * The cursor is the last block scanned and committed (number + hash). The
 * next block must have the cursor's hash as its parent; when it does not,
 * the chain reorganised: the common ancestor is the highest block where our
 * recent stored blocks (table chain_block) and the node agree, the cursor
 * rewinds to it and everything above is scanned again.
 */

export interface BlockRef {
  number: number;
  hash: string;
}

/**
 * The cursor a fresh chain starts from: the block just below the first one
 * to scan. "latest" scans from the current head on; a number scans from that
 * block on (block 0, the genesis, has no transactions and is not scanned).
 * Returns null while the chain has not reached the block below the start.
 */
export function initialCursorNumber(startBlock: "latest" | number, head: number): number | null {
  const first = startBlock === "latest" ? head : startBlock;
  const cursor = Math.max(first - 1, 0);
  return cursor > head ? null : cursor;
}

export type HeadAction =
  /** nothing new */
  | { kind: "idle" }
  /** blocks cursor+1..to are new; parent-hash continuity is checked per block */
  | { kind: "catch-up"; from: number; to: number }
  /** same height, different hash: the cursor's block was replaced */
  | { kind: "reorg" }
  /** the node is below our cursor: a lagging node, or a reorg to a shorter chain */
  | { kind: "behind" };

export function headAction(cursor: BlockRef, head: BlockRef): HeadAction {
  if (head.number > cursor.number) return { kind: "catch-up", from: cursor.number + 1, to: head.number };
  if (head.number === cursor.number) return head.hash === cursor.hash ? { kind: "idle" } : { kind: "reorg" };
  return { kind: "behind" };
}

/** True when `block` extends `prev` directly. */
export function extendsChain(prev: BlockRef, block: { number: number; parentHash: string }): boolean {
  return block.number === prev.number + 1 && block.parentHash === prev.hash;
}

/**
 * The highest stored block the node still has (same number, same hash), or
 * null when none of `stored` is canonical. `canonical` maps a number to the
 * node's hash there (null: the node has no such block).
 */
export function commonAncestor(stored: readonly BlockRef[], canonical: ReadonlyMap<number, string | null>): number | null {
  const desc = [...stored].sort((a, b) => b.number - a.number);
  for (const b of desc) {
    if (canonical.get(b.number) === b.hash) return b.number;
  }
  return null;
}

/**
 * How many recent canonical blocks to keep for finding ancestors: at least
 * twice the confirmation depth (a deeper reorg would undo final deposits
 * anyway) plus the lookback window, and never fewer than 64.
 */
export function blockWindow(confirmHeight: number, lookbackBlocks: number): number {
  return Math.max(64, confirmHeight * 2 + lookbackBlocks);
}

/** Blocks re-fetched by the periodic lookback: the last `lookback` up to the cursor. */
export function lookbackRange(cursor: number, lookback: number): { from: number; to: number } | null {
  if (lookback <= 0) return null;
  return { from: Math.max(cursor - lookback + 1, 1), to: cursor };
}
