/**
 * The layering and ownership rules of scripts/check-imports.ts, on made-up
 * paths: shared/ depends on no role, roles do not import roles, the CLI
 * imports only roles' entry points, and only shared/transfers/ writes the
 * transfer lifecycle's tables.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { layering, lifecycleWriters } from "../../scripts/check-imports.ts";

describe("layering", () => {
  const cases: [string, string, boolean][] = [
    ["shared/transfers/broadcast.ts", "shared/adapters/chain.ts", true],
    ["shared/domain/x.ts", "workers/confirmation/main.ts", false],
    ["workers/confirmation/confirm-transfer.ts", "shared/transfers/rows.ts", true],
    ["workers/confirmation/confirm-transfer.ts", "workers/confirmation/finalize-block.ts", true],
    ["workers/confirmation/confirm-transfer.ts", "workers/transfer-sender/broadcast.ts", false],
    ["bridge/request-handler.ts", "workers/transfer-sender/main.ts", false],
    ["workers/dashboard/main.ts", "bridge/outbox-publisher.ts", false],
    ["workers/dashboard/main.ts", "cli/roles.ts", false],
    ["cli/roles.ts", "workers/chain-watch/main.ts", true],
    ["cli/roles.ts", "bridge/main.ts", true],
    ["cli/commands/sweep.ts", "workers/transfer-sender/sweep-plan.ts", false],
    ["cli/preflight.ts", "workers/dashboard/service-checks.ts", false],
    ["cli/commands/retry.ts", "cli/commands/notify.ts", true],
    ["tests/integration/x.test.ts", "workers/transfer-sender/sign-batch.ts", true],
    ["bench/send.ts", "cli/roles.ts", true],
  ];
  for (const [from, to, ok] of cases) {
    it(`${from} -> ${to}: ${ok ? "allowed" : "refused"}`, () => assert.equal(layering(from, to) === null, ok, String(layering(from, to))));
  }
});

describe("lifecycleWriters", () => {
  const files: Record<string, string> = {
    "shared/transfers/transitions.ts": "await conn.query(`UPDATE transfer SET state = 'failed'`)",
    "workers/transfer-sender/x.ts": 'await conn.query("INSERT IGNORE INTO transfer (kind) VALUES (?)")',
    "cli/commands/y.ts": "await prisma.txAttempt.updateMany({})",
    "bridge/z.ts": 'await conn.query("UPDATE transfer_stats SET n = n + 1"); await conn.query("SELECT * FROM transfer")',
    "tests/integration/t.test.ts": "await prisma.transfer.create({})",
  };
  it("names every file outside shared/transfers/ that writes transfer or tx_attempt, and nothing else", () => {
    const found = lifecycleWriters(Object.keys(files), (f) => files[f]!);
    assert.deepEqual(
      found.map((l) => l.split(" ")[1]),
      ["workers/transfer-sender/x.ts", "cli/commands/y.ts"],
    );
  });
});
