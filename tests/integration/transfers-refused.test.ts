/**
 * Small faults of the send path (issue 11, fault 5):
 * - a transaction the node refuses is re-broadcast on the job's backoff,
 *   not in a tight loop (the job used to spin on it for 25 s);
 * - the velocity lock is a MySQL named lock, and a server's lock names are
 *   shared by every database on it: another gateway's lock on the same
 *   server must not stop this one's payouts.
 */
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import * as mariadb from "mariadb";
import { Transaction, Wallet } from "ethers";
import { nowS, eventually } from "../helpers/rabbit.ts";
import { MYSQL_ROOT } from "../helpers/env.ts";
import { startRpcProxy, type RpcProxy } from "../helpers/rpc-proxy.ts";
import { startTransferStack, randomAddress, HOT, type TransferStack } from "../helpers/transfer-stack.ts";
import { poolConfigFromUrl } from "../../shared/adapters/db/client.ts";
import { createChainClient } from "../../shared/adapters/chain.ts";
import { createTransferSender } from "../../workers/transfer-sender/main.ts";

let s: TransferStack;
let proxy: RpcProxy;
let sender: ReturnType<typeof createTransferSender>;
let refusing: string;
/** eth_sendRawTransaction calls of the refused wallet the proxy saw */
let refusals = 0;

before(async () => {
  s = await startTransferStack({ sender: false, config: (c) => ({ ...c, policy: { velocity_24h_per_wallet: { USDT: "1000000" }, velocity_24h_total: { USDT: "1000000" } } }) });
  refusing = await s.importWallet(Wallet.createRandom().privateKey, "hot");
  await s.mint(refusing, 10_000_000n);
  await (await new Wallet(s.env.anvil!.keys[5]!, s.provider).sendTransaction({ to: refusing, value: 10n ** 17n })).wait();
  // the sender's node refuses every transaction of one wallet, as a node refuses one it will not take
  proxy = await startRpcProxy(s.env.anvil!.rpcUrl, (c) => {
    if (c.method !== "eth_sendRawTransaction" || Transaction.from(String(c.params[0])).from?.toLowerCase() !== refusing) return undefined;
    refusals++;
    return { error: { code: -32003, message: "insufficient funds for gas * price + value" } };
  });
  sender = createTransferSender({ ...s.env, masterKey: s.env.masterKey, chainClients: { ETH: createChainClient({ ...s.env.config.chains.ETH!, rpc_url: proxy.url }) } });
  await sender.start();
  s.startMining(100);
});

after(async () => {
  await sender?.stop();
  await proxy?.close();
  await s?.stop();
});

const withdraw = (queueId: string, from: string, amount: string) =>
  s.biz.send("withdraw", { queue_id: queueId, from_address: from, to_address: randomAddress(), amount, chain: "ETH", symbol: "USDT", timestamp: nowS() });

test("a transaction the node refuses is broadcast once per run of its job, then the job waits its backoff", async () => {
  await withdraw("w-refused", refusing, "1");
  const t = await eventually(async () => {
    const r = await s.env.db.prisma.transfer.findFirst({ where: { queueId: "w-refused" } });
    return r?.state === "signed" ? r : null;
  }, 30_000);
  const job = (await s.env.queues.transfer.getJob(`send-${t.id}`))!;
  // the job's first run is over (it went to wait out its backoff, or beyond)
  await eventually(async () => (await job.getState()) !== "active" && (await s.env.queues.transfer.getJob(job.id!))!.attemptsMade >= 1, 60_000);
  assert.ok(refusals <= 2, `broadcast ${refusals} times in one run of the job`);
  const again = await s.env.db.prisma.transfer.findUniqueOrThrow({ where: { id: t.id } });
  assert.equal(again.state, "signed", "still signed: re-broadcast as it is, never re-signed");
  assert.equal(await s.env.db.prisma.txAttempt.count({ where: { transferId: t.id } }), 1);
});

test("another gateway holding the velocity lock of the same chain on this MySQL server does not stop this one's payouts", async () => {
  const other = await mariadb.createConnection({ ...poolConfigFromUrl(`${MYSQL_ROOT}/mysql`), database: "mysql" });
  try {
    // what another gateway's sender holds while it signs (its database, or no database at all in the name)
    const held = (await other.query(
      "SELECT GET_LOCK('payment:velocity:ETH', 0) AS a, GET_LOCK(CONCAT('payment:', SHA1(CONCAT('payment_elsewhere', '|', 'velocity:ETH'))), 0) AS b",
    )) as { a: bigint | number; b: bigint | number }[];
    assert.deepEqual([Number(held[0]!.a), Number(held[0]!.b)], [1, 1]);
    await withdraw("w-velocity-lock", HOT, "2");
    const sent = await s.biz.waitFor("withdraw", (n) => n.queue_id === "w-velocity-lock", 30_000);
    assert.equal(sent.status, 2, JSON.stringify(sent));
  } finally {
    await other.end();
  }
});
