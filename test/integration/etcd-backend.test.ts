// `run` and `status` with --backend etcd against real etcd members that serve clients over TLS and
// require client certificates (as kubeadm, k3s and RKE2 run etcd): the tool reaches each member at
// its own client URL. Who was blocked when is read from etcd's own log, the data from HashKV.

import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";

import { etcdVersion, startDirectEtcd, type DirectEtcd } from "../harness/direct-etcd.js";
import { STARTED, logSince, stopMidDefragment } from "../harness/hold-defrag.js";
import { runCli, startCli } from "../harness/run-cli.js";
import { TEST_RULE, parseSummary as summary, type Summary } from "../harness/run-summary.js";
import { MiB } from "../harness/units.js";
import { waitFor } from "../harness/wait.js";
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** No two windows overlap: one member blocked at a time. */
function assertOneAtATime(d: DirectEtcd, since: number): void {
  const w = d.windows(since).sort((a, b) => a.start - b.start);
  for (let i = 1; i < w.length; i += 1)
    assert.ok(
      w[i]!.start >= w[i - 1]!.end,
      `member ${w[i]!.member} started ${w[i - 1]!.end - w[i]!.start} ms before member ${w[i - 1]!.member} ended`,
    );
}

type Hashed = Summary & {
  hashCheck: { revision: string; before: number; outcome: string; after?: { hash: number } } | null;
  compactedTo: string | null;
};

describe("--backend etcd on a TLS cluster with client certificates", () => {
  let d: DirectEtcd;
  let version: string;

  before(async () => {
    d = await startDirectEtcd({ members: 3 });
    version = (await d.etcd.members[0]!.client.status()).version;
    await d.etcd.fragment({ targetDbBytes: 40 * MiB, liveFraction: 0.25 });
  });
  after(async () => {
    await d.close();
  });

  it("status reads every member at its own client URL, over mutual TLS", async () => {
    const r = await runCli(["status", ...d.args, "--output", "json"]);
    assert.equal(r.code, 0, r.stderr);
    const rows = (JSON.parse(r.stdout) as { members: { node: string }[] }).members;
    assert.deepEqual(rows.map((x) => x.node).sort(), d.etcd.members.map((m) => m.clientUrl).sort());
  });

  it("--dry-run plans the leader last and defragments nothing (etcd's log)", async () => {
    const since = Date.now();
    const r = await runCli(["run", ...d.args, "--dry-run", "--output", "json", "--rule", TEST_RULE]);
    assert.equal(r.code, 0, r.stderr);
    const s = summary(r.stdout);
    assert.equal(s.result, "dry-run");
    assert.deepEqual(
      s.members.map((m) => m.action),
      ["would-defragment", "would-defragment", "would-defragment"],
    );
    assert.equal(s.members.at(-1)?.isLeader, true);
    assert.equal(d.windows(since).length, 0);
  });

  it("defragments one member at a time, leadership moved to an already-defragmented member, the data checked by HashKV before and after", async () => {
    const leaderBefore = d.etcd.members[await d.etcd.leaderIndex()]!.clientUrl;
    const checksum = await d.etcd.checksum();
    const since = Date.now();
    const r = await runCli(["run", ...d.args, "--output", "json", "--rule", TEST_RULE, "--pause", "200ms"]);
    assert.equal(r.code, 0, r.stderr);
    const s = summary(r.stdout) as Hashed;
    assert.equal(s.result, "success");
    assert.deepEqual(
      s.members.map((m) => m.action),
      ["defragmented", "defragmented", "defragmented"],
    );
    for (const m of s.members) assert.ok(m.after!.dbSize < m.before!.dbSize * 0.6, `${m.node} shrank`);
    const last = s.members.at(-1)!;
    assert.equal(last.node, leaderBefore, "the leader last");
    // MoveLeader named its target: the first member, defragmented first.
    assert.equal(last.leadershipMovedTo, s.members[0]!.name);
    assert.equal(d.etcd.members[await d.etcd.leaderIndex()]!.name, s.members[0]!.name);
    assert.equal(d.windows(since).length, 3);
    assertOneAtATime(d, since);
    assert.equal(s.hashCheck?.outcome, "same");
    assert.equal(s.hashCheck.after?.hash, s.hashCheck.before);
    assert.deepEqual(await d.etcd.checksum(), checksum, "every key, value and the revision unchanged");
    // The quota from etcd's own Status on 3.6+, etcd's default with a warning before.
    if (/^3\.[6-9]/.test(version)) assert.ok(s.members.every((m) => m.quotaBytes === 2 * 1024 ** 3));
    else assert.match(r.stderr, /does not report its quota \(Status\.dbSizeQuota is etcd 3\.6\+\)/);
    assert.match(r.stderr, /data check: every member still hashes \d+ at revision \d+/);
  });

  it("nothing to do right after: no Defragment (etcd's log)", async () => {
    const since = Date.now();
    const r = await runCli(["run", ...d.args, "--output", "json", "--rule", TEST_RULE]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(summary(r.stdout).result, "nothing-to-do");
    assert.equal(d.windows(since).length, 0);
  });

  it("--compact compacts the history to the current revision before the plan, and says so", async () => {
    // History only: every key overwritten, so that only a compaction frees the old revisions.
    await d.etcd.fragment({ targetDbBytes: 24 * MiB, liveFraction: 0.25 });
    const since = Date.now();
    const r = await runCli([
      "run",
      ...d.args,
      "--compact",
      "--output",
      "json",
      "--rule",
      "true",
      "--pause",
      "0s",
    ]);
    assert.equal(r.code, 0, r.stderr);
    const s = summary(r.stdout) as Hashed;
    assert.match(s.compactedTo ?? "", /^\d+$/);
    assert.match(r.stdout, /"compactedTo"/);
    assert.match(r.stderr, new RegExp(`compacted etcd's history to revision ${s.compactedTo}`));
    assert.equal(d.windows(since).length, 3);
    assertOneAtATime(d, since);
    const text = await runCli(["run", ...d.args, "--compact", "--rule", "true", "--pause", "0s"]);
    assert.equal(text.code, 0, text.stderr);
    assert.match(text.stdout, /compacted: etcd's history to revision \d+ before the plan/);
  });

  it("a defragment someone else starts on another member is seen on its etcd_disk_defrag_inflight gauge and waited for", async () => {
    // Enough live data that member 1's defragment is still running for a while after it is let go.
    await d.etcd.fragment({ targetDbBytes: 120 * MiB, liveFraction: 0.5 });
    // Hold member 1 in a defragment of someone else's (etcdctl's), stopped mid-way.
    const held = await stopMidDefragment(d, [1], () => {
      void d.etcd.members[1]!.client.defragment().catch(() => undefined);
    });
    assert.equal(held, 1, "member 1 was stopped in the middle of its defragment");
    // A stopped etcd answers no /metrics either: let it run on, still defragmenting, slowly.
    const since = Date.now();
    const url = d.etcd.members[1]!.clientUrl;
    const cli = startCli(
      [
        ...["run", ...d.args, "--output", "json", "--rule", "true", "--pause", "0s"],
        ...["--call-timeout", "3s", "--heartbeat", "1s"],
      ],
      { timeoutMs: 120_000 },
    );
    const waiting = [`${url} to tell`, `the defragment on ${url}`, `in progress on ${url}`];
    await waitFor("the run to wait for member 1", () =>
      waiting.some((w) => cli.stderr().includes(w)) ? true : undefined,
    );
    d.etcd.resume(1);
    const r = await cli.done;
    assert.equal(r.code, 0, r.stderr);
    assertOneAtATime(d, since - 60_000);
    // Nothing of ours started before member 1's own defragment ended.
    const ours = d.windows(since).filter((w) => w.start >= since);
    const theirs = d.windows(since - 60_000).find((w) => w.member === 1 && w.start < since);
    assert.ok(theirs !== undefined, "member 1's held defragment is in its log");
    assert.ok(
      ours.every((w) => w.start >= theirs.end),
      "no member started before it ended",
    );
  });

  it("a defragment that outlives its call: the next member waits for the gauge to show it ended", async () => {
    await d.etcd.fragment({ targetDbBytes: 120 * MiB, liveFraction: 0.5 });
    const since = Date.now();
    const r = await runCli(
      [
        ...["run", ...d.args],
        "--output",
        "json",
        "--rule",
        "true",
        "--timeout",
        "50ms",
        "--pause",
        "0s",
        "--max-wait",
        "2m",
      ],
      { timeoutMs: 180_000 },
    );
    assert.equal(r.code, 0, r.stderr);
    const s = summary(r.stdout);
    assert.equal(s.result, "success");
    assert.ok(s.members.some((m) => m.notes.some((n) => /the defragment call ended with/.test(n))));
    assertOneAtATime(d, since);
  });
});

describe("--backend etcd: refusals and bad input change nothing", () => {
  let d: DirectEtcd;
  before(async () => {
    d = await startDirectEtcd({ members: 3 });
    await d.etcd.fragment({ targetDbBytes: 24 * MiB, liveFraction: 0.25 });
  });
  after(async () => {
    await d.close();
  });

  const cases: [string, (d: DirectEtcd) => Promise<string[]> | string[], RegExp][] = [
    [
      "no endpoints",
      () => ["--backend", "etcd"],
      /--backend etcd needs etcd's client URLs: --etcd-endpoints is not set/,
    ],
    [
      "--cert without --key",
      (x) => ["--backend", "etcd", "--etcd-endpoints", x.endpoints, "--cert", x.files.cert],
      /--cert is set but --key is not/,
    ],
    [
      "a CA file that holds no certificate",
      (x) => [...x.args.slice(0, 4), "--cacert", x.files.key, "--cert", x.files.cert, "--key", x.files.key],
      /--cacert .* holds no PEM certificate/,
    ],
    [
      "a key of another certificate",
      async (x) => {
        const other = await x.foreignCert();
        return [...x.args.slice(0, 6), "--cert", x.files.cert, "--key", other.key];
      },
      /--key .* does not belong to the certificate/,
    ],
    [
      "Talos's --nodes",
      (x) => [...x.args, "--nodes", "10.0.0.2"],
      /--nodes is for the Talos API, not --backend etcd/,
    ],
    [
      "--compact without --backend etcd",
      () => ["--compact", "--talosconfig", "/nonexistent"],
      /--compact needs --backend etcd/,
    ],
  ];
  for (const [name, args, message] of cases) {
    it(`${name}: exit 2 with what to do, nothing defragmented`, async () => {
      const since = Date.now();
      const r = await runCli(["run", ...(await args(d)), "--rule", "true"]);
      assert.equal(r.code, 2, r.stderr);
      assert.match(r.stderr, message);
      assert.equal(d.windows(since).length, 0);
    });
  }

  it("a client certificate of another CA: etcd rejects it, the run says so and defragments nothing", async () => {
    const other = await d.foreignCert();
    const since = Date.now();
    const r = await runCli([
      "run",
      ...d.args.slice(0, 6),
      "--cert",
      other.cert,
      "--key",
      other.key,
      "--rule",
      "true",
      "--call-timeout",
      "5s",
    ]);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /rejected our client certificate|cannot reach etcd/);
    assert.equal(d.windows(since).length, 0);
  });

  it("a CORRUPT alarm: refused, exit 3, nothing disarmed or defragmented", async () => {
    const c = d.etcd.members[0]!.client;
    const id = (await c.status()).memberId;
    await c.alarmActivate("CORRUPT", id);
    try {
      const since = Date.now();
      const r = await runCli(["run", ...d.args, "--output", "json", "--rule", "true"]);
      assert.equal(r.code, 3, r.stderr);
      assert.equal(summary(r.stdout).result, "refused");
      assert.equal(d.windows(since).length, 0);
      assert.equal((await c.alarmList()).length, 1, "the CORRUPT alarm is left as it was");
    } finally {
      await c.alarmDisarmAll();
    }
  });

  it("one member stopped: waited for up to --max-wait (its gauge cannot be read either), then refused, exit 3", async () => {
    await d.etcd.stop(2);
    try {
      const since = Date.now();
      const r = await runCli([
        ...["run", ...d.args, "--output", "json", "--rule", "true"],
        ...["--call-timeout", "3s", "--max-wait", "3s"],
      ]);
      assert.equal(r.code, 3, r.stderr);
      const s = summary(r.stdout);
      assert.equal(s.result, "refused");
      assert.ok(
        s.refusals.some((f) => f.node === d.etcd.members[2]!.clientUrl),
        JSON.stringify(s.refusals),
      );
      assert.equal(d.windows(since).length, 0);
    } finally {
      await d.etcd.restart(2);
      await d.etcd.waitHealthy();
    }
  });

  it("NOSPACE on a member: defragmented, then only NOSPACE disarmed (alarm by alarm), exit 0", async () => {
    const c = d.etcd.members[0]!.client;
    const ids = await Promise.all(d.etcd.members.map(async (m) => (await m.client.status()).memberId));
    await c.alarmActivate("NOSPACE", ids[1]!);
    const r = await runCli(["run", ...d.args, "--output", "json", "--pause", "0s", "--quota-bytes", "1GiB"]);
    assert.equal(r.code, 0, r.stderr);
    const s = summary(r.stdout);
    assert.equal(s.result, "success");
    assert.ok(s.alarmsDisarmed.length === 1 && s.alarmsDisarmed[0]!.startsWith("NOSPACE"));
    assert.deepEqual(await c.alarmList(), []);
  });

  it("the log file of a member shows the start of each defragment the run made", () => {
    // Guards the windows above: etcd logs its defragments where the tests read them.
    const text = logSince(d.etcd.members[0]!.logFile, 0);
    assert.ok(text.includes(STARTED));
    assert.ok(statSync(d.etcd.members[0]!.logFile).size > 0);
  });
});

// --listen-client-http-urls is etcd 3.5+ (so is every k3s and RKE2 etcd).
describe(
  "--backend etcd where the gauge is not on the client port (etcd as k3s and RKE2 run it)",
  {
    skip: etcdVersion().startsWith("3.4.") ? "etcd 3.4 serves HTTP on the client port only" : false,
  },
  () => {
    let d: DirectEtcd;
    before(async () => {
      d = await startDirectEtcd({ members: 3, httpApart: true });
    });
    after(async () => {
      await d.close();
    });

    it("refuse (the default): waits up to --max-wait, then refuses, exit 3, naming the gauge and the ways around; nothing defragmented", async () => {
      await d.etcd.fragment({ targetDbBytes: 24 * MiB, liveFraction: 0.25 });
      const since = Date.now();
      const r = await runCli([
        ...["run", ...d.args, "--output", "json", "--rule", "true"],
        "--max-wait",
        "3s",
      ]);
      assert.equal(r.code, 3, r.stderr);
      const s = summary(r.stdout);
      assert.equal(s.result, "refused");
      assert.ok(s.refusals.length === 3 && s.refusals.every((f) => f.gate === "quiet"));
      assert.match(r.stderr, /etcd_disk_defrag_inflight cannot be read at https:\/\/\S+:2379\/metrics/);
      assert.match(r.stderr, /--etcd-metrics-port .* or --without-defrag-gauge status-only/);
      assert.equal(d.windows(since).length, 0);
    });

    it("--etcd-metrics-port 2381 reads the gauge where etcd serves it: one member at a time, no warning", async () => {
      const since = Date.now();
      const r = await runCli([
        ...["run", ...d.args, "--output", "json", "--rule", "true", "--pause", "0s"],
        ...["--etcd-metrics-port", "2381"],
      ]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(summary(r.stdout).result, "success");
      assert.doesNotMatch(r.stderr, /cannot be read|status-only/);
      assert.equal(d.windows(since).length, 3);
      assertOneAtATime(d, since);
    });

    it("--without-defrag-gauge status-only: runs on each member's Status alone, and says what it cannot see", async () => {
      await d.etcd.fragment({ targetDbBytes: 24 * MiB, liveFraction: 0.25 });
      const since = Date.now();
      const r = await runCli([
        ...["run", ...d.args, "--output", "json", "--rule", "true", "--pause", "0s"],
        ...["--without-defrag-gauge", "status-only"],
      ]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(summary(r.stdout).result, "success");
      const said = r.stderr.split("\n").filter((l) => /one someone starts there later is not seen/.test(l));
      assert.equal(said.length, 3, "said once per member");
      assert.equal(d.windows(since).length, 3);
      assertOneAtATime(d, since);
    });

    it("a bad --etcd-metrics-port: exit 2 naming it", async () => {
      const r = await runCli(["run", ...d.args, "--etcd-metrics-port", "70000"]);
      assert.equal(r.code, 2, r.stderr);
      assert.match(r.stderr, /--etcd-metrics-port is "70000", not a port/);
    });
  },
);

describe("--backend etcd with etcd's auth enabled", () => {
  let d: DirectEtcd;
  before(async () => {
    d = await startDirectEtcd({ members: 3 });
    await d.etcd.fragment({ targetDbBytes: 24 * MiB, liveFraction: 0.25 });
    // etcdctl (Debian's etcd-client) as an operator turns auth on: root with the root role, and a
    // user "defrag" without it; with client certificates etcd takes the certificate's CN as the user.
    const ctl = (...args: string[]) =>
      execFileSync(
        "etcdctl",
        [
          ...["--endpoints", d.etcd.members[0]!.clientUrl, "--cacert", d.files.ca],
          ...["--cert", d.files.cert, "--key", d.files.key],
          ...args,
        ],
        { env: { ETCDCTL_API: "3", PATH: process.env.PATH ?? "" }, stdio: "pipe" },
      );
    ctl("user", "add", "root:unused", "--interactive=false");
    ctl("role", "add", "root");
    ctl("user", "grant-role", "root", "root");
    ctl("user", "add", "defrag:unused", "--interactive=false");
    ctl("auth", "enable");
  });
  after(async () => {
    await d.close();
  });

  it("a certificate of a user without the root role: refused before anything (gate permission), naming the call and what it needs", async () => {
    const c = await d.pki.clientCert({ cn: "defrag" });
    const dir = mkdtempSync(join(tmpdir(), "etcd-auth-"));
    try {
      writeFileSync(join(dir, "defrag.crt"), c.certPem);
      writeFileSync(join(dir, "defrag.key"), c.keyPem, { mode: 0o600 });
      const since = Date.now();
      const r = await runCli([
        ...["run", ...d.args.slice(0, 6), "--output", "json", "--rule", "true"],
        ...["--cert", join(dir, "defrag.crt"), "--key", join(dir, "defrag.key")],
      ]);
      assert.equal(r.code, 3, r.stderr);
      const s = summary(r.stdout);
      assert.equal(s.result, "refused");
      assert.deepEqual([...new Set(s.refusals.map((f) => f.gate))], ["permission"]);
      assert.match(
        r.stderr,
        /etcd denied HashKV at https:\/\/\S+: (etcdserver|auth): permission denied .*root role/,
      );
      assert.equal(d.windows(since).length, 0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("root's certificate defragments, one member at a time", async () => {
    const since = Date.now();
    const r = await runCli(["run", ...d.args, "--output", "json", "--rule", "true", "--pause", "0s"]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(summary(r.stdout).result, "success");
    assert.equal(d.windows(since).length, 3);
    assertOneAtATime(d, since);
  });
});
