// Connection configuration: talosconfig file or TALOS_* environment, plus flag
// overrides, validated into one Config before anything touches the network.

import { configError } from "../core/errors.js";
import { checkCredentials, type CheckedCredentials } from "./pem.js";
import { parseEndpoint, parseNode, type Endpoint } from "./endpoints.js";
import { locateTalosconfig, readTalosconfig } from "./talosconfig.js";

/** From the option table, which already merged --endpoints/TALOS_ENDPOINTS and --nodes/TALOS_NODES. */
export interface ConnectionOptions {
  talosconfig?: string | undefined;
  context?: string | undefined;
  /** Unparsed items; an empty list counts as unset. */
  endpoints?: readonly string[] | undefined;
  nodes?: readonly string[] | undefined;
}

export interface Config {
  /** Where the credentials came from, for logs (never the credentials themselves). */
  source: string;
  contextName: string;
  endpoints: Endpoint[];
  /** Explicit nodes (--nodes/TALOS_NODES only); empty means discover them from the etcd member list. */
  nodes: string[];
  /**
   * The context's `nodes:` (what `talosctl config node` writes), which are not used: for a cluster-wide
   * tool the etcd member list says which members there are, and a context narrowed to one node for
   * talosctl's sake must not hide the others. The command logs them.
   */
  contextNodes?: string[] | undefined;
  caPem: string;
  certPem: string;
  keyPem: string;
  roles: string[];
  /** The client certificate is issued by a CA of the bundle (else apid may reject it). */
  certIssuedByCa: boolean;
  warnings: string[];
}

export type Env = Readonly<Record<string, string | undefined>>;

/** `env` is read for the credentials (TALOS_CA/CRT/KEY) and the talosconfig lookup (TALOSCONFIG, TALOS_HOME, HOME). */
export function loadConfig(opts: ConnectionOptions, env: Env, now: Date = new Date()): Config {
  const envCreds = ["TALOS_CA", "TALOS_CRT", "TALOS_KEY"] as const;
  const present = envCreds.filter((name) => (env[name] ?? "") !== "");
  const fileRequested = (opts.talosconfig ?? "") !== "";

  // An explicit --talosconfig wins; otherwise TALOS_CA/CRT/KEY (the seed's Secret) need no file at all.
  if (!fileRequested && present.length > 0) {
    if (present.length < envCreds.length) {
      const missing = envCreds.filter((n) => !present.includes(n));
      throw configError(
        `${present.join(", ")} ${present.length === 1 ? "is" : "are"} set but ${missing.join(", ")} ${missing.length === 1 ? "is" : "are"} not`,
        "set all three (base64 of the PEM, as in a talosconfig) or none",
      );
    }
    const creds = checkCredentials(
      { ca: env.TALOS_CA ?? "", crt: env.TALOS_CRT ?? "", key: env.TALOS_KEY ?? "" },
      { ca: "TALOS_CA", crt: "TALOS_CRT", key: "TALOS_KEY" },
      now,
    );
    const endpoints = (opts.endpoints ?? []).map((e) => parseEndpoint(e, "TALOS_ENDPOINTS"));
    if (endpoints.length === 0) {
      throw configError(
        "no endpoints: TALOS_CA, TALOS_CRT and TALOS_KEY are set but TALOS_ENDPOINTS is not",
        "set TALOS_ENDPOINTS or --endpoints to the control-plane addresses (comma separated)",
      );
    }
    return withCredentials(
      {
        source: "environment (TALOS_CA, TALOS_CRT, TALOS_KEY)",
        contextName: "environment",
        endpoints,
        nodes: nodesFrom(opts.nodes ?? [], "--nodes/TALOS_NODES"),
        contextNodes: [],
      },
      creds,
    );
  }

  const { path, tried } = locateTalosconfig(opts.talosconfig, env);
  if (path === undefined) {
    throw configError(
      `no talosconfig found (looked at ${tried.join(", ")})`,
      "pass --talosconfig PATH or set TALOSCONFIG, or provide TALOS_CA, TALOS_CRT, TALOS_KEY and TALOS_ENDPOINTS",
    );
  }
  const loaded = readTalosconfig(path, opts.context);
  const prefix = `contexts.${loaded.contextName}`;
  const { ca, crt, key } = loaded.context;
  const missing = (["ca", "crt", "key"] as const).filter((f) => (loaded.context[f] ?? "") === "");
  if (ca === undefined || crt === undefined || key === undefined || missing.length > 0) {
    throw configError(
      `talosconfig ${path}: context "${loaded.contextName}" has no ${missing.join(", ")}`,
      "use a talosconfig with client credentials (talosctl config new --roles os:operator)",
    );
  }
  const creds = checkCredentials(
    { ca, crt, key },
    { ca: `${prefix}.ca`, crt: `${prefix}.crt`, key: `${prefix}.key` },
    now,
  );

  const endpoints =
    opts.endpoints !== undefined && opts.endpoints.length > 0
      ? opts.endpoints.map((e) => parseEndpoint(e, "--endpoints"))
      : (loaded.context.endpoints ?? []).map((e, i) => parseEndpoint(e, `${prefix}.endpoints[${i}]`));
  if (endpoints.length === 0) {
    throw configError(
      `no endpoints: context "${loaded.contextName}" in ${path} lists none`,
      "pass --endpoints or set TALOS_ENDPOINTS to the control-plane addresses, or add endpoints to the context (talosctl config endpoint ...)",
    );
  }
  return withCredentials(
    {
      source: `talosconfig ${path} (context ${loaded.contextName})`,
      contextName: loaded.contextName,
      endpoints,
      nodes: nodesFrom(opts.nodes ?? [], "--nodes/TALOS_NODES"),
      // Not parsed: they are only named in a log line, and a bad one must not stop the command.
      contextNodes: dedupe(loaded.context.nodes ?? []),
    },
    creds,
  );
}

function withCredentials(
  base: Pick<Config, "source" | "contextName" | "endpoints" | "nodes" | "contextNodes">,
  creds: CheckedCredentials,
): Config {
  return {
    ...base,
    caPem: creds.caPem,
    certPem: creds.certPem,
    keyPem: creds.keyPem,
    roles: creds.roles,
    certIssuedByCa: creds.issuedByCa,
    warnings: creds.warnings,
  };
}

function nodesFrom(items: readonly string[], field: string): string[] {
  return dedupe(items.map((n) => parseNode(n, field)));
}

function dedupe<T>(items: T[]): T[] {
  return [...new Set(items)];
}
