#!/usr/bin/env node
// Entry: parse argv and environment, run one command, set process.exitCode.
// SIGTERM/SIGINT abort the command's signal; a second signal exits at once.

import { randomUUID } from "node:crypto";
import { realpathSync } from "node:fs";
import { fileURLToPath } from "node:url";

import { Command, CommanderError } from "commander";

import pkg from "../package.json" with { type: "json" };
import type { CommandContext } from "./cli/context.js";
import { EXIT, exitCodeFor, exitCodeForCommandLine } from "./cli/exit.js";
import type { CommandName } from "./cli/option-types.js";
import { ENVIRONMENT_HELP, type RunCliOptions, type StatusOptions } from "./cli/options.js";
import {
  OptionsError,
  addOptions,
  optionsAfterCommand,
  parseOptions,
  unknownVariables,
} from "./cli/parse-options.js";
import type { Env } from "./config/config.js";
import { DefragError } from "./core/errors.js";
import { createLogger, type LogFormat, type Sink } from "./report/logger.js";

export interface MainIO {
  stdout: Sink;
  stderr: Sink;
  signal: AbortSignal;
  now?: () => Date;
  /** stderr is an interactive terminal. */
  interactive?: boolean;
}

type Flags = Readonly<Record<string, unknown>>;

interface CommandDef<O extends { readonly logFormat: LogFormat }> {
  name: CommandName;
  description: string;
  parse: (flags: Flags, env: Env) => O;
  /** What parsed of options that did not all parse. */
  partial: (err: OptionsError) => Partial<O>;
  handler: (ctx: CommandContext<O>) => Promise<number>;
  /** Called before options that did not parse are reported as an error (the run still publishes its metrics). */
  onBadOptions?: (ctx: CommandContext<Partial<O>>, err: OptionsError) => Promise<void>;
}

const STATUS: CommandDef<StatusOptions> = {
  name: "status",
  description: "show every etcd member: sizes, fragmentation, leader, raft indexes, alarms",
  parse: (flags, env) => parseOptions("status", flags, env),
  partial: (err) => err.partial("status"),
  // Each command's code is loaded when it runs (a chunk of its own in the bundle): `version` and
  // --help parse none of it.
  handler: async (ctx) => (await import("./cli/status.js")).statusCommand(ctx),
};

const RUN: CommandDef<RunCliOptions> = {
  name: "run",
  description: "defragment the members that need it, one at a time, leader last",
  parse: (flags, env) => parseOptions("run", flags, env),
  partial: (err) => err.partial("run"),
  handler: async (ctx) => (await import("./cli/run.js")).runCommand(ctx),
  onBadOptions: async (ctx, err) => (await import("./cli/run.js")).runBadOptions(ctx, err),
};

export async function main(argv: readonly string[], env: Env, io: MainIO): Promise<number> {
  let result: Promise<number> | undefined;
  const program = new Command("talos-etcd-defrag")
    .description("Safe etcd defragmentation for Talos Linux control planes, through the Talos API")
    .exitOverride()
    .configureOutput({
      writeOut: (s) => io.stdout.write(s),
      writeErr: (s) => io.stderr.write(s),
    })
    .showHelpAfterError("(run with --help for usage)")
    // talosctl's habit; prints what the version command prints.
    .version(`talos-etcd-defrag ${pkg.version}`, "--version", "print the version")
    .addHelpText("after", ENVIRONMENT_HELP);

  program
    .command("version")
    .description("print the version")
    .action(() => {
      io.stdout.write(`talos-etcd-defrag ${pkg.version}\n`);
      result = Promise.resolve(EXIT.ok);
    });

  // For the image's build: loads every command's code and exits, so that Node's compile cache
  // (NODE_COMPILE_CACHE) holds all of it. Not in --help: nothing for a person to do with it.
  program.command("warm-up", { hidden: true }).action(() => {
    result = Promise.all([import("./cli/status.js"), import("./cli/run.js")]).then(() => EXIT.ok);
  });

  // One call per command: each keeps its own options type.
  const register = <O extends { readonly logFormat: LogFormat }>(def: CommandDef<O>): void => {
    const cmd = addOptions(program.command(def.name).description(def.description), def.name);
    cmd.action((parsed: Flags) => {
      result = execute(def, parsed, env, io);
    });
  };
  register(STATUS);
  register(RUN);

  try {
    await program.parseAsync(optionsAfterCommand(argv, [STATUS.name, RUN.name]), { from: "user" });
  } catch (err) {
    if (err instanceof CommanderError) {
      return exitCodeForCommandLine(err.exitCode === 0);
    }
    throw err;
  }
  if (result === undefined) {
    program.outputHelp();
    return exitCodeForCommandLine(false);
  }
  return result;
}

function parseFor<O extends { readonly logFormat: LogFormat }>(
  def: CommandDef<O>,
  parsed: Flags,
  env: Env,
): { ok: true; options: O } | { ok: false; error: OptionsError; partial: Partial<O> } {
  try {
    return { ok: true, options: def.parse(parsed, env) };
  } catch (err) {
    if (!(err instanceof OptionsError)) throw err;
    return { ok: false, error: err, partial: def.partial(err) };
  }
}

async function execute<O extends { readonly logFormat: LogFormat }>(
  def: CommandDef<O>,
  parsed: Flags,
  env: Env,
  io: MainIO,
): Promise<number> {
  const parsedOptions = parseFor(def, parsed, env);
  // Options that did not all parse still decide the log format of their error, if that one parsed.
  const known: Partial<O> = parsedOptions.ok ? parsedOptions.options : parsedOptions.partial;
  const logFormat: LogFormat = known.logFormat === "json" ? "json" : "text";
  const logger = createLogger({ format: logFormat, sink: io.stderr, runId: randomUUID() });
  for (const warning of unknownVariables(env)) logger.warn(warning);
  const base = {
    env,
    stdout: io.stdout,
    stderr: io.stderr,
    liveProgress: io.interactive === true && logFormat === "text",
    logger,
    logFormat,
    signal: io.signal,
    now: io.now ?? (() => new Date()),
  };
  try {
    if (!parsedOptions.ok) {
      await def.onBadOptions?.({ ...base, options: parsedOptions.partial }, parsedOptions.error);
      throw parsedOptions.error;
    }
    return await def.handler({ ...base, options: parsedOptions.options });
  } catch (err) {
    const e = DefragError.from(err);
    const fields = {
      kind: e.kind,
      ...(e.node ? { node: e.node } : {}),
      ...(e.endpoint ? { endpoint: e.endpoint } : {}),
    };
    logger.error(e.describe(), fields);
    if (e.kind === "internal" && e.cause instanceof Error && e.cause.stack) logger.debug(e.cause.stack);
    return exitCodeFor(e.kind);
  }
}

/** True when this file is the program (also through the npm bin symlink), not a module imported by tests. */
function isEntryPoint(): boolean {
  const script = process.argv[1];
  if (script === undefined) return false;
  try {
    return realpathSync(script) === fileURLToPath(import.meta.url);
  } catch {
    return false;
  }
}

if (isEntryPoint()) {
  const controller = new AbortController();
  let signals = 0;
  const onSignal = (sig: NodeJS.Signals): void => {
    signals += 1;
    if (signals > 1) process.exit(sig === "SIGINT" ? 130 : 143);
    controller.abort(new DefragError("aborted", `received ${sig}`));
  };
  process.on("SIGTERM", onSignal);
  process.on("SIGINT", onSignal);
  main(process.argv.slice(2), process.env, {
    stdout: process.stdout,
    stderr: process.stderr,
    signal: controller.signal,
    interactive: process.stderr.isTTY && process.env.CI === undefined,
  })
    .then((code) => {
      process.exitCode = code;
    })
    .catch((err: unknown) => {
      // The one top-level catch: whatever escaped main() is ours, and says so.
      const e = DefragError.from(err);
      const stack = err instanceof Error && err.stack !== undefined ? `\n${err.stack}` : "";
      process.stderr.write(`${e.describe()}${stack}\n`);
      process.exitCode = exitCodeFor(e.kind);
    });
}
