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
import { DEV_DIR, parseAddress, UsageError } from "../context.ts";
import { tryParseAmount } from "../../shared/domain/amount.ts";
import { assetOf } from "../../shared/domain/assets.ts";

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
  const conn = await amqp.connect(rabbitUrls(config)[0]!, { noDelay: true });
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

/**
 * Print notifications until `until` returns true for one (or forever), each
 * acked once printed, so the next listener does not print it again.
 */
export async function listen(config: Config, key: string, until?: (kind: Kind, n: Record<string, unknown>) => boolean) {
  const conn = await amqp.connect(rabbitUrls(config)[0]!, { noDelay: true });
  try {
    const ch = await conn.createChannel();
    let done!: () => void;
    const finished = new Promise<void>((resolve) => (done = resolve));
    // every consumer set up before the channel may close (closing it rejects RPCs still pending)
    for (const kind of Object.keys(respRoutes) as Kind[]) {
      const route = config.rmq_config[respRoutes[kind]];
      await ch.assertQueue(route.queue, { durable: true });
      await ch.consume(route.queue, (m) => {
        if (!m) return;
        const text = m.content.toString();
        let n: Record<string, unknown> | null = null;
        try {
          n = JSON.parse(text) as Record<string, unknown>;
        } catch {
          /* printed as it is below */
        }
        const valid = n && verifyMessage(n, key) ? "signature ok" : "BAD SIGNATURE";
        console.log(`${kind} notification (${valid}): ${n ? JSON.stringify(n) : text}`);
        ch.ack(m);
        if (n && until?.(kind, n)) done();
      });
    }
    await finished;
    // Close the channel before the connection: closing it is answered by the
    // broker only after the acks sent before it on the same channel. Closing
    // the connection at once can overtake them (amqplib writes each channel
    // and the connection through separate buffers): the broker then hands the
    // last notification printed to the next listener again.
    await ch.close();
  } finally {
    await conn.close();
  }
}

async function deposit(config: Config, to: string, amount: string, symbol: string) {
  const chain = config.chains.ETH!;
  const provider = new JsonRpcProvider(chain.rpc_url, undefined, { staticNetwork: true, cacheTimeout: -1 });
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
    .description("ask the gateway to watch an address (a signed topup request, sent as typed: a malformed one shows the gateway's refusal)")
    .option("--symbol <symbol>", "asset to watch", "USDT")
    .option("--queue-id <id>", "queue_id echoed in notifications")
    .action(async (address: string, o: { symbol: string; queueId?: string }) => {
      const { config, key } = devContext();
      await publish(config, key, "topup", { chain: "ETH", symbol: o.symbol, address, ...(o.queueId ? { queue_id: o.queueId } : {}) });
    });
  dev
    .command("deposit <address> <amount>")
    .description("send USDT (minted for the purpose) or ETH to an address from anvil's account #9, as a customer would")
    .option("--symbol <symbol>", "USDT or ETH", "USDT")
    .action(async (address: string, amount: string, o: { symbol: string }) => {
      const { config } = devContext();
      const chain = config.chains.ETH!;
      const decimals = assetOf(chain, o.symbol)?.decimals;
      if (decimals === undefined) throw new UsageError(`--symbol must be ${[chain.native_symbol, ...Object.keys(chain.tokens)].join(" or ")}`);
      const parsed = tryParseAmount(amount, decimals);
      if (!parsed.ok) throw new UsageError(`${parsed.reason} (${JSON.stringify(amount)})`);
      await deposit(config, parseAddress(address), amount, o.symbol);
    });
  dev
    .command("withdraw <to> <amount>")
    .description("ask the gateway to pay out from the dev hot wallet (a signed withdraw request, sent as typed)")
    .option("--symbol <symbol>", "USDT or ETH", "USDT")
    .option("--queue-id <id>", "queue_id", `withdraw-${Date.now()}`)
    .action(async (to: string, amount: string, o: { symbol: string; queueId: string }) => {
      const { config, key } = devContext();
      const from = new Wallet(ANVIL_KEYS[1]!).address.toLowerCase();
      await publish(config, key, "withdraw", { queue_id: o.queueId, chain: "ETH", symbol: o.symbol, from_address: from, to_address: to, amount });
    });
  dev
    .command("pay <payouts...>")
    .description("ask the gateway for a batch payout from the dev hot wallet: one order per <to>:<amount> (a signed pay request, sent as typed; 4 or more token orders go out in one EIP-7702 transaction)")
    .option("--symbol <symbol>", "USDT or ETH", "USDT")
    .option("--queue-id <id>", "queue_id", `pay-${Date.now()}`)
    .action(async (payouts: string[], o: { symbol: string; queueId: string }) => {
      const { config, key } = devContext();
      const from = new Wallet(ANVIL_KEYS[1]!).address.toLowerCase();
      const transactions = payouts.map((p, i) => {
        const at = p.lastIndexOf(":");
        if (at <= 0) throw new UsageError(`a payout is <to>:<amount>, not ${JSON.stringify(p)}`);
        return { order_id: `o${i + 1}`, to_address: p.slice(0, at), amount: p.slice(at + 1) };
      });
      await publish(config, key, "pay", { queue_id: o.queueId, chain: "ETH", symbol: o.symbol, from_address: from, transactions });
    });
  dev
    .command("listen")
    .description("print the gateway's notifications as they arrive (each acked once printed), until Ctrl-C")
    .action(async () => {
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
