/**
 * EIP-7702 transactions: authorizations signed with a wallet's key, type-4
 * transactions carrying them, the delegation an address currently has, and
 * whether a node accepts them at all.
 *
 * An authorization (chain id, target, the authority's account nonce, signed
 * by the authority) makes the authority's address run the target's code
 * until another authorization replaces it; one for address(0) revokes it.
 * Authorizations are always signed for one chain id (never 0, which every
 * chain would accept) and for the exact next account nonce, so each can be
 * used once, on one chain.
 *
 * Signing is pure (a SigningKey from the keystore, no node): the caller
 * persists the raw bytes before broadcasting, as for every transfer.
 *
 * Failure modes: the probe rethrows node errors other than a refusal of
 * the probe transaction (timeouts, refused connections), so a start does
 * not take a flaky node for one without EIP-7702.
 */
import { Signature, SigningKey, Transaction, ZeroAddress, computeAddress, getAddress, hashAuthorization, isError, keccak256, randomBytes, type Authorization, type JsonRpcProvider } from "ethers";
import { ConfigError } from "../config/load-config.ts";
import type { ChainConfig } from "../config/schema.ts";
import type { Fees } from "../domain/fees.ts";

export interface SignedTx {
  raw: string;
  /** lowercase */
  hash: string;
}

export interface AuthorizationRequest {
  chainId: bigint;
  /** the contract to delegate to; ZeroAddress revokes the delegation */
  address: string;
  /** the authority's account nonce when the authorization is processed */
  nonce: bigint;
}

/**
 * The authority's signature over (chain id, target, nonce).
 *
 * @example
 * const auth = signAuthorization(depositKey, { chainId: 1n, address: sweeper, nonce: 0n });
 */
export function signAuthorization(key: SigningKey, req: AuthorizationRequest): Authorization {
  if (req.chainId <= 0n) throw new RangeError("an authorization is signed for one chain id, never 0 (valid on every chain)");
  const auth = { address: getAddress(req.address), nonce: req.nonce, chainId: req.chainId };
  return { ...auth, signature: Signature.from(key.sign(hashAuthorization(auth))) };
}

/**
 * An authorization for a wallet's own transaction: the sender's nonce is
 * incremented before the authorization list is processed, so the
 * authorization must carry the transaction's nonce + 1.
 */
export function signSelfAuthorization(key: SigningKey, chainId: bigint, target: string, txNonce: bigint): Authorization {
  return signAuthorization(key, { chainId, address: target, nonce: txNonce + 1n });
}

/** Revoke a delegation: the address becomes a plain EOA again (its storage stays). */
export function signRevocation(key: SigningKey, chainId: bigint, nonce: bigint): Authorization {
  return signAuthorization(key, { chainId, address: ZeroAddress, nonce });
}

export interface DelegationTxRequest {
  chainId: bigint;
  nonce: bigint;
  to: string;
  data: string;
  value?: bigint;
  gasLimit: bigint;
  fees: Fees;
  /** may be empty: an already delegated wallet's calls are plain type-2 transactions */
  authorizations: readonly Authorization[];
}

/**
 * Sign a transaction to a delegated address (or to a delegation target):
 * type 4 when it carries authorizations (EIP-7702 forbids an empty list),
 * type 2 otherwise.
 */
export function signDelegationTx(key: SigningKey, req: DelegationTxRequest): SignedTx {
  const tx = Transaction.from({
    type: req.authorizations.length > 0 ? 4 : 2,
    chainId: req.chainId,
    nonce: Number(req.nonce),
    to: req.to,
    data: req.data,
    value: req.value ?? 0n,
    gasLimit: req.gasLimit,
    maxFeePerGas: req.fees.maxFeePerGas,
    maxPriorityFeePerGas: req.fees.maxPriorityFeePerGas,
    ...(req.authorizations.length > 0 ? { authorizationList: [...req.authorizations] } : {}),
  });
  tx.signature = key.sign(tx.unsignedHash);
  // `tx.hash` would serialize the transaction again (a batch's is kilobytes): hash the bytes once
  const raw = tx.serialized;
  return { raw, hash: keccak256(raw) };
}

/**
 * A same-nonce replacement with new fees. Everything else (nonce, target,
 * call data: the whole batch, value, gas limit, chain, authorizations) is
 * copied from the original, so the replacement can only do what the
 * original would have done.
 */
export function resignDelegationTx(key: SigningKey, raw: string, fees: Fees): SignedTx {
  const old = Transaction.from(raw);
  if (old.type !== 2 && old.type !== 4) throw new RangeError(`not a type-2 or type-4 transaction (type ${old.type})`);
  return signDelegationTx(key, {
    chainId: old.chainId,
    nonce: BigInt(old.nonce),
    to: old.to!,
    data: old.data,
    value: old.value,
    gasLimit: old.gasLimit,
    fees,
    authorizations: old.authorizationList ?? [],
  });
}

/** EIP-7702 delegation designator: 0xef0100 followed by the target address. */
const DESIGNATOR = /^0xef0100([0-9a-f]{40})$/;

/** The address `code` delegates to (lowercase), or null for no code, contract code or a revoked delegation. */
export function delegationTarget(code: string): string | null {
  const m = DESIGNATOR.exec(code.toLowerCase());
  return m ? `0x${m[1]}` : null;
}

/** The contract `address` currently delegates to, or null. */
export async function readDelegation(provider: JsonRpcProvider, address: string, blockTag: string | number = "latest"): Promise<string | null> {
  return delegationTarget(await provider.getCode(address, blockTag));
}

/** Intrinsic gas of one authorization whose authority already exists (EIP-7702 PER_AUTH_BASE_COST). */
const PER_AUTH_BASE_COST = 12_500n;

/**
 * Whether the node accepts EIP-7702: estimate a self-call carrying one
 * authorization from a throwaway key (no funds, nothing sent). A node that
 * knows type 4 charges at least the authorization's cost on top of 21,000;
 * one that does not refuses the transaction or ignores the list.
 */
export async function supports7702(provider: JsonRpcProvider): Promise<boolean> {
  const key = new SigningKey(randomBytes(32));
  const from = computeAddress(key.publicKey);
  const { chainId } = await provider.getNetwork();
  const auth = signAuthorization(key, { chainId, address: from, nonce: 0n });
  try {
    const gas = await provider.estimateGas({ type: 4, from, to: from, data: "0x", authorizationList: [auth] });
    return gas >= 21_000n + PER_AUTH_BASE_COST;
  } catch (e) {
    // ethers reports any JSON-RPC error answer to eth_estimateGas as
    // CALL_EXCEPTION: the node answered and refused the transaction
    // (anvil before Prague: "Eip7702 is not supported"). Anything else
    // (timeout, refused connection) says nothing about support.
    if (isError(e, "CALL_EXCEPTION")) return false;
    throw e;
  }
}

export type BatchingMode = "7702" | "off";

/**
 * The batching mode of a chain: the configured one, or "7702" when unset
 * and the node supports it. Throws a ConfigError naming the key when
 * "7702" is configured on a node without it.
 */
export function decideBatching(chainKey: string, configured: BatchingMode | undefined, supported: boolean): BatchingMode {
  if (configured === "off") return "off";
  if (configured === "7702" && !supported) {
    throw new ConfigError(`invalid configuration:\n  ${chainKey}.batching: "7702" but the node does not accept EIP-7702 transactions (set "off" or use a node past Pectra)`);
  }
  return supported ? "7702" : "off";
}

/** Probe (unless switched off) and decide, for a chain at start. */
export async function resolveBatching(chain: Pick<ChainConfig, "batching"> & { key: string }, provider: JsonRpcProvider): Promise<BatchingMode> {
  if (chain.batching === "off") return "off";
  return decideBatching(chain.key, chain.batching, await supports7702(provider));
}
