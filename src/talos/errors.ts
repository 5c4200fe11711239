// Turning what the transport or apid reports into a DefragError that names the
// node or endpoint, says what happened and what to do.

import { Code, ConnectError } from "@connectrpc/connect";

import { DefragError } from "../core/errors.js";
import { roleNeeded, type TalosMethod } from "./rbac.js";

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

function causeText(err: unknown): string {
  const inner = (err as { cause?: unknown }).cause;
  const base = inner instanceof Error ? inner.message : err instanceof Error ? err.message : String(err);
  return base.replace(/^\[\w+\]\s*/, "");
}

export function endpointError(endpoint: string, err: unknown, certSuspect = false): DefragError {
  const e = endpointFailure(endpoint, err, certSuspect);
  // etcd's own ports answer neither TLS with the Talos CA nor the machine API: say what it is.
  const etcdPort = /:(2379|2380|2381)$/.exec(endpoint)?.[1];
  if (etcdPort === undefined) return e;
  return new DefragError(
    e.kind,
    `${e.message}; this looks like etcd, not the Talos API (port ${etcdPort} is etcd's own)`,
    {
      endpoint,
      cause: err,
      hint: "point the tool at the Talos API (apid): the control-plane node's address with port 50000, or no port (e.g. -e 10.0.0.2)",
    },
  );
}

function endpointFailure(endpoint: string, err: unknown, certSuspect: boolean): DefragError {
  const failure = transportFailure(err, certSuspect) ?? "unreachable";
  const cause = causeText(err);
  switch (failure) {
    case "server-untrusted":
      return new DefragError(
        "tls",
        `the CA does not verify the server certificate of endpoint ${endpoint}: ${cause}`,
        {
          endpoint,
          cause: err,
          hint: "the talosconfig's ca must be the cluster's Talos OS CA; check the context and the endpoint",
        },
      );
    case "client-rejected":
      return new DefragError(
        "tls",
        `endpoint ${endpoint} rejected our client certificate${certSuspect ? " (it is not issued by the talosconfig's CA)" : ""}: ${cause}`,
        {
          endpoint,
          cause: err,
          hint: "the certificate must be issued by this cluster's Talos CA with extended key usage clientAuth only",
        },
      );
    case "unreachable":
      return new DefragError("unreachable", `cannot reach endpoint ${endpoint}: ${cause}`, {
        endpoint,
        cause: err,
        hint: "check that the endpoint is a running control-plane node and port 50000 is open",
      });
  }
}

/** Maps a status returned by apid (or relayed from the node's machined) to our error. */
export function statusError(method: TalosMethod, node: string, code: Code, message: string, cause?: unknown) {
  const opts = { node, cause };
  switch (code) {
    case Code.PermissionDenied:
      return new DefragError(
        "permission",
        `${method} was denied (${message || "not authorized"}): it needs role ${roleNeeded(method)}`,
        {
          ...opts,
          hint:
            method === "EtcdForfeitLeadership"
              ? "moving leadership needs an os:admin certificate; run with --move-leader never to defragment the leader in place"
              : "use a talosconfig with role os:operator (talosctl config new --roles os:operator)",
        },
      );
    case Code.Unimplemented:
      return new DefragError("not-control-plane", `${method} is not available: ${message}`, {
        ...opts,
        hint: "this node does not run etcd; list only control-plane nodes in --nodes",
      });
    case Code.DeadlineExceeded:
      return new DefragError("timeout", `${method} did not answer in time`, {
        ...opts,
        hint: "etcd on this node may be hung or overloaded; raise --call-timeout if the node is just slow",
      });
    case Code.Canceled:
      return new DefragError("aborted", `${method} was cancelled`, opts);
    case Code.Unavailable:
      return new DefragError("unreachable", `cannot reach the node: ${message}`, {
        ...opts,
        hint: "the node's apid is down or the node is unreachable from the endpoint",
      });
    default:
      return new DefragError("etcd", `${method} failed: ${message}`, opts);
  }
}

/** A call's error as seen by the client: transport problem at the endpoint, or a status for the node. */
export function callError(
  method: TalosMethod,
  node: string,
  endpoint: string,
  err: unknown,
  certSuspect = false,
): DefragError {
  if (err instanceof DefragError) return err;
  const failure = transportFailure(err, certSuspect);
  if (failure === "unreachable") {
    // The connection was open and the request sent: it broke (or was reset) during the call.
    return new DefragError(
      "unreachable",
      `${method} via ${endpoint}: the connection broke during the call (${causeText(err)})`,
      {
        node,
        endpoint,
        hint:
          method === "EtcdDefragment"
            ? "etcd goes on defragmenting when the connection breaks: the member is in doubt until it is seen finished"
            : "check that the endpoint is a running control-plane node and port 50000 is open",
        cause: err,
      },
    );
  }
  if (failure !== undefined) {
    const e = endpointError(endpoint, err, certSuspect);
    return new DefragError(e.kind, `${method} via ${endpoint}: ${e.message}`, {
      node,
      endpoint,
      hint: e.hint,
      cause: err,
    });
  }
  const ce = ConnectError.from(err);
  return statusError(method, node, ce.code, ce.rawMessage, err);
}
