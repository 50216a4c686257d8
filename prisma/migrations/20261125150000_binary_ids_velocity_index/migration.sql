-- Business ids (queue_id, order_id) and notification ids are compared byte
-- for byte: under utf8mb4_unicode_ci "W1" = "w1" and "a " = "a", so two
-- different requests could be taken for duplicates.
ALTER TABLE `request` MODIFY `queue_id` VARCHAR(128) COLLATE utf8mb4_bin NULL;

-- AlterTable
ALTER TABLE `transfer` MODIFY `queue_id` VARCHAR(128) COLLATE utf8mb4_bin NOT NULL,
    MODIFY `order_id` VARCHAR(128) COLLATE utf8mb4_bin NOT NULL DEFAULT '';

-- AlterTable
ALTER TABLE `notification` MODIFY `dedupe_key` VARCHAR(191) COLLATE utf8mb4_bin NOT NULL,
    MODIFY `queue_id` VARCHAR(128) COLLATE utf8mb4_bin NULL;

-- AlterTable
ALTER TABLE `deposit` MODIFY `queue_id` VARCHAR(128) COLLATE utf8mb4_bin NULL;

-- AlterTable
ALTER TABLE `watched_address` MODIFY `queue_id` VARCHAR(128) COLLATE utf8mb4_bin NULL;

-- AlterTable
ALTER TABLE `audit_event` MODIFY `queue_id` VARCHAR(128) COLLATE utf8mb4_bin NULL,
    MODIFY `order_id` VARCHAR(128) COLLATE utf8mb4_bin NULL;

-- CreateIndex: the withdrawal policy's rolling 24 h usage reads transfers by send time.
CREATE INDEX `transfer_chain_sent_at_idx` ON `transfer`(`chain`, `sent_at`);
