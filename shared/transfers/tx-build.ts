/**
 * Building and signing the transaction of one transfer: the asset's call
 * (native value, or ERC-20 `transfer(to, value)` whose missing return value
 * is never decoded, so mainnet USDT works), EIP-1559 type-2 fields, and a
 * signature from the wallet's key. Pure apart from the signing key.
 */
import type { SigningKey } from "ethers";
import { erc20 } from "../adapters/chain.ts";
import type { Asset } from "../domain/assets.ts";
import type { Fees } from "../domain/fees.ts";
import type { CallRequest } from "./chain-reads.ts";
import { signDelegationTx, signSelfAuthorization, type SignedTx } from "../adapters/eip7702.ts";
import { encodePay } from "../adapters/delegation-calls.ts";
import { BATCH_GAS_PER_ITEM } from "../domain/delegation-batch-plan.ts";
import { ADDRESS_RE } from "../domain/limits.ts";

/** The call that moves `units` of `asset` from `from` to `to`. */
export function transferCall(asset: Asset, from: string, to: string, units: bigint): CallRequest {
  if (asset.native) return { from, to, data: "0x", value: units };
  return { from, to: asset.token, data: erc20TransferData(to, units), value: 0n };
}

const TRANSFER_SELECTOR = erc20.getFunction("transfer")!.selector;
const MAX_UINT256 = (1n << 256n) - 1n;

/**
 * ERC-20 `transfer(to, units)` call data, exactly as ethers' ABI coder
 * writes it (tests/unit/tx-build.test.ts checks that on random input): the
 * selector, then each argument as one 32-byte word. Written out because the
 * sender builds one per payout before every batch and the ABI coder took 10
 * ms for 200 of them, about a twentieth of a batched payout's time.
 */
export function erc20TransferData(to: string, units: bigint): string {
  if (!ADDRESS_RE.test(to)) throw new TypeError(`not an address: ${to}`);
  if (units < 0n || units > MAX_UINT256) throw new RangeError(`not a uint256: ${units}`);
  return `${TRANSFER_SELECTOR}${to.slice(2).toLowerCase().padStart(64, "0")}${units.toString(16).padStart(64, "0")}`;
}

export type { SignedTx };

export function signCall(key: SigningKey, chainId: bigint, nonce: bigint, call: CallRequest, gasLimit: bigint, fees: Fees): SignedTx {
  // no authorizations: a plain type-2 transaction
  return signDelegationTx(key, { chainId, nonce, to: call.to, data: call.data, value: call.value, gasLimit, fees, authorizations: [] });
}

export interface BatchPayTx {
  chainId: bigint;
  nonce: bigint;
  /** the hot wallet: the transaction calls itself (BatchExecutor's access rule) */
  wallet: string;
  /** the executor to delegate to in this transaction, or null when the wallet already delegates to it */
  delegateTo: string | null;
  token: string;
  items: readonly { to: string; amount: bigint }[];
  gasLimit: bigint;
  fees: Fees;
}

/**
 * One transaction paying many token payouts of one wallet through its
 * EIP-7702 delegation (BatchExecutor.pay): type 4 carrying the wallet's own
 * authorization (for the transaction's nonce + 1) while the wallet does not
 * delegate to the executor yet, type 2 once it does. Item i of `items` is
 * bit i of the receipt's Batch event.
 */
export function signBatchPay(key: SigningKey, req: BatchPayTx): SignedTx {
  return signDelegationTx(key, {
    chainId: req.chainId,
    nonce: req.nonce,
    to: req.wallet,
    data: encodePay(req.token, req.items, BATCH_GAS_PER_ITEM),
    gasLimit: req.gasLimit,
    fees: req.fees,
    authorizations: req.delegateTo ? [signSelfAuthorization(key, req.chainId, req.delegateTo, req.nonce)] : [],
  });
}
