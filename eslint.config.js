// Lint: ESLint's and typescript-eslint's recommended rules, without type
// information (fast enough to run on every change; `npm run typecheck` is the
// type-aware check). Run with `npm run lint`.
import js from "@eslint/js";
import tseslint from "typescript-eslint";

/** Node's globals for the few plain JavaScript files (TypeScript files get them from @types/node). */
const nodeGlobals = Object.fromEntries(
  ["process", "console", "Buffer", "URL", "setTimeout", "clearTimeout", "setInterval", "clearInterval", "setImmediate", "structuredClone", "globalThis"].map(
    (name) => [name, "readonly"],
  ),
);

export default tseslint.config(
  {
    ignores: [
      "node_modules/",
      "dist/", // written by `npm run build`
      "shared/adapters/db/generated/", // written by `prisma generate`
      ".dev/",
      ".scratch/",
      "tmp*/",
      "logs/",
      "tests/artifacts/",
      "coverage/",
    ],
  },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { ecmaVersion: 2023, sourceType: "module", globals: nodeGlobals },
    linterOptions: { reportUnusedDisableDirectives: "error" },
    rules: {
      // `_name` marks a value deliberately unused (destructuring `sign` away, unused callback args)
      "@typescript-eslint/no-unused-vars": [
        "error",
        { argsIgnorePattern: "^_", varsIgnorePattern: "^_", caughtErrorsIgnorePattern: "^_", destructuredArrayIgnorePattern: "^_", ignoreRestSiblings: true },
      ],
      // control characters in regexes are intended: ids and messages are checked for them
      "no-control-regex": "off",
    },
  },
);
