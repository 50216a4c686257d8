/**
 * EVM node access through ethers v6.
 *
 * One JSON-RPC provider per chain (requests issued in the same tick are sent
 * as one JSON-RPC batch), created with a static network so no call is spent
 * re-detecting the chain. Head tracking over WebSocket lives in chain-watch,
 * which falls back to polling this provider when the socket is down.
 *
 * Failure modes: an unreachable node rejects calls with ethers errors; they
 * are classified with `isError` (never by message text) by `isTransientRpcError`.
 */
import { FetchRequest, JsonRpcProvider, Network, Interface, isError, id as keccakId, type JsonRpcPayload, type JsonRpcResult } from "ethers";
import type { ChainConfig } from "../config/schema.ts";
import type { TokenInfo } from "../domain/chain-transfers.ts";

/**
 * Upper bound of one JSON-RPC call. ethers' default is 5 minutes: a node that
 * accepts the connection and never answers would stall a scan, a
 * confirmation or a send that long before the retry logic even sees an error.
 */
export const RPC_TIMEOUT_MS = 30_000;

export const ERC20_ABI = [
  "event Transfer(address indexed from, address indexed to, uint256 value)",
  "function balanceOf(address) view returns (uint256)",
  "function decimals() view returns (uint8)",
  // No `returns (bool)`: mainnet USDT's transfer returns nothing, and a
  // decoder expecting a bool would reject its successful calls.
  "function transfer(address to, uint256 value)",
];
export const erc20 = new Interface(ERC20_ABI);
export const TRANSFER_TOPIC = keccakId("Transfer(address,address,uint256)");

/**
 * JsonRpcProvider that decodes response bodies with Node's native UTF-8
 * decoder. ethers decodes them in JavaScript (`toUtf8String`), which
 * profiling showed to be the single largest CPU cost of scanning blocks
 * full of transfers (hundreds of KB of logs per block). Same requests, same
 * errors: a body that is not JSON falls back to ethers' own decoding, which
 * throws its usual error.
 */
export class Utf8JsonRpcProvider extends JsonRpcProvider {
  override async _send(payload: JsonRpcPayload | JsonRpcPayload[]): Promise<JsonRpcResult[]> {
    const request = this._getConnection();
    request.body = JSON.stringify(payload);
    request.setHeader("content-type", "application/json");
    const response = await request.send();
    response.assertOk();
    let resp: unknown;
    try {
      const body = response.body;
      resp = body ? JSON.parse(Buffer.from(body.buffer, body.byteOffset, body.byteLength).toString("utf8")) : JSON.parse("");
    } catch {
      resp = response.bodyJson;
    }
    return (Array.isArray(resp) ? resp : [resp]) as JsonRpcResult[];
  }
}

export interface ChainClient {
  key: string;
  config: ChainConfig & { key: string };
  provider: JsonRpcProvider;
  close(): void;
}

export function createChainClient(config: ChainConfig & { key: string }, opts: { chainId?: bigint } = {}): ChainClient {
  const chainId = opts.chainId ?? (config.chain_id ? BigInt(config.chain_id) : undefined);
  const network = chainId !== undefined ? Network.from(chainId) : undefined;
  const request = new FetchRequest(config.rpc_url);
  request.timeout = RPC_TIMEOUT_MS;
  const provider = new Utf8JsonRpcProvider(request, network, {
    staticNetwork: network ?? false,
    batchMaxCount: 100,
    batchStallTime: 2,
    polling: false,
    // ethers caches identical calls for 250 ms by default: a nonce, balance or
    // receipt read right after a change would get the stale answer.
    cacheTimeout: -1,
  });
  return {
    key: config.key,
    config,
    provider,
    close: () => provider.destroy(),
  };
}

/**
 * True for node errors worth retrying (timeouts, network, server errors):
 * the answer may differ next time. Classified by ethers error code.
 */
export function isTransientRpcError(e: unknown): boolean {
  return (
    e instanceof RpcTimeoutError ||
    isError(e, "TIMEOUT") ||
    isError(e, "NETWORK_ERROR") ||
    isError(e, "SERVER_ERROR") ||
    isError(e, "UNKNOWN_ERROR") ||
    isError(e, "CANCELLED") ||
    (e instanceof Error && ["ECONNREFUSED", "ECONNRESET", "ETIMEDOUT", "EPIPE"].includes((e as NodeJS.ErrnoException).code ?? ""))
  );
}

export class RpcTimeoutError extends Error {
  override name = "RpcTimeoutError";
}

/**
 * One raw JSON-RPC call bounded by `timeoutMs` (the provider's own timeout
 * covers the HTTP request; this also covers the wait in its batch queue).
 */
export async function rpcCall<T>(provider: JsonRpcProvider, method: string, params: unknown[], timeoutMs = RPC_TIMEOUT_MS): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      provider.send(method, params) as Promise<T>,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new RpcTimeoutError(`${method} took more than ${timeoutMs} ms`)), timeoutMs);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** The chain's configured tokens by lower-case contract address. */
export function tokenIndex(chain: ChainConfig): Map<string, TokenInfo> {
  return new Map(Object.entries(chain.tokens).map(([symbol, t]) => [t.address.toLowerCase(), { symbol, decimals: t.decimals }]));
}

/** 0x-hex quantity for raw JSON-RPC params. */
export const toQuantity = (n: bigint | number) => `0x${BigInt(n).toString(16)}`;
