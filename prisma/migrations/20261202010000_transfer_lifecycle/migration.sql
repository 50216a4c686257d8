-- A transfer that cannot be sent for a reason an operator can fix (a wallet
-- short of the asset or of gas, a node that keeps refusing it) is `held`
-- (SPEC §7): `error`/`error_detail` say what is short, `held_at` starts its
-- hold_s clock. `unmined_at`: when its block last left the canonical chain
-- (a transfer that was mined once ends `reorged`, not `dropped`).
ALTER TABLE `transfer` MODIFY `state` ENUM('queued', 'awaiting_approval', 'held', 'signed', 'sent', 'mined', 'confirmed', 'failed', 'cancelled') NOT NULL,
    ADD COLUMN `held_at` DATETIME(3) NULL,
    ADD COLUMN `unmined_at` DATETIME(3) NULL;

-- CreateIndex: chain-watch wakes the confirmation of transfers whose block became due.
CREATE INDEX `transfer_chain_state_block_number_idx` ON `transfer`(`chain`, `state`, `block_number`);

-- A deposit's transaction sender and nonce, from the block it was seen in:
-- the evidence that ends a deposit `reorged` is that nonce used by another
-- transaction confirm_height deep.
ALTER TABLE `deposit` ADD COLUMN `tx_from` VARCHAR(42) NULL,
    ADD COLUMN `tx_nonce` BIGINT NULL;
