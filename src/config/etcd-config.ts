// The etcd backend's connection configuration: etcd client URLs and the PEM files etcdctl takes
// (--cacert, --cert, --key), validated into one EtcdConfig before anything touches the network.

import { X509Certificate, createPrivateKey } from "node:crypto";
import { readFileSync } from "node:fs";

import { configError } from "../core/errors.js";
import { EXPIRY_WARNING_DAYS } from "./pem.js";

/** etcd's client port, when an endpoint names none (as etcdctl assumes). */
export const ETCD_CLIENT_PORT = 2379;

export interface EtcdConfigOptions {
  etcdEndpoints?: readonly string[] | undefined;
  cacert?: string | undefined;
  cert?: string | undefined;
  key?: string | undefined;
}

/** PEM text read from the files; absent parts are not used (a server verified by the system's CAs). */
export interface EtcdTls {
  caPem?: string;
  certPem?: string;
  keyPem?: string;
}

export interface EtcdConfig {
  /** Client URLs, normalized: "https://10.0.0.2:2379". */
  endpoints: string[];
  /** For https:// endpoints; undefined when they are all http:// (no TLS at all). */
  tls: EtcdTls | undefined;
  /** Where the credentials came from, for logs (file paths, never their content). */
  source: string;
  warnings: string[];
}

const FLAGS = {
  etcdEndpoints: "--etcd-endpoints",
  cacert: "--cacert",
  cert: "--cert",
  key: "--key",
} as const;

export function loadEtcdConfig(opts: EtcdConfigOptions, now: Date = new Date()): EtcdConfig {
  const raw = opts.etcdEndpoints ?? [];
  if (raw.length === 0)
    throw configError(
      "--backend etcd needs etcd's client URLs: --etcd-endpoints is not set",
      "set --etcd-endpoints (or TALOS_ETCD_DEFRAG_ETCD_ENDPOINTS or ETCDCTL_ENDPOINTS) to one or more members' client URLs, e.g. https://10.0.0.2:2379",
    );
  if ((opts.cert === undefined) !== (opts.key === undefined))
    throw configError(
      `${opts.cert === undefined ? "--key" : "--cert"} is set but ${opts.cert === undefined ? "--cert" : "--key"} is not`,
      "give the client certificate and its key together (etcdctl's --cert and --key), or neither",
    );
  const withTls = opts.cacert !== undefined || opts.cert !== undefined;
  const endpoints = raw.map((e) => parseEtcdEndpoint(e, withTls));
  const schemes = new Set(endpoints.map((e) => new URL(e).protocol));
  if (schemes.size > 1)
    throw configError(
      `--etcd-endpoints mixes http:// and https:// (${endpoints.join(", ")})`,
      "one cluster serves its clients one way: write every endpoint with the same scheme",
    );
  const warnings: string[] = [];
  if (!schemes.has("https:")) {
    if (withTls)
      throw configError(
        "--cacert/--cert/--key are set but the endpoints are http:// (no TLS)",
        "write the endpoints as https://host:2379, or drop the TLS options for an etcd that serves plain http",
      );
    return { endpoints, tls: undefined, source: "no TLS (http://)", warnings };
  }
  const tls: EtcdTls = {};
  if (opts.cacert !== undefined) tls.caPem = readCertificates(opts.cacert, FLAGS.cacert);
  if (opts.cert !== undefined && opts.key !== undefined) {
    tls.certPem = readCertificates(opts.cert, FLAGS.cert);
    tls.keyPem = readFile(opts.key, FLAGS.key);
    checkPair(tls.certPem, tls.keyPem, opts, now, warnings);
  }
  const parts = [
    opts.cacert !== undefined ? `CA ${opts.cacert}` : "the system's CAs",
    ...(opts.cert !== undefined ? [`client certificate ${opts.cert}`] : ["no client certificate"]),
  ];
  return { endpoints, tls, source: parts.join(", "), warnings };
}

/**
 * "https://10.0.0.2:2379", "10.0.0.2:2379", "[fd00::2]:2379", "etcd-0.example": a URL without a
 * scheme is https when TLS options are given, else http (as etcdctl reads it); no port means 2379.
 */
export function parseEtcdEndpoint(raw: string, withTls: boolean): string {
  const text = raw.trim();
  if (text === "") throw configError("--etcd-endpoints contains an empty endpoint");
  const hasScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(text);
  let url: URL;
  try {
    url = new URL(hasScheme ? text : `${withTls ? "https" : "http"}://${text}`);
  } catch {
    throw configError(
      `--etcd-endpoints: "${raw}" is not a URL`,
      "write etcd client URLs such as https://10.0.0.2:2379",
    );
  }
  if (url.protocol !== "https:" && url.protocol !== "http:")
    throw configError(
      `--etcd-endpoints: "${raw}" is a ${url.protocol.slice(0, -1)}:// URL`,
      "etcd's gRPC API is served on http:// or https:// client URLs (https://10.0.0.2:2379)",
    );
  if (
    (url.pathname !== "/" && url.pathname !== "") ||
    url.search !== "" ||
    url.hash !== "" ||
    url.username !== "" ||
    url.password !== "" ||
    text.includes("@")
  )
    throw configError(
      `--etcd-endpoints: "${raw}" has a path, query, fragment or user`,
      "write only scheme, host and port (https://10.0.0.2:2379)",
    );
  // URL drops a port equal to the scheme's default (443, 80): a port written is kept as written.
  const written = /^(?:[a-z][a-z0-9+.-]*:\/\/)?(?:\[[^\]]*\]|[^:/]*):(\d+)/i.exec(text)?.[1];
  const port = url.port !== "" ? url.port : (written ?? String(ETCD_CLIENT_PORT));
  return `${url.protocol}//${url.hostname}:${port}`;
}

function readFile(path: string, flag: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch (err) {
    throw configError(
      `cannot read ${flag} ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
      "give the path of a PEM file this user can read",
    );
  }
}

function readCertificates(path: string, flag: string): string {
  const pem = readFile(path, flag);
  const blocks = [...pem.matchAll(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g)];
  if (blocks.length === 0)
    throw configError(
      `${flag} ${path} holds no PEM certificate`,
      flag === FLAGS.cacert
        ? "give etcd's CA certificate (kubeadm: /etc/kubernetes/pki/etcd/ca.crt), never its key"
        : "give the client certificate (PEM)",
    );
  for (const b of blocks) {
    try {
      new X509Certificate(b[0]);
    } catch (err) {
      throw configError(`${flag} ${path} holds a certificate that does not parse: ${(err as Error).message}`);
    }
  }
  return pem;
}

function checkPair(
  certPem: string,
  keyPem: string,
  opts: EtcdConfigOptions,
  now: Date,
  warnings: string[],
): void {
  let key;
  try {
    key = createPrivateKey(keyPem);
  } catch (err) {
    throw configError(`--key ${opts.key ?? ""} is not a private key: ${(err as Error).message}`);
  }
  const cert = new X509Certificate(certPem);
  if (!cert.checkPrivateKey(key))
    throw configError(
      `--key ${opts.key ?? ""} does not belong to the certificate in --cert ${opts.cert ?? ""}`,
      "give the key the certificate was issued for",
    );
  const notAfter = new Date(cert.validTo);
  if (now < new Date(cert.validFrom))
    throw configError(
      `the client certificate in ${opts.cert ?? ""} is not valid until ${new Date(cert.validFrom).toISOString()}`,
      "check this machine's clock",
    );
  if (now > notAfter)
    throw configError(
      `the client certificate in ${opts.cert ?? ""} expired on ${notAfter.toISOString()}`,
      "issue a new one with etcd's CA (kubeadm renews its own with `kubeadm certs renew`)",
    );
  const days = (notAfter.getTime() - now.getTime()) / 86_400_000;
  if (days < EXPIRY_WARNING_DAYS)
    warnings.push(
      `the client certificate in ${opts.cert ?? ""} expires in ${Math.floor(days)} days (${notAfter.toISOString()})`,
    );
}
