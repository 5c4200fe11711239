// Decoding and checking the client credentials (CA, certificate, key) exactly as
// a talosconfig or the TALOS_* environment carries them: base64 of PEM, or raw PEM.

import { X509Certificate, createPrivateKey, type KeyObject } from "node:crypto";

import { configError } from "../core/errors.js";

const CLIENT_AUTH_OID = "1.3.6.1.5.5.7.3.2";
const EKU_NAMES: Record<string, string> = {
  "1.3.6.1.5.5.7.3.1": "serverAuth",
  [CLIENT_AUTH_OID]: "clientAuth",
  "1.3.6.1.5.5.7.3.3": "codeSigning",
  "1.3.6.1.5.5.7.3.4": "emailProtection",
};

const DAY_MS = 24 * 60 * 60 * 1000;
export const EXPIRY_WARNING_DAYS = 30;

/** Talos writes Ed25519 keys as "ED25519 PRIVATE KEY" (PKCS#8 inside); OpenSSL only reads "PRIVATE KEY". */
export function normalizeKeyPem(pem: string): string {
  return pem.replace(/-----(BEGIN|END) ED25519 PRIVATE KEY-----/g, "-----$1 PRIVATE KEY-----");
}

/**
 * Turns a credential value into PEM text. `field` names where it came from
 * (e.g. "TALOS_CRT" or "contexts.prod.crt") so that the message points at it.
 */
export function decodePem(value: string, field: string, expected: "CERTIFICATE" | "PRIVATE KEY"): string {
  const trimmed = value.trim();
  if (trimmed === "")
    throw configError(`${field} is empty`, "set it to the base64 of the PEM, as in a talosconfig");
  if (trimmed.startsWith("-----BEGIN ")) return requireLabel(trimmed, field, expected, "is PEM but");
  const compact = trimmed.replace(/\s+/g, "");
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(compact) || compact.length % 4 !== 0) {
    throw configError(
      `${field} is not base64 (nor PEM)`,
      "it must be the base64 of the PEM file, exactly as in a talosconfig (`base64 -w0 < file.pem`), or the PEM itself",
    );
  }
  const text = Buffer.from(compact, "base64").toString("utf8");
  if (!text.includes("-----BEGIN ")) {
    throw configError(
      `${field} is base64 but does not decode to PEM`,
      `expected "-----BEGIN ${expected}-----" inside; check that the value was not base64-encoded twice or taken from the wrong field`,
    );
  }
  return requireLabel(text.trim(), field, expected, "decodes to PEM but");
}

function requireLabel(pem: string, field: string, expected: string, what: string): string {
  const labels = [...pem.matchAll(/-----BEGIN ([A-Z0-9 ]+)-----/g)].map((m) => m[1] ?? "");
  const ok =
    expected === "PRIVATE KEY" ? labels.some((l) => l.endsWith("PRIVATE KEY")) : labels.includes(expected);
  if (!ok) {
    throw configError(
      `${field} ${what} holds ${labels.map((l) => `"${l}"`).join(", ")} instead of a ${expected}`,
      "the ca and crt fields take certificates, the key field the private key",
    );
  }
  return pem;
}

export interface CheckedCredentials {
  caPem: string;
  certPem: string;
  /** Normalized so that Node can load it. */
  keyPem: string;
  roles: string[];
  notBefore: Date;
  notAfter: Date;
  /** Whether a certificate in the CA bundle issued the client certificate (Talos's OS CA issues both). */
  issuedByCa: boolean;
  warnings: string[];
}

/** Validates what apid will check, so that a bad credential fails here with a precise message (exit 2). */
export function checkCredentials(
  raw: { ca: string; crt: string; key: string },
  fields: { ca: string; crt: string; key: string },
  now: Date,
): CheckedCredentials {
  const caPem = decodePem(raw.ca, fields.ca, "CERTIFICATE");
  const certPem = decodePem(raw.crt, fields.crt, "CERTIFICATE");
  const keyPem = normalizeKeyPem(decodePem(raw.key, fields.key, "PRIVATE KEY"));

  let cas: X509Certificate[];
  try {
    cas = [...caPem.matchAll(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g)].map(
      (m) => new X509Certificate(m[0]),
    );
    if (cas.length === 0) throw new Error("no certificate in it");
  } catch (err) {
    throw configError(`${fields.ca} is not a valid certificate: ${(err as Error).message}`);
  }
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(certPem);
  } catch (err) {
    throw configError(`${fields.crt} is not a valid certificate: ${(err as Error).message}`);
  }
  let key: KeyObject;
  try {
    key = createPrivateKey(keyPem);
  } catch (err) {
    throw configError(`${fields.key} is not a valid private key: ${(err as Error).message}`);
  }
  if (!cert.checkPrivateKey(key)) {
    throw configError(
      `${fields.key} does not match the certificate in ${fields.crt}`,
      "take the crt and key from the same talosconfig context",
    );
  }

  const notBefore = new Date(cert.validFrom);
  const notAfter = new Date(cert.validTo);
  if (now < notBefore) {
    throw configError(
      `the client certificate in ${fields.crt} is not valid until ${notBefore.toISOString()}`,
      "check this machine's clock, or wait until then",
    );
  }
  if (now > notAfter) {
    throw configError(
      `the client certificate in ${fields.crt} expired on ${notAfter.toISOString()}`,
      "generate a new one, e.g. `talosctl config new --roles os:operator`, or let Talos renew the ServiceAccount secret",
    );
  }
  // Node types this as always present, but it is undefined when the certificate has no EKU extension.
  const usages = (cert.keyUsage as string[] | undefined) ?? [];
  if (usages.length !== 1 || usages[0] !== CLIENT_AUTH_OID) {
    const named = usages.map((oid) => EKU_NAMES[oid] ?? oid).join(", ") || "none";
    throw configError(
      usages.includes(CLIENT_AUTH_OID)
        ? `the client certificate in ${fields.crt} has extended key usages ${named}: it must be exactly clientAuth`
        : `the client certificate in ${fields.crt} is missing the clientAuth usage (extended key usage: ${named})`,
      "Talos's apid accepts only client certificates whose extended key usage is exactly clientAuth; use one issued by talosctl or Talos",
    );
  }

  const warnings: string[] = [];
  const issuedByCa = cas.some((ca) => cert.checkIssued(ca) && cert.verify(ca.publicKey));
  if (!issuedByCa) {
    warnings.push(
      `the client certificate in ${fields.crt} is not issued by the CA in ${fields.ca}; apid accepts it only if its issuer is in the machine config's acceptedCAs`,
    );
  }
  const daysLeft = (notAfter.getTime() - now.getTime()) / DAY_MS;
  if (daysLeft < EXPIRY_WARNING_DAYS) {
    warnings.push(
      `the client certificate in ${fields.crt} expires on ${notAfter.toISOString()} (in ${Math.max(0, Math.floor(daysLeft))} days); renew it before then`,
    );
  }
  return { caPem, certPem, keyPem, roles: rolesOf(cert), notBefore, notAfter, issuedByCa, warnings };
}

/** Talos roles are the certificate subject's Organization values. */
function rolesOf(cert: X509Certificate): string[] {
  return cert.subject
    .split("\n")
    .filter((line) => line.startsWith("O="))
    .map((line) => line.slice(2).trim())
    .filter((role) => role !== "");
}
