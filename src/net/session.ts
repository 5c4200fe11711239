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

import { Http2SessionManager, type Http2SessionOptions } from "@connectrpc/connect-node";

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
