/**
 * The deposit path in one test process: bridge + chain-watch + confirmation
 * on a test env with anvil, a business client, and chain helpers (send
 * USDT/ETH, mine, reorg) for the deposits/chain-watch integration tests.
 */
import { Contract, JsonRpcProvider, Network, NonceManager, Wallet, type TransactionReceipt } from "ethers";
import { before, after } from "node:test";
import { createTestEnv, type TestEnv, type TestEnvOptions } from "./env.ts";
import { createBusinessClient, eventually, nowS, type BusinessClient, type Note } from "./rabbit.ts";
import { createBridge } from "../../bridge/main.ts";
import { createChainWatch } from "../../workers/chain-watch/main.ts";
import { createConfirmationWorker } from "../../workers/confirmation/main.ts";
import { artifact } from "../../shared/devchain/anvil.ts";

export interface DepositStack {
  biz: BusinessClient;
  bridge: ReturnType<typeof createBridge>;
  watch: ReturnType<typeof createChainWatch>;
  confirm: ReturnType<typeof createConfirmationWorker>;
  /** watch (chain, symbol, address) through a signed topup and wait until it is stored */
  topup(symbol: string, address: string, queueId?: string): Promise<void>;
  stop(): Promise<void>;
}

export async function startDepositStack(env: TestEnv, opts: { watch?: boolean } = {}): Promise<DepositStack> {
  const biz = await createBusinessClient(env.config, env.key);
  const bridge = createBridge({ ...env, communicationKey: env.key });
  const watch = createChainWatch(env);
  const confirm = createConfirmationWorker(env);
  await bridge.start();
  await confirm.start();
  if (opts.watch !== false) await watch.start();
  const stack: DepositStack = {
    biz,
    bridge,
    watch,
    confirm,
    async topup(symbol, address, queueId) {
      await biz.send("topup", { ...(queueId ? { queue_id: queueId } : {}), chain: "ETH", symbol, address, timestamp: nowS() });
      await eventually(() => env.db.prisma.watchedAddress.findFirst({ where: { symbol, address: address.toLowerCase(), active: true } }));
    },
    async stop() {
      // the test may have swapped in a new chain-watch (restarts)
      await stack.watch.stop();
      await stack.confirm.stop();
      await stack.bridge.stop();
      await biz.close();
    },
  };
  return stack;
}

/** What a deposit-path test file shares; the fields are set once its `before` hook ran. */
export interface DepositSuite {
  env: TestEnv;
  chain: ChainTools;
  stack: DepositStack;
}

/** Registers the file's before/after hooks: a test env with anvil, chain helpers and a running deposit stack. */
export function depositSuite(config?: TestEnvOptions["config"]): DepositSuite {
  const s = {} as Partial<DepositSuite>;
  before(async () => {
    s.env = await createTestEnv({ anvil: true, ...(config ? { config } : {}) });
    s.chain = await chainTools(s.env);
    s.stack = await startDepositStack(s.env);
  });
  after(async () => {
    // the test may have swapped in a new stack.watch (restarts): stop() stops whichever is there
    await s.stack?.stop();
    s.chain?.close();
    await s.env?.cleanup();
  });
  return s as DepositSuite;
}

/** matches the notification of one transaction with this status */
export const forTx = (hash: string, status: number) => (n: Note) => n.tx_hash === hash && n.status === status;

export interface ChainTools {
  provider: JsonRpcProvider;
  usdt: Contract;
  sendUsdt(to: string, units: bigint): Promise<TransactionReceipt>;
  sendEth(to: string, wei: bigint, keyIndex?: number): Promise<TransactionReceipt>;
  mine(blocks: number): Promise<void>;
  head(): Promise<number>;
  close(): void;
}

export async function chainTools(env: TestEnv): Promise<ChainTools> {
  const network = Network.from(BigInt(env.anvil!.chainId));
  const provider = new JsonRpcProvider(env.anvil!.rpcUrl, network, { staticNetwork: network, polling: false });
  const owner = new NonceManager(new Wallet(env.anvil!.keys[0]!, provider));
  const usdt = new Contract(env.usdt!, artifact("TestUSDT").abi, owner);
  const ownerAddress = await owner.getAddress();
  await (await usdt.getFunction("mint")(ownerAddress, 10n ** 15n)).wait();
  const wallets = new Map<number, NonceManager>();
  return {
    provider,
    usdt,
    async sendUsdt(to, units) {
      const tx = await usdt.getFunction("transfer")(to, units);
      return (await tx.wait())!;
    },
    async sendEth(to, wei, keyIndex = 1) {
      let w = wallets.get(keyIndex);
      if (!w) wallets.set(keyIndex, (w = new NonceManager(new Wallet(env.anvil!.keys[keyIndex]!, provider))));
      const tx = await w.sendTransaction({ to, value: wei });
      return (await tx.wait())!;
    },
    async mine(blocks) {
      await provider.send("anvil_mine", [`0x${blocks.toString(16)}`]);
    },
    async head() {
      return Number(await provider.send("eth_blockNumber", []));
    },
    close: () => provider.destroy(),
  };
}

/** A fresh random-looking address (lowercase) for one test. */
export function newAddress(seed: number): string {
  return `0x${seed.toString(16).padStart(2, "0").repeat(20)}`;
}
