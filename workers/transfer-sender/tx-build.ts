/**
 * Building and signing the transaction of one transfer: the asset's call
 * (native value, or ERC-20 `transfer(to, value)` whose missing return value
 * is never decoded, so mainnet USDT works), EIP-1559 type-2 fields, and a
 * signature from the wallet's key. Pure apart from the signing key.
 */
import { Transaction, type SigningKey } from "ethers";
import { erc20 } from "../../shared/adapters/chain.ts";
import type { ChainConfig } from "../../shared/config/schema.ts";
import type { Fees } from "../../shared/domain/fees.ts";
import type { CallRequest } from "./chain-reads.ts";

export type Asset = { native: true; symbol: string; decimals: number } | { native: false; symbol: string; token: string; decimals: number };

/** The configured asset of `symbol` on a chain, or null when it is not configured. */
export function assetOf(chain: Pick<ChainConfig, "native_symbol" | "native_decimals" | "tokens">, symbol: string): Asset | null {
  if (symbol === chain.native_symbol) return { native: true, symbol, decimals: chain.native_decimals };
  const t = chain.tokens[symbol];
  return t ? { native: false, symbol, token: t.address, decimals: t.decimals } : null;
}

/** The call that moves `units` of `asset` from `from` to `to`. */
export function transferCall(asset: Asset, from: string, to: string, units: bigint): CallRequest {
  if (asset.native) return { from, to, data: "0x", value: units };
  return { from, to: asset.token, data: erc20.encodeFunctionData("transfer", [to, units]), value: 0n };
}

export interface SignedTx {
  raw: string;
  hash: string;
}

export function signCall(key: SigningKey, chainId: bigint, nonce: bigint, call: CallRequest, gasLimit: bigint, fees: Fees): SignedTx {
  const tx = Transaction.from({
    type: 2,
    chainId,
    nonce: Number(nonce),
    to: call.to,
    data: call.data,
    value: call.value,
    gasLimit,
    maxFeePerGas: fees.maxFeePerGas,
    maxPriorityFeePerGas: fees.maxPriorityFeePerGas,
  });
  tx.signature = key.sign(tx.unsignedHash);
  return { raw: tx.serialized, hash: tx.hash!.toLowerCase() };
}

/**
 * A same-nonce replacement of a signed transaction with new fees: every
 * other field (nonce, recipient, calldata, value, gas limit, chain) is
 * copied from the original, so the replacement can only do what the
 * original would have done.
 */
export function resignWithFees(key: SigningKey, raw: string, fees: Fees): SignedTx {
  const old = Transaction.from(raw);
  const tx = Transaction.from({
    type: 2,
    chainId: old.chainId,
    nonce: old.nonce,
    to: old.to,
    data: old.data,
    value: old.value,
    gasLimit: old.gasLimit,
    maxFeePerGas: fees.maxFeePerGas,
    maxPriorityFeePerGas: fees.maxPriorityFeePerGas,
  });
  tx.signature = key.sign(tx.unsignedHash);
  return { raw: tx.serialized, hash: tx.hash!.toLowerCase() };
}
