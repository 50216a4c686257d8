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
import { makeError, type JsonRpcError, type JsonRpcPayload, type JsonRpcProvider, type JsonRpcResult } from "ethers";
import { erc20, toQuantity } from "../adapters/chain.ts";

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
  /** the receipt's logs: a batch's per-item results are in its Batch event */
  logs: ReceiptLog[];
}

export interface ReceiptLog {
  address: string;
  topics: string[];
  data: string;
}

export interface CallRequest {
  from: string;
  to: string;
  data: string;
  value: bigint;
}

const tag = (t: BlockTag) => (typeof t === "bigint" ? toQuantity(t) : t);
const big = (hex: unknown) => BigInt(hex as string);

type RawReceipt = {
  transactionHash: string;
  blockNumber: string | null;
  blockHash: string | null;
  status: string;
  gasUsed: string;
  effectiveGasPrice: string;
  logs?: ReceiptLog[];
} | null;

function toReceipt(r: RawReceipt): Receipt | null {
  if (!r || r.blockNumber === null || r.blockHash === null) return null;
  return {
    hash: r.transactionHash.toLowerCase(),
    blockNumber: big(r.blockNumber),
    blockHash: r.blockHash.toLowerCase(),
    status: Number(big(r.status)),
    gasUsed: big(r.gasUsed),
    effectiveGasPrice: big(r.effectiveGasPrice),
    logs: (r.logs ?? []).map((l) => ({ address: l.address.toLowerCase(), topics: l.topics, data: l.data })),
  };
}

export function createChainReads(provider: JsonRpcProvider) {
  const send = <T>(method: string, params: unknown[]) => provider.send(method, params) as Promise<T>;
  /** the node answered eth_simulateV1 with "method not found": ask per call from now on */
  let simulateUnsupported = false;
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
    /** the code at `address` (a delegated EOA shows its EIP-7702 designator) */
    async code(address: string, at: BlockTag): Promise<string> {
      return send<string>("eth_getCode", [address, tag(at)]);
    },
    async tokenBalance(token: string, address: string, at: BlockTag): Promise<bigint> {
      const out = await send<string>("eth_call", [{ to: token, data: erc20.encodeFunctionData("balanceOf", [address]) }, tag(at)]);
      return BigInt(erc20.decodeFunctionResult("balanceOf", out)[0] as bigint);
    },
    /**
     * Gas estimate of `call` against the state at `at`. The sender asks at
     * `latest`: the node's default differs (geth: latest; anvil: its pending
     * block, which it rebuilds from the whole pool for every estimate, 40
     * times slower with a thousand transactions pending), and a transfer's
     * gas does not depend on the sender's pending nonce or spends (balances
     * are checked separately, at one block, with our in-flight spends taken
     * off). Never cached: each transfer gets its own estimate.
     */
    async estimateGas(call: CallRequest, at: BlockTag): Promise<bigint> {
      return big(await send<string>("eth_estimateGas", [{ from: call.from, to: call.to, data: call.data, value: toQuantity(call.value) }, tag(at)]));
    },
    /**
     * Run `calls` one after another as the transactions of one block on top
     * of block `at` (eth_simulateV1, without fee or nonce validation), in ONE
     * request: per call its gas used when it succeeded, null when it failed.
     * The sender asks this instead of one eth_estimateGas per payout when it
     * may batch (estimateGas binary-searches, executing each call many times).
     *
     * What a success's gas means: the receipt's gasUsed, after refunds, and
     * with the earlier calls' effects applied (a second payout to the same
     * recipient is cheaper, as it will be in the batch signed in that order).
     * A failure may be caused by an earlier call (the wallet's balance spent
     * by calls the planner then refuses): callers confirm a failure with the
     * call's own estimate before acting on it.
     *
     * Null for the whole when the node answers with an error (it lacks
     * eth_simulateV1: JSON-RPC -32601, remembered; or refuses this request):
     * callers fall back to per-call estimates. Rejects when the node cannot
     * be reached, like every other read here.
     */
    async simulateCalls(calls: CallRequest[], at: BlockTag): Promise<({ gasUsed: bigint } | null)[] | null> {
      if (simulateUnsupported || calls.length === 0) return null;
      const payload: JsonRpcPayload = {
        id: 1,
        jsonrpc: "2.0",
        method: "eth_simulateV1",
        params: [{ blockStateCalls: [{ calls: calls.map((c) => ({ from: c.from, to: c.to, data: c.data, value: toQuantity(c.value) })) }], validation: false }, tag(at)],
      };
      const [answer] = (await provider._send(payload)) as (JsonRpcResult | JsonRpcError | undefined)[];
      if (!answer || "error" in answer) {
        if (answer && answer.error.code === -32601) simulateUnsupported = true;
        return null;
      }
      const block = (answer.result as { calls?: { status?: string; gasUsed?: string }[] }[] | null)?.[0];
      if (!block?.calls || block.calls.length !== calls.length) return null;
      return block.calls.map((c) => (c.status !== undefined && big(c.status) === 1n && c.gasUsed !== undefined ? { gasUsed: big(c.gasUsed) } : null));
    },
    async receipt(hash: string): Promise<Receipt | null> {
      return toReceipt(await send<RawReceipt>("eth_getTransactionReceipt", [hash]));
    },
    /**
     * `address`'s nonce at block `at` and the receipts of `hashes`, in ONE
     * JSON-RPC batch, so one backend answers all of them even behind a load
     * balancer: a backend that answers the nonce at `at` has every block up
     * to `at`, so its null receipt means "not mined at or below `at`", not
     * "not indexed here yet". Null when the backend does not have block `at`
     * (or answers anything else than every call): nothing can be concluded.
     */
    async anchoredReceipts(address: string, at: bigint, hashes: string[]): Promise<{ nonce: bigint; receipts: (Receipt | null)[] } | null> {
      const payloads: JsonRpcPayload[] = [
        { id: 1, jsonrpc: "2.0", method: "eth_getTransactionCount", params: [address, toQuantity(at)] },
        ...hashes.map((h, i) => ({ id: i + 2, jsonrpc: "2.0" as const, method: "eth_getTransactionReceipt", params: [h] })),
      ];
      const results = (await provider._send(payloads)) as (JsonRpcResult | JsonRpcError)[];
      const byId = new Map(results.map((r) => [r.id, r]));
      const answers = payloads.map((p) => byId.get(p.id));
      if (answers.some((a) => a === undefined || "error" in a)) return null;
      const [nonce, ...receipts] = answers as JsonRpcResult[];
      return { nonce: big(nonce!.result), receipts: receipts.map((r) => toReceipt(r.result as RawReceipt)) };
    },
    /** true when the node knows the transaction (in its pool or mined) */
    async known(hash: string): Promise<boolean> {
      return (await send<unknown>("eth_getTransactionByHash", [hash])) !== null;
    },
    async sendRaw(raw: string): Promise<void> {
      await send<string>("eth_sendRawTransaction", [raw]);
    },
    /**
     * Send raw transactions as ONE JSON-RPC batch, in the given order (one
     * HTTP request: nodes handle a batch's calls in order, and nothing else
     * is mixed in, unlike the provider's implicit batching of concurrent
     * calls). One entry per transaction: null when the node accepted it, else
     * the node's error mapped to its ethers code exactly as `sendRaw` would
     * (`provider.getRpcError`), to be classified with `isError`. Rejects as a
     * whole when the request itself fails (node unreachable, timeout, a
     * response with none of the batch's ids: BAD_DATA).
     */
    async sendRawBatch(raws: string[]): Promise<(Error | null)[]> {
      if (raws.length === 0) return [];
      const payloads: JsonRpcPayload[] = raws.map((raw, i) => ({ id: i + 1, jsonrpc: "2.0", method: "eth_sendRawTransaction", params: [raw] }));
      const results = (await provider._send(payloads)) as (JsonRpcResult | JsonRpcError)[];
      const byId = new Map(results.map((r) => [r.id, r]));
      // e.g. one error object for the whole request (a node refusing batches or their size)
      if (!payloads.some((p) => byId.has(p.id))) throw makeError("the node did not answer the batch call by call", "BAD_DATA", { value: results });
      return payloads.map((p) => {
        const r = byId.get(p.id);
        if (r === undefined) return makeError("missing response for request", "BAD_DATA", { value: results, info: { payload: p } });
        return "error" in r ? provider.getRpcError(p, r) : null;
      });
    },
  };
}

export type ChainReads = ReturnType<typeof createChainReads>;
