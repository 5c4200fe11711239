// The run's live view of etcd's logs, on real etcd behind the Talos API test server: one feed per
// member for the whole run, what happens when one breaks or never opens, a defragment someone else
// starts while the run waits between members, and a member in the middle of a defragment whose
// log tail no longer holds its start (the second signal: etcd answers no Status meanwhile).

import assert from "node:assert/strict";
import { appendFileSync, mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";

import { Code } from "@connectrpc/connect";

import { maxOverlap } from "../../bench/report.js";
import { startHarness, type Harness } from "../harness/harness.js";
import { ENDED, logSince, STARTED, stopMidDefragment, windows } from "../harness/hold-defrag.js";
import { runCli, startCli } from "../harness/run-cli.js";
import { defrags, nextSeq, parseSummary as summary } from "../harness/run-summary.js";
import { MiB } from "../harness/units.js";
import { waitFor } from "../harness/wait.js";

const RUN = ["run", "--output", "json", "--rule", "true", "--log-format", "json"];

/** What a busy etcd logs while blocked, as many lines as a tail reads back and more. */
function noise(file: string, lines: number): void {
  const ts = new Date().toISOString().replace("Z", "000Z");
  const line = JSON.stringify({
    level: "warn",
    ts,
    caller: "etcdserver/util.go:170",
    msg: "apply request took too long",
    took: "1.2s",
    expected: "100ms",
  });
  appendFileSync(file, `${line}\n`.repeat(lines));
}

describe("the live view of etcd's logs", () => {
  let h: Harness;
  let dir: string;
  let env: Record<string, string>;

  before(async () => {
    h = await startHarness({ members: 3 });
    dir = mkdtempSync(join(tmpdir(), "live-view-test-"));
    env = { TALOSCONFIG: await h.writeTalosconfig({ roles: ["os:operator"], dir }) };
  });

  after(async () => {
    for (const [i, m] of h.etcd.members.entries()) if (m.state === "paused") h.etcd.resume(i);
    await h.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("etcd answers no Status while it defragments: the second signal", async () => {
    // Proven on the etcd under test: a Status sent while the member defragments has no answer
    // until the defragment ends.
    let proven = false;
    for (let attempt = 0; attempt < 3 && !proven; attempt += 1) {
      await h.etcd.fragment({ targetDbBytes: 256 * MiB, liveFraction: 0.3 });
      const m = h.etcd.members[1]!;
      const offset = statSync(m.logFile).size;
      const defrag = m.client.defragment();
      await waitFor("etcd to log the defragment's start", () =>
        logSince(m.logFile, offset).includes(STARTED) ? true : undefined,
      );
      if (ENDED.test(logSince(m.logFile, offset))) {
        await defrag;
        continue; // quicker than the question: try again with more data
      }
      const answered = await m.client
        .status(AbortSignal.timeout(300))
        .then(() => "answered")
        .catch(() => "no answer");
      // An answer is inconclusive only if the defragment had ended by then.
      const endedBy = ENDED.test(logSince(m.logFile, offset));
      await defrag;
      if (answered === "answered" && endedBy) continue;
      assert.equal(answered, "no answer", "a Status while the member defragments");
      await m.client.status(AbortSignal.timeout(5000));
      proven = true;
    }
    assert.ok(proven, "a defragment long enough to ask during it");
  });

  it("a member in the middle of a defragment whose log tail holds no start line is waited for, not taken as quiet", async () => {
    const leader = await h.etcd.leaderIndex();
    const follower = [0, 1, 2].find((i) => i !== leader)!;
    let stopped: number | undefined;
    await h.etcd.deleteAllAndCompact();
    for (let attempt = 0; attempt < 5 && stopped === undefined; attempt += 1) {
      await h.etcd.fragment({ targetDbBytes: 96 * MiB, liveFraction: 0.5 });
      stopped = await stopMidDefragment(h, [follower], () => {
        h.etcd.members[follower]!.client.defragment().catch(() => undefined);
      });
    }
    assert.equal(stopped, follower, "the defragment was caught in progress");
    // A busy member logs more while blocked than the run reads back: the start is out of the tail.
    noise(h.etcd.members[follower]!.logFile, 800);
    const t0 = Date.now();
    const since = nextSeq(h);
    const node = h.nodes[follower]!;
    // A short call timeout: every status of the blocked member fails while it is blocked.
    const run = startCli([...RUN, "--pause", "0s", "--call-timeout", "1s", "--heartbeat", "1s"], { env });
    try {
      await waitFor("the run to say it cannot tell yet", () =>
        run.stderr().includes(`still waiting for ${node} to tell`) ? true : undefined,
      );
      assert.equal(defrags(h.journal, since).length, 0, "nothing started while the member was blocked");
    } finally {
      h.etcd.resume(follower);
    }
    const r = await run.done;
    assert.equal(r.code, 0, r.stderr);
    const w = windows(h, t0 - 60_000);
    assert.equal(maxOverlap(w), 1, `at most one member blocked at a time: ${JSON.stringify(w)}`);
  });

  it("a defragment someone else starts on another member while the run waits between members is seen and waited for", async () => {
    await h.etcd.deleteAllAndCompact();
    await h.etcd.fragment({ targetDbBytes: 48 * MiB, liveFraction: 0.5 });
    const t0 = Date.now();
    const run = startCli([...RUN, "--pause", "4s"], { env });
    let held: number | undefined;
    try {
      await waitFor("the first member to be done", () =>
        /"msg":"[^"]*: defragmented in/.test(run.stderr()) ? true : undefined,
      );
      const first = /"msg":"([^":]*): defragmented in/.exec(run.stderr())?.[1];
      const other = h.nodes.findIndex((n) => n !== first);
      held = await stopMidDefragment(h, [other], () => {
        h.etcd.members[other]!.client.defragment().catch(() => undefined);
      });
      assert.equal(held, other, "the other defragment was caught in progress");
      const node = h.nodes[other]!;
      await waitFor("the run to say it saw the other defragment begin", () =>
        run.stderr().includes(`"msg":"${node}: a defragment not started by this run began`)
          ? true
          : undefined,
      );
      await waitFor("the run to say it waits", () =>
        run
          .stderr()
          .includes(`a defragment is already in progress on ${node} (a defragment call not made by this run`)
          ? true
          : undefined,
      );
    } finally {
      if (held !== undefined) h.etcd.resume(held);
    }
    const r = await run.done;
    assert.equal(r.code, 0, r.stderr);
    const w = windows(h, t0);
    assert.equal(maxOverlap(w), 1, `at most one member blocked at a time: ${JSON.stringify(w)}`);
  });

  it("a log stream that breaks in the middle of a run: the run waits until it is open again, then goes on", async () => {
    await h.etcd.deleteAllAndCompact();
    await h.etcd.fragment({ targetDbBytes: 48 * MiB, liveFraction: 0.5 });
    const t0 = Date.now();
    const run = startCli([...RUN, "--pause", "1s", "--heartbeat", "1s"], { env });
    let broken: string | undefined;
    // Journal positions: when the stream broke, when it could be opened again.
    const seq = { broke: 0, back: 0 };
    try {
      await waitFor("the first member to be done", () =>
        /"msg":"[^"]*: defragmented in/.test(run.stderr()) ? true : undefined,
      );
      const first = /"msg":"([^":]*): defragmented in/.exec(run.stderr())?.[1];
      broken = h.nodes.find((n) => n !== first)!;
      const server = h.servers.get(broken)!;
      // It breaks, and cannot be opened again until the run has said it waits for it.
      server.failAlways("Logs", Code.Unavailable, "log reader closed");
      seq.broke = nextSeq(h);
      assert.ok(server.breakLogStreams(Code.Unavailable, "log reader closed") >= 1, "a stream was open");
      const node = broken;
      await waitFor("the run to say it waits for the broken feed", () =>
        run.stderr().includes(`still waiting for ${node} to tell (cannot read etcd's log`) ? true : undefined,
      );
    } finally {
      seq.back = nextSeq(h);
      if (broken !== undefined) h.servers.get(broken)!.clearFailure("Logs");
    }
    const r = await run.done;
    assert.equal(r.code, 0, r.stderr);
    const during = defrags(h.journal, seq.broke).filter((d) => d.seq < seq.back);
    // The member defragmenting when it broke may have been under way already; nothing after it.
    assert.ok(during.length <= 1, `nothing started while the stream was broken: ${JSON.stringify(during)}`);
    assert.ok(defrags(h.journal, seq.back).length >= 1, "the rest of the run went on once it was back");
    assert.equal(maxOverlap(windows(h, t0)), 1);
  });

  it("--min-interval: a run right after a successful one defragments nothing, by etcd's own log; 0s defragments again", async () => {
    // The tests before defragmented these members within the hour: the first run does it regardless.
    const first = await runCli([...RUN, "--min-interval", "0s"], { env });
    assert.equal(first.code, 0, first.stderr);
    assert.equal(summary(first.stdout).result, "success");
    const since = nextSeq(h);
    // A second run by hand, as an operator would start one right after the schedule's.
    const second = await runCli([...RUN, "--min-interval", "1h"], { env });
    assert.equal(second.code, 0, second.stderr);
    const s = summary(second.stdout);
    assert.equal(s.result, "nothing-to-do");
    assert.deepEqual(
      s.members.map((m) => m.action),
      ["skipped", "skipped", "skipped"],
    );
    for (const m of s.members) {
      assert.match(
        m.reason,
        /, defragmented \d\S* ago \(its etcd log\), less than --min-interval 1h0m: skipped whatever the rule says$/,
      );
    }
    assert.equal(defrags(h.journal, since).length, 0, "no Defragment call");
    const third = await runCli([...RUN, "--min-interval", "0s"], { env });
    assert.equal(third.code, 0, third.stderr);
    assert.equal(summary(third.stdout).result, "success");
    assert.equal(defrags(h.journal, since).length, 3);
  });

  it("a log stream that never opens: the run waits up to --max-wait, then refuses (exit 3) and touches nothing", async () => {
    const since = nextSeq(h);
    const node = h.nodes[2]!;
    const server = h.servers.get(node)!;
    server.failAlways("Logs", Code.Unavailable, "log reader closed");
    let r;
    try {
      r = await runCli([...RUN, "--max-wait", "3s"], { env });
    } finally {
      server.clearFailure("Logs");
    }
    assert.equal(r.code, 3, r.stderr);
    const s = summary(r.stdout);
    assert.equal(s.result, "refused");
    assert.deepEqual(
      s.refusals.map((f) => [f.gate, f.node]),
      [["quiet", node]],
    );
    assert.match(s.error ?? "", /cannot read etcd's log on .*log reader closed/);
    assert.equal(defrags(h.journal, since).length, 0);
  });
});
