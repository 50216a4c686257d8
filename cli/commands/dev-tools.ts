/**
 * `payment dev-tools ...`: play the business system and the depositor against
 * a running `payment dev` (reads .dev/config.json and the dev communication
 * key). For trying the gateway out, never for production.
 */
import { readFileSync } from "node:fs";
import path from "node:path";
import type { Command } from "commander";
import * as amqp from "amqplib";
import { Contract, JsonRpcProvider, NonceManager, Wallet, Interface, parseUnits } from "ethers";
import { ConfigError, loadConfig, rabbitUrls, type Config } from "../../shared/config/load-config.ts";
import { signMessage, verifyMessage } from "../../shared/domain/signature.ts";
import { ANVIL_KEYS } from "../../shared/devchain/anvil.ts";
import { DEV_DIR } from "./dev.ts";

function devContext() {
  const file = path.join(DEV_DIR, "config.json");
  let config: Config;
  let key: string;
  try {
    config = loadConfig({ file, env: {} });
    key = process.env.PAYMENT_KEY ?? readFileSync(path.join(DEV_DIR, "communication.key"), "utf8").trim();
  } catch (e) {
    throw new ConfigError(`no dev setup found in ${DEV_DIR} (start \`npm run dev\` first): ${(e as Error).message}`);
  }
  return { config, key };
}

const respRoutes = { topup: "topup_resp", withdraw: "withdraw_resp", pay: "pay_resp", remove: "remove_resp" } as const;
type Kind = keyof typeof respRoutes;

async function publish(config: Config, key: string, kind: Kind, body: Record<string, unknown>) {
  const conn = await amqp.connect(rabbitUrls(config)[0]!);
  try {
    const ch = await conn.createConfirmChannel();
    const route = config.rmq_config[kind];
    const msg = signMessage({ ...body, timestamp: Math.floor(Date.now() / 1000) }, key);
    await new Promise<void>((resolve, reject) =>
      ch.publish(route.exchange, route.routing[0]!, Buffer.from(JSON.stringify(msg)), { persistent: true }, (err) => (err ? reject(err) : resolve())),
    );
    console.log(`published ${kind}: ${JSON.stringify(msg)}`);
  } finally {
    await conn.close();
  }
}

/** Print notifications until `until` returns true for one (or forever). */
async function listen(config: Config, key: string, until?: (kind: Kind, n: Record<string, unknown>) => boolean) {
  const conn = await amqp.connect(rabbitUrls(config)[0]!);
  const ch = await conn.createChannel();
  await new Promise<void>((resolve) => {
    for (const kind of Object.keys(respRoutes) as Kind[]) {
      const route = config.rmq_config[respRoutes[kind]];
      void ch.assertQueue(route.queue, { durable: true }).then(() =>
        ch.consume(route.queue, (m) => {
          if (!m) return;
          const n = JSON.parse(m.content.toString()) as Record<string, unknown>;
          const valid = verifyMessage(n, key) ? "signature ok" : "BAD SIGNATURE";
          console.log(`${kind} notification (${valid}): ${JSON.stringify(n)}`);
          ch.ack(m);
          if (until?.(kind, n)) resolve();
        }),
      );
    }
  });
  await conn.close();
}

async function deposit(config: Config, to: string, amount: string, symbol: string) {
  const chain = config.chains.ETH!;
  const provider = new JsonRpcProvider(chain.rpc_url, undefined, { staticNetwork: true });
  // anvil's account #9 plays the depositor; the dev token's owner (#0) funds it.
  const owner = new NonceManager(new Wallet(ANVIL_KEYS[0]!, provider));
  const depositor = new NonceManager(new Wallet(ANVIL_KEYS[9]!, provider));
  try {
    if (symbol === chain.native_symbol) {
      const tx = await depositor.sendTransaction({ to, value: parseUnits(amount, chain.native_decimals) });
      console.log(`sent ${amount} ${symbol} to ${to}: ${tx.hash}`);
      return;
    }
    const token = chain.tokens[symbol];
    if (!token) throw new ConfigError(`unknown symbol ${symbol}`);
    const iface = new Interface(["function mint(address,uint256)", "function transfer(address,uint256)"]);
    const units = parseUnits(amount, token.decimals);
    await (await new Contract(token.address, iface, owner).getFunction("mint")(await depositor.getAddress(), units)).wait();
    const tx = await new Contract(token.address, iface, depositor).getFunction("transfer")(to, units);
    console.log(`sent ${amount} ${symbol} to ${to}: ${tx.hash}`);
  } finally {
    provider.destroy();
  }
}

export function register(program: Command): void {
  const dev = program.command("dev-tools").description("act as the business system and a depositor against `payment dev`");
  dev
    .command("topup <address>")
    .option("--symbol <symbol>", "asset to watch", "USDT")
    .option("--queue-id <id>", "queue_id echoed in notifications")
    .action(async (address: string, o: { symbol: string; queueId?: string }) => {
      const { config, key } = devContext();
      await publish(config, key, "topup", { chain: "ETH", symbol: o.symbol, address, ...(o.queueId ? { queue_id: o.queueId } : {}) });
    });
  dev
    .command("deposit <address> <amount>")
    .option("--symbol <symbol>", "USDT or ETH", "USDT")
    .action(async (address: string, amount: string, o: { symbol: string }) => {
      const { config } = devContext();
      await deposit(config, address, amount, o.symbol);
    });
  dev
    .command("withdraw <to> <amount>")
    .option("--symbol <symbol>", "USDT or ETH", "USDT")
    .option("--queue-id <id>", "queue_id", `withdraw-${Date.now()}`)
    .action(async (to: string, amount: string, o: { symbol: string; queueId: string }) => {
      const { config, key } = devContext();
      const from = new Wallet(ANVIL_KEYS[1]!).address.toLowerCase();
      await publish(config, key, "withdraw", { queue_id: o.queueId, chain: "ETH", symbol: o.symbol, from_address: from, to_address: to, amount });
    });
  dev.command("listen").action(async () => {
    const { config, key } = devContext();
    await listen(config, key);
  });
  dev
    .command("demo")
    .description("watch a fresh address, deposit 100.500001 USDT to it, print both notifications")
    .option("--amount <amount>", "USDT to deposit", "100.500001")
    .action(async (o: { amount: string }) => {
      const { config, key } = devContext();
      const address = Wallet.createRandom().address.toLowerCase();
      const done = listen(config, key, (kind, n) => kind === "topup" && n.address === address && n.status !== 2);
      await publish(config, key, "topup", { chain: "ETH", symbol: "USDT", address, queue_id: `demo-${Date.now()}` });
      await new Promise((r) => setTimeout(r, 500));
      await deposit(config, address, o.amount, "USDT");
      console.log(`waiting for the pending (status 2) and final (status 1) notifications (${config.chains.ETH!.confirm_height} confirmations)...`);
      await done;
    });
}
