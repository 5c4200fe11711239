// loadEtcdConfig(opts, now) and parseEtcdEndpoint without a cluster: the etcd backend's client URLs
// and the PEM files etcdctl takes (--cacert, --cert, --key), each refusal with its exact message
// and hint (they are what the user reads). Real Ed25519 certificates, written to a temporary
// directory.

import "reflect-metadata";

import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";

import * as x509 from "@peculiar/x509";

import {
  ETCD_CLIENT_PORT,
  loadEtcdConfig,
  parseEtcdEndpoint,
  type EtcdConfigOptions,
} from "../../src/config/etcd-config.js";
import { EXPIRY_WARNING_DAYS } from "../../src/config/pem.js";
import { DefragError } from "../../src/core/errors.js";
import { EtcdPki, type CertAndKey } from "../harness/certs.js";

const DAY = 24 * 60 * 60 * 1000;
/** Certificates carry whole seconds; so do the dates in the messages. */
const T0 = new Date(Math.floor(Date.now() / 1000) * 1000);
/** When the "dated" client certificate ends, in days after T0 (issued a minute before T0). */
const END = 40;
const at = (days: number, seconds = 0): Date => new Date(T0.getTime() + days * DAY + seconds * 1000);

const NO_ENDPOINTS = "--backend etcd needs etcd's client URLs: --etcd-endpoints is not set";
const NO_ENDPOINTS_HINT =
  "set --etcd-endpoints (or TALOS_ETCD_DEFRAG_ETCD_ENDPOINTS or ETCDCTL_ENDPOINTS) to one or more members' client URLs, e.g. https://10.0.0.2:2379";
const PAIR_HINT = "give the client certificate and its key together (etcdctl's --cert and --key), or neither";
const READ_HINT = "give the path of a PEM file this user can read";
const URL_HINT = "write etcd client URLs such as https://10.0.0.2:2379";
const SCHEME_HINT = "etcd's gRPC API is served on http:// or https:// client URLs (https://10.0.0.2:2379)";
const PARTS_HINT = "write only scheme, host and port (https://10.0.0.2:2379)";
const MIXED_HINT = "one cluster serves its clients one way: write every endpoint with the same scheme";
const HTTP_TLS = "--cacert/--cert/--key are set but the endpoints are http:// (no TLS)";
const HTTP_TLS_HINT =
  "write the endpoints as https://host:2379, or drop the TLS options for an etcd that serves plain http";

function expectConfigError(fn: () => unknown, message: string | RegExp, hint?: string | null): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof DefragError, String(err));
    assert.equal(err.kind, "config");
    if (typeof message === "string") assert.equal(err.message, message);
    else assert.match(err.message, message);
    if (hint === null) assert.equal(err.hint, undefined);
    else if (hint !== undefined) assert.equal(err.hint, hint);
    return true;
  });
}

describe("parseEtcdEndpoint", () => {
  const cases: { raw: string; tls: boolean; want: string; why: string }[] = [
    { raw: "10.0.0.2:2379", tls: false, want: "http://10.0.0.2:2379", why: "no scheme, no TLS: http" },
    { raw: "10.0.0.2:2379", tls: true, want: "https://10.0.0.2:2379", why: "no scheme, TLS: https" },
    { raw: "10.0.0.2", tls: false, want: "http://10.0.0.2:2379", why: "no port: 2379" },
    { raw: "10.0.0.2", tls: true, want: "https://10.0.0.2:2379", why: "no port, TLS: 2379" },
    { raw: "etcd-0.example", tls: true, want: "https://etcd-0.example:2379", why: "a name" },
    { raw: "[fd00::2]:2379", tls: true, want: "https://[fd00::2]:2379", why: "IPv6, bracketed" },
    { raw: "[fd00::2]", tls: false, want: "http://[fd00::2]:2379", why: "IPv6 without port" },
    { raw: "https://10.0.0.2:2379", tls: false, want: "https://10.0.0.2:2379", why: "scheme given wins" },
    { raw: "http://10.0.0.2:2379", tls: true, want: "http://10.0.0.2:2379", why: "http given stays" },
    { raw: "https://10.0.0.2", tls: false, want: "https://10.0.0.2:2379", why: "scheme, no port" },
    { raw: "https://10.0.0.2:2379/", tls: false, want: "https://10.0.0.2:2379", why: "a bare / is no path" },
    { raw: "  10.0.0.2:12379 ", tls: false, want: "http://10.0.0.2:12379", why: "trimmed; other port" },
    { raw: "HTTPS://ETCD-0:2379", tls: false, want: "https://etcd-0:2379", why: "case of scheme and host" },
  ];
  for (const c of cases)
    it(`${JSON.stringify(c.raw)} (TLS ${c.tls}) → ${c.want}: ${c.why}`, () => {
      assert.equal(parseEtcdEndpoint(c.raw, c.tls), c.want);
    });

  // A bug in parseEtcdEndpoint: URL drops a scheme's default port (url.port is "" for :80 with
  // http and :443 with https), which it then takes for "no port" and replaces with 2379.
  const defaultPorts: { raw: string; tls: boolean; want: string }[] = [
    { raw: "https://etcd.example:443", tls: false, want: "https://etcd.example:443" },
    { raw: "etcd.example:443", tls: true, want: "https://etcd.example:443" },
    { raw: "http://10.0.0.2:80", tls: false, want: "http://10.0.0.2:80" },
  ];
  for (const c of defaultPorts)
    it(`${c.raw}: a port written out is kept, even the scheme's default`, () => {
      assert.equal(parseEtcdEndpoint(c.raw, c.tls), c.want);
    });

  it("ETCD_CLIENT_PORT is etcd's client port", () => {
    assert.equal(ETCD_CLIENT_PORT, 2379);
  });

  const refused: { raw: string; message: string; hint: string | null }[] = [
    { raw: "", message: "--etcd-endpoints contains an empty endpoint", hint: null },
    { raw: "   ", message: "--etcd-endpoints contains an empty endpoint", hint: null },
    { raw: "ftp://x", message: '--etcd-endpoints: "ftp://x" is a ftp:// URL', hint: SCHEME_HINT },
    {
      raw: "unix:///run/etcd.sock",
      message: '--etcd-endpoints: "unix:///run/etcd.sock" is a unix:// URL',
      hint: SCHEME_HINT,
    },
    {
      raw: "https://10.0.0.2:2379/v3",
      message: '--etcd-endpoints: "https://10.0.0.2:2379/v3" has a path, query, fragment or user',
      hint: PARTS_HINT,
    },
    {
      raw: "10.0.0.2:2379/metrics",
      message: '--etcd-endpoints: "10.0.0.2:2379/metrics" has a path, query, fragment or user',
      hint: PARTS_HINT,
    },
    {
      raw: "https://10.0.0.2:2379?x=1",
      message: '--etcd-endpoints: "https://10.0.0.2:2379?x=1" has a path, query, fragment or user',
      hint: PARTS_HINT,
    },
    {
      raw: "https://root@10.0.0.2:2379",
      message: '--etcd-endpoints: "https://root@10.0.0.2:2379" has a path, query, fragment or user',
      hint: PARTS_HINT,
    },
    {
      raw: "https://root:pw@10.0.0.2:2379",
      message: '--etcd-endpoints: "https://root:pw@10.0.0.2:2379" has a path, query, fragment or user',
      hint: PARTS_HINT,
    },
    {
      raw: "https://:pw@10.0.0.2:2379",
      message: '--etcd-endpoints: "https://:pw@10.0.0.2:2379" has a path, query, fragment or user',
      hint: PARTS_HINT,
    },
    {
      raw: "https://10.0.0.2:2379#frag",
      message: '--etcd-endpoints: "https://10.0.0.2:2379#frag" has a path, query, fragment or user',
      hint: PARTS_HINT,
    },
    {
      raw: "https://10.0.0.2:99999",
      message: '--etcd-endpoints: "https://10.0.0.2:99999" is not a URL',
      hint: URL_HINT,
    },
    { raw: "fd00::2", message: '--etcd-endpoints: "fd00::2" is not a URL', hint: URL_HINT },
    { raw: "https://", message: '--etcd-endpoints: "https://" is not a URL', hint: URL_HINT },
  ];
  for (const r of refused)
    it(`refuses ${JSON.stringify(r.raw)}`, () => {
      expectConfigError(() => parseEtcdEndpoint(r.raw, true), r.message, r.hint);
      expectConfigError(() => parseEtcdEndpoint(r.raw, false), r.message, r.hint);
    });
});

describe("loadEtcdConfig", () => {
  let pki: EtcdPki;
  let dir: string;
  let good: CertAndKey;
  let other: CertAndKey;
  let dated: CertAndKey;
  /** Paths of the files written in before(). */
  const f = {
    ca: "",
    cert: "",
    key: "",
    otherKey: "",
    datedCert: "",
    datedKey: "",
    keyOnly: "",
    empty: "",
    garbledCert: "",
    caThenGarbled: "",
    notAKey: "",
    missing: "",
  };
  const GARBLED = "-----BEGIN CERTIFICATE-----\nTm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n";

  before(async () => {
    pki = await EtcdPki.create();
    good = await pki.clientCert({ cn: "talos-etcd-defrag" });
    other = await pki.clientCert({ cn: "someone" });
    dated = await pki.clientCert({ cn: "dated", notAfter: at(END) });
    dir = mkdtempSync(join(tmpdir(), "etcd-config-unit-"));
    const write = (name: string, text: string): string => {
      const path = join(dir, name);
      writeFileSync(path, text);
      return path;
    };
    f.ca = write("ca.crt", pki.caPem);
    f.cert = write("client.crt", good.certPem);
    f.key = write("client.key", good.keyPem);
    f.otherKey = write("other.key", other.keyPem);
    f.datedCert = write("dated.crt", dated.certPem);
    f.datedKey = write("dated.key", dated.keyPem);
    f.keyOnly = write("ca-key-by-mistake.pem", good.keyPem);
    f.empty = write("empty.pem", "");
    f.garbledCert = write("garbled.crt", GARBLED);
    f.caThenGarbled = write("bundle.crt", pki.caPem + GARBLED);
    f.notAKey = write("not-a-key.pem", "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n");
    f.missing = join(dir, "no-such-file.pem");
  });

  after(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  const EP = ["10.0.0.2:2379"];
  const load = (opts: EtcdConfigOptions, now: Date = T0) => loadEtcdConfig(opts, now);

  describe("endpoints", () => {
    it("none: a config error naming --etcd-endpoints and its environment variables", () => {
      for (const etcdEndpoints of [undefined, []])
        expectConfigError(() => load({ etcdEndpoints }), NO_ENDPOINTS, NO_ENDPOINTS_HINT);
      // Checked first: TLS options do not hide it.
      expectConfigError(() => load({ cacert: f.missing, cert: f.cert }), NO_ENDPOINTS, NO_ENDPOINTS_HINT);
    });

    it("without TLS: http://, no TLS at all, no warning", () => {
      const c = load({ etcdEndpoints: ["10.0.0.2:2379", "10.0.0.3", "[fd00::4]:2379"] });
      assert.deepEqual(c, {
        endpoints: ["http://10.0.0.2:2379", "http://10.0.0.3:2379", "http://[fd00::4]:2379"],
        tls: undefined,
        source: "no TLS (http://)",
        warnings: [],
      });
    });

    it("with --cacert: endpoints without a scheme are https://", () => {
      const c = load({ etcdEndpoints: ["10.0.0.2:2379", "10.0.0.3", "[fd00::4]:2379"], cacert: f.ca });
      assert.deepEqual(c.endpoints, [
        "https://10.0.0.2:2379",
        "https://10.0.0.3:2379",
        "https://[fd00::4]:2379",
      ]);
    });

    it("with --cert/--key alone: https:// too", () => {
      const c = load({ etcdEndpoints: EP, cert: f.cert, key: f.key });
      assert.deepEqual(c.endpoints, ["https://10.0.0.2:2379"]);
    });

    it("https:// written out, no TLS option: the system's CAs, no client certificate", () => {
      const c = load({ etcdEndpoints: ["https://etcd.example:2379"] });
      assert.deepEqual(c, {
        endpoints: ["https://etcd.example:2379"],
        tls: {},
        source: "the system's CAs, no client certificate",
        warnings: [],
      });
    });

    const mixed: { endpoints: string[]; opts?: EtcdConfigOptions; normalized: string }[] = [
      {
        endpoints: ["http://10.0.0.2:2379", "https://10.0.0.3:2379"],
        normalized: "http://10.0.0.2:2379, https://10.0.0.3:2379",
      },
      {
        endpoints: ["10.0.0.2", "https://10.0.0.3"],
        normalized: "http://10.0.0.2:2379, https://10.0.0.3:2379",
      },
      {
        endpoints: ["http://10.0.0.2", "10.0.0.3"],
        opts: { cacert: "unused" },
        normalized: "http://10.0.0.2:2379, https://10.0.0.3:2379",
      },
    ];
    for (const m of mixed)
      it(`mixed http and https refused: ${m.endpoints.join(", ")}${m.opts ? " with --cacert" : ""}`, () => {
        expectConfigError(
          () => load({ etcdEndpoints: m.endpoints, ...m.opts }),
          `--etcd-endpoints mixes http:// and https:// (${m.normalized})`,
          MIXED_HINT,
        );
      });

    it("an empty item among others is refused", () => {
      expectConfigError(
        () => load({ etcdEndpoints: ["10.0.0.2", "", "10.0.0.3"] }),
        "--etcd-endpoints contains an empty endpoint",
      );
    });

    it("a bad item is named as written", () => {
      expectConfigError(
        () => load({ etcdEndpoints: ["10.0.0.2", "ftp://x"] }),
        '--etcd-endpoints: "ftp://x" is a ftp:// URL',
        SCHEME_HINT,
      );
      expectConfigError(
        () => load({ etcdEndpoints: ["https://u@10.0.0.2"] }),
        '--etcd-endpoints: "https://u@10.0.0.2" has a path, query, fragment or user',
        PARTS_HINT,
      );
    });
  });

  describe("TLS options", () => {
    it("--cert without --key, and the reverse", () => {
      expectConfigError(
        () => load({ etcdEndpoints: EP, cert: f.cert }),
        "--cert is set but --key is not",
        PAIR_HINT,
      );
      expectConfigError(
        () => load({ etcdEndpoints: EP, key: f.key, cacert: f.ca }),
        "--key is set but --cert is not",
        PAIR_HINT,
      );
    });

    const httpTls: (() => EtcdConfigOptions)[] = [
      () => ({ cacert: f.ca }),
      () => ({ cert: f.cert, key: f.key }),
      () => ({ cacert: f.ca, cert: f.cert, key: f.key }),
      // The files are read only for https://: the refusal comes first, whatever they hold.
      () => ({ cacert: f.missing, cert: f.garbledCert, key: f.notAKey }),
    ];
    for (const [i, opts] of httpTls.entries())
      it(`TLS options with http:// endpoints are refused (${i + 1})`, () => {
        expectConfigError(
          () => load({ etcdEndpoints: ["http://10.0.0.2:2379", "http://10.0.0.3"], ...opts() }),
          HTTP_TLS,
          HTTP_TLS_HINT,
        );
      });

    const unreadable: { opts: () => EtcdConfigOptions; message: () => string }[] = [
      {
        opts: () => ({ cacert: f.missing }),
        message: () => `cannot read --cacert ${f.missing}: ENOENT`,
      },
      {
        opts: () => ({ cacert: f.ca, cert: f.missing, key: f.key }),
        message: () => `cannot read --cert ${f.missing}: ENOENT`,
      },
      {
        opts: () => ({ cacert: f.ca, cert: f.cert, key: f.missing }),
        message: () => `cannot read --key ${f.missing}: ENOENT`,
      },
      { opts: () => ({ cacert: dir }), message: () => `cannot read --cacert ${dir}: EISDIR` },
    ];
    for (const [i, u] of unreadable.entries())
      it(`an unreadable file is named with its flag, path and error code (${i + 1})`, () => {
        expectConfigError(() => load({ etcdEndpoints: EP, ...u.opts() }), u.message(), READ_HINT);
      });

    it("a CA file with no certificate in it", () => {
      const hint = "give etcd's CA certificate (kubeadm: /etc/kubernetes/pki/etcd/ca.crt), never its key";
      expectConfigError(
        () => load({ etcdEndpoints: EP, cacert: f.keyOnly }),
        `--cacert ${f.keyOnly} holds no PEM certificate`,
        hint,
      );
      expectConfigError(
        () => load({ etcdEndpoints: EP, cacert: f.empty }),
        `--cacert ${f.empty} holds no PEM certificate`,
        hint,
      );
    });

    it("a --cert file with no certificate in it (the key given twice)", () => {
      expectConfigError(
        () => load({ etcdEndpoints: EP, cert: f.keyOnly, key: f.key }),
        `--cert ${f.keyOnly} holds no PEM certificate`,
        "give the client certificate (PEM)",
      );
    });

    const garbled: { opts: () => EtcdConfigOptions; prefix: () => string }[] = [
      { opts: () => ({ cacert: f.garbledCert }), prefix: () => `--cacert ${f.garbledCert}` },
      { opts: () => ({ cacert: f.caThenGarbled }), prefix: () => `--cacert ${f.caThenGarbled}` },
      { opts: () => ({ cert: f.garbledCert, key: f.key }), prefix: () => `--cert ${f.garbledCert}` },
    ];
    for (const [i, g] of garbled.entries())
      it(`a certificate that does not parse (${i + 1})`, () => {
        const prefix = `${g.prefix()} holds a certificate that does not parse: `;
        assert.throws(
          () => load({ etcdEndpoints: EP, ...g.opts() }),
          (err: unknown) => {
            assert.ok(err instanceof DefragError);
            assert.equal(err.kind, "config");
            assert.ok(err.message.startsWith(prefix), err.message);
            assert.ok(err.message.length > prefix.length, "the parser's reason follows");
            return true;
          },
        );
      });

    it("a key file that holds no private key", () => {
      expectConfigError(
        () => load({ etcdEndpoints: EP, cert: f.cert, key: f.notAKey }),
        new RegExp(`^--key ${escape(f.notAKey)} is not a private key: .+`),
      );
      expectConfigError(
        () => load({ etcdEndpoints: EP, cert: f.cert, key: f.ca }),
        new RegExp(`^--key ${escape(f.ca)} is not a private key: .+`),
      );
    });

    it("a key that does not belong to the certificate", () => {
      expectConfigError(
        () => load({ etcdEndpoints: EP, cacert: f.ca, cert: f.cert, key: f.otherKey }),
        `--key ${f.otherKey} does not belong to the certificate in --cert ${f.cert}`,
        "give the key the certificate was issued for",
      );
    });

    it("an expired client certificate", () => {
      for (const now of [at(END, 1), at(400)])
        expectConfigError(
          () => load({ etcdEndpoints: EP, cert: f.datedCert, key: f.datedKey }, now),
          `the client certificate in ${f.datedCert} expired on ${at(END).toISOString()}`,
          "issue a new one with etcd's CA (kubeadm renews its own with `kubeadm certs renew`)",
        );
    });

    it("a client certificate not valid yet (this machine's clock behind)", () => {
      const notBefore = new x509.X509Certificate(dated.certPem).notBefore;
      for (const now of [new Date(notBefore.getTime() - 1000), at(-365)])
        expectConfigError(
          () => load({ etcdEndpoints: EP, cert: f.datedCert, key: f.datedKey }, now),
          `the client certificate in ${f.datedCert} is not valid until ${notBefore.toISOString()}`,
          "check this machine's clock",
        );
      // Its first second is valid.
      assert.equal(
        load({ etcdEndpoints: EP, cert: f.datedCert, key: f.datedKey }, notBefore).endpoints.length,
        1,
      );
    });

    it(`EXPIRY_WARNING_DAYS is ${EXPIRY_WARNING_DAYS}`, () => {
      assert.equal(EXPIRY_WARNING_DAYS, 30);
    });

    const expiry: { when: string; now: Date; warning: string | undefined }[] = [
      { when: "exactly 30 days before", now: at(END - EXPIRY_WARNING_DAYS), warning: undefined },
      { when: "more than 30 days before", now: at(0), warning: undefined },
      {
        when: "30 days less a second before",
        now: at(END - EXPIRY_WARNING_DAYS, 1),
        warning: "expires in 29 days",
      },
      { when: "10 days before", now: at(END - 10), warning: "expires in 10 days" },
      { when: "a day less a second before", now: at(END - 1, 1), warning: "expires in 0 days" },
      { when: "at its last second", now: at(END), warning: "expires in 0 days" },
    ];
    for (const e of expiry)
      it(`expiry warning ${e.when}: ${e.warning ?? "none"}`, () => {
        const c = load({ etcdEndpoints: EP, cacert: f.ca, cert: f.datedCert, key: f.datedKey }, e.now);
        assert.deepEqual(
          c.warnings,
          e.warning === undefined
            ? []
            : [`the client certificate in ${f.datedCert} ${e.warning} (${at(END).toISOString()})`],
        );
      });

    it("the happy path: every PEM read, the source names the files and holds no PEM", () => {
      const c = load({
        etcdEndpoints: ["10.0.0.2:2379", "https://10.0.0.3"],
        cacert: f.ca,
        cert: f.cert,
        key: f.key,
      });
      assert.deepEqual(c, {
        endpoints: ["https://10.0.0.2:2379", "https://10.0.0.3:2379"],
        tls: { caPem: pki.caPem, certPem: good.certPem, keyPem: good.keyPem },
        source: `CA ${f.ca}, client certificate ${f.cert}`,
        warnings: [],
      });
      assert.doesNotMatch(c.source, /-----BEGIN|PRIVATE/);
      assert.doesNotMatch(JSON.stringify(c.warnings), /-----BEGIN/);
    });

    const partial: { opts: () => EtcdConfigOptions; tls: () => object; source: () => string }[] = [
      {
        opts: () => ({ cacert: f.ca }),
        tls: () => ({ caPem: pki.caPem }),
        source: () => `CA ${f.ca}, no client certificate`,
      },
      {
        opts: () => ({ cert: f.cert, key: f.key }),
        tls: () => ({ certPem: good.certPem, keyPem: good.keyPem }),
        source: () => `the system's CAs, client certificate ${f.cert}`,
      },
    ];
    for (const [i, p] of partial.entries())
      it(`only some TLS files: absent parts left out (${i + 1})`, () => {
        const c = load({ etcdEndpoints: EP, ...p.opts() });
        assert.deepEqual(c.tls, p.tls());
        assert.equal(c.source, p.source());
        assert.deepEqual(c.warnings, []);
      });
  });
});

function escape(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}
