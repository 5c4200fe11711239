// Shared by the commands: options -> validated Config -> a connected backend.

import { loadConfig, type Config } from "../config/config.js";
import type { Backend } from "../core/backend.js";
import { TalosBackend } from "../talos/backend.js";
import { TalosClient } from "../talos/client.js";
import type { CommandContext } from "./context.js";
import type { StatusOptions } from "./options.js";

/** The options every command has for connecting (status and run type them alike). */
export type ConnectionCliOptions = Pick<
  StatusOptions,
  "talosconfig" | "context" | "endpoints" | "nodes" | "callTimeoutMs"
>;

export function loadConnection(ctx: CommandContext<ConnectionCliOptions>): Config {
  const { talosconfig, context, endpoints, nodes } = ctx.options;
  const config = loadConfig({ talosconfig, context, endpoints, nodes }, ctx.env, ctx.now());
  for (const warning of config.warnings) ctx.logger.warn(warning);
  const contextNodes = config.contextNodes ?? [];
  if (contextNodes.length > 0 && config.nodes.length === 0) {
    // talosctl's default target for its own commands (`talosctl config node`), not this cluster's size.
    ctx.logger.info(
      `the context "${config.contextName}" lists nodes ${contextNodes.join(", ")}: not used; ` +
        "the members come from the etcd member list (-n/--nodes or TALOS_NODES to choose nodes)",
    );
  }
  return config;
}

/** The one place a command chooses its backend: the Talos API (the only one so far). */
export function connect(ctx: CommandContext<ConnectionCliOptions>, config: Config): Backend {
  const client = new TalosClient(config, {
    callTimeoutMs: ctx.options.callTimeoutMs,
    onWarning: (message) => {
      ctx.logger.warn(message);
    },
  });
  return new TalosBackend(client, { roles: config.roles, nodes: config.nodes });
}
