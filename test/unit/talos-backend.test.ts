// The Talos backend keeps Talos's limits to itself: members addressed by their
// peer-URL host, alarms read through whichever node can, all-or-nothing disarm
// checked just before, and the certificate's roles as permissions.

import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { create } from "@bufbuild/protobuf";

import { DefragError } from "../../src/core/errors.js";
import type { MemberAlarm } from "../../src/core/model.js";
import { TalosBackend, type TalosCalls } from "../../src/talos/backend.js";
import { EtcdMemberSchema, EtcdMemberStatusSchema } from "../../src/talos/gen/machine/machine_pb.js";

/** A fake of the client's calls: records through which node each is made. */
class FakeTalos implements TalosCalls {
  readonly calls: string[] = [];
  alarmList: MemberAlarm[] = [];
  /** Nodes (undefined: the endpoint's own) whose alarm list fails, and how. */
  alarmFailures = new Map<string | undefined, DefragError>();

  memberList() {
    this.calls.push("EtcdMemberList");
    return Promise.resolve(
      [
        ["cp-1", "https://10.0.0.1:2380"],
        ["cp-2", "https://[fd00::2]:2380"],
        ["cp-3", "https://10.0.0.3:2380"],
      ].map(([hostname, url], i) =>
        create(EtcdMemberSchema, { id: BigInt(i + 1), hostname: hostname ?? "", peerUrls: [url ?? ""] }),
      ),
    );
  }
  status(node: string) {
    this.calls.push(`EtcdStatus ${node}`);
    return Promise.resolve(create(EtcdMemberStatusSchema, { memberId: 1n, dbSize: 10n, dbSizeInUse: 5n }));
  }
  alarms(node: string | undefined) {
    this.calls.push(`EtcdAlarmList ${node ?? "(endpoint)"}`);
    const failure = this.alarmFailures.get(node);
    return failure ? Promise.reject(failure) : Promise.resolve([...this.alarmList]);
  }
  log = "";
  etcdLog(node: string, tailLines: number) {
    this.calls.push(`Logs ${node} tail ${tailLines}`);
    return Promise.resolve(
      this.log
        .split("\n")
        .slice(-tailLines - 1)
        .join("\n"),
    );
  }
  /** The followed log: `log` in chunks of 7 bytes (chunks do not follow lines), then nothing until aborted. */
  async followEtcdLog(
    node: string,
    tailLines: number,
    onBytes: (b: Uint8Array) => void,
    signal: AbortSignal,
  ) {
    this.calls.push(`Logs ${node} tail ${tailLines} follow`);
    const bytes = new TextEncoder().encode(this.log);
    for (let i = 0; i < bytes.length; i += 7) {
      await Promise.resolve();
      onBytes(bytes.subarray(i, i + 7));
    }
    await new Promise((resolve) => {
      signal.addEventListener("abort", resolve, { once: true });
    });
    throw new DefragError("aborted", "Logs was cancelled", { node });
  }
  async etcdSnapshot(node: string, write: (chunk: Uint8Array) => Promise<void>) {
    this.calls.push(`EtcdSnapshot ${node}`);
    await write(new Uint8Array([1, 2, 3]));
  }
  defragment(node: string) {
    this.calls.push(`EtcdDefragment ${node}`);
    return Promise.resolve();
  }
  forfeitLeadership(node: string) {
    this.calls.push(`EtcdForfeitLeadership ${node}`);
    return Promise.resolve("cp-2");
  }
  extraArgs: Record<string, string[]> = {};
  etcdExtraArgs(node: string) {
    this.calls.push(`State.Get ${node}`);
    return Promise.resolve(this.extraArgs);
  }
  statfs(node: string, path: string) {
    this.calls.push(`Statfs ${node}`);
    return Promise.resolve({ path, sizeBytes: 10 * 1024 ** 3, availableBytes: 5 * 1024 ** 3 });
  }
  machineStatus(node: string) {
    this.calls.push(`State.Get machinestatus ${node}`);
    return Promise.resolve({ stage: "RUNNING", working: true, ready: true, unmet: [] });
  }
  disarmAlarms(node: string) {
    this.calls.push(`EtcdAlarmDisarm ${node}`);
    const was = this.alarmList;
    this.alarmList = [];
    return Promise.resolve(was);
  }
  close(): void {
    this.calls.push("close");
  }
}

const notEtcd = new DefragError("not-control-plane", "etcd is not running on this node");

describe("TalosBackend", () => {
  it("addresses each member by the host of its first peer URL (IPv6 without brackets)", async () => {
    const backend = new TalosBackend(new FakeTalos(), { roles: [], nodes: [] });
    const members = await backend.members();
    assert.deepEqual(
      members.map((m) => m.node),
      ["10.0.0.1", "fd00::2", "10.0.0.3"],
    );
  });

  it("reads the alarms through the endpoint's own node when no nodes are given", async () => {
    const talos = new FakeTalos();
    talos.alarmList = [{ memberId: 2n, alarm: "NOSPACE" }];
    const alarms = await new TalosBackend(talos, { roles: [], nodes: [] }).alarms();
    assert.deepEqual(alarms, [{ memberId: 2n, alarm: "NOSPACE" }]);
    assert.deepEqual(talos.calls, ["EtcdAlarmList (endpoint)"]);
  });

  it("with nodes: reads the alarms through the first one", async () => {
    const talos = new FakeTalos();
    await new TalosBackend(talos, { roles: [], nodes: ["10.0.0.3", "10.0.0.1"] }).alarms();
    assert.deepEqual(talos.calls, ["EtcdAlarmList 10.0.0.3"]);
  });

  it("when the endpoint's own node cannot list the alarms, asks the members in turn", async () => {
    const talos = new FakeTalos();
    talos.alarmFailures.set(undefined, notEtcd);
    talos.alarmFailures.set("10.0.0.1", notEtcd);
    talos.alarmList = [{ memberId: 1n, alarm: "CORRUPT" }];
    const alarms = await new TalosBackend(talos, { roles: [], nodes: [] }).alarms();
    assert.deepEqual(alarms, [{ memberId: 1n, alarm: "CORRUPT" }]);
    assert.deepEqual(talos.calls, [
      "EtcdAlarmList (endpoint)",
      "EtcdMemberList",
      "EtcdAlarmList 10.0.0.1",
      "EtcdAlarmList fd00::2",
    ]);
  });

  it("does not try other nodes after an error that would be the same everywhere", async () => {
    const talos = new FakeTalos();
    talos.alarmFailures.set(undefined, new DefragError("permission", "EtcdAlarmList was denied"));
    await assert.rejects(new TalosBackend(talos, { roles: [], nodes: [] }).alarms(), /was denied/);
    assert.deepEqual(talos.calls, ["EtcdAlarmList (endpoint)"]);
  });

  it("when no node can list the alarms, reports the first failure", async () => {
    const talos = new FakeTalos();
    for (const n of [undefined, "10.0.0.1", "fd00::2", "10.0.0.3"]) talos.alarmFailures.set(n, notEtcd);
    await assert.rejects(new TalosBackend(talos, { roles: [], nodes: [] }).alarms(), (err: unknown) => {
      assert.equal(err, notEtcd);
      return true;
    });
  });

  it("disarms NOSPACE only when, just before, it is the only alarm (Talos disarms all at once)", async () => {
    const talos = new FakeTalos();
    talos.alarmList = [
      { memberId: 1n, alarm: "NOSPACE" },
      { memberId: 3n, alarm: "CORRUPT" },
    ];
    const backend = new TalosBackend(talos, { roles: [], nodes: ["10.0.0.1"] });
    await assert.rejects(backend.disarmNospace(), (err: unknown) => {
      assert.ok(err instanceof DefragError);
      assert.equal(err.kind, "refused");
      assert.match(
        err.message,
        /besides NOSPACE, CORRUPT is raised, and Talos can only disarm every alarm at once/,
      );
      return true;
    });
    assert.ok(!talos.calls.some((c) => c.startsWith("EtcdAlarmDisarm")), "nothing disarmed");

    talos.alarmList = [{ memberId: 1n, alarm: "NOSPACE" }];
    assert.deepEqual(await backend.disarmNospace(), [{ memberId: 1n, alarm: "NOSPACE" }]);
    assert.equal(talos.calls.at(-1), "EtcdAlarmDisarm 10.0.0.1");
  });

  it("follows the node's etcd log: the state once the line that was last when it opened has come through", async () => {
    const talos = new FakeTalos();
    talos.log =
      '{"level":"info","ts":"2026-11-27T13:00:01.000000Z","msg":"starting defragment"}\n' +
      '{"level":"info","ts":"2026-11-27T13:00:01.000100Z","msg":"defragmenting"}\n';
    const stop = new AbortController();
    const feed = new TalosBackend(talos, { roles: [], nodes: [] }).followDefrags("10.0.0.2", stop.signal);
    const first = await feed[Symbol.asyncIterator]().next();
    assert.ok(first.done !== true);
    assert.deepEqual(first.value.activity.inProgress, {
      since: Date.parse("2026-11-27T13:00:01Z"),
      by: "call",
    });
    assert.equal(first.value.anchored, true);
    assert.deepEqual(talos.calls.sort(), ["Logs 10.0.0.2 tail 1", "Logs 10.0.0.2 tail 500 follow"]);
    stop.abort();
  });

  it("a tail with no marker at all is not anchored: a defragment may be running unseen", async () => {
    const talos = new FakeTalos();
    talos.log = '{"level":"warn","ts":"2026-11-27T13:00:01.000000Z","msg":"apply request took too long"}\n';
    const stop = new AbortController();
    const feed = new TalosBackend(talos, { roles: [], nodes: [] }).followDefrags("10.0.0.2", stop.signal);
    const first = await feed[Symbol.asyncIterator]().next();
    assert.deepEqual(first.value, { activity: { inProgress: undefined, finished: [] }, anchored: false });
    stop.abort();
  });

  it("turns the certificate's roles into permissions, with what is missing", async () => {
    const perms = (roles: string[]) => new TalosBackend(new FakeTalos(), { roles, nodes: [] }).permissions();
    assert.deepEqual(await perms(["os:admin"]), {
      defragment: { allowed: true },
      moveLeadership: { allowed: true },
    });
    const operator = await perms(["os:operator"]);
    assert.deepEqual(operator.defragment, { allowed: true });
    assert.deepEqual(operator.moveLeadership, {
      allowed: false,
      reason: "moving leadership needs role os:admin (the certificate has os:operator)",
    });
    const reader = await perms(["os:reader"]);
    assert.deepEqual(reader.defragment, {
      allowed: false,
      reason:
        "the client certificate's roles (os:reader) do not allow EtcdDefragment: it needs role os:operator (or os:admin)",
    });
    // Roles unknown (a certificate without them): every call is tried, and apid decides.
    assert.deepEqual(await perms([]), { defragment: { allowed: true }, moveLeadership: { allowed: true } });
  });
  it("reads a member's configuration from its etcd spec's extraArgs, through that node", async () => {
    const fake = new FakeTalos();
    const backend = new TalosBackend(fake, { roles: [], nodes: [] });
    fake.extraArgs = {
      "quota-backend-bytes": ["8589934592"],
      "bootstrap-defrag-threshold-megabytes": ["100"],
    };
    assert.deepEqual(await backend.memberConfig("10.0.0.2"), {
      quotaBytes: 8 * 1024 ** 3,
      startupDefrag: [{ flag: "bootstrap-defrag-threshold-megabytes", value: "100" }],
    });
    assert.deepEqual(fake.calls, ["State.Get 10.0.0.2"]);
    fake.extraArgs = {};
    assert.deepEqual(await backend.memberConfig("10.0.0.3"), { startupDefrag: [] }, "unset: etcd's default");
    fake.extraArgs = { "quota-backend-bytes": ["8G"] };
    await assert.rejects(
      backend.memberConfig("10.0.0.3"),
      (e: unknown) => e instanceof DefragError && e.kind === "config" && e.node === "10.0.0.3",
    );
  });
});
