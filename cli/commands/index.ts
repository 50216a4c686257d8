/**
 * Operator subcommands beyond start/migrate. Each module exports a
 * `register(program)` and is listed here.
 */
import type { Command } from "commander";

const modules: { register(program: Command): void }[] = [];

export function registerCommands(program: Command): void {
  for (const m of modules) m.register(program);
}
