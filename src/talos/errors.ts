// Turning what the transport or apid reports into a DefragError that names the
// node or endpoint, says what happened and what to do.

import { Code, ConnectError } from "@connectrpc/connect";

import { DefragError } from "../core/errors.js";
import { causeText, transportFailure } from "../net/transport-errors.js";
import { roleNeeded, type TalosMethod } from "./rbac.js";

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
