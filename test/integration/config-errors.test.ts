// Every bad input of the configuration: a precise message, exit 2, and not one
// call reaches the cluster (the harness journal stays empty).

import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";

import { stringify } from "yaml";

import { Pki } from "../harness/certs.js";
import { startHarness, type Credentials, type Harness } from "../harness/harness.js";
import { runCli } from "../harness/run-cli.js";

const DAY = 24 * 60 * 60 * 1000;
const b64 = (s: string): string => Buffer.from(s).toString("base64");

describe("configuration errors: exit 2, no call", () => {
  let h: Harness;
  let dir: string;
  let good: Credentials;
  let endpoints: string[];

  before(async () => {
    h = await startHarness({ members: 3 });
    dir = mkdtempSync(join(tmpdir(), "config-errors-"));
    good = await h.credentials(["os:operator"]);
    endpoints = h.nodes.map((n) => `${n}:${h.apiPort}`);
  });

  after(async () => {
    await h.close();
    rmSync(dir, { recursive: true, force: true });
  });

  function file(name: string, content: string): string {
    const path = join(dir, name);
    writeFileSync(path, content);
    return path;
  }

  function talosconfig(name: string, context: Record<string, unknown>, current = "prod"): string {
    return file(name, stringify({ context: current, contexts: { prod: context } }));
  }

  async function expectConfigError(
    args: string[],
    env: Record<string, string>,
    message: RegExp,
  ): Promise<string> {
    const before = h.journal.length;
    for (const command of [["status"], ["run", "--dry-run"], ["run"]]) {
      const r = await runCli([...command, ...args], { env });
      assert.equal(r.code, 2, `${command.join(" ")}: ${r.stderr}`);
      assert.match(r.stderr, message, command.join(" "));
      assert.equal(r.stdout, "", "no result on stdout");
    }
    assert.equal(h.journal.length, before, "no call reached any Talos API server");
    return message.source;
  }

  it("a talosconfig that does not exist", async () => {
    await expectConfigError(["--talosconfig", join(dir, "nope")], {}, /talosconfig \S+nope does not exist/);
  });

  it("no talosconfig anywhere and no TALOS_* credentials", async () => {
    await expectConfigError(
      [],
      {},
      /no talosconfig found \(looked at .*\.talos\/config, \/var\/run\/secrets\/talos\.dev\/config\)/,
    );
  });

  it("a file that is not YAML", async () => {
    const path = file("not-yaml", "context: prod\ncontexts: [unclosed\n  : {");
    await expectConfigError([], { TALOSCONFIG: path }, /talosconfig \S+not-yaml is not valid YAML/);
  });

  it("YAML that is not a talosconfig", async () => {
    const path = file("not-talosconfig", "apiVersion: v1\nkind: Pod\n");
    await expectConfigError([], { TALOSCONFIG: path }, /is not a talosconfig: contexts: /);
  });

  it("an unknown context", async () => {
    const path = talosconfig("ctx", { endpoints, ...good });
    await expectConfigError(
      ["--context", "staging"],
      { TALOSCONFIG: path },
      /context "staging" is not in talosconfig \S+ \(choose one of: prod\)/,
    );
  });

  it("no endpoints", async () => {
    const path = talosconfig("no-endpoints", { ...good });
    await expectConfigError([], { TALOSCONFIG: path }, /no endpoints: context "prod" in \S+ lists none/);
    await expectConfigError(
      [],
      { TALOS_CA: good.ca, TALOS_CRT: good.crt, TALOS_KEY: good.key },
      /no endpoints: TALOS_CA, TALOS_CRT and TALOS_KEY are set but TALOS_ENDPOINTS is not/,
    );
  });

  it("an address that is not one, wherever it comes from: named with its source when the configuration is read", async () => {
    const path = talosconfig("good-for-addresses", { endpoints, ...good });
    const bad = talosconfig("bad-endpoint", { endpoints: ["10.0.0.999"], ...good });
    const cases: [string[], Record<string, string>, RegExp][] = [
      [
        ["-e", "10.0.0.999"],
        { TALOSCONFIG: path },
        /--endpoints: "10\.0\.0\.999" is not a valid IPv4 address/,
      ],
      [
        ["-e", "http://1.2.3.4"],
        { TALOSCONFIG: path },
        /"http:\/\/1\.2\.3\.4" is a http:\/\/ URL, but the Talos API is gRPC over TLS/,
      ],
      [["-n", "10.0.0.999"], { TALOSCONFIG: path }, /"10\.0\.0\.999" is not a valid IPv4 address/],
      [
        [],
        { TALOSCONFIG: path, TALOS_NODES: "10.0.0.999" },
        /TALOS_NODES: "10\.0\.0\.999" is not a valid IPv4 address/,
      ],
      [
        [],
        { TALOSCONFIG: bad },
        /contexts\.prod\.endpoints\[0\]: "10\.0\.0\.999" is not a valid IPv4 address/,
      ],
    ];
    for (const [args, env, message] of cases) await expectConfigError(args, env, message);
  });

  it("a duration without a unit: exit 2, nothing called", async () => {
    const path = talosconfig("good-for-durations", { endpoints, ...good });
    const before = h.journal.length;
    const r = await runCli(["run", "--timeout", "10"], { env: { TALOSCONFIG: path } });
    assert.equal(r.code, 2, r.stderr);
    assert.match(
      r.stderr,
      /--timeout "10" has no unit: it could be seconds or minutes \(write e\.g\. 10s or 10m\)/,
    );
    assert.equal(h.journal.length, before);
  });

  it("a value that is not base64", async () => {
    const path = talosconfig("not-base64", { endpoints, ...good, crt: "this is not base64!" });
    await expectConfigError([], { TALOSCONFIG: path }, /contexts\.prod\.crt is not base64 \(nor PEM\)/);
    await expectConfigError(
      [],
      { TALOS_CA: good.ca, TALOS_CRT: good.crt, TALOS_KEY: "%%%", TALOS_ENDPOINTS: endpoints.join(",") },
      /TALOS_KEY is not base64 \(nor PEM\)/,
    );
  });

  it("base64 that is not PEM", async () => {
    const path = talosconfig("not-pem", { endpoints, ...good, ca: b64("just some text") });
    await expectConfigError(
      [],
      { TALOSCONFIG: path },
      /contexts\.prod\.ca is base64 but does not decode to PEM/,
    );
  });

  it("a key that does not match the certificate", async () => {
    const other = await h.credentials(["os:operator"]);
    const path = talosconfig("mismatch", { endpoints, ...good, key: other.key });
    await expectConfigError(
      [],
      { TALOSCONFIG: path },
      /contexts\.prod\.key does not match the certificate in contexts\.prod\.crt/,
    );
  });

  it("an expired certificate, with the date", async () => {
    const notAfter = new Date(Date.now() - 3 * DAY);
    const creds = await h.credentials(["os:operator"], {
      notBefore: new Date(Date.now() - 30 * DAY),
      notAfter,
    });
    const path = talosconfig("expired", { endpoints, ...creds });
    const day = notAfter.toISOString().slice(0, 10);
    await expectConfigError([], { TALOSCONFIG: path }, new RegExp(`expired on ${day}T`));
  });

  it("a certificate that is not valid yet, with the date", async () => {
    const notBefore = new Date(Date.now() + 2 * DAY);
    const creds = await h.credentials(["os:operator"], {
      notBefore,
      notAfter: new Date(Date.now() + 30 * DAY),
    });
    const path = talosconfig("not-yet", { endpoints, ...creds });
    await expectConfigError(
      [],
      { TALOSCONFIG: path },
      new RegExp(`is not valid until ${notBefore.toISOString().slice(0, 10)}T`),
    );
  });

  it("a certificate without the clientAuth usage, or with more than it", async () => {
    const cases = [
      [["serverAuth"], /is missing the clientAuth usage \(extended key usage: serverAuth\)/],
      [
        ["serverAuth", "clientAuth"],
        /has extended key usages serverAuth, clientAuth: it must be exactly clientAuth/,
      ],
      ["none", /is missing the clientAuth usage \(extended key usage: none\)/],
    ] as const;
    for (const [eku, message] of cases) {
      const creds = await h.credentials(["os:operator"], { eku: eku === "none" ? "none" : [...eku] });
      const path = talosconfig(`eku-${String(eku)}`, { endpoints, ...creds });
      await expectConfigError([], { TALOSCONFIG: path }, message);
    }
  });

  it("a CA that does not verify the server: detected at connect, naming the endpoint", async () => {
    const foreign = await Pki.create();
    const path = talosconfig("wrong-ca", {
      endpoints: endpoints.slice(0, 1),
      ...good,
      ca: b64(foreign.caPem),
    });
    await expectConfigError(
      [],
      { TALOSCONFIG: path },
      new RegExp(
        `the CA does not verify the server certificate of endpoint ${endpoints[0]!.replace(/\./g, "\\.")}`,
      ),
    );
    const all = talosconfig("wrong-ca-all", { endpoints, ...good, ca: b64(foreign.caPem) });
    await expectConfigError(
      [],
      { TALOSCONFIG: all },
      /no endpoint could be used: the CA does not verify the server certificate of endpoint/,
    );
  });

  it("a certificate from another CA is rejected by the server: exit 2, no call served", async () => {
    const creds = await h.credentials(["os:operator"], { foreignCa: true });
    const path = talosconfig("foreign-client", { endpoints: endpoints.slice(0, 1), ...creds, ca: good.ca });
    await expectConfigError([], { TALOSCONFIG: path }, /rejected our client certificate/);
  });

  it("only some of TALOS_CA/TALOS_CRT/TALOS_KEY", async () => {
    await expectConfigError(
      [],
      { TALOS_CA: good.ca, TALOS_CRT: good.crt, TALOS_ENDPOINTS: endpoints.join(",") },
      /TALOS_CA, TALOS_CRT are set but TALOS_KEY is not/,
    );
  });

  it("bad run options: rule, quota, durations, move-leader", async () => {
    const path = talosconfig("good", { endpoints, ...good });
    const env = { TALOSCONFIG: path };
    const cases: [string[], RegExp][] = [
      [["--rule", "dbSize >"], /--rule "dbSize >" does not compile/],
      [["--rule", "dbSize"], /is of type int, not bool/],
      [
        ["--rule", "@weekly"],
        /--rule "@weekly" is not a preset \(the presets: @default, @fragmentation-alert; or write/,
      ],
      [["--quota-bytes", "lots"], /--quota-bytes "lots" is not a size/],
      [["--timeout", "soon"], /--timeout "soon" is not a positive duration/],
      [["--move-leader", "sometimes"], /argument 'sometimes' is invalid/],
      // Lists are comma separated: an empty entry is bad input, and so is a node with spaces.
      [["--nodes", "not an ip,,"], /--nodes "not an ip,," has an empty entry/],
      [["--nodes", ",,"], /--nodes ",," has an empty entry/],
      [["--nodes", "not an ip"], /--nodes\/TALOS_NODES: "not an ip" is not a node address/],
    ];
    for (const [args, message] of cases) {
      const before = h.journal.length;
      const r = await runCli(["run", ...args], { env });
      assert.equal(r.code, 2, r.stderr);
      assert.match(r.stderr, message);
      assert.equal(h.journal.length, before);
    }
    const r = await runCli(["run"], { env: { ...env, TALOS_ETCD_DEFRAG_MOVE_LEADER: "sometimes" } });
    assert.equal(r.code, 2);
    assert.match(r.stderr, /TALOS_ETCD_DEFRAG_MOVE_LEADER "sometimes" is not one of auto, always, never/);
  });

  it("a rule dividing two int sizes (always 0 or 1): exit 2 with the corrected rule, nothing called", async () => {
    const path = talosconfig("good-for-rule", { endpoints, ...good });
    const expected =
      `--rule "dbSizeInUse / dbSize < 0.5" divides int by int in dbSizeInUse / dbSize, which truncates ` +
      `(a ratio of two sizes is 0 or 1); write --rule 'double(dbSizeInUse) / double(dbSize) < 0.5' ` +
      "(dbSize, dbSizeInUse, dbSizeFree and dbQuota are ints; fragmentation and dbQuotaUsage are ratios as doubles)";
    for (const [args, env] of [
      [["run", "--rule", "dbSizeInUse / dbSize < 0.5"], {}],
      [["run", "--dry-run"], { TALOS_ETCD_DEFRAG_RULE: "dbSizeInUse / dbSize < 0.5" }],
    ] as [string[], Record<string, string>][]) {
      const before = h.journal.length;
      const r = await runCli([...args, "--log-format", "json"], { env: { TALOSCONFIG: path, ...env } });
      assert.equal(r.code, 2, r.stderr);
      assert.equal(r.stdout, "");
      const lines = r.stderr
        .trim()
        .split("\n")
        .map((l) => JSON.parse(l) as { level: string; msg: string });
      assert.deepEqual(
        lines.map((l) => [l.level, l.msg]),
        [["error", expected]],
      );
      assert.equal(h.journal.length, before, "no call reached any Talos API server");
    }
  });

  it("a certificate that expires within 30 days: a warning, and the command works", async () => {
    const notAfter = new Date(Date.now() + 10 * DAY);
    const creds = await h.credentials(["os:operator"], { notAfter });
    const path = talosconfig("expiring", { endpoints, ...creds });
    const r = await runCli(["status", "--output", "json"], { env: { TALOSCONFIG: path } });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /WARN .*expires on \S+ \(in (9|10) days\); renew it before then/);
    assert.doesNotMatch(r.stderr, /DEP0123|ExperimentalWarning|\(node:\d+\)/, "no runtime noise");
  });
});
