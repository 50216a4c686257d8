#!/usr/bin/env node
// Entry point of the `payment` command: runs the TypeScript CLI through tsx
// (no build step), so `npx payment ...` works right after `npm ci`.
import { register } from "tsx/esm/api";

register();
await import("../cli/main.ts");
