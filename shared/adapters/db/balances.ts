/**
 * Book balances (table `balance`), moved inside the finalising transaction
 * of a deposit (credit) or transfer (debit), so a balance changes exactly
 * when, and as often as, a final notification is written.
 */
import { placeholders, type Conn } from "./sql.ts";

/** Add `delta` (exact decimal text, may be negative) to an address's balance of `symbol`. */
export async function addToBalance(conn: Conn, chain: string, address: string, symbol: string, delta: string): Promise<void> {
  await conn.query(
    `INSERT INTO balance (chain, address, symbol, amount, updated_at) VALUES (?, ?, ?, ?, NOW(3))
     ON DUPLICATE KEY UPDATE amount = amount + VALUES(amount), updated_at = NOW(3)`,
    [chain, address, symbol, delta],
  );
}

export interface BalanceDelta {
  chain: string;
  address: string;
  symbol: string;
  /** exact decimal text, may be negative */
  delta: string;
}

/**
 * Several `addToBalance`s in one statement (a block's deposits finalised
 * together). Rows of the same address and asset simply add up: a multi-row
 * INSERT applies ON DUPLICATE KEY UPDATE row by row, in order.
 */
export async function addToBalances(conn: Conn, deltas: BalanceDelta[]): Promise<void> {
  if (deltas.length === 0) return;
  await conn.query(
    `INSERT INTO balance (chain, address, symbol, amount, updated_at) VALUES ${placeholders(deltas.length, 4).replaceAll("?)", "?, NOW(3))")}
     ON DUPLICATE KEY UPDATE amount = amount + VALUES(amount), updated_at = NOW(3)`,
    deltas.flatMap((d) => [d.chain, d.address, d.symbol, d.delta]),
  );
}
