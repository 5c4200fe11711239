// The Talos API's connection to one endpoint: mutual TLS over one HTTP/2 session (src/net/session.ts).

import { isIP } from "node:net";

import type { Transport } from "@connectrpc/connect";
import { createGrpcTransport, type Http2SessionManager } from "@connectrpc/connect-node";

import type { Config } from "../config/config.js";
import { endpointAddress, type Endpoint } from "../config/endpoints.js";
import { EndpointSession } from "../net/session.js";

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
