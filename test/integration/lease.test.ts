// The guard against concurrent runs, against a real kube-apiserver (test/harness/kube-apiserver.ts):
// the Lease taken, renewed and released; a second taker waits and gets it after the release; a
// holder that died stops counting when its lease expires; RBAC refusals are clear; and two `run`
// processes of the built CLI started together never defragment at the same time.

import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";

import {
  CoordinationV1Api,
  CoreV1Api,
  KubeConfig,
  RbacAuthorizationV1Api,
  V1MicroTime,
  type V1Lease,
  type V1LeaseSpec,
  type V1ObjectMeta,
} from "@kubernetes/client-node";

import { DefragError } from "../../src/core/errors.js";
import { loadKubeConfig } from "../../src/k8s/kubeconfig.js";
import { createLeaseGuard } from "../../src/k8s/lease.js";
import type { Clock } from "../../src/core/ports.js";
import { systemClock } from "../../src/run/clock.js";
import { maxOverlap } from "../../bench/report.js";
import { windows } from "../harness/hold-defrag.js";
import { startHarness, type Harness } from "../harness/harness.js";
import type { JournalEntry } from "../harness/journal.js";
import { KubeApiServer } from "../harness/kube-apiserver.js";
import { runCli, startCli } from "../harness/run-cli.js";
import { parseSummary } from "../harness/run-summary.js";
import { MiB } from "../harness/units.js";
import { waitFor } from "../harness/wait.js";

const NS = "kube-system";

/** A holder that died: its renewal timer never fires. */
const frozenRenewals: Clock = { ...systemClock, every: () => () => undefined };

/** The largest number of EtcdDefragment calls running on members at the same moment. */
function maxConcurrentDefrags(entries: JournalEntry[]): number {
  const events = entries
    .filter((e) => e.via === "local" && e.method === "EtcdDefragment")
    .flatMap((e) => [
      { t: e.start, d: 1 },
      { t: e.end === 0 ? Number.POSITIVE_INFINITY : e.end, d: -1 },
    ])
    // At the same instant, an end comes before a start.
    .sort((a, b) => a.t - b.t || a.d - b.d);
  let now = 0;
  let max = 0;
  for (const e of events) {
    now += e.d;
    max = Math.max(max, now);
  }
  return max;
}

describe("the Lease against a real kube-apiserver", () => {
  let kas: KubeApiServer;
  let dir: string;
  let admin: string;
  let leases: CoordinationV1Api;

  before(async () => {
    kas = await KubeApiServer.start({ users: [{ name: "nobody" }, { name: "lease-user" }] });
    dir = mkdtempSync(join(tmpdir(), "lease-test-"));
    admin = kas.writeKubeconfig(dir, { user: "admin" });
    const kc = new KubeConfig();
    kc.loadFromFile(admin);
    leases = kc.makeApiClient(CoordinationV1Api);
    // The least RBAC, as the chart grants it: get/update on the one lease, which exists (the chart
    // creates it empty).
    const rbac = kc.makeApiClient(RbacAuthorizationV1Api);
    await rbac.createNamespacedRole({
      namespace: NS,
      body: {
        metadata: { name: "lease-user" },
        rules: [
          {
            apiGroups: ["coordination.k8s.io"],
            resources: ["leases"],
            resourceNames: ["etcd-defrag-user"],
            verbs: ["get", "update"],
          },
        ],
      },
    });
    await rbac.createNamespacedRoleBinding({
      namespace: NS,
      body: {
        metadata: { name: "lease-user" },
        roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "Role", name: "lease-user" },
        subjects: [{ apiGroup: "rbac.authorization.k8s.io", kind: "User", name: "lease-user" }],
      },
    });
    await leases.createNamespacedLease({
      namespace: NS,
      body: { metadata: { name: "etcd-defrag-user" }, spec: {} },
    });
  });

  after(async () => {
    await kas.close();
    rmSync(dir, { recursive: true, force: true });
  });

  type Lease = V1Lease & { spec: V1LeaseSpec; metadata: V1ObjectMeta };
  const read = async (name: string): Promise<Lease> => {
    const l = await leases.readNamespacedLease({ name, namespace: NS });
    assert.ok(l.spec && l.metadata);
    return l as Lease;
  };
  /** The client types MicroTime as a Date but hands back the JSON string. */
  const micro = (t: unknown): string => new Date(t as string).toISOString();

  function guard(
    name: string,
    identity: string,
    opts: { durationSeconds?: number; clock?: Clock; kubeconfig?: string } = {},
  ) {
    return createLeaseGuard({
      kubeConfig: loadKubeConfig({ kubeconfig: opts.kubeconfig ?? admin, env: {} }),
      namespace: NS,
      name,
      identity,
      durationSeconds: opts.durationSeconds ?? 30,
      clock: opts.clock ?? systemClock,
    });
  }

  const noWait = { waitMs: 0, signal: new AbortController().signal, onWait: () => undefined };

  it(`the start took a few seconds (kube-apiserver /readyz)`, () => {
    assert.ok(kas.startMs > 0 && kas.startMs < 90_000, `${kas.startMs} ms`);
  });

  it("acquire creates the lease, renewals move renewTime, release clears the holder", async () => {
    const held = await guard("basic", "run-a", { durationSeconds: 3 }).acquire(noWait);
    const first = await read("basic");
    assert.equal(first.spec.holderIdentity, "run-a");
    assert.equal(first.spec.leaseDurationSeconds, 3);
    assert.equal(first.spec.leaseTransitions, 0);
    // MicroTime on the wire: the API server accepted our microsecond timestamps.
    const renewed = await waitFor(
      "a renewal",
      async () => {
        const l = await read("basic");
        return l.metadata.resourceVersion !== first.metadata.resourceVersion ? l : undefined;
      },
      { timeoutMs: 10_000, intervalMs: 100 },
    );
    assert.equal(renewed.spec.holderIdentity, "run-a");
    assert.ok(micro(renewed.spec.renewTime) > micro(first.spec.renewTime));
    assert.equal(micro(renewed.spec.acquireTime), micro(first.spec.acquireTime));
    assert.equal(held.lost.aborted, false);
    await held.release();
    const released = await read("basic");
    assert.equal(released.spec.holderIdentity, undefined);
    // Free at once for the next run.
    const next = await guard("basic", "run-b").acquire(noWait);
    assert.equal((await read("basic")).spec.leaseTransitions, 1);
    await next.release();
  });

  it("a second run waits while the first holds it (told who holds it), and gets it after the release", async () => {
    const a = await guard("wait", "run-a").acquire(noWait);
    const holders: string[] = [];
    const b = guard("wait", "run-b").acquire({
      waitMs: 30_000,
      signal: new AbortController().signal,
      onWait: (holder) => holders.push(holder),
    });
    await waitFor("run-b to wait", () => (holders.length > 0 ? true : undefined), { timeoutMs: 10_000 });
    assert.equal(holders[0], "run-a");
    assert.equal((await read("wait")).spec.holderIdentity, "run-a", "still run-a's while it waits");
    await a.release();
    const heldB = await b;
    assert.equal((await read("wait")).spec.holderIdentity, "run-b");
    await heldB.release();
  });

  it("a held lease after the wait: refused, naming the holder and since when", async () => {
    const a = await guard("refuse", "run-a").acquire(noWait);
    const since = micro((await read("refuse")).spec.acquireTime);
    await assert.rejects(guard("refuse", "run-b").acquire({ ...noWait, waitMs: 1500 }), (err: unknown) => {
      assert.ok(err instanceof DefragError);
      assert.equal(err.kind, "refused");
      assert.match(err.message, /another run holds the lease kube-system\/refuse: "run-a"/);
      assert.ok(err.message.includes(`since ${since}`), err.message);
      assert.match(err.hint ?? "", /--lease-wait/);
      return true;
    });
    await a.release();
  });

  it("a holder that died (never renewed, never released) stops counting when its lease expires", async () => {
    // A 2 s lease whose holder stops renewing at once.
    await guard("dead", "run-dead", { durationSeconds: 2, clock: frozenRenewals }).acquire(noWait);
    await assert.rejects(guard("dead", "run-b").acquire(noWait), /"run-dead"/);
    const t0 = performance.now();
    const held = await guard("dead", "run-b").acquire({
      waitMs: 20_000,
      signal: new AbortController().signal,
      onWait: () => undefined,
    });
    const waited = performance.now() - t0;
    const l = await read("dead");
    assert.equal(l.spec.holderIdentity, "run-b");
    assert.equal(l.spec.leaseTransitions, 1);
    assert.ok(waited < 10_000, `taken over ${Math.round(waited)} ms after, a 2 s lease`);
    await held.release();
  });

  it("two takers at once: exactly one wins, whether creating it or taking over an expired one", async () => {
    // An expired lease: renewed an hour ago by a run that died.
    const hourAgo = new Date(Date.now() - 3_600_000);
    await leases.createNamespacedLease({
      namespace: NS,
      body: {
        metadata: { name: "race-update" },
        spec: {
          holderIdentity: "run-dead",
          leaseDurationSeconds: 30,
          acquireTime: new V1MicroTime(hourAgo.getTime()),
          renewTime: new V1MicroTime(hourAgo.getTime()),
          leaseTransitions: 0,
        },
      },
    });
    for (const name of ["race-create", "race-update"]) {
      const outcomes = await Promise.allSettled(
        ["x", "y", "z"].map((id) => guard(name, `run-${id}`).acquire(noWait)),
      );
      const won = outcomes.filter((o) => o.status === "fulfilled");
      assert.equal(won.length, 1, `${name}: ${JSON.stringify(outcomes.map((o) => o.status))}`);
      const winner = (await read(name)).spec.holderIdentity;
      for (const o of outcomes) {
        if (o.status === "rejected") assert.match((o.reason as Error).message, new RegExp(`"${winner}"`));
      }
      for (const o of won) await o.value.release();
    }
  });

  it("a holder whose lease is taken from it learns it (lost), and the run starts nothing new", async () => {
    const held = await guard("stolen", "run-a", { durationSeconds: 3 }).acquire(noWait);
    const l = await read("stolen");
    await leases.replaceNamespacedLease({
      name: "stolen",
      namespace: NS,
      body: { metadata: l.metadata, spec: Object.assign(l.spec, { holderIdentity: "someone-else" }) },
    });
    await waitFor("the guard to be lost", () => (held.lost.aborted ? true : undefined), {
      timeoutMs: 10_000,
    });
    assert.match((held.lost.reason as Error).message, /another run took the lease/);
    await held.release();
    assert.equal(
      (await read("stolen")).spec.holderIdentity,
      "someone-else",
      "release leaves another's lease alone",
    );
  });

  it("in a pod: the service account's token, CA and KUBERNETES_SERVICE_HOST/PORT, as Kubernetes mounts them", async () => {
    const saDir = mkdtempSync(join(dir, "serviceaccount-"));
    const env = { KUBERNETES_SERVICE_HOST: kas.address, KUBERNETES_SERVICE_PORT: String(kas.port) };
    assert.throws(
      () => loadKubeConfig({ kubeconfig: undefined, env, serviceAccountDir: saDir }),
      /--lease in a pod needs its service-account token/,
    );
    writeFileSync(join(saDir, "token"), kas.token("admin"));
    writeFileSync(join(saDir, "ca.crt"), kas.caPem);
    writeFileSync(join(saDir, "namespace"), NS);
    const held = await createLeaseGuard({
      kubeConfig: loadKubeConfig({ kubeconfig: undefined, env, serviceAccountDir: saDir }),
      namespace: NS,
      name: "in-pod",
      identity: "pod-run",
      durationSeconds: 30,
      clock: systemClock,
    }).acquire(noWait);
    assert.equal((await read("in-pod")).spec.holderIdentity, "pod-run");
    await held.release();
  });

  it("the least RBAC is enough: get/update on the one lease (resourceNames), created empty as the chart does", async () => {
    const kubeconfig = kas.writeKubeconfig(dir, { user: "lease-user" });
    const held = await guard("etcd-defrag-user", "run-a", { kubeconfig }).acquire(noWait);
    assert.equal((await read("etcd-defrag-user")).spec.holderIdentity, "run-a");
    await held.release();
    // Another lease name: get is forbidden.
    await assert.rejects(guard("other", "run-a", { kubeconfig }).acquire(noWait), /refused to get/);
  });

  it("that Lease deleted: the create it may not do is a config error saying how to restore it", async () => {
    const kubeconfig = kas.writeKubeconfig(dir, { user: "lease-user" });
    await leases.deleteNamespacedLease({ name: "etcd-defrag-user", namespace: NS });
    try {
      await assert.rejects(
        guard("etcd-defrag-user", "run-a", { kubeconfig }).acquire(noWait),
        (err: unknown) => {
          assert.ok(err instanceof DefragError);
          assert.equal(err.kind, "config");
          assert.match(err.message, /refused to create leases\.coordination\.k8s\.io "etcd-defrag-user"/);
          assert.match(
            err.hint ?? "",
            /the Lease does not exist and this identity may not create it.*helm upgrade/,
          );
          return true;
        },
      );
    } finally {
      await leases.createNamespacedLease({
        namespace: NS,
        body: { metadata: { name: "etcd-defrag-user" }, spec: {} },
      });
    }
  });

  it("no RBAC at all: a clear config error naming the verb, the lease, the namespace and what to grant", async () => {
    const kubeconfig = kas.writeKubeconfig(dir, { user: "nobody" });
    await assert.rejects(guard("etcd-defrag", "run-a", { kubeconfig }).acquire(noWait), (err: unknown) => {
      assert.ok(err instanceof DefragError);
      assert.equal(err.kind, "config");
      assert.match(
        err.message,
        /refused to get leases\.coordination\.k8s\.io "etcd-defrag" in namespace "kube-system" \(403 Forbidden: .*User "nobody" cannot get/,
      );
      assert.match(err.hint ?? "", /grant get and update on leases .* in namespace kube-system/);
      return true;
    });
  });

  describe("the CLI", () => {
    let h: Harness;
    let talosconfig: string;

    before(async () => {
      h = await startHarness({ members: 3 });
      talosconfig = await h.writeTalosconfig({ roles: ["os:operator"], dir });
    });

    after(async () => {
      await h.close();
    });

    it("bad --lease values are exit 2 before any call", async () => {
      const before = h.journal.length;
      for (const [value, message] of [
        ["etcd-defrag", /is not NAMESPACE\/NAME/],
        ["kube-system/", /empty namespace or name/],
        ["Kube-System/x", /invalid namespace/],
        ["kube-system/x_y", /invalid lease name/],
      ] as const) {
        const r = await runCli(["run", "--lease", value, "--kubeconfig", admin], {
          env: { TALOSCONFIG: talosconfig },
        });
        assert.equal(r.code, 2, r.stderr);
        assert.match(r.stderr, message);
      }
      const r = await runCli(["run", "--lease", "kube-system/x", "--kubeconfig", join(dir, "missing")], {
        env: { TALOSCONFIG: talosconfig },
      });
      assert.equal(r.code, 2, r.stderr);
      assert.match(r.stderr, /kubeconfig .*missing does not exist/);
      const none = await runCli(["run", "--lease", "kube-system/x"], { env: { TALOSCONFIG: talosconfig } });
      assert.equal(none.code, 2, none.stderr);
      assert.match(none.stderr, /--lease needs a Kubernetes API server/);
      assert.equal(h.journal.length, before, "no Talos API call");
    });

    it("403: exit 2 with the RBAC needed, no Talos API call", async () => {
      const before = h.journal.length;
      const r = await runCli(
        [
          "run",
          "--lease",
          "kube-system/etcd-defrag",
          "--kubeconfig",
          kas.writeKubeconfig(dir, { user: "nobody" }),
        ],
        { env: { TALOSCONFIG: talosconfig } },
      );
      assert.equal(r.code, 2, r.stderr);
      assert.match(r.stderr, /403 Forbidden/);
      assert.match(r.stderr, /grant get and update on leases/);
      assert.equal(h.journal.length, before);
    });

    it("two runs started together never overlap (lease): one waits for the other", async () => {
      await h.etcd.fragment({ targetDbBytes: 32 * MiB, liveFraction: 0.25 });
      const since = h.journal.length;
      const args = [
        "run",
        "--rule",
        "true",
        "--pause",
        "0s",
        "--output",
        "json",
        "--lease",
        `${NS}/etcd-defrag`,
      ];
      const env = { TALOSCONFIG: talosconfig, KUBECONFIG: admin, TALOS_ETCD_DEFRAG_LEASE_WAIT: "2m" };
      const runs = [startCli(args, { env }), startCli(args, { env })];
      const [a, b] = await Promise.all(runs.map((r) => r.done));
      assert.ok(a && b);
      assert.equal(a.code, 0, a.stderr);
      assert.equal(b.code, 0, b.stderr);
      const mine = h.journal.slice(since);
      assert.equal(mine.filter((e) => e.via === "local" && e.method === "EtcdDefragment").length, 6);
      assert.equal(maxConcurrentDefrags(mine), 1, "at most one member blocked at any moment");
      // One of them waited for the other, naming it.
      assert.ok(
        [a, b].some((r) =>
          /waiting for the lease kube-system\/etcd-defrag: another run holds it/.test(r.stderr),
        ),
        a.stderr + b.stderr,
      );
      assert.equal((await read("etcd-defrag")).spec.holderIdentity, undefined, "released at the end");
    });

    /** The cluster's control-plane Nodes, as the kubelet registers them: one per address, labelled. */
    async function controlPlane(addresses: readonly string[]): Promise<void> {
      const kc = new KubeConfig();
      kc.loadFromFile(admin);
      const core = kc.makeApiClient(CoreV1Api);
      for (const n of (await core.listNode()).items) await core.deleteNode({ name: n.metadata?.name ?? "" });
      for (const [i, address] of addresses.entries()) {
        // Nodes take their status on create (the API server keeps it, as the kubelet's first post does).
        await core.createNode({
          body: {
            metadata: { name: `cp-${i + 1}`, labels: { "node-role.kubernetes.io/control-plane": "" } },
            status: { addresses: [{ type: "InternalIP", address }] },
          },
        });
      }
    }

    const AUTO_RUN = ["run", "--rule", "true", "--pause", "0s", "--output", "json"];
    const ALONE = /nothing stops another run started at the same moment from blocking a second member/;

    it("--lease auto (the default), a kubeconfig of another cluster: no lease, a warning naming both sides", async () => {
      await controlPlane(["10.99.0.11", "10.99.0.12"]);
      const r = await runCli(AUTO_RUN, { env: { TALOSCONFIG: talosconfig, KUBECONFIG: admin } });
      assert.equal(r.code, 0, r.stderr);
      const members = [...h.nodes]
        .sort()
        .map((n) => n.replace(/\./g, "\\."))
        .join(", ");
      assert.match(
        r.stderr,
        new RegExp(
          `no lease: the Kubernetes API at https://\\S+ is not this etcd's cluster \\(its control-plane nodes: 10\\.99\\.0\\.11, 10\\.99\\.0\\.12; the etcd members: ${members}\\)`,
        ),
      );
      assert.match(r.stderr, ALONE);
      assert.doesNotMatch(r.stderr, /holding the lease/);
    });

    it("--lease auto, this cluster's kubeconfig: two runs started together take the chart's Lease, never two members blocked", async () => {
      await controlPlane(h.nodes);
      await h.etcd.fragment({ targetDbBytes: 32 * MiB, liveFraction: 0.25 });
      const since = h.journal.length;
      const t0 = Date.now();
      const env = { TALOSCONFIG: talosconfig, KUBECONFIG: admin, TALOS_ETCD_DEFRAG_LEASE_WAIT: "2m" };
      const [a, b] = await Promise.all(
        [startCli(AUTO_RUN, { env }), startCli(AUTO_RUN, { env })].map((r) => r.done),
      );
      assert.ok(a && b);
      assert.equal(a.code, 0, a.stderr);
      assert.equal(b.code, 0, b.stderr);
      for (const r of [a, b]) {
        assert.match(
          r.stderr,
          /is this etcd's cluster: taking the lease kube-system\/etcd-defrag \(--lease none: no lease\)/,
        );
        assert.match(r.stderr, /holding the lease kube-system\/etcd-defrag for this run/);
      }
      const mine = h.journal.slice(since);
      assert.equal(mine.filter((e) => e.via === "local" && e.method === "EtcdDefragment").length, 6);
      assert.equal(maxConcurrentDefrags(mine), 1, "at most one member blocked at any moment");
      // And by etcd's own log: six defragments, never two at once.
      const w = windows(h, t0);
      assert.equal(w.length, 6, JSON.stringify(w));
      assert.equal(maxOverlap(w), 1, `at most one member blocked at a time: ${JSON.stringify(w)}`);
    });

    it("--lease auto with no Kubernetes configured, and --lease none: the log says nothing stops a run started at the same moment", async () => {
      const none = await runCli(AUTO_RUN, { env: { TALOSCONFIG: talosconfig } });
      assert.equal(none.code, 0, none.stderr);
      assert.match(
        none.stderr,
        /no lease: no Kubernetes API is configured \(no --kubeconfig, KUBECONFIG, pod or ~\/\.kube\/config\)/,
      );
      assert.match(none.stderr, ALONE);
      const off = await runCli([...AUTO_RUN, "--lease", "none"], {
        env: { TALOSCONFIG: talosconfig, KUBECONFIG: admin },
      });
      assert.equal(off.code, 0, off.stderr);
      assert.match(off.stderr, /no lease \(--lease none\)/);
      assert.doesNotMatch(off.stderr, /holding the lease/);
    });

    it("without waiting: the second run exits 3 naming the holder, touches nothing, and says refused", async () => {
      const holder = await guard("etcd-defrag", "the-other-run").acquire(noWait);
      try {
        const since = h.journal.length;
        const r = await runCli(
          ["run", "--rule", "true", "--output", "json", "--lease", `${NS}/etcd-defrag`, "--lease-wait", "0s"],
          { env: { TALOSCONFIG: talosconfig, KUBECONFIG: admin } },
        );
        assert.equal(r.code, 3, r.stderr);
        const s = parseSummary(r.stdout);
        assert.equal(s.result, "refused");
        assert.deepEqual(s.members, []);
        const [refusal] = s.refusals;
        assert.ok(refusal);
        assert.equal(refusal.gate, "another-run");
        assert.match(
          refusal.message,
          /another run holds the lease kube-system\/etcd-defrag: "the-other-run" since /,
        );
        assert.equal(h.journal.length, since, "no Talos API call at all");
        assert.match(
          r.stderr,
          /refused: another run holds the lease kube-system\/etcd-defrag: "the-other-run"/,
        );
      } finally {
        await holder.release();
      }
    });
  });
});
