// Reading the cluster: which calls go where, what a failure to read becomes.

import assert from "node:assert/strict";
import { describe, it } from "node:test";

import type { MemberAlarm } from "../../src/core/model.js";
import { DefragError } from "../../src/core/errors.js";
import { membersNotRead } from "../../src/core/model.js";
import { observeCluster } from "../../src/run/observe.js";
import { MiB } from "../harness/units.js";
import { SimCluster } from "./sim-backend.js";

function cluster(): SimCluster {
  return new SimCluster(
    [1n, 2n, 3n].map((id) => ({
      id,
      node: `10.0.0.${String(id)}`,
      dbSize: 100 * MiB,
      inUse: 40 * MiB,
      defragMs: 1000,
    })),
  );
}

/** Fails the alarm list, as a backend does when no member can list it. */
class NoAlarms extends SimCluster {
  override alarms(): Promise<MemberAlarm[]> {
    return Promise.reject(new DefragError("not-control-plane", "etcd is not running on this node"));
  }
}

describe("observeCluster", () => {
  it("without nodes: discovers them from the member list, as the backend addresses them", async () => {
    const sim = cluster();
    sim.alarms_ = [{ memberId: 2n, alarm: "NOSPACE" }];
    const view = await observeCluster(sim, { nodes: [] });
    assert.deepEqual(
      view.nodes.map((n) => n.node),
      ["10.0.0.1", "10.0.0.2", "10.0.0.3"],
    );
    assert.deepEqual(view.nodes[1]?.ok && view.nodes[1].alarms, ["NOSPACE"]);
    assert.deepEqual(view.warnings, []);
  });

  it("with nodes: reads the statuses at the same time as the member list, in the nodes' order", async () => {
    const sim = cluster();
    const view = await observeCluster(sim, { nodes: ["10.0.0.3", "10.0.0.1", "10.0.0.2"] });
    assert.deepEqual(sim.calls.slice(0, 4), [
      "EtcdMemberList",
      "EtcdStatus 10.0.0.3",
      "EtcdStatus 10.0.0.1",
      "EtcdStatus 10.0.0.2",
    ]);
    assert.deepEqual(
      view.nodes.map((n) => n.name),
      ["cp-3", "cp-1", "cp-2"],
    );
  });

  it("with fewer nodes than members: the others are named in a warning and by membersNotRead", async () => {
    const sim = cluster();
    const view = await observeCluster(sim, { nodes: ["10.0.0.2"] });
    assert.deepEqual(
      view.nodes.map((n) => n.node),
      ["10.0.0.2"],
    );
    assert.deepEqual(
      membersNotRead(view).map((m) => m.name),
      ["cp-1", "cp-3"],
    );
    assert.deepEqual(view.warnings, [
      "2 of the 3 etcd members not read: cp-1 (10.0.0.1), cp-3 (10.0.0.3); they are not among " +
        "--nodes/TALOS_NODES (leave it unset to read every member)",
    ]);
  });

  it("a node given by another name than its member's address still counts as that member (by member id)", async () => {
    const sim = cluster();
    const view = await observeCluster(sim, { nodes: ["10.0.0.1", "10.0.0.2", "10.0.0.3"] });
    assert.deepEqual(membersNotRead(view), []);
    assert.deepEqual(view.warnings, []);
    // Same statuses, reached by names: the member ids match, so every member is read.
    const renamed = {
      ...view,
      nodes: view.nodes.map((n, i) => ({ ...n, node: `cp-${String(i + 1)}.example` })),
    };
    assert.deepEqual(membersNotRead(renamed), []);
  });

  it("when no member can list the alarms, says so in a warning instead of reporting none silently", async () => {
    const sim = new NoAlarms(cluster().sim);
    const view = await observeCluster(sim, { nodes: [] });
    assert.deepEqual(view.alarms, []);
    assert.equal(view.warnings.length, 1);
    assert.match(view.warnings[0] ?? "", /^cannot list the etcd alarms: .*etcd is not running on this node/);
  });

  it("a bug in the backend is not a member that does not answer: it is thrown as an internal error", async () => {
    const sim = cluster();
    sim.status = () => Promise.reject(new TypeError("cannot read properties of undefined"));
    await assert.rejects(observeCluster(sim, { nodes: [] }), (err: unknown) => {
      assert.ok(err instanceof DefragError);
      assert.equal(err.kind, "internal");
      assert.match(err.describe(), /internal error: cannot read properties of undefined \(this is a bug/);
      return true;
    });
  });
});
