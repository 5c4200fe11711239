// The Helm chart and the Flux example: rendered with the real helm and kustomize,
// validated offline against the Kubernetes and CRD schemas, and the rendered
// CronJob's container run exactly as Kubernetes would run it, against the harness.

import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
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
  writeFileSync,
} from "node:fs";
import { tmpdir, userInfo } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";

import { ExternalSecret } from "@kubernetes-models/external-secrets/external-secrets.io/v1beta1/ExternalSecret";
import { HelmRelease } from "@kubernetes-models/flux-cd/helm.toolkit.fluxcd.io/v2beta2/HelmRelease";
import { Kustomization } from "@kubernetes-models/flux-cd/kustomize.toolkit.fluxcd.io/v1/Kustomization";
import { OCIRepository } from "@kubernetes-models/flux-cd/source.toolkit.fluxcd.io/v1beta2/OCIRepository";
import { PrometheusRule } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PrometheusRule";
import { CronJob } from "kubernetes-models/batch/v1/CronJob";
import { Job } from "kubernetes-models/batch/v1/Job";
import { NetworkPolicy } from "kubernetes-models/networking.k8s.io/v1/NetworkPolicy";
import { parse, parseAllDocuments } from "yaml";

import {
  CHART,
  containerEnv,
  entrypoint,
  find,
  helm,
  podSpec,
  render,
  tool,
  tryRender,
  type K8sObject,
} from "../harness/chart.js";
import { startHarness, type Harness } from "../harness/harness.js";
import { REPO_ROOT, runCli } from "../harness/run-cli.js";
import { TEST_RULE, parseSummary } from "../harness/run-summary.js";
import { MiB } from "../harness/units.js";

/** Validates with the library's schema; for an API version newer than the library, with its newest one. */
function validate(o: K8sObject): void {
  switch (o.kind) {
    case "CronJob":
      new CronJob(o as never).validate();
      return;
    case "Job":
      new Job(o as never).validate();
      return;
    case "NetworkPolicy":
      new NetworkPolicy(o as never).validate();
      return;
    case "ExternalSecret":
      // external-secrets.io/v1 has the same ExternalSecret schema as v1beta1, the library's newest.
      new ExternalSecret({ ...o, apiVersion: "external-secrets.io/v1beta1" } as never).validate();
      return;
    case "HelmRelease": {
      // helm.toolkit.fluxcd.io/v2 is v2beta2 plus chartRef (which the library's schema predates): the rest
      // validates with v2beta2, chartRef is checked here.
      const { chartRef, ...rest } = o.spec as { chartRef?: unknown };
      const spec: Record<string, unknown> = rest;
      if (chartRef !== undefined) {
        assert.deepEqual(Object.keys(chartRef as object).sort(), ["kind", "name"]);
        assert.ok(["OCIRepository", "HelmChart"].includes((chartRef as { kind: string }).kind));
        spec.chart = { spec: { chart: "placeholder", sourceRef: { kind: "HelmRepository", name: "x" } } };
      }
      new HelmRelease({ ...o, spec, apiVersion: "helm.toolkit.fluxcd.io/v2beta2" } as never).validate();
      return;
    }
    case "OCIRepository":
      // source.toolkit.fluxcd.io/v1 (Flux 2.6) promoted v1beta2 unchanged, the library's newest.
      new OCIRepository({ ...o, apiVersion: "source.toolkit.fluxcd.io/v1beta2" } as never).validate();
      return;
    case "PrometheusRule":
      new PrometheusRule(o).validate();
      return;
    case "Kustomization":
      new Kustomization(o as never).validate();
      return;
    case "ServiceAccount":
      // talos.dev/v1alpha1 has no published schema: its fields are asserted directly.
      assert.equal(o.apiVersion, "talos.dev/v1alpha1");
      assert.deepEqual(Object.keys(o.spec), ["roles"]);
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
    assert.deepEqual(objects.map((o) => o.kind).sort(), ["CronJob", "Job", "ServiceAccount"]);
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
    assert.deepEqual(pod.volumes, [{ name: "talos-secrets", secret: { secretName: "etcd-defrag" } }]);
    assert.deepEqual(c.volumeMounts, [
      { name: "talos-secrets", mountPath: "/var/run/secrets/talos.dev", readOnly: true },
    ]);
    assert.equal(c.env.find((e) => e.name === "TALOSCONFIG")?.value, "/var/run/secrets/talos.dev/config");
    assert.ok(!c.env.some((e) => e.valueFrom !== undefined), "no Secret keys in this mode");
    const sa = find(objects, "ServiceAccount");
    assert.equal(sa.metadata.name, "etcd-defrag");
    assert.deepEqual(sa.spec.roles, ["os:operator"]);
  });

  it("os:admin is granted only when leader moves are allowed and not disabled", () => {
    const roles = (values: Record<string, unknown>): unknown =>
      find(render(values), "ServiceAccount").spec.roles;
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
    const objects = render({ auth: { mode: "secret", endpoints: ["10.0.0.11", "10.0.0.12"] } });
    for (const o of objects) validate(o);
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
    validate(es);
  });

  it("the optional NetworkPolicy allows egress only to the Talos API and DNS", () => {
    const policy = find(render({ networkPolicy: { enabled: true } }), "NetworkPolicy");
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

  it("the defaults' worst case fits the deadline, and one that fits renders", () => {
    const cronJob = find(render(), "CronJob");
    const job = (cronJob.spec.jobTemplate as { spec: { activeDeadlineSeconds: number } }).spec;
    // 3 x (10m + 10m + 5m + 10s) + 10 x 30s = 4830 s.
    assert.ok(job.activeDeadlineSeconds >= 4830, String(job.activeDeadlineSeconds));
    const tight = find(
      render({
        cronjob: { activeDeadlineSeconds: 1000 },
        defrag: { timeout: "2m", maxWait: "1m", healthTimeout: "90s", pause: "500ms", callTimeout: "10s" },
      }),
      "CronJob",
    );
    // 3 x (120 + 60 + 90 + 0.5) + 100 = 911.5 s, under 1000.
    assert.equal(
      (tight.spec.jobTemplate as { spec: { activeDeadlineSeconds: number } }).spec.activeDeadlineSeconds,
      1000,
    );
  });

  it("imagePullSecrets reach the CronJob's and the verification Job's pods", () => {
    const objects = render({ imagePullSecrets: [{ name: "regcred" }] });
    for (const o of objects) validate(o);
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

  it("logs are text by default", () => {
    const c = podSpec(find(render(), "CronJob")).containers[0]!;
    assert.equal(c.env.find((e) => e.name === "TALOS_ETCD_DEFRAG_LOG_FORMAT")?.value, "text");
  });

  it("the verification Job: a post-install/post-upgrade hook running status, then run --dry-run, without metrics", () => {
    const objects = render({ metrics: { pushgatewayUrl: "http://pushgateway.monitoring:9091" } });
    const job = find(objects, "Job");
    validate(job);
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
    const cronJob = podSpec(find(objects, "CronJob")).containers[0]!;
    for (const c of [...(pod.initContainers ?? []), ...pod.containers]) {
      assert.equal(c.image, cronJob.image);
      assert.deepEqual(c.securityContext, cronJob.securityContext);
      assert.deepEqual(c.volumeMounts, cronJob.volumeMounts);
      // A dry run's metrics would replace the last real run's.
      assert.deepEqual(
        c.env,
        cronJob.env.filter((e) => e.name !== "TALOS_ETCD_DEFRAG_PUSHGATEWAY_URL"),
      );
    }
    assert.deepEqual(pod.volumes, podSpec(find(objects, "CronJob")).volumes);
    assert.equal(pod.automountServiceAccountToken, false);
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
      assert.match(notes({}), /kubectl logs -n kube-system job\/etcd-defrag-verify --all-containers/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
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
      [
        { metrics: { pushgatewayUrl: "pushgateway:9091" } },
        /\/metrics\/pushgatewayUrl.*does not match pattern/,
      ],
      [{ defrag: { quotaBytes: "lots" } }, /\/defrag\/quotaBytes.*does not match pattern/],
      [{ defrag: { quotaBytes: true } }, /\/defrag\/quotaBytes.*got boolean, want integer or string/],
      [{ defrag: { quotaBytes: 0 } }, /\/defrag\/quotaBytes.*minimum/],
      [{ imagePullSecrets: ["regcred"] }, /\/imagePullSecrets\/0.*got string, want object/],
      [{ verify: { enabled: "yes" } }, /\/verify\/enabled.*got string, want boolean/],
      [{ logFormat: "yaml" }, /\/logFormat.*value must be one of 'text', 'json'/],
      [{ defrag: { maxMembers: 2.5 } }, /\/defrag\/maxMembers.*got number, want integer/],
      [{ imagePullSecret: [] }, /additional properties 'imagePullSecret' not allowed/],
      [
        { cronjob: { activeDeadlineSeconds: 3600 } },
        /cronjob\.activeDeadlineSeconds \(3600 s\) is shorter than the worst case of a run, 4830 s: 3 members \(defrag\.maxMembers, or defrag\.nodes\) x \(defrag\.timeout 10m \+ defrag\.maxWait 10m \+ defrag\.healthTimeout 5m \+ defrag\.pause 10s\) \+ 10 x defrag\.callTimeout 30s/,
      ],
      [
        { defrag: { nodes: ["a", "b", "c", "d", "e"], timeout: "20m" } },
        /worst case of a run, 10850 s: 5 members/,
      ],
      [{ prometheusRule: { enabled: true, noRunFor: "1d12h" } }, /prometheusRule\.noRunFor "1d12h"/],
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
    for (const o of objects) validate(o);
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
    validate(ks);
    assert.equal(ks.metadata.name, "etcd-defrag");
    assert.equal(ks.metadata.namespace, "flux-system");
    assert.equal(ks.spec.targetNamespace, "kube-system");
  });
});

/**
 * The image's runtime as the tests can have it without Docker: Node 24 (scripts/node24.sh, the image's
 * major version), the ENTRYPOINT's flags and script, the bundle alone in a read-only /app, run as uid and gid
 * 65532 with no supplementary groups (when the tests run as root; otherwise as the non-root user they are).
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
    // The image's /app: the bundled file alone, no node_modules anywhere near it, nothing writable.
    app = join(dir, "app");
    mkdirSync(app);
    const bundle = join(REPO_ROOT, "dist", "bundle", "talos-etcd-defrag.mjs");
    assert.ok(existsSync(bundle), "npm run bundle has been run (scripts/setup.sh does)");
    copyFileSync(bundle, join(app, "talos-etcd-defrag.mjs"));
    chmodSync(join(app, "talos-etcd-defrag.mjs"), 0o444);
    chmodSync(app, 0o555);
  });

  after(async () => {
    await h.close();
    chmodSync(app, 0o755);
    rmSync(dir, { recursive: true, force: true });
  });

  /** The ENTRYPOINT on Node 24 with /app mapped into the test's folder, as uid 65532, plus the container's args. */
  function command(args: string[]): string[] {
    const [, ...rest] = entrypoint();
    const script = (rest.at(-1) ?? "").replace(/^\/app\//, `${app}/`);
    const user = asImageUser ? ["setpriv", "--reuid=65532", "--regid=65532", "--clear-groups"] : [];
    return [...user, node24, ...rest.slice(0, -1), script, ...args];
  }

  function secretValues(extra: Record<string, unknown> = {}): Record<string, unknown> {
    return {
      auth: { mode: "secret", endpoints: h.nodes.map((n) => `${n}:${h.apiPort}`) },
      defrag: { rule: TEST_RULE, pause: "0s" },
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
      [...command([]).slice(1, -2), "-p", "process.version + ' ' + process.getuid()"],
      {
        encoding: "utf8",
      },
    );
    assert.equal(probe.status, 0, probe.stderr);
    assert.match(probe.stdout.trim(), asImageUser ? /^v24\.\d+\.\d+ 65532$/ : /^v24\./);
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
    const c = podSpec(find(render(secretValues({ output: "json", logFormat: "json" })), "CronJob"))
      .containers[0]!;
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

  it("serviceAccount mode: the mounted talosconfig defragments the fragmented cluster", async () => {
    await h.etcd.fragment({ targetDbBytes: 48 * MiB, liveFraction: 0.25 });
    // What Talos writes into the Secret's "config" key, mounted at /var/run/secrets/talos.dev (mode 0644).
    const mount = join(dir, "var-run-secrets-talos.dev");
    mkdirSync(mount);
    const written = await h.writeTalosconfig({ roles: ["os:operator"], dir: mount, context: "default" });
    copyFileSync(written, join(mount, "config"));
    for (const f of readdirSync(mount)) chmodSync(join(mount, f), 0o644);
    chmodSync(mount, 0o755);
    const c = podSpec(find(render({ defrag: { rule: TEST_RULE, pause: "0s" }, output: "json" }), "CronJob"))
      .containers[0]!;
    const env = containerEnv(c, {}, { "/var/run/secrets/talos.dev": mount });
    assert.equal(env.TALOSCONFIG, join(mount, "config"));
    const r = await runCli([], { command: command(c.args), env, cwd: dir });
    assert.equal(r.code, 0, r.stderr);
    assert.equal((JSON.parse(r.stdout) as { result: string }).result, "success");
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
      const c = podSpec(find(render(secretValues({ output: "json" })), "CronJob")).containers[0]!;
      const r = await runCli([], { command: command(c.args), env: containerEnv(c, creds, {}), cwd: dir });
      assert.equal(r.code, 3, r.stderr);
      assert.equal(parseSummary(r.stdout).result, "refused");
    } finally {
      await h.etcd.restart(2);
    }
  });
});
