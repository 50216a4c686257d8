/**
 * Reading value transfers out of raw node data: Transfer logs, native
 * transactions, callTracer traces (depth-first, reverted frames skipped).
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { id } from "ethers";
import {
  TRANSFER_TOPIC,
  internalTransfersFromTrace,
  nativeTransfersFromTxs,
  recipients,
  tokenTransfersFromLogs,
  type CallFrame,
  type RpcLog,
} from "../../shared/domain/chain-transfers.ts";

const TOKEN = "0x" + "dd".repeat(20);
const A = "0x" + "0a".repeat(20);
const B = "0x" + "0b".repeat(20);
const C = "0x" + "0c".repeat(20);
const TX = "0x" + "ee".repeat(32);
const word = (addr: string) => "0x" + "0".repeat(24) + addr.slice(2);
const amount = (n: bigint) => "0x" + n.toString(16).padStart(64, "0");
const tokens = new Map([[TOKEN, { symbol: "USDT", decimals: 6 }]]);

const log = (over: Partial<RpcLog> = {}): RpcLog => ({
  address: TOKEN,
  topics: [TRANSFER_TOPIC, word(A), word(B)],
  data: amount(100_500_001n),
  logIndex: "0x3",
  transactionHash: TX,
  ...over,
});

describe("tokenTransfersFromLogs", () => {
  it("the topic constant is keccak of the event signature", () => {
    assert.equal(TRANSFER_TOPIC, id("Transfer(address,address,uint256)"));
  });

  it("reads a Transfer log of a configured token", () => {
    assert.deepEqual(tokenTransfersFromLogs([log()], tokens), [{ txHash: TX, logIndex: 3, symbol: "USDT", from: A, to: B, units: 100_500_001n }]);
  });

  it("matches the token address in any case", () => {
    assert.equal(tokenTransfersFromLogs([log({ address: TOKEN.toUpperCase().replace("0X", "0x") })], tokens).length, 1);
  });

  it("ignores removed logs, other contracts, other events, malformed and zero transfers", () => {
    const ignored = [
      log({ removed: true }),
      log({ address: "0x" + "99".repeat(20) }),
      log({ topics: [id("Approval(address,address,uint256)"), word(A), word(B)] }),
      log({ topics: [TRANSFER_TOPIC, word(A), word(B), amount(1n)] }), // ERC-721 style
      log({ topics: [TRANSFER_TOPIC, word(A)] }),
      log({ topics: [TRANSFER_TOPIC, "0x" + "ff".repeat(32), word(B)] }), // not a clean address word
      log({ data: "0x" }),
      log({ data: amount(0n) }),
    ];
    assert.deepEqual(tokenTransfersFromLogs(ignored, tokens), []);
  });
});

describe("nativeTransfersFromTxs", () => {
  it("keeps transactions with a recipient and value, lowercased, index -1", () => {
    const txs = [
      { hash: TX.toUpperCase().replace("0X", "0x"), from: A.toUpperCase().replace("0X", "0x"), to: B, value: "0x1" },
      { hash: TX, from: A, to: null, value: "0x5" }, // contract creation
      { hash: TX, from: A, to: C, value: "0x0" },
    ];
    assert.deepEqual(nativeTransfersFromTxs(txs, "ETH"), [{ txHash: TX, logIndex: -1, symbol: "ETH", from: A, to: B, units: 1n }]);
  });
});

describe("internalTransfersFromTrace", () => {
  const call = (from: string, to: string, value: string, more: Partial<CallFrame> = {}): CallFrame => ({ type: "CALL", from, to, value, ...more });

  it("numbers value transfers depth-first from -2 and skips the top-level call", () => {
    const trace: CallFrame = call(A, B, "0x10", {
      calls: [call(B, C, "0x1", { calls: [call(C, A, "0x2")] }), { type: "STATICCALL", from: B, to: C }, call(B, A, "0x3")],
    });
    const got = internalTransfersFromTrace(TX, trace, "ETH");
    assert.deepEqual(
      got.map((t) => [t.logIndex, t.from, t.to, t.units]),
      [
        [-2, B, C, 1n],
        [-3, C, A, 2n],
        [-4, B, A, 3n],
      ],
    );
  });

  it("a reverted frame moves nothing, nor does anything below it", () => {
    const trace: CallFrame = call(A, B, "0x0", {
      calls: [call(B, C, "0x1", { error: "execution reverted", calls: [call(C, A, "0x2")] }), call(B, A, "0x3")],
    });
    assert.deepEqual(
      internalTransfersFromTrace(TX, trace, "ETH").map((t) => [t.logIndex, t.units]),
      [[-2, 3n]],
    );
  });

  it("a failed transaction moves nothing", () => {
    assert.deepEqual(internalTransfersFromTrace(TX, call(A, B, "0x0", { error: "out of gas", calls: [call(B, C, "0x1")] }), "ETH"), []);
  });

  it("delegatecalls and zero-value calls are not transfers", () => {
    const trace = call(A, B, "0x0", { calls: [{ type: "DELEGATECALL", from: B, to: C, value: "0x5" }, call(B, C, "0x0")] });
    assert.deepEqual(internalTransfersFromTrace(TX, trace, "ETH"), []);
  });
});

describe("recipients", () => {
  it("lists each recipient once", () => {
    const t = { txHash: TX, logIndex: 0, symbol: "USDT", from: A, units: 1n };
    assert.deepEqual(recipients([{ ...t, to: B }, { ...t, to: C }, { ...t, to: B }]), [B, C]);
  });
});
