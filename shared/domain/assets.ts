/**
 * The one lookup from a chain's configured symbols to an asset: the native
 * coin (`native_symbol`, `native_decimals`) or an ERC-20 token of
 * `tokens`. Pure; every role and the CLI use this, so a symbol means the
 * same asset (and the same decimals) everywhere.
 *
 * @example
 * assetOf(config.chains.ETH, "USDT") // { native: false, symbol: "USDT", token: "0xdac1…", decimals: 6 }
 * assetOf(config.chains.ETH, "ETH")  // { native: true, symbol: "ETH", decimals: 18 }
 */
import type { ChainConfig } from "../config/schema.ts";

export type Asset = { native: true; symbol: string; decimals: number } | { native: false; symbol: string; token: string; decimals: number };

export type AssetChain = Pick<ChainConfig, "native_symbol" | "native_decimals" | "tokens">;

/** The configured asset of `symbol` on a chain, or null when it is not configured. */
export function assetOf(chain: AssetChain, symbol: string): Asset | null {
  if (symbol === chain.native_symbol) return { native: true, symbol, decimals: chain.native_decimals };
  const t = chain.tokens[symbol];
  return t ? { native: false, symbol, token: t.address, decimals: t.decimals } : null;
}

/** Every asset configured on a chain, the native coin first. */
export function assetsOf(chain: AssetChain): Asset[] {
  return [assetOf(chain, chain.native_symbol)!, ...Object.keys(chain.tokens).map((s) => assetOf(chain, s)!)];
}
