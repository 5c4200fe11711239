// The chart README's values table is generated from values.yaml (npm run chart-readme) and kept current.

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";

import { CHART_README, readmeTable, renderValuesTable } from "../../scripts/chart-readme.js";

describe("charts/etcd-defrag/README.md", () => {
  it("has the values table of the current values.yaml", () => {
    const table = readmeTable(readFileSync(CHART_README, "utf8"));
    assert.ok(table, "the README has the values table's markers");
    assert.equal(
      table,
      renderValuesTable(),
      "charts/etcd-defrag/README.md's values table is out of date: run `npm run chart-readme` to regenerate it.",
    );
  });

  it("lists every value with its default, and the comment above it as its description", () => {
    const table = renderValuesTable(
      "# Header.\n\n# The image.\nimage:\n  # Where it is.\n  repository: ghcr.io/x/y\n  tag: ''\nlist: [a]\n",
    );
    const rows = table.trim().split("\n").slice(2);
    assert.deepEqual(
      rows.map((r) =>
        r
          .split("|")
          .slice(1, -1)
          .map((c) => c.trim()),
      ),
      [
        ["`image`", "", "The image."],
        ["`image.repository`", '`"ghcr.io/x/y"`', "Where it is."],
        ["`image.tag`", '`""`', ""],
        ["`list`", '`["a"]`', ""],
      ],
    );
  });
});
