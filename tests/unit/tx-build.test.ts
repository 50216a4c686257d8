/**
 * The ERC-20 transfer call data the sender writes by hand (tx-build.ts
 * erc20TransferData) is byte for byte what ethers' ABI coder writes, for any
 * recipient and amount; what is not an address or a uint256 is refused.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { erc20 } from "../../shared/adapters/chain.ts";
import { erc20TransferData } from "../../shared/transfers/tx-build.ts";

const hexAddress = fc.uint8Array({ minLength: 20, maxLength: 20 }).map((b) => `0x${Buffer.from(b).toString("hex")}`);
const anyCase = (a: string) => fc.boolean().map((up) => (up ? `0x${a.slice(2).toUpperCase()}` : a));

test("the same bytes as ethers' ABI coder, for any recipient (either case) and any uint256", () => {
  fc.assert(
    fc.property(hexAddress.chain(anyCase), fc.bigInt({ min: 0n, max: (1n << 256n) - 1n }), (to, units) => {
      assert.equal(erc20TransferData(to, units), erc20.encodeFunctionData("transfer", [to.toLowerCase(), units]));
    }),
    { numRuns: 2_000 },
  );
  // the edges
  const zero = `0x${"0".repeat(40)}`;
  assert.equal(erc20TransferData(zero, 0n), erc20.encodeFunctionData("transfer", [zero, 0n]));
  assert.equal(erc20TransferData(zero, (1n << 256n) - 1n), erc20.encodeFunctionData("transfer", [zero, (1n << 256n) - 1n]));
});

test("not an address or not a uint256: refused", () => {
  const to = `0x${"ab".repeat(20)}`;
  for (const bad of ["", "0x", to.slice(0, 41), `${to}00`, to.replace("0x", ""), `0x${"zz".repeat(20)}`, ` ${to}`]) {
    assert.throws(() => erc20TransferData(bad, 1n), TypeError, JSON.stringify(bad));
  }
  assert.throws(() => erc20TransferData(to, -1n), RangeError);
  assert.throws(() => erc20TransferData(to, 1n << 256n), RangeError);
});
