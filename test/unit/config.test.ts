// loadConfig(opts, env, now) without a process or a cluster: credentials from the environment
// or a talosconfig, endpoints and nodes, and every check of the certificates, each with its
// exact message. test/integration/config-errors.test.ts checks the same through the built CLI.

import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";

import { stringify } from "yaml";

import { loadConfig, type ConnectionOptions, type Env } from "../../src/config/config.js";
import { IN_CLUSTER_TALOSCONFIG } from "../../src/config/talosconfig.js";
import { DefragError } from "../../src/core/errors.js";
import { Pki, type CertAndKey } from "../harness/certs.js";

const DAY = 24 * 60 * 60 * 1000;
const b64 = (s: string): string => Buffer.from(s).toString("base64");
/** Certificates carry whole seconds; so do the dates in the messages. */
const T0 = new Date(Math.floor(Date.now() / 1000) * 1000);

interface Creds {
  ca: string;
  crt: string;
  key: string;
}

function expectConfigError(fn: () => unknown, message: string, hint?: string): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof DefragError, String(err));
    assert.equal(err.kind, "config");
    assert.equal(err.message, message);
    if (hint !== undefined) assert.equal(err.hint, hint);
    return true;
  });
}

describe("loadConfig", () => {
  let pki: Pki;
  let dir: string;
  let home: string;
  let good: Creds;
  let goodPair: CertAndKey;
  let other: CertAndKey;
  let dated: Creds;
  let serverOnly: Creds;
  let foreign: Creds;

  const creds = (pair: CertAndKey): Creds => ({
    ca: b64(pki.caPem),
    crt: b64(pair.certPem),
    key: b64(pair.keyPem),
  });
  const envCreds = (c: Creds): Env => ({ TALOS_CA: c.ca, TALOS_CRT: c.crt, TALOS_KEY: c.key, HOME: home });

  before(async () => {
    pki = await Pki.create();
    dir = mkdtempSync(join(tmpdir(), "config-unit-"));
    home = join(dir, "home");
    mkdirSync(home);
    goodPair = await pki.clientCert({ roles: ["os:operator"] });
    good = creds(goodPair);
    other = await pki.clientCert({ roles: ["os:operator"] });
    dated = creds(
      await pki.clientCert({
        roles: ["os:admin"],
        notBefore: T0,
        notAfter: new Date(T0.getTime() + 10 * DAY),
      }),
    );
    serverOnly = creds(await pki.clientCert({ roles: ["os:operator"], eku: ["serverAuth"] }));
    foreign = creds(await pki.clientCert({ roles: ["os:operator"], foreignCa: true }));
  });

  after(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  let files = 0;
  function talosconfig(contexts: Record<string, unknown>, current: string | null = "prod"): string {
    files += 1;
    const path = join(dir, `talosconfig-${files}`);
    writeFileSync(path, stringify({ ...(current === null ? {} : { context: current }), contexts }));
    return path;
  }

  const load = (opts: ConnectionOptions, env: Env = { HOME: home }, now = new Date()) =>
    loadConfig(opts, env, now);

  describe("credentials from TALOS_CA/TALOS_CRT/TALOS_KEY", () => {
    it("all three and endpoints: no file, the roles of the certificate, no warning", () => {
      const config = load(
        { endpoints: ["10.0.0.2", "[fd00::3]:50001"], nodes: ["10.0.0.2", "10.0.0.2"] },
        envCreds(good),
      );
      assert.equal(config.source, "environment (TALOS_CA, TALOS_CRT, TALOS_KEY)");
      assert.equal(config.contextName, "environment");
      assert.deepEqual(config.endpoints, [
        { host: "10.0.0.2", port: 50000, raw: "10.0.0.2" },
        { host: "fd00::3", port: 50001, raw: "[fd00::3]:50001" },
      ]);
      assert.deepEqual(config.nodes, ["10.0.0.2"], "deduplicated");
      assert.deepEqual(config.roles, ["os:operator"]);
      assert.equal(config.certIssuedByCa, true);
      assert.deepEqual(config.warnings, []);
      assert.equal(config.certPem, goodPair.certPem.trim());
      assert.match(
        config.keyPem,
        /^-----BEGIN PRIVATE KEY-----/,
        "Talos's key label, made readable for OpenSSL",
      );
    });

    it("raw PEM instead of base64", () => {
      const config = load(
        { endpoints: ["10.0.0.2"] },
        { TALOS_CA: pki.caPem, TALOS_CRT: goodPair.certPem, TALOS_KEY: goodPair.keyPem },
      );
      assert.deepEqual(config.roles, ["os:operator"]);
      assert.deepEqual(config.nodes, []);
    });

    it("only some of them", () => {
      expectConfigError(
        () => load({ endpoints: ["10.0.0.2"] }, { TALOS_CA: good.ca, TALOS_CRT: good.crt }),
        "TALOS_CA, TALOS_CRT are set but TALOS_KEY is not",
        "set all three (base64 of the PEM, as in a talosconfig) or none",
      );
      expectConfigError(
        () => load({ endpoints: ["10.0.0.2"] }, { TALOS_KEY: good.key, TALOS_CA: "" }),
        "TALOS_KEY is set but TALOS_CA, TALOS_CRT are not",
      );
    });

    it("no endpoints; TALOS_ENDPOINTS reaches loadConfig only through the options", () => {
      const message = "no endpoints: TALOS_CA, TALOS_CRT and TALOS_KEY are set but TALOS_ENDPOINTS is not";
      const hint = "set TALOS_ENDPOINTS or --endpoints to the control-plane addresses (comma separated)";
      expectConfigError(() => load({}, envCreds(good)), message, hint);
      expectConfigError(() => load({ endpoints: [] }, envCreds(good)), message);
      expectConfigError(() => load({}, { ...envCreds(good), TALOS_ENDPOINTS: "10.0.0.2" }), message);
    });

    it("a bad endpoint or node names where it came from", () => {
      expectConfigError(
        () => load({ endpoints: ["10.0.0.2:99999"] }, envCreds(good)),
        'TALOS_ENDPOINTS: "10.0.0.2:99999" has an invalid port',
      );
      expectConfigError(
        () => load({ endpoints: ["10.0.0.2"], nodes: ["10.0.0.3:50000"] }, envCreds(good)),
        '--nodes/TALOS_NODES: "10.0.0.3:50000" is not a node address',
      );
    });

    it("a value that is not base64", () => {
      expectConfigError(
        () => load({ endpoints: ["10.0.0.2"] }, { ...envCreds(good), TALOS_KEY: "%%%" }),
        "TALOS_KEY is not base64 (nor PEM)",
      );
    });

    it("an explicit talosconfig wins over them", () => {
      const path = talosconfig({ prod: { endpoints: ["10.0.0.9"], ...good } });
      const config = load({ talosconfig: path }, { ...envCreds(foreign) });
      assert.equal(config.source, `talosconfig ${path} (context prod)`);
      assert.equal(config.certIssuedByCa, true);
    });
  });

  describe("a talosconfig", () => {
    it("is found through TALOSCONFIG, then HOME; its current context, or the one asked for", () => {
      const path = talosconfig({
        prod: { endpoints: ["10.0.0.2"], nodes: ["10.0.0.2"], ...good },
        staging: { endpoints: ["10.1.0.2"], ...good },
      });
      const current = load({}, { TALOSCONFIG: path, HOME: home });
      assert.equal(current.contextName, "prod");
      assert.equal(current.source, `talosconfig ${path} (context prod)`);
      assert.deepEqual(current.endpoints, [{ host: "10.0.0.2", port: 50000, raw: "10.0.0.2" }]);
      // The context's nodes (talosctl config node) are not used: the member list decides.
      assert.deepEqual(current.nodes, []);
      assert.deepEqual(current.contextNodes, ["10.0.0.2"]);
      const staging = load({ context: "staging" }, { TALOSCONFIG: path, HOME: home });
      assert.equal(staging.contextName, "staging");
      assert.deepEqual(staging.nodes, []);

      const userHome = join(dir, "user-home");
      mkdirSync(join(userHome, ".talos"), { recursive: true });
      writeFileSync(
        join(userHome, ".talos", "config"),
        stringify({ context: "home", contexts: { home: { endpoints: ["h"], ...good } } }),
      );
      assert.equal(load({}, { HOME: userHome }).contextName, "home");
    });

    it("a context's nodes are only named, never parsed: one talosctl accepts and we would not does not fail", () => {
      const path = talosconfig({
        prod: { endpoints: ["10.0.0.2"], nodes: ["10.0.0.3:50000", "n2"], ...good },
      });
      const config = load({ talosconfig: path });
      assert.deepEqual(config.nodes, []);
      assert.deepEqual(config.contextNodes, ["10.0.0.3:50000", "n2"]);
    });

    it("flags override the context's endpoints; empty lists do not; the context's nodes are never used", () => {
      const path = talosconfig({
        prod: { endpoints: ["10.0.0.2", "10.0.0.3"], nodes: ["10.0.0.2"], ...good },
      });
      const flagged = load({
        talosconfig: path,
        endpoints: ["https://talos.example"],
        nodes: ["n1", "[fd00::1]", "n1"],
      });
      assert.deepEqual(flagged.endpoints, [
        { host: "talos.example", port: 443, raw: "https://talos.example" },
      ]);
      assert.deepEqual(flagged.nodes, ["n1", "fd00::1"]);
      const unset = load({ talosconfig: path, endpoints: [], nodes: [] });
      assert.deepEqual(
        unset.endpoints.map((e) => e.host),
        ["10.0.0.2", "10.0.0.3"],
      );
      assert.deepEqual(unset.nodes, []);
      assert.deepEqual(unset.contextNodes, ["10.0.0.2"]);
      expectConfigError(
        () => load({ talosconfig: path, endpoints: ["a/b"] }),
        '--endpoints: "a/b" is not a host, host:port or URL',
      );
    });

    it("a bad endpoint of the context names its index", () => {
      const path = talosconfig({ prod: { endpoints: ["10.0.0.2", "x:0"], ...good } });
      expectConfigError(
        () => load({ talosconfig: path }),
        'contexts.prod.endpoints[1]: "x:0" has an invalid port',
      );
    });

    it("none anywhere", () => {
      expectConfigError(
        () => load({}, { HOME: home }),
        `no talosconfig found (looked at ${join(home, ".talos", "config")}, ${IN_CLUSTER_TALOSCONFIG})`,
        "pass --talosconfig PATH or set TALOSCONFIG, or provide TALOS_CA, TALOS_CRT, TALOS_KEY and TALOS_ENDPOINTS",
      );
      const missing = join(dir, "nope");
      expectConfigError(() => load({ talosconfig: missing }), `talosconfig ${missing} does not exist`);
    });

    it("an unknown context, or none current", () => {
      const path = talosconfig({ prod: { endpoints: ["10.0.0.2"], ...good }, staging: null });
      expectConfigError(
        () => load({ talosconfig: path, context: "dev" }),
        `context "dev" is not in talosconfig ${path}`,
        "choose one of: prod, staging",
      );
      const noCurrent = talosconfig({ prod: { endpoints: ["10.0.0.2"], ...good } }, null);
      expectConfigError(
        () => load({ talosconfig: noCurrent }),
        `talosconfig ${noCurrent} has no current context`,
        "pass --context NAME (one of: prod)",
      );
    });

    it("no endpoints in the context and none given", () => {
      const path = talosconfig({ prod: { ...good } });
      expectConfigError(
        () => load({ talosconfig: path }),
        `no endpoints: context "prod" in ${path} lists none`,
      );
    });

    it("a context without ca, crt or key", () => {
      const noKey = talosconfig({ prod: { endpoints: ["10.0.0.2"], ca: good.ca, crt: good.crt } });
      expectConfigError(
        () => load({ talosconfig: noKey }),
        `talosconfig ${noKey}: context "prod" has no key`,
        "use a talosconfig with client credentials (talosctl config new --roles os:operator)",
      );
      const onlyKey = talosconfig({ prod: { endpoints: ["10.0.0.2"], ca: "", key: good.key } });
      expectConfigError(
        () => load({ talosconfig: onlyKey }),
        `talosconfig ${onlyKey}: context "prod" has no ca, crt`,
      );
    });

    it("a value that is not base64, or base64 that is not PEM", () => {
      const notB64 = talosconfig({ prod: { endpoints: ["10.0.0.2"], ...good, crt: "this is not base64!" } });
      expectConfigError(() => load({ talosconfig: notB64 }), "contexts.prod.crt is not base64 (nor PEM)");
      const notPem = talosconfig({ prod: { endpoints: ["10.0.0.2"], ...good, ca: b64("just some text") } });
      expectConfigError(
        () => load({ talosconfig: notPem }),
        "contexts.prod.ca is base64 but does not decode to PEM",
      );
    });

    it("crt and key swapped", () => {
      const path = talosconfig({ prod: { endpoints: ["10.0.0.2"], ...good, crt: good.key, key: good.crt } });
      expectConfigError(
        () => load({ talosconfig: path }),
        'contexts.prod.crt decodes to PEM but holds "ED25519 PRIVATE KEY" instead of a CERTIFICATE',
        "the ca and crt fields take certificates, the key field the private key",
      );
      const keyIsCert = talosconfig({ prod: { endpoints: ["10.0.0.2"], ...good, key: good.crt } });
      expectConfigError(
        () => load({ talosconfig: keyIsCert }),
        'contexts.prod.key decodes to PEM but holds "CERTIFICATE" instead of a PRIVATE KEY',
      );
    });

    it("a key that does not match the certificate", () => {
      const path = talosconfig({ prod: { endpoints: ["10.0.0.2"], ...good, key: b64(other.keyPem) } });
      expectConfigError(
        () => load({ talosconfig: path }),
        "contexts.prod.key does not match the certificate in contexts.prod.crt",
        "take the crt and key from the same talosconfig context",
      );
    });

    it("a certificate without exactly the clientAuth usage", () => {
      const path = talosconfig({ prod: { endpoints: ["10.0.0.2"], ...serverOnly } });
      expectConfigError(
        () => load({ talosconfig: path }),
        "the client certificate in contexts.prod.crt is missing the clientAuth usage (extended key usage: serverAuth)",
      );
    });

    it("a certificate from another CA: a warning, not an error", () => {
      const path = talosconfig({ prod: { endpoints: ["10.0.0.2"], ...foreign } });
      const config = load({ talosconfig: path });
      assert.equal(config.certIssuedByCa, false);
      assert.deepEqual(config.warnings, [
        "the client certificate in contexts.prod.crt is not issued by the CA in contexts.prod.ca; apid accepts it only if its issuer is in the machine config's acceptedCAs",
      ]);
    });
  });

  describe("certificate dates, against `now`", () => {
    const notAfter = (): Date => new Date(T0.getTime() + 10 * DAY);

    it("not valid yet", () => {
      const path = talosconfig({ prod: { endpoints: ["10.0.0.2"], ...dated } });
      expectConfigError(
        () => load({ talosconfig: path }, { HOME: home }, new Date(T0.getTime() - 1000)),
        `the client certificate in contexts.prod.crt is not valid until ${T0.toISOString()}`,
        "check this machine's clock, or wait until then",
      );
    });

    it("expired", () => {
      expectConfigError(
        () => load({ endpoints: ["10.0.0.2"] }, envCreds(dated), new Date(notAfter().getTime() + 1000)),
        `the client certificate in TALOS_CRT expired on ${notAfter().toISOString()}`,
      );
    });

    it("expiring within 30 days: a warning with the days left", () => {
      const config = load({ endpoints: ["10.0.0.2"] }, envCreds(dated), new Date(T0.getTime() + 3 * DAY));
      assert.deepEqual(config.roles, ["os:admin"]);
      assert.deepEqual(config.warnings, [
        `the client certificate in TALOS_CRT expires on ${notAfter().toISOString()} (in 7 days); renew it before then`,
      ]);
    });
  });
});
