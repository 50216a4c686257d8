// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

/// @title BatchExecutor: many payouts in one transaction from a hot wallet
/// @notice A hot wallet (an EOA) delegates to this contract with an EIP-7702
/// authorization, then sends a transaction to ITSELF calling `pay`: the code
/// runs as the wallet, so every ERC-20 `transfer` and every ETH call is made
/// by the wallet, exactly as if it had sent that transfer on its own.
///
/// The rules, each proven by tests/integration/delegation-contracts.test.ts:
/// - Access: `pay` runs only when the wallet calls itself
///   (msg.sender == address(this)), i.e. in a transaction signed with the
///   wallet's own key. Anyone else calling the wallet, and anyone calling this
///   deployment directly, is refused. No owner, no storage, no initialiser,
///   no upgrade path: there is nothing to take over or to front-run.
/// - Isolation: each item is one call given at most `gasPerItem` gas; a
///   revert, a `false` return or running out of that gas fails that item
///   alone. Before each call the remaining gas is checked to cover the full
///   `gasPerItem`: if it does not, the whole transaction reverts (nothing
///   paid) instead of an item failing for want of gas it should have had.
/// - Outcome: one `Batch` event (emitted by the wallet's address) whose bit i
///   of `paid` is set iff item i was paid. A receipt without it means `pay`
///   did not run (e.g. the delegation was revoked): nothing was paid.
///
/// Modelled on the self-call rule of ERC-7821 executors (Solady's ERC7821,
/// Uniswap's Calibur), narrowed to transfers: it cannot make arbitrary calls.
contract BatchExecutor {
    /// `paid[i >> 8]` bit `i & 255` is set iff item i was paid.
    event Batch(uint256 count, uint256[] paid);

    error Unauthorized();
    error NotAToken();
    /// the transaction's gas cannot give item `index` its full `gasPerItem`
    error GasTooLow(uint256 index);

    /// Gas kept back beyond an item's call, covering the CALL itself in the
    /// worst case (cold recipient 2,600 + value transfer 9,000 + new
    /// account 25,000) and the loop, so the callee always gets `gasPerItem`.
    uint256 private constant CALL_RESERVE = 40_000;

    /// Pay `items` from this wallet: each item is `amount << 160 | recipient`
    /// (amount below 2**96); `token` is an ERC-20 (returning a bool or, like
    /// USDT, nothing) or address(0) for ETH.
    function pay(address token, uint32 gasPerItem, uint256[] calldata items) external {
        if (msg.sender != address(this)) revert Unauthorized();
        if (token != address(0) && token.code.length == 0) revert NotAToken();
        uint256 n = items.length;
        uint256[] memory paid = new uint256[]((n + 255) >> 8);
        uint256 need = (uint256(gasPerItem) * 64) / 63 + CALL_RESERVE;
        unchecked {
            for (uint256 i; i < n; ++i) {
                if (gasleft() < need) revert GasTooLow(i);
                bool ok = _transfer(token, gasPerItem, items[i]);
                if (ok) paid[i >> 8] |= 1 << (i & 255);
            }
        }
        emit Batch(n, paid);
    }

    /// One item: true iff the call succeeded (and a token did not return false).
    function _transfer(address token, uint32 gasPerItem, uint256 item) private returns (bool ok) {
        /// @solidity memory-safe-assembly
        assembly {
            let to := and(item, 0xffffffffffffffffffffffffffffffffffffffff)
            let amount := shr(160, item)
            switch token
            case 0 { ok := call(gasPerItem, to, amount, 0, 0, 0, 0) }
            default {
                // transfer(to, amount) built in free memory
                let m := mload(0x40)
                mstore(m, shl(224, 0xa9059cbb))
                mstore(add(m, 0x04), to)
                mstore(add(m, 0x24), amount)
                ok := call(gasPerItem, token, 0, m, 0x44, 0x00, 0x20)
                // success: no return data (like USDT) or a 32-byte true
                ok := and(ok, or(iszero(returndatasize()), and(gt(returndatasize(), 31), eq(mload(0x00), 1))))
            }
        }
    }

    /// The wallet keeps accepting ETH (gas top-ups, refunds) as a plain
    /// EOA does, with or without call data; nothing else happens.
    receive() external payable {}

    fallback() external payable {}
}
