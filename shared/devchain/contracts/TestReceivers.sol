// SPDX-License-Identifier: MIT
pragma solidity ^0.8.20;

/// Counterparties that misbehave on purpose, for the tests of the EIP-7702
/// contracts (shared/contracts): each must fail its own item of a batch and
/// nothing else.

/// Refuses every ETH payment.
contract RevertingReceiver {
    receive() external payable {
        revert("refused");
    }
}

/// Burns all the gas it is given (a recipient trying to starve the rest of a batch).
contract GasBurner {
    receive() external payable {
        while (true) {}
    }
}

/// Needs about 220,000 gas to accept ETH (ten fresh storage slots), then accepts it.
contract GasHungryReceiver {
    uint256[10] public slots;

    receive() external payable {
        for (uint256 i = 0; i < 10; i++) slots[i] += 1;
    }
}

/// On receiving ETH, calls back into the payer (a delegated wallet) asking
/// it to pay again, and records whether that worked.
contract ReentrantReceiver {
    uint256 public attempts;
    uint256 public succeeded;

    receive() external payable {
        attempts += 1;
        uint256[] memory items = new uint256[](1);
        items[0] = (uint256(1) << 160) | uint256(uint160(address(this)));
        (bool ok, ) = msg.sender.call(abi.encodeWithSignature("pay(address,uint32,uint256[])", address(0), uint32(50_000), items));
        if (ok) succeeded += 1;
    }
}

/// An ERC-20 whose `transfer` returns false (instead of reverting) when
/// the sender's balance is short or either side is blocked.
contract TestBoolToken {
    mapping(address => uint256) public balanceOf;
    mapping(address => bool) public blocked;

    event Transfer(address indexed from, address indexed to, uint256 value);

    function mint(address to, uint256 value) external {
        balanceOf[to] += value;
        emit Transfer(address(0), to, value);
    }

    function setBlocked(address who, bool isBlocked) external {
        blocked[who] = isBlocked;
    }

    function transfer(address to, uint256 value) external returns (bool) {
        if (blocked[msg.sender] || blocked[to] || balanceOf[msg.sender] < value) return false;
        balanceOf[msg.sender] -= value;
        balanceOf[to] += value;
        emit Transfer(msg.sender, to, value);
        return true;
    }
}
