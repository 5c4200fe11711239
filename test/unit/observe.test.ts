// Reading the cluster: which calls go where, and the alarms' fallback when the
// endpoint's own node cannot list them (a worker, or etcd down on that node).

import assert from "node:assert/strict";
import { describe, it } from "node:test";

import type { MemberAlarm } from "../../src/core/model.js";
import { DefragError } from "../../src/core/errors.js";
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

/** Records through which node each alarm list was asked for; `failVia` fails those. */
class AlarmProbe extends SimCluster {
  readonly alarmVia: (string | undefined)[] = [];
  failVia = new Set<string | undefined>();

  override alarms(node?: string): Promise<MemberAlarm[]> {
    this.alarmVia.push(node);
    if (this.failVia.has(node))
      return Promise.reject(new DefragError("not-control-plane", "etcd is not running on this node"));
    return super.alarms();
  }
}

describe("observeCluster", () => {
  it("without nodes: discovers them from the member list and reads the alarms through the endpoint", async () => {
    const sim = new AlarmProbe(cluster().sim);
    sim.alarms_ = [{ memberId: 2n, alarm: "NOSPACE" }];
    const view = await observeCluster(sim, { nodes: [] });
    assert.deepEqual(
      view.nodes.map((n) => n.node),
      ["10.0.0.1", "10.0.0.2", "10.0.0.3"],
    );
    assert.deepEqual(sim.alarmVia, [undefined]);
    assert.deepEqual(view.nodes[1]?.ok && view.nodes[1].alarms, ["NOSPACE"]);
    assert.deepEqual(view.warnings, []);
  });

  it("with nodes: reads the alarms through the first one, at the same time as the statuses", async () => {
    const sim = new AlarmProbe(cluster().sim);
    await observeCluster(sim, { nodes: ["10.0.0.3", "10.0.0.1", "10.0.0.2"] });
    assert.deepEqual(sim.alarmVia, ["10.0.0.3"]);
  });

  it("when the endpoint's own node cannot list the alarms, asks a member that answered", async () => {
    const sim = new AlarmProbe(cluster().sim);
    sim.failVia.add(undefined);
    sim.alarms_ = [{ memberId: 1n, alarm: "CORRUPT" }];
    const view = await observeCluster(sim, { nodes: [] });
    assert.deepEqual(sim.alarmVia, [undefined, "10.0.0.1"]);
    assert.deepEqual(view.alarms, [{ memberId: 1n, alarm: "CORRUPT" }]);
    assert.deepEqual(view.warnings, []);
  });

  it("when no node can list the alarms, says so in a warning instead of reporting none silently", async () => {
    const sim = new AlarmProbe(cluster().sim);
    sim.failVia = new Set([undefined, "10.0.0.1"]);
    const view = await observeCluster(sim, { nodes: [] });
    assert.deepEqual(view.alarms, []);
    assert.equal(view.warnings.length, 1);
    assert.match(view.warnings[0] ?? "", /^cannot list the etcd alarms: .*etcd is not running on this node/);
  });
});
