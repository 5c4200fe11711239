#!/usr/bin/env node
// One file that runs with `node` alone (no node_modules): dist/bundle/talos-etcd-defrag.mjs.
import { build } from "esbuild";
import { resolve } from "node:path";

const root = resolve(import.meta.dirname, "..");
await build({
  entryPoints: [resolve(root, "src/main.ts")],
  outfile: resolve(root, "dist/bundle/talos-etcd-defrag.mjs"),
  bundle: true,
  platform: "node",
  format: "esm",
  target: "node20",
  sourcemap: false,
  legalComments: "linked",
  // Some dependencies are CommonJS and call require() for Node built-ins.
  banner: {
    js: "import { createRequire as __createRequire } from 'node:module'; const require = __createRequire(import.meta.url);",
  },
  logLevel: "warning",
});
console.log("bundled dist/bundle/talos-etcd-defrag.mjs");
