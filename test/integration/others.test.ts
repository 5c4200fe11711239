// Never two members blocked, whoever else is defragmenting (issue: other runs, people,
// etcd itself). Real etcd; the truth about who was blocked when is etcd's own log.
// A defragment is held in progress by stopping its member (SIGSTOP) the moment etcd
// logs that it started, and let go once the run has said it is waiting.

import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";

import { Code } from "@connectrpc/connect";

import { maxOverlap } from "../../bench/report.js";
import { startHarness, type Harness } from "../harness/harness.js";
import { stopMidDefragment, windows } from "../harness/hold-defrag.js";
import { runCli, startCli } from "../harness/run-cli.js";
import { TEST_RULE, defrags, nextSeq, parseSummary as summary } from "../harness/run-summary.js";
import { MiB } from "../harness/units.js";
import { waitFor } from "../harness/wait.js";

describe("other defragments", () => {
  let h: Harness;
  let dir: string;
  let env: Record<string, string>;

  before(async () => {
    h = await startHarness({ members: 3 });
    dir = mkdtempSync(join(tmpdir(), "others-test-"));
    env = { TALOSCONFIG: await h.writeTalosconfig({ roles: ["os:operator"], dir }) };
  });

  after(async () => {
    for (const [i, m] of h.etcd.members.entries()) if (m.state === "paused") h.etcd.resume(i);
    await h.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("a defragment started by hand (talosctl-style) before the run is waited for; never two members at once", async () => {
    const leader = await h.etcd.leaderIndex();
    const follower = [0, 1, 2].find((i) => i !== leader)!;
    let stopped: number | undefined;
    const t0 = Date.now();
    for (let attempt = 0; attempt < 5 && stopped === undefined; attempt += 1) {
      await h.etcd.fragment({ targetDbBytes: 96 * MiB, liveFraction: 0.5 });
      stopped = await stopMidDefragment(h, [follower], () => {
        // What `talosctl -n <node> etcd defrag` makes machined do: Defragment on the member.
        h.etcd.members[follower]!.client.defragment().catch(() => undefined);
      });
    }
    assert.equal(stopped, follower, "the hand-started defragment was caught in progress");
    const node = h.nodes[follower]!;
    const run = startCli(
      ["run", "--output", "json", "--rule", "true", "--pause", "0s", "--call-timeout", "3s"],
      {
        env,
      },
    );
    try {
      await waitFor("the run to say it waits", () =>
        new RegExp(
          `a defragment is already in progress on ${node.replaceAll(".", "\\.")} \\(a defragment call not made by this run`,
        ).test(run.stderr())
          ? true
          : undefined,
      );
      assert.equal(defrags(h.journal, 0).filter((d) => d.start >= t0).length, 0, "nothing started meanwhile");
    } finally {
      h.etcd.resume(follower);
    }
    const r = await run.done;
    assert.equal(r.code, 0, r.stderr);
    const s = summary(r.stdout);
    assert.equal(s.result, "success");
    const w = windows(h, t0);
    assert.ok(w.length >= 4, `the hand-started one and the run's three: ${JSON.stringify(w)}`);
    assert.equal(maxOverlap(w), 1, `at most one member blocked at a time: ${JSON.stringify(w)}`);
    for (const m of s.members) {
      assert.ok(m.blockedMs !== null && m.blockedMs > 0, `${m.node}: etcd's own blocked time`);
      assert.ok(m.blockedMs <= (m.durationMs ?? 0) + 50, `${m.node}: blocked within the call's duration`);
    }
  });

  it("a second run started during the first's defragment waits, and never blocks a second member", async () => {
    let stopped: number | undefined;
    let first: ReturnType<typeof startCli> | undefined;
    const t0 = Date.now();
    for (let attempt = 0; attempt < 5 && stopped === undefined; attempt += 1) {
      if (first !== undefined) await first.done;
      await h.etcd.fragment({ targetDbBytes: 96 * MiB, liveFraction: 0.5 });
      stopped = await stopMidDefragment(h, [0, 1, 2], () => {
        first = startCli(["run", "--output", "json", "--rule", TEST_RULE, "--pause", "0s"], { env });
      });
    }
    assert.ok(
      stopped !== undefined && first !== undefined,
      "the first run's defragment was caught in progress",
    );
    const node = h.nodes[stopped]!;
    const second = startCli(
      ["run", "--output", "json", "--rule", TEST_RULE, "--pause", "0s", "--call-timeout", "3s"],
      { env },
    );
    try {
      await waitFor("the second run to say it waits", () =>
        second
          .stderr()
          .includes(`a defragment is already in progress on ${node} (a defragment call not made by this run`)
          ? true
          : undefined,
      );
    } finally {
      h.etcd.resume(stopped);
    }
    const [a, b] = await Promise.all([first.done, second.done]);
    assert.equal(a.code, 0, a.stderr);
    assert.equal(b.code, 0, b.stderr);
    const w = windows(h, t0);
    assert.equal(maxOverlap(w), 1, `at most one member blocked at a time: ${JSON.stringify(w)}`);
  });

  it("a log that cannot be read is a refusal (exit 3), not a guess: nothing defragmented", async () => {
    const since = nextSeq(h);
    h.servers.get(h.nodes[2]!)!.failNext("Logs", Code.PermissionDenied, "not authorized");
    const r = await runCli(["run", "--output", "json", "--rule", "true"], { env });
    assert.equal(r.code, 3, r.stderr);
    const s = summary(r.stdout);
    assert.equal(s.result, "refused");
    assert.deepEqual(
      s.refusals.map((f) => [f.gate, f.node]),
      [["quiet", h.nodes[2]]],
    );
    assert.match(
      s.error ?? "",
      new RegExp(`cannot read etcd's log on ${h.nodes[2]!.replaceAll(".", "\\.")} \\(Logs was denied`),
    );
    assert.equal(defrags(h.journal, since).length, 0);
  });
});
