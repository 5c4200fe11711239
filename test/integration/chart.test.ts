// The Helm chart and the Flux example: rendered with the real helm and kustomize,
// validated offline against the Kubernetes and CRD schemas, applied server-side to a real
// kube-apiserver (with minimal CRDs for the custom kinds), and the rendered CronJob's
// container run exactly as Kubernetes would run it, against the harness, holding its Lease
// with the token of the chart's ServiceAccount and only the RBAC the chart grants.

import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import {
  copyFileSync,
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";

import { ExternalSecret } from "@kubernetes-models/external-secrets/external-secrets.io/v1beta1/ExternalSecret";
import { HelmRelease } from "@kubernetes-models/flux-cd/helm.toolkit.fluxcd.io/v2beta2/HelmRelease";
import { Kustomization } from "@kubernetes-models/flux-cd/kustomize.toolkit.fluxcd.io/v1/Kustomization";
import { HelmRepository } from "@kubernetes-models/flux-cd/source.toolkit.fluxcd.io/v1beta2/HelmRepository";
import { PrometheusRule } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PrometheusRule";
import { CoreV1Api, KubeConfig } from "@kubernetes/client-node";
import { CronJob } from "kubernetes-models/batch/v1/CronJob";
import { NetworkPolicy } from "kubernetes-models/networking.k8s.io/v1/NetworkPolicy";
import { Role } from "kubernetes-models/rbac.authorization.k8s.io/v1/Role";
import { RoleBinding } from "kubernetes-models/rbac.authorization.k8s.io/v1/RoleBinding";
import { ServiceAccount } from "kubernetes-models/v1/ServiceAccount";
import { parse, parseAllDocuments } from "yaml";

import { createLeaseGuard, loadKubeConfig } from "../../src/k8s/lease.js";
import { systemClock } from "../../src/run/clock.js";
import { startHarness, type Harness } from "../harness/harness.js";
import { MINIMAL_CRDS } from "../harness/crds.js";
import { KubeApiServer } from "../harness/kube-apiserver.js";
import { REPO_ROOT, runCli } from "../harness/run-cli.js";
import { TEST_RULE, parseSummary } from "../harness/run-summary.js";
import { MiB } from "../harness/units.js";
import { waitFor } from "../harness/wait.js";

const CHART = join(REPO_ROOT, "charts", "etcd-defrag");
const BIN = join(REPO_ROOT, ".cache", "bin");

interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string> };
  spec: Record<string, unknown>;
}

function tool(name: string): string {
  const path = join(BIN, name);
  if (!existsSync(path)) {
    const r = spawnSync("bash", [join(REPO_ROOT, "scripts", "k8s-tools.sh")], { encoding: "utf8" });
    assert.ok(
      existsSync(path),
      `${name} is not installed and scripts/k8s-tools.sh could not install it: ${r.stderr}`,
    );
  }
  return path;
}

function helm(args: string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(tool("helm"), args, { encoding: "utf8", env: { ...process.env, HOME: tmpdir() } });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

function render(values: Record<string, unknown> = {}): K8sObject[] {
  const dir = mkdtempSync(join(tmpdir(), "chart-values-"));
  const file = join(dir, "values.json");
  writeFileSync(file, JSON.stringify(values));
  const r = helm(["template", "etcd-defrag", CHART, "--namespace", "kube-system", "--values", file]);
  rmSync(dir, { recursive: true, force: true });
  assert.equal(r.code, 0, r.stderr);
  return parseAllDocuments(r.stdout)
    .map((d) => d.toJSON() as K8sObject | null)
    .filter((o): o is K8sObject => o !== null);
}

function find(objects: K8sObject[], kind: string, apiVersion?: string): K8sObject {
  const o = objects.find((x) => x.kind === kind && (apiVersion === undefined || x.apiVersion === apiVersion));
  assert.ok(o, `${kind} rendered`);
  return o;
}

/** The Talos ServiceAccount (talos.dev/v1alpha1), not the Kubernetes one of the lease. */
const talosServiceAccount = (objects: K8sObject[]): K8sObject =>
  find(objects, "ServiceAccount", "talos.dev/v1alpha1");

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

/** The pod spec of a rendered CronJob, typed loosely for assertions. */
interface PodSpec {
  restartPolicy: string;
  automountServiceAccountToken: boolean;
  hostNetwork?: boolean;
  securityContext: { runAsNonRoot: boolean; runAsUser: number; seccompProfile: { type: string } };
  containers: {
    args: string[];
    env: { name: string; value?: string; valueFrom?: { secretKeyRef: { name: string; key: string } } }[];
    securityContext: {
      allowPrivilegeEscalation: boolean;
      readOnlyRootFilesystem: boolean;
      capabilities: { drop: string[] };
    };
    volumeMounts?: { name: string; mountPath: string; readOnly: boolean }[];
  }[];
  serviceAccountName?: string;
  volumes?: { name: string; secret?: { secretName: string }; projected?: unknown; hostPath?: unknown }[];
}

function podSpec(cronJob: K8sObject): PodSpec {
  const jobTemplate = cronJob.spec.jobTemplate as { spec: { template: { spec: PodSpec } } };
  return jobTemplate.spec.template.spec;
}

/** Validates with the library's schema; for an API version newer than the library, with its newest one. */
function validate(o: K8sObject): void {
  switch (o.kind) {
    case "CronJob":
      new CronJob(o as never).validate();
      return;
    case "NetworkPolicy":
      new NetworkPolicy(o as never).validate();
      return;
    case "ExternalSecret":
      // external-secrets.io/v1 has the same ExternalSecret schema as v1beta1, the library's newest.
      new ExternalSecret({ ...o, apiVersion: "external-secrets.io/v1beta1" } as never).validate();
      return;
    case "HelmRelease":
      new HelmRelease({ ...o, apiVersion: "helm.toolkit.fluxcd.io/v2beta2" } as never).validate();
      return;
    case "HelmRepository":
      new HelmRepository({ ...o, apiVersion: "source.toolkit.fluxcd.io/v1beta2" } as never).validate();
      return;
    case "PrometheusRule":
      new PrometheusRule(o).validate();
      return;
    case "Kustomization":
      new Kustomization(o as never).validate();
      return;
    case "ServiceAccount":
      if (o.apiVersion === "v1") {
        new ServiceAccount(o).validate();
        return;
      }
      // talos.dev/v1alpha1 has no published schema: its fields are asserted directly.
      assert.equal(o.apiVersion, "talos.dev/v1alpha1");
      assert.deepEqual(Object.keys(o.spec), ["roles"]);
      return;
    case "Role":
      new Role(o).validate();
      return;
    case "RoleBinding":
      new RoleBinding(o as never).validate();
      return;
    default:
      assert.fail(`no schema check for ${o.apiVersion} ${o.kind}`);
  }
}

describe("Helm chart", () => {
  it("passes helm lint", () => {
    const r = helm(["lint", CHART]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
  });

  it("the schema validator is live: an invalid object fails", () => {
    const cronJob = find(render(), "CronJob");
    const broken = structuredClone(cronJob);
    (broken.spec as { schedule: unknown }).schedule = 7;
    assert.throws(() => {
      validate(broken);
    });
  });

  it("serviceAccount mode (default): the weekly, locked-down CronJob and a Talos ServiceAccount with os:operator", () => {
    const objects = render();
    for (const o of objects) validate(o);
    assert.deepEqual(objects.map((o) => `${o.apiVersion} ${o.kind}`).sort(), [
      "batch/v1 CronJob",
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
      { name: "kube-api-access", mountPath: "/var/run/secrets/kubernetes.io/serviceaccount", readOnly: true },
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
    for (const o of objects) validate(o);
    assert.deepEqual(
      objects.map((o) => o.kind),
      ["CronJob"],
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

  it("externalSecret mode: an ExternalSecret from the ClusterSecretStore fills that Secret", () => {
    const objects = render({ auth: { mode: "externalSecret", endpoints: ["10.0.0.11"] } });
    for (const o of objects) validate(o);
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

  it("the optional NetworkPolicy allows egress only to the Talos API, DNS, and with the lease the Kubernetes API", () => {
    const withLease = find(render({ networkPolicy: { enabled: true } }), "NetworkPolicy");
    validate(withLease);
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
    validate(policy);
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
    for (const o of objects) validate(o);
    const c = podSpec(find(objects, "CronJob")).containers[0]!;
    assert.equal(
      c.env.find((e) => e.name === "TALOS_ETCD_DEFRAG_PUSHGATEWAY_URL")?.value,
      "http://pushgateway.monitoring:9091",
    );
    assert.equal(c.env.find((e) => e.name === "TALOS_ETCD_DEFRAG_CLUSTER_NAME")?.value, "prod");
    assert.equal(find(objects, "PrometheusRule").metadata.labels?.release, "kube-prometheus-stack");
  });

  it("the lease (on by default): a ServiceAccount, a Role for the one Lease (+ create), its token mounted only for that", () => {
    const objects = render();
    const role = find(objects, "Role");
    assert.equal(role.metadata.namespace, "kube-system");
    assert.deepEqual((role as unknown as { rules: unknown }).rules, [
      {
        apiGroups: ["coordination.k8s.io"],
        resources: ["leases"],
        resourceNames: ["etcd-defrag"],
        verbs: ["get", "update"],
      },
      // Kubernetes RBAC cannot limit create to a name: create alone, without get/update/delete on others.
      { apiGroups: ["coordination.k8s.io"], resources: ["leases"], verbs: ["create"] },
    ]);
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
    const sa = find(objects, "ServiceAccount", "v1") as unknown as { automountServiceAccountToken: boolean };
    assert.equal(sa.automountServiceAccountToken, false);
    const pod = podSpec(find(objects, "CronJob"));
    assert.equal(pod.serviceAccountName, "etcd-defrag");
    assert.equal(pod.automountServiceAccountToken, false, "no token but the projected one");
    const c = pod.containers[0]!;
    assert.equal(c.env.find((e) => e.name === "TALOS_ETCD_DEFRAG_LEASE")?.value, "kube-system/etcd-defrag");
    assert.equal(c.env.find((e) => e.name === "TALOS_ETCD_DEFRAG_LEASE_WAIT")?.value, "1m");

    const custom = render({ lease: { name: "defrag.lock", wait: "0s" } });
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
      "talos.dev/v1alpha1 ServiceAccount",
    ]);
    const offPod = podSpec(find(off, "CronJob"));
    assert.equal(offPod.serviceAccountName, undefined);
    assert.deepEqual(offPod.volumes, [{ name: "talos-secrets", secret: { secretName: "etcd-defrag" } }]);
    assert.ok(!offPod.containers[0]!.env.some((e) => e.name.startsWith("TALOS_ETCD_DEFRAG_LEASE")));
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
      [{ auth: { mode: "secret" } }, /auth\.endpoints is required with auth\.mode=secret/],
      [
        { metrics: { pushgatewayUrl: "pushgateway:9091" } },
        /\/metrics\/pushgatewayUrl.*does not match pattern/,
      ],
      [{ lease: { name: "Etcd_Defrag" } }, /\/lease\/name.*does not match pattern/],
      [{ lease: { wait: "soon" } }, /\/lease\/wait.*does not match pattern/],
    ];
    for (const [values, message] of cases) {
      const dir = mkdtempSync(join(tmpdir(), "chart-bad-"));
      const file = join(dir, "values.json");
      writeFileSync(file, JSON.stringify(values));
      const r = helm(["template", "etcd-defrag", CHART, "--values", file]);
      rmSync(dir, { recursive: true, force: true });
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
    assert.deepEqual(objects.map((o) => o.kind).sort(), ["ExternalSecret", "HelmRelease", "HelmRepository"]);
    for (const o of objects) validate(o);
    const release = find(objects, "HelmRelease");
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
    validate(ks);
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
  return kas.writeKubeconfig(kasDir, { name: `system:serviceaccount:${namespace}:${name}`, token });
}

describe("the chart applied server-side to a real kube-apiserver", () => {
  const variants: [string, Record<string, unknown>][] = [
    ["defaults", {}],
    [
      "secret mode, no lease",
      { auth: { mode: "secret", endpoints: ["10.0.0.11"] }, lease: { enabled: false } },
    ],
    [
      "externalSecret mode with everything on",
      {
        auth: { mode: "externalSecret", endpoints: ["10.0.0.11"] },
        networkPolicy: { enabled: true },
        metrics: { pushgatewayUrl: "http://pushgateway.monitoring:9091", clusterName: "prod" },
        prometheusRule: { enabled: true, labels: { release: "kube-prometheus-stack" } },
        defrag: { nodes: ["10.0.0.11"], rule: "true" },
        extraEnv: [{ name: "TZ", value: "UTC" }],
      },
    ],
  ];
  for (const [name, values] of variants) {
    it(`${name}: every rendered object is accepted (dry run, strict field validation)`, async () => {
      for (const o of render(values)) {
        const r = await kas.apply(o, { dryRun: true });
        assert.ok(r.status === 200 || r.status === 201, `${o.apiVersion} ${o.kind}: ${r.status} ${r.body}`);
      }
    });
  }

  it("the API server's validation is live: a broken CronJob and an unknown field are rejected", async () => {
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
  });

  it("applied for real: the ServiceAccount's token holds the chart's Lease, and can touch no other", async () => {
    for (const o of render()) {
      const r = await kas.apply(o);
      assert.ok(r.status === 200 || r.status === 201, `${o.kind}: ${r.body}`);
    }
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
  });
});

describe("the rendered CronJob, run as Kubernetes would run it", () => {
  let h: Harness;
  let dir: string;
  let app: string;

  before(async () => {
    h = await startHarness({ members: 3 });
    dir = mkdtempSync(join(tmpdir(), "cronjob-e2e-"));
    // The image's /app: the bundle (its entry point and chunks) alone, no node_modules anywhere near it.
    app = join(dir, "app");
    const bundle = join(REPO_ROOT, "dist", "bundle");
    assert.ok(
      existsSync(join(bundle, "talos-etcd-defrag.mjs")),
      "npm run bundle has been run (scripts/setup.sh does)",
    );
    cpSync(bundle, app, { recursive: true });
  });

  after(async () => {
    await h.close();
    rmSync(dir, { recursive: true, force: true });
  });

  /** The image's ENTRYPOINT with its paths mapped into the test's folders, plus the container's args. */
  function command(args: string[]): string[] {
    const entrypoint = /^ENTRYPOINT (\[.*\])$/m.exec(
      readFileSync(join(REPO_ROOT, "Dockerfile"), "utf8"),
    )?.[1];
    assert.ok(entrypoint, "the Dockerfile has an exec-form ENTRYPOINT");
    const [node, ...rest] = JSON.parse(entrypoint) as string[];
    assert.equal(node, "/nodejs/bin/node");
    const script = rest.at(-1) ?? "";
    assert.match(script, /^\/app\//);
    return [process.execPath, ...rest.slice(0, -1), script.replace(/^\/app\//, `${app}/`), ...args];
  }

  function envOf(
    values: Record<string, unknown>,
    secret: Record<string, string>,
    mounts: Record<string, string>,
  ) {
    const c = podSpec(find(render(values), "CronJob")).containers[0]!;
    const env: Record<string, string> = {};
    for (const e of c.env) {
      if (e.value !== undefined) {
        env[e.name] = Object.entries(mounts).reduce((v, [from, to]) => v.replace(from, to), e.value);
      } else if (e.valueFrom) {
        const value = secret[e.valueFrom.secretKeyRef.key];
        assert.ok(value !== undefined, `the Secret has ${e.valueFrom.secretKeyRef.key}`);
        env[e.name] = value;
      }
    }
    return { env, args: c.args };
  }

  it("secret mode: TALOS_* from the Secret defragments the fragmented cluster", async () => {
    await h.etcd.fragment({ targetDbBytes: 48 * MiB, liveFraction: 0.25 });
    const creds = await h.credentials(["os:operator"]);
    const { env, args } = envOf(
      {
        auth: { mode: "secret", endpoints: h.nodes.map((n) => `${n}:${h.apiPort}`) },
        defrag: { rule: TEST_RULE, pause: "0s" },
        output: "json",
        lease: { enabled: false },
      },
      { TALOS_CA: creds.ca, TALOS_CRT: creds.crt, TALOS_KEY: creds.key },
      {},
    );
    const r = await runCli([], { command: command(args), env, cwd: dir });
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
      new RegExp(creds.key.slice(0, 40).replace(/[+/]/g, ".")),
      "the key is never logged",
    );
  });

  it("serviceAccount mode: the mounted talosconfig defragments the fragmented cluster, holding the chart's Lease", async () => {
    await h.etcd.fragment({ targetDbBytes: 48 * MiB, liveFraction: 0.25 });
    // What Talos writes into the Secret's "config" key, mounted at /var/run/secrets/talos.dev.
    const mount = join(dir, "var-run-secrets-talos.dev");
    mkdirSync(mount);
    const written = await h.writeTalosconfig({ roles: ["os:operator"], dir: mount, context: "default" });
    copyFileSync(written, join(mount, "config"));
    const { env, args } = envOf(
      { defrag: { rule: TEST_RULE, pause: "0s" }, output: "json" },
      {},
      { "/var/run/secrets/talos.dev": mount },
    );
    assert.equal(env.TALOSCONFIG, join(mount, "config"));
    // The projected token's identity and RBAC, from the chart applied to the API server; a kubeconfig
    // carries it here (the in-cluster loader itself is tested in lease.test.ts).
    for (const o of render()) assert.ok([200, 201].includes((await kas.apply(o)).status));
    env.KUBECONFIG = await serviceAccountKubeconfig("kube-system", "etcd-defrag");
    const r = await runCli([], { command: command(args), env, cwd: dir });
    assert.equal(r.code, 0, r.stderr);
    assert.equal((JSON.parse(r.stdout) as { result: string }).result, "success");
    assert.match(r.stderr, /holding the lease kube-system\/etcd-defrag for this run/);
  });
});
