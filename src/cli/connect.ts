// Shared by the commands: options -> validated Config -> a connected backend.

import { loadConfig, type Config } from "../config/config.js";
import { configError } from "../core/errors.js";
import { parseDuration } from "../core/units.js";
import { TalosBackend } from "../talos/backend.js";
import { TalosClient } from "../talos/client.js";
import type { CommandContext } from "./context.js";

export function durationOption(ctx: CommandContext, name: string, flag: string, allowZero = false): number {
  const text = ctx.options[name] ?? "";
  const ms = parseDuration(text);
  if (ms === undefined || ms < 0 || (ms === 0 && !allowZero)) {
    throw configError(
      `${flag} "${text}" is not a ${allowZero ? "duration" : "positive duration"}`,
      "use e.g. 30s, 5m or 1h30m",
    );
  }
  return ms;
}

export function loadConnection(ctx: CommandContext): { config: Config; callTimeoutMs: number } {
  const callTimeoutMs = durationOption(ctx, "callTimeout", "--call-timeout");
  const config = loadConfig(
    {
      talosconfig: ctx.options.talosconfig,
      context: ctx.options.context,
      endpoints: ctx.options.endpoints,
      nodes: ctx.options.nodes,
    },
    ctx.env,
    ctx.now(),
  );
  for (const warning of config.warnings) ctx.logger.warn(warning);
  return { config, callTimeoutMs };
}

export function connect(ctx: CommandContext, config: Config, callTimeoutMs: number): TalosBackend {
  const client = new TalosClient(config, {
    callTimeoutMs,
    onWarning: (message) => {
      ctx.logger.warn(message);
    },
  });
  return new TalosBackend(client, { roles: config.roles, nodes: config.nodes });
}
