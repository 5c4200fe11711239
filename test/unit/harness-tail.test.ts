// The test apid's log tail (test/harness/talos-api-server.ts): exactly the last lines, whatever the
// block boundaries, as `talosctl logs --tail` shows them.

import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";

import { tailOf } from "../harness/talos-api-server.js";

const dir = mkdtempSync(join(tmpdir(), "tail-"));

async function tail(text: string, lines: number): Promise<string> {
  const path = join(dir, "log");
  writeFileSync(path, text);
  return (await tailOf(path, lines)).toString("utf8");
}

describe("the test apid's log tail", () => {
  it("the last lines of a small file", async () => {
    assert.equal(await tail("a\nb\nc\n", 2), "b\nc\n");
    assert.equal(await tail("a\nb\nc\n", 3), "a\nb\nc\n");
    assert.equal(await tail("a\nb\nc\n", 10), "a\nb\nc\n");
    assert.equal(await tail("a\nb\nc\n", 0), "");
    assert.equal(await tail("a\nb\nc\n", -1), "a\nb\nc\n");
    assert.equal(await tail("a\nb\nc", 2), "b\nc", "a last line without its newline");
    assert.equal(await tail("\n\nx\n", 2), "\nx\n", "empty lines count");
    assert.equal(await tail("", 5), "");
  });

  it("the last lines of a file of many blocks, wherever a line crosses a block's edge", async () => {
    // Lines of varied length, 300 KiB in all: several 64 KiB blocks, lines across their edges.
    const all = Array.from({ length: 3000 }, (_, i) => `${i}:${"x".repeat((i * 37) % 150)}`);
    const text = all.map((l) => `${l}\n`).join("");
    for (const n of [1, 499, 500, 501, 1234, 2999, 3000, 5000])
      assert.equal(
        await tail(text, n),
        all
          .slice(-n)
          .map((l) => `${l}\n`)
          .join(""),
        `${n} lines`,
      );
  });
});
