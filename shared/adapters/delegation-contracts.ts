/**
 * The production EIP-7702 contracts (shared/contracts: BatchExecutor for hot
 * wallets, DepositSweeper for deposit wallets): their committed artifacts,
 * their addresses, and an idempotent deployment.
 *
 * Deployment goes through the deterministic CREATE2 factory
 * (0x4e59b44847b379578588920ca78fbf26c0b4956c, present on nearly every EVM
 * chain and on anvil) with a fixed salt, so a contract's address depends
 * only on its init code: the same on every chain, known before sending,
 * and whoever deploys it (even someone else, first) deploys exactly our
 * code. Running the deployment again finds the code and sends nothing; a
 * crash after broadcasting loses nothing either, the next run finds the
 * code or sends again (a second creation at the same address reverts
 * harmlessly). The sweeper's init code includes the collection wallet, so
 * each collection wallet has its own sweeper.
 *
 * Failure modes: a chain without the factory is refused with a
 * DeploymentError (nothing sent); node errors surface as ethers errors.
 */
import { readFileSync } from "node:fs";
import { AbiCoder, Interface, concat, getAddress, getCreate2Address, id, isError, keccak256, type InterfaceAbi, type JsonRpcProvider, type Signer } from "ethers";
import { fromRoot } from "../paths.ts";

export type DelegationContractName = "BatchExecutor" | "DepositSweeper";
/** the database's name for each (table delegation_contract) */
export type DelegationContractKind = "batch_executor" | "sweeper";

export const KIND_OF: Record<DelegationContractName, DelegationContractKind> = { BatchExecutor: "batch_executor", DepositSweeper: "sweeper" };

/** Arachnid's deterministic deployment proxy: calldata = salt (32 bytes) ++ init code. */
export const CREATE2_FACTORY = "0x4e59b44847b379578588920ca78fbf26c0b4956c";
export const DEPLOY_SALT = id("payment-gateway/eip7702/v1");

interface ProductionArtifact {
  abi: InterfaceAbi;
  bytecode: string;
  deployedBytecode: string;
}

let loaded: Record<DelegationContractName, ProductionArtifact> | null = null;

/** The committed artifact (read on first use, not at import). */
export function productionArtifact(name: DelegationContractName): ProductionArtifact {
  loaded ??= (JSON.parse(readFileSync(fromRoot("shared", "contracts", "artifacts.json"), "utf8")) as { contracts: Record<DelegationContractName, ProductionArtifact> }).contracts;
  const a = loaded[name];
  if (!a) throw new Error(`no artifact for ${name}`);
  return a;
}

const interfaces = new Map<DelegationContractName, Interface>();
export function contractInterface(name: DelegationContractName): Interface {
  let i = interfaces.get(name);
  if (!i) interfaces.set(name, (i = new Interface(productionArtifact(name).abi)));
  return i;
}

export interface PlannedContract {
  name: DelegationContractName;
  kind: DelegationContractKind;
  /** lowercase; where CREATE2 puts it */
  address: string;
  initCode: string;
  initCodeHash: string;
  /** the sweeper's immutable collection wallet (lowercase), null for the executor */
  collector: string | null;
}

/** Where `name` lives (for the sweeper: the one of `collector`), deployed or not. */
export function plannedContract(name: DelegationContractName, collector: string | null = null): PlannedContract {
  const a = productionArtifact(name);
  let initCode = a.bytecode;
  if (name === "DepositSweeper") {
    if (!collector) throw new RangeError("the sweeper is deployed for one collection wallet");
    initCode = concat([a.bytecode, AbiCoder.defaultAbiCoder().encode(["address"], [getAddress(collector)])]);
  }
  const initCodeHash = keccak256(initCode);
  return {
    name,
    kind: KIND_OF[name],
    address: getCreate2Address(CREATE2_FACTORY, DEPLOY_SALT, initCodeHash).toLowerCase(),
    initCode,
    initCodeHash,
    collector: name === "DepositSweeper" ? collector!.toLowerCase() : null,
  };
}

export class DeploymentError extends Error {
  override name = "DeploymentError";
}

/**
 * The code at `address` now, asked of the node every time: ethers' getCode
 * answers an identical call from its cache for 250 ms, so the "no code yet"
 * read before sending came back again after a creation mined within that
 * window (a dev chain mining quickly), and a deployment that had worked was
 * reported as reverted.
 */
async function codeOf(provider: JsonRpcProvider, address: string): Promise<string> {
  return String(await provider.send("eth_getCode", [address, "latest"]));
}

export interface DeployResult {
  contract: PlannedContract;
  /** "present": the code was already there, nothing was sent */
  status: "deployed" | "present";
  txHash: string | null;
  blockNumber: number | null;
  /** keccak256 of the code at the address */
  codeHash: string;
}

/**
 * Make sure `contract` is on the chain, sending its creation from `signer`
 * only when its address holds no code. Waits for the receipt.
 *
 * @example
 * const r = await ensureDeployed(provider, wallet.connect(provider), plannedContract("BatchExecutor"));
 */
export async function ensureDeployed(provider: JsonRpcProvider, signer: Signer, contract: PlannedContract): Promise<DeployResult> {
  const existing = await codeOf(provider, contract.address);
  if (existing !== "0x") return { contract, status: "present", txHash: null, blockNumber: null, codeHash: keccak256(existing) };
  if ((await codeOf(provider, CREATE2_FACTORY)) === "0x") {
    throw new DeploymentError(`no CREATE2 factory at ${CREATE2_FACTORY} on this chain: the contracts cannot get their deterministic addresses here`);
  }
  let sent: { hash: string; blockNumber: number } | null = null;
  try {
    const tx = await signer.sendTransaction({ to: CREATE2_FACTORY, data: concat([DEPLOY_SALT, contract.initCode]) });
    const receipt = await tx.wait(1);
    sent = { hash: tx.hash.toLowerCase(), blockNumber: receipt!.blockNumber };
  } catch (e) {
    // a creation of the same code by someone else landed first: ours
    // reverts (at estimation or on chain) and theirs is exactly our code
    if (!isError(e, "CALL_EXCEPTION")) throw e;
  }
  const code = await codeOf(provider, contract.address);
  if (code === "0x") throw new DeploymentError(`${contract.name}: the creation reverted and ${contract.address} holds no code`);
  return { contract, status: sent ? "deployed" : "present", txHash: sent?.hash ?? null, blockNumber: sent?.blockNumber ?? null, codeHash: keccak256(code) };
}
