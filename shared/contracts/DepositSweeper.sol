// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

/// @title DepositSweeper: the collection wallet empties many deposit wallets in one transaction
/// @notice Each deposit wallet (an EOA whose key we hold) delegates to this
/// contract with an EIP-7702 authorization. The collection wallet then calls
/// `sweep` on this deployment, which calls `pull` on each deposit wallet; the
/// code runs as the deposit wallet and sends its tokens, and any ETH it
/// holds, to the collection wallet. The collection wallet pays all the gas:
/// no ETH is ever sent to a deposit wallet.
///
/// The rules, each proven by tests/integration/delegation-contracts.test.ts:
/// - Access: only `collector` may call `sweep`, and only on this deployment;
///   a deposit wallet's `pull` runs only when this deployment calls it, so
///   only on the collector's behalf. Both addresses are immutables, in the
///   code itself, fixed at deployment: no storage, no owner, no initialiser,
///   so nobody can set or change them (an authorization replayed or
///   front-run by someone else only installs this same code), and nothing
///   collides with storage a wallet kept from an earlier delegation.
/// - Destination: `pull` can only send to `collector`. Whoever calls, funds
///   can only move into the collection wallet.
/// - Isolation: each wallet is one call with at most `gasPerItem` gas; its
///   failure (a blocked token transfer, a wallet not delegated here) fails
///   that wallet alone. The remaining gas is checked to cover each call's
///   full `gasPerItem` first, else the whole transaction reverts.
/// - Outcome: one `Sweep` event, bit i of `swept` set iff wallet i was swept
///   (its `pull` ran this code and returned its selector: a call to an EOA
///   without our delegation "succeeds" doing nothing and is NOT counted);
///   a wallet that held ETH also logs `NativeSwept` from its own address.
contract DepositSweeper {
    /// `swept[i >> 8]` bit `i & 255` is set iff wallet i was swept.
    event Sweep(uint256 count, uint256[] swept);
    /// Emitted by a deposit wallet that sent `amount` wei to the collector.
    event NativeSwept(uint256 amount);

    error Unauthorized();
    error NotAToken();
    error ZeroCollector();
    error TransferFailed();
    /// the transaction's gas cannot give wallet `index` its full `gasPerItem`
    error GasTooLow(uint256 index);

    /// The collection wallet: the only caller of `sweep`, the only destination.
    address public immutable collector;
    /// This deployment's own address, fixed in the code that deposit wallets
    /// run: `pull` compares the caller with it.
    address private immutable deployment;

    /// See BatchExecutor.CALL_RESERVE (no value is sent, so less is needed).
    uint256 private constant CALL_RESERVE = 10_000;

    constructor(address collector_) {
        if (collector_ == address(0)) revert ZeroCollector();
        collector = collector_;
        deployment = address(this);
    }

    /// Sweep `items`, each `amount << 160 | depositWallet`: `amount` of
    /// `token` (exactly; below 2**96) and all the wallet's ETH. With
    /// `token` address(0) only ETH is swept and the amounts are ignored.
    function sweep(address token, uint32 gasPerItem, uint256[] calldata items) external {
        if (msg.sender != collector || address(this) != deployment) revert Unauthorized();
        if (token != address(0) && token.code.length == 0) revert NotAToken();
        uint256 n = items.length;
        uint256[] memory swept = new uint256[]((n + 255) >> 8);
        uint256 need = (uint256(gasPerItem) * 64) / 63 + CALL_RESERVE;
        unchecked {
            for (uint256 i; i < n; ++i) {
                if (gasleft() < need) revert GasTooLow(i);
                bool ok = _pull(token, gasPerItem, items[i]);
                if (ok) swept[i >> 8] |= 1 << (i & 255);
            }
        }
        emit Sweep(n, swept);
    }

    /// One wallet: true iff its `pull` ran this code and succeeded.
    function _pull(address token, uint32 gasPerItem, uint256 item) private returns (bool ok) {
        bytes4 pullSelector = this.pull.selector;
        /// @solidity memory-safe-assembly
        assembly {
            // pull(token, amount) built in free memory; ETH only: amount 0
            let m := mload(0x40)
            mstore(m, pullSelector)
            mstore(add(m, 0x04), token)
            mstore(add(m, 0x24), mul(iszero(iszero(token)), shr(160, item)))
            ok := call(gasPerItem, and(item, 0xffffffffffffffffffffffffffffffffffffffff), 0, m, 0x44, 0x00, 0x20)
            // our code ran as the wallet: a wallet without it would "succeed" silently
            ok := and(ok, and(eq(returndatasize(), 32), eq(mload(0x00), pullSelector)))
        }
    }

    /// Runs as a deposit wallet: send `amount` of `token` and all ETH to the
    /// collector. Only this deployment (i.e. `sweep`, i.e. the collector)
    /// may call it. All or nothing for the wallet: a failed transfer reverts.
    function pull(address token, uint256 amount) external returns (bytes4) {
        if (msg.sender != deployment) revert Unauthorized();
        address to = collector;
        if (amount != 0) {
            bool ok;
            /// @solidity memory-safe-assembly
            assembly {
                let m := mload(0x40)
                mstore(m, shl(224, 0xa9059cbb)) // transfer(address,uint256)
                mstore(add(m, 0x04), to)
                mstore(add(m, 0x24), amount)
                ok := call(gas(), token, 0, m, 0x44, 0x00, 0x20)
                // success: no return data (USDT) or a 32-byte true; `sweep` checked the token has code
                ok := and(ok, or(iszero(returndatasize()), and(gt(returndatasize(), 31), eq(mload(0x00), 1))))
            }
            if (!ok) revert TransferFailed();
        }
        uint256 eth = address(this).balance;
        if (eth != 0) {
            (bool ok, ) = to.call{value: eth}("");
            if (!ok) revert TransferFailed();
            emit NativeSwept(eth);
        }
        return this.pull.selector;
    }

    /// A deposit wallet keeps accepting ETH deposits as a plain EOA does,
    /// with or without call data; nothing else happens.
    receive() external payable {}

    fallback() external payable {}
}
