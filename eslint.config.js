// @ts-check
import js from "@eslint/js";
import tseslint from "typescript-eslint";

/** What talks to the world (a backend, the configuration, the CLI, the reports): core/ and run/ import none of it. */
const ADAPTERS = [
  "**/talos/**",
  "**/k8s/**",
  "**/snapshot/**",
  "**/config/**",
  "**/cli/**",
  "**/report/**",
  "**/main.js",
];

export default tseslint.config(
  { ignores: ["dist/", "node_modules/", "**/gen/", ".cache/", "bench/tmp/"] },
  js.configs.recommended,
  ...tseslint.configs.strictTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    linterOptions: { reportUnusedDisableDirectives: "error" },
    rules: {
      "@typescript-eslint/consistent-type-imports": "error",
      "@typescript-eslint/restrict-template-expressions": ["error", { allowNumber: true }],
      // node:test's describe/it return promises that the runner itself awaits.
      "@typescript-eslint/no-floating-promises": [
        "error",
        {
          allowForKnownSafeCalls: [
            {
              from: "package",
              package: "node:test",
              name: ["describe", "it", "test", "suite", "before", "after"],
            },
          ],
        },
      ],
    },
  },
  {
    // The core decides and the run acts on any backend: neither knows Talos, the
    // configuration, the CLI or how reports are rendered (README, Design).
    files: ["src/core/**/*.ts", "src/run/**/*.ts"],
    rules: {
      "no-restricted-imports": [
        "error",
        {
          patterns: [
            {
              group: ADAPTERS,
              message: "core/ and run/ talk to a Backend only (src/core/backend.ts); see README, Design.",
            },
          ],
        },
      ],
    },
  },
  {
    // The adapters implement the shared contract in core/ (ports, result, Backend); they never
    // reach into the run (README, Design).
    files: [
      "src/report/**/*.ts",
      "src/k8s/**/*.ts",
      "src/snapshot/**/*.ts",
      "src/talos/**/*.ts",
      "src/config/**/*.ts",
    ],
    rules: {
      "no-restricted-imports": [
        "error",
        {
          patterns: [
            {
              group: ["**/run/**"],
              message: "adapters import the contract from core/ (ports.ts, result.ts, backend.ts), not run/.",
            },
          ],
        },
      ],
    },
  },
  {
    // The run reads as its steps: no step grows past what a reader holds at once (issue 19).
    files: ["src/run/**/*.ts"],
    rules: {
      "max-lines-per-function": ["error", { max: 90, skipBlankLines: true, skipComments: true }],
    },
  },
  {
    files: ["src/core/**/*.ts"],
    rules: {
      "no-restricted-imports": [
        "error",
        {
          patterns: [
            {
              group: [...ADAPTERS, "**/run/**"],
              message: "core/ is pure: it imports only core/ (README, Design).",
            },
          ],
        },
      ],
    },
  },
  {
    // @kubernetes/client-node declares its models (V1Lease, ...) as classes, but takes plain objects,
    // as its own documentation writes them.
    files: ["src/k8s/**/*.ts", "test/**/*.ts"],
    rules: { "@typescript-eslint/no-unsafe-class-instance-assignment": "off" },
  },
  {
    // Tests index into fixtures they just built; a failed `!` fails the test, which is the point.
    files: ["test/**/*.ts"],
    rules: { "@typescript-eslint/no-non-null-assertion": "off" },
  },
  {
    files: ["**/*.js", "**/*.mjs"],
    extends: [tseslint.configs.disableTypeChecked],
    languageOptions: { globals: { console: "readonly", process: "readonly" } },
  },
);
