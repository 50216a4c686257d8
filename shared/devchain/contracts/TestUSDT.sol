// SPDX-License-Identifier: MIT
pragma solidity ^0.8.20;

/// A USDT-like token for development and tests: 6 decimals and, like
/// mainnet USDT, `transfer`/`transferFrom`/`approve` return nothing.
/// The owner can mint and can block an address (transfers to or from it
/// revert) to produce reverted transactions on purpose.
contract TestUSDT {
    string public constant name = "Test Tether USD";
    string public constant symbol = "USDT";
    uint8 public constant decimals = 6;
    uint256 public totalSupply;
    address public owner;

    mapping(address => uint256) public balanceOf;
    mapping(address => mapping(address => uint256)) public allowance;
    mapping(address => bool) public blocked;

    event Transfer(address indexed from, address indexed to, uint256 value);
    event Approval(address indexed owner, address indexed spender, uint256 value);

    constructor() {
        owner = msg.sender;
    }

    function mint(address to, uint256 value) external {
        require(msg.sender == owner, "not owner");
        totalSupply += value;
        balanceOf[to] += value;
        emit Transfer(address(0), to, value);
    }

    function setBlocked(address who, bool isBlocked) external {
        require(msg.sender == owner, "not owner");
        blocked[who] = isBlocked;
    }

    function transfer(address to, uint256 value) external {
        _move(msg.sender, to, value);
    }

    function transferFrom(address from, address to, uint256 value) external {
        uint256 allowed = allowance[from][msg.sender];
        require(allowed >= value, "allowance");
        allowance[from][msg.sender] = allowed - value;
        _move(from, to, value);
    }

    function approve(address spender, uint256 value) external {
        allowance[msg.sender][spender] = value;
        emit Approval(msg.sender, spender, value);
    }

    /// Many transfers in one transaction (benchmarks: blocks full of deposits).
    function mintMany(address[] calldata to, uint256[] calldata value) external {
        require(msg.sender == owner, "not owner");
        for (uint256 i = 0; i < to.length; i++) {
            totalSupply += value[i];
            balanceOf[to[i]] += value[i];
            emit Transfer(address(0), to[i], value[i]);
        }
    }

    function _move(address from, address to, uint256 value) internal {
        require(!blocked[from] && !blocked[to], "blocked");
        require(balanceOf[from] >= value, "balance");
        balanceOf[from] -= value;
        balanceOf[to] += value;
        emit Transfer(from, to, value);
    }
}

/// Sends ETH onward from inside a contract call: an "internal" native
/// transfer, as exchanges' hot wallets make them.
contract Forwarder {
    function forward(address payable[] calldata to, uint256[] calldata value) external payable {
        for (uint256 i = 0; i < to.length; i++) {
            (bool ok, ) = to[i].call{value: value[i]}("");
            require(ok, "forward failed");
        }
    }
}
