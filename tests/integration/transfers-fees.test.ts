/**
 * Re-pricing stuck transactions (issue 11, fault 1). Only a wallet's lowest
 * unmined nonce is stuck; the transactions after it are queued behind it
 * and re-pricing them changes nothing but their fee. Replacements stop at a
 * cap relative to the base fee (on by default). A replacement the node
 * refused can never be mined, so it reserves nothing of the wallet's ETH:
 * new payouts from that wallet are not refused `insufficient_gas` for it.
 */
import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import { Transaction, Wallet } from "ethers";
import { nowS, eventually } from "../helpers/rabbit.ts";
import { startTransferStack, randomAddress, HOT, type TransferStack } from "../helpers/transfer-stack.ts";
import { startRpcProxy, type RpcProxy } from "../helpers/rpc-proxy.ts";
import type { ConfigInput } from "../../shared/config/schema.ts";
import { createChainClient } from "../../shared/adapters/chain.ts";
import { createTransferSender } from "../../workers/transfer-sender/main.ts";

const withdraw = (s: TransferStack, queueId: string, from: string, amount: string) =>
  s.biz.send("withdraw", { queue_id: queueId, from_address: from, to_address: randomAddress(), amount, chain: "ETH", symbol: "USDT", timestamp: nowS() });
const attemptsOf = (s: TransferStack, queueId: string) => s.env.db.prisma.txAttempt.findMany({ where: { transfer: { queueId } }, orderBy: { id: "asc" } });

/** A stack whose transactions count as stuck after a second, with `over` on the chain's settings. */
const stack = (over: Partial<NonNullable<ConfigInput["eth_config"]>>, sender = true) =>
  startTransferStack({ sender, config: (c) => ({ ...c, eth_config: { ...c.eth_config!, stuck_after_s: 1, hold_s: 0, ...over } }) });

describe("re-pricing: the lowest unmined nonce only, up to the cap", () => {
  let s: TransferStack;
  before(async () => {
    s = await stack({ fee_bump_percent: 25 });
  });
  after(async () => {
    await s?.provider.send("evm_setAutomine", [true]).catch(() => undefined);
    await s?.stop();
  });

  test("three transfers of one wallet stuck unmined: only the first nonce is replaced, the two queued behind it keep their one transaction", async () => {
    await s.provider.send("evm_setAutomine", [false]);
    const ids = ["fee-a", "fee-b", "fee-c"];
    for (const q of ids) await withdraw(s, q, HOT, "1");
    for (const q of ids) await s.biz.waitFor("withdraw", (n) => n.queue_id === q && n.status === 2, 30_000);
    const nonces = await Promise.all(ids.map(async (q) => (await s.env.db.prisma.transfer.findFirstOrThrow({ where: { queueId: q } })).nonce!));
    const lowest = ids[nonces.indexOf(nonces.reduce((a, b) => (a < b ? a : b)))]!;
    const behind = ids.filter((q) => q !== lowest);

    // the lowest re-priced twice: by then the others have been unmined for more than twice stuck_after_s too
    await eventually(async () => (await attemptsOf(s, lowest)).length >= 3, 60_000);
    for (const q of behind) assert.equal((await attemptsOf(s, q)).length, 1, `${q} is queued behind nonce ${nonces[ids.indexOf(lowest)]}, not stuck`);

    // the cap (4 x (base fee + tip) by default) stops the re-pricing, and says so
    await eventually(async () => ((await s.env.metrics.feeCapped.get()).values.find((v) => v.labels.chain === "ETH")?.value ?? 0) >= 1, 60_000);
    const capped = await attemptsOf(s, lowest);
    const head = (await s.provider.send("eth_getBlockByNumber", ["latest", false])) as { baseFeePerGas: string };
    const tip = BigInt(await s.provider.send("eth_maxPriorityFeePerGas", []));
    for (const a of capped) assert.ok(BigInt(a.maxFeePerGas.toFixed()) <= 4n * (BigInt(head.baseFeePerGas) + tip), `${a.maxFeePerGas} within the cap`);
    for (const q of behind) assert.equal((await attemptsOf(s, q)).length, 1);

    // mined at last: each reported once, with the attempt that was mined
    await s.provider.send("evm_setAutomine", [true]);
    s.startMining(100);
    for (const q of ids) {
      const final = await s.biz.waitFor("withdraw", (n) => n.queue_id === q && n.status !== 2, 60_000);
      assert.equal(final.status, 1, JSON.stringify(final));
      const mined = (await attemptsOf(s, q)).filter((a) => a.state === "mined");
      assert.equal(mined.length, 1);
      assert.equal(final.tx_hash, mined[0]!.txHash);
    }
    await s.stopMining();
  });
});

describe("a replacement the node refused reserves no gas", () => {
  let s: TransferStack;
  let proxy: RpcProxy;
  let sender: ReturnType<typeof createTransferSender>;
  let poor: string;
  let first: { nonce: number; hash: string } | null = null;
  before(async () => {
    // no relative cap: replacements double and double again
    s = await stack({ fee_bump_percent: 100, max_fee_multiple: 0 }, false);
    poor = await s.importWallet(Wallet.createRandom().privateKey, "hot");
    // The sender's node refuses every replacement of the wallet's first transaction, as a node
    // does one it cannot take (here: as if the wallet could not cover its fee).
    proxy = await startRpcProxy(s.env.anvil!.rpcUrl, (c) => {
      if (c.method !== "eth_sendRawTransaction") return undefined;
      const tx = Transaction.from(String(c.params[0]));
      if (tx.from?.toLowerCase() !== poor) return undefined;
      first ??= { nonce: tx.nonce, hash: tx.hash! };
      if (tx.nonce === first.nonce && tx.hash !== first.hash) return { error: { code: -32003, message: "insufficient funds for gas * price + value" } };
      return undefined;
    });
    const client = createChainClient({ ...s.env.config.chains.ETH!, rpc_url: proxy.url });
    sender = createTransferSender({ ...s.env, masterKey: s.env.masterKey, chainClients: { ETH: client } });
    await sender.start();
  });
  after(async () => {
    await s?.provider.send("evm_setAutomine", [true]).catch(() => undefined);
    await sender?.stop();
    await proxy?.close();
    await s?.stop();
  });

  test("a wallet whose stuck transfer's replacements the node refuses still sends its next payout", async () => {
    await s.mint(poor, 10_000_000n);
    const balance = 2_000_000_000_000_000n; // 0.002 ETH
    await s.provider.send("anvil_setBalance", [poor, `0x${balance.toString(16)}`]);
    await s.provider.send("evm_setAutomine", [false]);
    await withdraw(s, "fee-stuck", poor, "1");
    await s.biz.waitFor("withdraw", (n) => n.queue_id === "fee-stuck" && n.status === 2, 30_000);
    // refused replacements by now offer more gas money than the wallet holds
    await eventually(async () => {
      const refused = (await attemptsOf(s, "fee-stuck")).filter((a) => a.broadcastAt === null);
      return refused.some((a) => BigInt(a.gasLimit.mul(a.maxFeePerGas).toFixed()) > balance);
    }, 60_000);

    await withdraw(s, "fee-next", poor, "2");
    const next = await s.biz.waitFor("withdraw", (n) => n.queue_id === "fee-next", 30_000);
    assert.equal(next.status, 2, `the next payout is sent, not refused: ${JSON.stringify(next)}`);

    await s.provider.send("evm_setAutomine", [true]);
    s.startMining(100);
    for (const q of ["fee-stuck", "fee-next"]) {
      const final = await s.biz.waitFor("withdraw", (n) => n.queue_id === q && n.status !== 2, 60_000);
      assert.equal(final.status, 1, JSON.stringify(final));
    }
    await s.stopMining();
    assert.equal((await attemptsOf(s, "fee-stuck")).find((a) => a.state === "mined")?.txHash, first!.hash.toLowerCase(), "the one the node took was mined");
  });
});
