/**
 * The money-out path in one test process: bridge + transfer-sender +
 * confirmation on a test env with anvil, our hot and collection wallets
 * imported (encrypted under the env's master key), USDT minted to the hot
 * wallet, a business client, and chain helpers (balances, mining control).
 */
import { writeFileSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { randomBytes } from "node:crypto";
import { spawn } from "node:child_process";
import { Contract, JsonRpcProvider, Network, NonceManager, Transaction, Wallet } from "ethers";
import { createTestEnv, type TestEnv, type TestEnvOptions } from "./env.ts";
import { createBusinessClient, type BusinessClient, eventually, nowS } from "./rabbit.ts";
import { createBridge } from "../../bridge/main.ts";
import { createConfirmationWorker } from "../../workers/confirmation/main.ts";
import { createTransferSender } from "../../workers/transfer-sender/main.ts";
import { artifact, ANVIL_KEYS } from "../../shared/devchain/anvil.ts";
import { encryptPrivateKey, addressOfKey } from "../../shared/adapters/keystore.ts";
import { erc20 } from "../../shared/adapters/chain.ts";
import type { ConfigInput } from "../../shared/config/schema.ts";
import { anvilMiner } from "./miner.ts";
import { ensureDeployed, plannedContract } from "../../shared/adapters/delegation-contracts.ts";
import { recordDelegationContract } from "../../shared/adapters/db/delegation-contracts.ts";

export const HOT_KEY = ANVIL_KEYS[1]!;
export const COLLECTION_KEY = ANVIL_KEYS[2]!;
export const HOT = addressOfKey(HOT_KEY);
export const COLLECTION = addressOfKey(COLLECTION_KEY);

/** A fresh random recipient address (lowercase). */
export const randomAddress = () => `0x${randomBytes(20).toString("hex")}`;

export interface TransferStackOptions {
  config?: TestEnvOptions["config"];
  /** run the transfer-sender in this process (default true) */
  sender?: boolean;
  /** USDT base units minted to the hot wallet (default 1,000,000 USDT) */
  mintHot?: bigint;
  /**
   * "7702": the BatchExecutor deployed and recorded, token payouts go out in
   * EIP-7702 batches; "off": one transaction per transfer. Default: the
   * TEST_BATCHING environment variable, else "off" (run the suites with
   * TEST_BATCHING=7702 to exercise every test through the batch path).
   */
  batching?: "7702" | "off";
  /** with batching "7702": also deploy and record the collection wallet's DepositSweeper (sweeps without gas top-ups) */
  sweeper?: boolean;
}

/** The batching mode the test run asked for (TEST_BATCHING), "off" unless it says "7702". */
export const TEST_BATCHING: "7702" | "off" = process.env.TEST_BATCHING === "7702" ? "7702" : "off";

export interface TransferStack {
  env: TestEnv;
  /** the BatchExecutor hot wallets pay through (batching "7702"), else null */
  executor: string | null;
  /** the collection wallet's DepositSweeper (batching "7702" with `sweeper`), else null */
  sweeper: string | null;
  biz: BusinessClient;
  provider: JsonRpcProvider;
  usdt: Contract;
  bridge: ReturnType<typeof createBridge>;
  sender: ReturnType<typeof createTransferSender> | null;
  confirm: ReturnType<typeof createConfirmationWorker>;
  importWallet(key: string, kind: "deposit" | "hot" | "collection"): Promise<string>;
  usdtOf(address: string): Promise<bigint>;
  ethOf(address: string): Promise<bigint>;
  mint(to: string, units: bigint): Promise<void>;
  /** mine blocks in the background (every `ms`) until stopMining */
  startMining(ms?: number): void;
  stopMining(): Promise<void>;
  mine(blocks?: number): Promise<void>;
  /** the env's config as a JSON file, for child processes */
  configFile(): string;
  stop(): Promise<void>;
}

export async function startTransferStack(opts: TransferStackOptions = {}): Promise<TransferStack> {
  const batching = opts.batching ?? TEST_BATCHING;
  const env = await createTestEnv({
    anvil: true,
    config: (c: ConfigInput) => {
      const base: ConfigInput = { ...c, eth_config: { ...c.eth_config!, collection_address: COLLECTION, stuck_after_s: 600, batching } };
      return opts.config ? opts.config(base) : base;
    },
  });
  const network = Network.from(BigInt(env.anvil!.chainId));
  const provider = new JsonRpcProvider(env.anvil!.rpcUrl, network, { staticNetwork: network, polling: false, cacheTimeout: -1 });
  const owner = new NonceManager(new Wallet(env.anvil!.keys[0]!, provider));
  const usdt = new Contract(env.usdt!, artifact("TestUSDT").abi, owner);

  const importWallet = async (key: string, kind: "deposit" | "hot" | "collection") => {
    const address = addressOfKey(key);
    const e = encryptPrivateKey(env.masterKey, key, address);
    await env.db.prisma.wallet.create({ data: { chain: "ETH", address, kind, encryptedKey: e.encryptedKey, keyId: e.keyId } });
    return address;
  };
  await importWallet(HOT_KEY, "hot");
  await importWallet(COLLECTION_KEY, "collection");
  const mint = async (to: string, units: bigint) => {
    await (await usdt.getFunction("mint")(to, units)).wait();
  };
  await mint(HOT, opts.mintHot ?? 1_000_000n * 10n ** 6n);
  let executor: string | null = null;
  let sweeper: string | null = null;
  if (batching === "7702") {
    // as `payment contracts deploy` does: deployed through the CREATE2 factory, recorded for the chain
    const deployed = await ensureDeployed(provider, owner, plannedContract("BatchExecutor"));
    await recordDelegationContract(env.db.pool, "ETH", deployed, addressOfKey(env.anvil!.keys[0]!), "test");
    executor = deployed.contract.address;
    if (opts.sweeper) {
      const sw = await ensureDeployed(provider, owner, plannedContract("DepositSweeper", COLLECTION));
      await recordDelegationContract(env.db.pool, "ETH", sw, addressOfKey(env.anvil!.keys[0]!), "test");
      sweeper = sw.contract.address;
    }
  }

  const biz = await createBusinessClient(env.config, env.key);
  const bridge = createBridge({ ...env, communicationKey: env.key });
  const sender = opts.sender === false ? null : createTransferSender({ ...env, masterKey: env.masterKey });
  const confirm = createConfirmationWorker(env);
  await bridge.start();
  await confirm.start();
  if (sender) await sender.start();

  let file: string | null = null;
  const stack: TransferStack = {
    env,
    executor,
    sweeper,
    biz,
    provider,
    usdt,
    bridge,
    sender,
    confirm,
    ...anvilMiner(provider, 100),
    importWallet,
    mint,
    async usdtOf(address) {
      const out = await provider.send("eth_call", [{ to: env.usdt, data: erc20.encodeFunctionData("balanceOf", [address]) }, "latest"]);
      return BigInt(out);
    },
    async ethOf(address) {
      return BigInt(await provider.send("eth_getBalance", [address, "latest"]));
    },
    configFile() {
      if (file) return file;
      const dir = mkdtempSync(path.join(tmpdir(), "payment-test-"));
      file = path.join(dir, "config.json");
      const { chains: _chains, ...raw } = env.config as unknown as Record<string, unknown>;
      writeFileSync(file, JSON.stringify(raw));
      return file;
    },
    async stop() {
      await stack.stopMining();
      if (sender) await sender.stop();
      await confirm.stop();
      await bridge.stop();
      await biz.close();
      provider.destroy();
      await env.cleanup();
    },
  };
  return stack;
}

/** Wait until `n` notifications of `kind` with `status` exist for queue ids matching `pred`. */
export async function waitForNotes(biz: BusinessClient, kind: "withdraw" | "pay", status: number, n: number, pred: (q: string) => boolean = () => true, timeoutMs = 60_000) {
  return eventually(() => {
    const got = biz.received(kind).filter((x) => x.status === status && pred(String(x.queue_id)));
    return got.length >= n ? got : null;
  }, timeoutMs);
}

export interface SenderProcess {
  pid: number;
  /** everything it printed (stdout + stderr) */
  output(): string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  stop(): Promise<void>;
}

/**
 * A transfer-sender in its own process, as production runs it:
 * `node bin/payment.mjs start --config <file> --role transfer-sender`,
 * with the master key in the environment and optional test failpoints.
 */
export function spawnSender(stack: TransferStack, opts: { failpoints?: string; logLevel?: string } = {}): SenderProcess {
  const bin = path.resolve(import.meta.dirname, "../../bin/payment.mjs");
  const child = spawn(process.execPath, [bin, "start", "--config", stack.configFile(), "--role", "transfer-sender"], {
    env: {
      ...process.env,
      PAYMENT_MASTER_KEY: stack.env.masterKey.toString("hex"),
      PAYMENT_FAILPOINTS: opts.failpoints ?? "",
      PAYMENT__LOG__LEVEL: opts.logLevel ?? process.env.TEST_LOG_LEVEL ?? "warn",
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  child.stdout!.on("data", (d) => (out += d));
  child.stderr!.on("data", (d) => (out += d));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on("exit", (code, signal) => resolve({ code, signal })));
  return {
    pid: child.pid!,
    output: () => out,
    exited,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill("SIGTERM");
      const t = setTimeout(() => child.kill("SIGKILL"), 15_000);
      await exited;
      clearTimeout(t);
    },
  };
}

/**
 * The account nonces a wallet's attempts use, sorted: one per transaction
 * (the members of an EIP-7702 batch share theirs), plus the nonce after a
 * batch that carries the wallet's own authorization (type 4: the
 * authorization takes it). Gap-free from the chain's start when nothing
 * was used twice or skipped.
 */
export function usedNonces(attempts: { nonce: bigint; txHash: string; rawTx: string; batchIndex: number | null }[]): bigint[] {
  const out = new Set<bigint>();
  for (const a of attempts) {
    out.add(a.nonce);
    if (a.batchIndex === 0 && Transaction.from(a.rawTx).type === 4) out.add(a.nonce + 1n);
  }
  return [...out].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
}

/**
 * Three pay requests of 150 orders each from the hot wallet (`${prefix}-a`,
 * -b, -c; order amounts distinct), published and all queued before this
 * returns: a sender started next meets full batches.
 */
export async function queueThreePays(s: TransferStack, prefix: string) {
  const requests = ["a", "b", "c"].map((tag, r) => ({
    q: `${prefix}-${tag}`,
    orders: Array.from({ length: 150 }, (_, i) => ({ order_id: `o${i}`, to_address: randomAddress(), amount: `${r + 1}.${String(i + 1).padStart(3, "0")}` })),
  }));
  for (const { q, orders } of requests) await s.biz.send("pay", { queue_id: q, from_address: HOT, chain: "ETH", symbol: "USDT", transactions: orders, timestamp: nowS() });
  await eventually(async () => ((await s.env.db.prisma.transfer.count({ where: { queueId: { startsWith: `${prefix}-` }, state: "queued" } })) === 450 ? true : null), 60_000, 100);
  return requests;
}

/** A transfer-sender of the stack's env that reaches the chain through `rpcUrl` (a proxy), started. */
export async function startSenderVia(s: TransferStack, rpcUrl: string) {
  const sender = createTransferSender({ ...s.env, masterKey: s.env.masterKey, config: { ...s.env.config, chains: { ETH: { ...s.env.config.chains.ETH!, rpc_url: rpcUrl } } } });
  await sender.start();
  return sender;
}

/**
 * A transfer's send job once it has failed (the positive signal that the
 * sender decided), read again after its state says so: a job object read
 * just before the failure carries no failedReason.
 */
export async function failedSendJob(s: TransferStack, transferId: bigint, timeoutMs = 30_000) {
  const id = `send-${transferId}`;
  return eventually(async () => {
    if ((await (await s.env.queues.transfer.getJob(id))?.getState()) !== "failed") return null;
    return (await s.env.queues.transfer.getJob(id)) ?? null;
  }, timeoutMs);
}
