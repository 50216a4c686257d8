// Prisma CLI configuration.
//
// Where Prisma's native schema engine cannot be downloaded (offline build
// machines), `generate`, `validate` and `format` still work if the CLI is
// pointed at *some* engine file, because they never run it. We point those
// three commands only at a stub that fails loudly if it is ever executed;
// `migrate *` and `db *` keep needing the real engine, and `payment migrate`
// applies prisma/migrations with Prisma's own bookkeeping either way.
import { existsSync } from "node:fs";
import path from "node:path";
import { defineConfig } from "prisma/config";

const command = process.argv.slice(2).find((a) => !a.startsWith("-"));
if (
  ["generate", "validate", "format"].includes(command ?? "") &&
  !process.env.PRISMA_SCHEMA_ENGINE_BINARY &&
  !existsSync(path.join("node_modules", "@prisma", "engines", "schema-engine-debian-openssl-3.0.x"))
) {
  process.env.PRISMA_SCHEMA_ENGINE_BINARY = path.resolve("scripts/no-schema-engine.sh");
}

export default defineConfig({
  schema: "prisma/schema.prisma",
  migrations: { path: "prisma/migrations" },
  datasource: { url: process.env.DATABASE_URL ?? "mysql://root@127.0.0.1:3306/payment" },
});
