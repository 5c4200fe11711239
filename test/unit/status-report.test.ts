// `status` output: each member's etcd version, marked when it has the snapshot/defragment bug.

import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { affectedMembers } from "../../src/core/gates.js";
import { statusJson, statusTable } from "../../src/report/status.js";
import { m1, view } from "./fixtures.js";
import { TALOS_WORDS } from "../../src/talos/words.js";

const cluster = view([
  m1,
  { id: 2n, node: "10.0.0.2", status: { protocolVersion: "3.6.4" } },
  { id: 3n, node: "10.0.0.3", status: { protocolVersion: "" } },
]);

describe("status: etcd versions", () => {
  it("JSON: etcdVersion and etcdVersionStatus per member", () => {
    const members = (statusJson(cluster) as { members: Record<string, unknown>[] }).members;
    assert.deepEqual(
      members.map((m) => [m.node, m.etcdVersion, m.etcdVersionStatus]),
      [
        ["10.0.0.1", "3.6.16", "fixed"],
        ["10.0.0.2", "3.6.4", "affected"],
        ["10.0.0.3", "", "unknown"],
      ],
    );
  });

  it("table: an ETCD column, marked when affected or unknown", () => {
    const lines = statusTable(cluster).trimEnd().split("\n");
    const column = lines[0]?.indexOf("ETCD") ?? -1;
    assert.ok(column > 0, lines[0]);
    assert.deepEqual(
      lines.slice(1).map((l) => l.slice(column).split(/\s{2,}/)[0]),
      ["3.6.16", "3.6.4 (affected)", "? (unknown)"],
    );
  });

  it("one warning per affected member, naming it", () => {
    assert.deepEqual(
      affectedMembers(cluster, TALOS_WORDS.fixedEtcd).map((a) => [a.node, a.version]),
      [["10.0.0.2", "3.6.4"]],
    );
    assert.match(
      affectedMembers(cluster, TALOS_WORDS.fixedEtcd)[0]?.warning ?? "",
      /^member cp-2 \(0000000000000002\) on 10\.0\.0\.2 runs etcd 3\.6\.4, which can corrupt its data .*Talos 1\.11\.3 and later/,
    );
  });
});
