#!/usr/bin/env node
// Entry: parse argv and environment, run one command, set process.exitCode.
// SIGTERM/SIGINT abort the command's signal; a second signal exits at once.

import { randomUUID } from "node:crypto";
import { realpathSync } from "node:fs";
import { fileURLToPath } from "node:url";

import { Command, CommanderError, Option } from "commander";

import pkg from "../package.json" with { type: "json" };
import type { CommandContext } from "./cli/context.js";
import { EXIT, exitCodeFor } from "./cli/exit.js";
import { optionsFor, resolveOptions, type CommandName, type Env } from "./cli/options.js";
import { runCommand } from "./cli/run.js";
import { statusCommand } from "./cli/status.js";
import { DefragError, configError } from "./core/errors.js";
import { createLogger, type LogFormat, type Sink } from "./report/logger.js";

export interface MainIO {
  stdout: Sink;
  stderr: Sink;
  signal: AbortSignal;
  now?: () => Date;
  /** stderr is an interactive terminal. */
  interactive?: boolean;
}

type Handler = (ctx: CommandContext) => Promise<number>;

const COMMANDS: Record<CommandName, { description: string; handler: Handler }> = {
  status: {
    description: "show every etcd member: sizes, fragmentation, leader, raft indexes, alarms",
    handler: statusCommand,
  },
  run: {
    description: "defragment the members that need it, one at a time, leader last",
    handler: runCommand,
  },
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
    .showHelpAfterError("(run with --help for usage)");

  program
    .command("version")
    .description("print the version")
    .action(() => {
      io.stdout.write(`talos-etcd-defrag ${pkg.version}\n`);
      result = Promise.resolve(EXIT.ok);
    });

  for (const name of Object.keys(COMMANDS) as CommandName[]) {
    const { description, handler } = COMMANDS[name];
    const cmd = program.command(name).description(description);
    for (const spec of optionsFor(name)) {
      const extras = [spec.env ? `env ${spec.env}` : "", spec.default ? `default ${spec.default}` : ""]
        .filter((s) => s !== "")
        .join(", ");
      const option = new Option(spec.flag, extras === "" ? spec.help : `${spec.help} [${extras}]`);
      if (spec.choices) option.choices(spec.choices);
      cmd.addOption(option);
    }
    cmd.action((parsed: Record<string, unknown>) => {
      result = execute(name, handler, parsed, env, io);
    });
  }

  try {
    await program.parseAsync(argv, { from: "user" });
  } catch (err) {
    if (err instanceof CommanderError) {
      return err.exitCode === 0 ? EXIT.ok : EXIT.usage;
    }
    throw err;
  }
  if (result === undefined) {
    program.outputHelp();
    return EXIT.usage;
  }
  return result;
}

async function execute(
  name: CommandName,
  handler: Handler,
  parsed: Record<string, unknown>,
  env: Env,
  io: MainIO,
): Promise<number> {
  const options = resolveOptions(name, parsed, env);
  const logFormat: LogFormat = options.logFormat === "json" ? "json" : "text";
  const logger = createLogger({ format: logFormat, sink: io.stderr, runId: randomUUID() });
  try {
    for (const spec of optionsFor(name)) {
      const value = options[spec.name];
      if (spec.choices && value !== undefined && !spec.choices.includes(value)) {
        throw configError(
          `${spec.env ?? spec.flag} "${value}" is not one of ${spec.choices.join(", ")}`,
          `set ${spec.flag.split(" ")[0] ?? spec.flag} to one of them`,
        );
      }
    }
    return await handler({
      options,
      env,
      stdout: io.stdout,
      stderr: io.stderr,
      liveProgress: io.interactive === true && logFormat === "text",
      logger,
      logFormat,
      signal: io.signal,
      now: io.now ?? (() => new Date()),
    });
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
      process.stderr.write(
        `internal error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
      );
      process.exitCode = EXIT.failure;
    });
}
