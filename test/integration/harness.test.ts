// The harness itself: the Talos API test server must behave like apid where our
// client depends on it (routing, aggregation, RBAC, TLS), and leave nothing behind.

import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";

import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { Http2SessionManager, createGrpcTransport } from "@connectrpc/connect-node";

import { formatMemberId } from "../../src/core/units.js";
import { MachineService } from "../../src/talos/gen/machine/machine_pb.js";
import { unpackMessages } from "../../src/talos/replies.js";
import { nodeKeyPem } from "../harness/certs.js";
import { startHarness, type Harness } from "../harness/harness.js";
import { runCli } from "../harness/run-cli.js";
import { TalosApiServer } from "../harness/talos-api-server.js";
import { MachineService as HarnessOnlyService } from "../harness/talospb/gen/machine/harness_pb.js";

describe("harness: Talos API test server", () => {
  let h: Harness;
  const sessions: Http2SessionManager[] = [];

  async function transport(
    roles: string[],
    opts: { eku?: ("clientAuth" | "serverAuth")[]; address?: string } = {},
  ) {
    const cert = await h.pki.clientCert({ roles, ...(opts.eku ? { eku: opts.eku } : {}) });
    const url = `https://${opts.address ?? h.nodes[0]}:${h.apiPort}`;
    const session = new Http2SessionManager(url, undefined, {
      ca: h.pki.caPem,
      cert: cert.certPem,
      key: nodeKeyPem(cert.keyPem),
      servername: "",
    });
    sessions.push(session);
    return createGrpcTransport({ baseUrl: url, sessionManager: session });
  }

  async function client(roles: string[], opts: Parameters<typeof transport>[1] = {}) {
    return createClient(MachineService, await transport(roles, opts));
  }

  /** The RPCs only the harness serves (not part of the tool's proto). */
  async function harnessOnly(roles: string[], opts: Parameters<typeof transport>[1] = {}) {
    return createClient(HarnessOnlyService, await transport(roles, opts));
  }

  before(async () => {
    h = await startHarness({ members: 3, workers: 1 });
  });

  after(async () => {
    for (const s of sessions) s.abort();
    const pids = h.etcd.members.map((m) => m.pid).filter((p): p is number => p !== undefined);
    await h.close();
    for (const pid of pids) {
      assert.throws(() => process.kill(pid, 0), /ESRCH/, `etcd ${pid} is gone`);
    }
  });

  it("one-to-one (`node`): the reply of that node's real member, without metadata", async () => {
    const c = await client(["os:operator"]);
    const target = h.nodes[2]!;
    const reply = await c.etcdStatus({}, { headers: { node: target } });
    assert.equal(reply.messages.length, 1);
    assert.equal(reply.messages[0]?.metadata, undefined);
    const real = await h.etcd.members[2]!.client.status();
    assert.equal(reply.messages[0]?.memberStatus?.memberId, real.memberId);
    const served = h.journal.filter((j) => j.via === "local" && j.method === "EtcdStatus").at(-1);
    assert.equal(served?.server, target, "the target node served it, the endpoint forwarded it");
    assert.ok(h.journal.some((j) => j.via === "forward" && j.server === h.nodes[0] && j.target === target));
  });

  it("one-to-many (`nodes`): one entry per node with metadata.hostname; a failed node is an entry with an error", async () => {
    const down = h.servers.get(h.nodes[1]!)!;
    await down.down();
    try {
      const c = await client(["os:operator"]);
      const reply = await c.etcdStatus({}, { headers: { nodes: h.nodes.join(",") } });
      const results = unpackMessages("EtcdStatus", reply.messages, "");
      assert.deepEqual(
        results.map((r) => r.node),
        h.nodes,
      );
      const failed = results[1]!;
      assert.ok("error" in failed);
      assert.equal(failed.error.kind, "unreachable");
      assert.equal(reply.messages[1]?.metadata?.status?.code, Code.Unavailable);
      assert.match(reply.messages[1].metadata.error, /connection refused/);
      const ok = results[0]!;
      assert.ok("value" in ok);
      assert.match(formatMemberId(ok.value.memberStatus?.memberId ?? 0n), /^[0-9a-f]{16}$/);
    } finally {
      await down.up();
    }
  });

  it("`node` must be single-valued", async () => {
    const c = await client(["os:operator"]);
    await assert.rejects(
      c.etcdStatus(
        {},
        {
          headers: [
            ["node", h.nodes[0]!],
            ["node", h.nodes[1]!],
          ],
        },
      ),
      (err: unknown) =>
        err instanceof ConnectError &&
        err.code === Code.InvalidArgument &&
        /single-valued/.test(err.rawMessage),
    );
  });

  it("RBAC: reader cannot defragment, operator cannot forfeit, admin can", async () => {
    const reader = await client(["os:reader"]);
    await assert.rejects(reader.etcdDefragment({}, { headers: { node: h.nodes[0]! } }), (err: unknown) => {
      return (
        err instanceof ConnectError &&
        err.code === Code.PermissionDenied &&
        err.rawMessage === "not authorized"
      );
    });
    const operator = await client(["os:operator"]);
    await assert.rejects(
      operator.etcdForfeitLeadership(create(MachineService.method.etcdForfeitLeadership.input), {
        headers: { node: h.nodes[0]! },
      }),
      (err: unknown) => err instanceof ConnectError && err.code === Code.PermissionDenied,
    );
    const leader = h.nodes[await h.etcd.leaderIndex()]!;
    const admin = await client(["os:admin"]);
    const reply = await admin.etcdForfeitLeadership({}, { headers: { node: leader } });
    assert.notEqual(reply.messages[0]?.member, "");
    await h.etcd.waitHealthy();
    assert.notEqual(h.nodes[await h.etcd.leaderIndex()], leader, "leadership moved");
  });

  it("a worker answers etcd calls with Unimplemented", async () => {
    const c = await client(["os:operator"]);
    await assert.rejects(
      c.etcdStatus({}, { headers: { node: h.workers[0]! } }),
      (err: unknown) =>
        err instanceof ConnectError &&
        err.code === Code.Unimplemented &&
        err.rawMessage === "etcd status is only available on control plane nodes",
    );
  });

  it("serves the harness-only ServiceList and Version at Talos's paths, forwarded and aggregated", async () => {
    const c = await harnessOnly(["os:reader"]);
    const cp = await c.serviceList({}, { headers: { node: h.nodes[1]! } });
    const etcd = cp.messages[0]?.services.find((s) => s.id === "etcd");
    assert.equal(etcd?.state, "Running");
    assert.equal(etcd.health?.healthy, true);
    const served = h.journal.filter((j) => j.via === "local" && j.method === "ServiceList").at(-1);
    assert.equal(served?.server, h.nodes[1], "forwarded to the target node");
    const worker = await c.serviceList({}, { headers: { node: h.workers[0]! } });
    assert.deepEqual(
      worker.messages[0]?.services.map((s) => s.id),
      ["apid"],
      "a worker runs no etcd",
    );
    const versions = await c.version({}, { headers: { nodes: h.nodes.join(",") } });
    assert.deepEqual(
      versions.messages.map((m) => [m.metadata?.hostname, m.version?.tag]),
      h.nodes.map((n) => [n, "v1.11.0"]),
    );
  });

  it("rejects a client certificate whose EKU is not exactly clientAuth, as apid does", async () => {
    const c = await harnessOnly(["os:admin"], { eku: ["serverAuth", "clientAuth"] });
    const before = h.journal.length;
    await assert.rejects(c.version({}), (err: unknown) => err instanceof ConnectError);
    assert.equal(h.journal.length, before, "no call was served");
  });

  it("the CLI works through an IPv6 endpoint ([::1])", async () => {
    const cert = await h.pki.serverCert({ ips: ["::1"], dns: ["localhost"] });
    const extra = new TalosApiServer({
      address: "::1",
      port: h.apiPort,
      listenPort: 0,
      caPem: h.pki.caPem,
      serverCert: cert,
      forwardCert: await h.pki.clientCert({ roles: ["os:impersonator"] }),
      etcd: undefined,
      journal: new (await import("../harness/journal.js")).Journal(),
    });
    await extra.up();
    try {
      const port = extra.port;
      const creds = await h.credentials(["os:operator"]);
      const r = await runCli(["status", "--output", "json", "--nodes", h.nodes.join(",")], {
        env: {
          TALOS_CA: creds.ca,
          TALOS_CRT: creds.crt,
          TALOS_KEY: creds.key,
          TALOS_ENDPOINTS: `[::1]:${port}`,
        },
      });
      assert.equal(r.code, 0, r.stderr);
      assert.equal((JSON.parse(r.stdout) as { members: unknown[] }).members.length, 3);
      assert.doesNotMatch(r.stderr, /DEP0123|\(node:\d+\)/);
    } finally {
      await extra.close();
    }
  });
});
