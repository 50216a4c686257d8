/**
 * Value transfers read out of raw JSON-RPC data (blocks, logs, call traces),
 * the candidates chain-watch matches against watched addresses and
 * confirmation re-checks. Pure: the node's answers are passed in.
 *
 * Identity inside a transaction (SPEC §5): an ERC-20 `Transfer` log has its
 * block-wide log index (>= 0); the transaction's own value transfer is -1;
 * the k-th internal value transfer (a CALL with value made by a contract),
 * counted depth-first over successful frames, is -2-k.
 *
 * @example
 * tokenTransfersFromLogs(logs, new Map([[usdt, { symbol: "USDT", decimals: 6 }]]))
 * // [{ txHash, logIndex: 3, symbol: "USDT", from, to, units: 100500001n }]
 */

/** keccak256("Transfer(address,address,uint256)") */
export const TRANSFER_TOPIC = "0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef";

export const NATIVE_LOG_INDEX = -1;
/** log index of the k-th internal transfer of a transaction */
export const internalLogIndex = (k: number) => -2 - k;

export type TransferClass = "token" | "native" | "internal";

export const classOf = (logIndex: number): TransferClass => (logIndex >= 0 ? "token" : logIndex === NATIVE_LOG_INDEX ? "native" : "internal");

export interface ChainTransfer {
  txHash: string;
  logIndex: number;
  symbol: string;
  /** lowercase 0x hex */
  from: string;
  to: string;
  /** base units */
  units: bigint;
}

/** A log as eth_getLogs / receipts return it (hex quantities). */
export interface RpcLog {
  address: string;
  topics: string[];
  data: string;
  logIndex: string;
  transactionHash: string;
  blockHash?: string;
  removed?: boolean;
}

/** A transaction object of eth_getBlockByNumber(n, true). */
export interface RpcTransaction {
  hash: string;
  from: string;
  to: string | null;
  value: string;
  /** hex quantity */
  nonce: string;
}

/** Who sent a transaction and with which nonce: the nonce taken by another transaction deep in the chain proves it can never be mined. */
export interface TxSender {
  from: string;
  nonce: number;
}

/** The sender and nonce of each transaction of a block, by lowercase hash. */
export function txSenders(txs: readonly RpcTransaction[]): Map<string, TxSender> {
  return new Map(txs.map((t) => [t.hash.toLowerCase(), { from: t.from.toLowerCase(), nonce: Number(BigInt(t.nonce)) }]));
}

/** A frame of the callTracer output. */
export interface CallFrame {
  type: string;
  from: string;
  to?: string;
  value?: string;
  error?: string;
  calls?: CallFrame[];
}

export interface TokenInfo {
  symbol: string;
  decimals: number;
}

const ADDRESS_WORD = /^0x0{24}([0-9a-fA-F]{40})$/;
const WORD = /^0x[0-9a-fA-F]{64}$/;

/** The address in an indexed topic, or null when the word is not a clean address. */
function topicAddress(topic: string | undefined): string | null {
  const m = topic ? ADDRESS_WORD.exec(topic) : null;
  return m ? `0x${m[1]!.toLowerCase()}` : null;
}

/**
 * ERC-20 Transfer logs of the given tokens. Logs marked `removed` (dropped
 * by a reorg while being streamed) are ignored; so are malformed ones (a
 * Transfer with non-indexed addresses, ERC-721 style 4-topic logs, data that
 * is not one word) and zero-value transfers.
 */
export function tokenTransfersFromLogs(logs: RpcLog[], tokens: ReadonlyMap<string, TokenInfo>): ChainTransfer[] {
  const out: ChainTransfer[] = [];
  for (const log of logs) {
    if (log.removed === true) continue;
    const token = tokens.get(log.address.toLowerCase());
    if (!token) continue;
    if (log.topics.length !== 3 || log.topics[0]!.toLowerCase() !== TRANSFER_TOPIC) continue;
    const from = topicAddress(log.topics[1]);
    const to = topicAddress(log.topics[2]);
    if (!from || !to || !WORD.test(log.data)) continue;
    const units = BigInt(log.data);
    if (units === 0n) continue;
    out.push({ txHash: log.transactionHash.toLowerCase(), logIndex: Number(BigInt(log.logIndex)), symbol: token.symbol, from, to, units });
  }
  return out;
}

/**
 * Top-level native transfers: transactions to an address with value > 0.
 * Whether such a transaction succeeded is not in the block body; the caller
 * checks the receipts of the ones it keeps.
 */
export function nativeTransfersFromTxs(txs: readonly Pick<RpcTransaction, "hash" | "from" | "to" | "value">[], nativeSymbol: string): ChainTransfer[] {
  const out: ChainTransfer[] = [];
  for (const tx of txs) {
    if (!tx.to) continue;
    const units = BigInt(tx.value);
    if (units === 0n) continue;
    out.push({ txHash: tx.hash.toLowerCase(), logIndex: NATIVE_LOG_INDEX, symbol: nativeSymbol, from: tx.from.toLowerCase(), to: tx.to.toLowerCase(), units });
  }
  return out;
}

/** Frames that move value to their `to` (DELEGATECALL/STATICCALL never do; CALLCODE pays itself). */
const VALUE_FRAMES = new Set(["CALL", "SELFDESTRUCT", "CREATE", "CREATE2"]);

/**
 * Internal native transfers of one transaction from its callTracer trace:
 * value-carrying frames below the top-level call, depth-first, skipping any
 * frame that failed (with everything below it: a reverted frame moves
 * nothing). A transaction whose top frame failed moved nothing at all.
 */
export function internalTransfersFromTrace(txHash: string, top: CallFrame, nativeSymbol: string): ChainTransfer[] {
  const out: ChainTransfer[] = [];
  if (top.error) return out;
  let k = 0;
  const visit = (frame: CallFrame) => {
    for (const call of frame.calls ?? []) {
      if (call.error) continue;
      const units = call.value ? BigInt(call.value) : 0n;
      if (units > 0n && call.to && VALUE_FRAMES.has(call.type.toUpperCase())) {
        out.push({
          txHash: txHash.toLowerCase(),
          logIndex: internalLogIndex(k++),
          symbol: nativeSymbol,
          from: call.from.toLowerCase(),
          to: call.to.toLowerCase(),
          units,
        });
      }
      visit(call);
    }
  };
  visit(top);
  return out;
}

/** Every distinct recipient, for one watched-address lookup. */
export function recipients(transfers: readonly ChainTransfer[]): string[] {
  return [...new Set(transfers.map((t) => t.to))];
}
