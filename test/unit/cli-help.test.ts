// The command line as a talosctl user meets it: --version, and --help naming the
// credentials that come from the environment.

import assert from "node:assert/strict";
import { describe, it } from "node:test";

import pkg from "../../package.json" with { type: "json" };
import { main } from "../../src/main.js";

async function cli(argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = "";
  let stderr = "";
  const code = await main(
    argv,
    {},
    {
      stdout: { write: (s: string) => (stdout += s) },
      stderr: { write: (s: string) => (stderr += s) },
      signal: new AbortController().signal,
    },
  );
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
});
