/**
 * `payment reconcile`: compare the book balances (table `balance`, moved only
 * by finalised deposits and transfers) with the chain, for every wallet we
 * hold and every address that has a book balance. Prints the differences and
 * exits 1 when there is any (for cron and alerting). `--adopt-chain` writes
 * the chain's figure into the book for the differing rows, with an audit row
 * holding both figures; nothing else ever changes a book balance by hand.
 *
 * Differences are expected where money moved outside the gateway (a hot
 * wallet funded from an exchange, gas paid by hand) or deposits are not final
 * yet; a difference that none of those explains is worth an investigation.
 */
import type { Command } from "commander";
import { Contract, JsonRpcProvider } from "ethers";
import type { Config } from "../../shared/config/load-config.ts";
import type { Db } from "../../shared/adapters/db/client.ts";
import { createChainClient, erc20 } from "../../shared/adapters/chain.ts";
import { decimalToUnits, formatUnits } from "../../shared/domain/amount.ts";
import { inTransaction } from "../../shared/adapters/db/sql.ts";
import { insertAudit } from "../../shared/adapters/db/outbox.ts";
import { operatorName } from "./notify.ts";
import { CONFIG_OPTION_HELP, EXIT, parseAddress, parseChain, runCli, UsageError } from "../context.ts";
import { assetOf } from "../../shared/domain/assets.ts";

export interface BalanceLine {
  chain: string;
  address: string;
  kind: string;
  symbol: string;
  book: string;
  onChain: string;
  difference: string;
}

const CHUNK = 100;

/** Book vs chain for every (address, asset) we keep a book for or hold a key for. */
export async function compareBalances(config: Config, db: Db, filter: { chain?: string; symbol?: string; address?: string } = {}): Promise<BalanceLine[]> {
  const out: BalanceLine[] = [];
  for (const chain of Object.values(config.chains)) {
    if (filter.chain && filter.chain !== chain.key) continue;
    const assets = [
      { symbol: chain.native_symbol, decimals: chain.native_decimals, token: null as string | null },
      ...Object.entries(chain.tokens).map(([symbol, t]) => ({ symbol, decimals: t.decimals, token: t.address })),
    ].filter((a) => !filter.symbol || a.symbol === filter.symbol);
    const wallets = await db.prisma.wallet.findMany({ where: { chain: chain.key }, select: { address: true, kind: true } });
    const books = await db.prisma.balance.findMany({ where: { chain: chain.key } });
    const kinds = new Map<string, string>(wallets.map((w) => [w.address, w.kind]));
    const addresses = [...new Set([...wallets.map((w) => w.address), ...books.map((b) => b.address)])]
      .filter((a) => !filter.address || a === filter.address.toLowerCase())
      .sort();
    const client = createChainClient(chain);
    try {
      for (const asset of assets) {
        for (let i = 0; i < addresses.length; i += CHUNK) {
          const slice = addresses.slice(i, i + CHUNK);
          // issued together: the provider sends them as one JSON-RPC batch
          const onChain = await Promise.all(slice.map((a) => chainBalance(client.provider, asset.token, a)));
          slice.forEach((address, n) => {
            const row = books.find((b) => b.address === address && b.symbol === asset.symbol);
            const book = row ? decimalToUnits(row.amount.toFixed(), asset.decimals) : 0n;
            const chainUnits = onChain[n]!;
            if (!row && chainUnits === 0n) return;
            out.push({
              chain: chain.key,
              address,
              kind: kinds.get(address) ?? "watched",
              symbol: asset.symbol,
              book: formatUnits(book, asset.decimals),
              onChain: formatUnits(chainUnits, asset.decimals),
              difference: formatUnits(chainUnits - book, asset.decimals),
            });
          });
        }
      }
    } finally {
      client.close();
    }
  }
  return out;
}

async function chainBalance(provider: JsonRpcProvider, token: string | null, address: string): Promise<bigint> {
  if (!token) return provider.getBalance(address);
  return (await new Contract(token, erc20, provider).getFunction("balanceOf")(address)) as bigint;
}

/** Set the book to the chain's figure for the given lines, with an audit row each. */
export async function adoptChain(db: Db, lines: BalanceLine[], actor: string): Promise<void> {
  await inTransaction(db.pool, async (conn) => {
    for (const l of lines) {
      await conn.query(
        `INSERT INTO balance (chain, address, symbol, amount, updated_at) VALUES (?, ?, ?, ?, NOW(3))
         ON DUPLICATE KEY UPDATE amount = VALUES(amount), updated_at = NOW(3)`,
        [l.chain, l.address, l.symbol, l.onChain],
      );
    }
    await insertAudit(
      conn,
      lines.map((l) => ({ actor, event: "balance.adopted_chain", address: l.address, data: { chain: l.chain, symbol: l.symbol, book: l.book, chain_balance: l.onChain } })),
    );
  });
}

/**
 * Transfers and deposits of `lines`' addresses that may be on chain but are
 * not final: the chain already shows them, the book only once they are.
 */
export async function notFinal(db: Db, lines: BalanceLine[]): Promise<{ transfers: number; deposits: number }> {
  const addresses = [...new Set(lines.map((l) => l.address))];
  const chains = [...new Set(lines.map((l) => l.chain))];
  const [transfers, deposits] = await Promise.all([
    db.prisma.transfer.count({
      where: { chain: { in: chains }, state: { in: ["signed", "sent", "mined"] }, OR: [{ fromAddress: { in: addresses } }, { toAddress: { in: addresses } }] },
    }),
    db.prisma.deposit.count({ where: { chain: { in: chains }, state: "seen", OR: [{ toAddress: { in: addresses } }, { fromAddress: { in: addresses } }] } }),
  ]);
  return { transfers, deposits };
}

const DIFFERENCE_HINT = `payment: the book and the chain differ. Money moved outside the gateway (a wallet funded by hand: check, then --adopt-chain), a deposit not final yet (wait), or something the gateway did not do (investigate: payment history <address>). docs/operations.md, "Book balances against the chain".`;

export function register(program: Command): void {
  program
    .command("reconcile")
    .description("compare book balances with the chain; exit 1 on any difference")
    .option("-c, --config <file>", CONFIG_OPTION_HELP)
    .option("--chain <chain>", "only this chain")
    .option("--symbol <symbol>", "only this asset")
    .option("--address <address>", "only this address")
    .option("--all", "print matching rows too, not only differences")
    .option("--json", "print JSON")
    .option("--adopt-chain", "write the chain's balance into the book where they differ (audited)")
    .action(async (opts: { config?: string; chain?: string; symbol?: string; address?: string; all?: boolean; json?: boolean; adoptChain?: boolean }) => {
      const address = opts.address === undefined ? undefined : parseAddress(opts.address, "--address");
      await runCli(opts.config, async ({ config, db }) => {
        const filter = { ...opts, address, chain: opts.chain === undefined ? undefined : parseChain(config, opts.chain) };
        if (opts.symbol !== undefined && !Object.values(config.chains).some((c) => assetOf(c, opts.symbol!) !== null && (!filter.chain || c.key === filter.chain))) {
          throw new UsageError(`--symbol ${opts.symbol} is not configured${filter.chain ? ` on ${filter.chain}` : ""}`);
        }
        const lines = await compareBalances(config, db, filter);
        const differing = lines.filter((l) => l.difference !== "0");
        const shown = opts.all ? lines : differing;
        if (opts.json) console.log(JSON.stringify(shown, null, 2));
        else if (shown.length === 0) console.log(`book balances match the chain (${lines.length} balances checked)`);
        else console.table(shown);
        if (opts.adoptChain && differing.length > 0) {
          await adoptChain(db, differing, operatorName());
          console.log(`adopted the chain's figure for ${differing.length} balance(s)`);
        } else if (differing.length > 0) {
          process.exitCode = EXIT.failed;
          const { transfers, deposits } = await notFinal(db, differing);
          if (transfers + deposits > 0) {
            console.error(`payment: ${transfers} transfer(s) and ${deposits} deposit(s) of these addresses are on chain but not final yet; the book moves when they are: run it again then.`);
          }
          console.error(DIFFERENCE_HINT);
        }
      });
    });
}
