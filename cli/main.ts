/**
 * The `payment` command. Every subcommand loads the config once (file from
 * --config or PAYMENT_CONFIG, env overrides, zod validation) and reports a
 * bad value by its key, without a stack trace.
 */
import { Command, Option } from "commander";
import { ConfigError, configWarnings, loadConfig } from "../shared/config/load-config.ts";
import { loadSecrets } from "../shared/config/secrets.ts";
import { MigrationError, migrate } from "../shared/adapters/db/migrate.ts";
import { createLogger } from "../shared/logger.ts";
import { createRuntime, runServices } from "./runtime.ts";
import { buildServices, resolveRoles, ROLES } from "./roles.ts";
import { preflight } from "./preflight.ts";
import { registerCommands } from "./commands/index.ts";

const program = new Command("payment")
  .description("Self-hosted crypto payment gateway (RabbitMQ in/out, BullMQ workers, MySQL, EVM chains)")
  .showHelpAfterError();

program
  .command("start")
  .description("run one or more roles until SIGTERM")
  .option("-c, --config <file>", "configuration file (default: $PAYMENT_CONFIG)")
  .addOption(new Option("-r, --role <role...>", `roles to run: all, ${ROLES.join(", ")}`).default(["all"]))
  .option("-k, --key <key>", "communication key (prefer PAYMENT_KEY: argv is visible to other users)")
  .action(async (opts: { config?: string; role: string[]; key?: string }) => {
    const config = loadConfig({ file: opts.config });
    const secrets = loadSecrets({ key: opts.key });
    const roles = resolveRoles(opts.role);
    const logger = createLogger({ level: config.log.level });
    for (const w of configWarnings(config)) logger.warn(w);
    await preflight(config, { roles, logger });
    const rt = createRuntime(config, secrets, logger);
    await runServices(rt, await buildServices(rt, roles));
  });

program
  .command("migrate")
  .description("bring the database (created if missing) to the current schema")
  .option("-c, --config <file>", "configuration file (default: $PAYMENT_CONFIG)")
  .action(async (opts: { config?: string }) => {
    const config = loadConfig({ file: opts.config });
    const r = await migrate(config.mysql_url, { log: (m) => console.log(m) });
    console.log(r.applied.length ? `applied ${r.applied.length} migration(s)` : "database is up to date");
  });

registerCommands(program);

try {
  await program.parseAsync(process.argv);
} catch (e) {
  if (e instanceof ConfigError || e instanceof MigrationError) {
    console.error(`payment: ${e.message}`);
    process.exit(2);
  }
  throw e;
}
