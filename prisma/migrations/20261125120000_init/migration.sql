-- CreateTable
CREATE TABLE `wallet` (
    `id` INTEGER NOT NULL AUTO_INCREMENT,
    `chain` VARCHAR(16) NOT NULL,
    `address` VARCHAR(42) NOT NULL,
    `kind` ENUM('deposit', 'hot', 'collection') NOT NULL,
    `encrypted_key` VARCHAR(255) NOT NULL,
    `key_id` VARCHAR(16) NOT NULL,
    `label` VARCHAR(128) NULL,
    `created_at` DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
    `updated_at` DATETIME(3) NOT NULL,

    INDEX `wallet_chain_kind_idx`(`chain`, `kind`),
    UNIQUE INDEX `wallet_chain_address_key`(`chain`, `address`),
    PRIMARY KEY (`id`)
) DEFAULT CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;

-- CreateTable
CREATE TABLE `balance` (
    `id` INTEGER NOT NULL AUTO_INCREMENT,
    `chain` VARCHAR(16) NOT NULL,
    `address` VARCHAR(42) NOT NULL,
    `symbol` VARCHAR(16) NOT NULL,
    `amount` DECIMAL(65, 18) NOT NULL DEFAULT 0,
    `updated_at` DATETIME(3) NOT NULL,

    UNIQUE INDEX `balance_chain_address_symbol_key`(`chain`, `address`, `symbol`),
    PRIMARY KEY (`id`)
) DEFAULT CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;

-- CreateTable
CREATE TABLE `watched_address` (
    `id` BIGINT NOT NULL AUTO_INCREMENT,
    `chain` VARCHAR(16) NOT NULL,
    `symbol` VARCHAR(16) NOT NULL,
    `address` VARCHAR(42) NOT NULL,
    `queue_id` VARCHAR(128) NULL,
    `active` BOOLEAN NOT NULL DEFAULT true,
    `created_at` DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
    `removed_at` DATETIME(3) NULL,

    INDEX `watched_address_chain_address_idx`(`chain`, `address`),
    UNIQUE INDEX `watched_address_chain_symbol_address_key`(`chain`, `symbol`, `address`),
    PRIMARY KEY (`id`)
) DEFAULT CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;

-- CreateTable
CREATE TABLE `request` (
    `id` BIGINT NOT NULL AUTO_INCREMENT,
    `kind` ENUM('topup', 'withdraw', 'pay', 'remove', 'sweep') NOT NULL,
    `queue_id` VARCHAR(128) NULL,
    `chain` VARCHAR(16) NULL,
    `symbol` VARCHAR(16) NULL,
    `body_hash` CHAR(64) NOT NULL,
    `raw_body` MEDIUMTEXT NOT NULL,
    `state` ENUM('accepted', 'rejected', 'done') NOT NULL,
    `error` VARCHAR(32) NULL,
    `created_at` DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
    `updated_at` DATETIME(3) NOT NULL,

    INDEX `request_created_at_idx`(`created_at`),
    UNIQUE INDEX `request_kind_queue_id_key`(`kind`, `queue_id`),
    PRIMARY KEY (`id`)
) DEFAULT CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;

-- CreateTable
CREATE TABLE `deposit` (
    `id` BIGINT NOT NULL AUTO_INCREMENT,
    `chain` VARCHAR(16) NOT NULL,
    `symbol` VARCHAR(16) NOT NULL,
    `tx_hash` VARCHAR(66) NOT NULL,
    `log_index` INTEGER NOT NULL,
    `block_number` BIGINT NOT NULL,
    `block_hash` VARCHAR(66) NOT NULL,
    `from_address` VARCHAR(42) NOT NULL,
    `to_address` VARCHAR(42) NOT NULL,
    `amount` DECIMAL(65, 18) NOT NULL,
    `queue_id` VARCHAR(128) NULL,
    `state` ENUM('seen', 'confirmed', 'reorged') NOT NULL,
    `confirmations` INTEGER NOT NULL DEFAULT 0,
    `error` VARCHAR(32) NULL,
    `created_at` DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
    `updated_at` DATETIME(3) NOT NULL,
    `finalized_at` DATETIME(3) NULL,

    INDEX `deposit_chain_state_block_number_idx`(`chain`, `state`, `block_number`),
    INDEX `deposit_to_address_idx`(`to_address`),
    UNIQUE INDEX `deposit_chain_tx_hash_log_index_key`(`chain`, `tx_hash`, `log_index`),
    PRIMARY KEY (`id`)
) DEFAULT CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;

-- CreateTable
CREATE TABLE `transfer` (
    `id` BIGINT NOT NULL AUTO_INCREMENT,
    `request_id` BIGINT NULL,
    `kind` ENUM('withdraw', 'pay', 'sweep', 'gas_topup') NOT NULL,
    `queue_id` VARCHAR(128) NOT NULL,
    `order_id` VARCHAR(128) NOT NULL DEFAULT '',
    `chain` VARCHAR(16) NOT NULL,
    `symbol` VARCHAR(16) NOT NULL,
    `requested_from` VARCHAR(42) NOT NULL,
    `from_address` VARCHAR(42) NULL,
    `to_address` VARCHAR(42) NOT NULL,
    `amount` DECIMAL(65, 18) NOT NULL,
    `state` ENUM('queued', 'awaiting_approval', 'signed', 'sent', 'mined', 'confirmed', 'failed', 'cancelled') NOT NULL,
    `error` VARCHAR(32) NULL,
    `error_detail` VARCHAR(512) NULL,
    `nonce` BIGINT NULL,
    `tx_hash` VARCHAR(66) NULL,
    `block_number` BIGINT NULL,
    `block_hash` VARCHAR(66) NULL,
    `confirmations` INTEGER NOT NULL DEFAULT 0,
    `gas_used` DECIMAL(65, 0) NULL,
    `fee_paid` DECIMAL(65, 18) NULL,
    `approved_by` VARCHAR(128) NULL,
    `created_at` DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
    `updated_at` DATETIME(3) NOT NULL,
    `sent_at` DATETIME(3) NULL,
    `finalized_at` DATETIME(3) NULL,

    INDEX `transfer_state_idx`(`state`),
    INDEX `transfer_chain_from_address_nonce_idx`(`chain`, `from_address`, `nonce`),
    INDEX `transfer_to_address_idx`(`to_address`),
    UNIQUE INDEX `transfer_kind_queue_id_order_id_key`(`kind`, `queue_id`, `order_id`),
    PRIMARY KEY (`id`)
) DEFAULT CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;

-- CreateTable
CREATE TABLE `tx_attempt` (
    `id` BIGINT NOT NULL AUTO_INCREMENT,
    `transfer_id` BIGINT NOT NULL,
    `chain` VARCHAR(16) NOT NULL,
    `from_address` VARCHAR(42) NOT NULL,
    `nonce` BIGINT NOT NULL,
    `tx_hash` VARCHAR(66) NOT NULL,
    `raw_tx` TEXT NOT NULL,
    `max_fee_per_gas` DECIMAL(65, 0) NOT NULL,
    `max_priority_fee_per_gas` DECIMAL(65, 0) NOT NULL,
    `gas_limit` DECIMAL(65, 0) NOT NULL,
    `state` ENUM('signed', 'broadcast', 'mined', 'replaced', 'dropped') NOT NULL,
    `created_at` DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
    `broadcast_at` DATETIME(3) NULL,

    INDEX `tx_attempt_transfer_id_idx`(`transfer_id`),
    INDEX `tx_attempt_chain_from_address_nonce_idx`(`chain`, `from_address`, `nonce`),
    UNIQUE INDEX `tx_attempt_chain_tx_hash_key`(`chain`, `tx_hash`),
    PRIMARY KEY (`id`)
) DEFAULT CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;

-- CreateTable
CREATE TABLE `sender_nonce` (
    `chain` VARCHAR(16) NOT NULL,
    `address` VARCHAR(42) NOT NULL,
    `next_nonce` BIGINT NOT NULL,
    `updated_at` DATETIME(3) NOT NULL,

    PRIMARY KEY (`chain`, `address`)
) DEFAULT CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;

-- CreateTable
CREATE TABLE `notification` (
    `id` BIGINT NOT NULL AUTO_INCREMENT,
    `kind` ENUM('topup', 'withdraw', 'pay', 'remove', 'sweep') NOT NULL,
    `dedupe_key` VARCHAR(191) NOT NULL,
    `queue_id` VARCHAR(128) NULL,
    `address` VARCHAR(42) NULL,
    `status` INTEGER NOT NULL,
    `body` TEXT NOT NULL,
    `state` ENUM('pending', 'sent') NOT NULL,
    `attempts` INTEGER NOT NULL DEFAULT 0,
    `claimed_by` VARCHAR(64) NULL,
    `claimed_until` DATETIME(3) NULL,
    `created_at` DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
    `sent_at` DATETIME(3) NULL,

    INDEX `notification_state_id_idx`(`state`, `id`),
    INDEX `notification_queue_id_idx`(`queue_id`),
    INDEX `notification_address_idx`(`address`),
    UNIQUE INDEX `notification_dedupe_key_key`(`dedupe_key`),
    PRIMARY KEY (`id`)
) DEFAULT CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;

-- CreateTable
CREATE TABLE `chain_cursor` (
    `chain` VARCHAR(16) NOT NULL,
    `block_number` BIGINT NOT NULL,
    `block_hash` VARCHAR(66) NOT NULL,
    `updated_at` DATETIME(3) NOT NULL,

    PRIMARY KEY (`chain`)
) DEFAULT CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;

-- CreateTable
CREATE TABLE `chain_block` (
    `chain` VARCHAR(16) NOT NULL,
    `number` BIGINT NOT NULL,
    `hash` VARCHAR(66) NOT NULL,
    `parent_hash` VARCHAR(66) NOT NULL,
    `created_at` DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),

    PRIMARY KEY (`chain`, `number`)
) DEFAULT CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;

-- CreateTable
CREATE TABLE `audit_event` (
    `id` BIGINT NOT NULL AUTO_INCREMENT,
    `at` DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
    `actor` VARCHAR(64) NOT NULL,
    `event` VARCHAR(64) NOT NULL,
    `queue_id` VARCHAR(128) NULL,
    `order_id` VARCHAR(128) NULL,
    `address` VARCHAR(42) NULL,
    `subject_type` VARCHAR(16) NULL,
    `subject_id` BIGINT NULL,
    `data` TEXT NULL,

    INDEX `audit_event_queue_id_idx`(`queue_id`),
    INDEX `audit_event_address_idx`(`address`),
    INDEX `audit_event_subject_type_subject_id_idx`(`subject_type`, `subject_id`),
    PRIMARY KEY (`id`)
) DEFAULT CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;

-- AddForeignKey
ALTER TABLE `transfer` ADD CONSTRAINT `transfer_request_id_fkey` FOREIGN KEY (`request_id`) REFERENCES `request`(`id`) ON DELETE SET NULL ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE `tx_attempt` ADD CONSTRAINT `tx_attempt_transfer_id_fkey` FOREIGN KEY (`transfer_id`) REFERENCES `transfer`(`id`) ON DELETE RESTRICT ON UPDATE CASCADE;
