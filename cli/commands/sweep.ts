/**
 * `payment sweep [--min AMOUNT] [--symbol USDT] [--chain ETH] [--dry-run]`:
 * consolidate deposit wallets' tokens into the collection wallet. Each
 * wallet holding at least AMOUNT becomes a `sweep` transfer (its own id,
 * the transfer-sender's exactly-once path); wallets short of ETH for gas
 * are topped up from the collection wallet first (`gas_topup`). No
 * business notification is sent for either: they are internal movements,
 * visible in `payment history <address>` and the audit trail.
 */
import type { Command } from "commander";
import { createChainClient } from "../../shared/adapters/chain.ts";
import { tryParseAmount } from "../../shared/domain/amount.ts";
import { assetOf } from "../../shared/domain/assets.ts";
import { createChainReads } from "../../shared/transfers/chain-reads.ts";
import { planSweeps, SweepError } from "../../shared/transfers/sweep-plan.ts";
import { CliError, CONFIG_OPTION_HELP, parseChain, runCli, UsageError } from "../context.ts";
import { operatorName } from "./notify.ts";

export function register(program: Command): void {
  program
    .command("sweep")
    .description("move deposit wallets' tokens to the collection wallet (gas topped up from it when needed)")
    .option("--min <amount>", "only wallets holding at least this much (decimal text)")
    .option("--symbol <symbol>", "token to sweep", "USDT")
    .option("--chain <chain>", "chain key", "ETH")
    .option("--dry-run", "only show what would be swept")
    .option("-c, --config <file>", CONFIG_OPTION_HELP)
    .action(async (opts: { min?: string; symbol: string; chain: string; dryRun?: boolean; config?: string }) => {
      await runCli(opts.config, async (ctx) => {
        const cfg = ctx.config.chains[parseChain(ctx.config, opts.chain)]!;
        const asset = assetOf(cfg, opts.symbol);
        if (!asset) throw new UsageError(`${opts.symbol} is not configured on ${opts.chain}`);
        let minUnits = 1n;
        if (opts.min !== undefined) {
          const m = tryParseAmount(opts.min, asset.decimals);
          if (!m.ok) throw new UsageError(`--min: ${m.reason}`);
          minUnits = m.units;
        }
        const client = createChainClient(cfg);
        try {
          const lines = await planSweeps(
            { config: ctx.config, pool: ctx.db.pool, queues: ctx.queues, reads: createChainReads(client.provider) },
            { chain: opts.chain, symbol: opts.symbol, minUnits, dryRun: !!opts.dryRun, actor: operatorName(), nowMs: Date.now() },
          );
          if (lines.length === 0) console.log(`no deposit wallet holds ${opts.symbol} to sweep`);
          for (const l of lines) console.log(`${l.address}  ${l.balance} ${opts.symbol}  ${l.action}${l.gasTopup ? ` (+${l.gasTopup} ${cfg.native_symbol} for gas)` : ""}`);
          const n = lines.filter((l) => l.action.startsWith("sweep")).length;
          console.log(opts.dryRun ? `dry run: ${n} wallet(s) would be swept` : `${n} sweep(s) queued`);
        } catch (e) {
          if (e instanceof SweepError) throw new CliError(e.message);
          throw e;
        } finally {
          client.close();
        }
      });
    });
}
