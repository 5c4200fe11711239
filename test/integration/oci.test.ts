// The chart's release path against a real OCI registry on loopback: the release workflow's chart job
// (stamp the owner, helm package, helm push), then what users do (helm show, helm template from oci://),
// and the Flux example's OCIRepository pointing at exactly what was pushed.

import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { after, before, describe, it } from "node:test";

import { parse, parseAllDocuments } from "yaml";

import { helm, podSpec, type K8sObject } from "../harness/chart.js";
import { OciRegistry } from "../harness/registry.js";
import { REPO_ROOT } from "../harness/run-cli.js";

const OWNER = "example-org";

describe("the chart through a real OCI registry (docker-registry on loopback)", () => {
  let registry: OciRegistry;
  let work: string;
  let home: string;
  let version: string;
  let packaged: string;

  before(async () => {
    registry = await OciRegistry.start("127.0.0.1");
    work = mkdtempSync(join(tmpdir(), "oci-release-"));
    home = join(work, "home");
    mkdirSync(home);
    // The files the release's chart job checks out and stamps.
    for (const f of [
      "scripts/release.mjs",
      "package.json",
      "package-lock.json",
      "charts/etcd-defrag",
      "Dockerfile",
      "deploy/flux",
      "CHANGELOG.md",
    ]) {
      mkdirSync(dirname(join(work, f)), { recursive: true });
      cpSync(join(REPO_ROOT, f), join(work, f), { recursive: true });
    }
    version = (JSON.parse(readFileSync(join(work, "package.json"), "utf8")) as { version: string }).version;
  });

  after(async () => {
    await registry.stop();
    rmSync(work, { recursive: true, force: true });
  });

  const h = (args: string[]) => helm(args, { HOME: home });

  it("the release's chart job: stamp the owner, helm package, helm push", () => {
    const stamp = spawnSync(
      process.execPath,
      [join(work, "scripts/release.mjs"), "stamp", "--owner", OWNER],
      {
        encoding: "utf8",
      },
    );
    assert.equal(stamp.status, 0, stamp.stderr);
    const pkg = h(["package", join(work, "charts/etcd-defrag"), "--destination", join(work, "dist")]);
    assert.equal(pkg.code, 0, pkg.stderr);
    packaged = join(work, "dist", `etcd-defrag-${version}.tgz`);
    const push = h(["push", packaged, `oci://${registry.host}/charts`, "--plain-http"]);
    assert.equal(push.code, 0, push.stderr);
    assert.match(push.stdout + push.stderr, /Digest: sha256:[0-9a-f]{64}/);
  });

  it("the registry holds charts/etcd-defrag:VERSION with the Helm chart layer Flux selects", async () => {
    const tags = (await registry.get("/v2/charts/etcd-defrag/tags/list")) as { tags: string[] };
    assert.deepEqual(tags.tags, [version]);
    const manifest = (await registry.get(
      `/v2/charts/etcd-defrag/manifests/${version}`,
      "application/vnd.oci.image.manifest.v1+json",
    )) as { config: { mediaType: string }; layers: { mediaType: string }[] };
    assert.equal(manifest.config.mediaType, "application/vnd.cncf.helm.config.v1+json");
    const source = parse(readFileSync(join(work, "deploy/flux/app/ocirepository.yaml"), "utf8")) as {
      spec: { url: string; ref: { tag: string }; layerSelector: { mediaType: string } };
    };
    assert.deepEqual(
      manifest.layers.map((l) => l.mediaType),
      [source.spec.layerSelector.mediaType],
    );
    // The Flux example (stamped like the chart) points at what was pushed: the same path and tag on ghcr.io.
    assert.equal(source.spec.url, `oci://ghcr.io/${OWNER}/charts/etcd-defrag`);
    assert.equal(source.spec.ref.tag, version);
  });

  it("helm show chart from oci:// has the one version and the Artifact Hub annotations", () => {
    const r = h([
      "show",
      "chart",
      `oci://${registry.host}/charts/etcd-defrag`,
      "--version",
      version,
      "--plain-http",
    ]);
    assert.equal(r.code, 0, r.stderr);
    const chart = parse(r.stdout) as {
      version: string;
      appVersion: string;
      annotations: Record<string, string>;
    };
    assert.equal(chart.version, version);
    assert.equal(chart.appVersion, version);
    const images = parse(chart.annotations["artifacthub.io/images"] ?? "") as { image: string }[];
    assert.deepEqual(
      images.map((i) => i.image),
      [`ghcr.io/${OWNER}/talos-etcd-defrag:${version}`],
    );
    assert.equal(chart.annotations["artifacthub.io/license"], "Apache-2.0");
  });

  it("helm template from oci:// renders the CronJob with the image the release pushed", () => {
    const r = h([
      "template",
      "etcd-defrag",
      `oci://${registry.host}/charts/etcd-defrag`,
      "--version",
      version,
      "--plain-http",
      "--namespace",
      "kube-system",
    ]);
    assert.equal(r.code, 0, r.stderr);
    const objects = parseAllDocuments(r.stdout)
      .map((d) => d.toJSON() as K8sObject | null)
      .filter((o): o is K8sObject => o !== null);
    const cronJob = objects.find((o) => o.kind === "CronJob");
    assert.ok(cronJob);
    assert.equal(podSpec(cronJob).containers[0]?.image, `ghcr.io/${OWNER}/talos-etcd-defrag:${version}`);
  });

  it("a version that was not pushed is not found", () => {
    const r = h([
      "show",
      "chart",
      `oci://${registry.host}/charts/etcd-defrag`,
      "--version",
      "9.9.9",
      "--plain-http",
    ]);
    assert.notEqual(r.code, 0);
  });
});
