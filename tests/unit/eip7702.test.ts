/**
 * The pure parts of the EIP-7702 adapters: authorizations bound to one
 * chain and nonce, type-4 signing and same-nonce replacement that keeps the
 * whole batch, the delegation designator, item packing, and reading each
 * item's outcome from a receipt only on positive evidence.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { SigningKey, Transaction, ZeroAddress, computeAddress, randomBytes, verifyAuthorization, zeroPadValue, toBeHex, AbiCoder } from "ethers";
import { signAuthorization, signDelegationTx, resignDelegationTx, signRevocation, signSelfAuthorization, delegationTarget } from "../../shared/adapters/eip7702.ts";
import fc from "fast-check";
import { packItem, encodePay, encodeSweep, payOutcome, sweepOutcome, nativeSwept, type ReceiptLike } from "../../shared/adapters/delegation-calls.ts";
import { contractInterface } from "../../shared/adapters/delegation-contracts.ts";
import { MAX_BATCH_AMOUNT } from "../../shared/domain/delegation-batch-plan.ts";

const key = new SigningKey(randomBytes(32));
const me = computeAddress(key.publicKey);
const target = "0x" + "ab".repeat(20);
const fees = { maxFeePerGas: 30n, maxPriorityFeePerGas: 2n };

describe("authorizations", () => {
  it("are signed by the wallet for one chain, one target, one nonce", () => {
    const a = signAuthorization(key, { chainId: 1n, address: target, nonce: 7n });
    assert.equal(a.chainId, 1n);
    assert.equal(a.nonce, 7n);
    assert.equal(a.address.toLowerCase(), target);
    assert.equal(verifyAuthorization(a, a.signature), me);
  });
  it("are never for chain id 0 (valid on every chain)", () => {
    assert.throws(() => signAuthorization(key, { chainId: 0n, address: target, nonce: 0n }), RangeError);
  });
  it("in the wallet's own transaction take the nonce after the transaction's; a revocation targets address(0)", () => {
    assert.equal(signSelfAuthorization(key, 5n, target, 41n).nonce, 42n);
    assert.equal(signRevocation(key, 5n, 3n).address, ZeroAddress);
  });
});

describe("type-4 transactions", () => {
  const auth = signAuthorization(key, { chainId: 1n, address: target, nonce: 4n });
  const req = { chainId: 1n, nonce: 3n, to: me, data: "0x1234", gasLimit: 500_000n, fees, authorizations: [auth] };

  it("carry the authorizations and are signed by the wallet; without any they are plain type 2", () => {
    const signed = signDelegationTx(key, req);
    const tx = Transaction.from(signed.raw);
    assert.equal(tx.type, 4);
    assert.equal(tx.from, me);
    assert.equal(tx.hash, signed.hash);
    assert.equal(tx.authorizationList!.length, 1);
    assert.equal(Transaction.from(signDelegationTx(key, { ...req, authorizations: [] }).raw).type, 2);
  });

  it("a replacement changes only the fees: same nonce, target, batch, gas limit and authorizations", () => {
    const first = Transaction.from(signDelegationTx(key, req).raw);
    const bumped = { maxFeePerGas: 40n, maxPriorityFeePerGas: 3n };
    const second = Transaction.from(resignDelegationTx(key, first.serialized, bumped).raw);
    for (const f of ["type", "chainId", "nonce", "to", "data", "value", "gasLimit"] as const) assert.equal(second[f], first[f], f);
    assert.deepEqual(second.authorizationList, first.authorizationList);
    assert.equal(second.maxFeePerGas, 40n);
    assert.equal(second.maxPriorityFeePerGas, 3n);
    assert.notEqual(second.hash, first.hash);
    assert.equal(second.from, me);
  });
});

describe("delegationTarget", () => {
  it("reads the EIP-7702 designator, nothing else", () => {
    assert.equal(delegationTarget("0xef0100" + "AB".repeat(20)), target);
    assert.equal(delegationTarget("0x"), null);
    assert.equal(delegationTarget("0x6080604052"), null);
    assert.equal(delegationTarget("0xef0100" + "ab".repeat(19)), null);
  });
});

describe("items and outcomes", () => {
  it("packs amount << 160 | address, refusing what does not fit 96 bits", () => {
    assert.equal(packItem(target, 5n), (5n << 160n) | BigInt(target));
    assert.equal(packItem(target, MAX_BATCH_AMOUNT) >> 160n, MAX_BATCH_AMOUNT);
    assert.throws(() => packItem(target, MAX_BATCH_AMOUNT + 1n), RangeError);
    assert.throws(() => packItem(target, -1n), RangeError);
    const [, , items] = contractInterface("BatchExecutor").decodeFunctionData("pay", encodePay(null, [{ to: target, amount: 9n }]));
    assert.deepEqual([...items], [(9n << 160n) | BigInt(target)]);
    assert.throws(() => packItem("0x1234", 1n), TypeError);
    assert.throws(() => packItem(` ${target}`, 1n), TypeError);
  });

  it("pay and sweep call data are byte for byte what ethers' ABI coder writes, for any token, gas and items", () => {
    const hexAddress = fc.uint8Array({ minLength: 20, maxLength: 20 }).map((b) => `0x${Buffer.from(b).toString("hex")}`);
    const anyCase = (a: string) => fc.boolean().map((up) => (up ? `0x${a.slice(2).toUpperCase()}` : a));
    const item = fc.record({ to: hexAddress.chain(anyCase), amount: fc.bigInt({ min: 0n, max: MAX_BATCH_AMOUNT }) });
    fc.assert(
      fc.property(fc.option(hexAddress.chain(anyCase)), fc.integer({ min: 0, max: 0xffffffff }), fc.array(item, { maxLength: 40 }), (token, gas, items) => {
        const words = items.map((i) => (i.amount << 160n) | BigInt(i.to));
        const zero = "0x" + "00".repeat(20);
        assert.equal(encodePay(token, items, gas), contractInterface("BatchExecutor").encodeFunctionData("pay", [token ?? zero, gas, words]));
        const sweepItems = items.map((i) => ({ wallet: i.to, amount: i.amount }));
        assert.equal(encodeSweep(token, sweepItems, gas), contractInterface("DepositSweeper").encodeFunctionData("sweep", [token ?? zero, gas, words]));
      }),
      { numRuns: 500 },
    );
    assert.throws(() => encodePay("0x12", [], 1), TypeError);
    assert.throws(() => encodePay(null, [], -1), RangeError);
    assert.throws(() => encodePay(null, [], 2 ** 32), RangeError);
    assert.throws(() => encodePay(null, [], 1.5), RangeError);
  });

  const batchLog = (emitter: string, count: number, words: bigint[]) => {
    const iface = contractInterface("BatchExecutor");
    const ev = iface.getEvent("Batch")!;
    return { address: emitter, topics: [ev.topicHash], data: AbiCoder.defaultAbiCoder().encode(["uint256", "uint256[]"], [count, words]) };
  };
  const wallet = "0x" + "11".repeat(20);

  it("an order is paid only when its bit is set in the Batch event the wallet emitted", () => {
    // 300 items: bits 0, 2 and 257 set
    const receipt: ReceiptLike = { status: 1, logs: [{ address: "0x" + "99".repeat(20), topics: ["0x" + "00".repeat(32)], data: "0x" }, batchLog(wallet, 300, [5n, 2n])] };
    const o = payOutcome(receipt, wallet, 300);
    assert.equal(o.kind, "executed");
    const done = o.kind === "executed" ? o.done : [];
    assert.deepEqual(
      done.flatMap((d, i) => (d ? [i] : [])),
      [0, 2, 257],
    );
  });

  it("a reverted transaction, or one without our event (another emitter's does not count), paid nothing", () => {
    assert.deepEqual(payOutcome({ status: 0, logs: [batchLog(wallet, 1, [1n])] }, wallet, 1), { kind: "reverted" });
    assert.deepEqual(payOutcome({ status: 1, logs: [] }, wallet, 1), { kind: "not-executed" });
    assert.deepEqual(payOutcome({ status: 1, logs: [batchLog("0x" + "22".repeat(20), 1, [1n])] }, wallet, 1), { kind: "not-executed" });
  });

  it("a receipt that does not match the transaction built is an error, not a guess", () => {
    assert.throws(() => payOutcome({ status: 1, logs: [batchLog(wallet, 2, [3n])] }, wallet, 3), /reports 2 items/);
    assert.throws(() => payOutcome({ status: 1, logs: [batchLog(wallet, 1, [1n]), batchLog(wallet, 1, [1n])] }, wallet, 1), /2 result events/);
  });

  it("sweeps: the Sweep event of the sweeper, and the ETH each of our wallets reported sending", () => {
    const iface = contractInterface("DepositSweeper");
    const sweeper = "0x" + "33".repeat(20);
    const w1 = "0x" + "44".repeat(20);
    const sweep = { address: sweeper, topics: [iface.getEvent("Sweep")!.topicHash], data: AbiCoder.defaultAbiCoder().encode(["uint256", "uint256[]"], [2, [2n]]) };
    const eth = (from: string, wei: bigint) => ({ address: from, topics: [iface.getEvent("NativeSwept")!.topicHash], data: zeroPadValue(toBeHex(wei), 32) });
    const receipt = { status: 1, logs: [eth(w1, 10n), eth("0x" + "55".repeat(20), 99n), sweep] };
    assert.deepEqual(sweepOutcome(receipt, sweeper, 2), { kind: "executed", done: [false, true] });
    assert.deepEqual(nativeSwept(receipt, [w1]), new Map([[w1, 10n]]));
  });
});
