/**
 * What chain-watch asks the node, in raw JSON-RPC over the HTTP provider
 * (calls made in the same tick go out as one batch):
 * - a block with its transactions (`eth_getBlockByNumber(n, true)`),
 * - its token Transfer logs BY BLOCK HASH (EIP-234), so the logs belong to
 *   exactly that header even if the chain reorganises meanwhile,
 * - optionally its call traces (`debug_traceBlockByNumber`, callTracer),
 *   cross-checked against the block's transaction list for the same reason,
 * - receipts of matched native transfers (a reverted transaction with value
 *   moves nothing, and the block body does not say it reverted).
 *
 * Failure modes: every call is bounded by a timeout; node errors surface as
 * ethers errors (retried by the scanner's loop with backoff). A block that
 * changed between two calls makes `scan` throw BlockChangedError, and the
 * scanner fetches it again.
 */
import type { JsonRpcProvider } from "ethers";
import type { ChainConfig } from "../../shared/config/schema.ts";
import { RPC_TIMEOUT_MS, rpcCall, tokenIndex } from "../../shared/adapters/chain.ts";
import type { BlockRef } from "../../shared/domain/reorg.ts";
import {
  TRANSFER_TOPIC,
  internalTransfersFromTrace,
  nativeTransfersFromTxs,
  tokenTransfersFromLogs,
  txSenders,
  type CallFrame,
  type ChainTransfer,
  type RpcLog,
  type RpcTransaction,
  type TxSender,
} from "../../shared/domain/chain-transfers.ts";

export interface RawBlock {
  number: number;
  hash: string;
  parentHash: string;
  /** every candidate transfer in the block (not yet matched to watched addresses) */
  transfers: ChainTransfer[];
  /** sender and nonce of the block's transactions, by hash */
  txs: Map<string, TxSender>;
}

export class BlockChangedError extends Error {
  override name = "BlockChangedError";
}

interface RpcBlock {
  number: string;
  hash: string;
  parentHash: string;
  transactions: RpcTransaction[];
}

const hex = (n: number) => `0x${n.toString(16)}`;

export interface BlockSource {
  latest(): Promise<BlockRef>;
  /** a block's header fields, or null when the node has no block there */
  header(n: number): Promise<(BlockRef & { parentHash: string }) | null>;
  /** the node's block hashes at these heights (null where it has none) */
  canonicalHashes(numbers: number[]): Promise<Map<number, string | null>>;
  /** null when the node has no block at this height (yet) */
  scan(n: number): Promise<RawBlock | null>;
  /** token transfers of a known block by hash, with its transactions' senders; null when the node no longer has it */
  tokenTransfersOf(blockHash: string): Promise<{ transfers: ChainTransfer[]; txs: Map<string, TxSender> } | null>;
  /** receipts status of transactions expected in `blockHash`; throws BlockChangedError when one is elsewhere */
  successfulTxs(txHashes: string[], blockHash: string): Promise<Set<string>>;
}

export function createBlockSource(provider: JsonRpcProvider, chain: ChainConfig, opts: { timeoutMs?: number } = {}): BlockSource {
  const timeoutMs = opts.timeoutMs ?? RPC_TIMEOUT_MS;
  const tokens = tokenIndex(chain);
  const tokenAddresses = [...tokens.keys()];

  const call = <T>(method: string, params: unknown[]) => rpcCall<T>(provider, method, params, timeoutMs);

  async function logsOf(blockHash: string): Promise<RpcLog[]> {
    if (tokenAddresses.length === 0) return [];
    const logs = await call<RpcLog[]>("eth_getLogs", [{ blockHash, address: tokenAddresses, topics: [TRANSFER_TOPIC] }]);
    for (const l of logs) {
      if (l.blockHash && l.blockHash.toLowerCase() !== blockHash.toLowerCase()) throw new BlockChangedError(`log of block ${l.blockHash} returned for ${blockHash}`);
    }
    return logs;
  }

  async function internalOf(block: RpcBlock): Promise<ChainTransfer[]> {
    if (!chain.trace_internal || block.transactions.length === 0) return [];
    const traces = await call<{ txHash?: string; result?: CallFrame; error?: string }[]>("debug_traceBlockByNumber", [block.number, { tracer: "callTracer" }]);
    if (traces.length !== block.transactions.length) throw new BlockChangedError(`trace of block ${block.number} has ${traces.length} txs, block ${block.transactions.length}`);
    const out: ChainTransfer[] = [];
    traces.forEach((t, i) => {
      const txHash = block.transactions[i]!.hash.toLowerCase();
      if (t.txHash && t.txHash.toLowerCase() !== txHash) throw new BlockChangedError(`trace of block ${block.number} is of another block`);
      if (!t.result) throw new Error(`trace of ${txHash} failed: ${t.error ?? "no result"}`);
      out.push(...internalTransfersFromTrace(txHash, t.result, chain.native_symbol));
    });
    return out;
  }

  return {
    async latest() {
      const b = await call<RpcBlock | null>("eth_getBlockByNumber", ["latest", false]);
      if (!b) throw new Error("node returned no latest block");
      return { number: Number(BigInt(b.number)), hash: b.hash.toLowerCase() };
    },

    async header(n) {
      const b = await call<RpcBlock | null>("eth_getBlockByNumber", [hex(n), false]);
      return b ? { number: n, hash: b.hash.toLowerCase(), parentHash: b.parentHash.toLowerCase() } : null;
    },

    async canonicalHashes(numbers) {
      const blocks = await Promise.all(numbers.map((n) => call<RpcBlock | null>("eth_getBlockByNumber", [hex(n), false])));
      return new Map(numbers.map((n, i) => [n, blocks[i]?.hash.toLowerCase() ?? null]));
    },

    async scan(n) {
      const block = await call<RpcBlock | null>("eth_getBlockByNumber", [hex(n), true]);
      if (!block) return null;
      const [logs, internal] = await Promise.all([logsOf(block.hash), internalOf(block)]);
      return {
        number: n,
        hash: block.hash.toLowerCase(),
        parentHash: block.parentHash.toLowerCase(),
        transfers: [...tokenTransfersFromLogs(logs, tokens), ...nativeTransfersFromTxs(block.transactions, chain.native_symbol), ...internal],
        txs: txSenders(block.transactions),
      };
    },

    async tokenTransfersOf(blockHash) {
      try {
        const [logs, block] = await Promise.all([logsOf(blockHash), call<RpcBlock | null>("eth_getBlockByHash", [blockHash, true])]);
        if (block === null) return null; // the node no longer has it: the main loop notices the reorg
        return { transfers: tokenTransfersFromLogs(logs, tokens), txs: txSenders(block.transactions) };
      } catch (e) {
        // the node no longer has the block: the main loop notices the reorg
        const block = await call<RpcBlock | null>("eth_getBlockByHash", [blockHash, false]).catch(() => undefined);
        if (block === null) return null;
        throw e;
      }
    },

    async successfulTxs(txHashes, blockHash) {
      const unique = [...new Set(txHashes)];
      const receipts = await Promise.all(unique.map((h) => call<{ status: string; blockHash: string } | null>("eth_getTransactionReceipt", [h])));
      const ok = new Set<string>();
      unique.forEach((h, i) => {
        const r = receipts[i];
        if (!r || r.blockHash.toLowerCase() !== blockHash) throw new BlockChangedError(`receipt of ${h} is not in block ${blockHash}`);
        if (BigInt(r.status) === 1n) ok.add(h);
      });
      return ok;
    },
  };
}
