// One client per etcd member, pinned to its client URL: one HTTP/2 session to that URL and no
// other, no load balancing, no retry (Connect retries nothing). A call that ends without success
// is reported as it ended; whoever called decides, and a defragment is never sent anywhere else.

import { isIP } from "node:net";

import { Code, ConnectError, createClient, type CallOptions, type Client } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";

import type { EtcdTls } from "../config/etcd-config.js";
import { DefragError } from "../core/errors.js";
import { EndpointSession } from "../net/session.js";
import { Cluster, KV, Maintenance } from "./gen/etcdserverpb/rpc_pb.js";
import { etcdCallError, type EtcdMethod } from "./errors.js";

export interface MemberClientOptions {
  /** The deadline of every call but the defragment's (which has its own). */
  callTimeoutMs: number;
}

export class MemberClient {
  readonly maintenance: Client<typeof Maintenance>;
  readonly cluster: Client<typeof Cluster>;
  readonly kv: Client<typeof KV>;
  private readonly session: EndpointSession;

  constructor(
    /** The member's client URL: "https://10.0.0.2:2379". */
    readonly url: string,
    tls: EtcdTls | undefined,
    private readonly opts: MemberClientOptions,
  ) {
    const host = new URL(url).hostname.replace(/^\[|\]$/g, "");
    this.session = new EndpointSession(
      url,
      // Pings notice a member that vanished during a long defragment instead of waiting on a dead socket.
      { pingIntervalMs: 30_000, pingTimeoutMs: 15_000, idleConnectionTimeoutMs: 15 * 60_000 },
      url.startsWith("https:")
        ? {
            ...(tls?.caPem !== undefined ? { ca: tls.caPem } : {}),
            ...(tls?.certPem !== undefined ? { cert: tls.certPem } : {}),
            ...(tls?.keyPem !== undefined ? { key: tls.keyPem } : {}),
            minVersion: "TLSv1.2",
            // An IP is checked against the certificate's IP SANs without a server name (RFC 6066 forbids one).
            servername: isIP(host) === 0 ? host : "",
          }
        : undefined,
    );
    const transport = createGrpcTransport({ baseUrl: url, sessionManager: this.session });
    this.maintenance = createClient(Maintenance, transport);
    this.cluster = createClient(Cluster, transport);
    this.kv = createClient(KV, transport);
  }

  /**
   * One call with its deadline (`timeoutMs`, else the call timeout; "none" for a stream that lasts
   * as long as it must) and the caller's signal; every failure becomes a DefragError naming this member.
   */
  async call<T>(
    method: EtcdMethod,
    run: (o: CallOptions) => Promise<T>,
    opts: { timeoutMs?: number | "none"; signal?: AbortSignal | undefined } = {},
  ): Promise<T> {
    const timeoutMs = opts.timeoutMs ?? this.opts.callTimeoutMs;
    const o: CallOptions = {
      ...(timeoutMs === "none" ? {} : { timeoutMs }),
      ...(opts.signal !== undefined ? { signal: opts.signal } : {}),
    };
    const started = Date.now();
    try {
      return await run(o);
    } catch (err) {
      if (opts.signal?.aborted === true && !(err instanceof DefragError))
        throw new DefragError("aborted", `${method} at ${this.url} was cancelled`, {
          node: this.url,
          cause: err,
        });
      const e = etcdCallError(method, this.url, err);
      // Our own deadline resets the HTTP/2 stream (CANCEL), which reads like a broken connection.
      if (e.kind === "unreachable" && timeoutMs !== "none" && Date.now() - started >= timeoutMs)
        throw etcdCallError(method, this.url, new ConnectError("deadline exceeded", Code.DeadlineExceeded));
      throw e;
    }
  }

  close(): void {
    this.session.abort();
  }
}
