/**
 * Book balances (table `balance`), moved inside the finalising transaction
 * of a deposit (credit) or transfer (debit), so a balance changes exactly
 * when, and as often as, a final notification is written.
 */
import type { Conn } from "./sql.ts";

/** Add `delta` (exact decimal text, may be negative) to an address's balance of `symbol`. */
export async function addToBalance(conn: Conn, chain: string, address: string, symbol: string, delta: string): Promise<void> {
  await conn.query(
    `INSERT INTO balance (chain, address, symbol, amount, updated_at) VALUES (?, ?, ?, ?, NOW(3))
     ON DUPLICATE KEY UPDATE amount = amount + VALUES(amount), updated_at = NOW(3)`,
    [chain, address, symbol, delta],
  );
}
