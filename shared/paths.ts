/**
 * The package root, from this module's own location, for the few files read
 * at run time that are not code (prisma/migrations, the dev chain's contract
 * artifacts). This module is either `<root>/shared/paths.ts` (run through
 * tsx) or `<root>/dist/shared/paths.js` (the compiled build, `npm run
 * build`); the data files stay where they are in the source tree either way.
 */
import path from "node:path";

const here = import.meta.dirname;

export const PACKAGE_ROOT =
  path.basename(path.dirname(here)) === "dist" ? path.resolve(here, "..", "..") : path.resolve(here, "..");

/** A path under the package root, e.g. `fromRoot("prisma", "migrations")`. */
export function fromRoot(...parts: string[]): string {
  return path.join(PACKAGE_ROOT, ...parts);
}
