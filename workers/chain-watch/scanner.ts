/**
 * One chain's scan loop body, run by the lease holder: read the head, scan
 * every block from the cursor up to it (fetched in parallel, committed
 * strictly in order), notice reorgs by parent-hash continuity and rewind to
 * the common ancestor, and now and then re-fetch the last few blocks' logs
 * (nodes do return incomplete logs near the head).
 *
 * Nothing between the cursor and the head is ever skipped: the cursor only
 * moves in the same MySQL transaction that stores the deposits of the
 * blocks it moves over (one, or a run of already-prepared consecutive blocks
 * while catching up), each block the child of the one before, the first the
 * child of the cursor.
 */
import type { ChainConfig } from "../../shared/config/schema.ts";
import type { Logger } from "../../shared/logger.ts";
import type { Metrics } from "../../shared/metrics.ts";
import type { Queues } from "../../shared/jobs/registry.ts";
import { describeError } from "../../shared/domain/errors.ts";
import { recipients, type ChainTransfer } from "../../shared/domain/chain-transfers.ts";
import { assetOf } from "../../shared/domain/assets.ts";
import { formatUnits } from "../../shared/domain/amount.ts";
import { blockWindow, commonAncestor, extendsChain, headAction, initialCursorNumber, lookbackRange, type BlockRef } from "../../shared/domain/reorg.ts";
import type { BlockSource, RawBlock } from "./block-source.ts";
import { CursorMovedError, type BlockStore, type DepositWrite, type MatchedDeposit, type ScannedBlock } from "./block-store.ts";
import { enqueueConfirmations, recheckNow, recheckTransfersNow } from "./confirm-jobs.ts";

export interface ChainScannerDeps {
  chain: ChainConfig & { key: string };
  source: BlockSource;
  store: BlockStore;
  queues: Queues;
  logger: Logger;
  metrics: Metrics;
  /** tell the outbox publisher new notifications are waiting */
  wakeOutbox: () => Promise<void>;
  now?: () => number;
}

/** canonical hashes asked per round trip while looking for an ancestor */
const ANCESTOR_PAGE = 32;
/** blocks whose due confirmations are woken at most per head (after a long pause, timers do the rest) */
const MAX_PROMOTE_BLOCKS = 64;
/**
 * While catching up, prepared blocks committed in one transaction, at most
 * (fewer transactions for runs of small blocks; a block with many deposits
 * commits alone: bundling those gained little and raised the memory peak).
 */
const MAX_BLOCKS_PER_COMMIT = 8;
const MAX_DEPOSITS_PER_COMMIT = 500;

export function createChainScanner(deps: ChainScannerDeps) {
  const { chain, source, store, logger } = deps;
  const now = deps.now ?? Date.now;
  const window = blockWindow(chain.confirm_height, chain.lookback_blocks);
  let cursor: BlockRef | null = null;
  let lastLookbackMs = now();
  /** deposits of blocks up to this number have had their confirmation promoted */
  let promotedThrough: number | null = null;

  async function ensureCursor(): Promise<BlockRef | null> {
    if (cursor) return cursor;
    cursor = await store.readCursor();
    if (cursor) return cursor;
    const head = await source.latest();
    const at = initialCursorNumber(chain.start_block, head.number);
    if (at === null) {
      logger.info({ start_block: chain.start_block, head: head.number }, "chain-watch: waiting for the chain to reach start_block");
      return null;
    }
    const header = await source.header(at);
    if (!header) return null;
    cursor = await store.initCursor(header, header.parentHash);
    logger.info({ cursor }, "chain-watch: fresh cursor placed");
    return cursor;
  }

  /**
   * Keep the block's transfers to watched (symbol, address) pairs, dropping
   * reverted native ones and the gateway's own gas top-ups: ETH the
   * collection wallet sent a deposit wallet to pay for its sweep is not the
   * business's customer's deposit, even when that address is watched for ETH.
   * (The top-up's transaction is stored before it is broadcast, so it is
   * known by the time its block is scanned.)
   */
  async function match(raw: RawBlock): Promise<ScannedBlock> {
    const watched = raw.transfers.length === 0 ? new Map<string, string | null>() : await store.watchedAmong(recipients(raw.transfers));
    const hits = raw.transfers.filter((t) => watched.has(`${t.symbol}|${t.to}`));
    const native = [...new Set(hits.filter((t) => t.logIndex === -1).map((t) => t.txHash))];
    const [succeeded, ownTopups] =
      native.length > 0 ? await Promise.all([source.successfulTxs(native, raw.hash), store.ownGasTopups(native)]) : [new Set<string>(), new Set<string>()];
    for (const tx of ownTopups) logger.debug({ tx, block: raw.number }, "chain-watch: our own gas top-up to a watched address, not a deposit");
    const deposits: MatchedDeposit[] = hits
      .filter((t) => t.logIndex !== -1 || (succeeded.has(t.txHash) && !ownTopups.has(t.txHash)))
      .map((t: ChainTransfer) => ({ ...t, blockNumber: raw.number, blockHash: raw.hash, queueId: watched.get(`${t.symbol}|${t.to}`) ?? null, tx: raw.txs.get(t.txHash) ?? null }));
    return { number: raw.number, hash: raw.hash, parentHash: raw.parentHash, deposits };
  }

  async function prepare(n: number): Promise<ScannedBlock | null> {
    const raw = await source.scan(n);
    if (!raw) return null;
    await wakeSentTransfers(raw);
    return match(raw);
  }

  /**
   * Our own transfers' transactions in this block: their confirmation looks
   * now instead of on its timer (block_time_ms may be far above the chain's
   * real block time). Best effort: the timers stay as the fallback, and an
   * early look at a block that is then reorged away is harmless.
   */
  async function wakeSentTransfers(raw: RawBlock): Promise<void> {
    try {
      const ours = await store.sentTransfersAmong([...raw.txs.keys()]);
      if (ours.length > 0) await recheckTransfersNow(deps.queues, ours);
    } catch (e) {
      logger.warn({ err: describeError(e), block: raw.number }, "chain-watch: could not wake the confirmation of our transfers; their timers will");
    }
  }

  async function afterWrite(written: DepositWrite, head: number): Promise<void> {
    for (const { id, deposit: d } of written.inserted) {
      deps.metrics.deposits.inc({ chain: chain.key, symbol: d.symbol, status: "2" });
      logger.info({ deposit: id, symbol: d.symbol, to: d.to, tx: d.txHash, log_index: d.logIndex, block: d.blockNumber }, "chain-watch: deposit seen");
    }
    for (const { id, deposit: d } of written.moved) {
      logger.info({ deposit: id, tx: d.txHash, block: d.blockNumber, log_index: d.logIndex }, "chain-watch: deposit followed its transaction to a new block");
    }
    for (const c of written.conflicts) {
      logger.error(
        { reason: c.reason, deposit: c.storedId, tx: c.found.txHash, log_index: c.found.logIndex, block: c.found.blockNumber },
        "chain-watch: transfer found again after its deposit was final (or its slot is taken); not reported twice, needs an operator",
      );
    }
    if (written.inserted.length > 0) {
      // The status-2 notifications are committed: publish them before spending time on the jobs.
      await deps.wakeOutbox();
      await enqueueConfirmations(
        deps.queues,
        written.inserted.map(({ id, deposit: d }) => ({ id, symbol: d.symbol, to: d.to, txHash: d.txHash, blockNumber: d.blockNumber, payment: depositPayment(chain, d) })),
        head,
        chain.confirm_height,
        chain.block_time_ms,
      );
    }
    if (written.moved.length > 0) {
      await recheckNow(deps.queues, written.moved.map(({ id, deposit: d }) => ({ id, symbol: d.symbol, to: d.to, txHash: d.txHash })));
    }
  }

  /** The chain left our cursor's branch: rewind to the common ancestor. */
  async function handleReorg(from: BlockRef): Promise<void> {
    const stored = await store.recentBlocks(from.number, window);
    let ancestor: (BlockRef & { parentHash?: string }) | null = null;
    for (let i = 0; i < stored.length && !ancestor; i += ANCESTOR_PAGE) {
      const page = stored.slice(i, i + ANCESTOR_PAGE);
      const canonical = await source.canonicalHashes(page.map((b) => b.number));
      const n = commonAncestor(page, canonical);
      if (n !== null) ancestor = { number: n, hash: canonical.get(n)! };
    }
    if (!ancestor) {
      // Deeper than the window: restart below it; deposits above are re-checked and re-found.
      const base = Math.max((stored.at(-1)?.number ?? from.number) - 1, 0);
      const header = await source.header(base);
      if (!header) throw new Error(`node has no block ${base} to rewind to`);
      ancestor = header;
      logger.error({ from: from.number, to: base, window }, "chain-watch: reorg deeper than the stored block window; rescanning from below it");
    }
    if (ancestor.number === from.number) return; // our cursor is canonical after all (the node moved again)
    const doubted = await store.rewind(from, ancestor);
    cursor = { number: ancestor.number, hash: ancestor.hash };
    logger.warn({ from: from.number, ancestor: ancestor.number, depth: from.number - ancestor.number, recheck: doubted.length }, "chain-watch: reorg; rewound to the common ancestor");
    await recheckNow(deps.queues, doubted);
  }

  /**
   * A new head makes the deposits and transfers of block head -
   * confirm_height due. Their confirmation jobs sleep on a timer computed
   * from block_time_ms; wake one deposit job per such block now (the
   * confirmation worker finalises a due block's deposits together) and
   * every due transfer's, so finals follow the confirming block at once
   * however the real block time differs from the configured one. The timers
   * stay as the fallback. Best effort: a failure here only costs latency.
   */
  async function promoteDue(head: number): Promise<void> {
    const due = head - chain.confirm_height;
    if (promotedThrough === null) promotedThrough = due - 1;
    if (due <= promotedThrough) return;
    const after = Math.max(promotedThrough, due - MAX_PROMOTE_BLOCKS);
    try {
      const [first, transfers] = await Promise.all([store.firstSeenOfBlocks(after, due), store.minedTransfersOfBlocks(after, due)]);
      if (first.length > 0) await recheckNow(deps.queues, first);
      if (transfers.length > 0) await recheckTransfersNow(deps.queues, transfers);
      if (first.length + transfers.length > 0) logger.debug({ head, due, deposits: first.map((d) => d.id), transfers: transfers.map((t) => t.transferId) }, "chain-watch: woke the confirmation of newly due blocks");
      promotedThrough = due;
    } catch (e) {
      logger.warn({ err: describeError(e) }, "chain-watch: could not wake due confirmations; their timers will");
    }
  }

  /**
   * Scan from..to in order, prefetching up to catchup_concurrency blocks.
   * A committed block's follow-up (waking the outbox, enqueueing its
   * confirmation jobs in Redis) runs while the next block commits in MySQL;
   * follow-ups stay in block order and all have finished, or thrown, when
   * this returns. (A follow-up that fails leaves committed deposits without
   * jobs either way; the reconciler rebuilds those from MySQL.)
   */
  async function catchUp(to: number, head: number, shouldStop: () => boolean): Promise<void> {
    let followUps: Promise<void> = Promise.resolve();
    let pending = 0;
    let failed: unknown = null;
    let outcome: "reorg" | undefined;
    try {
      outcome = await scanRange(
        to,
        head,
        shouldStop,
        async (written) => {
          pending++;
          followUps = followUps.then(() => afterWrite(written, head)).finally(() => pending--);
          followUps.catch((e: unknown) => (failed ??= e));
          // at most one block's follow-up behind the commits: Redis slower than MySQL must not pile up blocks in memory
          if (pending > 1) await followUps.catch(() => undefined);
        },
        () => failed,
      );
    } finally {
      await followUps.catch(() => undefined);
    }
    if (failed) throw failed;
    // after the follow-ups, so the re-check finds every job of the rewound blocks
    if (outcome === "reorg") await handleReorg(cursor!);
  }

  async function scanRange(
    to: number,
    head: number,
    shouldStop: () => boolean,
    followUp: (w: DepositWrite) => Promise<void>,
    failed: () => unknown,
  ): Promise<"reorg" | undefined> {
    const inflight = new Map<number, Promise<ScannedBlock | null>>();
    /** prepared blocks already resolved, so several can commit together */
    const ready = new Map<number, ScannedBlock | null>();
    let next = cursor!.number + 1;
    const fill = () => {
      while (next <= to && inflight.size < chain.catchup_concurrency) {
        const n = next++;
        const p = prepare(n);
        p.then((b) => ready.set(n, b)).catch(() => undefined); // awaited below; a rejection left behind must not go unhandled
        inflight.set(n, p);
      }
    };
    while (cursor!.number < to && !shouldStop() && !failed()) {
      fill();
      const n = cursor!.number + 1;
      const pending = inflight.get(n);
      if (!pending) return;
      const block = await pending;
      if (!block) return; // the node does not serve it (yet); next tick
      if (!extendsChain(cursor!, block)) return "reorg";
      // catching up: blocks already prepared behind this one commit with it
      const blocks = [block];
      let deposits = block.deposits.length;
      for (let m = n + 1; blocks.length < MAX_BLOCKS_PER_COMMIT && ready.get(m); m++) {
        const b = ready.get(m)!;
        if (deposits + b.deposits.length > MAX_DEPOSITS_PER_COMMIT) break;
        if (!extendsChain(blocks.at(-1)!, b)) break; // a reorg: the next turn handles it
        blocks.push(b);
        deposits += b.deposits.length;
      }
      for (const b of blocks) {
        inflight.delete(b.number);
        ready.delete(b.number);
      }
      const t0 = now();
      const written = await store.commitBlocks(cursor!, blocks, head);
      const last = blocks.at(-1)!;
      logger.debug({ from: block.number, to: last.number, deposits, ms: now() - t0 }, "chain-watch: blocks committed");
      cursor = { number: last.number, hash: last.hash };
      deps.metrics.chainLag.set({ chain: chain.key }, Math.max(head - cursor.number, 0));
      await followUp(written);
    }
  }

  async function lookback(head: number): Promise<void> {
    lastLookbackMs = now();
    const range = lookbackRange(cursor!.number, chain.lookback_blocks);
    if (!range) return;
    const at = cursor!;
    const blocks = (await store.recentBlocks(range.to, range.to - range.from + 1)).filter((b) => b.number >= range.from);
    const scanned: { ref: BlockRef; deposits: MatchedDeposit[] }[] = [];
    for (let i = 0; i < blocks.length; i += chain.catchup_concurrency) {
      const page = blocks.slice(i, i + chain.catchup_concurrency);
      const results = await Promise.all(
        page.map(async (ref) => {
          const found = await source.tokenTransfersOf(ref.hash);
          if (!found) return null;
          const m = await match({ number: ref.number, hash: ref.hash, parentHash: "", ...found });
          return { ref, deposits: m.deposits };
        }),
      );
      for (const r of results) if (r && r.deposits.length > 0) scanned.push(r);
    }
    if (scanned.length === 0) return;
    const written = await store.commitLookback(at, scanned, head);
    if (written.inserted.length > 0) logger.warn({ found: written.inserted.length }, "chain-watch: lookback found deposits the first scan missed");
    await afterWrite(written, head);
  }

  return {
    /** One pass. Throws on node/database trouble; the caller backs off and calls again. */
    async tick(shouldStop: () => boolean): Promise<void> {
      const at = await ensureCursor();
      if (!at) return;
      const head = await source.latest();
      deps.metrics.chainHead.set({ chain: chain.key }, head.number);
      deps.metrics.chainLag.set({ chain: chain.key }, Math.max(head.number - at.number, 0));
      await promoteDue(head.number);
      const action = headAction(at, head);
      if (action.kind === "catch-up") await catchUp(action.to, head.number, shouldStop);
      else if (action.kind === "reorg") await handleReorg(at);
      else if (action.kind === "behind") {
        const mine = (await store.recentBlocks(head.number, 1))[0];
        if (mine && mine.number === head.number && mine.hash !== head.hash) await handleReorg(at);
        else logger.warn({ head: head.number, cursor: at.number }, "chain-watch: node is behind our cursor; waiting");
      }
      if (!shouldStop() && cursor && now() - lastLookbackMs >= chain.rescan_interval_ms) {
        try {
          await lookback(head.number);
        } catch (e) {
          if (e instanceof CursorMovedError) cursor = null;
          logger.warn({ err: describeError(e) }, "chain-watch: lookback failed; will try again");
        }
      }
    },
    /** Forget the cached cursor (another scanner moved it). */
    reset() {
      cursor = null;
    },
    get cursor() {
      return cursor;
    },
  };
}

export type ChainScanner = ReturnType<typeof createChainScanner>;

/** A new deposit as the operator reads it in its confirmation job's data (display only). */
function depositPayment(chain: ChainConfig & { key: string }, d: { symbol: string; units: bigint; from: string; to: string; txHash: string; blockNumber: number }): Record<string, string> {
  const decimals = assetOf(chain, d.symbol)?.decimals;
  return {
    kind: "deposit",
    chain: chain.key,
    asset: d.symbol,
    amount: decimals === undefined ? `${d.units} base units` : formatUnits(d.units, decimals),
    from: d.from,
    to: d.to,
    tx_hash: d.txHash,
    block: String(d.blockNumber),
  };
}
