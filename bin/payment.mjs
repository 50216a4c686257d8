#!/usr/bin/env node
// Entry point of the `payment` command.
//
// By default it runs the TypeScript CLI through tsx (no build step), so
// `npx payment ...` works right after `npm ci` and always runs the sources as
// they are. With PAYMENT_COMPILED=1 it runs the compiled build instead
// (`npm run build` writes dist/; the Docker image builds it and sets the
// variable): no tsx loader thread, less memory and a faster start. Only that
// explicit switch selects dist/, so a development checkout never runs a stale
// build without being asked to.
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";

if (process.env.PAYMENT_COMPILED === "1") {
  const main = new URL("../dist/cli/main.js", import.meta.url);
  if (!existsSync(fileURLToPath(main))) {
    console.error("payment: PAYMENT_COMPILED=1 but dist/cli/main.js does not exist: run `npm run build` first (or unset PAYMENT_COMPILED to run the sources through tsx)");
    process.exit(2);
  }
  await import(main.href);
} else {
  const { register } = await import("tsx/esm/api");
  register();
  await import("../cli/main.ts");
}
