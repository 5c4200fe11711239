// Endpoint and node address parsing (IPv4, IPv6, names, optional port or URL).

import { isIP } from "node:net";

import { configError } from "../core/errors.js";

export const TALOS_API_PORT = 50000;

export interface Endpoint {
  /** Host without brackets: "10.0.0.2", "fd00::2", "talos.default". */
  host: string;
  port: number;
  /** As written by the user, for messages. */
  raw: string;
}

/** "host:port" with brackets for IPv6, as used in URLs and messages. */
export function endpointAddress(e: Pick<Endpoint, "host" | "port">): string {
  return isIP(e.host) === 6 ? `[${e.host}]:${e.port}` : `${e.host}:${e.port}`;
}

/**
 * Accepts what talosctl accepts: "10.0.0.2", "10.0.0.2:50000", "fd00::2",
 * "[fd00::2]:50000", "talos.default", "https://host[:port]" (a URL without a
 * port means 443, as in talosctl).
 */
export function parseEndpoint(raw: string, field: string): Endpoint {
  const text = raw.trim();
  if (text === "") throw configError(`${field} contains an empty endpoint`);
  const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(text)?.[1];
  if (scheme !== undefined) {
    if (scheme.toLowerCase() !== "https")
      throw configError(
        `${field}: "${raw}" is a ${scheme}:// URL, but the Talos API is gRPC over TLS`,
        "write host, host:port or https://host[:port] (the Talos API listens on port 50000)",
      );
    let url: URL;
    try {
      url = new URL(text);
    } catch {
      throw configError(`${field}: "${raw}" is not a valid URL`);
    }
    if (url.pathname !== "/" || url.search !== "" || url.username !== "")
      throw configError(`${field}: "${raw}" has more than a host and a port`, "write https://host[:port]");
    const host = url.hostname.replace(/^\[|\]$/g, "");
    return { host: checkHost(host, raw, field), port: url.port === "" ? 443 : Number(url.port), raw: text };
  }
  if (isIP(text) === 6) return { host: text, port: TALOS_API_PORT, raw: text };
  const bracketed = /^\[([^\]]+)\](?::(\d+))?$/.exec(text);
  if (bracketed) {
    const host = bracketed[1] ?? "";
    if (isIP(host) !== 6) throw configError(`${field}: "${raw}" is not a valid IPv6 address`);
    return { host, port: portOf(bracketed[2], raw, field), raw: text };
  }
  const hostPort = /^([^:\s/]+)(?::(\d+))?$/.exec(text);
  if (!hostPort) throw configError(`${field}: "${raw}" is not a host, host:port or URL`);
  return { host: checkHost(hostPort[1] ?? "", raw, field), port: portOf(hostPort[2], raw, field), raw: text };
}

/** A DNS name: dot-separated labels of letters, digits and inner hyphens, its last label not all digits. */
const HOST_NAME =
  /^(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$/;

/**
 * An IP address or a host name, else a configuration error naming where it came from: "10.0.0.999"
 * looks like an IPv4 address but is none, and would otherwise fail only when dialled.
 */
function checkHost(host: string, raw: string, field: string): string {
  if (isIP(host) !== 0) return host;
  if (/^[\d.]+$/.test(host))
    throw configError(
      `${field}: "${raw}" is not a valid IPv4 address`,
      "each of its four numbers is 0 to 255",
    );
  const last = host.replace(/\.$/, "").split(".").at(-1) ?? "";
  if (!HOST_NAME.test(host) || /^\d+$/.test(last))
    throw configError(`${field}: "${raw}" is neither an IP address nor a host name`);
  return host;
}

function portOf(text: string | undefined, raw: string, field: string): number {
  if (text === undefined) return TALOS_API_PORT;
  const port = Number(text);
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw configError(`${field}: "${raw}" has an invalid port`);
  }
  return port;
}

/** Node addresses go into the `node` metadata; apid rejects a value with a port. */
export function parseNode(raw: string, field: string): string {
  const text = raw.trim().replace(/^\[(.*)\]$/, "$1");
  if (text === "") throw configError(`${field} contains an empty node`);
  if (isIP(text) === 0 && !/^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$/.test(text)) {
    throw configError(
      `${field}: "${raw}" is not a node address`,
      "nodes are IP addresses or host names without a port",
    );
  }
  return checkHost(text, raw, field);
}

/**
 * A comma-separated list, as talosctl takes it; spaces around items are dropped. An empty
 * item (",,", a trailing comma) is an error, not something to skip: `field` names the input.
 */
export function splitList(value: string | undefined, field = "the list"): string[] {
  if (value === undefined || value.trim() === "") return [];
  const items = value.split(",").map((s) => s.trim());
  if (items.some((s) => s === "")) {
    throw configError(
      `${field} "${value}" has an empty entry`,
      "separate the addresses with single commas, e.g. 10.0.0.1,10.0.0.2",
    );
  }
  return items;
}
