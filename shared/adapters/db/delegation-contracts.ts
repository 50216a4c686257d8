/**
 * The delegation_contract table: which EIP-7702 targets are on which chain
 * (recorded by `payment contracts deploy` once the code is there), and the
 * ones of the current build that senders delegate wallets to.
 *
 * Recording is idempotent: (chain, address) is unique and a contract's
 * address is fixed by its init code, so recording again changes nothing
 * (the first row, with its deployment transaction, is kept). The row and
 * its audit entry are written in one transaction.
 */
import type { Pool } from "mariadb";
import { inTransaction, isDuplicateKey } from "./sql.ts";
import { insertAudit } from "./outbox.ts";
import { plannedContract, type DelegationContractKind, type DeployResult } from "../delegation-contracts.ts";

export interface DelegationContractRow {
  chain: string;
  kind: DelegationContractKind;
  address: string;
  collector: string | null;
  init_code_hash: string;
  code_hash: string;
  deploy_tx_hash: string | null;
  block_number: bigint | null;
  deployed_by: string | null;
  created_at: Date;
}

const COLUMNS = "chain, kind, address, collector, init_code_hash, code_hash, deploy_tx_hash, block_number, deployed_by, created_at";

/** Record a contract found or put on `chain`; "known" when it was recorded before. */
export async function recordDelegationContract(pool: Pool, chain: string, r: DeployResult, deployedBy: string | null, actor: string): Promise<"recorded" | "known"> {
  const c = r.contract;
  try {
    await inTransaction(pool, async (conn) => {
      await conn.query(
        `INSERT INTO delegation_contract (chain, kind, address, collector, init_code_hash, code_hash, deploy_tx_hash, block_number, deployed_by)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
        [chain, c.kind, c.address, c.collector, c.initCodeHash, r.codeHash, r.txHash, r.blockNumber, r.txHash ? deployedBy : null],
      );
      await insertAudit(conn, [
        {
          actor,
          event: "delegation_contract_recorded",
          address: c.address,
          data: { chain, kind: c.kind, collector: c.collector, status: r.status, tx_hash: r.txHash, code_hash: r.codeHash, init_code_hash: c.initCodeHash },
        },
      ]);
    });
    return "recorded";
  } catch (e) {
    // (chain, address) names one build of one contract: the row there is this one
    if (isDuplicateKey(e)) return "known";
    throw e;
  }
}

/** Every recorded contract, oldest first (optionally of one chain). */
export async function listDelegationContracts(pool: Pool, chain?: string): Promise<DelegationContractRow[]> {
  const where = chain ? "WHERE chain = ?" : "";
  return (await pool.query(`SELECT ${COLUMNS} FROM delegation_contract ${where} ORDER BY id`, chain ? [chain] : [])) as DelegationContractRow[];
}

export interface CurrentDelegationContracts {
  /** this build's BatchExecutor on the chain, when recorded */
  batchExecutor: string | null;
  /** this build's DepositSweeper for `collector` on the chain, when recorded */
  sweeper: string | null;
}

/** The targets of the current build recorded on `chain`: what wallets should delegate to. */
export async function currentDelegationContracts(pool: Pool, chain: string, collector: string | null): Promise<CurrentDelegationContracts> {
  const executor = plannedContract("BatchExecutor").address;
  const sweeper = collector ? plannedContract("DepositSweeper", collector).address : null;
  const rows = (await pool.query("SELECT address FROM delegation_contract WHERE chain = ? AND address IN (?, ?)", [chain, executor, sweeper ?? executor])) as { address: string }[];
  const found = new Set(rows.map((r) => r.address));
  return { batchExecutor: found.has(executor) ? executor : null, sweeper: sweeper && found.has(sweeper) ? sweeper : null };
}
