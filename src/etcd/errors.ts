// Turning what the transport or etcd reports into a DefragError that names the member, says what
// happened and what to do.

import { Code, ConnectError } from "@connectrpc/connect";

import { DefragError } from "../core/errors.js";
import { causeText, transportFailure } from "../net/transport-errors.js";

/** The etcd calls the backend makes, by etcd's service and method names. */
export type EtcdMethod =
  | "MemberList"
  | "Status"
  | "Alarm"
  | "Defragment"
  | "Snapshot"
  | "HashKV"
  | "MoveLeader"
  | "Compact"
  | "metrics";

/** A call's failure at `url` (the member's client URL, which is its node). */
export function etcdCallError(method: EtcdMethod, url: string, err: unknown): DefragError {
  if (err instanceof DefragError) return err;
  const opts = { node: url, endpoint: url, cause: err };
  switch (transportFailure(err)) {
    case "server-untrusted":
      return new DefragError(
        "tls",
        `the CA does not verify etcd's server certificate at ${url}: ${causeText(err)}`,
        { ...opts, hint: "--cacert must be etcd's CA (kubeadm: /etc/kubernetes/pki/etcd/ca.crt)" },
      );
    case "client-rejected":
      return new DefragError("tls", `etcd at ${url} rejected our client certificate: ${causeText(err)}`, {
        ...opts,
        hint: "--cert/--key must be a client certificate issued by etcd's CA (--trusted-ca-file)",
      });
    case "unreachable":
      return new DefragError("unreachable", `${method}: cannot reach etcd at ${url} (${causeText(err)})`, {
        ...opts,
        hint:
          method === "Defragment"
            ? "etcd goes on defragmenting when the connection breaks: the member is in doubt until it is seen finished"
            : "check that the member is running and its client URL is reachable from here",
      });
    case undefined:
      break;
  }
  const ce = ConnectError.from(err);
  const message = ce.rawMessage;
  // etcd 3.4 answers some calls' auth failures with its own text and no gRPC code ("auth: permission denied").
  const code = /permission denied|user name (is )?(empty|not found)/i.test(message)
    ? Code.PermissionDenied
    : ce.code;
  switch (code) {
    case Code.PermissionDenied:
    case Code.Unauthenticated:
      return new DefragError("permission", `etcd denied ${method} at ${url}: ${message}`, {
        ...opts,
        hint: "with etcd's auth enabled, the client certificate's common name must be a user with the root role (etcd requires it for maintenance calls)",
      });
    case Code.DeadlineExceeded:
      return new DefragError("timeout", `${method} at ${url} did not answer in time`, {
        ...opts,
        hint:
          method === "Defragment"
            ? "etcd goes on defragmenting after the call's deadline: the member is in doubt until it is seen finished"
            : "the member may be hung, overloaded or defragmenting; raise --call-timeout if it is just slow",
      });
    case Code.Canceled:
      return new DefragError("aborted", `${method} at ${url} was cancelled`, opts);
    case Code.Unavailable:
      return new DefragError("unreachable", `${method}: etcd at ${url} is unavailable: ${message}`, {
        ...opts,
        hint: "check that the member is running and has a leader",
      });
    default:
      return new DefragError("etcd", `${method} at ${url} failed: ${message}`, opts);
  }
}
