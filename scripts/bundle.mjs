#!/usr/bin/env node
// Runs with `node` alone (no node_modules): dist/bundle/talos-etcd-defrag.mjs, plus the chunks
// it imports only when needed (dist/bundle/chunks/: the Kubernetes client for --lease, the Prometheus
// client for metrics), so that a run without them does not even parse them.
import { rmSync } from "node:fs";
import { resolve } from "node:path";

import { build } from "esbuild";

const root = resolve(import.meta.dirname, "..");
// Chunks are named by their hash: without a clean directory, old ones would pile up beside the new.
rmSync(resolve(root, "dist/bundle"), { recursive: true, force: true });
await build({
  entryPoints: { "talos-etcd-defrag": resolve(root, "src/main.ts") },
  outdir: resolve(root, "dist/bundle"),
  outExtension: { ".js": ".mjs" },
  chunkNames: "chunks/[name]-[hash]",
  splitting: true,
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
console.log("bundled dist/bundle/talos-etcd-defrag.mjs (and its chunks)");
