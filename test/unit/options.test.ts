// Precedence of flag > environment > default, as one table (like ahrtr/etcd-defrag's cmd_test).

import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { OPTIONS, resolveOptions } from "../../src/cli/options.js";

describe("option table", () => {
  it("resolves defaults only, all from env, and flags over env", () => {
    const defaults = resolveOptions("status", {}, {});
    assert.deepEqual(defaults, {
      talosconfig: undefined,
      context: undefined,
      endpoints: undefined,
      nodes: undefined,
      callTimeout: "30s",
      logFormat: "text",
      output: "table",
    });
    const env = {
      TALOSCONFIG: "/env/config",
      TALOS_CONTEXT: "envctx",
      TALOS_ENDPOINTS: "10.0.0.1",
      TALOS_NODES: "10.0.0.2",
      TALOS_ETCD_DEFRAG_CALL_TIMEOUT: "5s",
      TALOS_ETCD_DEFRAG_LOG_FORMAT: "json",
      TALOS_ETCD_DEFRAG_OUTPUT: "json",
    };
    assert.deepEqual(resolveOptions("status", {}, env), {
      talosconfig: "/env/config",
      context: "envctx",
      endpoints: "10.0.0.1",
      nodes: "10.0.0.2",
      callTimeout: "5s",
      logFormat: "json",
      output: "json",
    });
    assert.deepEqual(
      resolveOptions("status", { talosconfig: "/flag", nodes: "10.0.0.9", output: "table" }, env),
      {
        talosconfig: "/flag",
        context: "envctx",
        endpoints: "10.0.0.1",
        nodes: "10.0.0.9",
        callTimeout: "5s",
        logFormat: "json",
        output: "table",
      },
    );
  });

  it("an empty environment variable counts as unset", () => {
    assert.equal(resolveOptions("status", {}, { TALOS_ETCD_DEFRAG_OUTPUT: "" }).output, "table");
  });

  it("every option of a command has a unique flag, env var and help", () => {
    for (const command of ["status", "run"] as const) {
      const specs = OPTIONS.filter((o) => o.commands.includes(command));
      const flags = specs.map((o) => o.flag.split(" ")[0]);
      assert.equal(new Set(flags).size, flags.length, command);
      const envs = specs.map((o) => o.env).filter((e) => e !== undefined);
      assert.equal(new Set(envs).size, envs.length, command);
      for (const o of specs) assert.ok(o.help.length > 10, o.name);
    }
  });

  it("run: boolean flags and their environment variables", () => {
    assert.equal(resolveOptions("run", { dryRun: true }, {}).dryRun, "true");
    assert.equal(resolveOptions("run", {}, { TALOS_ETCD_DEFRAG_DRY_RUN: "true" }).dryRun, "true");
    assert.equal(resolveOptions("run", {}, {}).dryRun, undefined);
    assert.equal(resolveOptions("run", {}, {}).output, "text");
    assert.equal(resolveOptions("status", {}, {}).output, "table");
  });
});
