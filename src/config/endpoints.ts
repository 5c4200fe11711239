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
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(text)) {
    let url: URL;
    try {
      url = new URL(text);
    } catch {
      throw configError(`${field}: "${raw}" is not a valid URL`);
    }
    const host = url.hostname.replace(/^\[|\]$/g, "");
    return { host, port: url.port === "" ? 443 : Number(url.port), raw: text };
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
  return { host: hostPort[1] ?? "", port: portOf(hostPort[2], raw, field), raw: text };
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
  return text;
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
