/**
 * What the node says about one deposit's transaction, for the confirmation
 * handler: the head, the canonical block at the deposit's height, the
 * receipt, its sender's nonce at a block (has another transaction taken
 * it?), and the transfers of
 * the deposit's kind that the transaction made in the block it is mined in
 * (receipt logs for tokens, the transaction itself for native, its call
 * trace for internal transfers).
 *
 * Failure modes: node errors and timeouts propagate (the job retries with
 * backoff); nothing here writes.
 */
import type { JsonRpcProvider } from "ethers";
import type { ChainConfig } from "../../shared/config/schema.ts";
import { rpcCall, tokenIndex } from "../../shared/adapters/chain.ts";
import {
  classOf,
  internalTransfersFromTrace,
  nativeTransfersFromTxs,
  tokenTransfersFromLogs,
  type CallFrame,
  type ChainTransfer,
  type RpcLog,
  type RpcTransaction,
  type TxSender,
} from "../../shared/domain/chain-transfers.ts";

export interface RpcReceipt {
  blockNumber: string;
  blockHash: string;
  status: string;
  logs: RpcLog[];
}

const hex = (n: number) => `0x${n.toString(16)}`;

export function createDepositChainCheck(provider: JsonRpcProvider, chain: ChainConfig & { key: string }) {
  const tokens = tokenIndex(chain);

  const call = <T>(method: string, params: unknown[]) => rpcCall<T>(provider, method, params);

  return {
    /** head number and the node's block hash at `blockNumber` (null: none) */
    async headAndCanonical(blockNumber: number): Promise<{ head: number; canonicalHash: string | null }> {
      const [head, block] = await Promise.all([
        call<string>("eth_blockNumber", []),
        call<{ hash: string } | null>("eth_getBlockByNumber", [hex(blockNumber), false]),
      ]);
      return { head: Number(BigInt(head)), canonicalHash: block?.hash.toLowerCase() ?? null };
    },

    async receipt(txHash: string): Promise<RpcReceipt | null> {
      return call<RpcReceipt | null>("eth_getTransactionReceipt", [txHash]);
    },

    /** the transaction's sender and nonce, while the node still has it (null: it does not) */
    async txSender(txHash: string): Promise<TxSender | null> {
      const tx = await call<RpcTransaction | null>("eth_getTransactionByHash", [txHash]);
      return tx ? { from: tx.from.toLowerCase(), nonce: Number(BigInt(tx.nonce)) } : null;
    },

    /** the account's nonce (transactions it sent) as of block `blockNumber` */
    async nonceAt(address: string, blockNumber: number): Promise<number> {
      return Number(BigInt(await call<string>("eth_getTransactionCount", [address, hex(blockNumber)])));
    },

    /**
     * The transfers of the same class as `logIndex` (token / native /
     * internal) that the mined transaction made, with their indexes in the
     * block its receipt names.
     */
    async transfersOf(txHash: string, logIndex: number, receipt: RpcReceipt): Promise<ChainTransfer[]> {
      switch (classOf(logIndex)) {
        case "token":
          return tokenTransfersFromLogs(receipt.logs, tokens);
        case "native": {
          const tx = await call<RpcTransaction | null>("eth_getTransactionByHash", [txHash]);
          return tx ? nativeTransfersFromTxs([tx], chain.native_symbol) : [];
        }
        case "internal": {
          const trace = await call<CallFrame>("debug_traceTransaction", [txHash, { tracer: "callTracer" }]);
          return internalTransfersFromTrace(txHash, trace, chain.native_symbol);
        }
      }
    },
  };
}

export type DepositChainCheck = ReturnType<typeof createDepositChainCheck>;
