/**
 * `payment dev`: the embedded default. Starts anvil (from npm) on a free port,
 * deploys the USDT-like test token, writes a dev config and keys under .dev/,
 * resets and migrates a dev database, imports funded dev wallets (their
 * funding booked, so `payment reconcile` starts clean), and runs every role
 * in this one process. The dev chain starts from block 0 each time, so the
 * dev database, the dev Redis prefix and the dev queues are reset each time
 * too. Its Redis keys, queues and exchange all carry the dev prefix
 * (`payment-dev`): a dev gateway never touches a real one's on the same
 * Redis or broker.
 *
 * Redis, RabbitMQ and MySQL are expected locally (or via `docker compose up
 * -d redis rabbitmq mysql`); a missing one is named with how to start it.
 */
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, writeFileSync, chmodSync } from "node:fs";
import { createServer, type AddressInfo } from "node:net";
import path from "node:path";
import { InvalidArgumentError, type Command } from "commander";
import * as mariadb from "mariadb";
import { Contract, JsonRpcProvider, Wallet, NonceManager } from "ethers";
import { Redis } from "ioredis";
import * as amqp from "amqplib";
import { loadConfig, rabbitUrls, type Config } from "../../shared/config/load-config.ts";
import { prefixedRoutes, RMQ_ROUTE_KEYS } from "../../shared/config/schema.ts";
import { declareRoutes } from "../../shared/adapters/amqp.ts";
import { loadSecrets } from "../../shared/config/secrets.ts";
import { migrate } from "../../shared/adapters/db/migrate.ts";
import { poolConfigFromUrl } from "../../shared/adapters/db/client.ts";
import { startAnvil, deploy, artifact, type Anvil } from "../../shared/devchain/anvil.ts";
import { createLogger } from "../../shared/logger.ts";
import { checkMysql, checkRabbit, checkRedis } from "../preflight.ts";
import { createRuntime, runServices } from "../runtime.ts";
import { buildServices, resolveRoles } from "../roles.ts";
import { encryptPrivateKey } from "../../shared/adapters/keystore.ts";
import { CliError, DEV_DIR, DEV_PREFIX, UsageError } from "../context.ts";
import { adoptChain, compareBalances } from "./reconcile.ts";
import { ensureDeployed, plannedContract } from "../../shared/adapters/delegation-contracts.ts";
import { recordDelegationContract } from "../../shared/adapters/db/delegation-contracts.ts";

interface DevOptions {
  blockTime: string;
  confirmHeight: string;
  dashboardPort: string;
  prefix: string;
  mysqlUrl?: string;
  redisUrl: string;
  amqpUrl: string;
}

/** A secret kept in .dev/ (mode 0600) so dev-tools can sign with it; dev only. */
function devSecret(name: string, make: () => string): string {
  const file = path.join(DEV_DIR, name);
  if (existsSync(file)) return readFileSync(file, "utf8").trim();
  const value = make();
  writeFileSync(file, value + "\n", { mode: 0o600 });
  chmodSync(file, 0o600);
  return value;
}

async function resetDatabase(url: string) {
  const cfg = poolConfigFromUrl(url, 1);
  const conn = await mariadb.createConnection({ ...cfg, database: undefined });
  try {
    await conn.query(`DROP DATABASE IF EXISTS \`${cfg.database.replace(/`/g, "``")}\``);
  } finally {
    await conn.end();
  }
  await migrate(url);
}

/**
 * The dev chain and database start from nothing each time, so the rest of
 * the dev state must too: BullMQ jobs left under the dev Redis prefix carry
 * row ids of the dropped database (a deterministic job id that already
 * exists would swallow a new job of the same id), and notifications left in
 * the dev queues describe transactions of a chain that is gone.
 */
async function resetDevQueues(config: Config) {
  const redis = new Redis(config.redis_url, { lazyConnect: true, maxRetriesPerRequest: 1 });
  try {
    await redis.connect();
    let cursor = "0";
    do {
      const [next, keys] = await redis.scan(cursor, "MATCH", `${config.redis.prefix}:*`, "COUNT", 1000);
      if (keys.length > 0) await redis.unlink(...keys);
      cursor = next;
    } while (cursor !== "0");
  } finally {
    redis.disconnect();
  }
  const conn = await amqp.connect(rabbitUrls(config)[0]!, { noDelay: true });
  try {
    const ch = await conn.createChannel();
    const routes = RMQ_ROUTE_KEYS.map((k) => config.rmq_config[k]);
    await declareRoutes(ch, routes);
    for (const r of routes) await ch.purgeQueue(r.queue);
    await ch.close();
  } finally {
    await conn.close();
  }
}

/**
 * Check the dashboard's port before anything starts (anvil, the token, the
 * database reset take a while): a taken port is named with the flag that
 * changes it. Port 0 picks a free one here, so the banner can print it.
 */
async function dashboardPort(host: string, wanted: number): Promise<number> {
  const server = createServer();
  try {
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(wanted, host, resolve);
    });
    return (server.address() as AddressInfo).port;
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === "EADDRINUSE" || code === "EACCES") {
      throw new UsageError(`the dashboard cannot listen on ${host}:${wanted} (${code === "EADDRINUSE" ? "taken, another dev system?" : "not allowed"}): choose another port with --dashboard-port <port> (0 picks a free one)`);
    }
    throw e;
  } finally {
    await new Promise((resolve) => server.close(resolve));
  }
}

const DASHBOARD_HOST = "127.0.0.1";

function numberOption(min: number, max: number, whole = true) {
  return (v: string): string => {
    const n = Number(v);
    if (!Number.isFinite(n) || (whole && !Number.isSafeInteger(n)) || n < min || n > max) {
      throw new InvalidArgumentError(`${whole ? "a whole number" : "a number"} from ${min} to ${max}`);
    }
    return v;
  };
}

function prefixOption(v: string): string {
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,47}$/.test(v)) throw new InvalidArgumentError("letters, digits, '.', '_' or '-', at most 48");
  return v;
}

/** The dev database unless --mysql-url says otherwise: named after the prefix (payment_dev). */
const devDatabaseUrl = (prefix: string) => `mysql://root@127.0.0.1:3306/${prefix.replace(/[^A-Za-z0-9_]/g, "_")}`;

export function register(program: Command): void {
  program
    .command("dev")
    .description("run everything on a local dev chain (anvil from npm, a USDT-like token, all roles in one process)")
    .option("--block-time <s>", "seconds between dev chain blocks", numberOption(0.1, 3600, false), "1")
    .option("--confirm-height <n>", "confirmations before a transfer is final", numberOption(1, 10_000), "20")
    .option("--dashboard-port <port>", "dashboard port (0 picks a free one)", numberOption(0, 65_535), "3000")
    .option("--prefix <prefix>", "names the dev system: Redis key prefix, RabbitMQ queue and exchange prefix, default database (another prefix runs a second dev system beside the first)", prefixOption, DEV_PREFIX)
    .option("--mysql-url <url>", `dev database, recreated at each start (default: ${devDatabaseUrl(DEV_PREFIX)}, named after --prefix)`)
    .option("--redis-url <url>", "Redis", process.env.PAYMENT__REDIS_URL ?? "redis://127.0.0.1:6379")
    .option("--amqp-url <url>", "RabbitMQ", "amqp://guest:guest@127.0.0.1:5672")
    .action(async (given: DevOptions) => {
      const opts = { ...given, mysqlUrl: given.mysqlUrl ?? process.env.PAYMENT__MYSQL_URL ?? devDatabaseUrl(given.prefix) };
      const checks = await Promise.all([checkRedis(opts.redisUrl), checkMysql(opts.mysqlUrl, { databaseMayBeMissing: true }), checkRabbit([opts.amqpUrl])]);
      const down = checks.filter((c) => !c.ok);
      if (down.length) {
        throw new CliError(
          `payment dev needs Redis, RabbitMQ and MySQL running locally:\n${down
            .map((d) => `  ${d.name} does not answer (${d.detail})\n    start it: ${d.hint}`)
            .join("\n")}\n  (or all three at once: docker compose up -d redis rabbitmq mysql)`,
        );
      }
      const port = await dashboardPort(DASHBOARD_HOST, Number(opts.dashboardPort));
      mkdirSync(DEV_DIR, { recursive: true });
      const communicationKey = process.env.PAYMENT_KEY ?? devSecret("communication.key", () => randomBytes(24).toString("hex"));
      const masterKeyHex = process.env.PAYMENT_MASTER_KEY ?? devSecret("master.key", () => randomBytes(32).toString("hex"));
      const dashboardPassword = process.env.PAYMENT_DASHBOARD_PASSWORD ?? devSecret("dashboard.password", () => randomBytes(12).toString("base64url"));

      const anvil: Anvil = await startAnvil({ blockTime: Number(opts.blockTime) });
      // runServices exits the process on SIGTERM/SIGINT; take the dev chain down with it.
      process.once("exit", () => anvil.process.kill("SIGTERM"));
      const usdt = await deploy(anvil.rpcUrl, anvil.keys[0]!, "TestUSDT");
      const hot = new Wallet(anvil.keys[1]!);
      const collection = new Wallet(anvil.keys[2]!);

      const provider = new JsonRpcProvider(anvil.rpcUrl, undefined, { staticNetwork: true, cacheTimeout: -1 });
      const owner = new NonceManager(new Wallet(anvil.keys[0]!, provider));
      const token = new Contract(usdt, artifact("TestUSDT").abi, owner);
      for (const w of [hot, collection]) await (await token.getFunction("mint")(w.address, 1_000_000n * 10n ** 6n)).wait();
      provider.destroy();

      const configFile = path.join(DEV_DIR, "config.json");
      const devConfig = {
        net: ["ETH"],
        rmq_config: { sub_addr: opts.amqpUrl, ...prefixedRoutes(opts.prefix) },
        redis_url: opts.redisUrl,
        redis: { prefix: opts.prefix },
        mysql_url: opts.mysqlUrl,
        eth_config: {
          rpc_url: anvil.rpcUrl,
          ws_url: anvil.wsUrl,
          chain_id: anvil.chainId,
          confirm_height: Number(opts.confirmHeight),
          block_time_ms: Math.max(100, Number(opts.blockTime) * 1000),
          poll_interval_ms: 500,
          tokens: { USDT: { address: usdt, decimals: 6 } },
          collection_address: collection.address.toLowerCase(),
          fallback_to_collection: true,
        },
        dashboard: { host: DASHBOARD_HOST, port, user: "admin" },
      };
      writeFileSync(configFile, JSON.stringify(devConfig, null, 2) + "\n");

      await resetDatabase(opts.mysqlUrl);
      const env = { ...process.env, PAYMENT_KEY: communicationKey, PAYMENT_MASTER_KEY: masterKeyHex, PAYMENT_DASHBOARD_PASSWORD: dashboardPassword };
      const config = loadConfig({ file: configFile, env });
      await resetDevQueues(config);
      const secrets = loadSecrets({ env });
      const logger = createLogger({ level: config.log.level });
      const rt = createRuntime(config, secrets, logger);
      for (const [kind, w] of [["hot", hot], ["collection", collection]] as const) {
        const address = w.address.toLowerCase();
        const enc = encryptPrivateKey(secrets.masterKey!, w.privateKey, address);
        await rt.db.prisma.wallet.create({ data: { chain: "ETH", address, kind, encryptedKey: enc.encryptedKey, keyId: enc.keyId, label: `dev ${kind} wallet` } });
      }
      // The dev funding (anvil's 10,000 ETH, the USDT minted above) came from
      // outside the gateway: book it, audited, as an operator would with
      // `payment reconcile --adopt-chain` after funding a hot wallet by hand.
      const funding = (await compareBalances(config, rt.db)).filter((l) => l.difference !== "0");
      await adoptChain(rt.db, funding, "payment dev (dev funding)");

      // EIP-7702 batching on the dev chain as `payment contracts deploy` would
      // set it up: the BatchExecutor (hot wallets pay many orders in one
      // transaction) and the collection wallet's DepositSweeper (sweeps without
      // gas top-ups), deployed by anvil's account #3 (no wallet of ours, so the
      // books stay clean) and recorded; the sender finds them at start.
      const delegation: string[] = [];
      {
        const p = new JsonRpcProvider(anvil.rpcUrl, undefined, { staticNetwork: true, cacheTimeout: -1 });
        const deployer = new Wallet(anvil.keys[3]!, p);
        try {
          for (const planned of [plannedContract("BatchExecutor"), plannedContract("DepositSweeper", collection.address.toLowerCase())]) {
            const r = await ensureDeployed(p, deployer, planned);
            await recordDelegationContract(rt.db.pool, "ETH", r, deployer.address.toLowerCase(), "payment dev");
            delegation.push(`${planned.name} ${planned.address}`);
          }
        } finally {
          p.destroy();
        }
      }

      await runServices(rt, await buildServices(rt, resolveRoles(["all"])));
      const rel = path.relative(process.cwd(), DEV_DIR) || ".";
      console.log(`
payment dev is running: every role in this process (Ctrl-C stops it)
  chain       anvil ${anvil.rpcUrl} (chain id ${anvil.chainId}), a block every ${opts.blockTime}s, final after ${opts.confirmHeight} confirmations
  USDT        ${usdt} (6 decimals; transfer returns nothing, like mainnet USDT)
  hot wallet  ${hot.address.toLowerCase()} (1,000,000 USDT, 10,000 ETH)
  collection  ${collection.address.toLowerCase()} (1,000,000 USDT, 10,000 ETH)
  batching    EIP-7702: ${delegation.join(", ")} (payouts of 4+ orders of a wallet go in one transaction; sweeps need no top-up)
  dashboard   http://${DASHBOARD_HOST}:${port}/admin/queues  user admin, password in ${rel}/dashboard.password
  config      ${rel}/config.json   (dev keys in ${rel}/, never use them for real funds; operator commands use it by default)
  names       Redis keys ${opts.prefix}:*, queues ${opts.prefix}.pay.*.queue on exchange ${opts.prefix}.pay.exchange, database ${new URL(config.mysql_url).pathname.slice(1)}

Send a test deposit from another terminal:
  npx payment dev-tools demo                        # watch an address, deposit 100.500001 USDT, print both notifications
or step by step:
  npx payment dev-tools listen                      # print notifications as they arrive
  npx payment dev-tools topup 0x<address>           # watch an address (signed topup request)
  npx payment dev-tools deposit 0x<address> 100.500001 [--symbol ETH]
  npx payment dev-tools withdraw 0x<to> 12.5        # pay out from the hot wallet
`);
    });
}
