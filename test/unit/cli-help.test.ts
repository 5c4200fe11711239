// The command line as a talosctl user meets it: --version, and --help naming the
// credentials that come from the environment.

import assert from "node:assert/strict";
import { describe, it } from "node:test";

import pkg from "../../package.json" with { type: "json" };
import { optionsAfterCommand } from "../../src/cli/parse-options.js";
import { main } from "../../src/main.js";

async function cli(
  argv: string[],
  env: Record<string, string> = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = "";
  let stderr = "";
  const code = await main(argv, env, {
    stdout: { write: (s: string) => (stdout += s) },
    stderr: { write: (s: string) => (stderr += s) },
    signal: new AbortController().signal,
  });
  return { code, stdout, stderr };
}

describe("command line", () => {
  it("--version prints what the version command prints, exit 0", async () => {
    const flag = await cli(["--version"]);
    const command = await cli(["version"]);
    assert.deepEqual(flag, { code: 0, stdout: `talos-etcd-defrag ${pkg.version}\n`, stderr: "" });
    assert.deepEqual(command, flag);
  });

  it("--help of the program and of each command names TALOS_CA, TALOS_CRT, TALOS_KEY and TALOS_ENDPOINTS", async () => {
    for (const argv of [["--help"], ["status", "--help"], ["run", "--help"]]) {
      const r = await cli(argv);
      assert.equal(r.code, 0, argv.join(" "));
      for (const name of ["TALOS_CA", "TALOS_CRT", "TALOS_KEY", "TALOS_ENDPOINTS"]) {
        assert.match(r.stdout, new RegExp(`\\b${name}\\b`), `${argv.join(" ")}: ${name}`);
      }
    }
    const run = await cli(["run", "--help"]);
    assert.match(run.stdout, /-n, --nodes <list>/);
    assert.match(run.stdout, /-e, --endpoints <list>/);
  });

  it("options before the command, as talosctl users write them (-n NODE status)", () => {
    const table: [string[], string[]][] = [
      [
        ["-n", "10.0.0.2", "status"],
        ["status", "-n", "10.0.0.2"],
      ],
      [
        ["-n10.0.0.2", "status", "--output", "json"],
        ["status", "-n10.0.0.2", "--output", "json"],
      ],
      [
        ["--nodes=10.0.0.2", "-e", "10.0.0.1", "run", "--dry-run"],
        ["run", "--nodes=10.0.0.2", "-e", "10.0.0.1", "--dry-run"],
      ],
      [
        ["--output", "json", "run"],
        ["run", "--output", "json"],
      ],
      [
        ["--dry-run", "run"],
        ["run", "--dry-run"],
      ],
      // Not one of the command's options, not an option, or no command: left for commander.
      [
        ["--dry-run", "status"],
        ["--dry-run", "status"],
      ],
      [
        ["--bogus", "status"],
        ["--bogus", "status"],
      ],
      [
        ["--help", "status"],
        ["--help", "status"],
      ],
      [
        ["-n", "10.0.0.2"],
        ["-n", "10.0.0.2"],
      ],
      [
        ["-n", "10.0.0.2", "version"],
        ["-n", "10.0.0.2", "version"],
      ],
      [
        ["--", "status"],
        ["--", "status"],
      ],
      [
        ["status", "-n", "10.0.0.2"],
        ["status", "-n", "10.0.0.2"],
      ],
    ];
    for (const [argv, expected] of table)
      assert.deepEqual(optionsAfterCommand(argv, ["status", "run"]), expected, argv.join(" "));
  });

  it("a bad value before the command is reported as after it: exit 2, the same message", async () => {
    const before = await cli(["--call-timeout", "soon", "status"]);
    const after = await cli(["status", "--call-timeout", "soon"]);
    assert.equal(before.code, 2);
    assert.match(before.stderr, /--call-timeout/);
    const withoutTime = (text: string) => text.replace(/^\S+Z /gm, "");
    assert.equal(withoutTime(before.stderr), withoutTime(after.stderr));
    // An option the command does not have is still commander's error, exit 2.
    const unknown = await cli(["--dry-run", "status"]);
    assert.equal(unknown.code, 2);
    assert.match(unknown.stderr, /unknown option '--dry-run'/);
  });

  it("a variable with our prefix that no option reads is a warning, and the command goes on", async () => {
    const r = await cli(["status", "--call-timeout", "soon"], { TALOS_ETCD_DEFRAG_CALL_TIMOUT: "5s" });
    assert.equal(r.code, 2, "the bad option still decides");
    assert.match(
      r.stderr,
      /WARN {2}TALOS_ETCD_DEFRAG_CALL_TIMOUT is set but no option reads it: it is ignored \(did you mean TALOS_ETCD_DEFRAG_CALL_TIMEOUT\?\)/,
    );
  });
});
