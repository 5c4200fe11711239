// docs/migrate.md, checked: its Flux files build with kustomize and validate, its HelmRelease's values
// render the chart into a CronJob that reads the Secret its ExternalSecret fills, its commands name what
// the chart renders, and its yq recipe prints the bare values with every yq program there is.

import assert from "node:assert/strict";
import { spawnSync, type SpawnSyncReturns } from "node:child_process";
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  realpathSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { delimiter, join } from "node:path";
import { after, before, describe, it } from "node:test";

import { parse, parseAllDocuments, stringify } from "yaml";

import { Pki } from "../harness/certs.js";
import { validateObject } from "../harness/k8s-schemas.js";
import { REPO_ROOT } from "../harness/run-cli.js";

const DOC = join(REPO_ROOT, "docs", "migrate.md");
const BIN = join(REPO_ROOT, ".cache", "bin");

interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; annotations?: Record<string, string> };
  spec: Record<string, unknown>;
}

interface Env {
  name: string;
  value?: string;
  valueFrom?: { secretKeyRef: { name: string; key: string } };
}

function tool(name: string): string {
  const path = join(BIN, name);
  if (!existsSync(path))
    spawnSync("bash", [join(REPO_ROOT, "scripts", "k8s-tools.sh")], { encoding: "utf8" });
  assert.ok(existsSync(path), `${name} is installed by scripts/k8s-tools.sh`);
  return path;
}

/** The code blocks of the guide: YAML ones by their "# file:" line, shell ones as lines. */
function blocks(): { files: Map<string, string>; commands: string[] } {
  const text = readFileSync(DOC, "utf8");
  const files = new Map<string, string>();
  const commands: string[] = [];
  for (const m of text.matchAll(/```(\w+)\n([\s\S]*?)```/g)) {
    const [, lang, body = ""] = m;
    if (lang === "yaml") {
      const name = /^# file: (\S+)\n/.exec(body)?.[1];
      assert.ok(name, `every YAML block of the guide names its file: ${body.slice(0, 60)}`);
      files.set(name, body);
    } else if (lang === "sh") {
      commands.push(...body.split("\n").filter((l) => l.trim() !== ""));
    }
  }
  return { files, commands };
}

describe("docs/migrate.md", () => {
  let dir: string;
  let objects: K8sObject[];
  let rendered: K8sObject[];

  before(() => {
    dir = mkdtempSync(join(tmpdir(), "migrate-"));
    // The user's folder: their ExternalSecret (the one in deploy/flux is the same object), and the files
    // the guide gives, next to our OCIRepository.
    const app = join(dir, "app");
    mkdirSync(app);
    copyFileSync(
      join(REPO_ROOT, "deploy", "flux", "app", "externalsecret.yaml"),
      join(app, "externalsecret.yaml"),
    );
    // Until the first release, the guide's source is the self-hosted one.
    copyFileSync(
      join(REPO_ROOT, "deploy", "flux", "self-hosted", "ocirepository.yaml"),
      join(app, "ocirepository.yaml"),
    );
    for (const [name, body] of blocks().files) writeFileSync(join(dir, name), body);
    const built = spawnSync(tool("kustomize"), ["build", app], { encoding: "utf8" });
    assert.equal(built.status, 0, built.stderr);
    objects = parseAllDocuments(built.stdout).map((d) => d.toJSON() as K8sObject);

    const release = objects.find((o) => o.kind === "HelmRelease");
    assert.ok(release);
    const values = join(dir, "values.json");
    writeFileSync(values, JSON.stringify(release.spec.values));
    const r = spawnSync(
      tool("helm"),
      [
        "template",
        "etcd-defrag",
        join(REPO_ROOT, "charts", "etcd-defrag"),
        "--namespace",
        "kube-system",
        "--values",
        values,
      ],
      { encoding: "utf8", env: { ...process.env, HOME: dir } },
    );
    assert.equal(r.status, 0, r.stderr);
    rendered = parseAllDocuments(r.stdout)
      .map((d) => d.toJSON() as K8sObject | null)
      .filter((o): o is K8sObject => o !== null);
  });

  after(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it("the Flux files build and validate; one ExternalSecret (theirs) and no second owner of the Secret", () => {
    assert.deepEqual(objects.map((o) => o.kind).sort(), ["ExternalSecret", "HelmRelease", "OCIRepository"]);
    for (const o of objects) validateObject(o);
    for (const o of rendered) validateObject(o);
    assert.deepEqual(
      rendered.map((o) => `${o.apiVersion} ${o.kind}`),
      [
        "v1 ServiceAccount",
        "rbac.authorization.k8s.io/v1 Role",
        "rbac.authorization.k8s.io/v1 RoleBinding",
        "batch/v1 CronJob",
        "coordination.k8s.io/v1 Lease",
        "batch/v1 Job",
      ],
      "auth.mode secret renders no ExternalSecret and no Talos ServiceAccount (the Kubernetes ServiceAccount, Lease, Role and RoleBinding are for the run's Lease; the Job is the verification hook)",
    );
    const verify = rendered.find((o) => o.kind === "Job")!;
    assert.equal(verify.metadata.annotations?.["helm.sh/hook"], "post-install,post-upgrade");
    const release = objects.find((o) => o.kind === "HelmRelease")!;
    const source = objects.find((o) => o.kind === "OCIRepository")!;
    // The same source and release API versions as deploy/flux/app, the chart through chartRef to it.
    assert.equal(source.apiVersion, "source.toolkit.fluxcd.io/v1");
    assert.equal(release.apiVersion, "helm.toolkit.fluxcd.io/v2");
    assert.equal(release.spec.chart, undefined, "chartRef, not chart.spec.sourceRef");
    assert.deepEqual(release.spec.chartRef, { kind: "OCIRepository", name: source.metadata.name });
  });

  it("the rendered CronJob reads the Secret the ExternalSecret fills, and the first run is a dry run", () => {
    const es = objects.find((o) => o.kind === "ExternalSecret")!;
    const target = (es.spec.target as { name: string; creationPolicy: string }).name;
    const cronJob = rendered.find((o) => o.kind === "CronJob")!;
    const pod = (
      cronJob.spec.jobTemplate as { spec: { template: { spec: { containers: { env: Env[] }[] } } } }
    ).spec.template.spec;
    const env = pod.containers[0]!.env;
    for (const key of ["TALOS_CA", "TALOS_CRT", "TALOS_KEY"]) {
      assert.deepEqual(env.find((e) => e.name === key)?.valueFrom, { secretKeyRef: { name: target, key } });
    }
    // The verification Job (status and run --dry-run at install) reads the same Secret.
    const verify = (
      rendered.find((o) => o.kind === "Job")!.spec as {
        template: { spec: { initContainers: { env: Env[] }[]; containers: { env: Env[] }[] } };
      }
    ).template.spec;
    for (const c of [...verify.initContainers, ...verify.containers]) {
      for (const key of ["TALOS_CA", "TALOS_CRT", "TALOS_KEY"]) {
        assert.deepEqual(c.env.find((e) => e.name === key)?.valueFrom, {
          secretKeyRef: { name: target, key },
        });
      }
    }
    const secretKeys = (es.spec.data as { secretKey: string }[]).map((d) => d.secretKey).sort();
    assert.deepEqual(secretKeys, ["TALOS_CA", "TALOS_CRT", "TALOS_KEY"]);
    assert.equal(env.find((e) => e.name === "TALOS_ETCD_DEFRAG_DRY_RUN")?.value, "true");
    assert.equal(env.find((e) => e.name === "TALOS_ETCD_DEFRAG_MOVE_LEADER")?.value, "never");
    assert.equal(env.find((e) => e.name === "TALOS_ENDPOINTS")?.value, "10.0.0.11,10.0.0.12,10.0.0.13");
  });

  it("its kubectl commands name the CronJob, namespace and Secret the chart renders, and follow each Job to its end", () => {
    const { commands } = blocks();
    const cronJob = rendered.find((o) => o.kind === "CronJob")!;
    const ns = cronJob.metadata.namespace ?? "";
    const jobs = commands.filter((c) => c.includes("create job"));
    assert.equal(jobs.length, 2);
    for (const c of jobs) {
      assert.match(
        c,
        new RegExp(`^kubectl -n ${ns} create job --from=cronjob/${cronJob.metadata.name} \\S+$`),
      );
      const job = c.split(" ").at(-1)!;
      // logs -f returns when the run ends, whatever its result (wait --for=condition=complete would
      // sit out its timeout on a refused run); get job then says Complete or Failed.
      assert.ok(commands.includes(`kubectl -n ${ns} logs -f job/${job} --pod-running-timeout=5m`), job);
      assert.ok(commands.includes(`kubectl -n ${ns} get job ${job}`), job);
    }
    assert.ok(!commands.some((c) => c.includes("wait --for=condition=complete")));
    assert.ok(!commands.some((c) => /kubectl .*patch cronjob/.test(c)), "no kubectl patch of what Flux owns");
    const verify = rendered.find((o) => o.kind === "Job")!;
    assert.ok(commands.includes(`kubectl -n ${ns} logs job/${verify.metadata.name} --all-containers`));
    const es = objects.find((o) => o.kind === "ExternalSecret")!;
    assert.ok(commands.some((c) => c.includes(`get secret ${(es.spec.target as { name: string }).name} `)));
  });

  it("its table of what the chart creates is what it renders, and every etcd-defrag name it quotes exists", () => {
    const text = readFileSync(DOC, "utf8");
    const table = [...text.matchAll(/^\| (\w+) +\| `([^`]+)` +\|$/gm)].map((m) => `${m[1]} ${m[2]}`);
    assert.deepEqual(table.sort(), rendered.map((o) => `${o.kind} ${o.metadata.name}`).sort());
    const known = new Set([
      ...rendered.map((o) => o.metadata.name),
      ...objects.map((o) => o.metadata.name),
      `${rendered.find((o) => o.kind === "Lease")!.metadata.namespace ?? ""}/etcd-defrag`,
      "kube-system/etcd-defrag-talosconfig",
      (objects.find((o) => o.kind === "ExternalSecret")!.spec.target as { name: string }).name,
      // The Jobs its commands create.
      ...blocks()
        .commands.filter((c) => c.includes("create job"))
        .map((c) => c.split(" ").at(-1)!),
    ]);
    for (const [, name] of text.matchAll(/`((?:[\w-]+\/)?etcd-defrag[\w.-]*)`/g)) {
      if (name!.endsWith(".talosconfig")) continue; // a file name
      assert.ok(known.has(name!), `docs/migrate.md quotes \`${name}\`, which nothing renders or creates`);
    }
  });

  it("talosctl config new names a node with -n, as Talos requires", () => {
    for (const file of [
      DOC,
      join(REPO_ROOT, "docs", "operations.md"),
      join(REPO_ROOT, "README.md"),
      join(REPO_ROOT, "deploy", "flux", "app", "externalsecret.yaml"),
    ]) {
      const uses = readFileSync(file, "utf8").match(/talosctl[^\n`]*config new --roles[^\n`]*/g) ?? [];
      assert.ok(uses.length > 0, file);
      for (const u of uses)
        assert.match(u, /^talosctl -n (<[^>]+>|\S+) config new --roles os:operator/, `${file}: ${u}`);
    }
  });

  it("deploy/flux/ks.yaml says its path is an example to adjust", () => {
    const text = readFileSync(join(REPO_ROOT, "deploy", "flux", "ks.yaml"), "utf8");
    const ks = parse(text) as K8sObject;
    validateObject(ks);
    assert.match(text, /# .*spec\.path|path: .*# /i);
  });
});

describe("the yq recipe for secret mode", () => {
  /** Every yq program there is here: the one on PATH (Debian's is the jq wrapper) and .cache/bin's. */
  function yqPrograms(): string[] {
    const found = new Set<string>();
    for (const d of [BIN, ...(process.env.PATH ?? "").split(delimiter)]) {
      const p = join(d, "yq");
      if (d !== "" && existsSync(p)) found.add(realpathSync(p));
    }
    return [...found];
  }

  it("prints each value bare (no quotes), exactly as in the talosconfig, with every yq found", async (t) => {
    const programs = yqPrograms();
    if (programs.length === 0) {
      t.skip("no yq on this machine (scripts/k8s-tools.sh installs Mike Farah's into .cache/bin)");
      return;
    }
    const pki = await Pki.create();
    const cert = await pki.clientCert({ roles: ["os:operator"] });
    const b64 = (s: string): string => Buffer.from(s).toString("base64");
    const context = {
      endpoints: ["10.0.0.11"],
      ca: b64(pki.caPem),
      crt: b64(cert.certPem),
      key: b64(cert.keyPem),
    };
    const dir = mkdtempSync(join(tmpdir(), "yq-recipe-"));
    try {
      const file = join(dir, "etcd-defrag.talosconfig");
      writeFileSync(file, stringify({ context: "etcd-defrag", contexts: { "etcd-defrag": context } }));
      // The recipe as docs/operations.md has it, with this yq.
      const ops = readFileSync(join(REPO_ROOT, "docs", "operations.md"), "utf8");
      const recipe: string | undefined = /^field\(\) \{ (yq .*); \}$/m.exec(ops)?.[1];
      assert.ok(recipe, "docs/operations.md has the field() recipe");
      const seen: string[] = [];
      for (const yq of programs) {
        const version = spawnSync(yq, ["--version"], { encoding: "utf8" });
        seen.push(`${yq}: ${(version.stdout + version.stderr).trim()}`);
        for (const field of ["ca", "crt", "key"] as const) {
          const r: SpawnSyncReturns<string> = spawnSync(
            "bash",
            ["-c", `field() { ${recipe.replace(/^yq/, '"$YQ"')}; }; field ${field}`],
            {
              encoding: "utf8",
              cwd: dir,
              env: { PATH: process.env.PATH ?? "", YQ: yq },
            },
          );
          assert.equal(r.status, 0, `${yq}: ${r.stderr}`);
          assert.equal(r.stdout, `${context[field]}\n`, `${yq} prints ${field} bare`);
        }
      }
      t.diagnostic(`checked with ${seen.join("; ")}`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
