// The README's "From this repository" install path, run as written by a bash against a local OCI registry
// (docker-registry on loopback) in a copy of this working tree: the chart stamped with your registry,
// packaged, pushed and installed from oci:// (rendered: there is no cluster), the Flux source for it, and
// the CLI from `npm pack` installed with `npm install -g`. Only what cannot run here is stood in for:
// `docker` (no container engine: its arguments are recorded and checked; build-stage.test.ts replays the
// Dockerfile's build), `git clone` (the copy is the clone), `npm ci` (the copy shares node_modules), and
// the registry's address (REGISTRY is the reader's choice; this one speaks plain HTTP, so helm gets
// --plain-http, as the README says).

import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { after, before, describe, it } from "node:test";

import { parse, parseAllDocuments } from "yaml";

import { podSpec, tool, type K8sObject } from "../harness/chart.js";
import { validateObject } from "../harness/k8s-schemas.js";
import { OciRegistry } from "../harness/registry.js";
import { REPO_ROOT } from "../harness/run-cli.js";

const README = join(REPO_ROOT, "README.md");

/** The sh blocks of the README's "From this repository" section, as command lines (continuations joined). */
function installCommands(): string[] {
  const text = readFileSync(README, "utf8");
  const start = text.indexOf("### From this repository");
  assert.ok(start >= 0, "README has the section");
  const end = text.indexOf("\n### ", start + 1);
  const section = text.slice(start, end < 0 ? undefined : end);
  const lines: string[] = [];
  for (const m of section.matchAll(/```sh\n([\s\S]*?)```/g)) {
    lines.push(
      ...(m[1] ?? "")
        .replace(/\\\n\s*/g, "")
        .split("\n")
        .filter((l) => l.trim() !== ""),
    );
  }
  return lines;
}

/** Stand-ins for what cannot run here; everything else is the real program. */
const PRELUDE = String.raw`
git() { if [ "$1" = clone ]; then echo "(git clone: this copy is the clone)"; else command git "$@"; fi; }
docker() { printf '%s\n' "$*" >>"$DOCKER_LOG"; }
helm() {
  local sub=$1; shift
  case $sub in
    install) command "$HELM_BIN" template "$@" --plain-http >"$RENDERED" ;;
    push | show | pull | template) command "$HELM_BIN" "$sub" "$@" --plain-http ;;
    *) command "$HELM_BIN" "$sub" "$@" ;;
  esac
}
npm() {
  case "$*" in
    ci | "ci "*) echo "(npm ci: node_modules is shared with the repository)" ;;
    "install -g "*) shift 2; command npm install -g --prefix "$NPM_PREFIX" --prefer-offline --no-audit --no-fund --loglevel=error "$@" ;;
    *) command npm "$@" ;;
  esac
}
`;

describe("README, Install, From this repository (run as written, against a local OCI registry)", () => {
  let registry: OciRegistry;
  let work: string;
  let clone: string;
  let result: { status: number | null; stdout: string; stderr: string };
  let version: string;
  let reg: string;
  const out = (name: string) => join(work, name);

  before(async () => {
    registry = await OciRegistry.start("127.0.0.1");
    reg = `${registry.host}/platform`;
    work = mkdtempSync(join(tmpdir(), "self-hosted-"));
    clone = join(work, "talos-etcd-defrag");
    // This working tree as a clone has it: tracked and new files, nothing ignored (no dist, no .cache).
    const files = spawnSync("git", ["ls-files", "-co", "--exclude-standard", "-z"], {
      cwd: REPO_ROOT,
      encoding: "utf8",
    })
      .stdout.split("\0")
      .filter((f) => f !== "" && existsSync(join(REPO_ROOT, f)));
    for (const f of files) {
      mkdirSync(dirname(join(clone, f)), { recursive: true });
      cpSync(join(REPO_ROOT, f), join(clone, f));
    }
    symlinkSync(join(REPO_ROOT, "node_modules"), join(clone, "node_modules"));
    version = (JSON.parse(readFileSync(join(clone, "package.json"), "utf8")) as { version: string }).version;

    const commands = installCommands().map((l) =>
      l.startsWith("REGISTRY=") ? `REGISTRY=${reg}   # the local registry` : l,
    );
    writeFileSync(out("install.sh"), `set -euo pipefail\n${PRELUDE}\n${commands.join("\n")}\n`);
    mkdirSync(out("home"));
    result = spawnSync("bash", [out("install.sh")], {
      cwd: work,
      encoding: "utf8",
      env: {
        ...process.env,
        HOME: out("home"),
        HELM_BIN: tool("helm"),
        DOCKER_LOG: out("docker.log"),
        RENDERED: out("rendered.yaml"),
        NPM_PREFIX: out("prefix"),
        npm_config_update_notifier: "false",
      },
    });
  });

  after(async () => {
    await registry.stop();
    rmSync(work, { recursive: true, force: true });
  });

  it("runs to the end (exit 0)", () => {
    assert.equal(result.status, 0, `${result.stdout}\n${result.stderr}`);
  });

  it("the image: one multi-arch build of this Dockerfile, tagged with your registry and the version, pushed", () => {
    assert.deepEqual(readFileSync(out("docker.log"), "utf8").trim().split("\n"), [
      `buildx build --platform linux/amd64,linux/arm64 -t ${reg}/talos-etcd-defrag:${version} --push .`,
    ]);
    // The build stage runs on the builder's own platform (no emulation for npm ci and the bundle); the
    // runtime stage is the target platform's distroless Node.
    assert.match(readFileSync(join(clone, "Dockerfile"), "utf8"), /^FROM --platform=\$BUILDPLATFORM /m);
  });

  it("the chart: in your registry at the version, installed from oci:// with your image", async () => {
    const tags = (await registry.get("/v2/platform/charts/etcd-defrag/tags/list")) as { tags: string[] };
    assert.deepEqual(tags.tags, [version]);
    const objects = parseAllDocuments(readFileSync(out("rendered.yaml"), "utf8"))
      .map((d) => d.toJSON() as K8sObject | null)
      .filter((o): o is K8sObject => o !== null);
    const cronJob = objects.find((o) => o.kind === "CronJob");
    assert.ok(cronJob, "helm install rendered the CronJob");
    assert.equal(podSpec(cronJob).containers[0]?.image, `${reg}/talos-etcd-defrag:${version}`);
    const verify = objects.find((o) => o.kind === "Job");
    assert.ok(verify);
    assert.equal(podSpec(verify).containers[0]?.image, `${reg}/talos-etcd-defrag:${version}`);
  });

  it("Flux: deploy/flux/self-hosted points at what was pushed, and validates with and without your cosign key", async () => {
    const text = readFileSync(join(clone, "deploy/flux/self-hosted/ocirepository.yaml"), "utf8");
    const source = parse(text) as K8sObject & {
      spec: { url: string; ref: { tag: string }; layerSelector: { mediaType: string }; verify?: unknown };
    };
    validateObject(source);
    assert.equal(source.spec.url, `oci://${reg}/charts/etcd-defrag`);
    assert.equal(source.spec.ref.tag, version);
    assert.equal(source.spec.verify, undefined, "no signature of ours to check on a chart you built");
    const manifest = (await registry.get(
      `/v2/platform/charts/etcd-defrag/manifests/${version}`,
      "application/vnd.oci.image.manifest.v1+json",
    )) as { layers: { mediaType: string }[] };
    assert.deepEqual(
      manifest.layers.map((l) => l.mediaType),
      [source.spec.layerSelector.mediaType],
    );
    // Its commented options, uncommented as the comments say: still a valid OCIRepository.
    const uncommented = text.replace(/^ {2}# ( *)(secretRef:|name: |verify:|provider: )/gm, "  $1$2");
    const withKey = parse(uncommented) as K8sObject & {
      spec: { verify: { provider: string; secretRef: { name: string } }; secretRef: { name: string } };
    };
    validateObject(withKey);
    assert.deepEqual(withKey.spec.verify, { provider: "cosign", secretRef: { name: "cosign-pub" } });
    assert.deepEqual(withKey.spec.secretRef, { name: "registry-credentials" });
    // The published path is left as it is.
    assert.equal(
      readFileSync(join(clone, "deploy/flux/app/ocirepository.yaml"), "utf8"),
      readFileSync(join(REPO_ROOT, "deploy/flux/app/ocirepository.yaml"), "utf8"),
    );
  });

  it("the CLI: npm pack built and packed it, npm install -g installed it, and it runs", () => {
    const bin = join(out("prefix"), "bin", "talos-etcd-defrag");
    assert.ok(existsSync(bin), bin);
    const r = spawnSync(bin, ["version"], { encoding: "utf8" });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout.trim(), `talos-etcd-defrag ${version}`);
  });
});
