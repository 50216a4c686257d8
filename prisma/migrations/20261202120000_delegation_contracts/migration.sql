-- EIP-7702 delegation targets deployed by `payment contracts deploy`, per
-- chain (issue 13). A contract's address is its CREATE2 address, fixed by
-- its init code, so (chain, address) identifies one build of one contract.

-- CreateTable
CREATE TABLE `delegation_contract` (
    `id` INTEGER NOT NULL AUTO_INCREMENT,
    `chain` VARCHAR(16) NOT NULL,
    `kind` ENUM('batch_executor', 'sweeper') NOT NULL,
    `address` VARCHAR(42) NOT NULL,
    `collector` VARCHAR(42) NULL,
    `init_code_hash` CHAR(66) NOT NULL,
    `code_hash` CHAR(66) NOT NULL,
    `deploy_tx_hash` VARCHAR(66) NULL,
    `block_number` BIGINT NULL,
    `deployed_by` VARCHAR(42) NULL,
    `created_at` DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),

    INDEX `delegation_contract_chain_kind_idx`(`chain`, `kind`),
    UNIQUE INDEX `delegation_contract_chain_address_key`(`chain`, `address`),
    PRIMARY KEY (`id`)
) DEFAULT CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;
