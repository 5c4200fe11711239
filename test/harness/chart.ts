// The Helm chart as the tests use it: helm and kustomize from scripts/k8s-tools.sh, rendering with values,
// and the rendered pod's container turned into the command and environment the image would run.

import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { parseAllDocuments } from "yaml";

import { REPO_ROOT } from "./run-cli.js";

export const CHART = join(REPO_ROOT, "charts", "etcd-defrag");
const BIN = join(REPO_ROOT, ".cache", "bin");

export interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: {
    name: string;
    namespace?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
  };
  spec: Record<string, unknown>;
}

export interface EnvVar {
  name: string;
  value?: string;
  valueFrom?: { secretKeyRef: { name: string; key: string } };
}

export interface Container {
  name: string;
  image: string;
  args: string[];
  env: EnvVar[];
  securityContext: {
    allowPrivilegeEscalation: boolean;
    readOnlyRootFilesystem: boolean;
    capabilities: { drop: string[] };
  };
  volumeMounts?: { name: string; mountPath: string; readOnly: boolean }[];
}

/** The pod spec of a rendered CronJob or Job, typed loosely for assertions. */
export interface PodSpec {
  restartPolicy: string;
  automountServiceAccountToken: boolean;
  hostNetwork?: boolean;
  imagePullSecrets?: { name: string }[];
  securityContext: { runAsNonRoot: boolean; runAsUser: number; seccompProfile: { type: string } };
  serviceAccountName?: string;
  initContainers?: Container[];
  containers: Container[];
  volumes?: { name: string; secret?: { secretName: string }; projected?: unknown; hostPath?: unknown }[];
}

export function tool(name: string): string {
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

export function helm(args: string[], env: Record<string, string> = {}) {
  const r = spawnSync(tool("helm"), args, {
    encoding: "utf8",
    env: { ...process.env, HOME: tmpdir(), ...env },
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** `helm template` of a chart (default: the repository's) with these values; throws on a render error. */
export function render(values: Record<string, unknown> = {}, chart = CHART): K8sObject[] {
  const r = tryRender(values, chart);
  assert.equal(r.code, 0, r.stderr);
  return parseAllDocuments(r.stdout)
    .map((d) => d.toJSON() as K8sObject | null)
    .filter((o): o is K8sObject => o !== null);
}

export function tryRender(values: Record<string, unknown>, chart = CHART, extra: string[] = []) {
  const dir = mkdtempSync(join(tmpdir(), "chart-values-"));
  const file = join(dir, "values.json");
  writeFileSync(file, JSON.stringify(values));
  const r = helm([
    "template",
    "etcd-defrag",
    chart,
    "--namespace",
    "kube-system",
    "--values",
    file,
    ...extra,
  ]);
  rmSync(dir, { recursive: true, force: true });
  return r;
}

export function find(objects: K8sObject[], kind: string, name?: string): K8sObject {
  const o = objects.find((x) => x.kind === kind && (name === undefined || x.metadata.name === name));
  assert.ok(o, `${kind}${name ? ` ${name}` : ""} rendered`);
  return o;
}

export function podSpec(o: K8sObject): PodSpec {
  if (o.kind === "CronJob") {
    return (o.spec.jobTemplate as { spec: { template: { spec: PodSpec } } }).spec.template.spec;
  }
  return (o.spec as { template: { spec: PodSpec } }).template.spec;
}

/** The image's ENTRYPOINT (exec form) from the Dockerfile: [node, ...flags, script]. */
export function entrypoint(): string[] {
  const text = /^ENTRYPOINT (\[.*\])$/m.exec(readFileSync(join(REPO_ROOT, "Dockerfile"), "utf8"))?.[1];
  assert.ok(text, "the Dockerfile has an exec-form ENTRYPOINT");
  const parsed = JSON.parse(text) as string[];
  assert.equal(parsed[0], "/nodejs/bin/node");
  assert.match(parsed.at(-1) ?? "", /^\/app\//);
  return parsed;
}

/** The runtime stage's ENV (name -> value), which every container of the image starts with. */
export function imageEnv(): Record<string, string> {
  const dockerfile = readFileSync(join(REPO_ROOT, "Dockerfile"), "utf8");
  const runtime = dockerfile.slice(dockerfile.lastIndexOf("\nFROM "));
  return Object.fromEntries(
    [...runtime.matchAll(/^ENV (\w+)=(\S+)$/gm)].map((m) => [m[1] ?? "", m[2] ?? ""] as const),
  );
}

/** The runtime stage's exec-form RUN commands (each an argv), in order. */
export function imageRuns(): string[][] {
  const dockerfile = readFileSync(join(REPO_ROOT, "Dockerfile"), "utf8");
  const runtime = dockerfile.slice(dockerfile.lastIndexOf("\nFROM "));
  return [...runtime.matchAll(/^RUN (\[.*\])$/gm)].map((m) => JSON.parse(m[1] ?? "[]") as string[]);
}

/**
 * A container's environment as Kubernetes would give it: values as they are (with mounted paths mapped
 * into the test's folders), Secret keys from `secret`.
 */
export function containerEnv(
  c: Container,
  secret: Record<string, string>,
  mounts: Record<string, string>,
): Record<string, string> {
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
  return env;
}
