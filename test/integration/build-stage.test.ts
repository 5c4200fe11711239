// The Dockerfile's build stage, replayed without Docker (scripts/build-stage.mjs: its WORKDIR, COPY and RUN
// in order), produces byte for byte the bundle that `npm run bundle` produces, which the other tests run.

import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";

import { treeSha256 } from "../../scripts/build-stage.mjs";
import { REPO_ROOT } from "../harness/run-cli.js";

describe("the Dockerfile's build stage", () => {
  it("builds with the instructions the replay understands: npm ci, then the bundle", () => {
    const dockerfile = readFileSync(join(REPO_ROOT, "Dockerfile"), "utf8");
    const start = dockerfile.indexOf(" AS build");
    const stage = dockerfile.slice(start, dockerfile.indexOf("\nFROM ", start));
    assert.match(stage, /^RUN npm ci .*--ignore-scripts/m);
    assert.match(stage, /^RUN node scripts\/bundle\.mjs$/m);
    assert.match(dockerfile, /^COPY --from=build (--chown=65532:65532 )?\/src\/dist\/bundle\/ \/app\/$/m);
  });

  it("replayed, it produces the same bundle as npm run bundle", () => {
    const r = spawnSync(process.execPath, [join(REPO_ROOT, "scripts", "build-stage.mjs")], {
      encoding: "utf8",
      timeout: 300_000,
    });
    assert.equal(r.status, 0, r.stderr);
    const replayed = r.stdout.trim().split(/\s+/)[0];
    const local = treeSha256(join(REPO_ROOT, "dist", "bundle"));
    assert.equal(replayed, local, "the image's bundle differs from dist/bundle (npm run bundle first)");
  });
});
