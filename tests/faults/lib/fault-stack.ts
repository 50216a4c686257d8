/**
 * The whole gateway for fault tests: a test env (own database, Redis
 * prefix, RabbitMQ queues, anvil with the test token), our hot and
 * collection wallets imported encrypted, USDT minted to the hot wallet, a
 * business client on RabbitMQ, optional cuttable TCP proxies in front of
 * RabbitMQ / MariaDB / the node's HTTP and WebSocket endpoints, and a
 * process group that runs roles as real `payment start` processes with a
 * config pointing at those proxies.
 *
 * It also keeps the ledger of what the test asked for (payouts, deposits)
 * and checks the exactly-once promises against it: every payout and
 * deposit has exactly one pending and one final notification (counted by
 * notification_id and by subject), every recipient holds exactly its
 * amount on chain, every notification is signed.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { Contract, JsonRpcProvider, Network, NonceManager, Wallet } from "ethers";
import { createTestEnv, MYSQL_ROOT, RABBIT_URL, type TestEnv } from "../../helpers/env.ts";
import { createBusinessClient, eventually, nowS, type BusinessClient, type Note } from "../../helpers/rabbit.ts";
import { startTcpProxy, type TcpProxy } from "../../helpers/tcp-proxy.ts";
import { createProcessGroup, writeConfigFile, type ProcessGroup, type RoleProcess } from "../../helpers/processes.ts";
import { artifact, ANVIL_KEYS } from "../../../shared/devchain/anvil.ts";
import { encryptPrivateKey, addressOfKey } from "../../../shared/adapters/keystore.ts";
import { erc20 } from "../../../shared/adapters/chain.ts";
import { decimalToUnits } from "../../../shared/domain/amount.ts";
import type { ConfigInput } from "../../../shared/config/schema.ts";
import { anvilMiner } from "../../helpers/miner.ts";
import { TEST_BATCHING } from "../../helpers/transfer-stack.ts";
import { ensureDeployed, plannedContract } from "../../../shared/adapters/delegation-contracts.ts";
import { recordDelegationContract } from "../../../shared/adapters/db/delegation-contracts.ts";
import { quiescent } from "../../helpers/quiet.ts";

export const HOT_KEY = ANVIL_KEYS[1]!;
export const COLLECTION_KEY = ANVIL_KEYS[2]!;
export const HOT = addressOfKey(HOT_KEY);
export const COLLECTION = addressOfKey(COLLECTION_KEY);
export const ROLES = ["bridge", "chain-watch", "transfer-sender", "confirmation"] as const;
export type Role = (typeof ROLES)[number];

export const randomAddress = () => `0x${randomBytes(20).toString("hex")}`;
export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export interface FaultStackOptions {
  confirmHeight?: number;
  /** put these services behind a cuttable proxy (in the processes' config) */
  proxy?: { rabbit?: boolean; mysql?: boolean; rpc?: boolean; ws?: boolean };
  /** log level of the role processes (default info) */
  logLevel?: string;
  /** final say over the processes' config */
  config?: (c: ConfigInput) => ConfigInput;
}

export interface ExpectedTransfer {
  kind: "withdraw" | "pay";
  queueId: string;
  orderId: string;
  to: string;
  amount: string;
}

export interface ExpectedDeposit {
  to: string;
  amount: string;
  txHash: string;
}

export interface FaultStack {
  env: TestEnv;
  biz: BusinessClient;
  provider: JsonRpcProvider;
  procs: ProcessGroup;
  proxies: { rabbit?: TcpProxy; mysql?: TcpProxy; rpc?: TcpProxy; ws?: TcpProxy };
  transfers: ExpectedTransfer[];
  deposits: ExpectedDeposit[];
  /** start one process per role (or the given roles) and wait until each is up */
  startRoles(roles?: readonly string[], opts?: { logLevel?: string }): Promise<RoleProcess[]>;
  /** processes of a role that are alive */
  alive(role: string): RoleProcess[];
  /** watch `address` for USDT through a signed topup; resolves once the watch is stored (a bridge must run) */
  topup(address: string, queueId?: string): Promise<void>;
  withdraw(queueId: string, to: string, amount: string): Promise<void>;
  pay(queueId: string, orders: { orderId: string; to: string; amount: string }[]): Promise<void>;
  /** a USDT transfer from the token owner to `to` (a deposit when `to` is watched) */
  deposit(to: string, amount: string): Promise<string>;
  usdtOf(address: string): Promise<bigint>;
  mine(blocks?: number): Promise<void>;
  /** mine one block every `ms` until stopMining */
  startMining(ms?: number): void;
  stopMining(): Promise<void>;
  /** wait until every expected payout and deposit has its final notification */
  settle(timeoutMs: number): Promise<void>;
  /**
   * The exactly-once checks (after the outbox has drained). Returns how many
   * notifications were delivered again with the same id, and for how many
   * subjects the final notification arrived before the pending one.
   */
  verify(): Promise<{ redeliveries: number; outOfOrder: number }>;
  stop(): Promise<void>;
}

const units = (amount: string) => decimalToUnits(amount, 6);

export async function startFaultStack(opts: FaultStackOptions = {}): Promise<FaultStack> {
  const confirmHeight = opts.confirmHeight ?? 3;
  const env = await createTestEnv({
    anvil: true,
    config: (c) => ({
      ...c,
      eth_config: { ...c.eth_config!, confirm_height: confirmHeight, collection_address: COLLECTION, stuck_after_s: 600, batching: TEST_BATCHING },
      // recovery of a killed worker's jobs: lock expiry + the next stalled check
      workers: { ...c.workers, lock_duration_ms: 3_000, stalled_interval_ms: 1_000, reconcile_interval_ms: 3_000 } as ConfigInput["workers"],
    }),
  });
  const proxies: FaultStack["proxies"] = {};
  const anvilPort = env.anvil!.port;
  if (opts.proxy?.rabbit) proxies.rabbit = await startTcpProxy({ port: Number(new URL(RABBIT_URL).port || 5672), host: new URL(RABBIT_URL).hostname });
  if (opts.proxy?.mysql) proxies.mysql = await startTcpProxy({ port: Number(new URL(MYSQL_ROOT).port || 3306), host: new URL(MYSQL_ROOT).hostname });
  if (opts.proxy?.rpc) proxies.rpc = await startTcpProxy({ port: anvilPort });
  if (opts.proxy?.ws) proxies.ws = await startTcpProxy({ port: anvilPort });

  const via = (url: string, proxy?: TcpProxy) => {
    if (!proxy) return url;
    const u = new URL(url);
    u.hostname = "127.0.0.1";
    u.port = String(proxy.port);
    return u.toString().replace(/\/$/, "");
  };
  let processConfig: ConfigInput = {
    ...(env.config as unknown as ConfigInput),
    rmq_config: { ...(env.config.rmq_config as ConfigInput["rmq_config"]), sub_addr: via(RABBIT_URL, proxies.rabbit) },
    mysql_url: proxies.mysql ? `${via(MYSQL_ROOT, proxies.mysql)}/${env.db.database}` : env.config.mysql_url,
    eth_config: {
      ...(env.config.eth_config as ConfigInput["eth_config"])!,
      rpc_url: via(env.anvil!.rpcUrl, proxies.rpc),
      ws_url: via(env.anvil!.wsUrl, proxies.ws),
    },
  };
  if (opts.config) processConfig = opts.config(processConfig);
  const configFile = writeConfigFile(processConfig);
  const procs = createProcessGroup({ configFile, secrets: { key: env.key, masterKey: env.masterKey }, logLevel: opts.logLevel ?? "info" });

  const network = Network.from(BigInt(env.anvil!.chainId));
  const provider = new JsonRpcProvider(env.anvil!.rpcUrl, network, { staticNetwork: network, polling: false, cacheTimeout: -1 });
  const owner = new NonceManager(new Wallet(env.anvil!.keys[0]!, provider));
  const usdt = new Contract(env.usdt!, artifact("TestUSDT").abi, owner);
  for (const [key, kind] of [
    [HOT_KEY, "hot"],
    [COLLECTION_KEY, "collection"],
  ] as const) {
    const address = addressOfKey(key);
    const e = encryptPrivateKey(env.masterKey, key, address);
    await env.db.prisma.wallet.create({ data: { chain: "ETH", address, kind, encryptedKey: e.encryptedKey, keyId: e.keyId } });
  }
  await (await usdt.getFunction("mint")(HOT, 1_000_000n * 10n ** 6n)).wait();
  if (TEST_BATCHING === "7702") {
    // as `payment contracts deploy` does: the senders then pay token payouts in EIP-7702 batches
    const deployed = await ensureDeployed(provider, owner, plannedContract("BatchExecutor"));
    await recordDelegationContract(env.db.pool, "ETH", deployed, await owner.getAddress(), "test");
  }
  await (await usdt.getFunction("mint")(await owner.getAddress(), 1_000_000n * 10n ** 6n)).wait();
  const biz = await createBusinessClient(env.config, env.key);

  let depositing: Promise<unknown> = Promise.resolve();
  const transfers: ExpectedTransfer[] = [];
  const deposits: ExpectedDeposit[] = [];

  const usdtOf = async (address: string) =>
    BigInt(await provider.send("eth_call", [{ to: env.usdt, data: erc20.encodeFunctionData("balanceOf", [address]) }, "latest"]));

  const notesOf = (kind: "withdraw" | "pay" | "topup") => biz.received(kind);
  const transferNotes = (t: ExpectedTransfer) => notesOf(t.kind).filter((n) => n.queue_id === t.queueId && (t.kind === "withdraw" || n.order_id === t.orderId));
  const depositNotes = (d: ExpectedDeposit) => notesOf("topup").filter((n) => n.tx_hash === d.txHash);

  const stack: FaultStack = {
    env,
    biz,
    provider,
    procs,
    proxies,
    transfers,
    deposits,
    async startRoles(roles = ROLES, o = {}) {
      const started = roles.map((r) => procs.start(r, [r], { logLevel: o.logLevel }));
      await Promise.all(started.map((p) => p.ready()));
      return started;
    },
    alive: (role) => procs.processes().filter((p) => p.alive && p.roles.includes(role)),
    async topup(address, queueId) {
      await biz.send("topup", { ...(queueId ? { queue_id: queueId } : {}), chain: "ETH", symbol: "USDT", address, timestamp: nowS() });
      await eventually(() => env.db.prisma.watchedAddress.findFirst({ where: { symbol: "USDT", address, active: true } }), 60_000, 100);
    },
    async withdraw(queueId, to, amount) {
      transfers.push({ kind: "withdraw", queueId, orderId: "", to, amount });
      await biz.send("withdraw", { queue_id: queueId, from_address: HOT, to_address: to, amount, chain: "ETH", symbol: "USDT", timestamp: nowS() });
    },
    async pay(queueId, orders) {
      for (const o of orders) transfers.push({ kind: "pay", queueId, orderId: o.orderId, to: o.to, amount: o.amount });
      await biz.send("pay", {
        queue_id: queueId,
        from_address: HOT,
        chain: "ETH",
        symbol: "USDT",
        transactions: orders.map((o) => ({ order_id: o.orderId, to_address: o.to, amount: o.amount })),
        timestamp: nowS(),
      });
    },
    async deposit(to, amount) {
      // one at a time: the owner's nonces are handed out locally
      const run = depositing.then(async () => {
        const tx = await usdt.getFunction("transfer")(to, units(amount));
        return (await tx.wait())!.hash as string;
      });
      depositing = run.catch(() => undefined);
      const hash = await run;
      deposits.push({ to, amount, txHash: hash });
      return hash;
    },
    ...anvilMiner(provider, 200),
    usdtOf,
    async settle(timeoutMs) {
      await eventually(
        () =>
          transfers.every((t) => transferNotes(t).some((n) => n.status !== 2)) && deposits.every((d) => depositNotes(d).some((n) => n.status !== 2)),
        timeoutMs,
        250,
      ).catch(async (e: unknown) => {
        const missingT = transfers.filter((t) => !transferNotes(t).some((n) => n.status !== 2)).map((t) => `${t.queueId}/${t.orderId}`);
        const missingD = deposits.filter((d) => !depositNotes(d).some((n) => n.status !== 2)).map((d) => d.txHash);
        const rows = await env.db.prisma.transfer.groupBy({ by: ["state"], _count: true });
        // what BullMQ holds for each unfinished row, to tell a lost job from a stuck one
        const open = await env.db.prisma.transfer.findMany({ where: { state: { notIn: ["confirmed", "failed", "cancelled"] } } });
        const jobs = await Promise.all(
          open.map(async (t) => {
            const state = async (q: "transfer" | "confirm", id: string) => {
              const job = await env.queues[q].getJob(id);
              return job ? `${await job.getState()} ${JSON.stringify({ attemptsMade: job.attemptsMade, delay: job.delay, ts: job.timestamp, failed: job.failedReason })}` : "none";
            };
            return `transfer ${t.id} ${t.queueId}/${t.orderId} ${t.state}: send ${await state("transfer", `send-${t.id}`)}; confirm ${await state("confirm", `transfer-${t.id}`)}`;
          }),
        );
        throw new Error(
          `not settled: transfers without a final notification ${JSON.stringify(missingT)}, deposits ${JSON.stringify(missingD)}; transfer states ${JSON.stringify(rows)}; jobs:\n${jobs.join("\n")}\nlogs in ${procs.logDir}\n${String(e)}`,
        );
      });
    },
    async verify() {
      // A notification claimed by a bridge that was then killed waits for its
      // claim to lapse (the outbox lease) before another bridge publishes it.
      await eventually(async () => (await env.db.prisma.notification.count({ where: { state: "pending" } })) === 0, 90_000, 250).catch(() => {
        throw new Error(`the outbox still holds pending notifications; logs in ${procs.logDir}`);
      });
      // nothing left to run or to deliver: a late duplicate would be here by now
      await quiescent(env, biz, { timeoutMs: 90_000 });
      let redeliveries = 0;
      let outOfOrder = 0;
      // 1. by notification_id: a repeat is the same message (at-least-once), never a different one
      for (const kind of ["withdraw", "pay", "topup"] as const) {
        const byId = new Map<string, Note[]>();
        for (const n of notesOf(kind)) {
          assert.equal(typeof n.notification_id, "string", `a ${kind} notification without notification_id`);
          byId.set(n.notification_id as string, [...(byId.get(n.notification_id as string) ?? []), n]);
        }
        for (const [id, copies] of byId) {
          for (const c of copies.slice(1)) assert.deepEqual(c, copies[0], `notification ${id} delivered twice with different bodies`);
          redeliveries += copies.length - 1;
        }
      }
      // 2. by subject: exactly one pending and one final (status 1) notification id each
      const idsByStatus = (notes: Note[]) => {
        const m = new Map<number, Set<string>>();
        for (const n of notes) m.set(n.status, (m.get(n.status) ?? new Set()).add(n.notification_id as string));
        return m;
      };
      const order = (notes: Note[]) => {
        const pending = notes.findIndex((n) => n.status === 2);
        const final = notes.findIndex((n) => n.status !== 2);
        if (pending >= 0 && final >= 0 && final < pending) outOfOrder++;
      };
      transfers.forEach((t) => order(transferNotes(t)));
      deposits.forEach((d) => order(depositNotes(d)));
      for (const t of transfers) {
        const s = idsByStatus(transferNotes(t));
        const label = `${t.kind} ${t.queueId}/${t.orderId}`;
        assert.equal(s.get(0)?.size ?? 0, 0, `${label}: failed ${JSON.stringify(transferNotes(t))}`);
        assert.equal(s.get(2)?.size, 1, `${label}: one pending notification`);
        assert.equal(s.get(1)?.size, 1, `${label}: one final notification`);
        const final = transferNotes(t).find((n) => n.status === 1)!;
        assert.equal(final.amount_exact, t.amount, label);
        assert.equal(final.to_address, t.to, label);
      }
      for (const d of deposits) {
        const s = idsByStatus(depositNotes(d));
        assert.equal(s.get(0)?.size ?? 0, 0, `deposit ${d.txHash}: failed`);
        assert.equal(s.get(2)?.size, 1, `deposit ${d.txHash}: one pending notification`);
        assert.equal(s.get(1)?.size, 1, `deposit ${d.txHash}: one final notification`);
        assert.equal(depositNotes(d).find((n) => n.status === 1)!.amount_exact, d.amount);
      }
      // nothing reported that the test did not cause
      const subjects = new Set(notesOf("topup").map((n) => `${n.tx_hash}/${n.log_index}`));
      assert.equal(subjects.size, deposits.length, "one deposit subject per deposit made");
      const tSubjects = new Set([...notesOf("withdraw"), ...notesOf("pay")].map((n) => `${n.queue_id}/${n.order_id ?? ""}`));
      assert.equal(tSubjects.size, transfers.length, "one transfer subject per payout requested");
      assert.ok(biz.allSigned(), "every notification is signed with the communication key");

      // 3. on chain: every recipient holds exactly its amount (no payout or deposit counted twice)
      for (const t of transfers) assert.equal(await usdtOf(t.to), units(t.amount), `${t.queueId}/${t.orderId} on chain`);
      for (const d of deposits) assert.equal(await usdtOf(d.to), units(d.amount), `deposit to ${d.to} on chain`);

      // 4. in MySQL: one mined transaction per payout, distinct nonces, one deposit row each, books credited once
      const rows = await env.db.prisma.transfer.findMany({ include: { attempts: true } });
      assert.equal(rows.length, transfers.length);
      // a nonce carries one transaction: one payout, or (EIP-7702) the payouts of one batch, each its own item
      const byNonce = new Map<string, { hashes: Set<string>; items: Set<number | null> }>();
      for (const r of rows) {
        assert.equal(r.state, "confirmed", `transfer ${r.queueId}/${r.orderId}`);
        const mined = r.attempts.filter((a) => a.state === "mined");
        assert.equal(mined.length, 1, `transfer ${r.queueId}/${r.orderId}: one mined transaction`);
        const k = `${r.fromAddress}:${r.nonce}`;
        const n = byNonce.get(k) ?? { hashes: new Set<string>(), items: new Set<number | null>() };
        n.hashes.add(mined[0]!.txHash);
        assert.ok(!n.items.has(mined[0]!.batchIndex), `transfer ${r.queueId}/${r.orderId}: nonce ${k} item ${mined[0]!.batchIndex} used for two payouts`);
        n.items.add(mined[0]!.batchIndex);
        byNonce.set(k, n);
      }
      for (const [k, n] of byNonce) assert.equal(n.hashes.size, 1, `nonce ${k}: one transaction`);
      for (const d of deposits) {
        const ds = await env.db.prisma.deposit.findMany({ where: { txHash: d.txHash } });
        assert.equal(ds.length, 1, `deposit ${d.txHash}: one row`);
        assert.equal(ds[0]!.state, "confirmed");
        const book = await env.db.prisma.balance.findFirst({ where: { address: d.to, symbol: "USDT" } });
        assert.equal(book?.amount.toFixed(), d.amount, `book balance of ${d.to} credited once`);
      }
      return { redeliveries, outOfOrder };
    },
    async stop() {
      await stack.stopMining();
      await procs.stopAll();
      await biz.close();
      provider.destroy();
      for (const p of Object.values(proxies)) await p?.close();
      await env.cleanup();
    },
  };
  return stack;
}
