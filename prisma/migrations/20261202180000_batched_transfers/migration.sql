-- EIP-7702 batch payouts (issue 13): one transaction of a hot wallet pays
-- many transfers. Each member transfer keeps its own tx_attempt row (same
-- nonce, hash and raw bytes for every member of one attempt), so the hash
-- is unique per (chain, hash, transfer) instead of per (chain, hash), and
-- the row says which item of the batch call the transfer is: its outcome
-- is bit `batch_index` of the receipt's Batch event. Both NULL for a
-- transaction of its own.

-- DropIndex
DROP INDEX `tx_attempt_chain_tx_hash_key` ON `tx_attempt`;

-- AlterTable
ALTER TABLE `tx_attempt` ADD COLUMN `batch_index` INTEGER NULL,
    ADD COLUMN `batch_size` INTEGER NULL;

-- CreateIndex
CREATE UNIQUE INDEX `tx_attempt_chain_tx_hash_transfer_id_key` ON `tx_attempt`(`chain`, `tx_hash`, `transfer_id`);
