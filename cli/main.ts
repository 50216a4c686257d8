/**
 * The `payment` command. Every subcommand loads the config once (found as
 * cli/context.ts says: --config, PAYMENT_CONFIG, or the dev system's; env
 * overrides; zod validation) and reports a bad value by its key, without a
 * stack trace. Exit codes are the same for every command (cli/context.ts).
 */
import { readFileSync } from "node:fs";
import { Command, CommanderError, Option } from "commander";
import { fromRoot } from "../shared/paths.ts";
import { ConfigError, configWarnings } from "../shared/config/load-config.ts";
import { argvSecretWarnings, loadSecrets } from "../shared/config/secrets.ts";
import { MigrationError, migrate } from "../shared/adapters/db/migrate.ts";
import { createLogger } from "../shared/logger.ts";
import { createRuntime, runServices } from "./runtime.ts";
import { buildServices, resolveRoles, ROLES } from "./roles.ts";
import { preflight } from "./preflight.ts";
import { registerCommands } from "./commands/index.ts";
import { CONFIG_OPTION_HELP, EXIT, EXIT_HELP, loadCliConfig, reportCliError } from "./context.ts";

const { version } = JSON.parse(readFileSync(fromRoot("package.json"), "utf8")) as { version: string };

const program = new Command("payment")
  .description("Self-hosted crypto payment gateway (RabbitMQ in/out, BullMQ workers, MySQL, EVM chains)")
  .version(version)
  .showHelpAfterError()
  // usage errors are thrown (and exit 2 below) instead of commander's exit 1
  .exitOverride();

program
  .command("start")
  .description("run one or more roles until SIGTERM")
  .option("-c, --config <file>", CONFIG_OPTION_HELP)
  .addOption(new Option("-r, --role <role...>", `roles to run: all, ${ROLES.join(", ")}`).default(["all"]))
  .option("-k, --key <key>", "communication key (prefer PAYMENT_KEY: argv is visible to other users)")
  .action(async (opts: { config?: string; role: string[]; key?: string }) => {
    const { config, env } = loadCliConfig(opts.config);
    const secrets = loadSecrets({ key: opts.key, env });
    const roles = resolveRoles(opts.role);
    const logger = createLogger({ level: config.log.level });
    for (const w of [...configWarnings(config), ...argvSecretWarnings(opts)]) logger.warn(w);
    await preflight(config, { roles, logger });
    const rt = createRuntime(config, secrets, logger);
    await runServices(rt, await buildServices(rt, roles));
  });

program
  .command("migrate")
  .description("bring the database (created if missing) to the current schema")
  .option("-c, --config <file>", CONFIG_OPTION_HELP)
  .action(async (opts: { config?: string }) => {
    const { config } = loadCliConfig(opts.config);
    const r = await migrate(config.mysql_url, { log: (m) => console.log(m) });
    console.log(r.applied.length ? `applied ${r.applied.length} migration(s)` : "database is up to date");
  });

registerCommands(program);

const withExitHelp = (c: Command): void => {
  c.addHelpText("after", EXIT_HELP);
  c.commands.forEach(withExitHelp);
};
withExitHelp(program);

try {
  await program.parseAsync(process.argv);
} catch (e) {
  if (e instanceof CommanderError) {
    // commander printed the message (or the help) already
    process.exit(e.exitCode === 0 ? EXIT.done : EXIT.usage);
  }
  if (e instanceof ConfigError) {
    console.error(`payment: ${e.message}`);
    process.exit(EXIT.usage);
  }
  if (e instanceof MigrationError) {
    console.error(`payment: ${e.message}`);
    process.exit(EXIT.failed);
  }
  if (reportCliError(e)) process.exit(process.exitCode);
  throw e;
}
