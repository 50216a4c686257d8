/**
 * `payment contracts deploy|list`: the EIP-7702 delegation targets
 * (shared/contracts) on each chain.
 *
 *   deploy [--chain ETH]   put BatchExecutor, and the DepositSweeper of the
 *       chain's collection_address, on every chain whose `batching` is not
 *       "off" (or on the one named), and record them in the database. The
 *       deployer's private key is read from stdin, never argv: any funded
 *       account, refused if it is one of the gateway's wallets (the gateway
 *       plans those nonces itself). Idempotent: a contract already on chain
 *       is recorded and nothing is sent (its address is fixed by its code,
 *       CREATE2); run it again after a crash, or on every release.
 *   list [--chain ETH]     this build's addresses per chain: recorded or
 *       not, code on chain or not; then every recorded row.
 *   check [--chain ETH]    whom each of the gateway's wallets delegates to
 *       now: nothing, one of our recorded contracts, or anything else (exit
 *       1: someone with the wallet's key delegated it; treat the key as
 *       compromised). docs/delegation-security.md, "What an operator checks".
 *   revoke [--chain ETH] [--address A ...] [--dry-run]   the emergency
 *       switch-off: every wallet of ours that delegates (to anything) signs a
 *       revocation (an authorization for address(0) at its current nonce),
 *       and a relayer account, its key read from stdin like the deployer's
 *       and never one of ours (the gateway plans those nonces), carries them
 *       in type-4 transactions and pays the gas; a deposit wallet has none.
 *       Refused while the chain's batching is not "off": a sender would
 *       delegate the wallets again with its next batch. Each wallet is read
 *       again afterwards; one whose nonce moved while the revocation was in
 *       flight still delegates (exit 1): run it again.
 *
 * Nothing here prints key material.
 */
import type { Command } from "commander";
import { Wallet, type Authorization, type JsonRpcProvider } from "ethers";
import { createChainClient } from "../../shared/adapters/chain.ts";
import { ensureDeployed, plannedContract, DeploymentError, type PlannedContract } from "../../shared/adapters/delegation-contracts.ts";
import { recordDelegationContract, listDelegationContracts } from "../../shared/adapters/db/delegation-contracts.ts";
import { addressOfKey, createKeystore, normalisePrivateKey, KeystoreError, type Keystore } from "../../shared/adapters/keystore.ts";
import { readDelegation, signRevocation } from "../../shared/adapters/eip7702.ts";
import { insertAudit } from "../../shared/adapters/db/outbox.ts";
import { inList, inTransaction } from "../../shared/adapters/db/sql.ts";
import type { Config } from "../../shared/config/load-config.ts";
import { CliError, CONFIG_OPTION_HELP, UsageError, parseAddress, parseChain, runCli, type CliContext } from "../context.ts";
import { operatorName } from "./notify.ts";
import { readSecret, requireMasterKey } from "./wallet.ts";

type ChainEntry = Config["chains"][string];

function chainsOf(config: Config, only: string | undefined): ChainEntry[] {
  if (only === undefined) return Object.values(config.chains);
  return [config.chains[parseChain(config, only)]!];
}

/** This build's contracts for a chain: the executor, and the sweeper when there is a collection wallet. */
function plannedFor(chain: ChainEntry): PlannedContract[] {
  const planned = [plannedContract("BatchExecutor")];
  if (chain.collection_address) planned.push(plannedContract("DepositSweeper", chain.collection_address));
  return planned;
}

/**
 * A gas-paying key from stdin (never argv), refused when it belongs to one of
 * the gateway's wallets: the gateway plans those nonces itself, a
 * transaction sent beside it would take one of them.
 */
async function outsideKey(ctx: CliContext, prompt: string, what: string): Promise<{ key: string; address: string }> {
  let key: string;
  try {
    key = normalisePrivateKey(await readSecret(prompt));
  } catch (e) {
    if (e instanceof KeystoreError) throw new UsageError(e.message);
    throw e;
  }
  const address = addressOfKey(key);
  const ours = (await ctx.db.pool.query("SELECT chain, kind FROM wallet WHERE address = ? LIMIT 1", [address])) as { chain: string; kind: string }[];
  if (ours[0]) throw new CliError(`${address} is the gateway's ${ours[0].kind} wallet on ${ours[0].chain}: ${what} from another account (the gateway plans that wallet's nonces)`);
  return { key, address };
}

interface WalletDelegation {
  address: string;
  kind: string;
  /** the contract it delegates to (lowercase), or null */
  target: string | null;
}

/** JSON-RPC reads of wallet codes at once (the provider batches them) */
const CODE_READS = 100;

/** The chain's wallets (all, or the ones named) and whom each delegates to now. */
async function walletDelegations(ctx: CliContext, chain: ChainEntry, provider: JsonRpcProvider, only: string[]): Promise<WalletDelegation[]> {
  const rows = (
    only.length > 0
      ? await ctx.db.pool.query(`SELECT address, kind FROM wallet WHERE chain = ? AND address IN (${inList(only.length)}) ORDER BY kind, address`, [chain.key, ...only])
      : await ctx.db.pool.query("SELECT address, kind FROM wallet WHERE chain = ? ORDER BY kind, address", [chain.key])
  ) as { address: string; kind: string }[];
  const missing = only.filter((a) => !rows.some((r) => r.address === a));
  if (missing.length > 0) throw new CliError(`${chain.key}: not a wallet of this gateway: ${missing.join(", ")}`);
  const out: WalletDelegation[] = [];
  for (let i = 0; i < rows.length; i += CODE_READS) {
    const chunk = rows.slice(i, i + CODE_READS);
    const targets = await Promise.all(chunk.map((r) => readDelegation(provider, r.address)));
    chunk.forEach((r, k) => out.push({ address: r.address, kind: r.kind, target: targets[k]! }));
  }
  return out;
}

/** authorizations carried per relayed transaction (25,000 gas each at most) */
const REVOCATIONS_PER_TX = 100;

export function register(program: Command): void {
  const contracts = program.command("contracts").description("the EIP-7702 contracts wallets delegate to (batch payouts, sweeps)");

  contracts
    .command("deploy")
    .description("deploy the EIP-7702 contracts where missing and record them (deployer key from stdin)")
    .option("--chain <chain>", "only this chain")
    .option("-c, --config <file>", CONFIG_OPTION_HELP)
    .action(async (opts: { chain?: string; config?: string }) => {
      await runCli(opts.config, async (ctx) => {
        const chains = chainsOf(ctx.config, opts.chain).filter((c) => {
          if (c.batching !== "off") return true;
          console.log(`${c.key}: batching is "off": nothing to deploy`);
          return false;
        });
        if (chains.length === 0) return;
        const { key, address: deployer } = await outsideKey(ctx, "deployer private key (hex, for gas only): ", "deploy");
        const actor = operatorName();
        for (const chain of chains) {
          const client = createChainClient(chain);
          try {
            const signer = new Wallet(key, client.provider);
            if (!chain.collection_address) console.log(`${chain.key}: no collection_address: the sweeper is not deployed`);
            for (const planned of plannedFor(chain)) {
              const r = await ensureDeployed(client.provider, signer, planned);
              const rec = await recordDelegationContract(ctx.db.pool, chain.key, r, deployer, actor);
              const how = r.status === "deployed" ? `deployed in ${r.txHash}` : "already on chain";
              console.log(`${chain.key}  ${planned.name.padEnd(14)} ${planned.address}  ${how}, ${rec === "recorded" ? "recorded" : "already recorded"}`);
            }
          } catch (e) {
            if (e instanceof DeploymentError) throw new CliError(`${chain.key}: ${e.message}`);
            throw e;
          } finally {
            client.close();
          }
        }
      });
    });

  contracts
    .command("list")
    .description("this build's contract addresses per chain, recorded and on chain or not; every recorded contract")
    .option("--chain <chain>", "only this chain")
    .option("-c, --config <file>", CONFIG_OPTION_HELP)
    .action(async (opts: { chain?: string; config?: string }) => {
      await runCli(opts.config, async (ctx) => {
        const chains = chainsOf(ctx.config, opts.chain);
        const rows = (await listDelegationContracts(ctx.db.pool, opts.chain)).filter((r) => chains.some((c) => c.key === r.chain));
        for (const chain of chains) {
          const recorded = new Set(rows.filter((r) => r.chain === chain.key).map((r) => r.address));
          const client = createChainClient(chain);
          try {
            for (const planned of plannedFor(chain)) {
              const code = await client.provider.getCode(planned.address);
              const collector = planned.collector ? `  collector ${planned.collector}` : "";
              console.log(`${chain.key}  ${planned.name.padEnd(14)} ${planned.address}  ${recorded.has(planned.address) ? "recorded" : "NOT RECORDED"}, ${code === "0x" ? "NO CODE ON CHAIN" : "code on chain"}${collector}`);
            }
          } finally {
            client.close();
          }
        }
        if (rows.length === 0) return;
        console.log("\nrecorded:");
        for (const r of rows) {
          console.log(`${r.chain}  ${r.kind.padEnd(14)} ${r.address}  ${r.deploy_tx_hash ? `deployed in ${r.deploy_tx_hash} by ${r.deployed_by}` : "found on chain"}  ${r.created_at.toISOString()}`);
        }
      });
    });

  contracts
    .command("check")
    .description("whom each of the gateway's wallets delegates to (EIP-7702): nothing, our contracts, or anything else (exit 1)")
    .option("--chain <chain>", "only this chain")
    .option("-c, --config <file>", CONFIG_OPTION_HELP)
    .action(async (opts: { chain?: string; config?: string }) => {
      await runCli(opts.config, async (ctx) => {
        let foreign = 0;
        for (const chain of chainsOf(ctx.config, opts.chain)) {
          // every build ever recorded for the chain: a wallet may still delegate to an earlier one
          const ours = new Map((await listDelegationContracts(ctx.db.pool, chain.key)).map((r) => [r.address, r.kind]));
          const client = createChainClient(chain);
          try {
            const wallets = await walletDelegations(ctx, chain, client.provider, []);
            const delegated = wallets.filter((w) => w.target !== null);
            const elsewhere = delegated.filter((w) => !ours.has(w.target!));
            foreign += elsewhere.length;
            console.log(
              `${chain.key}  ${wallets.length} wallets: ${delegated.length - elsewhere.length} delegate to our contracts, ${wallets.length - delegated.length} to nothing, ${elsewhere.length} elsewhere`,
            );
            for (const w of delegated) {
              const kind = ours.get(w.target!);
              console.log(
                `${chain.key}  ${w.kind.padEnd(10)} ${w.address}  ${kind ? `delegates to our ${kind} ${w.target}` : `DELEGATES TO ${w.target}, not one of our contracts: treat its key as compromised`}`,
              );
            }
          } finally {
            client.close();
          }
        }
        if (foreign > 0) throw new CliError(`${foreign} wallet(s) delegate to a contract that is not ours`);
      });
    });

  contracts
    .command("revoke")
    .description('revoke the EIP-7702 delegation of every wallet of ours that has one (relayer key from stdin; batching must be "off")')
    .option("--chain <chain>", "only this chain")
    .option("--address <address...>", "only these wallets")
    .option("--dry-run", "say what would be revoked, send nothing")
    .option("-c, --config <file>", CONFIG_OPTION_HELP)
    .action(async (opts: { chain?: string; address?: string[]; dryRun?: boolean; config?: string }) => {
      const only = (opts.address ?? []).map((a) => parseAddress(a, "--address"));
      await runCli(opts.config, async (ctx) => {
        const chains = chainsOf(ctx.config, opts.chain);
        for (const chain of chains) {
          if (chain.batching !== "off") {
            throw new CliError(
              `${chain.key}: batching is ${chain.batching ? `"${chain.batching}"` : 'unset ("7702" where the node supports it)'}: a sender would delegate the wallets again with its next batch; set batching "off" for ${chain.key}, restart the senders, then revoke`,
            );
          }
        }
        let relayer: { key: string; address: string } | null = null;
        let keystore: Keystore | null = null;
        let remaining = 0;
        const actor = operatorName();
        for (const chain of chains) {
          const client = createChainClient(chain);
          try {
            const delegated = (await walletDelegations(ctx, chain, client.provider, only)).filter((w) => w.target !== null);
            if (delegated.length === 0) {
              console.log(`${chain.key}: no wallet of ours delegates: nothing to revoke`);
              continue;
            }
            for (const w of delegated) console.log(`${chain.key}  ${w.kind.padEnd(10)} ${w.address}  delegates to ${w.target}${opts.dryRun ? ": would be revoked" : ""}`);
            if (opts.dryRun) continue;
            relayer ??= await outsideKey(ctx, "relayer private key (hex, pays the gas): ", "relay");
            const wallets = (keystore ??= createKeystore({ pool: ctx.db.pool, masterKey: requireMasterKey(ctx) }));
            const signer = new Wallet(relayer.key, client.provider);
            const { chainId } = await client.provider.getNetwork();
            for (let i = 0; i < delegated.length; i += REVOCATIONS_PER_TX) {
              const chunk = delegated.slice(i, i + REVOCATIONS_PER_TX);
              // each at the wallet's nonce when the relayed transaction is processed: its pending count now
              const authorizationList: Authorization[] = await Promise.all(
                chunk.map(async (w) => signRevocation(await wallets.signingKey(chain.key, w.address), chainId, BigInt(await client.provider.getTransactionCount(w.address, "pending")))),
              );
              const tx = await signer.sendTransaction({ type: 4, to: relayer.address, authorizationList, gasLimit: 21_000n + 25_000n * BigInt(chunk.length) + 20_000n });
              const receipt = await tx.wait(1);
              const after = await Promise.all(chunk.map((w) => readDelegation(client.provider, w.address)));
              const revoked = chunk.filter((_, k) => after[k] === null);
              await inTransaction(ctx.db.pool, (conn) =>
                insertAudit(
                  conn,
                  revoked.map((w) => ({ actor, event: "delegation.revoked", address: w.address, data: { chain: chain.key, previous: w.target, tx_hash: tx.hash.toLowerCase(), relayer: relayer!.address } })),
                ),
              );
              chunk.forEach((w, k) => {
                if (after[k] === null) console.log(`${chain.key}  ${w.kind.padEnd(10)} ${w.address}  revoked in ${tx.hash.toLowerCase()} (block ${receipt!.blockNumber})`);
                else console.log(`${chain.key}  ${w.kind.padEnd(10)} ${w.address}  STILL DELEGATES to ${after[k]} (its nonce moved while the revocation was in flight): run revoke again`);
              });
              remaining += chunk.length - revoked.length;
            }
          } finally {
            client.close();
          }
        }
        if (remaining > 0) throw new CliError(`${remaining} wallet(s) still delegate`);
      });
    });
}
