// The steps only a backend with etcd's own API gives the run, on the simulation (virtual clock): the
// data check (HashKV before the first and after the last defragment), --compact before the plan, and
// the new leader chosen among the members already defragmented. On a backend without them (Talos)
// nothing of it happens.

import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { runDefrag } from "../../src/run/run.js";
import type { RunOptions } from "../../src/run/types.js";
import { SimCluster, type SimMember } from "./sim-backend.js";
import { recordingReporter, simOptions } from "./sim-run.js";

import { MiB } from "../harness/units.js";

/** Three fragmented members; member 1 leads; HashKV and compaction answered, as etcd's API does. */
function etcdLike(): SimCluster {
  const members: SimMember[] = [1, 2, 3].map((i) => ({
    id: BigInt(i),
    node: `https://10.0.0.${i}:2379`,
    dbSize: 300 * MiB,
    inUse: 100 * MiB,
    defragMs: 1000,
    config: { startupDefrag: [] },
  }));
  const sim = new SimCluster(members);
  sim.hashesSupported = true;
  sim.choosesLeader = true;
  return sim;
}

async function run(sim: SimCluster, over: Partial<RunOptions> = {}) {
  const lines: string[] = [];
  const result = await runDefrag(
    sim,
    simOptions({ quotaBytes: 2048 * MiB, nodes: [], pauseMs: 0, ...over }),
    {
      clock: sim.clock,
      signal: new AbortController().signal,
      reporter: recordingReporter(lines, { levels: true }),
    },
  );
  return { result, lines };
}

const defragments = (sim: SimCluster) => sim.calls.filter((c) => c.startsWith("EtcdDefragment"));

describe("the data check (etcd's HashKV)", () => {
  it("every member alike before and after: hashed before the first defragment and after the last, at one revision", async () => {
    const sim = etcdLike();
    const { result, lines } = await run(sim);
    assert.equal(result.result, "success");
    assert.deepEqual(result.hashCheck, {
      revision: "100",
      before: 107,
      after: { revision: "100", hash: 107, sameRevision: true },
      outcome: "same",
    });
    const order = sim.calls.filter((c) => c.startsWith("HashKV") || c.startsWith("EtcdDefragment"));
    assert.equal(order[0], "HashKV current", "hashed before the first defragment");
    assert.equal(order.at(-1), "HashKV 100", "again at the same revision after the last");
    assert.ok(lines.some((l) => /every member still hashes 107 at revision 100/.test(l)));
  });

  it("members that already differ: refused (gate data), nothing defragmented", async () => {
    const sim = etcdLike();
    sim.hashOf = (node) => (node.includes("10.0.0.3") ? 999 : 107);
    const { result, lines } = await run(sim);
    assert.equal(result.result, "refused");
    assert.deepEqual(
      result.refusals.map((r) => r.gate),
      ["data"],
    );
    assert.match(
      result.refusals[0]?.message ?? "",
      /already differ at revision 100 .*https:\/\/10\.0\.0\.3:2379 999/,
    );
    assert.deepEqual(defragments(sim), []);
    assert.ok(lines.some((l) => l.startsWith("ERROR refused: ")));
  });

  it("data that changed under the run: the run fails loudly, naming the hashes", async () => {
    const sim = etcdLike();
    const base = sim.hashOf;
    sim.hashOf = (node, rev) =>
      defragments(sim).length === 3 && node.includes("10.0.0.2") ? 5 : base(node, rev);
    const { result } = await run(sim);
    assert.equal(result.result, "failed");
    assert.equal(result.hashCheck?.outcome, "differ");
    assert.match(
      result.error?.message ?? "",
      /the data changed under the run: at revision 100 .* hashed 107 .* now/,
    );
    assert.equal(defragments(sim).length, 3, "found after the last member");
  });

  it("the revision compacted during the run: the members compared at a newer one (agree)", async () => {
    const sim = etcdLike();
    const hashes = sim.hashes.bind(sim);
    // The after-check asks for revision 100 again; compacted meanwhile, the backend answers at 150.
    sim.hashes = (nodes, revision) => {
      const at = hashes(nodes, revision === undefined ? undefined : sim.revision);
      sim.revision += 50n;
      return at;
    };
    const { result } = await run(sim);
    assert.equal(result.result, "success");
    assert.equal(result.hashCheck?.outcome, "agree");
    assert.deepEqual(result.hashCheck.after, { revision: "150", hash: 157, sameRevision: false });
  });

  it("a backend without HashKV (Talos): no data check, nothing said", async () => {
    const sim = etcdLike();
    sim.hashesSupported = false;
    const { result, lines } = await run(sim);
    assert.equal(result.result, "success");
    assert.equal(result.hashCheck, undefined);
    assert.ok(!lines.some((l) => /data check/.test(l)));
  });
});

describe("--compact", () => {
  it("compacts before the plan (so the plan judges the compacted numbers) and says to which revision", async () => {
    const sim = etcdLike();
    const { result, lines } = await run(sim, { compact: true });
    assert.equal(result.compactedTo, "100");
    assert.ok(sim.calls.indexOf("Compact") < sim.calls.findIndex((c) => c.startsWith("EtcdDefragment")));
    assert.ok(
      lines.findIndex((l) => /compacted etcd's history to revision 100/.test(l)) <
        lines.findIndex((l) => l.startsWith("plan:")),
    );
  });

  it("a dry run compacts nothing and says a real run would", async () => {
    const sim = etcdLike();
    const { result, lines } = await run(sim, { compact: true, dryRun: true });
    assert.equal(result.result, "dry-run");
    assert.ok(!sim.calls.includes("Compact"));
    assert.ok(lines.some((l) => /a real run compacts etcd's history/.test(l)));
  });
});

describe("the new leader", () => {
  it("is a member this run already defragmented (the first, healthy), named to the backend first", async () => {
    const sim = etcdLike();
    // Member 3 has the most to free: the plan takes it first, unlike the member list's order.
    const third = sim.sim[2];
    assert.ok(third);
    third.dbSize = 400 * MiB;
    const { result } = await run(sim, { moveLeader: "auto" });
    assert.equal(result.result, "success");
    const leader = result.members.at(-1);
    assert.equal(leader?.node, "https://10.0.0.1:2379");
    const first = result.members[0]?.node ?? "";
    assert.equal(first, "https://10.0.0.3:2379");
    const firstId = BigInt(first.replace(/.*10\.0\.0\.(\d).*/, "$1"));
    assert.equal(sim.preferred[0]?.[0], firstId, "the first defragmented member is preferred");
    assert.equal(sim.preferred[0].length, 2, "every healthy voter but the leader");
    assert.equal(sim.leader, firstId);
  });

  it("a single member (--allow-downtime): no one to take over, defragmented in place", async () => {
    const members: SimMember[] = [
      {
        id: 1n,
        node: "https://10.0.0.1:2379",
        dbSize: 300 * MiB,
        inUse: 100 * MiB,
        defragMs: 1000,
        config: { startupDefrag: [] },
      },
    ];
    const sim = new SimCluster(members);
    const { result, lines } = await run(sim, { moveLeader: "auto", allowDowntime: true });
    assert.equal(result.result, "success");
    assert.ok(!sim.calls.some((c) => c.startsWith("EtcdForfeitLeadership")));
    assert.ok(lines.some((l) => /no other healthy voting member to take over/.test(l)));
    assert.match(result.members[0]?.notes.join(" ") ?? "", /in place: no other healthy voting member/);
  });
});
