// The option table: precedence of flag > environment > default (as one table, like
// ahrtr/etcd-defrag's cmd_test), every type's parser, and every bad option reported at once.

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";

import { Command } from "commander";

import type { CommandName } from "../../src/cli/option-types.js";
import { OPTIONS, optionsFor, type OptionsFor } from "../../src/cli/options.js";
import {
  OptionsError,
  addOptions,
  longFlag,
  parseOptions,
  shortFlag,
  unknownVariables,
} from "../../src/cli/parse-options.js";
import type { Env } from "../../src/config/config.js";
import { DEFAULT_RULE } from "../../src/core/rule.js";
import {
  BEGIN,
  END,
  README,
  readmeTable,
  renderOptionsTable,
  withTable,
} from "../../scripts/options-table.js";

/** argv through commander, as main does, then the table's parsers. */
function parse<C extends CommandName>(command: C, argv: string[], env: Env = {}): OptionsFor<C> {
  // Commander's own usage errors are asserted on what it throws, not printed.
  const cmd = addOptions(
    new Command(command).exitOverride().configureOutput({ writeErr: () => undefined }),
    command,
  );
  cmd.parse(argv, { from: "user" });
  return parseOptions(command, cmd.opts(), env);
}

function parseError(command: CommandName, argv: string[], env: Env = {}): OptionsError {
  try {
    parse(command, argv, env);
  } catch (err) {
    assert.ok(err instanceof OptionsError, String(err));
    assert.equal(err.kind, "config");
    return err;
  }
  assert.fail("expected an OptionsError");
}

const STATUS_ENV = {
  TALOSCONFIG: "/env/config",
  TALOS_CONTEXT: "envctx",
  TALOS_ENDPOINTS: "10.0.0.1",
  TALOS_NODES: "10.0.0.2",
  TALOS_ETCD_DEFRAG_CALL_TIMEOUT: "5s",
  TALOS_ETCD_DEFRAG_LOG_FORMAT: "json",
  TALOS_ETCD_DEFRAG_OUTPUT: "json",
};

describe("option table", () => {
  it("resolves defaults only, all from env, and flags over env", () => {
    assert.deepEqual(parse("status", []), {
      backend: "talos",
      etcdEndpoints: undefined,
      cacert: undefined,
      cert: undefined,
      key: undefined,
      talosconfig: undefined,
      context: undefined,
      endpoints: undefined,
      nodes: undefined,
      callTimeoutMs: 30_000,
      logFormat: "text",
      output: "table",
    });
    assert.deepEqual(parse("status", [], STATUS_ENV), {
      backend: "talos",
      etcdEndpoints: undefined,
      cacert: undefined,
      cert: undefined,
      key: undefined,
      talosconfig: "/env/config",
      context: "envctx",
      endpoints: ["10.0.0.1"],
      nodes: ["10.0.0.2"],
      callTimeoutMs: 5000,
      logFormat: "json",
      output: "json",
    });
    assert.deepEqual(
      parse("status", ["--talosconfig", "/flag", "--nodes", "10.0.0.9", "--output", "table"], STATUS_ENV),
      {
        backend: "talos",
        etcdEndpoints: undefined,
        cacert: undefined,
        cert: undefined,
        key: undefined,
        talosconfig: "/flag",
        context: "envctx",
        endpoints: ["10.0.0.1"],
        nodes: ["10.0.0.9"],
        callTimeoutMs: 5000,
        logFormat: "json",
        output: "table",
      },
    );
  });

  it("etcdctl's ETCDCTL_* spellings are read when ours are not set; ours win", () => {
    const etcdctl = {
      ETCDCTL_ENDPOINTS: "https://10.0.0.1:2379,https://10.0.0.2:2379",
      ETCDCTL_CACERT: "/pki/ca.crt",
      ETCDCTL_CERT: "/pki/client.crt",
      ETCDCTL_KEY: "/pki/client.key",
    };
    const o = parse("run", [], etcdctl);
    assert.deepEqual(o.etcdEndpoints, ["https://10.0.0.1:2379", "https://10.0.0.2:2379"]);
    assert.deepEqual([o.cacert, o.cert, o.key], ["/pki/ca.crt", "/pki/client.crt", "/pki/client.key"]);
    const ours = parse("run", ["--cert", "/flag.crt"], {
      ...etcdctl,
      TALOS_ETCD_DEFRAG_ETCD_ENDPOINTS: "https://10.0.0.9:2379",
    });
    assert.deepEqual(ours.etcdEndpoints, ["https://10.0.0.9:2379"]);
    assert.equal(ours.cert, "/flag.crt");
  });

  it("talosctl's -n and -e are --nodes and --endpoints, for both commands, over the environment", () => {
    for (const command of ["status", "run"] as const) {
      const o = parse(command, ["-n", "10.0.0.7,10.0.0.8", "-e", "10.0.0.1:50000"], STATUS_ENV);
      assert.deepEqual(o.nodes, ["10.0.0.7", "10.0.0.8"]);
      assert.deepEqual(o.endpoints, ["10.0.0.1:50000"]);
    }
    assert.deepEqual(
      OPTIONS.filter((o) => shortFlag(o) !== undefined).map((o) => [shortFlag(o), longFlag(o)]),
      [
        ["-e", "--endpoints"],
        ["-n", "--nodes"],
      ],
    );
  });

  it("an empty environment variable counts as unset", () => {
    assert.equal(parse("status", [], { TALOS_ETCD_DEFRAG_OUTPUT: "" }).output, "table");
    assert.equal(parse("run", [], { TALOS_ETCD_DEFRAG_TIMEOUT: "" }).timeoutMs, 15 * 60_000);
    assert.equal(parse("run", [], { TALOS_ETCD_DEFRAG_DRY_RUN: "" }).dryRun, false);
  });

  it("every option of a command has a unique flag, env var and help", () => {
    for (const command of ["status", "run"] as const) {
      const specs = optionsFor(command);
      const flags = specs.map((o) => longFlag(o));
      assert.equal(new Set(flags).size, flags.length, command);
      const keys = specs.map((o) => o.key);
      assert.equal(new Set(keys).size, keys.length, command);
      const envs = specs.map((o) => o.env);
      assert.equal(new Set(envs).size, envs.length, command);
      for (const o of specs) assert.ok(o.help.length > 10, o.key);
    }
  });

  it("a boolean is a flag without a value; every other option takes one", () => {
    for (const o of OPTIONS) {
      assert.equal(o.type.kind === "boolean", !o.flag.includes("<"), o.flag);
      assert.equal(o.type.kind === "choice", o.type.choices !== undefined, o.flag);
    }
  });

  it("every default parses", () => {
    const run = parse("run", []);
    assert.equal(run.rule.source, DEFAULT_RULE);
    assert.deepEqual(
      {
        quotaBytes: run.quotaBytes,
        timeoutMs: run.timeoutMs,
        maxWaitMs: run.maxWaitMs,
        moveLeader: run.moveLeader,
        pauseMs: run.pauseMs,
        healthTimeoutMs: run.healthTimeoutMs,
        shutdownGraceMs: run.shutdownGraceMs,
        heartbeatMs: run.heartbeatMs,
        dryRun: run.dryRun,
        allowDowntime: run.allowDowntime,
        output: run.output,
        pushgatewayUrl: run.pushgatewayUrl,
        metricsFile: run.metricsFile,
        clusterName: run.clusterName,
      },
      {
        quotaBytes: undefined, // unset: each node's own quota-backend-bytes is read
        timeoutMs: 15 * 60_000,
        maxWaitMs: 15 * 60_000,
        moveLeader: "auto",
        pauseMs: 10_000,
        healthTimeoutMs: 5 * 60_000,
        shutdownGraceMs: 25_000,
        heartbeatMs: 30_000,
        dryRun: false,
        allowDowntime: false,
        output: "text",
        pushgatewayUrl: undefined,
        metricsFile: undefined,
        clusterName: undefined,
      },
    );
  });

  it("run: boolean flags and their environment variables", () => {
    assert.equal(parse("run", ["--dry-run"]).dryRun, true);
    assert.equal(parse("run", [], { TALOS_ETCD_DEFRAG_DRY_RUN: "true" }).dryRun, true);
    assert.equal(parse("run", [], {}).dryRun, false);
    assert.equal(parse("run", [], {}).output, "text");
    assert.equal(parse("status", [], {}).output, "table");
    for (const [text, value] of [
      ["true", true],
      ["1", true],
      ["yes", true],
      ["YES", true],
      ["false", false],
      ["0", false],
      ["no", false],
      ["False", false],
    ] as const) {
      assert.equal(parse("run", [], { TALOS_ETCD_DEFRAG_ALLOW_DOWNTIME: text }).allowDowntime, value, text);
    }
    // The flag wins over an environment variable that says no.
    assert.equal(parse("run", ["--dry-run"], { TALOS_ETCD_DEFRAG_DRY_RUN: "false" }).dryRun, true);
    const err = parseError("run", [], { TALOS_ETCD_DEFRAG_DRY_RUN: "maybe" });
    assert.equal(err.message, 'TALOS_ETCD_DEFRAG_DRY_RUN "maybe" is not true or false');
    assert.equal(err.hint, "use true/false, 1/0 or yes/no");
  });

  it("--affected-etcd: caught-up by default, refuse by flag or environment, nothing else", () => {
    assert.equal(parse("run", []).affectedEtcd, "caught-up");
    assert.equal(parse("run", ["--affected-etcd", "refuse"]).affectedEtcd, "refuse");
    assert.equal(parse("run", [], { TALOS_ETCD_DEFRAG_AFFECTED_ETCD: "refuse" }).affectedEtcd, "refuse");
    const err = parseError("run", [], { TALOS_ETCD_DEFRAG_AFFECTED_ETCD: "ignore" });
    assert.equal(err.message, 'TALOS_ETCD_DEFRAG_AFFECTED_ETCD "ignore" is not one of caught-up, refuse');
  });

  it("durations: milliseconds; zero only where allowed", () => {
    const o = parse("run", ["--timeout", "1h30m", "--pause", "0s", "--heartbeat", "250ms"], {
      TALOS_ETCD_DEFRAG_MAX_WAIT: "90s",
    });
    assert.deepEqual([o.timeoutMs, o.pauseMs, o.heartbeatMs, o.maxWaitMs], [5_400_000, 0, 250, 90_000]);
    const zero = parseError("run", ["--timeout", "0s"]);
    assert.equal(zero.message, '--timeout "0s" is not a positive duration');
    assert.equal(zero.hint, "use e.g. 30s, 5m or 1h30m");
    assert.equal(parseError("run", ["--pause", "soon"]).message, '--pause "soon" is not a duration');
    // A number without a unit is no duration (as in Go): 10 could be seconds or minutes.
    const bare = parseError("run", ["--timeout", "10"]);
    assert.equal(bare.message, '--timeout "10" has no unit: it could be seconds or minutes');
    assert.equal(bare.hint, "write e.g. 10s or 10m");
    assert.equal(
      parseError("run", [], { TALOS_ETCD_DEFRAG_MAX_WAIT: "90" }).message,
      'TALOS_ETCD_DEFRAG_MAX_WAIT "90" has no unit: it could be seconds or minutes',
    );
    assert.equal(parse("run", ["--pause", "0"]).pauseMs, 0, "0 needs no unit");
  });

  it("sizes, lists, choices and URLs", () => {
    const o = parse("run", ["--quota-bytes", "4GB", "--endpoints", "a, b ,c"], {
      TALOS_ETCD_DEFRAG_MOVE_LEADER: "never",
      TALOS_ETCD_DEFRAG_PUSHGATEWAY_URL: "https://pg.example:9091",
      TALOS_NODES: "",
    });
    assert.equal(o.quotaBytes, 4_000_000_000);
    assert.deepEqual(o.endpoints, ["a", "b", "c"]);
    assert.equal(o.nodes, undefined, "an empty variable counts as unset");
    // Lists are comma separated, as talosctl takes them: an empty entry or a blank list is bad input.
    assert.equal(
      parseError("run", ["--nodes", "not an ip,,"]).message,
      '--nodes "not an ip,," has an empty entry',
    );
    assert.equal(
      parseError("run", [], { TALOS_NODES: " , " }).message,
      'TALOS_NODES " , " has an empty entry',
    );
    assert.equal(parseError("run", ["--endpoints", " "]).message, '--endpoints " " lists nothing');
    assert.equal(parse("run", []).nospaceDisarmBelow, 0.8);
    assert.equal(parse("run", ["--nospace-disarm-below", "70%"]).nospaceDisarmBelow, 0.7);
    assert.equal(parse("run", ["--nospace-disarm-below", "0"]).nospaceDisarmBelow, 0);
    assert.equal(
      parseError("run", ["--nospace-disarm-below", "1.5"]).message,
      '--nospace-disarm-below "1.5" is not a share from 0 to 1',
    );
    assert.equal(o.moveLeader, "never");
    assert.equal(o.pushgatewayUrl, "https://pg.example:9091");
    assert.equal(parse("run", ["--pushgateway-url", ""]).pushgatewayUrl, undefined);
    assert.equal(parse("run", ["--cluster-name", ""]).clusterName, undefined);

    const size = parseError("run", ["--quota-bytes", "lots"]);
    assert.equal(size.message, '--quota-bytes "lots" is not a size');
    assert.equal(size.hint, "use bytes or a unit, e.g. 2147483648, 2GiB or 4GB");
    assert.equal(parseError("run", ["--quota-bytes", "0"]).message, '--quota-bytes "0" is not a size');
    const url = parseError("run", ["--pushgateway-url", "pushgateway:9091"]);
    assert.equal(url.message, '--pushgateway-url "pushgateway:9091" is not an http(s) URL');
    assert.equal(url.hint, "e.g. http://pushgateway.monitoring:9091");
    const mode = parseError("run", [], { TALOS_ETCD_DEFRAG_MOVE_LEADER: "sometimes" });
    assert.equal(mode.message, 'TALOS_ETCD_DEFRAG_MOVE_LEADER "sometimes" is not one of auto, always, never');
    // A choice given as a flag is commander's usage error, before any parser.
    assert.throws(() => parse("run", ["--move-leader", "sometimes"]), /argument 'sometimes' is invalid/);
  });

  it("the rule is compiled when parsed: a bad one is a config error with the compiler's message", () => {
    assert.equal(parse("run", ["--rule", "true"]).rule.source, "true");
    assert.match(parseError("run", ["--rule", "dbSize >"]).message, /^--rule "dbSize >" does not compile/);
    assert.match(
      parseError("run", [], { TALOS_ETCD_DEFRAG_RULE: "dbSize" }).message,
      /is of type int, not bool/,
    );
  });

  it("a value from the environment is named by its variable, from a flag by the flag", () => {
    assert.equal(
      parseError("run", [], { TALOS_ETCD_DEFRAG_TIMEOUT: "soon" }).message,
      'TALOS_ETCD_DEFRAG_TIMEOUT "soon" is not a positive duration',
    );
    assert.equal(
      parseError("run", ["--timeout", "soon"], { TALOS_ETCD_DEFRAG_TIMEOUT: "1m" }).message,
      '--timeout "soon" is not a positive duration',
    );
    // A good flag hides a bad environment variable.
    assert.equal(parse("run", ["--timeout", "1m"], { TALOS_ETCD_DEFRAG_TIMEOUT: "soon" }).timeoutMs, 60_000);
  });

  it("every bad option at once, each with its name, value and accepted form; the good ones are kept", () => {
    const err = parseError(
      "run",
      ["--timeout", "soon", "--quota-bytes", "lots", "--output", "json", "--cluster-name", "prod"],
      { TALOS_ETCD_DEFRAG_LOG_FORMAT: "json", TALOS_ETCD_DEFRAG_ALLOW_DOWNTIME: "perhaps" },
    );
    assert.deepEqual(
      err.problems.map((p) => p.message),
      [
        '--quota-bytes "lots" is not a size',
        '--timeout "soon" is not a positive duration',
        'TALOS_ETCD_DEFRAG_ALLOW_DOWNTIME "perhaps" is not true or false',
      ],
    );
    assert.equal(
      err.message,
      "3 options are invalid: " +
        '--quota-bytes "lots" is not a size (use bytes or a unit, e.g. 2147483648, 2GiB or 4GB); ' +
        '--timeout "soon" is not a positive duration (use e.g. 30s, 5m or 1h30m); ' +
        'TALOS_ETCD_DEFRAG_ALLOW_DOWNTIME "perhaps" is not true or false (use true/false, 1/0 or yes/no)',
    );
    assert.equal(err.hint, undefined, "each problem carries its own");
    const partial = err.partial("run");
    assert.equal(partial.logFormat, "json");
    assert.equal(partial.output, "json");
    assert.equal(partial.clusterName, "prod");
    assert.equal(partial.maxWaitMs, 15 * 60_000);
    assert.equal("timeoutMs" in partial, false);
    assert.deepEqual(err.partial("status"), {}, "another command's options are not these");
  });

  it("--help shows every option's environment variable and default, from the table", () => {
    for (const command of ["status", "run"] as const) {
      const help = addOptions(new Command(command), command).helpInformation({ error: false });
      const flat = help.replace(/\s+/g, " ");
      for (const o of optionsFor(command)) {
        assert.ok(flat.includes(longFlag(o)), o.flag);
        assert.ok(flat.includes(`env ${o.env}`), o.env);
        if (o.default !== undefined && o.type.kind !== "boolean") {
          assert.ok(flat.includes(`default ${o.default.replace(/\s+/g, " ")}`), `${o.flag} default`);
        }
      }
    }
  });
});

describe("README options table", () => {
  it("is the table rendered from OPTIONS", () => {
    const readme = readFileSync(README, "utf8");
    const actual = readmeTable(readme);
    assert.ok(
      actual !== undefined,
      `README.md has no "${BEGIN}" ... "${END}" markers around the options table`,
    );
    const expected = renderOptionsTable();
    if (actual === expected) return;
    const have = actual.split("\n");
    const want = expected.split("\n");
    const diff: string[] = [];
    for (let i = 0; i < Math.max(have.length, want.length); i++) {
      if (have[i] === want[i]) continue;
      if (have[i] !== undefined) diff.push(`- README.md: ${have[i]}`);
      if (want[i] !== undefined) diff.push(`+ OPTIONS:   ${want[i]}`);
    }
    assert.fail(
      "README.md's options table is not the one src/cli/options.ts renders; " +
        "run `npm run options-table` to regenerate it.\n" +
        diff.join("\n"),
    );
  });

  it("regenerating replaces only what is between the markers", () => {
    const readme = `intro\n\n${BEGIN}\nold table\n${END}\n\nrest\n`;
    const table = renderOptionsTable();
    const updated = withTable(readme, table);
    assert.equal(readmeTable(updated), table);
    assert.ok(updated.startsWith(`intro\n\n${BEGIN}\n\n| flag `));
    assert.ok(updated.endsWith(`|\n\n${END}\n\nrest\n`));
    assert.equal(withTable(updated, table), updated, "regenerating is idempotent");
  });
});

describe("environment variables with our prefix that no option reads", () => {
  it("each is named in a warning, with the closest known name", () => {
    assert.deepEqual(
      unknownVariables({
        TALOS_ETCD_DEFRAG_MAX_WIAT: "5m",
        TALOS_ETCD_DEFRAG_FLAVOUR: "x",
        TALOS_ETCD_DEFRAG_TIMEOUT: "10m",
        TALOS_NODES: "10.0.0.1",
        OTHER: "y",
      }),
      [
        "TALOS_ETCD_DEFRAG_FLAVOUR is set but no option reads it: it is ignored; see --help for the variables",
        "TALOS_ETCD_DEFRAG_MAX_WIAT is set but no option reads it: it is ignored (did you mean TALOS_ETCD_DEFRAG_MAX_WAIT?); see --help for the variables",
      ],
    );
  });

  it("every variable an option reads is known", () => {
    const all = Object.fromEntries(OPTIONS.map((o) => [o.env, "x"]));
    assert.deepEqual(unknownVariables(all), []);
  });
});
