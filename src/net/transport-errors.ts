// What a failure between us and a gRPC server was, from Node's and Connect's errors: the server's
// certificate not trusted, ours rejected, or the server not reached (shared by both backends).

import { Code, ConnectError } from "@connectrpc/connect";

/** OpenSSL/Node codes that mean the server's certificate did not verify against our CA. */
const SERVER_VERIFY_CODES = new Set([
  "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
  "UNABLE_TO_GET_ISSUER_CERT",
  "UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
  "SELF_SIGNED_CERT_IN_CHAIN",
  "DEPTH_ZERO_SELF_SIGNED_CERT",
  "CERT_SIGNATURE_FAILURE",
  "CERT_HAS_EXPIRED",
  "CERT_NOT_YET_VALID",
  "ERR_TLS_CERT_ALTNAME_INVALID",
]);

/** Socket-level codes: the endpoint itself could not be reached. */
const UNREACHABLE_CODES = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "ETIMEDOUT",
  "ENOTFOUND",
  "EAI_AGAIN",
  "EPIPE",
  "ERR_HTTP2_SESSION_ERROR",
  "ERR_HTTP2_GOAWAY_SESSION",
  "ERR_HTTP2_STREAM_CANCEL",
  "ERR_HTTP2_INVALID_SESSION",
]);

/** The first `code` string found along an error's cause chain. */
export function systemCode(err: unknown): string | undefined {
  for (let e: unknown = err, depth = 0; e !== undefined && e !== null && depth < 8; depth += 1) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === "string") return code;
    e = (e as { cause?: unknown }).cause;
  }
  return undefined;
}

/** What failed between us and the endpoint, before apid could answer. */
export type TransportFailure = "server-untrusted" | "client-rejected" | "unreachable";

export function transportFailure(err: unknown, certSuspect = false): TransportFailure | undefined {
  const code = systemCode(err);
  if (code === undefined) return streamFailure(err, certSuspect);
  // With TLS 1.3 the server checks our certificate after the handshake; its rejection
  // often reaches us as a reset. When our certificate is not from the server's CA, that is why.
  if (certSuspect && (code === "ECONNRESET" || code === "EPIPE")) return "client-rejected";
  if (SERVER_VERIFY_CODES.has(code)) return "server-untrusted";
  // The server rejected our certificate (alert from the peer) or closed right after the handshake.
  if (code.startsWith("ERR_SSL_") && /ALERT|CERTIFICATE/.test(code)) return "client-rejected";
  if (UNREACHABLE_CODES.has(code) || code.startsWith("ERR_SSL_")) return "unreachable";
  return undefined;
}

/**
 * A ConnectError the server never sent (no grpc-status): the HTTP/2 stream or
 * session broke. Our own deadline and our own cancellation are not counted.
 */
function streamFailure(err: unknown, certSuspect: boolean): TransportFailure | undefined {
  if (!(err instanceof ConnectError) || err.metadata.has("grpc-status")) return undefined;
  if (err.code === Code.Unavailable || err.code === Code.Internal)
    return certSuspect ? "client-rejected" : "unreachable";
  // Not our cancellation (the client reports that itself) nor a status from apid: the stream was reset.
  if (err.code === Code.Canceled) return certSuspect ? "client-rejected" : "unreachable";
  return undefined;
}

export function causeText(err: unknown): string {
  const inner = (err as { cause?: unknown }).cause;
  const base = inner instanceof Error ? inner.message : err instanceof Error ? err.message : String(err);
  return base.replace(/^\[\w+\]\s*/, "");
}
