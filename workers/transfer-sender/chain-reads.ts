/**
 * The node reads and writes the money-out path needs, as raw JSON-RPC calls
 * on the chain's provider.
 *
 * Why raw `send` instead of ethers' getters: ethers' AbstractProvider caches
 * identical requests for 250 ms, so "nonce at latest" or "receipt of X"
 * asked twice in a row can return the stale first answer; the decisions
 * here (is this nonce used, is this transaction mined) must see the node's
 * current state. `send` still maps node errors to ethers codes
 * (NONCE_EXPIRED, INSUFFICIENT_FUNDS, CALL_EXCEPTION, ...), which is how
 * callers classify them (`isError`), never by message text.
 *
 * Failure modes: an unreachable node rejects with ethers network/server
 * errors (`isTransientRpcError`); callers retry the job later.
 */
import type { JsonRpcProvider } from "ethers";
import { erc20, toQuantity } from "../../shared/adapters/chain.ts";

export type BlockTag = "latest" | "pending" | bigint;

export interface Head {
  number: bigint;
  hash: string;
  baseFee: bigint;
}

export interface Receipt {
  hash: string;
  blockNumber: bigint;
  blockHash: string;
  /** 1 success, 0 reverted */
  status: number;
  gasUsed: bigint;
  effectiveGasPrice: bigint;
}

export interface CallRequest {
  from: string;
  to: string;
  data: string;
  value: bigint;
}

const tag = (t: BlockTag) => (typeof t === "bigint" ? toQuantity(t) : t);
const big = (hex: unknown) => BigInt(hex as string);

export function createChainReads(provider: JsonRpcProvider) {
  const send = <T>(method: string, params: unknown[]) => provider.send(method, params) as Promise<T>;
  return {
    async chainId(): Promise<bigint> {
      return big(await send<string>("eth_chainId", []));
    },
    async head(): Promise<Head> {
      const b = await send<{ number: string; hash: string; baseFeePerGas?: string } | null>("eth_getBlockByNumber", ["latest", false]);
      if (!b) throw new Error("node returned no latest block");
      if (b.baseFeePerGas === undefined) throw new Error("the chain has no EIP-1559 base fee; only EIP-1559 chains are supported");
      return { number: big(b.number), hash: b.hash, baseFee: big(b.baseFeePerGas) };
    },
    async blockNumber(): Promise<bigint> {
      return big(await send<string>("eth_blockNumber", []));
    },
    async blockHash(n: bigint): Promise<string | null> {
      const b = await send<{ hash: string } | null>("eth_getBlockByNumber", [toQuantity(n), false]);
      return b?.hash ?? null;
    },
    /** the node's priority fee suggestion */
    async tip(): Promise<bigint> {
      return big(await send<string>("eth_maxPriorityFeePerGas", []));
    },
    async nonce(address: string, at: BlockTag): Promise<bigint> {
      return big(await send<string>("eth_getTransactionCount", [address, tag(at)]));
    },
    async ethBalance(address: string, at: BlockTag): Promise<bigint> {
      return big(await send<string>("eth_getBalance", [address, tag(at)]));
    },
    async tokenBalance(token: string, address: string, at: BlockTag): Promise<bigint> {
      const out = await send<string>("eth_call", [{ to: token, data: erc20.encodeFunctionData("balanceOf", [address]) }, tag(at)]);
      return BigInt(erc20.decodeFunctionResult("balanceOf", out)[0] as bigint);
    },
    async estimateGas(call: CallRequest): Promise<bigint> {
      return big(await send<string>("eth_estimateGas", [{ from: call.from, to: call.to, data: call.data, value: toQuantity(call.value) }]));
    },
    async receipt(hash: string): Promise<Receipt | null> {
      const r = await send<{
        transactionHash: string;
        blockNumber: string | null;
        blockHash: string | null;
        status: string;
        gasUsed: string;
        effectiveGasPrice: string;
      } | null>("eth_getTransactionReceipt", [hash]);
      if (!r || r.blockNumber === null || r.blockHash === null) return null;
      return {
        hash: r.transactionHash.toLowerCase(),
        blockNumber: big(r.blockNumber),
        blockHash: r.blockHash.toLowerCase(),
        status: Number(big(r.status)),
        gasUsed: big(r.gasUsed),
        effectiveGasPrice: big(r.effectiveGasPrice),
      };
    },
    /** true when the node knows the transaction (in its pool or mined) */
    async known(hash: string): Promise<boolean> {
      return (await send<unknown>("eth_getTransactionByHash", [hash])) !== null;
    },
    async sendRaw(raw: string): Promise<void> {
      await send<string>("eth_sendRawTransaction", [raw]);
    },
  };
}

export type ChainReads = ReturnType<typeof createChainReads>;
