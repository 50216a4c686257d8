/**
 * Operator subcommands beyond start/migrate. Each module exports a
 * `register(program)` and is listed here.
 */
import type { Command } from "commander";
import * as dev from "./dev.ts";
import * as devTools from "./dev-tools.ts";
import * as history from "./history.ts";
import * as notify from "./notify.ts";
import * as wallet from "./wallet.ts";
import * as retry from "./retry.ts";
import * as approve from "./approve.ts";
import * as sweep from "./sweep.ts";
import * as reconcile from "./reconcile.ts";
import * as contracts from "./contracts.ts";

const modules: { register(program: Command): void }[] = [dev, devTools, history, notify, wallet, retry, approve, sweep, reconcile, contracts];

export function registerCommands(program: Command): void {
  for (const m of modules) m.register(program);
}
