// The Helm chart and the Flux example: rendered with the real helm and kustomize,
// validated offline against the Kubernetes and CRD schemas, applied server-side to a real
// kube-apiserver (with minimal CRDs for the custom kinds), and the rendered CronJob's and
// verification Job's containers run exactly as the image would run them, against the harness,
// the CronJob's holding its Lease with the token of the chart's ServiceAccount and only the RBAC
// the chart grants.

import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import {
  chmodSync,
  copyFileSync,
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { tmpdir, userInfo } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";

import { ApiException, CoordinationV1Api, CoreV1Api, KubeConfig } from "@kubernetes/client-node";
import { parse, parseAllDocuments } from "yaml";

import { OPTIONS } from "../../src/cli/options.js";
import { parseDuration } from "../../src/core/units.js";
import { loadKubeConfig } from "../../src/k8s/kubeconfig.js";
import { createLeaseGuard } from "../../src/k8s/lease.js";
import { systemClock } from "../../src/run/clock.js";

import {
  CHART,
  containerEnv,
  entrypoint,
  find,
  helm,
  imageEnv,
  imageRuns,
  podSpec,
  render,
  tool,
  tryRender,
  type K8sObject,
} from "../harness/chart.js";
import { MINIMAL_CRDS } from "../harness/crds.js";
import { validateObject } from "../harness/k8s-schemas.js";
import { startHarness, type Harness } from "../harness/harness.js";
import { KubeApiServer } from "../harness/kube-apiserver.js";
import { REPO_ROOT, runCli } from "../harness/run-cli.js";
import { TEST_RULE, parseSummary } from "../harness/run-summary.js";
import { MiB } from "../harness/units.js";
import { waitFor } from "../harness/wait.js";

/** The object of this kind and API version (both ServiceAccounts are named etcd-defrag). */
function findVersion(objects: K8sObject[], kind: string, apiVersion: string): K8sObject {
  const o = objects.find((x) => x.kind === kind && x.apiVersion === apiVersion);
  assert.ok(o, `${apiVersion} ${kind} rendered`);
  return o;
}

/** The Talos ServiceAccount (talos.dev/v1alpha1), not the Kubernetes one of the lease. */
const talosServiceAccount = (objects: K8sObject[]): K8sObject =>
  findVersion(objects, "ServiceAccount", "talos.dev/v1alpha1");

/** The projected volume that stands in for automountServiceAccountToken, for the lease only. */
const KUBE_API_ACCESS = {
  name: "kube-api-access",
  projected: {
    defaultMode: 0o444, // 292
    sources: [
      { serviceAccountToken: { path: "token", expirationSeconds: 3607 } },
      { configMap: { name: "kube-root-ca.crt", items: [{ key: "ca.crt", path: "ca.crt" }] } },
      {
        downwardAPI: {
          items: [{ path: "namespace", fieldRef: { apiVersion: "v1", fieldPath: "metadata.namespace" } }],
        },
      },
    ],
  },
};
const KUBE_API_ACCESS_MOUNT = {
  name: "kube-api-access",
  mountPath: "/var/run/secrets/kubernetes.io/serviceaccount",
  readOnly: true,
};
const LEASE_ENV = /^TALOS_ETCD_DEFRAG_LEASE/;

/** The least values of backend etcd: etcd's client URLs and the Secret with the client certificate. */
const ETCD = {
  backend: "etcd",
  etcd: {
    endpoints: ["https://10.0.0.11:2379", "https://10.0.0.12:2379", "https://10.0.0.13:2379"],
    clientCertSecret: "etcd-defrag-etcd-client",
  },
};
/** ETCD with more values merged in (maps merged, as Helm merges values). */
const etcdValues = (extra: Record<string, unknown> = {}): Record<string, unknown> => merge(ETCD, extra);
const ETCD_CLIENT_DIR = "/var/run/secrets/etcd-client";
/** The Secret's volume: three keys to fixed file names, 0440 for the pod's fsGroup. */
const ETCD_CLIENT_VOLUME = {
  name: "etcd-client",
  secret: {
    secretName: "etcd-defrag-etcd-client",
    defaultMode: 0o440, // 288
    items: [
      { key: "ca.crt", path: "ca.crt" },
      { key: "tls.crt", path: "tls.crt" },
      { key: "tls.key", path: "tls.key" },
    ],
  },
};
const ETCD_CLIENT_MOUNT = { name: "etcd-client", mountPath: ETCD_CLIENT_DIR, readOnly: true };
/** Where the pods of backend etcd run by default: control-plane nodes (the label, any value), on their network. */
const CONTROL_PLANE_AFFINITY = {
  nodeAffinity: {
    requiredDuringSchedulingIgnoredDuringExecution: {
      nodeSelectorTerms: [
        { matchExpressions: [{ key: "node-role.kubernetes.io/control-plane", operator: "Exists" }] },
      ],
    },
  },
};
const CONTROL_PLANE_TOLERATIONS = [
  { key: "node-role.kubernetes.io/control-plane", operator: "Exists", effect: "NoSchedule" },
  { key: "CriticalAddonsOnly", operator: "Exists" },
];

/** The pod fields that place it, loosely typed (the harness's PodSpec types the rest). */
interface Placement {
  hostNetwork?: boolean;
  dnsPolicy?: string;
  nodeSelector?: Record<string, string>;
  tolerations?: unknown[];
  affinity?: unknown;
  securityContext: { fsGroup?: number };
  volumes?: unknown[];
}
const placement = (o: K8sObject): Placement => podSpec(o) as unknown as Placement;

describe("Helm chart", () => {
  it("passes helm lint, with backend etcd too", () => {
    const r = helm(["lint", CHART]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const etcd = helm([
      "lint",
      CHART,
      "--set",
      "backend=etcd,etcd.clientCertSecret=etcd-client,etcd.endpoints={https://10.0.0.11:2379}",
    ]);
    assert.equal(etcd.code, 0, etcd.stdout + etcd.stderr);
  });

  it("the schema validator is live: an invalid object fails", () => {
    const cronJob = find(render(), "CronJob");
    const broken = structuredClone(cronJob);
    (broken.spec as { schedule: unknown }).schedule = 7;
    assert.throws(() => {
      validateObject(broken);
    });
  });

  it("serviceAccount mode (default): the weekly, locked-down CronJob and a Talos ServiceAccount with os:operator", () => {
    const objects = render();
    for (const o of objects) validateObject(o);
    assert.deepEqual(objects.map((o) => `${o.apiVersion} ${o.kind}`).sort(), [
      "batch/v1 CronJob",
      "batch/v1 Job",
      "coordination.k8s.io/v1 Lease",
      "rbac.authorization.k8s.io/v1 Role",
      "rbac.authorization.k8s.io/v1 RoleBinding",
      "talos.dev/v1alpha1 ServiceAccount",
      "v1 ServiceAccount",
    ]);
    const cronJob = find(objects, "CronJob");
    assert.equal(cronJob.metadata.name, "etcd-defrag");
    assert.equal(cronJob.metadata.namespace, "kube-system");
    assert.equal(cronJob.metadata.labels?.["app.kubernetes.io/name"], "etcd-defrag");
    assert.equal(cronJob.spec.schedule, "0 2 * * 0");
    assert.equal(cronJob.spec.timeZone, "UTC");
    assert.equal(cronJob.spec.concurrencyPolicy, "Forbid");
    const job = (cronJob.spec.jobTemplate as { spec: Record<string, unknown> }).spec;
    assert.equal(job.backoffLimit, 0);
    assert.equal(cronJob.spec.startingDeadlineSeconds, 3600, "a missed run starts at most an hour late");
    assert.ok((job.activeDeadlineSeconds as number) > 0);
    assert.ok((cronJob.spec.successfulJobsHistoryLimit as number) >= 1);
    const pod = podSpec(cronJob);
    assert.equal(pod.restartPolicy, "Never");
    assert.equal(pod.automountServiceAccountToken, false);
    assert.notEqual(pod.hostNetwork, true);
    assert.equal(pod.securityContext.runAsNonRoot, true);
    assert.equal(pod.securityContext.runAsUser, 65532);
    assert.equal(pod.securityContext.seccompProfile.type, "RuntimeDefault");
    const c = pod.containers[0]!;
    assert.equal(c.securityContext.allowPrivilegeEscalation, false);
    assert.equal(c.securityContext.readOnlyRootFilesystem, true);
    assert.deepEqual(c.securityContext.capabilities.drop, ["ALL"]);
    assert.ok(!(pod.volumes ?? []).some((v) => v.hostPath !== undefined), "no hostPath");
    assert.deepEqual(pod.volumes, [
      { name: "talos-secrets", secret: { secretName: "etcd-defrag" } },
      KUBE_API_ACCESS,
    ]);
    assert.deepEqual(c.volumeMounts, [
      { name: "talos-secrets", mountPath: "/var/run/secrets/talos.dev", readOnly: true },
      KUBE_API_ACCESS_MOUNT,
    ]);
    assert.equal(c.env.find((e) => e.name === "TALOSCONFIG")?.value, "/var/run/secrets/talos.dev/config");
    assert.ok(!c.env.some((e) => e.valueFrom !== undefined), "no Secret keys in this mode");
    const sa = talosServiceAccount(objects);
    assert.equal(sa.metadata.name, "etcd-defrag");
    assert.deepEqual(sa.spec.roles, ["os:operator"]);
  });

  it("os:admin is granted only when leader moves are allowed and not disabled", () => {
    const roles = (values: Record<string, unknown>): unknown =>
      talosServiceAccount(render(values)).spec.roles;
    assert.deepEqual(roles({ auth: { serviceAccount: { allowLeaderMove: true } } }), [
      "os:operator",
      "os:admin",
    ]);
    assert.deepEqual(
      roles({ auth: { serviceAccount: { allowLeaderMove: true } }, defrag: { moveLeader: "never" } }),
      ["os:operator"],
    );
  });

  it("secret mode: TALOS_CA/CRT/KEY from the Secret, endpoints from values", () => {
    const objects = render({
      auth: { mode: "secret", endpoints: ["10.0.0.11", "10.0.0.12"] },
      lease: { enabled: false },
    });
    for (const o of objects) validateObject(o);
    assert.deepEqual(
      objects.map((o) => o.kind),
      ["CronJob", "Job"],
    );
    const c = podSpec(find(objects, "CronJob")).containers[0]!;
    for (const key of ["TALOS_CA", "TALOS_CRT", "TALOS_KEY"]) {
      assert.deepEqual(c.env.find((e) => e.name === key)?.valueFrom, {
        secretKeyRef: { name: "etcd-defrag-talosconfig", key },
      });
    }
    assert.equal(c.env.find((e) => e.name === "TALOS_ENDPOINTS")?.value, "10.0.0.11,10.0.0.12");
    assert.equal(c.volumeMounts, undefined);
  });

  it("endpoints in every form the tool takes pass the schema", () => {
    const endpoints = ["10.0.0.11", "cp1.lan:50000", "https://[fd00::2]:50000", "fd00::3", "talos.default"];
    const c = podSpec(find(render({ auth: { mode: "secret", endpoints } }), "CronJob")).containers[0]!;
    assert.equal(c.env.find((e) => e.name === "TALOS_ENDPOINTS")?.value, endpoints.join(","));
  });

  it("externalSecret mode: an ExternalSecret from the ClusterSecretStore fills that Secret", () => {
    const objects = render({ auth: { mode: "externalSecret", endpoints: ["10.0.0.11"] } });
    for (const o of objects) validateObject(o);
    const es = find(objects, "ExternalSecret");
    assert.equal(es.apiVersion, "external-secrets.io/v1");
    assert.deepEqual(es.spec.secretStoreRef, { kind: "ClusterSecretStore", name: "onepassword-connect" });
    assert.deepEqual((es.spec.target as { name: string }).name, "etcd-defrag-talosconfig");
    assert.deepEqual(es.spec.data, [
      { secretKey: "TALOS_CA", remoteRef: { key: "talos", property: "TALOS_CA" } },
      { secretKey: "TALOS_CRT", remoteRef: { key: "talos", property: "TALOS_CRT" } },
      { secretKey: "TALOS_KEY", remoteRef: { key: "talos", property: "TALOS_KEY" } },
    ]);
  });

  it("externalSecret mode: the external-secrets API version is a value (v1beta1 for operators before v0.16.2)", () => {
    const es = find(
      render({
        auth: {
          mode: "externalSecret",
          endpoints: ["10.0.0.11"],
          externalSecret: { apiVersion: "external-secrets.io/v1beta1" },
        },
      }),
      "ExternalSecret",
    );
    assert.equal(es.apiVersion, "external-secrets.io/v1beta1");
    validateObject(es);
  });

  it("backend etcd: the CronJob on a control-plane node's network, the client certificate's Secret mounted read-only and the tool told its files; no Talos ServiceAccount, no hostPath", () => {
    const objects = render(ETCD);
    for (const o of objects) validateObject(o);
    assert.deepEqual(objects.map((o) => `${o.apiVersion} ${o.kind}`).sort(), [
      "batch/v1 CronJob",
      "batch/v1 Job",
      "coordination.k8s.io/v1 Lease",
      "rbac.authorization.k8s.io/v1 Role",
      "rbac.authorization.k8s.io/v1 RoleBinding",
      "v1 ServiceAccount",
    ]);
    const text = JSON.stringify(objects);
    assert.doesNotMatch(text, /hostPath|\/etc\/kubernetes|\/var\/lib\/rancher/, "nothing of the node's disk");
    assert.doesNotMatch(text, /ca\.key|talos\.dev|TALOSCONFIG|TALOS_(CA|CRT|KEY|ENDPOINTS|NODES)\b/);
    const cronJob = find(objects, "CronJob");
    const pod = podSpec(cronJob);
    const where = placement(cronJob);
    assert.equal(where.hostNetwork, true);
    assert.equal(where.dnsPolicy, "ClusterFirstWithHostNet", "cluster DNS still resolves the Pushgateway");
    assert.deepEqual(where.affinity, CONTROL_PLANE_AFFINITY);
    assert.deepEqual(where.tolerations, CONTROL_PLANE_TOLERATIONS);
    assert.equal(where.nodeSelector, undefined);
    // hostNetwork needs no privilege: the hardening of the Talos backend, unchanged.
    assert.equal(pod.securityContext.runAsNonRoot, true);
    assert.equal(pod.securityContext.runAsUser, 65532);
    assert.equal(pod.securityContext.seccompProfile.type, "RuntimeDefault");
    assert.equal(where.securityContext.fsGroup, 65532, "the Secret's 0440 files are the run's group's");
    assert.equal(pod.automountServiceAccountToken, false);
    const c = pod.containers[0]!;
    assert.deepEqual(c.securityContext, {
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      capabilities: { drop: ["ALL"] },
    });
    assert.deepEqual(pod.volumes, [ETCD_CLIENT_VOLUME, KUBE_API_ACCESS]);
    assert.deepEqual(c.volumeMounts, [ETCD_CLIENT_MOUNT, KUBE_API_ACCESS_MOUNT]);
    const env = (name: string) => c.env.find((e) => e.name === name)?.value;
    assert.equal(env("TALOS_ETCD_DEFRAG_BACKEND"), "etcd");
    assert.equal(env("TALOS_ETCD_DEFRAG_ETCD_ENDPOINTS"), ETCD.etcd.endpoints.join(","));
    assert.equal(env("TALOS_ETCD_DEFRAG_CACERT"), `${ETCD_CLIENT_DIR}/ca.crt`);
    assert.equal(env("TALOS_ETCD_DEFRAG_CERT"), `${ETCD_CLIENT_DIR}/tls.crt`);
    assert.equal(env("TALOS_ETCD_DEFRAG_KEY"), `${ETCD_CLIENT_DIR}/tls.key`);
    // Each variable of a file names one of the volume's items, under its mount.
    for (const name of ["TALOS_ETCD_DEFRAG_CACERT", "TALOS_ETCD_DEFRAG_CERT", "TALOS_ETCD_DEFRAG_KEY"]) {
      const path = env(name) ?? "";
      assert.ok(path.startsWith(`${ETCD_CLIENT_MOUNT.mountPath}/`), path);
      assert.ok(
        ETCD_CLIENT_VOLUME.secret.items.some((i) => `${ETCD_CLIENT_MOUNT.mountPath}/${i.path}` === path),
        path,
      );
    }
    assert.ok(!c.env.some((e) => e.valueFrom !== undefined), "no Secret key in the environment");
    assert.equal(
      env("TALOS_ETCD_DEFRAG_LEASE"),
      "kube-system/etcd-defrag",
      "the Lease as in the Talos backend",
    );
    // The verification reaches etcd as the runs will: same network, nodes, Secret and files.
    const verify = find(objects, "Job");
    const verifyWhere = placement(verify);
    for (const field of ["hostNetwork", "dnsPolicy", "nodeSelector", "tolerations", "affinity"] as const)
      assert.deepEqual(verifyWhere[field], where[field], field);
    assert.equal(verifyWhere.securityContext.fsGroup, 65532);
    assert.deepEqual(placement(verify).volumes, [ETCD_CLIENT_VOLUME]);
    for (const vc of [...(podSpec(verify).initContainers ?? []), ...podSpec(verify).containers]) {
      assert.deepEqual(vc.volumeMounts, [ETCD_CLIENT_MOUNT], vc.name);
      assert.equal(
        vc.env.find((e) => e.name === "TALOS_ETCD_DEFRAG_KEY")?.value,
        `${ETCD_CLIENT_DIR}/tls.key`,
      );
    }
    // The Talos backend stays off the node's network.
    for (const o of [find(render(), "CronJob"), find(render(), "Job")]) {
      assert.equal(placement(o).hostNetwork, undefined, o.kind);
      assert.equal(placement(o).affinity, undefined, o.kind);
    }
  });

  it("backend etcd: the Secret's key names, the nodes (label Exists, the user's own nodeAffinity wins), tolerations added to the user's", () => {
    const keys = { ca: "etcd-ca", cert: "etcd-client", key: "etcd-client-key" };
    const custom = podSpec(
      find(
        render(etcdValues({ etcd: { clientCertSecret: "etcd-client-cert", clientCertSecretKeys: keys } })),
        "CronJob",
      ),
    );
    assert.deepEqual(custom.volumes?.[0], {
      name: "etcd-client",
      secret: {
        secretName: "etcd-client-cert",
        defaultMode: 0o440,
        items: [
          { key: "etcd-ca", path: "ca.crt" },
          { key: "etcd-client", path: "tls.crt" },
          { key: "etcd-client-key", path: "tls.key" },
        ],
      },
    });
    assert.equal(
      custom.containers[0]!.env.find((e) => e.name === "TALOS_ETCD_DEFRAG_CERT")?.value,
      `${ETCD_CLIENT_DIR}/tls.crt`,
      "the files keep their names whatever the keys",
    );
    const where = (values: Record<string, unknown>) => placement(find(render(etcdValues(values)), "CronJob"));
    const mine = { key: "dedicated", operator: "Equal", value: "etcd-defrag", effect: "NoSchedule" };
    const both = where({ tolerations: [mine], nodeSelector: { "kubernetes.io/os": "linux" } });
    assert.deepEqual(both.tolerations, [...CONTROL_PLANE_TOLERATIONS, mine]);
    assert.deepEqual(both.nodeSelector, { "kubernetes.io/os": "linux" });
    assert.deepEqual(both.affinity, CONTROL_PLANE_AFFINITY);
    // k3s and RKE2 servers only as etcd members (an etcd-only node), say.
    assert.deepEqual(where({ etcd: { controlPlaneLabel: "node-role.kubernetes.io/etcd" } }).affinity, {
      nodeAffinity: {
        requiredDuringSchedulingIgnoredDuringExecution: {
          nodeSelectorTerms: [
            { matchExpressions: [{ key: "node-role.kubernetes.io/etcd", operator: "Exists" }] },
          ],
        },
      },
    });
    const own = {
      nodeAffinity: {
        requiredDuringSchedulingIgnoredDuringExecution: {
          nodeSelectorTerms: [
            { matchExpressions: [{ key: "kubernetes.io/hostname", operator: "In", values: ["cp1"] }] },
          ],
        },
      },
      podAntiAffinity: {},
    };
    assert.deepEqual(where({ affinity: own }).affinity, own, "the user's nodeAffinity, as it is");
    const podAffinityOnly = { podAntiAffinity: { preferredDuringSchedulingIgnoredDuringExecution: [] } };
    assert.deepEqual(where({ affinity: podAffinityOnly }).affinity, {
      ...podAffinityOnly,
      ...CONTROL_PLANE_AFFINITY,
    });
    const anywhere = where({ etcd: { controlPlaneLabel: "", tolerations: [] } });
    assert.equal(anywhere.affinity, undefined);
    assert.equal(anywhere.tolerations, undefined);
    assert.equal(anywhere.hostNetwork, true, "still the node's network");
    // The kubeadm and k3s/RKE2 labels both satisfy Exists; a nodeSelector with "" would match only kubeadm's.
    for (const o of render(etcdValues({ tolerations: [mine], affinity: own }))) validateObject(o);
  });

  it("backend etcd: etcd.compact and etcd.withoutDefragGauge reach the runs and the verification; the metrics, the snapshot and the lease as with Talos", () => {
    const objects = render(
      etcdValues({
        etcd: { compact: true, withoutDefragGauge: "status-only" },
        metrics: { pushgatewayUrl: "http://pushgateway.monitoring:9091", clusterName: "kubeadm-prod" },
        prometheusRule: { enabled: true },
        snapshot: { enabled: true },
      }),
    );
    // The PersistentVolumeClaim is checked by the API server (below), not offline.
    for (const o of objects) if (o.kind !== "PersistentVolumeClaim") validateObject(o);
    assert.ok(objects.some((o) => o.kind === "PrometheusRule"));
    assert.ok(objects.some((o) => o.kind === "PersistentVolumeClaim"));
    const cron = podSpec(find(objects, "CronJob"));
    const env = (c: { env: { name: string; value?: string }[] }, name: string) =>
      c.env.find((e) => e.name === name)?.value;
    const c = cron.containers[0]!;
    assert.equal(env(c, "TALOS_ETCD_DEFRAG_COMPACT"), "true");
    assert.equal(env(c, "TALOS_ETCD_DEFRAG_WITHOUT_DEFRAG_GAUGE"), "status-only");
    assert.equal(env(c, "TALOS_ETCD_DEFRAG_PUSHGATEWAY_URL"), "http://pushgateway.monitoring:9091");
    assert.equal(env(c, "TALOS_ETCD_DEFRAG_CLUSTER_NAME"), "kubeadm-prod");
    assert.equal(env(c, "TALOS_ETCD_DEFRAG_SNAPSHOT_DIR"), "/snapshots");
    assert.deepEqual(
      cron.volumes?.map((v) => v.name),
      ["snapshots", "etcd-client", "kube-api-access"],
    );
    assert.deepEqual(
      c.volumeMounts?.map((m) => m.name),
      ["etcd-client", "kube-api-access", "snapshots"],
    );
    const verify = podSpec(find(objects, "Job"));
    for (const vc of [...(verify.initContainers ?? []), ...verify.containers]) {
      assert.equal(env(vc, "TALOS_ETCD_DEFRAG_COMPACT"), "true", vc.name);
      assert.equal(env(vc, "TALOS_ETCD_DEFRAG_WITHOUT_DEFRAG_GAUGE"), "status-only", vc.name);
      assert.equal(env(vc, "TALOS_ETCD_DEFRAG_PUSHGATEWAY_URL"), undefined, vc.name);
    }
    // The worst case and its check, as with Talos.
    assert.match(
      tryRender(etcdValues({ cronjob: { activeDeadlineSeconds: 3600 } })).stderr,
      /cronjob\.activeDeadlineSeconds \(3600 s\) is shorter than the worst case of a run, 15690 s/,
    );
  });

  it("backend etcd: endpoints in the forms etcd takes pass the schema (https: the tool is always given a certificate)", () => {
    const endpoints = [
      "https://10.0.0.11:2379",
      "https://[fd00::2]:2379",
      "https://cp1.lan:2379",
      "https://cp2",
    ];
    const c = podSpec(find(render(etcdValues({ etcd: { endpoints } })), "CronJob")).containers[0]!;
    assert.equal(
      c.env.find((e) => e.name === "TALOS_ETCD_DEFRAG_ETCD_ENDPOINTS")?.value,
      endpoints.join(","),
    );
  });

  it("the NetworkPolicy lets the metrics reach the Pushgateway on its URL's port, and takes extra egress rules", () => {
    const egress = (values: Record<string, unknown>) => {
      const policy = find(
        render({ networkPolicy: { enabled: true }, lease: { enabled: false }, ...values }),
        "NetworkPolicy",
      );
      validateObject(policy);
      return (policy.spec.egress as unknown[]).slice(2);
    };
    const port = (p: number) => ({ ports: [{ protocol: "TCP", port: p }] });
    assert.deepEqual(egress({ metrics: { pushgatewayUrl: "http://pushgateway.monitoring:9091" } }), [
      port(9091),
    ]);
    assert.deepEqual(egress({ metrics: { pushgatewayUrl: "https://pg.example.com" } }), [port(443)]);
    assert.deepEqual(egress({ metrics: { pushgatewayUrl: "http://pg" } }), [port(80)]);
    assert.deepEqual(egress({}), [], "no Pushgateway, no rule for one");
    const extra = {
      to: [{ namespaceSelector: { matchLabels: { name: "proxy" } } }],
      ports: [{ protocol: "TCP", port: 8080 }],
    };
    assert.deepEqual(egress({ networkPolicy: { enabled: true, extraEgress: [extra] } }), [extra]);
  });

  it("the optional NetworkPolicy allows egress only to the Talos API, DNS, and with the lease the Kubernetes API", () => {
    const withLease = find(render({ networkPolicy: { enabled: true } }), "NetworkPolicy");
    validateObject(withLease);
    assert.deepEqual((withLease.spec.egress as unknown[]).at(-1), {
      ports: [
        { protocol: "TCP", port: 443 },
        { protocol: "TCP", port: 6443 },
      ],
    });
    const policy = find(
      render({ networkPolicy: { enabled: true }, lease: { enabled: false } }),
      "NetworkPolicy",
    );
    validateObject(policy);
    assert.deepEqual(policy.spec.egress, [
      { ports: [{ protocol: "TCP", port: 50000 }] },
      {
        ports: [
          { protocol: "UDP", port: 53 },
          { protocol: "TCP", port: 53 },
        ],
      },
    ]);
  });

  it("metrics: the Pushgateway URL and cluster name reach the job, and the PrometheusRule validates", () => {
    const objects = render({
      metrics: { pushgatewayUrl: "http://pushgateway.monitoring:9091", clusterName: "prod" },
      prometheusRule: { enabled: true, labels: { release: "kube-prometheus-stack" } },
    });
    for (const o of objects) validateObject(o);
    const c = podSpec(find(objects, "CronJob")).containers[0]!;
    assert.equal(
      c.env.find((e) => e.name === "TALOS_ETCD_DEFRAG_PUSHGATEWAY_URL")?.value,
      "http://pushgateway.monitoring:9091",
    );
    assert.equal(c.env.find((e) => e.name === "TALOS_ETCD_DEFRAG_CLUSTER_NAME")?.value, "prod");
    assert.equal(find(objects, "PrometheusRule").metadata.labels?.release, "kube-prometheus-stack");
  });

  it("the defaults' worst case fits the deadline, and one that fits renders", () => {
    const cronJob = find(render(), "CronJob");
    const job = (cronJob.spec.jobTemplate as { spec: { activeDeadlineSeconds: number } }).spec;
    // 3 x (15m + 4 x 15m + 2 x 5m + 10s) + 10 x 30s + lease.wait 1m = 15690 s.
    assert.ok(job.activeDeadlineSeconds >= 15690, String(job.activeDeadlineSeconds));
    const tight = find(
      render({
        cronjob: { activeDeadlineSeconds: 1900 },
        defrag: { timeout: "2m", maxWait: "1m", healthTimeout: "90s", pause: "500ms", callTimeout: "10s" },
      }),
      "CronJob",
    );
    // 3 x (120 + 4 x 60 + 2 x 90 + 0.5) + 100 + 60 = 1781.5 s, under 1900.
    assert.equal(
      (tight.spec.jobTemplate as { spec: { activeDeadlineSeconds: number } }).spec.activeDeadlineSeconds,
      1900,
    );
    // The snapshot adds its timeout: 1781.5 + 120 = 1901.5 s, over 1900.
    assert.match(
      tryRender({
        cronjob: { activeDeadlineSeconds: 1900 },
        defrag: { timeout: "2m", maxWait: "1m", healthTimeout: "90s", pause: "500ms", callTimeout: "10s" },
        snapshot: { enabled: true },
      }).stderr,
      /worst case of a run, 1902 s/,
    );
  });

  it("the hourly way: the schedule and the @fragmentation-alert preset reach the CronJob and the verification", () => {
    const objects = render({ cronjob: { schedule: "0 * * * *" }, defrag: { rule: "@fragmentation-alert" } });
    const cronJob = find(objects, "CronJob");
    assert.equal(cronJob.spec.schedule, "0 * * * *");
    assert.equal(cronJob.spec.concurrencyPolicy, "Forbid");
    const rule = (c: { env: { name: string; value?: string }[] }) =>
      c.env.find((e) => e.name === "TALOS_ETCD_DEFRAG_RULE")?.value;
    assert.equal(rule(podSpec(cronJob).containers[0]!), "@fragmentation-alert");
    assert.equal(rule(podSpec(find(objects, "Job")).containers[0]!), "@fragmentation-alert");
  });

  it("imagePullSecrets reach the CronJob's and the verification Job's pods", () => {
    const objects = render({ imagePullSecrets: [{ name: "regcred" }] });
    for (const o of objects) validateObject(o);
    assert.deepEqual(podSpec(find(objects, "CronJob")).imagePullSecrets, [{ name: "regcred" }]);
    assert.deepEqual(podSpec(find(objects, "Job")).imagePullSecrets, [{ name: "regcred" }]);
    assert.equal(podSpec(find(render(), "CronJob")).imagePullSecrets, undefined);
  });

  it("defrag.quotaBytes: an integer reaches the tool as digits, a size string as it is", () => {
    const quota = (q: unknown): string | undefined =>
      podSpec(find(render({ defrag: { quotaBytes: q } }), "CronJob")).containers[0]?.env.find(
        (e) => e.name === "TALOS_ETCD_DEFRAG_QUOTA_BYTES",
      )?.value;
    assert.equal(quota(4294967296), "4294967296");
    assert.equal(quota(8589934592), "8589934592");
    assert.equal(quota("4GiB"), "4GiB");
  });

  it("snapshot: off by default; on, a kept PVC mounted at /snapshots, the run told to use it, writable by its group", () => {
    assert.equal(
      render().find((o) => o.kind === "PersistentVolumeClaim"),
      undefined,
    );
    const objects = render({ snapshot: { enabled: true, keep: 5, size: "20Gi", storageClassName: "fast" } });
    const pvc = find(objects, "PersistentVolumeClaim");
    assert.equal(pvc.metadata.name, "etcd-defrag-snapshots");
    assert.equal(pvc.metadata.annotations?.["helm.sh/resource-policy"], "keep");
    assert.deepEqual(pvc.spec, {
      accessModes: ["ReadWriteOnce"],
      storageClassName: "fast",
      resources: { requests: { storage: "20Gi" } },
    });
    const pod = podSpec(find(objects, "CronJob"));
    const c = pod.containers[0]!;
    assert.equal(c.env.find((e) => e.name === "TALOS_ETCD_DEFRAG_SNAPSHOT_DIR")?.value, "/snapshots");
    assert.equal(c.env.find((e) => e.name === "TALOS_ETCD_DEFRAG_SNAPSHOT_KEEP")?.value, "5");
    assert.deepEqual(
      c.volumeMounts?.find((m) => m.name === "snapshots"),
      { name: "snapshots", mountPath: "/snapshots" },
    );
    assert.deepEqual(
      (pod.volumes as { name: string; persistentVolumeClaim?: unknown }[] | undefined)?.find(
        (v) => v.name === "snapshots",
      ),
      { name: "snapshots", persistentVolumeClaim: { claimName: "etcd-defrag-snapshots" } },
    );
    assert.equal((pod.securityContext as { fsGroup?: number }).fsGroup, 65532);
  });

  it("defrag.nospaceDisarmBelow reaches the tool (0 switches disarming off)", () => {
    const share = (v: unknown): string | undefined =>
      podSpec(find(render({ defrag: { nospaceDisarmBelow: v } }), "CronJob")).containers[0]?.env.find(
        (e) => e.name === "TALOS_ETCD_DEFRAG_NOSPACE_DISARM_BELOW",
      )?.value;
    assert.equal(share(0.7), "0.7");
    assert.equal(share(0), "0");
  });

  it("logs are text by default", () => {
    const c = podSpec(find(render(), "CronJob")).containers[0]!;
    assert.equal(c.env.find((e) => e.name === "TALOS_ETCD_DEFRAG_LOG_FORMAT")?.value, "text");
  });

  it("the verification Job: a post-install/post-upgrade hook running status, then run --dry-run, without metrics", () => {
    const objects = render({ metrics: { pushgatewayUrl: "http://pushgateway.monitoring:9091" } });
    const job = find(objects, "Job");
    validateObject(job);
    assert.equal(job.metadata.name, "etcd-defrag-verify");
    const annotations = job.metadata.annotations ?? {};
    assert.equal(annotations["helm.sh/hook"], "post-install,post-upgrade");
    assert.equal(annotations["helm.sh/hook-delete-policy"], "before-hook-creation");
    assert.equal(job.spec.backoffLimit, 0);
    const pod = podSpec(job);
    assert.deepEqual(
      pod.initContainers?.map((c) => c.args),
      [["status", "--output", "table"]],
    );
    assert.deepEqual(
      pod.containers.map((c) => c.args),
      [["run", "--dry-run"]],
    );
    // The CronJob's container, less what the verification must not have: its metrics, and the lease (a dry
    // run takes none) with the Kubernetes token that is there only for the lease.
    const withoutToken = <T extends { name: string }>(list: T[] | undefined): T[] | undefined => {
      const rest = list?.filter((x) => x.name !== "kube-api-access");
      return rest?.length ? rest : undefined;
    };
    const sameAsCronJob = (values: Record<string, unknown>, lease: boolean) => {
      const rendered = render(values);
      const verifyPod = podSpec(find(rendered, "Job"));
      const cronPod = podSpec(find(rendered, "CronJob"));
      const cronJob = cronPod.containers[0]!;
      // With the lease, the chart's; without, "none" (the CronJob has no Kubernetes identity to take one).
      assert.equal(
        cronJob.env.find((e) => e.name === "TALOS_ETCD_DEFRAG_LEASE")?.value,
        lease ? "kube-system/etcd-defrag" : "none",
      );
      for (const c of [...(verifyPod.initContainers ?? []), ...verifyPod.containers]) {
        assert.equal(c.image, cronJob.image);
        assert.deepEqual(c.securityContext, cronJob.securityContext);
        assert.deepEqual(c.volumeMounts, withoutToken(cronJob.volumeMounts));
        // A dry run's metrics would replace the last real run's.
        assert.deepEqual(
          c.env,
          cronJob.env.filter(
            (e) => e.name !== "TALOS_ETCD_DEFRAG_PUSHGATEWAY_URL" && !LEASE_ENV.test(e.name),
          ),
        );
      }
      assert.deepEqual(verifyPod.volumes, withoutToken(cronPod.volumes));
      assert.equal(verifyPod.automountServiceAccountToken, false);
      assert.equal(
        verifyPod.serviceAccountName,
        undefined,
        "no Kubernetes identity: the verification holds no Lease",
      );
      assert.equal(cronPod.serviceAccountName, lease ? "etcd-defrag" : undefined);
    };
    sameAsCronJob({ metrics: { pushgatewayUrl: "http://pushgateway.monitoring:9091" } }, true);
    sameAsCronJob(
      { metrics: { pushgatewayUrl: "http://pushgateway.monitoring:9091" }, lease: { enabled: false } },
      false,
    );
    sameAsCronJob({ auth: { mode: "secret", endpoints: ["10.0.0.11"] } }, true);
    sameAsCronJob(etcdValues({ metrics: { pushgatewayUrl: "http://pushgateway.monitoring:9091" } }), true);
    sameAsCronJob(etcdValues({ lease: { enabled: false } }), false);
    assert.deepEqual(podSpec(find(render({ output: "json" }), "Job")).initContainers?.[0]?.args, [
      "status",
      "--output",
      "json",
    ]);
    assert.ok(!render({ verify: { enabled: false } }).some((o) => o.kind === "Job"), "can be switched off");
  });

  it("NOTES warn when the PrometheusRule is on without a Pushgateway", () => {
    // helm renders NOTES.txt only at install; a copy of the chart renders it as a template, with tpl.
    const dir = mkdtempSync(join(tmpdir(), "chart-notes-"));
    const chart = join(dir, "etcd-defrag");
    cpSync(CHART, chart, { recursive: true });
    copyFileSync(join(chart, "templates", "NOTES.txt"), join(chart, "notes.txt"));
    writeFileSync(
      join(chart, "templates", "zz-notes.yaml"),
      'notes: {{ tpl (.Files.Get "notes.txt") . | toJson }}\n',
    );
    const notes = (values: Record<string, unknown>): string => {
      const r = tryRender(values, chart, ["--show-only", "templates/zz-notes.yaml"]);
      assert.equal(r.code, 0, r.stderr);
      return (parse(r.stdout) as { notes: string }).notes;
    };
    try {
      assert.match(
        notes({ prometheusRule: { enabled: true } }),
        /WARNING: prometheusRule\.enabled is true but metrics\.pushgatewayUrl is empty/,
      );
      assert.doesNotMatch(
        notes({ prometheusRule: { enabled: true }, metrics: { pushgatewayUrl: "http://pg:9091" } }),
        /WARNING/,
      );
      assert.doesNotMatch(notes({}), /WARNING/);
      assert.doesNotMatch(notes({}), /Backend etcd/);
      const etcd = notes(ETCD);
      assert.match(
        etcd,
        /Backend etcd: https:\/\/10\.0\.0\.11:2379, https:\/\/10\.0\.0\.12:2379, https:\/\/10\.0\.0\.13:2379/,
      );
      assert.match(etcd, /Secret\netcd-defrag-etcd-client, on a control-plane node's network/);
      assert.match(etcd, /kubectl describe pod -n kube-system -l app\.kubernetes\.io\/name=etcd-defrag/);
      assert.match(
        etcd,
        /no node labeled node-role\.kubernetes\.io\/control-plane whose taints it tolerates/,
      );
      assert.match(etcd, /keys ca\.crt, tls\.crt, tls\.key\) missing/);
      assert.match(notes({}), /kubectl logs -n kube-system job\/etcd-defrag-verify --all-containers/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("the lease (on by default): the Lease, a ServiceAccount, a Role for that Lease alone (no create), its token mounted only for that", () => {
    const objects = render();
    const role = find(objects, "Role");
    assert.equal(role.metadata.namespace, "kube-system");
    assert.equal(role.metadata.name, "etcd-defrag-lease");
    // The chart creates the Lease, so the Role needs no create (which RBAC cannot limit to one name).
    assert.deepEqual((role as unknown as { rules: unknown }).rules, [
      {
        apiGroups: ["coordination.k8s.io"],
        resources: ["leases"],
        resourceNames: ["etcd-defrag"],
        verbs: ["get", "update"],
      },
    ]);
    const lease = find(objects, "Lease");
    validateObject(lease);
    assert.equal(lease.apiVersion, "coordination.k8s.io/v1");
    assert.equal(lease.metadata.name, "etcd-defrag");
    assert.equal(lease.metadata.namespace, "kube-system");
    assert.deepEqual(lease.spec, {}, "no holder: the first run takes it");
    assert.equal(lease.metadata.annotations?.["helm.toolkit.fluxcd.io/driftDetection"], "disabled");
    const binding = find(objects, "RoleBinding") as unknown as {
      roleRef: { kind: string; name: string };
      subjects: { kind: string; name: string; namespace: string }[];
    };
    assert.deepEqual(binding.roleRef, {
      apiGroup: "rbac.authorization.k8s.io",
      kind: "Role",
      name: role.metadata.name,
    });
    assert.deepEqual(binding.subjects, [
      { kind: "ServiceAccount", name: "etcd-defrag", namespace: "kube-system" },
    ]);
    const sa = findVersion(objects, "ServiceAccount", "v1") as unknown as {
      automountServiceAccountToken: boolean;
    };
    assert.equal(sa.automountServiceAccountToken, false);
    const pod = podSpec(find(objects, "CronJob"));
    assert.equal(pod.serviceAccountName, "etcd-defrag");
    assert.equal(pod.automountServiceAccountToken, false, "no token but the projected one");
    const c = pod.containers[0]!;
    assert.equal(c.env.find((e) => e.name === "TALOS_ETCD_DEFRAG_LEASE")?.value, "kube-system/etcd-defrag");
    assert.equal(c.env.find((e) => e.name === "TALOS_ETCD_DEFRAG_LEASE_WAIT")?.value, "1m");
    // The verification Job (a dry run) takes no lease: no identity, no token, no lease in its environment.
    const verify = podSpec(find(objects, "Job"));
    assert.equal(verify.serviceAccountName, undefined);
    assert.ok(!(verify.volumes ?? []).some((v) => v.projected !== undefined), "no projected token");
    for (const vc of [...(verify.initContainers ?? []), ...verify.containers]) {
      assert.ok(!vc.env.some((e) => LEASE_ENV.test(e.name)), vc.name);
      assert.ok(!(vc.volumeMounts ?? []).some((m) => m.name === "kube-api-access"), vc.name);
    }

    const custom = render({ lease: { name: "defrag.lock", wait: "0s" } });
    assert.equal(find(custom, "Lease").metadata.name, "defrag.lock");
    assert.deepEqual(
      (find(custom, "Role") as unknown as { rules: { resourceNames?: string[] }[] }).rules[0]?.resourceNames,
      ["defrag.lock"],
    );
    const env = podSpec(find(custom, "CronJob")).containers[0]!.env;
    assert.equal(env.find((e) => e.name === "TALOS_ETCD_DEFRAG_LEASE")?.value, "kube-system/defrag.lock");
    assert.equal(env.find((e) => e.name === "TALOS_ETCD_DEFRAG_LEASE_WAIT")?.value, "0s");

    // Switched off: no Kubernetes identity at all, no token, no lease.
    const off = render({ lease: { enabled: false } });
    assert.deepEqual(off.map((o) => `${o.apiVersion} ${o.kind}`).sort(), [
      "batch/v1 CronJob",
      "batch/v1 Job",
      "talos.dev/v1alpha1 ServiceAccount",
    ]);
    const offPod = podSpec(find(off, "CronJob"));
    assert.equal(offPod.serviceAccountName, undefined);
    assert.deepEqual(offPod.volumes, [{ name: "talos-secrets", secret: { secretName: "etcd-defrag" } }]);
    assert.deepEqual(
      offPod.containers[0]!.env.filter((e) => e.name.startsWith("TALOS_ETCD_DEFRAG_LEASE")),
      [{ name: "TALOS_ETCD_DEFRAG_LEASE", value: "none" }],
      "lease.enabled false: told none, not left to auto",
    );
    // Without the verification Job too: just the CronJob and the Talos ServiceAccount.
    assert.deepEqual(
      render({ lease: { enabled: false }, verify: { enabled: false } })
        .map((o) => `${o.apiVersion} ${o.kind}`)
        .sort(),
      ["batch/v1 CronJob", "talos.dev/v1alpha1 ServiceAccount"],
    );
  });

  it("the environment: each name once, the lease after the credentials, extraEnv last (so that it wins)", () => {
    const extraEnv = [
      { name: "TZ", value: "UTC" },
      { name: "NODE_OPTIONS", value: "--max-old-space-size=128" },
    ];
    for (const values of [
      { extraEnv },
      { extraEnv, lease: { enabled: false } },
      {
        extraEnv,
        auth: { mode: "secret", endpoints: ["10.0.0.11"] },
        metrics: { pushgatewayUrl: "http://pg:9091" },
      },
      etcdValues({ extraEnv, metrics: { pushgatewayUrl: "http://pg:9091" } }),
    ]) {
      const objects = render(values);
      const job = podSpec(find(objects, "Job"));
      for (const c of [
        podSpec(find(objects, "CronJob")).containers[0]!,
        ...(job.initContainers ?? []),
        ...job.containers,
      ]) {
        const names = c.env.map((e) => e.name);
        assert.equal(new Set(names).size, names.length, `${c.name}: ${names.join(" ")}`);
        assert.deepEqual(c.env.slice(-extraEnv.length), extraEnv, c.name);
        const lease = names.indexOf("TALOS_ETCD_DEFRAG_LEASE");
        if (lease >= 0) {
          if (c.env[lease]?.value !== "none") assert.equal(names[lease + 1], "TALOS_ETCD_DEFRAG_LEASE_WAIT");
          const credentials = Math.max(
            names.indexOf("TALOSCONFIG"),
            names.indexOf("TALOS_KEY"),
            names.indexOf("TALOS_ETCD_DEFRAG_KEY"),
          );
          assert.ok(credentials >= 0 && credentials < lease, names.join(" "));
        }
      }
    }
  });

  it("one worst-case formula: values.yaml's (the chart README's table quotes it), evaluated, is what the template computes and prints", () => {
    const valuesText = readFileSync(join(CHART, "values.yaml"), "utf8");
    const formula = /# worst case = (.+)$/m.exec(valuesText)?.[1]?.trim();
    assert.ok(formula, "values.yaml writes the formula as '# worst case = ...'");
    const defaults = parse(valuesText) as Record<string, unknown>;
    const cases: Record<string, unknown>[] = [
      {},
      { defrag: { timeout: "1h" } },
      {
        defrag: {
          nodes: ["10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5"],
          pause: "1m30s",
          callTimeout: "500ms",
        },
      },
      { snapshot: { enabled: true }, lease: { enabled: false } },
      { defrag: { maxMembers: 5, healthTimeout: "90s", maxWait: "30s" }, lease: { wait: "2m" } },
    ];
    for (const values of cases) {
      const expected = Math.ceil(worstCase(formula, merge(defaults, values)));
      const r = tryRender(merge(values, { cronjob: { activeDeadlineSeconds: 60 } }));
      const m = /worst case of a run, (\d+) s: worst case = (.+?), with members/.exec(r.stderr);
      assert.ok(m, r.stderr);
      assert.equal(m[2], formula, "the template prints values.yaml's formula");
      assert.equal(Number(m[1]), expected, JSON.stringify(values));
      if (Object.keys(values).length === 0) {
        assert.ok(
          /The defaults: (\d+) s/.exec(valuesText)?.[1] === m[1],
          "values.yaml's number for the defaults",
        );
      }
    }
    assert.ok(readFileSync(join(CHART, "README.md"), "utf8").includes(`worst case = ${formula}`));
    // docs/operations.md points at it, with the default of values.yaml, and writes no formula of its own.
    const row = readFileSync(join(REPO_ROOT, "docs", "operations.md"), "utf8")
      .split("\n")
      .find((l) => l.startsWith("| `cronjob.activeDeadlineSeconds`"));
    const deadline = (defaults.cronjob as { activeDeadlineSeconds: number }).activeDeadlineSeconds;
    assert.match(row ?? "", new RegExp(`^\\| \\S+ +\\| ${deadline} +\\|`));
    assert.doesNotMatch(row ?? "", /maxWait/);
  });

  it("every variable the chart sets is one the tool reads, each option is set or left out for a reason, and the defaults are the tool's", () => {
    // Options of run the chart does not set, and why.
    const notInChart: Record<string, string> = {
      TALOS_CONTEXT: "the credentials are one Secret or one mounted talosconfig: no context to choose",
      TALOS_ETCD_DEFRAG_METRICS_FILE:
        "a textfile in a finished pod is read by nobody: the chart pushes to a Pushgateway",
      KUBECONFIG: "in a pod the Lease is taken with the pod's service-account token",
    };
    const run = OPTIONS.filter((o) => o.commands.includes("run"));
    const envOf = (values: Record<string, unknown>) =>
      podSpec(find(render(values), "CronJob")).containers[0]!.env;
    const everything = [
      envOf({
        metrics: { pushgatewayUrl: "http://pg:9091", clusterName: "prod" },
        snapshot: { enabled: true },
      }),
      envOf({
        auth: { mode: "secret", endpoints: ["10.0.0.11"] },
        defrag: { rule: "nospace", nodes: ["10.0.0.11"] },
      }),
      envOf(etcdValues({ etcd: { compact: true } })),
    ].flat();
    const credentials = ["TALOS_CA", "TALOS_CRT", "TALOS_KEY"]; // read by config/config.ts, not options
    for (const { name } of everything) {
      assert.ok(
        run.some((o) => o.env === name) || credentials.includes(name),
        `${name}: no option of run reads it`,
      );
    }
    for (const o of run) {
      const set = everything.some((e) => e.name === o.env);
      assert.ok(
        set !== o.env in notInChart,
        `${o.env}: ${set ? "set, though listed as left out" : "neither set by the chart nor left out for a reason"}`,
      );
    }
    // The defaults (secret mode, nothing set): each variable with the option's default, or empty where
    // the option has none (the tool then decides, e.g. each node's quota).
    for (const e of envOf({ auth: { mode: "secret", endpoints: ["10.0.0.11"] } })) {
      const o = run.find((x) => x.env === e.name);
      if (o === undefined || !e.name.startsWith("TALOS_ETCD_DEFRAG_") || e.name === "TALOS_ETCD_DEFRAG_LEASE")
        continue;
      assert.equal(e.value, o.default ?? "", `${e.name}: the chart's default is the tool's`);
    }
    // Backend etcd with nothing else set: the same, and its own options (compact, the gauge) at the tool's
    // defaults too; what it must set (the backend, the endpoints, the files) is what the values say.
    const etcdSet = [
      "TALOS_ETCD_DEFRAG_LEASE",
      "TALOS_ETCD_DEFRAG_BACKEND",
      "TALOS_ETCD_DEFRAG_ETCD_ENDPOINTS",
    ];
    const files = ["TALOS_ETCD_DEFRAG_CACERT", "TALOS_ETCD_DEFRAG_CERT", "TALOS_ETCD_DEFRAG_KEY"];
    const etcdEnv = envOf(ETCD);
    for (const name of ["TALOS_ETCD_DEFRAG_COMPACT", "TALOS_ETCD_DEFRAG_WITHOUT_DEFRAG_GAUGE"])
      assert.ok(
        etcdEnv.some((e) => e.name === name),
        `${name}: set in backend etcd`,
      );
    for (const e of etcdEnv) {
      const o = run.find((x) => x.env === e.name);
      if (o === undefined || !e.name.startsWith("TALOS_ETCD_DEFRAG_") || etcdSet.includes(e.name)) continue;
      if (files.includes(e.name)) {
        assert.match(
          e.value ?? "",
          /^\/var\/run\/secrets\/etcd-client\/(ca\.crt|tls\.crt|tls\.key)$/,
          e.name,
        );
        continue;
      }
      assert.equal(e.value, o.default ?? "", `${e.name}: the chart's default is the tool's (backend etcd)`);
    }
    const values = parse(readFileSync(join(CHART, "values.yaml"), "utf8")) as {
      backend: string;
      etcd: { compact: boolean; withoutDefragGauge: string };
    };
    const optionDefault = (env: string) => OPTIONS.find((o) => o.env === env)?.default;
    assert.equal(values.backend, optionDefault("TALOS_ETCD_DEFRAG_BACKEND"));
    assert.equal(String(values.etcd.compact), optionDefault("TALOS_ETCD_DEFRAG_COMPACT"));
    assert.equal(values.etcd.withoutDefragGauge, optionDefault("TALOS_ETCD_DEFRAG_WITHOUT_DEFRAG_GAUGE"));
  });

  it("rejects bad values with a message naming the field", () => {
    const cases: [Record<string, unknown>, RegExp][] = [
      [{ cronjob: { schedule: "every sunday" } }, /\/cronjob\/schedule.*does not match pattern/],
      [
        { auth: { mode: "kubeconfig" } },
        /\/auth\/mode.*value must be one of 'serviceAccount', 'secret', 'externalSecret'/,
      ],
      [
        { auth: { serviceAccount: { roles: ["os:etcd:admin"] } } },
        /\/auth\/serviceAccount\/roles\/0.*value must be one of/,
      ],
      [{ defrag: { timeout: "-5m" } }, /\/defrag\/timeout.*does not match pattern/],
      [
        { defrag: { moveLeader: "sometimes" } },
        /\/defrag\/moveLeader.*value must be one of 'auto', 'always', 'never'/,
      ],
      [{ cronjob: { failedJobsHistoryLimit: -1 } }, /\/cronjob\/failedJobsHistoryLimit.*minimum/],
      [
        { auth: { externalSecret: { apiVersion: "external-secrets.io/v2" } } },
        /\/auth\/externalSecret\/apiVersion.*value must be one of 'external-secrets.io\/v1', 'external-secrets.io\/v1beta1'/,
      ],
      [{ auth: { mode: "secret" } }, /auth\.endpoints is required with auth\.mode=secret/],
      // An endpoint is an IP address or a host name (optionally with a port, or https://host[:port]).
      [
        { auth: { mode: "secret", endpoints: ["10.0.0.999"] } },
        /\/auth\/endpoints\/0.*does not match pattern/,
      ],
      [
        { auth: { mode: "secret", endpoints: ["http://1.2.3.4"] } },
        /\/auth\/endpoints\/0.*does not match pattern/,
      ],
      [{ defrag: { nodes: ["10.0.0.1", "cp_2"] } }, /\/defrag\/nodes\/1.*does not match pattern/],
      [
        { metrics: { pushgatewayUrl: "pushgateway:9091" } },
        /\/metrics\/pushgatewayUrl.*does not match pattern/,
      ],
      [{ defrag: { quotaBytes: "lots" } }, /\/defrag\/quotaBytes.*does not match pattern/],
      [{ defrag: { quotaBytes: true } }, /\/defrag\/quotaBytes.*got boolean, want integer or string/],
      [{ defrag: { quotaBytes: 0 } }, /\/defrag\/quotaBytes.*minimum/],
      [{ defrag: { nospaceDisarmBelow: 2 } }, /\/defrag\/nospaceDisarmBelow.*maximum: got 2, want 1/],
      [{ snapshot: { keep: 0 } }, /\/snapshot\/keep.*minimum: got 0, want 1/],
      [{ snapshot: { enabled: true, size: "lots" } }, /\/snapshot\/size.*does not match pattern/],
      [{ defrag: { nospaceDisarmBelow: "80%" } }, /\/defrag\/nospaceDisarmBelow.*got string, want number/],
      [{ imagePullSecrets: ["regcred"] }, /\/imagePullSecrets\/0.*got string, want object/],
      [{ verify: { enabled: "yes" } }, /\/verify\/enabled.*got string, want boolean/],
      [{ logFormat: "yaml" }, /\/logFormat.*value must be one of 'text', 'json'/],
      [{ defrag: { maxMembers: 2.5 } }, /\/defrag\/maxMembers.*got number, want integer/],
      [{ imagePullSecret: [] }, /additional properties 'imagePullSecret' not allowed/],
      [
        { cronjob: { activeDeadlineSeconds: 3600 } },
        /cronjob\.activeDeadlineSeconds \(3600 s\) is shorter than the worst case of a run, 15690 s: worst case = members x \(defrag\.timeout \+ 4 x defrag\.maxWait \+ 2 x defrag\.healthTimeout \+ defrag\.pause\) \+ 10 x defrag\.callTimeout \(\+ defrag\.timeout with snapshot\.enabled\) \(\+ lease\.wait with lease\.enabled\), with members 3 \(defrag\.maxMembers, or the number of defrag\.nodes\), defrag\.timeout 15m, defrag\.maxWait 15m, defrag\.healthTimeout 5m, defrag\.pause 10s, defrag\.callTimeout 30s, snapshot\.enabled false, lease\.wait 1m \(lease\.enabled true\)\. Raise cronjob\.activeDeadlineSeconds or lower those values/,
      ],
      [
        { defrag: { nodes: ["a", "b", "c", "d", "e"], timeout: "20m" } },
        /worst case of a run, 27410 s: .* with members 5 /,
      ],
      [{ prometheusRule: { enabled: true, noRunFor: "1d12h" } }, /prometheusRule\.noRunFor "1d12h"/],
      [{ lease: { name: "Etcd_Defrag" } }, /\/lease\/name.*does not match pattern/],
      [{ lease: { wait: "soon" } }, /\/lease\/wait.*does not match pattern/],
      // Backend etcd: what it needs, in the form etcd takes, and nothing of the Talos backend.
      [{ backend: "kubeadm" }, /\/backend.*value must be one of 'talos', 'etcd'/],
      [
        { backend: "etcd", etcd: { clientCertSecret: "etcd-client" } },
        /etcd\.endpoints is required with backend=etcd: list etcd client URLs/,
      ],
      [
        { backend: "etcd", etcd: { endpoints: ["https://10.0.0.11:2379"] } },
        /etcd\.clientCertSecret is required with backend=etcd: the name of an existing Secret in kube-system with the keys ca\.crt \(etcd's CA certificate\), tls\.crt and tls\.key/,
      ],
      [
        etcdValues({ etcd: { endpoints: ["10.0.0.11:2379"] } }),
        /\/etcd\/endpoints\/0.*does not match pattern/,
      ],
      [
        etcdValues({ etcd: { endpoints: ["https://10.0.0.11:2379/v3"] } }),
        /\/etcd\/endpoints\/0.*does not match pattern/,
      ],
      // The tool refuses --cacert/--cert/--key with http:// endpoints, and the chart always sets them.
      [
        etcdValues({ etcd: { endpoints: ["http://10.0.0.11:2379"] } }),
        /\/etcd\/endpoints\/0.*does not match pattern/,
      ],
      [
        etcdValues({ etcd: { endpoints: ["unix:///run/etcd.sock"] } }),
        /\/etcd\/endpoints\/0.*does not match pattern/,
      ],
      [
        etcdValues({ etcd: { clientCertSecret: "Etcd_Client" } }),
        /\/etcd\/clientCertSecret.*does not match pattern/,
      ],
      [
        etcdValues({ etcd: { withoutDefragGauge: "ignore" } }),
        /\/etcd\/withoutDefragGauge.*value must be one of 'refuse', 'status-only'/,
      ],
      [etcdValues({ etcd: { compact: "yes" } }), /\/etcd\/compact.*got string, want boolean/],
      [
        etcdValues({ etcd: { clientCertSecretKeys: { key: "tls key" } } }),
        /\/etcd\/clientCertSecretKeys\/key.*does not match pattern/,
      ],
      [
        etcdValues({ etcd: { caKey: "/etc/kubernetes/pki/etcd/ca.key" } }),
        /additional properties 'caKey' not allowed/,
      ],
      [
        etcdValues({ auth: { mode: "secret", endpoints: ["10.0.0.11"] } }),
        /auth\.mode \(secret\) and auth\.endpoints configure the Talos API credentials \(backend=talos\); with backend=etcd the credentials are etcd\.clientCertSecret/,
      ],
      [
        etcdValues({ defrag: { nodes: ["10.0.0.11"] } }),
        /defrag\.nodes chooses Talos nodes \(backend=talos\)/,
      ],
      [
        etcdValues({ networkPolicy: { enabled: true } }),
        /networkPolicy\.enabled: with backend=etcd the pods use their node's network \(hostNetwork\), where most network plugins apply no NetworkPolicy/,
      ],
      [
        { etcd: { endpoints: ["https://10.0.0.11:2379"] } },
        /etcd\.endpoints, etcd\.clientCertSecret and etcd\.compact apply with backend=etcd/,
      ],
      [
        { etcd: { compact: true } },
        /etcd\.endpoints, etcd\.clientCertSecret and etcd\.compact apply with backend=etcd/,
      ],
    ];
    for (const [values, message] of cases) {
      const r = tryRender(values);
      assert.notEqual(r.code, 0, JSON.stringify(values));
      assert.match(r.stderr, message, JSON.stringify(values));
    }
  });
});

describe("Flux example", () => {
  const FLUX = join(REPO_ROOT, "deploy", "flux");

  it("kustomize builds the app, every object validates, and the HelmRelease values satisfy the chart's schema", () => {
    const r = spawnSync(tool("kustomize"), ["build", join(FLUX, "app")], { encoding: "utf8" });
    assert.equal(r.status, 0, r.stderr);
    const objects = parseAllDocuments(r.stdout).map((d) => d.toJSON() as K8sObject);
    assert.deepEqual(objects.map((o) => o.kind).sort(), ["ExternalSecret", "HelmRelease", "OCIRepository"]);
    for (const o of objects) validateObject(o);
    const release = find(objects, "HelmRelease");
    const source = find(objects, "OCIRepository");
    // The source kind current Flux recommends for OCI charts, and what the release pushes.
    assert.equal(source.apiVersion, "source.toolkit.fluxcd.io/v1");
    assert.equal(release.apiVersion, "helm.toolkit.fluxcd.io/v2");
    assert.deepEqual(release.spec.chartRef, { kind: "OCIRepository", name: source.metadata.name });
    const version = (JSON.parse(readFileSync(join(REPO_ROOT, "package.json"), "utf8")) as { version: string })
      .version;
    const owner = /ghcr\.io\/([^/]+)\//.exec(
      (parse(readFileSync(join(CHART, "values.yaml"), "utf8")) as { image: { repository: string } }).image
        .repository,
    )?.[1];
    assert.ok(owner);
    assert.deepEqual(
      { url: source.spec.url, ref: source.spec.ref },
      { url: `oci://ghcr.io/${owner}/charts/etcd-defrag`, ref: { tag: version } },
    );
    const values = release.spec.values as { cronjob: { schedule: string } };
    assert.equal(values.cronjob.schedule, "0 2 * * 0");
    const rendered = render(values);
    assert.equal(find(rendered, "CronJob").spec.schedule, "0 2 * * 0");
    const es = find(objects, "ExternalSecret");
    const c = podSpec(find(rendered, "CronJob")).containers[0]!;
    assert.equal(
      c.env.find((e) => e.name === "TALOS_CA")?.valueFrom?.secretKeyRef.name,
      (es.spec.target as { name: string }).name,
    );
  });

  it("ks.yaml is a valid Flux Kustomization named etcd-defrag in flux-system", () => {
    const ks = parse(readFileSync(join(FLUX, "ks.yaml"), "utf8")) as K8sObject;
    validateObject(ks);
    assert.equal(ks.metadata.name, "etcd-defrag");
    assert.equal(ks.metadata.namespace, "flux-system");
    assert.equal(ks.spec.targetNamespace, "kube-system");
  });
});

/** One real kube-apiserver for the file (about 2 s to start), with the CRDs of the chart's custom kinds. */
let kas: KubeApiServer;
let kasDir: string;

before(async () => {
  kas = await KubeApiServer.start();
  kasDir = mkdtempSync(join(tmpdir(), "chart-kas-"));
  // Readable by the image's user (uid 65532), as the projected token volume is (0444).
  chmodSync(kasDir, 0o755);
  for (const crd of MINIMAL_CRDS) {
    const r = await kas.apply(crd);
    assert.equal(r.status, 201, r.body);
  }
  await waitFor("the CRDs to be established", async () => {
    for (const crd of MINIMAL_CRDS) {
      const r = await kas.get(`/apis/apiextensions.k8s.io/v1/customresourcedefinitions/${crd.metadata.name}`);
      const status = (JSON.parse(r.body) as { status?: { conditions?: { type: string; status: string }[] } })
        .status;
      if (!status?.conditions?.some((c) => c.type === "Established" && c.status === "True")) return undefined;
    }
    return true;
  });
});

after(async () => {
  await kas.close();
  rmSync(kasDir, { recursive: true, force: true });
});

/** A kubeconfig with a token of the chart's Kubernetes ServiceAccount, as the projected volume gets it. */
async function serviceAccountKubeconfig(namespace: string, name: string): Promise<string> {
  const kc = new KubeConfig();
  kc.loadFromFile(kas.writeKubeconfig(kasDir, { user: "admin" }));
  const r = await kc.makeApiClient(CoreV1Api).createNamespacedServiceAccountToken({
    namespace,
    name,
    body: { spec: { audiences: [], expirationSeconds: 3607 } },
  });
  const token = r.status?.token;
  assert.ok(token, "a token for the ServiceAccount");
  const file = kas.writeKubeconfig(kasDir, { name: `system:serviceaccount:${namespace}:${name}`, token });
  chmodSync(file, 0o444);
  return file;
}

/**
 * Applies every object the chart renders with these values for real, as the admin, as helm install and upgrade
 * do: the release's objects, then its hooks (the verification Job), each replaced when its delete policy is
 * before-hook-creation (a Job's pod template cannot be changed in place).
 */
async function applyChart(values: Record<string, unknown> = {}): Promise<void> {
  const objects = render(values);
  const isHook = (o: K8sObject) => o.metadata.annotations?.["helm.sh/hook"] !== undefined;
  for (const o of [...objects.filter((x) => !isHook(x)), ...objects.filter(isHook)]) {
    if (
      isHook(o) &&
      (o.metadata.annotations?.["helm.sh/hook-delete-policy"] ?? "").includes("before-hook-creation")
    ) {
      const d = await kas.delete(o);
      assert.ok(d.status === 200 || d.status === 404, `${o.kind} ${o.metadata.name}: ${d.status} ${d.body}`);
      await waitFor(`${o.kind} ${o.metadata.name} to be gone`, async () =>
        (await kas.get(kas.objectPath(o))).status === 404 ? true : undefined,
      );
    }
    const r = await kas.apply(o);
    assert.ok(r.status === 200 || r.status === 201, `${o.apiVersion} ${o.kind}: ${r.status} ${r.body}`);
  }
}

describe("the chart applied server-side to a real kube-apiserver", () => {
  const variants: [string, Record<string, unknown>, string[]][] = [
    ["defaults", {}, ["CronJob", "Job", "Lease", "Role", "RoleBinding", "ServiceAccount", "ServiceAccount"]],
    [
      "secret mode, no lease",
      { auth: { mode: "secret", endpoints: ["10.0.0.11"] }, lease: { enabled: false } },
      ["CronJob", "Job"],
    ],
    [
      "secret mode with the lease, no verification, quotaBytes as an integer",
      {
        auth: { mode: "secret", endpoints: ["10.0.0.11"] },
        verify: { enabled: false },
        defrag: { quotaBytes: 8589934592 },
      },
      ["CronJob", "Lease", "Role", "RoleBinding", "ServiceAccount"],
    ],
    [
      "externalSecret mode with everything on",
      {
        auth: { mode: "externalSecret", endpoints: ["10.0.0.11"] },
        networkPolicy: { enabled: true },
        metrics: { pushgatewayUrl: "http://pushgateway.monitoring:9091", clusterName: "prod" },
        prometheusRule: { enabled: true, labels: { release: "kube-prometheus-stack" } },
        defrag: { nodes: ["10.0.0.11"], rule: "true", maxMembers: 5, quotaBytes: "4GiB" },
        cronjob: { activeDeadlineSeconds: 28800 },
        verify: { enabled: true, activeDeadlineSeconds: 600 },
        imagePullSecrets: [{ name: "regcred" }],
        lease: { name: "defrag.lock", wait: "0s" },
        output: "json",
        logFormat: "json",
        podAnnotations: { "example.com/team": "platform" },
        nodeSelector: { "node-role.kubernetes.io/control-plane": "" },
        tolerations: [
          { key: "node-role.kubernetes.io/control-plane", effect: "NoSchedule", operator: "Exists" },
        ],
        extraEnv: [{ name: "TZ", value: "UTC" }],
      },
      [
        "CronJob",
        "ExternalSecret",
        "Job",
        "Lease",
        "NetworkPolicy",
        "PrometheusRule",
        "Role",
        "RoleBinding",
        "ServiceAccount",
      ],
    ],
  ];
  variants.push(
    ["backend etcd (defaults)", ETCD, ["CronJob", "Job", "Lease", "Role", "RoleBinding", "ServiceAccount"]],
    [
      "backend etcd with everything on that applies",
      etcdValues({
        etcd: {
          clientCertSecretKeys: { ca: "etcd-ca", cert: "etcd-client", key: "etcd-client-key" },
          compact: true,
          withoutDefragGauge: "status-only",
        },
        metrics: { pushgatewayUrl: "http://pushgateway.monitoring:9091", clusterName: "rke2-prod" },
        prometheusRule: { enabled: true },
        snapshot: { enabled: true },
        defrag: { rule: "true", maxMembers: 5, quotaBytes: "8GiB", dryRun: true },
        cronjob: { activeDeadlineSeconds: 28800 },
        imagePullSecrets: [{ name: "regcred" }],
        nodeSelector: { "kubernetes.io/os": "linux" },
        tolerations: [{ key: "dedicated", operator: "Equal", value: "etcd", effect: "NoSchedule" }],
        podAnnotations: { "example.com/team": "platform" },
        extraEnv: [{ name: "TZ", value: "UTC" }],
      }),
      [
        "CronJob",
        "Job",
        "Lease",
        "PersistentVolumeClaim",
        "PrometheusRule",
        "Role",
        "RoleBinding",
        "ServiceAccount",
      ],
    ],
    [
      "backend etcd, no lease, no verification",
      etcdValues({ lease: { enabled: false }, verify: { enabled: false } }),
      ["CronJob"],
    ],
  );
  for (const [name, values, kinds] of variants) {
    it(`${name}: every rendered object, the verification Job too, is accepted (dry run, strict field validation)`, async () => {
      const objects = render(values);
      assert.deepEqual(objects.map((o) => o.kind).sort(), kinds);
      for (const o of objects) {
        const r = await kas.apply(o, { dryRun: true });
        assert.ok(r.status === 200 || r.status === 201, `${o.apiVersion} ${o.kind}: ${r.status} ${r.body}`);
      }
    });
  }

  it("the API server's validation is live: a broken CronJob, an unknown field and a broken Job are rejected", async () => {
    const cronJob = find(render(), "CronJob");
    const broken = structuredClone(cronJob);
    (broken.spec as { schedule: unknown }).schedule = "every sunday";
    const r1 = await kas.apply(broken, { dryRun: true });
    assert.equal(r1.status, 422, r1.body);
    assert.match(r1.body, /spec\.schedule/);
    const unknown = structuredClone(cronJob);
    unknown.spec.concurrency = "Forbid";
    const r2 = await kas.apply(unknown, { dryRun: true });
    // Server-side apply builds a typed object first, and answers 500 for a field it does not know.
    assert.ok(r2.status >= 400, r2.body);
    assert.match(r2.body, /\.spec\.concurrency: field not declared in schema/);
    const talos = structuredClone(talosServiceAccount(render()));
    talos.spec.roles = [];
    const r3 = await kas.apply(talos, { dryRun: true });
    assert.equal(r3.status, 422, r3.body);
    // The verification Job: a Job's pod cannot restart Always.
    const job = structuredClone(find(render(), "Job"));
    (job.spec as { template: { spec: { restartPolicy: string } } }).template.spec.restartPolicy = "Always";
    const r4 = await kas.apply(job, { dryRun: true });
    assert.equal(r4.status, 422, r4.body);
    assert.match(r4.body, /spec\.template\.spec\.restartPolicy/);
  });

  it("applied for real: the verification Job is stored as rendered, and the ServiceAccount's token holds the chart's Lease, and can touch no other", async () => {
    await applyChart();
    const stored = await kas.get(kas.objectPath(find(render(), "Job")));
    assert.equal(stored.status, 200, stored.body);
    const job = JSON.parse(stored.body) as K8sObject;
    assert.equal(job.metadata.annotations?.["helm.sh/hook"], "post-install,post-upgrade");
    const pod = podSpec(job);
    assert.deepEqual(
      [...(pod.initContainers ?? []), ...pod.containers].map((c) => c.args),
      [
        ["status", "--output", "table"],
        ["run", "--dry-run"],
      ],
    );
    assert.ok(!pod.containers[0]!.env.some((e) => LEASE_ENV.test(e.name)), "the verification takes no lease");
    const kubeconfig = await serviceAccountKubeconfig("kube-system", "etcd-defrag");
    const guard = (name: string) =>
      createLeaseGuard({
        kubeConfig: loadKubeConfig({ kubeconfig, env: {} }),
        namespace: "kube-system",
        name,
        identity: "chart-test",
        durationSeconds: 30,
        clock: systemClock,
      });
    const opts = { waitMs: 0, signal: new AbortController().signal, onWait: () => undefined };
    const held = await guard("etcd-defrag").acquire(opts);
    await held.release();
    await assert.rejects(
      guard("kube-scheduler").acquire(opts),
      /403 Forbidden.*cannot get resource "leases"/,
    );
    // The chart created the Lease, so the identity has no create: not even of a Lease of its own.
    const sa = new KubeConfig();
    sa.loadFromFile(kubeconfig);
    await assert.rejects(
      sa.makeApiClient(CoordinationV1Api).createNamespacedLease({
        namespace: "kube-system",
        body: { metadata: { name: "made-by-the-job" }, spec: {} },
      }),
      (err: unknown) => err instanceof ApiException && err.code === 403,
    );
    // An upgrade with other values: the verification Job is replaced (before-hook-creation), not patched.
    await applyChart({ output: "json" });
    const upgraded = podSpec(JSON.parse((await kas.get(kas.objectPath(job))).body) as K8sObject);
    assert.deepEqual(upgraded.initContainers?.[0]?.args, ["status", "--output", "json"]);
  });
});

/**
 * The image's runtime as the tests can have it without Docker: Node 24 (scripts/node24.sh, the image's
 * major version), the ENTRYPOINT's flags and script, the bundle (its entry point and chunks) alone in a
 * read-only /app, run as uid and gid 65532 with no supplementary groups (when the tests run as root; otherwise
 * as the non-root user they are). The CronJob's runs hold the chart's Lease on the real kube-apiserver with the
 * token of the chart's ServiceAccount (a kubeconfig carries it; the in-cluster loader is tested in lease.test.ts).
 */
describe("the rendered CronJob and verification Job, run as the image runs them", () => {
  let h: Harness;
  let dir: string;
  let app: string;
  let node24: string;
  const asImageUser = userInfo().uid === 0;

  before(async () => {
    const r = spawnSync("bash", [join(REPO_ROOT, "scripts", "node24.sh")], { encoding: "utf8" });
    assert.equal(r.status, 0, r.stderr);
    node24 = r.stdout.trim();
    h = await startHarness({ members: 3 });
    dir = mkdtempSync(join(tmpdir(), "image-e2e-"));
    chmodSync(dir, 0o755);
    // The image's /app: the bundle (its entry point and chunks) alone, no node_modules anywhere near it,
    // nothing writable.
    app = join(dir, "app");
    const bundle = join(REPO_ROOT, "dist", "bundle");
    assert.ok(
      existsSync(join(bundle, "talos-etcd-defrag.mjs")),
      "npm run bundle has been run (scripts/setup.sh does)",
    );
    cpSync(bundle, app, { recursive: true });
    // The runtime stage's own RUNs (the compile cache), as its user (COPY --chown gave it /app), then
    // everything read-only as it is at run time.
    if (asImageUser) spawnSync("chown", ["-R", "65532:65532", app]);
    for (const argv of imageRuns()) {
      const [exe, ...args] = argv.map(inApp);
      const user = asImageUser ? ["setpriv", "--reuid=65532", "--regid=65532", "--clear-groups"] : [];
      const r = spawnSync(
        "env",
        [...envArgs(), ...user, exe === "/nodejs/bin/node" ? node24 : (exe ?? ""), ...args],
        {
          encoding: "utf8",
          cwd: dir,
        },
      );
      assert.equal(r.status, 0, `RUN ${JSON.stringify(argv)}: ${r.stderr}`);
    }
    setModes(app, 0o444, 0o555);
  });

  /** A path of the image's /app, in the test's folder. */
  function inApp(path: string): string {
    return path.replace(/^\/app(\/|$)/, `${app}$1`);
  }

  /** The image's ENV as `env` arguments, its /app paths mapped. */
  function envArgs(): string[] {
    return Object.entries(imageEnv()).map(([k, v]) => `${k}=${inApp(v)}`);
  }

  after(async () => {
    await h.close();
    setModes(app, 0o644, 0o755);
    rmSync(dir, { recursive: true, force: true });
  });

  /** Files and folders under (and including) dir to these modes, folders last so that they stay reachable. */
  function setModes(path: string, file: number, folder: number): void {
    if (!statSync(path).isDirectory()) {
      chmodSync(path, file);
      return;
    }
    chmodSync(path, 0o755);
    for (const entry of readdirSync(path)) setModes(join(path, entry), file, folder);
    chmodSync(path, folder);
  }

  /** The ENTRYPOINT on Node 24 with /app mapped into the test's folder, as uid 65532, plus the container's args. */
  function command(args: string[]): string[] {
    const [, ...rest] = entrypoint();
    const script = (rest.at(-1) ?? "").replace(/^\/app\//, `${app}/`);
    const user = asImageUser ? ["setpriv", "--reuid=65532", "--regid=65532", "--clear-groups"] : [];
    return ["env", ...envArgs(), ...user, node24, ...rest.slice(0, -1), script, ...args];
  }

  function secretValues(extra: Record<string, unknown> = {}): Record<string, unknown> {
    return {
      auth: { mode: "secret", endpoints: h.nodes.map((n) => `${n}:${h.apiPort}`) },
      // These tests defragment one cluster several times within the hour: no --min-interval.
      defrag: { rule: TEST_RULE, pause: "0s", minInterval: "0s", electionSettle: "0s" },
      ...extra,
    };
  }

  async function secret(): Promise<Record<string, string>> {
    const creds = await h.credentials(["os:operator"]);
    return { TALOS_CA: creds.ca, TALOS_CRT: creds.crt, TALOS_KEY: creds.key };
  }

  /** The verification Job as Kubernetes runs it: the init container, then (if it succeeded) the container. */
  async function verify(values: Record<string, unknown>, creds: Record<string, string>) {
    const pod = podSpec(find(render(values), "Job", "etcd-defrag-verify"));
    const steps = [...(pod.initContainers ?? []), ...pod.containers];
    const results = [];
    for (const c of steps) {
      const r = await runCli([], { command: command(c.args), env: containerEnv(c, creds, {}), cwd: dir });
      results.push({ name: c.name, ...r });
      if (r.code !== 0) break;
    }
    return results;
  }

  it("runs as the image's user, on the image's Node major version", async () => {
    const r = await runCli([], {
      command: command(["version"]),
      env: {},
      cwd: dir,
    });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^talos-etcd-defrag \d+\.\d+\.\d+/);
    const probe = spawnSync(
      command([])[0]!,
      [...command([]).slice(1, -1), "-p", "process.version + ' ' + process.getuid()"],
      {
        encoding: "utf8",
      },
    );
    assert.equal(probe.status, 0, probe.stderr);
    assert.match(probe.stdout.trim(), asImageUser ? /^v24\.\d+\.\d+ 65532$/ : /^v24\./);
  });

  it("the compile cache baked at build (the runtime stage's RUN) is accepted at run time, and nothing is written", async () => {
    const cacheDir = inApp(imageEnv().NODE_COMPILE_CACHE ?? "");
    assert.ok(cacheDir.startsWith(app), "the image sets NODE_COMPILE_CACHE under /app");
    const listing = (): string[] =>
      readdirSync(cacheDir, { recursive: true, encoding: "utf8" })
        .map((f) => `${f} ${statSync(join(cacheDir, f)).mtimeMs}`)
        .sort();
    const before = listing();
    assert.ok(before.length >= 2, `a cache was made at build: ${before.join(", ")}`);
    // `status` loads its command's chunks too: every file it loads comes from the cache.
    const [envExe, ...rest] = command(["status", "--output", "json"]);
    const creds = await secret();
    const r = await runCli([], {
      command: [envExe!, "NODE_DEBUG_NATIVE=COMPILE_CACHE", ...rest],
      env: { ...creds, TALOS_ENDPOINTS: h.nodes.map((n) => `${n}:${h.apiPort}`).join(",") },
      cwd: dir,
    });
    assert.equal(r.code, 0, r.stderr);
    const loaded = [...r.stderr.matchAll(/reading cache from \S+ for ESM file:\/\/(\S+?)\.\.\./g)].map(
      (m) => m[1],
    );
    const accepted = [...r.stderr.matchAll(/V8 code cache for ESM file:\/\/(\S+) was accepted/g)].map(
      (m) => m[1],
    );
    assert.ok(
      accepted.some((f) => f?.endsWith("/app/talos-etcd-defrag.mjs")),
      r.stderr,
    );
    assert.ok(
      accepted.some((f) => f?.includes("/app/chunks/")),
      "the command's chunks too",
    );
    assert.deepEqual(accepted.sort(), loaded.sort(), "every file read from the cache was accepted");
    assert.doesNotMatch(
      r.stderr,
      /was not initialized|no such file/,
      "nothing it loads is missing from the cache",
    );
    assert.deepEqual(listing(), before, "the read-only cache is left as it was");
  });

  it("the verification Job passes: status, then run --dry-run, with the release's values", async () => {
    await h.etcd.fragment({ targetDbBytes: 48 * MiB, liveFraction: 0.25 });
    const before = h.journal.filter((e) => e.method.endsWith("Defragment")).length;
    const results = await verify(secretValues({ output: "json" }), await secret());
    assert.deepEqual(
      results.map((r) => [r.name, r.code]),
      [
        ["status", 0],
        ["dry-run", 0],
      ],
      results.map((r) => r.stderr).join("\n"),
    );
    assert.equal((JSON.parse(results[0]!.stdout) as { members: unknown[] }).members.length, 3);
    assert.equal(parseSummary(results[1]!.stdout).result, "dry-run");
    assert.equal(
      h.journal.filter((e) => e.method.endsWith("Defragment")).length,
      before,
      "nothing defragmented",
    );
  });

  it("the verification Job fails at install with the tool's own message: a broken rule, a wrong credential", async () => {
    const badRule = await verify(secretValues({ defrag: { rule: "dbSize >" } }), await secret());
    assert.deepEqual(
      badRule.map((r) => [r.name, r.code]),
      [
        ["status", 0],
        ["dry-run", 2],
      ],
    );
    assert.match(badRule[1]!.stderr, /rule/i);
    const creds = await h.credentials(["os:operator"]);
    const other = await h.credentials(["os:operator"]);
    const wrongKey = await verify(secretValues(), {
      TALOS_CA: creds.ca,
      TALOS_CRT: creds.crt,
      TALOS_KEY: other.key,
    });
    assert.deepEqual(
      wrongKey.map((r) => [r.name, r.code]),
      [["status", 2]],
    );
    assert.match(wrongKey[0]!.stderr, /key does not match the certificate/i);
  });

  it("secret mode: the CronJob's container defragments the fragmented cluster", async () => {
    await h.etcd.fragment({ targetDbBytes: 48 * MiB, liveFraction: 0.25 });
    const creds = await secret();
    const c = podSpec(
      find(render(secretValues({ output: "json", logFormat: "json", lease: { enabled: false } })), "CronJob"),
    ).containers[0]!;
    assert.equal(c.env.find((e) => e.name === "TALOS_ETCD_DEFRAG_LEASE")?.value, "none", "no lease");
    const r = await runCli([], { command: command(c.args), env: containerEnv(c, creds, {}), cwd: dir });
    assert.equal(r.code, 0, r.stderr);
    const summary = parseSummary(r.stdout);
    assert.equal(summary.result, "success");
    assert.deepEqual(
      summary.members.map((m) => m.action),
      ["defragmented", "defragmented", "defragmented"],
    );
    for (const line of r.stderr.trim().split("\n")) JSON.parse(line);
    assert.doesNotMatch(
      r.stderr,
      new RegExp((creds.TALOS_KEY ?? "").slice(0, 40).replace(/[+/]/g, ".")),
      "the key is never logged",
    );
  });

  it("serviceAccount mode: the mounted talosconfig defragments the fragmented cluster, holding the chart's Lease", async () => {
    await h.etcd.fragment({ targetDbBytes: 48 * MiB, liveFraction: 0.25 });
    // What Talos writes into the Secret's "config" key, mounted at /var/run/secrets/talos.dev (mode 0644).
    const mount = join(dir, "var-run-secrets-talos.dev");
    mkdirSync(mount);
    const written = await h.writeTalosconfig({ roles: ["os:operator"], dir: mount, context: "default" });
    copyFileSync(written, join(mount, "config"));
    for (const f of readdirSync(mount)) chmodSync(join(mount, f), 0o644);
    chmodSync(mount, 0o755);
    const c = podSpec(
      find(
        render({
          defrag: { rule: TEST_RULE, pause: "0s", minInterval: "0s", electionSettle: "0s" },
          output: "json",
        }),
        "CronJob",
      ),
    ).containers[0]!;
    const env = containerEnv(c, {}, { "/var/run/secrets/talos.dev": mount });
    assert.equal(env.TALOSCONFIG, join(mount, "config"));
    // The projected token's identity and RBAC, from the chart applied to the API server; a kubeconfig
    // carries it here (the in-cluster loader itself is tested in lease.test.ts).
    await applyChart();
    env.KUBECONFIG = await serviceAccountKubeconfig("kube-system", "etcd-defrag");
    const r = await runCli([], { command: command(c.args), env, cwd: dir });
    assert.equal(r.code, 0, r.stderr);
    assert.equal((JSON.parse(r.stdout) as { result: string }).result, "success");
    assert.match(r.stderr, /holding the lease kube-system\/etcd-defrag for this run/);
  });

  it("backend etcd: the verification and the CronJob's run, the Secret's files as the pod gets them (0440, group 65532), defragment a real etcd that requires client certificates, holding the chart's Lease", async () => {
    const etcdDir = mkdtempSync(join(tmpdir(), "chart-etcd-"));
    chmodSync(etcdDir, 0o755);
    const pki = join(etcdDir, "pki");
    let member: Awaited<ReturnType<typeof startTlsEtcd>> | undefined;
    try {
      makeEtcdPki(etcdDir, pki);
      // The Secret's volume as the kubelet makes it for fsGroup 65532: root's files, the group's to read.
      const mount = join(etcdDir, "var-run-secrets-etcd-client");
      const files = makeEtcdClient(etcdDir, pki, mount);
      chmodSync(mount, 0o755);
      for (const f of readdirSync(mount)) {
        if (asImageUser) spawnSync("chown", ["0:65532", join(mount, f)]);
        chmodSync(join(mount, f), ETCD_CLIENT_VOLUME.secret.defaultMode);
      }
      member = await startTlsEtcd(etcdDir, pki, files);
      const values = etcdValues({
        etcd: { endpoints: [member.url], compact: true },
        // One member: blocking it is the downtime the value accepts, and no other to lead meanwhile;
        // repeated runs within the hour.
        defrag: {
          rule: "true",
          allowDowntime: true,
          moveLeader: "never",
          pause: "0s",
          minInterval: "0s",
          electionSettle: "0s",
        },
        output: "json",
      });
      const mounts = { [ETCD_CLIENT_DIR]: mount };
      const job = podSpec(find(render(values), "Job", "etcd-defrag-verify"));
      for (const c of [...(job.initContainers ?? []), ...job.containers]) {
        const r = await runCli([], { command: command(c.args), env: containerEnv(c, {}, mounts), cwd: dir });
        assert.equal(r.code, 0, `${c.name}: ${r.stderr}`);
        if (c.name === "dry-run") assert.equal(parseSummary(r.stdout).result, "dry-run");
        else assert.equal((JSON.parse(r.stdout) as { members: unknown[] }).members.length, 1);
      }
      // The CronJob's run, with the chart (backend etcd) applied and its ServiceAccount's token.
      await applyChart(values);
      const c = podSpec(find(render(values), "CronJob")).containers[0]!;
      const env = containerEnv(c, {}, mounts);
      assert.equal(env.TALOS_ETCD_DEFRAG_KEY, join(mount, "tls.key"));
      env.KUBECONFIG = await serviceAccountKubeconfig("kube-system", "etcd-defrag");
      const r = await runCli([], { command: command(c.args), env, cwd: dir });
      assert.equal(r.code, 0, r.stderr);
      const summary = parseSummary(r.stdout);
      assert.equal(summary.result, "success", r.stderr);
      assert.deepEqual(
        summary.members.map((m) => m.action),
        ["defragmented"],
      );
      assert.match(r.stderr, /holding the lease kube-system\/etcd-defrag for this run/);
      assert.doesNotMatch(
        r.stderr,
        new RegExp((files["tls.key"] ?? "").split("\n")[1] ?? "x"),
        "the key is never logged",
      );

      // As k3s and RKE2 run etcd (no /metrics on the client port): refused by default, as the docs say,
      // and defragmented with etcd.withoutDefragGauge status-only, which they tell k3s and RKE2 to set.
      await member.stop();
      member = await startTlsEtcd(etcdDir, pki, files, true);
      const k3s = (extra: Record<string, unknown>) =>
        podSpec(
          find(
            render(
              merge(merge(values, { etcd: { endpoints: [member?.url] }, lease: { enabled: false } }), extra),
            ),
            "CronJob",
          ),
        ).containers[0]!;
      const refused = k3s({ defrag: { maxWait: "2s" } });
      const r1 = await runCli([], {
        command: command(refused.args),
        env: containerEnv(refused, {}, mounts),
        cwd: dir,
      });
      assert.equal(r1.code, 3, r1.stderr);
      assert.equal(parseSummary(r1.stdout).result, "refused");
      const statusOnly = k3s({ etcd: { withoutDefragGauge: "status-only" } });
      const r2 = await runCli([], {
        command: command(statusOnly.args),
        env: containerEnv(statusOnly, {}, mounts),
        cwd: dir,
      });
      assert.equal(r2.code, 0, r2.stderr);
      assert.equal(parseSummary(r2.stdout).result, "success", r2.stderr);
    } finally {
      await member?.stop();
      rmSync(etcdDir, { recursive: true, force: true });
    }
  });

  it("a member down: the verification's status fails, and the CronJob's run is refused (exit 3)", async () => {
    const creds = await secret();
    await h.etcd.stop(2);
    try {
      const results = await verify(secretValues(), creds);
      assert.deepEqual(
        results.map((r) => [r.name, r.code]),
        [["status", 1]],
      );
      // The CronJob's run, with the lease (the chart in secret mode, applied): held, then refused.
      await applyChart(secretValues());
      const c = podSpec(find(render(secretValues({ output: "json" })), "CronJob")).containers[0]!;
      const env = containerEnv(c, creds, {});
      env.KUBECONFIG = await serviceAccountKubeconfig("kube-system", "etcd-defrag");
      const r = await runCli([], { command: command(c.args), env, cwd: dir });
      assert.equal(r.code, 3, r.stderr);
      assert.equal(parseSummary(r.stdout).result, "refused");
      assert.match(r.stderr, /holding the lease kube-system\/etcd-defrag for this run/);
    } finally {
      await h.etcd.restart(2);
    }
  });
});

/** A free TCP port on loopback (released before etcd takes it). */
async function freePort(): Promise<number> {
  const { createServer } = await import("node:net");
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => {
        resolve(port);
      });
    });
  });
}

/** GET over https with a Secret's files (ca.crt, tls.crt, tls.key; or fewer): the status code, and the body. */
async function get(url: string, files?: Record<string, string>): Promise<{ status: number; body: string }> {
  const { request } = await import("node:https");
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      { ca: files?.["ca.crt"], cert: files?.["tls.crt"], key: files?.["tls.key"], timeout: 5000 },
      (res) => {
        let body = "";
        res.setEncoding("utf8");
        res.on("data", (d: string) => (body += d));
        res.on("end", () => {
          resolve({ status: res.statusCode ?? 0, body });
        });
      },
    );
    req.on("error", reject);
    req.on("timeout", () => req.destroy(new Error("timeout")));
    req.end();
  });
}

/** In dir: etcd's CA as kubeadm makes it (RSA, in pkiDir/ca.crt and ca.key) and a server certificate for 127.0.0.1. */
function makeEtcdPki(dir: string, pkiDir: string): void {
  const ssl = (args: string[]) => {
    const r = spawnSync("openssl", args, { cwd: dir, encoding: "utf8" });
    assert.equal(r.status, 0, `openssl ${args.join(" ")}: ${r.stderr}`);
  };
  mkdirSync(pkiDir, { recursive: true });
  const [caCrt, caKey] = [join(pkiDir, "ca.crt"), join(pkiDir, "ca.key")];
  ssl([
    "req",
    "-x509",
    "-newkey",
    "rsa:2048",
    "-nodes",
    "-keyout",
    caKey,
    "-out",
    caCrt,
    "-subj",
    "/CN=etcd-ca",
    "-days",
    "60",
  ]);
  ssl([
    "req",
    "-newkey",
    "rsa:2048",
    "-nodes",
    "-keyout",
    "server.key",
    "-out",
    "server.csr",
    "-subj",
    "/CN=etcd",
  ]);
  writeFileSync(join(dir, "server.ext"), "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n");
  ssl(
    [
      "x509",
      "-req",
      "-in",
      "server.csr",
      "-CA",
      caCrt,
      "-CAkey",
      caKey,
      "-set_serial",
      "1",
      "-days",
      "2",
    ].concat(["-extfile", "server.ext", "-out", "server.crt"]),
  );
}

/** In dir, the files of a Secret as section 3 of docs/other-distributions.md makes them: ca.crt, tls.crt, tls.key. */
function makeEtcdClient(dir: string, pkiDir: string, out: string): Record<string, string> {
  const ssl = (args: string[]) => {
    const r = spawnSync("openssl", args, { cwd: dir, encoding: "utf8" });
    assert.equal(r.status, 0, `openssl ${args.join(" ")}: ${r.stderr}`);
  };
  mkdirSync(out, { recursive: true });
  ssl(["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", join(out, "tls.key")]);
  ssl(["req", "-new", "-key", join(out, "tls.key"), "-subj", "/CN=etcd-defrag", "-out", "client.csr"]);
  writeFileSync(join(dir, "client.ext"), "extendedKeyUsage=clientAuth\n");
  ssl(
    [
      "x509",
      "-req",
      "-in",
      "client.csr",
      "-CA",
      join(pkiDir, "ca.crt"),
      "-CAkey",
      join(pkiDir, "ca.key"),
    ].concat(["-set_serial", "2", "-days", "40", "-extfile", "client.ext", "-out", join(out, "tls.crt")]),
  );
  copyFileSync(join(pkiDir, "ca.crt"), join(out, "ca.crt"));
  return Object.fromEntries(
    ["ca.crt", "tls.crt", "tls.key"].map((f) => [f, readFileSync(join(out, f), "utf8")] as const),
  );
}

/**
 * One etcd 3.6 member on loopback requiring client certificates of makeEtcdPki's CA, as kubeadm runs it
 * (HTTP, /metrics included, on the client port) or as k3s and RKE2 do (HTTP on a port of its own).
 */
async function startTlsEtcd(dir: string, pkiDir: string, files: Record<string, string>, k3s = false) {
  const bin = spawnSync("bash", [join(REPO_ROOT, "scripts", "etcd.sh"), "3.6"], { encoding: "utf8" });
  assert.equal(bin.status, 0, bin.stderr);
  const [client, peer, http, metrics] = [
    await freePort(),
    await freePort(),
    await freePort(),
    await freePort(),
  ];
  const data = mkdtempSync(join(dir, "data-"));
  const url = `https://127.0.0.1:${client}`;
  const httpUrl = `https://127.0.0.1:${http}`;
  const args = [
    "--name=doc",
    `--data-dir=${data}`,
    `--listen-client-urls=${url}`,
    `--advertise-client-urls=${url}`,
    `--listen-peer-urls=http://127.0.0.1:${peer}`,
    `--initial-advertise-peer-urls=http://127.0.0.1:${peer}`,
    `--initial-cluster=doc=http://127.0.0.1:${peer}`,
    `--cert-file=${join(dir, "server.crt")}`,
    `--key-file=${join(dir, "server.key")}`,
    `--trusted-ca-file=${join(pkiDir, "ca.crt")}`,
    "--client-cert-auth",
    // k3s (and RKE2, with k3s's configuration): etcd's HTTP off the client port, metrics on loopback.
    ...(k3s
      ? [`--listen-client-http-urls=${httpUrl}`, `--listen-metrics-urls=http://127.0.0.1:${metrics}`]
      : []),
  ];
  const p = spawn(bin.stdout.trim(), args, { stdio: "ignore" });
  // /health is etcd's HTTP: on the client port as kubeadm runs it, on the HTTP port as k3s does.
  const health = k3s ? `${httpUrl}/health` : `${url}/health`;
  await waitFor(
    "etcd to answer",
    async () => ((await get(health, files).catch(() => undefined))?.status === 200 ? true : undefined),
    { timeoutMs: 30_000, intervalMs: 200 },
  );
  return {
    process: p,
    url,
    httpUrl,
    stop: async () => {
      if (p.exitCode !== null || p.signalCode !== null) return;
      const exited = new Promise((resolve) => p.once("exit", resolve));
      p.kill("SIGTERM");
      await exited;
    },
  };
}

/** values with overrides applied, as Helm merges them (maps merged, everything else replaced). */
function merge(base: Record<string, unknown>, over: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...base };
  for (const [k, v] of Object.entries(over)) {
    const b = out[k];
    out[k] = isMap(b) && isMap(v) ? merge(b, v) : v;
  }
  return out;
}

function isMap(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/**
 * values.yaml's worst-case formula evaluated for these values: "(+ X with FLAG)" counts X when FLAG is
 * true, "members" is max(defrag.maxMembers, number of defrag.nodes), every other path a duration.
 */
function worstCase(formula: string, values: Record<string, unknown>): number {
  const at = (path: string): unknown =>
    path.split(".").reduce<unknown>((v, k) => (isMap(v) ? v[k] : undefined), values);
  const seconds = (path: string): string => {
    const ms = parseDuration(String(at(path)));
    assert.ok(ms !== undefined, `${path} is a duration`);
    return String(ms / 1000);
  };
  const members = Math.max(Number(at("defrag.maxMembers")), (at("defrag.nodes") as unknown[]).length);
  const arithmetic = formula
    .replace(/\(\+ ([\w.]+) with ([\w.]+)\)/g, (_, term: string, flag: string) =>
      at(flag) === true ? `+ ${term}` : "",
    )
    .replace(/\bmembers\b/g, String(members))
    .replace(/\b[a-z]+\.[A-Za-z]+\b/g, seconds)
    .replace(/ x /g, " * ");
  return arithmeticValue(arithmetic);
}

/** + and * over numbers and parentheses, left to right with * first. */
function arithmeticValue(text: string): number {
  const tokens = text.match(/\d+(\.\d+)?|[()+*]/g) ?? [];
  assert.equal(tokens.join(""), text.replace(/\s+/g, ""), `only numbers, +, * and parentheses: ${text}`);
  let i = 0;
  const sum = (): number => {
    let v = product();
    while (tokens[i] === "+") {
      i++;
      v += product();
    }
    return v;
  };
  const product = (): number => {
    let v = atom();
    while (tokens[i] === "*") {
      i++;
      v *= atom();
    }
    return v;
  };
  const atom = (): number => {
    const t = tokens[i++];
    if (t === "(") {
      const v = sum();
      assert.equal(tokens[i++], ")");
      return v;
    }
    return Number(t);
  };
  const v = sum();
  assert.equal(i, tokens.length);
  return v;
}

/**
 * docs/other-distributions.md, checked: its openssl recipe runs as written (kubectl stood in for) and
 * makes a certificate a real etcd with client-certificate authentication accepts, as kubeadm runs etcd
 * and as k3s and RKE2 do (no HTTP on the client port); its Helm, Flux and kubectl lines name what the
 * chart renders; its CLI lines use the tool's flags; its tables quote values.yaml and the tool.
 */
describe("docs/other-distributions.md", () => {
  const DOC = join(REPO_ROOT, "docs", "other-distributions.md");
  const doc = (): string => readFileSync(DOC, "utf8");

  /** The text of the section "## N. ..." up to the next "## ". */
  function section(n: number): string {
    const text = doc();
    const start = text.indexOf(`\n## ${n}. `);
    assert.ok(start >= 0, `section ${n}`);
    const end = text.indexOf("\n## ", start + 1);
    return text.slice(start, end < 0 ? undefined : end);
  }

  /** The code blocks of a text in one language; for sh, one command a line (continuations joined). */
  function blocks(text: string, lang: string): string[] {
    return [...text.matchAll(/```(\w+)\n([\s\S]*?)```/g)]
      .filter((m) => m[1] === lang)
      .map((m) => (lang === "sh" ? (m[2] ?? "").replace(/\\\n\s*/g, "") : (m[2] ?? "")));
  }
  const lines = (text: string): string[] =>
    blocks(text, "sh")
      .flatMap((b) => b.split("\n"))
      .filter((l) => l.trim() !== "" && !l.startsWith("#"));

  /** The words of a shell line, as bash splits them (quotes removed, no expansion needed here). */
  function words(line: string): string[] {
    const r = spawnSync("bash", ["-c", `set -f; printf '%s\\0' ${line.replace(/^[^ ]+ /, "")}`], {
      encoding: "utf8",
    });
    assert.equal(r.status, 0, r.stderr);
    return r.stdout.split("\0").slice(0, -1);
  }

  /** `helm install NAME CHART --version V ARGS...` rendered with the repository's chart and the same ARGS. */
  function renderHelmInstall(line: string, extra: string[] = []): K8sObject[] {
    const [sub, name, , ...rest] = words(line);
    assert.equal(sub, "install", line);
    const args = rest.filter((_, i, a) => a[i] !== "--version" && a[i - 1] !== "--version");
    const r = helm(["template", name ?? "", CHART, ...args, ...extra]);
    assert.equal(r.code, 0, r.stderr);
    return parseAllDocuments(r.stdout)
      .map((d) => d.toJSON() as K8sObject | null)
      .filter((o): o is K8sObject => o !== null);
  }

  function cronEnv(objects: K8sObject[]): Record<string, string | undefined> {
    return Object.fromEntries(
      podSpec(find(objects, "CronJob")).containers[0]!.env.map((e) => [e.name, e.value] as const),
    );
  }

  /** The Flux HelmRelease of section 5. */
  function helmRelease(): K8sObject {
    const yaml = blocks(section(5), "yaml").find((b) => b.startsWith("# file: helmrelease.yaml\n"));
    assert.ok(yaml, "section 5 has the HelmRelease");
    return parse(yaml) as K8sObject;
  }
  const secretName = (): string =>
    (helmRelease().spec.values as { etcd: { clientCertSecret: string } }).etcd.clientCertSecret;

  it("section 3's recipe, run as written, makes a client certificate a real etcd accepts (as kubeadm runs it, and as k3s and RKE2 do), and the Secret of the values from ca.crt, tls.crt and tls.key alone", async (t) => {
    const dir = mkdtempSync(join(tmpdir(), "doc-etcd-client-"));
    const pki = join(dir, "pki", "etcd");
    const secret = join(dir, "secret");
    const tmp = join(dir, "tmp");
    mkdirSync(pki, { recursive: true });
    mkdirSync(secret);
    mkdirSync(tmp);
    // etcd's CA as kubeadm makes it (RSA), and a server certificate for 127.0.0.1.
    makeEtcdPki(dir, pki);
    let etcd: ReturnType<typeof spawn> | undefined;
    try {
      const recipe = blocks(section(3), "sh");
      assert.equal(recipe.length, 1, "one recipe");
      const script = (recipe[0] ?? "").replaceAll("/etc/kubernetes/pki/etcd/ca", join(pki, "ca"));
      assert.notEqual(script, recipe[0], "the recipe starts from kubeadm's etcd CA");
      // kubectl, stood in for: records its arguments and copies the files it would put into the Secret.
      const prelude = String.raw`
kubectl() {
  printf '%s\n' "$*" >>"$KUBECTL_LOG"
  local a key path
  for a in "$@"; do
    case $a in
      --from-file=*) path=${"$"}{a#--from-file=}; key=${"$"}{path%%=*}; [ "$key" = "$path" ] && key=$(basename "$path"); path=${"$"}{path#*=}; cp "$path" "$SECRET_DIR/$key" ;;
    esac
  done
}
`;
      const r = spawnSync("bash", ["-e", "-c", prelude + script], {
        cwd: dir,
        encoding: "utf8",
        env: { ...process.env, TMPDIR: tmp, KUBECTL_LOG: join(dir, "kubectl.log"), SECRET_DIR: secret },
      });
      assert.equal(r.status, 0, r.stderr);
      assert.match(r.stdout, /tls\.crt: OK/, "openssl verify -purpose sslclient");
      assert.deepEqual(readdirSync(tmp), [], "the working folder is gone");
      assert.equal(
        readFileSync(join(dir, "kubectl.log"), "utf8"),
        `-n kube-system create secret generic ${secretName()} --from-file=ca.crt --from-file=tls.crt --from-file=tls.key\n`,
        "the Secret the values name, in the release's namespace",
      );
      assert.deepEqual(readdirSync(secret).sort(), ["ca.crt", "tls.crt", "tls.key"]);
      const files = Object.fromEntries(
        ["ca.crt", "tls.crt", "tls.key"].map((f) => [f, readFileSync(join(secret, f), "utf8")] as const),
      );
      assert.equal(files["ca.crt"], readFileSync(join(pki, "ca.crt"), "utf8"), "the CA's certificate");
      assert.ok(
        !Object.values(files).includes(readFileSync(join(pki, "ca.key"), "utf8")),
        "never the CA's key",
      );
      const { X509Certificate, createPrivateKey } = await import("node:crypto");
      const cert = new X509Certificate(files["tls.crt"] ?? "");
      const ca = new X509Certificate(files["ca.crt"] ?? "");
      assert.ok(cert.checkIssued(ca) && cert.verify(ca.publicKey), "signed by etcd's CA");
      assert.deepEqual(cert.keyUsage, ["1.3.6.1.5.5.7.3.2"], "clientAuth, and nothing else");
      assert.equal(cert.ca, false);
      assert.equal(cert.subject, "CN=etcd-defrag");
      const key = createPrivateKey(files["tls.key"] ?? "");
      assert.equal(key.asymmetricKeyType, "ec");
      assert.equal(key.asymmetricKeyDetails?.namedCurve, "prime256v1", "P-256, which FIPS builds accept");
      assert.ok(cert.checkPrivateKey(key));
      const days = (Date.parse(cert.validTo) - Date.parse(cert.validFrom)) / 86_400_000;
      assert.equal(Math.round(days), 365);

      // A real etcd requiring client certificates, on loopback.
      const start = (k3s: boolean) => startTlsEtcd(dir, pki, files, k3s);
      const etcdctl = spawnSync("bash", ["-c", "command -v etcdctl"], { encoding: "utf8" }).stdout.trim();
      const status = (url: string) =>
        spawnSync(
          etcdctl,
          [
            "--endpoints",
            url,
            "--cacert",
            join(secret, "ca.crt"),
            "--cert",
            join(secret, "tls.crt"),
            "--key",
            join(secret, "tls.key"),
            "endpoint",
            "status",
          ],
          { encoding: "utf8", env: { ...process.env, ETCDCTL_API: "3" } },
        );

      // kubeadm's way: gRPC and /metrics (the defragment gauge) on the client port, with the certificate.
      const kubeadm = await start(false);
      etcd = kubeadm.process;
      if (etcdctl !== "") {
        const s = status(kubeadm.url);
        assert.equal(s.status, 0, s.stderr);
      } else t.diagnostic("no etcdctl here: the gRPC status is not checked");
      const metrics = await get(`${kubeadm.url}/metrics`, files);
      assert.equal(metrics.status, 200);
      assert.match(metrics.body, /^etcd_disk_defrag_inflight 0$/m, "the gauge the run reads");
      await assert.rejects(
        get(`${kubeadm.url}/metrics`, { "ca.crt": files["ca.crt"] ?? "" }),
        "no certificate, no answer",
      );
      await kubeadm.stop();

      // As k3s and RKE2 run it: gRPC on the client port, but no /metrics there (section 2).
      const k3s = await start(true);
      etcd = k3s.process;
      if (etcdctl !== "") {
        const s = status(k3s.url);
        assert.equal(s.status, 0, s.stderr);
      }
      // No HTTP on the client port: Node's HTTP/1.1 gets an empty reply (HTTP/2, 415).
      await assert.rejects(get(`${k3s.url}/metrics`, files), /socket hang up|ECONNRESET/);
      assert.match((await get(`${k3s.httpUrl}/metrics`, files)).body, /^etcd_disk_defrag_inflight 0$/m);
    } finally {
      etcd?.kill("SIGKILL");
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("section 4 makes the Secret from the certificate the node has: etcd's CA certificate and a client pair from section 2's table, never a CA's key", () => {
    const table = section(2);
    const commands = lines(section(4));
    assert.equal(commands.length, 2);
    for (const line of commands) {
      const w = words(line.replace(/^k3s /, ""));
      assert.deepEqual(w.slice(0, 5), ["-n", "kube-system", "create", "secret", "generic"], line);
      assert.equal(w[5], secretName());
      const from: Record<string, string> = {};
      for (const a of w.slice(6)) {
        const m = /^--from-file=([^=]+)=(.+)$/.exec(a);
        assert.ok(m?.[1] !== undefined && m[2] !== undefined, a);
        from[m[1]] = m[2];
      }
      assert.deepEqual(Object.keys(from).sort(), ["ca.crt", "tls.crt", "tls.key"]);
      assert.match(from["ca.crt"] ?? "", /\/(ca|server-ca)\.crt$/);
      assert.doesNotMatch(from["tls.key"] ?? "", /ca\.key$/, "never a CA's key");
      for (const path of Object.values(from)) {
        const dirName = path.slice(0, path.lastIndexOf("/") + 1);
        const base = path.slice(path.lastIndexOf("/") + 1);
        assert.ok(
          table.includes(path) ||
            (table.includes(dirName) && table.includes(base.replace(/\.(crt|key)$/, ""))),
          path,
        );
      }
    }
  });

  it("section 5's helm install and HelmRelease render backend etcd with the Secret of sections 3 and 4; its kubectl lines name the CronJob; README's and the chart README's commands render alike", () => {
    const helmLines = lines(section(5)).filter((l) => l.startsWith("helm install"));
    assert.equal(helmLines.length, 1);
    const env = cronEnv(renderHelmInstall(helmLines[0] ?? ""));
    assert.equal(env.TALOS_ETCD_DEFRAG_BACKEND, "etcd");
    assert.equal(
      env.TALOS_ETCD_DEFRAG_ETCD_ENDPOINTS,
      "https://10.0.0.11:2379,https://10.0.0.12:2379,https://10.0.0.13:2379",
    );
    assert.equal(env.TALOS_ETCD_DEFRAG_DRY_RUN, "true", "a dry run first");
    assert.equal(env.TALOS_ETCD_DEFRAG_WITHOUT_DEFRAG_GAUGE, "refuse");
    // k3s and RKE2: the --set the text adds.
    const k3sSet = /add `(--set etcd\.withoutDefragGauge=status-only)`/.exec(section(5))?.[1];
    assert.ok(k3sSet);
    assert.equal(
      cronEnv(renderHelmInstall(helmLines[0] ?? "", k3sSet.split(" ")))
        .TALOS_ETCD_DEFRAG_WITHOUT_DEFRAG_GAUGE,
      "status-only",
    );
    const portSet = /add `(--set etcd\.metricsPort=2381)`/.exec(section(5))?.[1];
    assert.ok(portSet);
    assert.equal(
      cronEnv(renderHelmInstall(helmLines[0] ?? "", portSet.split(" "))).TALOS_ETCD_DEFRAG_ETCD_METRICS_PORT,
      "2381",
    );
    const secretOf = (objects: K8sObject[]) =>
      (placement(find(objects, "CronJob")).volumes as { secret?: { secretName: string } }[]).find(
        (v) => v.secret,
      )?.secret?.secretName;
    assert.equal(secretOf(renderHelmInstall(helmLines[0] ?? "")), secretName());

    const release = helmRelease();
    validateObject(release);
    const rendered = render(release.spec.values as Record<string, unknown>);
    for (const o of rendered) validateObject(o);
    assert.equal(release.metadata.namespace, find(rendered, "CronJob").metadata.namespace);
    assert.equal(secretOf(rendered), secretName());
    const releaseEnv = cronEnv(rendered);
    assert.equal(releaseEnv.TALOS_ETCD_DEFRAG_BACKEND, "etcd");
    assert.equal(releaseEnv.TALOS_ETCD_DEFRAG_DRY_RUN, "true");
    assert.equal(releaseEnv.TALOS_ETCD_DEFRAG_CLUSTER_NAME, "prod");
    for (const line of lines(section(5)).filter((l) => l.startsWith("kubectl"))) {
      const jobs = /create job --from=cronjob\/(\S+) /.exec(line)?.[1];
      if (jobs !== undefined) assert.equal(jobs, find(rendered, "CronJob").metadata.name);
      assert.match(line, /^kubectl -n kube-system /);
    }
    // The README's and the chart README's commands: the same values, without the dry run.
    const readme = readFileSync(join(REPO_ROOT, "README.md"), "utf8");
    const start = readme.indexOf("### Other Kubernetes distributions");
    assert.ok(start >= 0, "README's Install has the section");
    const readmeSection = readme.slice(start, readme.indexOf("\n## ", start));
    assert.ok(readmeSection.includes("(docs/other-distributions.md)"));
    const chartReadme = readFileSync(join(CHART, "README.md"), "utf8");
    for (const text of [
      readmeSection,
      chartReadme.slice(chartReadme.indexOf("**Other Kubernetes distributions**")),
    ]) {
      const line = lines(text).find((l) => l.startsWith("helm install") && l.includes("backend=etcd"));
      assert.ok(line);
      const e = cronEnv(renderHelmInstall(line));
      assert.equal(e.TALOS_ETCD_DEFRAG_BACKEND, "etcd");
      assert.equal(e.TALOS_ETCD_DEFRAG_ETCD_ENDPOINTS, env.TALOS_ETCD_DEFRAG_ETCD_ENDPOINTS);
      assert.equal(secretOf(renderHelmInstall(line)), secretName());
    }
  });

  it("section 6's command lines use the tool's flags for the commands that take them, and the etcdctl variables it reads", () => {
    const cli = lines(section(6)).filter((l) => l.startsWith("talos-etcd-defrag "));
    assert.ok(cli.length >= 3);
    for (const line of cli) {
      const [command, ...args] = words(line);
      assert.ok(command === "status" || command === "run", line);
      for (const a of args.filter((x) => x.startsWith("--"))) {
        const o = OPTIONS.find((x) => x.flag.split(/[ ,]+/).includes(a));
        assert.ok(o, `${a}: an option of the tool`);
        assert.ok(o.commands.includes(command), `${a}: an option of ${command}`);
      }
      assert.ok(args.includes("--backend") && args[args.indexOf("--backend") + 1] === "etcd", line);
    }
    const exported = lines(section(6))
      .filter((l) => l.startsWith("export "))
      .flatMap((l) => [...l.matchAll(/(\w+)=/g)].map((m) => m[1]));
    assert.deepEqual(exported, ["ETCDCTL_ENDPOINTS", "ETCDCTL_CACERT", "ETCDCTL_CERT", "ETCDCTL_KEY"]);
    for (const name of exported)
      assert.ok(
        OPTIONS.some((o) => o.alsoEnv?.includes(name)),
        `${name}: read by the tool`,
      );
    assert.ok(section(6).includes("`TALOS_ETCD_DEFRAG_BACKEND=etcd`"));
    assert.ok(OPTIONS.some((o) => o.env === "TALOS_ETCD_DEFRAG_BACKEND"));
  });

  it("section 7's defaults are values.yaml's; section 9 quotes the tool's defaults; etcd-defrag's example rule is a rule here, and the two differences hold", async () => {
    const values = parse(readFileSync(join(CHART, "values.yaml"), "utf8")) as Record<string, unknown>;
    const at = (path: string): unknown =>
      path.split(".").reduce<unknown>((v, k) => (isMap(v) ? v[k] : undefined), values);
    const rows = section(7)
      .split("\n")
      .map((l) => /^\| `([\w.]+)` +\| `([^`]*)` +\|/.exec(l))
      .filter((m): m is RegExpExecArray => m !== null);
    assert.ok(rows.length >= 6);
    for (const [, path = "", shown] of rows) {
      const v = at(path);
      assert.equal(typeof v === "string" && shown !== '""' ? v : JSON.stringify(v), shown, path);
    }
    const table = section(9);
    const row = (flag: string) =>
      table.split("\n").find((l) => l.startsWith("| ") && l.split("|")[2]?.includes(flag)) ?? "";
    const tool = (env: string) => OPTIONS.find((o) => o.env === env)?.default;
    assert.equal(tool("TALOS_ETCD_DEFRAG_PAUSE"), "10s");
    assert.match(row("`--pause`"), /, 10s,/);
    assert.equal(tool("TALOS_ETCD_DEFRAG_TIMEOUT"), "15m");
    assert.equal(tool("TALOS_ETCD_DEFRAG_CALL_TIMEOUT"), "30s");
    assert.match(row("`--timeout`"), /`defrag\.timeout`, 15m\).*`defrag\.callTimeout`, 30s\)/);
    assert.equal(tool("TALOS_ETCD_DEFRAG_NOSPACE_DISARM_BELOW"), "0.8");
    assert.match(row("`--nospace-disarm-below`"), /, 0\.8;/);
    assert.equal(tool("TALOS_ETCD_DEFRAG_COMPACT"), "false");
    assert.match(row("`--compact`"), /off by default/);
    assert.equal(tool("TALOS_ETCD_DEFRAG_MOVE_LEADER"), "auto");
    assert.match(row("`--move-leader auto`"), /on by default/);
    const { compileRule } = await import("../../src/core/rule.js");
    const example = /the rule\n?\s*`([^`]+)`/.exec(table.replace(/\n/g, " "))?.[1];
    assert.equal(example, "dbQuotaUsage > 0.8 || dbSize - dbSizeInUse > 200*1024*1024");
    const input = {
      dbSize: 300 * MiB,
      dbSizeInUse: 50 * MiB,
      dbQuota: 2048 * MiB,
      isLeader: false,
      nospace: false,
    };
    assert.equal(compileRule(example).evaluate(input), true, "250 MiB free");
    assert.equal(compileRule(example).evaluate({ ...input, dbSizeInUse: 250 * MiB }), false);
    assert.throws(() => compileRule("dbSize > dbQuota * 0.8"), /does not compile/);
    assert.ok(compileRule("dbSize > double(dbQuota) * 0.8"));
    assert.throws(
      () => compileRule("dbSizeInUse / dbSize < 0.5"),
      /double\(dbSizeInUse\) \/ double\(dbSize\)/,
    );
    assert.match(table, /`dbQuota \* 0\.8`\) is an error here/);
  });
});
