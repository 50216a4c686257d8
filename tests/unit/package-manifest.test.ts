/**
 * What package.json promises anyone who installs or adopts the gateway:
 * the Node versions it names are accepted by every package it installs
 * (else `npm ci` warns EBADENGINE and the dependency may use a Node API that
 * is not there), and the licence it names is the one in LICENSE.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import path from "node:path";
import semver from "semver";

const root = path.resolve(import.meta.dirname, "../..");
const read = (f: string) => readFileSync(path.join(root, f), "utf8");
const pkg = JSON.parse(read("package.json")) as { license: string; engines: { node: string } };
const lock = JSON.parse(read("package-lock.json")) as {
  packages: Record<string, { version?: string; engines?: Record<string, string> | string[]; dependencies?: Record<string, string>; devDependencies?: Record<string, string>; optionalDependencies?: Record<string, string> }>;
};

/** Who pulls `name` in, to make a failure say what to pin or override. */
function dependents(name: string): string[] {
  return Object.entries(lock.packages)
    .filter(([, p]) => [p.dependencies, p.devDependencies, p.optionalDependencies].some((d) => d && name in d))
    .map(([at, p]) => `${at.replace(/^.*node_modules\//, "") || "payment-gateway"}@${p.version ?? ""}`);
}

describe("package.json", () => {
  it("names Node versions every installed package accepts", () => {
    assert.ok(semver.validRange(pkg.engines.node), `engines.node ${pkg.engines.node} is a semver range`);
    assert.ok(semver.satisfies(process.versions.node, pkg.engines.node), `this machine's Node ${process.versions.node} is one package.json accepts`);
    const refused: string[] = [];
    for (const [at, p] of Object.entries(lock.packages)) {
      // old packages wrote engines as an array of strings; npm ignores those
      const wants = !p.engines || Array.isArray(p.engines) ? undefined : p.engines.node;
      if (!at || !wants) continue;
      if (!semver.subset(pkg.engines.node, wants)) {
        const name = at.replace(/^.*node_modules\//, "");
        refused.push(`${name}@${p.version} wants node ${wants} (pulled in by ${dependents(name).join(", ")})`);
      }
    }
    assert.equal(refused.length, 0, `engines.node is ${pkg.engines.node}, but:\n${refused.join("\n")}`);
  });

  it("is licensed Apache-2.0 with the licence's full text in LICENSE", () => {
    assert.equal(pkg.license, "Apache-2.0");
    const text = read("LICENSE");
    assert.match(text, /^\s*Apache License\s+Version 2\.0, January 2004/);
    assert.match(text, /END OF TERMS AND CONDITIONS/);
    assert.match(text, /APPENDIX: How to apply the Apache License to your work\./);
  });
});
