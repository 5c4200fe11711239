import assert from "node:assert/strict";
import { describe, it } from "node:test";

import {
  caughtUpWithLeader,
  checkGates,
  checkDisk,
  checkLifecycle,
  diskNeeded,
  memberHealthy,
  type GateOptions,
} from "../../src/core/gates.js";
import type { ClusterView } from "../../src/core/model.js";
import { m1, m2, m3, three, view } from "./fixtures.js";
import { TALOS_WORDS } from "../../src/talos/words.js";

const opts: GateOptions = {
  allowDowntime: false,
  maxAppliedLag: 1000,
  affectedEtcd: "caught-up",
  fixedEtcd: TALOS_WORDS.fixedEtcd,
};

describe("safety gates", () => {
  const cases: [string, ClusterView, Partial<GateOptions>, [string, RegExp][]][] = [
    ["healthy 3-member cluster", view(three), {}, []],
    [
      "one voting member does not answer",
      view([m1, m2, { id: 3n, node: "10.0.0.3", error: "connection refused" }]),
      {},
      [["reachable", /cp-3 \(0000000000000003\) does not answer: connection refused/]],
    ],
    [
      "a voting member missing from --nodes",
      { ...view(three), nodes: view(three).nodes.slice(0, 2) },
      {},
      [["reachable", /cp-3 .* at 10\.0\.0\.3 is not among the nodes; add it to --nodes/]],
    ],
    [
      "members disagree on the leader",
      view([m1, m2, { id: 3n, node: "10.0.0.3", status: { leaderId: 3n } }]),
      {},
      [
        [
          "leader",
          /do not agree on one leader: 10\.0\.0\.1 sees 0000000000000001, .*10\.0\.0\.3 sees 0000000000000003/,
        ],
      ],
    ],
    [
      "no leader at all",
      view(three, { leader: 0n }),
      {},
      [["leader", /do not agree on one leader.*no leader/]],
    ],
    [
      "a member far behind the leader",
      view([
        { id: 1n, node: "10.0.0.1", status: { raftIndex: 5000n, raftAppliedIndex: 5000n } },
        m2,
        { id: 3n, node: "10.0.0.3", status: { raftAppliedIndex: 10n } },
      ]),
      {},
      [
        ["caught-up", /cp-2 .* has applied 500 entries, 4500 behind the leader's 5000/],
        ["caught-up", /cp-3 .* has applied 10 entries, 4990 behind the leader's 5000/],
      ],
    ],
    [
      "a member slightly behind is fine",
      view([m1, m2, { id: 3n, node: "10.0.0.3", status: { raftAppliedIndex: 450n } }]),
      {},
      [],
    ],
    [
      "CORRUPT alarm",
      view(three, { alarms: [{ memberId: 2n, alarm: "CORRUPT" }] }),
      {},
      [["corrupt", /CORRUPT alarm is raised on member cp-2 .*never touches or disarms it/]],
    ],
    ["NOSPACE alarm does not block", view(three, { alarms: [{ memberId: 2n, alarm: "NOSPACE" }] }), {}, []],
    [
      "two voting members need --allow-downtime",
      view(three.slice(0, 2)),
      {},
      [["quorum", /only 2 voting members: .*pass --allow-downtime/]],
    ],
    ["two voting members with --allow-downtime", view(three.slice(0, 2)), { allowDowntime: true }, []],
    [
      "a learner does not count as voting",
      view([m1, m2, { id: 3n, node: "10.0.0.3", learner: true }]),
      {},
      [["quorum", /only 2 voting members/]],
    ],
    [
      "an unreachable learner does not block",
      view([...three, { id: 4n, node: "10.0.0.4", learner: true, error: "down" }]),
      {},
      [],
    ],
    ["single member", view(three.slice(0, 1)), {}, [["quorum", /only 1 voting member: /]]],
    [
      "an affected etcd passes the gates by default (it is defragmented only while caught up)",
      view([m1, m2, { id: 3n, node: "10.0.0.3", status: { protocolVersion: "3.6.4" } }]),
      {},
      [],
    ],
    [
      "an affected etcd refuses the run with --affected-etcd refuse, naming the member and the fix",
      view([m1, { id: 2n, node: "10.0.0.2", status: { protocolVersion: "3.5.21" } }, m3]),
      { affectedEtcd: "refuse" },
      [
        [
          "etcd-version",
          /^member cp-2 \(0000000000000002\) runs etcd 3\.5\.21, which can corrupt its data when a raft snapshot is applied while it defragments \(etcd PRs 20650, 20653 and 20659\); fixed in etcd 3\.5\.23, shipped by Talos 1\.10\.9 and later \(etcd 3\.5\.26\); refused \(--affected-etcd refuse\)$/,
        ],
      ],
    ],
    [
      "a fixed etcd passes with --affected-etcd refuse",
      view([m1, m2, { id: 3n, node: "10.0.0.3", status: { protocolVersion: "3.6.5" } }]),
      { affectedEtcd: "refuse" },
      [],
    ],
    [
      "an unparsable etcd version refuses, naming the member",
      view([m1, m2, { id: 3n, node: "10.0.0.3", status: { protocolVersion: "three.six" } }]),
      {},
      [
        [
          "etcd-version",
          /^member cp-3 \(0000000000000003\) reports etcd version "three\.six", which does not parse: whether it is safe to defragment cannot be told$/,
        ],
      ],
    ],
    [
      "an empty etcd version refuses",
      view([{ id: 1n, node: "10.0.0.1", status: { protocolVersion: "" } }, m2, m3]),
      {},
      [["etcd-version", /^member cp-1 .* reports no etcd version: /]],
    ],
    [
      "an unknown major version refuses",
      view([m1, m2, { id: 3n, node: "10.0.0.3", status: { protocolVersion: "4.0.0" } }]),
      {},
      [["etcd-version", /cp-3 .* runs etcd 4\.0\.0, a major version this tool does not know/]],
    ],
    [
      "no member list",
      { ...view(three), members: undefined },
      {},
      [["member-list", /member list could not be read/]],
    ],
  ];
  for (const [name, v, over, expected] of cases) {
    it(name, () => {
      const failures = checkGates(v, { ...opts, ...over });
      assert.deepEqual(
        failures.map((f) => f.gate),
        expected.map(([gate]) => gate),
        JSON.stringify(failures),
      );
      failures.forEach((f, i) => {
        assert.match(f.message, expected[i]?.[1] ?? /^$/);
      });
    });
  }
});

describe("member healthy again after its defragment", () => {
  const cases: [string, ClusterView, string, boolean][] = [
    ["answers, knows the leader, caught up", view(three), "10.0.0.2", true],
    ["the leader itself", view(three), "10.0.0.1", true],
    [
      "does not answer",
      view([m1, m2, { id: 3n, node: "10.0.0.3", error: "connection refused" }]),
      "10.0.0.3",
      false,
    ],
    ["knows no leader", view([m1, m2, { ...m3, status: { leaderId: 0n } }]), "10.0.0.3", false],
    [
      "1001 entries behind the leader",
      view([
        { ...m1, status: { raftAppliedIndex: 2001n } },
        m2,
        { ...m3, status: { raftAppliedIndex: 1000n } },
      ]),
      "10.0.0.3",
      false,
    ],
    [
      "1000 entries behind: within the lag allowed",
      view([
        { ...m1, status: { raftAppliedIndex: 2000n } },
        m2,
        { ...m3, status: { raftAppliedIndex: 1000n } },
      ]),
      "10.0.0.3",
      true,
    ],
    [
      "its leader does not answer: nothing to compare with, the member decides",
      view([{ ...m1, error: "connection refused" }, m2, m3]),
      "10.0.0.3",
      true,
    ],
    ["not among the nodes", view(three), "10.0.0.9", false],
  ];
  for (const [name, v, node, healthy] of cases) {
    it(name, () => {
      const status = memberHealthy(v, node, 1000);
      assert.equal(status !== undefined, healthy);
      const n = v.nodes.find((x) => x.node === node);
      if (healthy) assert.equal(status, n?.ok ? n.status : undefined, "the member's own fresh status");
    });
  }
});

describe("fully caught up with the leader (an etcd with the snapshot/defragment bug)", () => {
  const cases: [string, ClusterView, string, boolean][] = [
    ["applied as much as the leader", view(three), "10.0.0.2", true],
    ["the leader itself", view(three), "10.0.0.1", true],
    ["one entry behind", view([m1, { ...m2, status: { raftAppliedIndex: 499n } }, m3]), "10.0.0.2", false],
    [
      "ahead of the leader's reading (read after it)",
      view([m1, { ...m2, status: { raftAppliedIndex: 501n } }, m3]),
      "10.0.0.2",
      true,
    ],
    [
      "its leader does not answer: not known to be caught up",
      view([{ ...m1, error: "connection refused" }, m2, m3]),
      "10.0.0.3",
      false,
    ],
    ["knows no leader", view([m1, m2, { ...m3, status: { leaderId: 0n } }]), "10.0.0.3", false],
    [
      "does not answer",
      view([m1, m2, { id: 3n, node: "10.0.0.3", error: "connection refused" }]),
      "10.0.0.3",
      false,
    ],
  ];
  for (const [name, v, node, caught] of cases) {
    it(name, () => {
      assert.equal(caughtUpWithLeader(v, node) !== undefined, caught);
    });
  }
});

describe("every node up and serving (lifecycle)", () => {
  const running = { stage: "RUNNING", working: true, ready: true, unmet: [] };
  const cases: [string, Parameters<typeof checkLifecycle>[0], string[]][] = [
    ["every node RUNNING and ready", [{ node: "a", lifecycle: running }], []],
    [
      "UPGRADING: judged by its stage, though Talos reports it ready",
      [{ node: "a", lifecycle: { stage: "UPGRADING", working: false, ready: true, unmet: [] } }],
      ["node a is UPGRADING, not up and serving"],
    ],
    [
      "REBOOTING",
      [
        { node: "a", lifecycle: running },
        { node: "b", lifecycle: { stage: "REBOOTING", working: false, ready: true, unmet: [] } },
      ],
      ["node b is REBOOTING, not up and serving"],
    ],
    [
      "RUNNING but not ready, with its unmet conditions",
      [
        {
          node: "a",
          lifecycle: {
            stage: "RUNNING",
            working: true,
            ready: false,
            unmet: ["kubelet: service not healthy", "nodeReady: node not ready"],
          },
        },
      ],
      ["node a is RUNNING but not ready (unmet: kubelet: service not healthy; nodeReady: node not ready)"],
    ],
    [
      "BOOTING, not ready",
      [
        {
          node: "a",
          lifecycle: { stage: "BOOTING", working: false, ready: false, unmet: ["etcd: waiting"] },
        },
      ],
      ["node a is BOOTING (unmet: etcd: waiting), not up and serving"],
    ],
    [
      "unreadable now: not steady",
      [{ node: "a", error: "cannot reach the node: connection refused" }],
      ["the lifecycle of node a cannot be read: cannot reach the node: connection refused"],
    ],
    ["not reported at all: no failure (said once by the run)", [{ node: "a", unsupported: "old Talos" }], []],
  ];
  for (const [name, readings, messages] of cases) {
    it(name, () => {
      const failures = checkLifecycle(readings);
      assert.deepEqual(
        failures.map((f) => f.message),
        messages,
      );
      for (const f of failures) assert.equal(f.gate, "lifecycle");
    });
  }
});

describe("room on the disk for the defragment's copy", () => {
  const MiB = 1024 ** 2;
  const disk = (availableBytes: number) => ({
    path: "/var/lib/etcd",
    sizeBytes: 10 * 1024 * MiB,
    availableBytes,
  });
  it("needs the data in use once more, plus 10% and 64 MiB", () => {
    assert.equal(diskNeeded(0), 64 * MiB);
    assert.equal(diskNeeded(1000 * MiB), 1100 * MiB + 64 * MiB);
  });
  const cases: [string, number, number, string | undefined][] = [
    ["plenty", 500 * MiB, 5000 * MiB, undefined],
    ["exactly enough", 500 * MiB, 614 * MiB, undefined],
    [
      "one byte short",
      500 * MiB,
      614 * MiB - 1,
      "614.0 MiB available on /var/lib/etcd of 10.0.0.2, and its defragment needs 614.0 MiB there (a copy of the 500.0 MiB in use, plus 10% and 64 MiB)",
    ],
    [
      "a full disk",
      1024 * MiB,
      10 * MiB,
      "10.0 MiB available on /var/lib/etcd of 10.0.0.2, and its defragment needs 1.2 GiB there (a copy of the 1.0 GiB in use, plus 10% and 64 MiB)",
    ],
  ];
  for (const [name, inUse, available, message] of cases) {
    it(name, () => {
      const f = checkDisk("10.0.0.2", { dbSizeInUse: inUse }, disk(available));
      assert.equal(f?.message, message);
      if (f) assert.deepEqual([f.gate, f.node], ["disk", "10.0.0.2"]);
    });
  }
});
