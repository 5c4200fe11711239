// One HTTP/2 session per endpoint, with two fixes over Connect's session manager:
// - Node's HTTP/2 client sends an IPv6 literal as ":authority: fd00::1:50000"
//   (brackets dropped), which servers may reject; we send "[fd00::1]:50000".
// - When a server closes an idle connection with GOAWAY (Go servers do on a
//   graceful stop), the manager destroys it with an error after detaching its own
//   listeners, and the error would crash the process. Every connection gets an
//   'error' listener of ours for its whole life; the manager still sees the failure.

import { EventEmitter } from "node:events";
import type * as http2 from "node:http2";
import { isIP } from "node:net";

import type { Transport } from "@connectrpc/connect";
import { createGrpcTransport, Http2SessionManager, type Http2SessionOptions } from "@connectrpc/connect-node";

import type { Config } from "../config/config.js";
import { endpointAddress, type Endpoint } from "../config/endpoints.js";

const guarded = new WeakSet<EventEmitter>();
const ignore = (): void => undefined;

export class EndpointSession extends Http2SessionManager {
  private readonly fixedAuthority: string | undefined;

  constructor(url: string, pingOptions?: Http2SessionOptions, tls?: http2.SecureClientSessionOptions) {
    super(url, pingOptions, tls);
    const { hostname, port } = new URL(url);
    const host = hostname.replace(/^\[|\]$/g, "");
    this.fixedAuthority = isIP(host) === 6 ? `[${host}]:${port || "443"}` : undefined;
    // setState is private in the type but a plain method at run time: wrap it to see each new connection.
    const self = this as unknown as { setState: (state: unknown) => void };
    const setState = self.setState.bind(this);
    self.setState = (state: unknown): void => {
      // While connecting, `conn` is a promise of the session; once ready, the session itself.
      const conn = (state as { conn?: unknown } | undefined)?.conn;
      if (conn instanceof EventEmitter) {
        const emitter: EventEmitter = conn as EventEmitter;
        if (!guarded.has(emitter)) {
          guarded.add(emitter);
          emitter.on("error", ignore);
        }
      }
      setState(state);
    };
  }

  override request(
    method: string,
    path: string,
    headers: http2.OutgoingHttpHeaders,
    options: Omit<http2.ClientSessionRequestOptions, "signal">,
  ): Promise<http2.ClientHttp2Stream> {
    const fixed =
      this.fixedAuthority === undefined ? headers : { ...headers, ":authority": this.fixedAuthority };
    return super.request(method, path, fixed, options);
  }
}

/** What the client needs of one endpoint: a session it can open and close, and a transport over it. */
export interface EndpointConnection {
  manager: Pick<Http2SessionManager, "connect" | "error" | "abort">;
  transport: Transport;
}

/** The real connection: mutual TLS over one HTTP/2 session to the endpoint. */
export function grpcConnection(config: Config, endpoint: Endpoint): EndpointConnection {
  const baseUrl = `https://${endpointAddress(endpoint)}`;
  const manager = new EndpointSession(
    baseUrl,
    // Pings notice a node that vanished during a long defrag instead of waiting on a dead socket.
    { pingIntervalMs: 30_000, pingTimeoutMs: 15_000, idleConnectionTimeoutMs: 15 * 60_000 },
    {
      ca: config.caPem,
      cert: config.certPem,
      key: config.keyPem,
      minVersion: "TLSv1.2",
      // Node verifies the IP SAN against the host when no server name is set; passing an IP as
      // the TLS server name is not allowed by RFC 6066 and makes Node print DEP0123.
      servername: isIP(endpoint.host) === 0 ? endpoint.host : "",
    },
  );
  return { manager, transport: createGrpcTransport({ baseUrl, sessionManager: manager }) };
}
