// Certificates like Talos's, generated per run: an Ed25519 OS CA (O=talos),
// Ed25519 server certificates with IP SANs, and Ed25519 client certificates whose
// Organization values are the Talos roles. Keys are written with Talos's
// non-standard "ED25519 PRIVATE KEY" PEM label, as talosctl writes them.

import "reflect-metadata";

import { webcrypto } from "node:crypto";
import { isIP } from "node:net";

import * as x509 from "@peculiar/x509";

type CryptoKeyPair = webcrypto.CryptoKeyPair;
type CryptoKey = webcrypto.CryptoKey;

// Node 20's types have no global `Crypto`; its webcrypto is what @peculiar/x509 expects.
(x509.cryptoProvider.set.bind(x509.cryptoProvider) as (crypto: unknown) => void)(webcrypto);

const ED25519 = { name: "Ed25519" };
const DAY = 24 * 60 * 60 * 1000;

export interface CertAndKey {
  certPem: string;
  /** PKCS#8 under the label "ED25519 PRIVATE KEY", exactly as Talos writes it. */
  keyPem: string;
}

export interface ClientCertOptions {
  roles: string[];
  /** Extended key usages; Talos issues exactly ["clientAuth"]. "none" leaves the extension out. */
  eku?: ("clientAuth" | "serverAuth")[] | "none";
  notBefore?: Date;
  notAfter?: Date;
  /** Issue from a different CA than the cluster's. */
  foreignCa?: boolean;
}

/** The label Node/OpenSSL understand: what our client does to Talos's keys. */
export function nodeKeyPem(talosKeyPem: string): string {
  return talosKeyPem.replace(/(BEGIN|END) ED25519 PRIVATE KEY/g, "$1 PRIVATE KEY");
}

async function keyPair(): Promise<CryptoKeyPair> {
  return (await webcrypto.subtle.generateKey(ED25519, true, ["sign", "verify"])) as CryptoKeyPair;
}

async function talosKeyPem(key: CryptoKey): Promise<string> {
  const der = Buffer.from(await webcrypto.subtle.exportKey("pkcs8", key));
  const body = der
    .toString("base64")
    .replace(/(.{64})/g, "$1\n")
    .trimEnd();
  return `-----BEGIN ED25519 PRIVATE KEY-----\n${body}\n-----END ED25519 PRIVATE KEY-----\n`;
}

let serial = 1;
function nextSerial(): string {
  serial += 1;
  return serial.toString(16).padStart(2, "0");
}

class Authority {
  private constructor(
    readonly cert: x509.X509Certificate,
    private readonly keys: CryptoKeyPair,
  ) {}

  static async create(name = "O=talos"): Promise<Authority> {
    const keys = await keyPair();
    const cert = await x509.X509CertificateGenerator.createSelfSigned({
      serialNumber: nextSerial(),
      name,
      notBefore: new Date(Date.now() - DAY),
      notAfter: new Date(Date.now() + 3650 * DAY),
      keys,
      signingAlgorithm: ED25519,
      extensions: [
        new x509.BasicConstraintsExtension(true, undefined, true),
        new x509.KeyUsagesExtension(
          x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.digitalSignature,
          true,
        ),
      ],
    });
    return new Authority(cert, keys);
  }

  get pem(): string {
    return this.cert.toString("pem") + "\n";
  }

  async issue(opts: {
    subject: string;
    eku: string[] | "none";
    sans?: { ips: string[]; dns: string[] };
    notBefore: Date;
    notAfter: Date;
  }): Promise<CertAndKey> {
    const keys = await keyPair();
    const extensions: x509.Extension[] = [
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
    ];
    if (opts.eku !== "none") extensions.push(new x509.ExtendedKeyUsageExtension(opts.eku));
    if (opts.sans) {
      extensions.push(
        new x509.SubjectAlternativeNameExtension([
          ...opts.sans.dns.map((value) => ({ type: "dns" as const, value })),
          ...opts.sans.ips.map((value) => ({ type: "ip" as const, value })),
        ]),
      );
    }
    const cert = await x509.X509CertificateGenerator.create({
      serialNumber: nextSerial(),
      subject: opts.subject,
      issuer: this.cert.subject,
      notBefore: opts.notBefore,
      notAfter: opts.notAfter,
      publicKey: keys.publicKey,
      signingKey: this.keys.privateKey,
      signingAlgorithm: ED25519,
      extensions,
    });
    return { certPem: cert.toString("pem") + "\n", keyPem: await talosKeyPem(keys.privateKey) };
  }
}

const EKU: Record<"clientAuth" | "serverAuth", string> = {
  clientAuth: x509.ExtendedKeyUsage.clientAuth,
  serverAuth: x509.ExtendedKeyUsage.serverAuth,
};

export class Pki {
  private foreign: Authority | undefined;

  private constructor(private readonly ca: Authority) {}

  static async create(): Promise<Pki> {
    return new Pki(await Authority.create());
  }

  get caPem(): string {
    return this.ca.pem;
  }

  /** Like apid's certificate: serverAuth only, the node's IPs (and 127.0.0.1) and names as SANs, valid a day. */
  serverCert(opts: { ips: string[]; dns?: string[] }): Promise<CertAndKey> {
    const ips = [...new Set([...opts.ips, "127.0.0.1"])].filter((ip) => isIP(ip) !== 0);
    return this.ca.issue({
      subject: `CN=${opts.dns?.[0] ?? opts.ips[0] ?? "talos"}`,
      eku: [EKU.serverAuth],
      sans: { ips, dns: opts.dns ?? [] },
      notBefore: new Date(Date.now() - 60_000),
      notAfter: new Date(Date.now() + DAY),
    });
  }

  /** Like talosctl's client certificates: no CN, O = roles, EKU clientAuth only. */
  async clientCert(opts: ClientCertOptions): Promise<CertAndKey> {
    const authority = opts.foreignCa ? (this.foreign ??= await Authority.create("O=someone-else")) : this.ca;
    const eku = opts.eku === "none" ? "none" : (opts.eku ?? ["clientAuth"]).map((u) => EKU[u]);
    return authority.issue({
      subject: opts.roles.map((r) => `O=${r}`).join(", ") || "O=",
      eku,
      notBefore: opts.notBefore ?? new Date(Date.now() - 60_000),
      notAfter: opts.notAfter ?? new Date(Date.now() + 365 * DAY),
    });
  }
}

/**
 * etcd's own PKI, as kubeadm lays it out: a CA, a server certificate per member (serverAuth and
 * clientAuth, the member's IPs), client certificates (clientAuth; the CN is etcd's user name when
 * its auth is on). Ed25519 throughout; keys under the plain "PRIVATE KEY" label etcd reads.
 */
export class EtcdPki {
  private foreign: Authority | undefined;

  private constructor(private readonly ca: Authority) {}

  static async create(): Promise<EtcdPki> {
    return new EtcdPki(await Authority.create("CN=etcd-ca"));
  }

  get caPem(): string {
    return this.ca.pem;
  }

  async serverCert(ips: string[]): Promise<CertAndKey> {
    const c = await this.ca.issue({
      subject: `CN=${ips[0] ?? "etcd"}`,
      eku: [EKU.serverAuth, EKU.clientAuth],
      sans: { ips: [...new Set([...ips, "127.0.0.1"])], dns: ["localhost"] },
      notBefore: new Date(Date.now() - 60_000),
      notAfter: new Date(Date.now() + DAY),
    });
    return { certPem: c.certPem, keyPem: nodeKeyPem(c.keyPem) };
  }

  /** A client certificate; `foreignCa` issues it from a CA etcd does not trust. */
  async clientCert(opts: { cn?: string; foreignCa?: boolean; notAfter?: Date } = {}): Promise<CertAndKey> {
    const authority = opts.foreignCa ? (this.foreign ??= await Authority.create("CN=someone-else")) : this.ca;
    const c = await authority.issue({
      subject: `CN=${opts.cn ?? "talos-etcd-defrag"}`,
      eku: [EKU.clientAuth],
      notBefore: new Date(Date.now() - 60_000),
      notAfter: opts.notAfter ?? new Date(Date.now() + 365 * DAY),
    });
    return { certPem: c.certPem, keyPem: nodeKeyPem(c.keyPem) };
  }
}
