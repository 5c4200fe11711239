// `status` through the real CLI against the harness: real etcd, real mTLS, real protobuf.

import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";

import { runCli } from "../harness/run-cli.js";
import { startHarness, type Harness } from "../harness/harness.js";

interface StatusRow {
  node: string;
  memberId?: string;
  name?: string;
  dbSize?: number;
  dbSizeInUse?: number;
  isLeader?: boolean;
  isLearner?: boolean;
  raftTerm?: number;
  raftIndex?: number;
  raftAppliedIndex?: number;
  alarms?: string[];
  errors?: string[];
  error?: string;
}

function parseStatus(stdout: string): StatusRow[] {
  return (JSON.parse(stdout) as { members: StatusRow[] }).members;
}

describe("status", () => {
  let h: Harness;
  let dir: string;
  let operatorConfig: string;
  let ids: Map<string, string>;

  before(async () => {
    h = await startHarness({ members: 3, workers: 1 });
    dir = mkdtempSync(join(tmpdir(), "status-test-"));
    operatorConfig = await h.writeTalosconfig({ roles: ["os:operator"], dir });
    const members = await h.etcd.members[0]!.client.memberList();
    ids = new Map(members.map((m) => [m.name, m.id.toString(16).padStart(16, "0")]));
  });

  after(async () => {
    await h.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("reads every member through a talosconfig file, discovering the nodes from the member list", async () => {
    const r = await runCli(["status", "--output", "json"], { env: { TALOSCONFIG: operatorConfig } });
    assert.equal(r.code, 0, r.stderr);
    const rows = parseStatus(r.stdout);
    assert.deepEqual(rows.map((x) => x.node).sort(), [...h.nodes].sort());
    for (const row of rows) {
      assert.equal(row.error, undefined);
      assert.match(row.memberId ?? "", /^[0-9a-f]{16}$/);
      assert.equal(ids.get(row.name ?? ""), row.memberId, "the member id matches etcd's own member list");
      assert.ok((row.dbSize ?? 0) > 0 && (row.dbSizeInUse ?? 0) > 0);
      assert.ok((row.raftTerm ?? 0) >= 1 && (row.raftIndex ?? 0) >= 1 && (row.raftAppliedIndex ?? 0) >= 1);
      assert.equal(row.isLearner, false);
      assert.deepEqual(row.alarms, []);
    }
    assert.equal(rows.filter((x) => x.isLeader).length, 1, "exactly one leader");
    const leaderIndex = await h.etcd.leaderIndex();
    assert.equal(rows.find((x) => x.isLeader)?.node, h.nodes[leaderIndex]);
    const calls = h.journal.filter((j) => j.via === "local" && j.method === "EtcdStatus");
    assert.deepEqual(
      calls.map((c) => c.server).sort(),
      [...h.nodes].sort(),
      "every status was served by the node itself (node metadata, one-to-one)",
    );
  });

  it("prints a table for people", async () => {
    const r = await runCli(["status"], { env: { TALOSCONFIG: operatorConfig } });
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.trimEnd().split("\n");
    assert.match(
      lines[0] ?? "",
      /^NODE\s+MEMBER\s+NAME\s+DB SIZE\s+IN USE\s+FREE\s+FRAG\s+LEADER\s+RAFT TERM/,
    );
    assert.equal(lines.length, 4);
    for (const node of h.nodes)
      assert.ok(
        lines.some((l) => l.startsWith(node)),
        node,
      );
    assert.match(r.stdout, /\d+\.\d (KiB|MiB)/, "sizes in IEC units");
    assert.equal(r.stdout.split("\n").filter((l) => /\s\*\s/.test(l)).length, 1, "one leader mark");
  });

  it("reads credentials from TALOS_CA/TALOS_CRT/TALOS_KEY and TALOS_ENDPOINTS without any file", async () => {
    const creds = await h.credentials(["os:operator"]);
    const r = await runCli(["status", "--output", "json"], {
      env: {
        TALOS_CA: creds.ca,
        TALOS_CRT: creds.crt,
        TALOS_KEY: creds.key,
        TALOS_ENDPOINTS: h.nodes.map((n) => `${n}:${h.apiPort}`).join(","),
      },
    });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(parseStatus(r.stdout).length, 3);
  });

  it("accepts raw PEM in the environment too", async () => {
    const creds = await h.credentials(["os:operator"]);
    const pem = (b64: string) => Buffer.from(b64, "base64").toString("utf8");
    const r = await runCli(["status", "--output", "json"], {
      env: {
        TALOS_CA: pem(creds.ca),
        TALOS_CRT: pem(creds.crt),
        TALOS_KEY: pem(creds.key),
        TALOS_ENDPOINTS: `${h.nodes[1]}:${h.apiPort}`,
      },
    });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(parseStatus(r.stdout).length, 3);
  });

  it("works with a reader certificate (status needs no more)", async () => {
    const reader = await h.writeTalosconfig({ roles: ["os:reader"], dir });
    const r = await runCli(["status", "--output", "json"], { env: { TALOSCONFIG: reader } });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(parseStatus(r.stdout).length, 3);
    assert.ok(h.journal.some((j) => j.via === "local" && j.roles.includes("os:reader")));
  });

  it("explicit -n/--nodes narrows the rows, and says which members of the member list are not shown", async () => {
    for (const argv of [
      ["status", "--output", "json", "--nodes", `${h.nodes[2]},${h.nodes[0]}`],
      ["status", "--output", "json", "-n", `${h.nodes[2]},${h.nodes[0]}`],
      // talosctl's habit: the node before the command.
      ["-n", `${h.nodes[2]},${h.nodes[0]}`, "status", "--output", "json"],
    ]) {
      const r = await runCli(argv, {
        env: { TALOSCONFIG: operatorConfig },
      });
      assert.equal(r.code, 0, r.stderr);
      const out = JSON.parse(r.stdout) as { members: StatusRow[]; membersNotShown: unknown[] };
      assert.deepEqual(
        out.members.map((x) => x.node),
        [h.nodes[2], h.nodes[0]],
      );
      assert.deepEqual(out.membersNotShown, [
        { memberId: ids.get("cp-2"), name: "cp-2", node: h.nodes[1], isLearner: false },
      ]);
      assert.match(
        r.stderr,
        new RegExp(
          `^\\S+ WARN +1 of the 3 etcd members not read: cp-2 \\(${h.nodes[1]!.replace(/\./g, "\\.")}\\); ` +
            "they are not among --nodes/TALOS_NODES \\(leave it unset to read every member\\)$",
          "m",
        ),
      );
    }
  });

  it("a context's nodes (talosctl config node) do not narrow the cluster: every member, and a log line", async () => {
    const withNodes = await h.writeTalosconfig({ roles: ["os:operator"], dir, nodes: [h.nodes[1]!] });
    const r = await runCli(["status", "--output", "json"], { env: { TALOSCONFIG: withNodes } });
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout) as { members: StatusRow[]; membersNotShown: unknown[] };
    assert.deepEqual(out.members.map((x) => x.node).sort(), [...h.nodes].sort());
    assert.deepEqual(out.membersNotShown, []);
    assert.match(
      r.stderr,
      new RegExp(
        `^\\S+ INFO +the context "\\S+" lists nodes ${h.nodes[1]!.replace(/\./g, "\\.")}: not used; the members come ` +
          "from the etcd member list \\(-n/--nodes or TALOS_NODES to choose nodes\\)$",
        "m",
      ),
    );
    assert.doesNotMatch(r.stderr, /WARN/);
    // And a dry run plans for every member instead of refusing for the ones it did not read.
    const dry = await runCli(["run", "--dry-run", "--output", "json"], { env: { TALOSCONFIG: withNodes } });
    assert.equal(dry.code, 0, dry.stderr);
    const plan = JSON.parse(dry.stdout) as { result: string; members: unknown[] };
    assert.equal(plan.result, "dry-run");
    assert.equal(plan.members.length, 3);
  });

  it("a worker node in --nodes is a row with a clear error, exit 1", async () => {
    const worker = h.workers[0]!;
    const r = await runCli(["status", "--output", "json", "--nodes", [...h.nodes, worker].join(",")], {
      env: { TALOSCONFIG: operatorConfig },
    });
    assert.equal(r.code, 1, r.stderr);
    const rows = parseStatus(r.stdout);
    assert.equal(rows.filter((x) => x.error === undefined).length, 3);
    const row = rows.find((x) => x.node === worker);
    assert.match(row?.error ?? "", /only available on control plane nodes.*list only control-plane nodes/);
  });

  it("pointed at etcd's own port (2379) instead of the Talos API: says it looks like etcd", async () => {
    const r = await runCli(["-e", `${h.nodes[0]!}:2379`, "status"], { env: { TALOSCONFIG: operatorConfig } });
    assert.equal(r.code, 1, r.stderr);
    assert.match(
      r.stderr,
      /this looks like etcd, not the Talos API \(port 2379 is etcd's own\) \(point the tool at the Talos API \(apid\): the control-plane node's address with port 50000/,
    );
  });

  it("a member whose etcd is stopped is a row with its error; the others are printed; exit 1", async () => {
    await h.etcd.stop(2);
    try {
      const r = await runCli(["status", "--output", "json"], { env: { TALOSCONFIG: operatorConfig } });
      assert.equal(r.code, 1, r.stderr);
      const rows = parseStatus(r.stdout);
      assert.equal(rows.length, 3, "discovery still works through the other members");
      const down = rows.find((x) => x.node === h.nodes[2]);
      assert.match(down?.error ?? "", new RegExp(`^node ${h.nodes[2]!.replace(/\./g, "\\.")}: `));
      assert.equal(rows.filter((x) => x.error === undefined && x.memberId !== undefined).length, 2);
      assert.match(r.stderr, /cannot read member status/);
    } finally {
      await h.etcd.restart(2);
      await h.etcd.waitHealthy();
    }
  });

  it("a hung member (etcd paused) does not hang the tool: its row times out, exit 1", async () => {
    h.etcd.pause(1);
    try {
      const started = Date.now();
      const r = await runCli(
        ["status", "--output", "json", "--call-timeout", "2s", "--nodes", h.nodes.join(",")],
        {
          env: { TALOSCONFIG: operatorConfig },
        },
      );
      assert.equal(r.code, 1, r.stderr);
      assert.ok(Date.now() - started < 20_000, "bounded by the call deadline");
      const row = parseStatus(r.stdout).find((x) => x.node === h.nodes[1]);
      assert.match(row?.error ?? "", /EtcdStatus did not answer in time/);
      // The member list still names it: its id is shown, not "-".
      assert.match(row?.memberId ?? "", /^[0-9a-f]{16}$/);
    } finally {
      h.etcd.resume(1);
      await h.etcd.waitHealthy();
    }
  });

  it("with the first endpoint's API server down, the other endpoints serve and only that node fails", async () => {
    const first = h.servers.get(h.nodes[0]!)!;
    await first.down();
    try {
      const r = await runCli(["status", "--output", "json"], { env: { TALOSCONFIG: operatorConfig } });
      assert.equal(r.code, 1, r.stderr);
      const rows = parseStatus(r.stdout);
      assert.equal(rows.length, 3);
      const row = rows.find((x) => x.node === h.nodes[0]);
      assert.match(row?.error ?? "", /cannot reach the node/);
      assert.equal(rows.filter((x) => x.error === undefined).length, 2);
      assert.match(r.stderr, new RegExp(`cannot reach endpoint ${h.nodes[0]!.replace(/\./g, "\\.")}`));
    } finally {
      await first.up();
    }
  });
});

describe("status and run on five members", () => {
  it("no listener leak warning (one AbortSignal across every call), every member shown", async () => {
    const h = await startHarness({ members: 5 });
    const dir = mkdtempSync(join(tmpdir(), "status5-test-"));
    try {
      const env = { TALOSCONFIG: await h.writeTalosconfig({ roles: ["os:operator"], dir }) };
      const status = await runCli(["status", "--output", "json"], { env });
      assert.equal(status.code, 0, status.stderr);
      assert.equal(parseStatus(status.stdout).length, 5);
      const dry = await runCli(["run", "--dry-run", "--output", "json", "--rule", "true"], { env });
      assert.equal(dry.code, 0, dry.stderr);
      for (const r of [status, dry]) assert.doesNotMatch(r.stderr, /MaxListenersExceededWarning/);
    } finally {
      await h.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
