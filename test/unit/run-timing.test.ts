// The orchestrator's rules about time, on a simulated cluster with a virtual clock:
// never two members defragmenting at once, even when a call times out.

import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { describe, it } from "node:test";

import { DefragError } from "../../src/core/errors.js";
import { compileRule } from "../../src/core/rule.js";
import { runDefrag } from "../../src/run/run.js";
import type { RunReporter, SnapshotStore, SnapshotWriter } from "../../src/core/ports.js";
import type { RunDeps, RunOptions } from "../../src/run/types.js";
import { SimCluster, type SimMember } from "./sim-backend.js";
import { recordingReporter, simOptions } from "./sim-run.js";

import { MiB } from "../harness/units.js";

function options(over: Partial<RunOptions> = {}): RunOptions {
  return simOptions({ quotaBytes: 2 * 1024 * MiB, ...over });
}

function reporter(lines: string[]): RunReporter {
  return recordingReporter(lines);
}

/** Runs on the simulation with its clock, no stop request, and `lines` collecting what it reports. */
function runOn(sim: SimCluster, opts: RunOptions, lines: string[], extra: Partial<RunDeps> = {}) {
  return runDefrag(sim, opts, {
    clock: sim.clock,
    signal: new AbortController().signal,
    reporter: reporter(lines),
    ...extra,
  });
}

function cluster(defragMs: number[]): SimCluster {
  const members: SimMember[] = defragMs.map((ms, i) => ({
    id: BigInt(i + 1),
    node: `10.0.0.${i + 1}`,
    dbSize: 300 * MiB,
    inUse: 100 * MiB,
    defragMs: ms,
  }));
  return new SimCluster(members);
}

function assertNoOverlap(windows: [string, number, number][]): void {
  const sorted = [...windows].sort((a, b) => a[1] - b[1]);
  for (let i = 1; i < sorted.length; i += 1) {
    const prev = sorted[i - 1];
    const cur = sorted[i];
    assert.ok(
      prev && cur && cur[1] >= prev[2],
      `${cur?.[0]} started at ${cur?.[1]} before ${prev?.[0]} ended at ${prev?.[2]}`,
    );
  }
}

describe("run timing", () => {
  it("defragments followers then the leader, one at a time", async () => {
    const sim = cluster([5_000, 5_000, 5_000]);
    const lines: string[] = [];
    const result = await runOn(sim, options(), lines);
    assert.equal(result.result, "success");
    assert.deepEqual(
      sim.windows.map((w) => w[0]),
      ["10.0.0.2", "10.0.0.3", "10.0.0.1"],
    );
    assertNoOverlap(sim.windows);
    assert.equal(result.reclaimedBytes, 3 * 200 * MiB);
  });

  it("after a timed-out call, waits for proof that the member finished before the next one", async () => {
    // Member 2's defrag takes 5 minutes; the call gives up after 1 minute.
    const sim = cluster([5_000, 300_000, 5_000]);
    const lines: string[] = [];
    const result = await runOn(sim, options(), lines);
    assert.equal(result.result, "success", lines.join("\n"));
    assertNoOverlap(sim.windows);
    const slow = result.members.find((m) => m.node === "10.0.0.2");
    assert.ok(slow);
    assert.equal(slow.action, "defragmented");
    assert.match(
      slow.notes.join(" "),
      /ended with "EtcdDefragment did not answer in time"; etcd logged the end of the defragment \(it took 5m0s\)/,
    );
    assert.ok((slow.durationMs ?? 0) >= 300_000, "the duration covers the real defrag, not just the call");
    assert.ok(lines.some((l) => /etcd keeps defragmenting regardless/.test(l)));
    // The heartbeat runs on the injected clock, through the call and the wait for proof:
    // every 30 s of virtual time, its elapsed time counting from the start of the call.
    const beats = lines
      .filter((l) => l.startsWith("heartbeat 10.0.0.2 "))
      .map((l) => Number(l.split(" ")[2]));
    assert.ok(beats.length >= 9, `heartbeats: ${beats.join(", ")}`);
    assert.deepEqual(beats.slice(0, 2), [30_000, 60_000]);
    assert.ok(
      beats.every((b, i) => i === 0 || b > (beats[i - 1] ?? 0)),
      "elapsed time only grows",
    );
    assert.ok(!lines.some((l) => /^heartbeat 10\.0\.0\.[13] /.test(l)), "5 s defrags need no heartbeat");
    assert.equal(sim.pendingTimers, 0, "no timer outlives the run");
  });

  it("when etcd's log cannot tell, the DB shrinking is proof that the member finished", async () => {
    const sim = cluster([5_000, 300_000, 5_000]);
    const origDefrag = sim.defragment.bind(sim);
    sim.defragment = async (node, opts) => {
      // The log of the member in doubt cannot be read until its DB has shrunk.
      if (node === "10.0.0.2") sim.breakLog(node);
      await origDefrag(node, opts);
    };
    const origStatus = sim.status.bind(sim);
    sim.status = async (node) => {
      const s = await origStatus(node);
      if (s.dbSize === s.dbSizeInUse) sim.brokenLogs.delete(node);
      return s;
    };
    const lines: string[] = [];
    const result = await runOn(sim, options(), lines);
    assert.equal(result.result, "success", lines.join("\n"));
    assertNoOverlap(sim.windows);
    assert.match(
      result.members.find((m) => m.node === "10.0.0.2")?.notes.join(" ") ?? "",
      /ended with "EtcdDefragment did not answer in time"; its DB shrank to 100\.0 MiB/,
    );
  });

  it("without proof within --max-wait, fails and touches no other member", async () => {
    const sim = cluster([5_000, 3_600_000, 5_000]);
    const lines: string[] = [];
    const result = await runOn(sim, options({ maxWaitMs: 120_000 }), lines);
    assert.equal(result.result, "failed");
    assert.ok(
      sim.windows.every((w) => w[0] === "10.0.0.2"),
      "nothing after the member in doubt",
    );
    assert.deepEqual(
      result.members.map((m) => [m.node, m.action]),
      [
        ["10.0.0.2", "failed"],
        ["10.0.0.3", "not-reached"],
        ["10.0.0.1", "not-reached"],
      ],
    );
    assert.match(result.error?.message ?? "", /no proof that the defragment of 10\.0\.0\.2 finished/);
  });

  it("when little can be reclaimed, proof is a second defragment call, which etcd queues behind the first", async () => {
    const sim = cluster([5_000, 120_000, 5_000]);
    for (const m of sim.sim) m.inUse = m.dbSize; // nothing to reclaim: the size cannot prove anything
    // Nor can etcd's log: member 2's stream is broken from its first call until its second.
    const origDefrag = sim.defragment.bind(sim);
    let calls = 0;
    sim.defragment = async (node, opts) => {
      if (node === "10.0.0.2") {
        calls += 1;
        if (calls === 1) sim.breakLog(node);
        else sim.brokenLogs.delete(node);
      }
      await origDefrag(node, opts);
    };
    const lines: string[] = [];
    const result = await runOn(sim, options(), lines);
    assert.equal(result.result, "success", lines.join("\n"));
    assertNoOverlap(sim.windows);
    assert.equal(sim.windows.filter((w) => w[0] === "10.0.0.2").length, 2);
    assert.match(
      result.members.find((m) => m.node === "10.0.0.2")?.notes.join(" ") ?? "",
      /a second defragment call returned/,
    );
  });

  it("when the first call never reached etcd, a second call does the work and proves it", async () => {
    const sim = cluster([5_000, 5_000, 5_000]);
    const origDefrag = sim.defragment.bind(sim);
    let dropped = false;
    sim.defragment = async (node, opts) => {
      if (node === "10.0.0.2" && !dropped) {
        // The deadline passed before the request reached etcd: nothing started.
        dropped = true;
        sim.advanceTo(sim.now + opts.timeoutMs);
        throw new DefragError("timeout", "EtcdDefragment did not answer in time", { node });
      }
      await origDefrag(node, opts);
    };
    const lines: string[] = [];
    const result = await runOn(sim, options({ timeoutMs: 1_000 }), lines);
    assert.equal(result.result, "success", lines.join("\n"));
    const notes = result.members.find((m) => m.node === "10.0.0.2")?.notes.join(" ") ?? "";
    assert.match(notes, /a second defragment call returned/);
    assert.ok(sim.now < 60_000, "proof came within seconds, not after --max-wait");
    assertNoOverlap(sim.windows);
  });

  it("a stop request starts nothing new and lets the member in flight finish", async () => {
    const sim = cluster([5_000, 5_000, 5_000]);
    const controller = new AbortController();
    const lines: string[] = [];
    const origDefrag = sim.defragment.bind(sim);
    sim.defragment = async (node, opts) => {
      controller.abort();
      await origDefrag(node, opts);
    };
    const result = await runOn(sim, options(), lines, { signal: controller.signal });
    assert.equal(result.result, "failed");
    assert.equal(sim.windows.length, 1);
    assert.deepEqual(
      result.members.map((m) => m.action),
      ["defragmented", "not-reached", "not-reached"],
    );
  });

  it("on a stop request during a long defragment, gives up on the call after the grace period (virtual clock) and touches nothing else", async () => {
    const sim = cluster([5_000, 300_000, 5_000]);
    const controller = new AbortController();
    const origDefrag = sim.defragment.bind(sim);
    sim.defragment = async (node, opts) => {
      if (node === "10.0.0.2" && !controller.signal.aborted)
        sim.clock.after(10_000, () => {
          controller.abort();
        });
      await origDefrag(node, opts);
    };
    const lines: string[] = [];
    const result = await runOn(sim, options({ timeoutMs: 600_000 }), lines, { signal: controller.signal });
    assert.equal(result.result, "failed", lines.join("\n"));
    assert.ok(lines.some((l) => /stop requested: waiting up to 25\.0s for 10\.0\.0\.2/.test(l)));
    // The call was abandoned 25 s after the stop (at 10 s), not when etcd finished (300 s).
    assert.ok(
      lines.some((l) =>
        /10\.0\.0\.2: the defragment call ended after 35\.0s without success .*waiting up to 25\.0s for proof/.test(
          l,
        ),
      ),
      lines.join("\n"),
    );
    assert.match(
      result.error?.message ?? "",
      /no proof that the defragment of 10\.0\.0\.2 finished within 25\.0s/,
    );
    assert.ok(
      sim.windows.every((w) => w[0] === "10.0.0.2"),
      "no other member started",
    );
    assert.deepEqual(
      result.members.map((m) => [m.node, m.action]),
      [
        ["10.0.0.2", "failed"],
        ["10.0.0.3", "not-reached"],
        ["10.0.0.1", "not-reached"],
      ],
    );
    assert.equal(sim.pendingTimers, 0, "no timer outlives the run");
  });

  it("moves leadership first when allowed, and defragments the former leader as a follower", async () => {
    const sim = cluster([5_000, 5_000, 5_000]);
    const lines: string[] = [];
    const result = await runOn(sim, options({ moveLeader: "auto" }), lines);
    assert.equal(result.result, "success", lines.join("\n"));
    const forfeit = sim.calls.indexOf("EtcdForfeitLeadership 10.0.0.1");
    assert.ok(forfeit > 0 && forfeit < sim.calls.lastIndexOf("EtcdDefragment 10.0.0.1"));
    assert.equal(result.members.at(-1)?.leadershipMovedTo, "cp-2");
  });

  it("an operator certificate defragments the leader in place, last, and says so", async () => {
    const sim = cluster([5_000, 5_000, 5_000]);
    sim.moveLeadership = {
      allowed: false,
      reason: "moving leadership needs role os:admin (the certificate has os:operator)",
    };
    const lines: string[] = [];
    const result = await runOn(sim, options({ moveLeader: "auto" }), lines);
    assert.equal(result.result, "success");
    assert.ok(!sim.calls.some((c) => c.startsWith("EtcdForfeitLeadership")));
    assert.equal(sim.windows.at(-1)?.[0], "10.0.0.1");
    assert.equal(lines.filter((l) => /needs role os:admin/.test(l)).length, 1, "said once");
  });
});

describe("other defragments (another run, a person, etcd at start-up)", () => {
  it("one in progress when the run starts: waits for it, then goes on; never two at once", async () => {
    const sim = cluster([5_000, 5_000, 5_000]);
    sim.startExternal("10.0.0.3", 40_000);
    const lines: string[] = [];
    const result = await runOn(sim, options(), lines);
    assert.equal(result.result, "success", lines.join("\n"));
    assertNoOverlap(sim.windows);
    assert.ok(
      lines.some((l) =>
        // Its status blocks as etcd's does while it defragments: the first reading took the 10 s call timeout.
        /a defragment is already in progress on 10\.0\.0\.3 \(a defragment call not made by this run, running for 10\.0s\); waiting up to 10m0s before starting the first member/.test(
          l,
        ),
      ),
      lines.join("\n"),
    );
    assert.ok(
      lines.some((l) =>
        /still waiting for the defragment on 10\.0\.0\.3 to finish \(waited 30\.0s\)/.test(l),
      ),
    );
    const first = sim.windows.find((w) => w[0] === "10.0.0.2");
    assert.ok(first && first[1] >= 40_000, "the run's first defragment starts after the other one ended");
  });

  for (const pauseMs of [0, 1000]) {
    it(`one that starts between two members (etcd's start-up defragment): the next member waits (--pause ${pauseMs}ms)`, async () => {
      const sim = cluster([5_000, 5_000, 5_000]);
      const origDefrag = sim.defragment.bind(sim);
      sim.defragment = async (node, opts) => {
        await origDefrag(node, opts);
        if (node === "10.0.0.2") sim.startExternal("10.0.0.1", 20_000, "start-up");
      };
      const lines: string[] = [];
      const result = await runOn(sim, options({ pauseMs }), lines);
      assert.equal(result.result, "success", lines.join("\n"));
      assertNoOverlap(sim.windows);
      assert.ok(lines.some((l) => /in progress on 10\.0\.0\.1 \(etcd's start-up defragment/.test(l)));
    });
  }

  it("one that starts while the previous member is not yet healthy again: the next member waits", async () => {
    const sim = cluster([5_000, 5_000, 5_000]);
    // 10.0.0.2 answers as behind the leader for 300 ms after its defragment, so its health check
    // passes only at a later poll; the other defragment starts meanwhile, after the logs were read
    // together with the first poll.
    let healthyAt = Number.POSITIVE_INFINITY;
    const origDefrag = sim.defragment.bind(sim);
    sim.defragment = async (node, opts) => {
      await origDefrag(node, opts);
      if (node === "10.0.0.2") healthyAt = sim.now + 300;
    };
    const m2 = sim.sim[1];
    if (m2 !== undefined)
      m2.appliedBehind = (now) => (now >= healthyAt - 300 && now < healthyAt ? 10_000 : 0);
    const origStatus = sim.status.bind(sim);
    let started = false;
    sim.status = (node) => {
      if (!started && sim.now > healthyAt - 300 && sim.now < healthyAt) {
        started = true;
        sim.startExternal("10.0.0.1", 20_000, "start-up");
      }
      return origStatus(node);
    };
    const lines: string[] = [];
    const result = await runOn(sim, options({ pauseMs: 0, pollIntervalMs: 100 }), lines);
    assert.equal(result.result, "success", lines.join("\n"));
    assert.ok(started, "the other defragment started during the health check");
    assertNoOverlap(sim.windows);
    assert.ok(
      lines.some((l) => /in progress on 10\.0\.0\.1 \(etcd's start-up defragment/.test(l)),
      lines.join("\n"),
    );
  });

  it("one that outlasts --max-wait: refused, nothing defragmented", async () => {
    const sim = cluster([5_000, 5_000, 5_000]);
    sim.startExternal("10.0.0.1", 3_600_000);
    const lines: string[] = [];
    const result = await runOn(sim, options({ maxWaitMs: 120_000 }), lines);
    assert.equal(result.result, "refused");
    assert.deepEqual(
      sim.windows.map((w) => w[0]),
      ["10.0.0.1"],
      "only the other defragment",
    );
    assert.match(
      result.error?.message ?? "",
      /a defragment not started by this run is still in progress on 10\.0\.0\.1 .* after waiting 2m0s; not starting the first member while it is/,
    );
    assert.deepEqual(
      result.refusals.map((r) => [r.gate, r.node]),
      [["quiet", "10.0.0.1"]],
    );
    assert.ok(result.members.every((m) => m.action === "not-reached"));
  });

  it("a log that cannot be read is a refusal, not a guess", async () => {
    const sim = cluster([5_000, 5_000, 5_000]);
    sim.deniedLogs.add("10.0.0.3");
    const lines: string[] = [];
    const result = await runOn(sim, options(), lines);
    assert.equal(result.result, "refused");
    assert.equal(sim.windows.length, 0);
    assert.match(
      result.error?.message ?? "",
      /^cannot read etcd's log on 10\.0\.0\.3 \(Logs was denied\): cannot tell whether a defragment is already running there, so no member is started$/,
    );
  });

  it("reports how long etcd itself was blocked on each member", async () => {
    const sim = cluster([4_000, 7_000, 9_000]);
    const result = await runOn(sim, options(), []);
    assert.deepEqual(
      result.members.map((m) => [m.node, m.blockedMs]),
      [
        ["10.0.0.2", 7_000],
        ["10.0.0.3", 9_000],
        ["10.0.0.1", 4_000],
      ],
    );
  });
});

describe("NOSPACE at the end", () => {
  const nospace = (): SimCluster => {
    const sim = cluster([5_000, 5_000, 5_000]);
    sim.alarms_ = [{ memberId: 2n, alarm: "NOSPACE" }];
    return sim;
  };
  const run = (sim: SimCluster, over: Partial<RunOptions>, lines: string[]) =>
    runOn(sim, options({ quotaBytes: 400 * MiB, ...over }), lines);

  it("disarmed when every member is below the share of the quota (100 MiB of 400 MiB < 80%)", async () => {
    const sim = nospace();
    const lines: string[] = [];
    const result = await run(sim, {}, lines);
    assert.equal(result.result, "success", lines.join("\n"));
    assert.deepEqual(result.alarmsDisarmed, ["NOSPACE on 0000000000000002"]);
    assert.deepEqual(result.alarmsRaised, []);
    assert.ok(lines.includes("every member is under 80% of the quota: disarming NOSPACE"));
  });

  it("left armed above the share: result alarm-raised, the alarm in the result", async () => {
    const sim = nospace();
    const lines: string[] = [];
    const result = await run(sim, { nospaceDisarmBelow: 0.2 }, lines);
    assert.equal(result.result, "alarm-raised");
    assert.deepEqual(result.alarmsRaised, [{ alarm: "NOSPACE", member: "0000000000000002" }]);
    assert.ok(!sim.calls.includes("EtcdAlarmDisarm"));
    assert.match(
      result.error?.message ?? "",
      /^NOSPACE on 0000000000000002 still raised at the end of the run: etcd refuses writes/,
    );
    assert.match(result.error?.hint ?? "", /every member is under 20% of the quota/);
  });

  it("0 switches disarming off", async () => {
    const sim = nospace();
    const lines: string[] = [];
    const result = await run(sim, { nospaceDisarmBelow: 0 }, lines);
    assert.equal(result.result, "alarm-raised");
    assert.ok(!sim.calls.includes("EtcdAlarmDisarm"));
    assert.ok(lines.includes("NOSPACE stays armed: disarming is off (--nospace-disarm-below 0)"));
  });
});

describe("an etcd with the snapshot/defragment bug (before 3.4.38, 3.5.0-3.5.22, 3.6.0-3.6.4)", () => {
  // Member 2 (a follower, defragmented first: most free space) runs `version`.
  const affected = (version: string, appliedBehind?: (now: number) => number): SimCluster => {
    const sim = cluster([5_000, 5_000, 5_000]);
    const m2 = sim.sim[1];
    assert.ok(m2);
    m2.version = version;
    m2.dbSize = 500 * MiB;
    if (appliedBehind !== undefined) m2.appliedBehind = appliedBehind;
    return sim;
  };
  const run = (sim: SimCluster, over: Partial<RunOptions>, lines: string[]) =>
    runOn(sim, options(over), lines);
  const WARNING =
    "member cp-2 (0000000000000002) on 10.0.0.2 runs etcd 3.6.4, which can corrupt its data when a raft snapshot is applied while it defragments (etcd PRs 20650, 20653 and 20659); fixed in etcd 3.6.5, shipped by Talos 1.11.3 and later (etcd 3.6.5+); it is defragmented only while fully caught up with the leader (--affected-etcd refuse refuses instead)";

  it("warns, and defragments the member only once its applied index equals the leader's", async () => {
    // 5 entries behind for the first 3 s (within the default 1000 that the gates allow).
    const sim = affected("3.6.4", (now) => (now < 3_000 ? 5 : 0));
    const lines: string[] = [];
    const result = await run(sim, {}, lines);
    assert.equal(result.result, "success", lines.join("\n"));
    assert.ok(lines.includes(WARNING), lines.join("\n"));
    const window = sim.windows.find((w) => w[0] === "10.0.0.2");
    assert.ok(window && window[1] >= 3_000, `defragmented at ${window?.[1]}, before it caught up`);
    const m2 = result.members.find((m) => m.node === "10.0.0.2");
    assert.equal(m2?.action, "defragmented");
    assert.ok(m2.notes.some((n) => /etcd 3\.6\.4 is affected .*fully caught up with the leader/.test(n)));
    assert.ok(
      lines.some((l) =>
        /^10\.0\.0\.2: etcd 3\.6\.4 is affected .*applied index 100\), so defragmenting/.test(l),
      ),
    );
    assertNoOverlap(sim.windows);
  });

  it("a member that never catches up is not defragmented: refused after --health-timeout, nothing touched", async () => {
    const sim = affected("3.6.4", () => 1);
    const lines: string[] = [];
    const result = await run(sim, { healthTimeoutMs: 30_000 }, lines);
    assert.equal(result.result, "refused", lines.join("\n"));
    assert.deepEqual(sim.windows, []);
    assert.ok(!sim.calls.some((c) => c.startsWith("EtcdDefragment")));
    assert.deepEqual(
      result.refusals.map((r) => [r.gate, r.node]),
      [["etcd-version", "10.0.0.2"]],
    );
    assert.match(
      result.error?.message ?? "",
      /^10\.0\.0\.2 runs etcd 3\.6\.4, affected by the snapshot\/defragment bug, and was not fully caught up with the leader \(applied index\) within 30\.0s; not defragmented$/,
    );
    assert.deepEqual(
      result.members.map((m) => m.action),
      ["not-reached", "not-reached", "not-reached"],
    );
  });

  it("--affected-etcd refuse: refused at the gates, naming the member, nothing defragmented", async () => {
    const sim = affected("3.5.21");
    const lines: string[] = [];
    const result = await run(sim, { affectedEtcd: "refuse" }, lines);
    assert.equal(result.result, "refused");
    assert.ok(!sim.calls.some((c) => c.startsWith("EtcdDefragment")));
    assert.equal(result.refusals[0]?.gate, "etcd-version");
    assert.match(
      result.error?.message ?? "",
      /member cp-2 \(0000000000000002\) runs etcd 3\.5\.21, .*fixed in etcd 3\.5\.23, shipped by Talos 1\.10\.9 and later \(etcd 3\.5\.26\); refused \(--affected-etcd refuse\)/,
    );
  });

  it("an unparsable version is a refusal naming the member, nothing defragmented", async () => {
    const sim = affected("unknown");
    const lines: string[] = [];
    const result = await run(sim, {}, lines);
    assert.equal(result.result, "refused");
    assert.ok(!sim.calls.some((c) => c.startsWith("EtcdDefragment")));
    assert.match(
      result.error?.message ?? "",
      /member cp-2 \(0000000000000002\) reports etcd version "unknown", which does not parse: whether it is safe to defragment cannot be told/,
    );
  });

  it("a fixed version: no warning, no wait", async () => {
    const sim = affected("3.6.5", () => 5);
    const lines: string[] = [];
    const result = await run(sim, {}, lines);
    assert.equal(result.result, "success");
    assert.ok(!lines.some((l) => /snapshot/.test(l)), lines.join("\n"));
    assert.equal(sim.windows[0]?.[1], 0);
  });
});

describe("a snapshot first (--snapshot-dir)", () => {
  /** An in-memory store that checks etcd's sha256 like the file store. */
  function memoryStore(): SnapshotStore & { kept: Buffer[]; aborted: number } {
    const store = {
      where: "memory",
      kept: [] as Buffer[],
      aborted: 0,
      create: (node: string): Promise<SnapshotWriter> => {
        const chunks: Buffer[] = [];
        return Promise.resolve({
          write: (c: Uint8Array) => {
            chunks.push(Buffer.from(c));
            return Promise.resolve();
          },
          commit: () => {
            const all = Buffer.concat(chunks);
            const ok = createHash("sha256").update(all.subarray(0, -32)).digest().equals(all.subarray(-32));
            if (!ok) return Promise.reject(new DefragError("etcd", "sha256 mismatch"));
            store.kept.push(all);
            return Promise.resolve({ path: `memory/${node}`, bytes: all.length, removed: [] });
          },
          abort: () => {
            store.aborted += 1;
            return Promise.resolve();
          },
        });
      },
    };
    return store;
  }

  it("is taken from the leader before the first defragment, and named in the result", async () => {
    const sim = cluster([5_000, 5_000, 5_000]);
    const store = memoryStore();
    const result = await runOn(sim, options(), [], { snapshots: store });
    assert.equal(result.result, "success");
    const snap = sim.calls.indexOf("EtcdSnapshot 10.0.0.1");
    const firstDefrag = sim.calls.findIndex((c) => c.startsWith("EtcdDefragment"));
    assert.ok(snap >= 0 && snap < firstDefrag, sim.calls.join(", "));
    assert.equal(store.kept.length, 1);
    assert.deepEqual(result.snapshot, {
      node: "10.0.0.1",
      path: "memory/10.0.0.1",
      bytes: store.kept[0]?.length,
    });
  });

  it("a defragment someone starts during a long snapshot is waited for before the first member", async () => {
    const sim = cluster([5_000, 5_000, 5_000]);
    const orig = sim.snapshot.bind(sim);
    sim.snapshot = async (node, write) => {
      await orig(node, write);
      sim.startExternal("10.0.0.2", 60_000);
      await sim.clock.sleep(30_000);
    };
    const lines: string[] = [];
    const result = await runOn(sim, options(), lines, { snapshots: memoryStore() });
    assert.equal(result.result, "success", lines.join("\n"));
    assertNoOverlap(sim.windows);
    assert.ok(
      lines.some((l) => /a defragment is already in progress on 10\.0\.0\.2/.test(l)),
      lines.join("\n"),
    );
  });

  it("a snapshot that fails refuses the run: nothing defragmented, the partial one discarded", async () => {
    const sim = cluster([5_000, 5_000, 5_000]);
    sim.failingSnapshots.add("10.0.0.1");
    const store = memoryStore();
    const result = await runOn(sim, options(), [], { snapshots: store });
    assert.equal(result.result, "refused");
    assert.equal(sim.windows.length, 0);
    assert.equal(store.aborted, 1);
    assert.deepEqual(
      result.refusals.map((r) => [r.gate, r.node]),
      [["snapshot", "10.0.0.1"]],
    );
    assert.match(
      result.error?.message ?? "",
      /^the snapshot of 10\.0\.0\.1 failed: EtcdSnapshot via sim: the connection broke during the call; nothing is defragmented$/,
    );
    assert.ok(result.members.every((m) => m.action === "not-reached"));
  });

  it("nothing to defragment: no snapshot", async () => {
    const sim = cluster([5_000, 5_000, 5_000]);
    const store = memoryStore();
    const result = await runOn(sim, options({ rule: compileRule("false") }), [], { snapshots: store });
    assert.equal(result.result, "nothing-to-do");
    assert.ok(!sim.calls.some((c) => c.startsWith("EtcdSnapshot")));
  });
});

describe("following etcd's logs", () => {
  it("--min-interval: a run right after a successful one skips every member its log shows defragmented; 0 does not", async () => {
    const sim = cluster([1000, 1000, 1000]);
    const first = await runOn(sim, options({ minIntervalMs: 3_600_000 }), []);
    assert.equal(first.result, "success");
    const windows = sim.windows.length;
    const lines: string[] = [];
    const second = await runOn(sim, options({ minIntervalMs: 3_600_000 }), lines);
    assert.equal(second.result, "nothing-to-do", lines.join("\n"));
    assert.deepEqual(
      second.members.map((m) => m.action),
      ["skipped", "skipped", "skipped"],
    );
    for (const m of second.members)
      assert.match(
        m.reason,
        /, defragmented \d\S* ago \(its etcd log\), less than --min-interval 1h0m: skipped whatever the rule says$/,
      );
    assert.equal(sim.windows.length, windows, "nothing defragmented by the second run");
    const third = await runOn(sim, options({ minIntervalMs: 0 }), []);
    assert.equal(third.result, "success");
    assert.equal(sim.windows.length, windows + 3);
  });

  it(
    "the first reading opens every member's feed and reads every quota while the statuses are read",
    { timeout: 10_000 },
    async () => {
      const sim = cluster([100, 100, 100]);
      // No status answers before every feed was opened and every quota asked for: one after the
      // other, the run would never get past its first reading (and this test would time out).
      let release!: () => void;
      const allAsked = new Promise<void>((resolve) => (release = resolve));
      const asked = () => {
        const n = (prefix: string) => sim.calls.filter((c) => c.startsWith(prefix)).length;
        if (n("Logs ") >= 3 && n("MemberConfig ") >= 3) release();
      };
      const origStatus = sim.status.bind(sim);
      sim.status = async (node) => {
        asked();
        await allAsked;
        return origStatus(node);
      };
      const origConfig = sim.memberConfig.bind(sim);
      sim.memberConfig = (node) => {
        const p = origConfig(node);
        asked();
        return p;
      };
      const origFollow = sim.followDefrags.bind(sim);
      sim.followDefrags = (node, signal) => {
        const feed = origFollow(node, signal);
        // The generator records its call when first pulled: count it as asked now.
        sim.calls.push(`Logs ${node} (asked)`);
        asked();
        return feed;
      };
      const result = await runOn(sim, simOptions({ pauseMs: 0 }), []);
      assert.equal(result.result, "success");
    },
  );

  it("one feed per member for the whole run: no log is read again between members", async () => {
    const sim = cluster([100, 100, 100]);
    const result = await runOn(sim, options({ pauseMs: 0 }), []);
    assert.equal(result.result, "success");
    assert.deepEqual(
      sim.calls.filter((c) => c.startsWith("Logs ")),
      ["Logs 10.0.0.1", "Logs 10.0.0.2", "Logs 10.0.0.3"],
    );
    assert.ok(
      result.members.every((m) => m.blockedMs === 100),
      "blocked time from each feed",
    );
    assert.equal(sim.pendingTimers, 0, "no timer outlives the run");
  });

  it("a feed that breaks in the middle of a run: unknown until it is open again, and nothing starts meanwhile", async () => {
    const sim = cluster([5_000, 5_000, 5_000]);
    const origDefrag = sim.defragment.bind(sim);
    let broke = -1;
    sim.defragment = async (node, opts) => {
      await origDefrag(node, opts);
      if (node === "10.0.0.2") {
        // Member 3's stream breaks as the first defragment ends; it comes back 20 s later.
        sim.breakLog("10.0.0.3");
        broke = sim.now;
        sim.clock.after(20_000, () => sim.brokenLogs.delete("10.0.0.3"));
      }
    };
    const lines: string[] = [];
    const result = await runOn(sim, options({ pauseMs: 0 }), lines, {});
    assert.equal(result.result, "success", lines.join("\n"));
    assertNoOverlap(sim.windows);
    const next = sim.windows[1];
    assert.ok(
      next !== undefined && next[1] >= broke + 20_000,
      `the next member waited for the feed: ${JSON.stringify(sim.windows)}`,
    );
    assert.ok(sim.calls.filter((c) => c === "Logs 10.0.0.3").length >= 2, "opened again");
  });

  it("a feed that never opens: the run waits up to --max-wait, then refuses and touches nothing", async () => {
    const sim = cluster([5_000, 5_000, 5_000]);
    sim.brokenLogs.add("10.0.0.2");
    const lines: string[] = [];
    const result = await runOn(sim, options({ maxWaitMs: 60_000 }), lines);
    assert.equal(result.result, "refused");
    assert.equal(sim.windows.length, 0);
    assert.deepEqual(
      result.refusals.map((r) => [r.gate, r.node]),
      [["quiet", "10.0.0.2"]],
    );
    assert.match(
      result.error?.message ?? "",
      /cannot read etcd's log on 10\.0\.0\.2 \(Logs via sim: the connection broke/,
    );
    assert.ok(sim.now >= 60_000, "waited --max-wait first");
  });

  it("a defragment someone else starts on another member while the run waits between members is seen and waited for", async () => {
    const sim = cluster([5_000, 5_000, 5_000]);
    const origDefrag = sim.defragment.bind(sim);
    sim.defragment = async (node, opts) => {
      await origDefrag(node, opts);
      // During the pause after the first member, a person defragments the leader for 30 s.
      if (node === "10.0.0.2")
        sim.clock.after(500, () => {
          sim.startExternal("10.0.0.1", 30_000);
        });
    };
    const lines: string[] = [];
    const result = await runOn(sim, options({ pauseMs: 2_000 }), lines);
    assert.equal(result.result, "success", lines.join("\n"));
    assertNoOverlap(sim.windows);
    assert.ok(
      lines.some((l) =>
        /a defragment is already in progress on 10\.0\.0\.1 .*before starting 10\.0\.0\.3/.test(l),
      ),
    );
    // Said when the feed showed it (during the pause), not only when the next member was due.
    const said = lines.indexOf(
      "10.0.0.1: a defragment not started by this run began; no member is started until it ends",
    );
    const due = lines.findIndex((l) => /already in progress on 10\.0\.0\.1/.test(l));
    assert.ok(said >= 0 && said < due, lines.join("\n"));
  });

  it("a defragment someone begins between the quiet check and the gates' reading: the run waits and reads again, not refuses", async () => {
    // Like a second run that waited for the same defragment: the first moves on to its next member
    // while this one reads the statuses, and that member's status does not answer.
    const sim = cluster([5_000, 5_000, 5_000]);
    sim.startExternal("10.0.0.2", 10_000);
    const origStatus = sim.status.bind(sim);
    let begun = false;
    sim.status = async (node) => {
      // After the first reading (whose statuses waited for member 2), at the next reading.
      if (!begun && sim.now >= 10_000 && sim.calls.filter((c) => c.startsWith("EtcdStatus")).length >= 3) {
        begun = true;
        sim.startExternal("10.0.0.3", 30_000);
      }
      return origStatus(node);
    };
    const lines: string[] = [];
    const result = await runOn(sim, options(), lines);
    assert.equal(result.result, "success", lines.join("\n"));
    assert.ok(begun, "the other defragment began during a reading");
    assertNoOverlap(sim.windows);
  });

  it("a member defragmenting while its log tail holds no start line is not quiet until its status answers", async () => {
    const sim = cluster([5_000, 5_000, 5_000]);
    sim.unanchoredTails.add("10.0.0.3");
    // Someone else's defragment on member 3 began long before; its start is out of the tail.
    sim.startExternal("10.0.0.3", 40_000);
    const lines: string[] = [];
    const result = await runOn(sim, options(), lines);
    assert.equal(result.result, "success", lines.join("\n"));
    assertNoOverlap(sim.windows);
    const ours = sim.windows.slice(1);
    assert.ok(
      ours.every((w) => w[1] >= 40_000),
      JSON.stringify(sim.windows),
    );
  });
});

describe("upgrades and reboots (every node up and serving)", () => {
  const state = (stage: string) => ({ stage, working: false, ready: true, unmet: [] });

  it("a node UPGRADING before the run, for longer than --max-wait: waited for, told, then refused (gate lifecycle), nothing defragmented", async () => {
    const sim = cluster([1000, 1000, 1000]);
    const t0 = sim.clock.now();
    sim.lifecycleWindows.push(["10.0.0.2", t0, t0 + 3_600_000, state("UPGRADING")]);
    const lines: string[] = [];
    const result = await runOn(sim, options({ maxWaitMs: 60_000, heartbeatMs: 20_000 }), lines);
    assert.equal(result.result, "refused", lines.join("\n"));
    assert.deepEqual(
      result.refusals.map((r) => [r.gate, r.node]),
      [["lifecycle", "10.0.0.2"]],
    );
    assert.equal(sim.windows.length, 0, "nothing defragmented");
    assert.ok(
      lines.some((l) =>
        /^node 10\.0\.0\.2 is UPGRADING, not up and serving; waiting up to 1m0s before the first member/.test(
          l,
        ),
      ),
      lines.join("\n"),
    );
    assert.ok(
      lines.some((l) =>
        /^still waiting: node 10\.0\.0\.2 is UPGRADING, not up and serving \(waited 20\.\ds\)$/.test(l),
      ),
      lines.join("\n"),
    );
    assert.match(
      result.error?.message ?? "",
      /after waiting 1m0s; not starting the first member while it is$/,
    );
    assert.equal(
      result.error?.hint,
      "let the upgrade or reboot finish (talosctl -n 10.0.0.2 get machinestatus) and run again, or raise --max-wait",
    );
  });

  it("a node that starts REBOOTING between two members: the next member waits until it is up again", async () => {
    const sim = cluster([1000, 1000, 1000]);
    const t0 = sim.clock.now();
    // From just after the first member's defragment (1 s) until 30 s in.
    const reboot: [number, number] = [t0 + 1200, t0 + 30_000];
    sim.lifecycleWindows.push(["10.0.0.3", reboot[0], reboot[1], state("REBOOTING")]);
    const lines: string[] = [];
    const result = await runOn(sim, options({ maxWaitMs: 120_000 }), lines);
    assert.equal(result.result, "success", lines.join("\n"));
    assert.equal(sim.windows.length, 3);
    for (const [node, start, end] of sim.windows)
      assert.ok(
        end <= reboot[0] || start >= reboot[1],
        `${node} defragmented ${start}-${end} during the reboot`,
      );
    assert.ok(
      lines.some((l) => /^node 10\.0\.0\.3 is REBOOTING, not up and serving; waiting up to 2m0s/.test(l)),
    );
    assert.ok(lines.some((l) => /^every node is up and serving again, after \d/.test(l)));
  });

  it("a platform that does not report the lifecycle: said once per node, and the run goes on", async () => {
    const sim = cluster([100, 100, 100]);
    for (const n of ["10.0.0.1", "10.0.0.2", "10.0.0.3"]) sim.lifecycleUnsupported.add(n);
    const lines: string[] = [];
    const result = await runOn(sim, options(), lines);
    assert.equal(result.result, "success");
    const said = lines.filter((l) => /does not report its machine status: upgrades and reboots of/.test(l));
    assert.equal(said.length, 3, said.join("\n"));
  });

  it("a dry run says what a real run would wait for, and waits for nothing", async () => {
    const sim = cluster([100, 100, 100]);
    const t0 = sim.clock.now();
    sim.lifecycleWindows.push(["10.0.0.1", t0, t0 + 3_600_000, state("UPGRADING")]);
    const lines: string[] = [];
    const result = await runOn(sim, options({ dryRun: true }), lines);
    assert.equal(result.result, "dry-run");
    assert.ok(
      lines.some((l) =>
        /^node 10\.0\.0\.1 is UPGRADING, not up and serving: a real run would wait for it before the first member$/.test(
          l,
        ),
      ),
    );
    assert.ok(sim.clock.now() - t0 < 10_000, "no waiting");
  });
});

describe("room on the disk", () => {
  it("a member whose data filesystem cannot hold the copy is skipped with the reason (gate disk); the others are defragmented", async () => {
    const sim = cluster([100, 100, 100]);
    sim.diskAvailable.set("10.0.0.2", 50 * MiB); // 100 MiB in use: needs 174 MiB
    const lines: string[] = [];
    const result = await runOn(sim, options(), lines);
    assert.equal(result.result, "success", lines.join("\n"));
    const m2 = result.members.find((m) => m.node === "10.0.0.2");
    assert.ok(m2);
    assert.equal(m2.action, "skipped");
    assert.match(
      m2.reason,
      /^50\.0 MiB available on \/var\/lib\/etcd of 10\.0\.0\.2, and its defragment needs 174\.0 MiB there \(a copy of the 100\.0 MiB in use, plus 10% and 64 MiB\); free space on the EPHEMERAL volume/,
    );
    assert.deepEqual(
      result.refusals.map((r) => [r.gate, r.node]),
      [["disk", "10.0.0.2"]],
    );
    assert.deepEqual(sim.windows.map((w) => w[0]).sort(), ["10.0.0.1", "10.0.0.3"]);
  });

  it("a dry run shows the member a real run would skip for want of room, and changes nothing", async () => {
    const sim = cluster([100, 100, 100]);
    sim.diskAvailable.set("10.0.0.3", 10 * MiB);
    const lines: string[] = [];
    const result = await runOn(sim, options({ dryRun: true }), lines);
    assert.equal(result.result, "dry-run");
    assert.deepEqual(result.members.map((m) => [m.node, m.action]).sort(), [
      ["10.0.0.1", "would-defragment"],
      ["10.0.0.2", "would-defragment"],
      ["10.0.0.3", "skipped"],
    ]);
    assert.deepEqual(
      result.refusals.map((r) => [r.gate, r.node]),
      [["disk", "10.0.0.3"]],
    );
    assert.ok(
      lines.some((l) =>
        /^10\.0\.0\.3: a real run would skip it: 10\.0 MiB available on \/var\/lib\/etcd/.test(l),
      ),
    );
    assert.equal(sim.windows.length, 0);
  });

  it("a platform that does not report the space: said once per node, and the members are defragmented", async () => {
    const sim = cluster([100, 100, 100]);
    for (const n of ["10.0.0.1", "10.0.0.2", "10.0.0.3"]) sim.diskUnsupported.add(n);
    const lines: string[] = [];
    const result = await runOn(sim, options(), lines);
    assert.equal(result.result, "success");
    assert.equal(sim.windows.length, 3);
    assert.equal(lines.filter((l) => /does not report its free space: whether/.test(l)).length, 3);
  });
});

describe("not during an election", () => {
  it("a raft term that moved between two members: the next one waits until the cluster has been stable for --election-settle", async () => {
    const sim = cluster([1000, 1000, 1000]);
    const t0 = sim.clock.now();
    let electedAt = 0;
    sim.clock.after(1500, () => {
      sim.term += 1n;
      electedAt = sim.clock.now();
    });
    const lines: string[] = [];
    const result = await runOn(sim, options({ electionSettleMs: 30_000 }), lines);
    assert.equal(result.result, "success", lines.join("\n"));
    assert.ok(electedAt > t0);
    const after = sim.windows.filter((w) => w[1] >= electedAt);
    assert.equal(after.length, 2, "two members after the election");
    for (const w of after)
      assert.ok(w[1] >= electedAt + 30_000, `${w[0]} started ${w[1] - electedAt} ms after the election`);
    assert.ok(
      lines.some((l) =>
        /^a leader election \S+ ago \(between the run's readings\): waiting until the cluster has been stable for 30\.0s before 10\.0\.0\.\d$/.test(
          l,
        ),
      ),
      lines.join("\n"),
    );
  });

  it("elections that go on for --max-wait: the run stops (gate election) and starts no member meanwhile", async () => {
    const sim = cluster([1000, 1000, 1000]);
    // An election every second, from the first second on.
    sim.clock.every(1000, () => {
      sim.term += 1n;
    });
    const lines: string[] = [];
    const result = await runOn(sim, options({ electionSettleMs: 30_000, maxWaitMs: 60_000 }), lines);
    assert.equal(result.result, "failed", lines.join("\n"));
    assert.deepEqual(
      result.refusals.map((r) => r.gate),
      ["election"],
    );
    assert.match(result.error?.message ?? "", /^the cluster kept electing leaders for 1m0s/);
    assert.equal(sim.windows.length, 1, "the first member only (no election seen before it)");
  });

  it("--election-settle 0s waits for nothing", async () => {
    const sim = cluster([1000, 1000, 1000]);
    sim.clock.after(1500, () => {
      sim.term += 1n;
    });
    const lines: string[] = [];
    const result = await runOn(sim, options({ electionSettleMs: 0 }), lines);
    assert.equal(result.result, "success");
    assert.ok(!lines.some((l) => l.includes("leader election")));
  });
});
