// One HTTP/2 session per endpoint. Node's HTTP/2 client sends an IPv6 literal
// as ":authority: fd00::1:50000" (brackets dropped), which servers may reject or
// misparse; we send the correct "[fd00::1]:50000" ourselves.

import type * as http2 from "node:http2";
import { isIP } from "node:net";

import { Http2SessionManager, type Http2SessionOptions } from "@connectrpc/connect-node";

export class EndpointSession extends Http2SessionManager {
  private readonly fixedAuthority: string | undefined;

  constructor(url: string, pingOptions?: Http2SessionOptions, tls?: http2.SecureClientSessionOptions) {
    super(url, pingOptions, tls);
    const { hostname, port } = new URL(url);
    const host = hostname.replace(/^\[|\]$/g, "");
    this.fixedAuthority = isIP(host) === 6 ? `[${host}]:${port || "443"}` : undefined;
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
