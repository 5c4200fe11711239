// Shared by the commands: options -> validated configuration -> a connected backend. The one
// place a command chooses its backend (--backend): the Talos API, or etcd's own gRPC API.

import { loadConfig, type Config } from "../config/config.js";
import { loadEtcdConfig, type EtcdConfig } from "../config/etcd-config.js";
import type { Backend } from "../core/backend.js";
import { configError, DefragError } from "../core/errors.js";
import { EtcdBackend } from "../etcd/backend.js";
import { TalosBackend } from "../talos/backend.js";
import { TalosClient } from "../talos/client.js";
import type { CommandContext } from "./context.js";
import type { StatusOptions } from "./options.js";

/** The options every command has for connecting (status and run type them alike). */
export type ConnectionCliOptions = Pick<
  StatusOptions,
  | "backend"
  | "talosconfig"
  | "context"
  | "endpoints"
  | "nodes"
  | "callTimeoutMs"
  | "etcdEndpoints"
  | "cacert"
  | "cert"
  | "key"
> & { withoutDefragGauge?: "refuse" | "status-only" | undefined; etcdMetricsPort?: number | undefined };

/** A validated configuration of either backend, with what the commands need of it. */
export type Connection =
  | { backend: "talos"; config: Config; name: string; nodes: string[]; source: string; endpoints: string[] }
  | { backend: "etcd"; config: EtcdConfig; name: string; nodes: []; source: string; endpoints: string[] };

export function loadConnection(ctx: CommandContext<ConnectionCliOptions>): Connection {
  return ctx.options.backend === "etcd" ? loadEtcd(ctx) : loadTalos(ctx);
}

function loadTalos(ctx: CommandContext<ConnectionCliOptions>): Connection {
  const { talosconfig, context, endpoints, nodes } = ctx.options;
  let config: Config;
  try {
    config = loadConfig({ talosconfig, context, endpoints, nodes }, ctx.env, ctx.now());
  } catch (err) {
    // Told where to find etcd but not to use it: the likelier mistake is a missing --backend etcd.
    if (ctx.options.etcdEndpoints !== undefined && err instanceof DefragError && err.kind === "config")
      throw configError(
        `${err.message} (--etcd-endpoints is set, but --backend is talos)`,
        "add --backend etcd to reach etcd directly, or drop --etcd-endpoints to use the Talos API",
      );
    throw err;
  }
  for (const warning of config.warnings) ctx.logger.warn(warning);
  const contextNodes = config.contextNodes ?? [];
  if (contextNodes.length > 0 && config.nodes.length === 0) {
    // talosctl's default target for its own commands (`talosctl config node`), not this cluster's size.
    ctx.logger.info(
      `the context "${config.contextName}" lists nodes ${contextNodes.join(", ")}: not used; ` +
        "the members come from the etcd member list (-n/--nodes or TALOS_NODES to choose nodes)",
    );
  }
  return {
    backend: "talos",
    config,
    name: config.contextName === "environment" ? "default" : config.contextName,
    nodes: config.nodes,
    source: config.source,
    endpoints: config.endpoints.map((e) => e.raw),
  };
}

function loadEtcd(ctx: CommandContext<ConnectionCliOptions>): Connection {
  const o = ctx.options;
  // Talos's way of naming members would be silently ignored: say so before anything is called.
  const talosOnly = [
    ...(o.nodes !== undefined && o.nodes.length > 0 ? ["--nodes"] : []),
    ...(o.endpoints !== undefined && o.endpoints.length > 0 ? ["--endpoints"] : []),
  ];
  if (talosOnly.length > 0)
    throw configError(
      `${talosOnly.join(" and ")} ${talosOnly.length > 1 ? "are" : "is"} for the Talos API, not --backend etcd`,
      "with --backend etcd, give etcd's client URLs with --etcd-endpoints (or ETCDCTL_ENDPOINTS): every member of its member list is read",
    );
  const config = loadEtcdConfig(o, ctx.now());
  for (const warning of config.warnings) ctx.logger.warn(warning);
  return {
    backend: "etcd",
    config,
    name: "default",
    nodes: [],
    source: config.source,
    endpoints: config.endpoints,
  };
}

export function connect(ctx: CommandContext<ConnectionCliOptions>, connection: Connection): Backend {
  const onWarning = (message: string): void => {
    ctx.logger.warn(message);
  };
  if (connection.backend === "etcd")
    return new EtcdBackend(connection.config, {
      callTimeoutMs: ctx.options.callTimeoutMs,
      withoutGauge: ctx.options.withoutDefragGauge ?? "refuse",
      ...(ctx.options.etcdMetricsPort !== undefined ? { metricsPort: ctx.options.etcdMetricsPort } : {}),
      onWarning,
    });
  const client = new TalosClient(connection.config, { callTimeoutMs: ctx.options.callTimeoutMs, onWarning });
  return new TalosBackend(client, { roles: connection.config.roles, nodes: connection.config.nodes });
}
