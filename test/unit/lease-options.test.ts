// --lease, --lease-wait and --kubeconfig: parsed from the one option table; every bad
// lease name is a config error (exit 2) naming what is wrong, before any call.

import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { Command } from "commander";

import { OptionsError, addOptions, parseOptions } from "../../src/cli/parse-options.js";
import type { Env } from "../../src/config/config.js";
import { exitCodeFor } from "../../src/cli/exit.js";

function parseRun(argv: string[], env: Env = {}) {
  const cmd = addOptions(new Command("run").exitOverride(), "run");
  cmd.parse(argv, { from: "user" });
  return parseOptions("run", cmd.opts(), env);
}

describe("--lease, --lease-wait, --kubeconfig", () => {
  it("auto by default (none and auto spelled out too); wait 1m; no kubeconfig", () => {
    const o = parseRun([]);
    assert.equal(o.lease, "auto");
    assert.equal(parseRun(["--lease", "none"]).lease, "none");
    assert.equal(parseRun([], { TALOS_ETCD_DEFRAG_LEASE: "auto" }).lease, "auto");
    assert.equal(o.leaseWaitMs, 60_000);
    assert.equal(o.kubeconfig, undefined);
  });

  it("NAMESPACE/NAME from the flag or TALOS_ETCD_DEFRAG_LEASE; the flag wins; KUBECONFIG is read", () => {
    assert.deepEqual(parseRun(["--lease", "kube-system/etcd-defrag"]).lease, {
      namespace: "kube-system",
      name: "etcd-defrag",
    });
    const env = { TALOS_ETCD_DEFRAG_LEASE: "ops/defrag.lock", KUBECONFIG: "/k/config" };
    assert.deepEqual(parseRun([], env).lease, { namespace: "ops", name: "defrag.lock" });
    assert.deepEqual(parseRun(["--lease", "a/b"], env).lease, { namespace: "a", name: "b" });
    assert.equal(parseRun([], env).kubeconfig, "/k/config");
    assert.equal(parseRun(["--kubeconfig", "/flag"], env).kubeconfig, "/flag");
    assert.equal(parseRun(["--lease-wait", "0s"]).leaseWaitMs, 0);
    assert.equal(parseRun([], { TALOS_ETCD_DEFRAG_LEASE_WAIT: "5m" }).leaseWaitMs, 300_000);
  });

  const bad: [string, RegExp][] = [
    ["etcd-defrag", /"etcd-defrag" is not NAMESPACE\/NAME/],
    ["a/b/c", /is not NAMESPACE\/NAME/],
    ["/etcd-defrag", /has an empty namespace or name/],
    ["kube-system/", /has an empty namespace or name/],
    ["Kube-System/etcd-defrag", /invalid namespace "Kube-System"/],
    ["kube.system/etcd-defrag", /invalid namespace "kube.system"/],
    [`${"n".repeat(64)}/etcd-defrag`, /invalid namespace/],
    ["kube-system/etcd_defrag", /invalid lease name "etcd_defrag"/],
    ["kube-system/-defrag", /invalid lease name "-defrag"/],
    ["kube-system/defrag.", /invalid lease name "defrag\."/],
    [`kube-system/${"x".repeat(254)}`, /invalid lease name/],
  ];
  for (const [value, message] of bad) {
    it(`--lease ${value.length > 40 ? value.slice(0, 37) + "..." : value}: exit 2, ${message.source}`, () => {
      let caught: unknown;
      try {
        parseRun(["--lease", value]);
      } catch (err) {
        caught = err;
      }
      assert.ok(caught instanceof OptionsError, String(caught));
      assert.equal(exitCodeFor(caught.kind), 2);
      assert.match(caught.message, /^--lease /);
      assert.match(caught.message, message);
      assert.match(caught.hint ?? "", /NAMESPACE\/NAME/);
    });
  }

  it("a bad --lease-wait and a bad TALOS_ETCD_DEFRAG_LEASE are reported together", () => {
    let caught: unknown;
    try {
      parseRun(["--lease-wait", "soon"], { TALOS_ETCD_DEFRAG_LEASE: "nope" });
    } catch (err) {
      caught = err;
    }
    assert.ok(caught instanceof OptionsError);
    assert.equal(caught.problems.length, 2);
    assert.match(caught.message, /TALOS_ETCD_DEFRAG_LEASE "nope"/);
    assert.match(caught.message, /--lease-wait "soon"/);
  });
});

describe("--lease auto: is this Kubernetes the etcd's cluster?", () => {
  it("a control-plane node's address among the etcd members' hosts: the same cluster", async () => {
    const { sameCluster } = await import("../../src/k8s/same-cluster.js");
    assert.equal(sameCluster(["10.0.0.11", "cp-1", "203.0.113.5"], ["10.0.0.11", "10.0.0.12"]), true);
    assert.equal(
      sameCluster(["CP-1.example"], ["cp-1.example"]),
      true,
      "host names compare case-insensitively",
    );
    assert.equal(sameCluster(["10.0.1.11"], ["10.0.0.11", "10.0.0.12"]), false);
    assert.equal(sameCluster([], ["10.0.0.11"]), false, "no control-plane nodes: not this cluster");
  });
});
