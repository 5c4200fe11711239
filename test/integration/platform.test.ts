// The platform around etcd, with real etcd behind the Talos API test server: upgrades and reboots (it
// serves each node's machine status, `talosctl get machinestatus`, as Talos does: RUNNING and ready, or
// a stage a test sets; Talos reports ready in every stage but BOOTING and RUNNING, so the stage is what
// counts) and the room on a member's data filesystem (Statfs, `talosctl df`: the real filesystem, or
// the available bytes a test sets).

import assert from "node:assert/strict";
import { appendFileSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";

import { RuntimeMachineStage } from "../../src/talos/gen/resource/enums_pb.js";
import { startHarness, type Harness } from "../harness/harness.js";
import { runCli, startCli } from "../harness/run-cli.js";
import { defrags, nextSeq, parseSummary } from "../harness/run-summary.js";
import { waitFor } from "../harness/wait.js";

const RUN = ["run", "--output", "json", "--rule", "true"];
const RUNNING = RuntimeMachineStage.MACHINE_STAGE_RUNNING;
const esc = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

describe("the platform: every node up and serving, room on the disk", () => {
  let h: Harness;
  let dir: string;
  let env: Record<string, string>;
  const server = (i: number) => h.servers.get(h.nodes[i]!)!;

  before(async () => {
    h = await startHarness({ members: 3 });
    dir = mkdtempSync(join(tmpdir(), "lifecycle-test-"));
    env = { TALOSCONFIG: await h.writeTalosconfig({ roles: ["os:operator"], dir }) };
  });

  after(async () => {
    for (const s of h.servers.values()) {
      s.setStage(RUNNING);
      s.servesMachineStatus = true;
      s.servesStatfs = true;
      s.diskAvailableBytes = undefined;
    }
    await h.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("a node UPGRADING before the run: waited for up to --max-wait, told, then exit 3 (gate lifecycle), nothing defragmented", async () => {
    server(1).setStage(RuntimeMachineStage.MACHINE_STAGE_UPGRADING);
    try {
      const since = nextSeq(h);
      const r = await runCli([...RUN, "--max-wait", "3s", "--heartbeat", "1s"], { env });
      assert.equal(r.code, 3, r.stderr);
      const s = parseSummary(r.stdout);
      assert.equal(s.result, "refused");
      assert.deepEqual(
        s.refusals.map((f) => [f.gate, f.node]),
        [["lifecycle", h.nodes[1]]],
      );
      const node = esc(h.nodes[1]!);
      assert.match(
        r.stderr,
        new RegExp(
          `node ${node} is UPGRADING, not up and serving; waiting up to 3\\.0s before the first member`,
        ),
      );
      assert.match(r.stderr, new RegExp(`still waiting: node ${node} is UPGRADING`));
      assert.match(r.stderr, new RegExp(`talosctl -n ${node} get machinestatus`));
      assert.equal(defrags(h.journal, since).length, 0, "nothing defragmented");
    } finally {
      server(1).setStage(RUNNING);
    }
  });

  it("a node that starts REBOOTING between two members: no member is defragmented until it is up again", async () => {
    const since = nextSeq(h);
    const run = startCli([...RUN, "--pause", "1s", "--max-wait", "1m"], { env });
    // The first member's defragment done: the node of a member not yet defragmented starts rebooting.
    const first = await waitFor(
      "the first defragment to end",
      () => defrags(h.journal, since).find((d) => d.end > 0),
      { timeoutMs: 60_000 },
    );
    const rebooting = h.nodes.findIndex((n) => n !== first.target && n !== first.server);
    server(rebooting).setStage(RuntimeMachineStage.MACHINE_STAGE_REBOOTING);
    const rebootStart = Date.now();
    await waitFor(
      "the run to say it waits",
      () => (/is REBOOTING, not up and serving; waiting/.test(run.stderr()) ? true : undefined),
      {
        timeoutMs: 30_000,
      },
    );
    const startedDuring = defrags(h.journal, since).length;
    server(rebooting).setStage(RUNNING);
    const rebootEnd = Date.now();
    const r = await run.done;
    assert.equal(r.code, 0, r.stderr);
    assert.equal(parseSummary(r.stdout).result, "success");
    assert.equal(startedDuring, 1, "only the first member was defragmented before the reboot ended");
    for (const d of defrags(h.journal, since))
      assert.ok(
        d.start < rebootStart || d.start >= rebootEnd,
        `a defragment started during the reboot: ${JSON.stringify(d)}`,
      );
    assert.equal(defrags(h.journal, since).length, 3);
    assert.match(r.stderr, /every node is up and serving again, after/);
  });

  it("a Talos that does not serve the machine status: said once per node, and the run goes on", async () => {
    for (const s of h.servers.values()) s.servesMachineStatus = false;
    try {
      const r = await runCli([...RUN, "--pause", "0s"], { env });
      assert.equal(r.code, 0, r.stderr);
      assert.equal(parseSummary(r.stdout).result, "success");
      for (const n of h.nodes) {
        const said = r.stderr
          .split("\n")
          .filter((l) => l.includes(`upgrades and reboots of ${n} cannot be seen`));
        assert.equal(said.length, 1, r.stderr);
      }
    } finally {
      for (const s of h.servers.values()) s.servesMachineStatus = true;
    }
  });

  it("a member whose data filesystem is too small for the copy: skipped with the reason (gate disk), the others defragmented", async () => {
    const small = h.nodes[1]!;
    server(1).diskAvailableBytes = 8 * 1024 * 1024;
    try {
      const since = nextSeq(h);
      const r = await runCli([...RUN, "--pause", "0s"], { env });
      assert.equal(r.code, 0, r.stderr);
      const s = parseSummary(r.stdout);
      assert.equal(s.result, "success");
      const m = s.members.find((x) => x.node === small);
      assert.ok(m);
      assert.equal(m.action, "skipped");
      assert.match(
        m.reason,
        new RegExp(
          `^8\\.0 MiB available on /var/lib/etcd of ${esc(small)}, and its defragment needs \\S+ MiB there \\(a copy of the \\S+ \\S+ in use, plus 10% and 64 MiB\\); free space on the EPHEMERAL volume`,
        ),
      );
      assert.deepEqual(
        s.refusals.map((f) => [f.gate, f.node]),
        [["disk", small]],
      );
      const done = defrags(h.journal, since);
      assert.deepEqual(done.map((d) => d.server).sort(), h.nodes.filter((n) => n !== small).sort());
    } finally {
      server(1).diskAvailableBytes = undefined;
    }
  });

  it("a Talos without Statfs (1.14 and older): said once per node, and every member is defragmented", async () => {
    for (const s of h.servers.values()) s.servesStatfs = false;
    try {
      const since = nextSeq(h);
      const r = await runCli([...RUN, "--pause", "0s"], { env });
      assert.equal(r.code, 0, r.stderr);
      assert.equal(parseSummary(r.stdout).result, "success");
      assert.equal(defrags(h.journal, since).length, 3);
      for (const n of h.nodes) {
        const said = r.stderr
          .split("\n")
          .filter((l) => l.includes(`whether ${n} has room for its defragment's copy cannot be checked`));
        assert.equal(said.length, 1, r.stderr);
      }
    } finally {
      for (const s of h.servers.values()) s.servesStatfs = true;
    }
  });

  it("a leader change during the run (etcd's MoveLeader): the next member waits until the cluster has been stable for --election-settle", async () => {
    const since = nextSeq(h);
    // The election comes during the 3 s pause after the first member; the settle time outlasts it.
    const run = startCli([...RUN, "--pause", "3s", "--election-settle", "4s", "--move-leader", "never"], {
      env,
    });
    await waitFor("the first defragment to end", () => defrags(h.journal, since).find((d) => d.end > 0), {
      timeoutMs: 60_000,
    });
    // An election by etcd itself: leadership moved to another member.
    const leader = await h.etcd.leaderIndex();
    const to = h.etcd.members[(leader + 1) % 3]!;
    await h.etcd.members[leader]!.client.moveLeader((await to.client.status()).memberId);
    const electedBy = Date.now();
    const r = await run.done;
    assert.equal(r.code, 0, r.stderr);
    assert.equal(parseSummary(r.stdout).result, "success");
    assert.match(
      r.stderr,
      /a leader election \S+ ago \((in the etcd log of \S+|between the run's readings)\): waiting until the cluster has been stable for 4\.0s/,
    );
    const all = defrags(h.journal, since);
    assert.equal(all.length, 3);
    // Every member after the first started at least the settle time after the election (etcd logged it
    // before MoveLeader returned: a little earlier than electedBy); without the wait, the pause's 3 s.
    for (const d of all.slice(1))
      assert.ok(
        d.start >= electedBy + 4000 - 500,
        `started ${Math.round(d.start - electedBy)} ms after the election`,
      );
  });

  it("an election only in a member's etcd log (raft's own line, appended as etcd writes it): the next member waits for --election-settle", async () => {
    const since = nextSeq(h);
    const run = startCli([...RUN, "--pause", "3s", "--election-settle", "4s"], { env });
    const first = await waitFor(
      "the first defragment to end",
      () => defrags(h.journal, since).find((d) => d.end > 0),
      {
        timeoutMs: 60_000,
      },
    );
    // During the pause, a member that was not defragmented logs a leader change (no term moved: only the log says it).
    const i = h.nodes.findIndex((n) => n !== first.server);
    const ts = new Date().toISOString().replace("Z", "000Z");
    appendFileSync(
      h.etcd.members[i]!.logFile,
      `${JSON.stringify({ level: "info", ts, logger: "raft", caller: "v3@v3.6.0/node.go:370", msg: "raft.node: 8e9e05c52164694d elected leader 91bc3c398fb3c146 at term 7" })}\n`,
    );
    const loggedAt = Date.now();
    const r = await run.done;
    assert.equal(r.code, 0, r.stderr);
    assert.match(
      r.stderr,
      new RegExp(
        `a leader election \\S+ ago \\(in the etcd log of ${esc(h.nodes[i]!)}\\): waiting until the cluster has been stable for 4\\.0s`,
      ),
    );
    for (const d of defrags(h.journal, since).slice(1))
      assert.ok(
        d.start >= loggedAt + 4000 - 500,
        `started ${Math.round(d.start - loggedAt)} ms after the logged election`,
      );
  });
});
