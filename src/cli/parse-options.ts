// From argv and the environment to one command's typed options: commander's options and
// --help from the table, then flag > environment > default through each option's parser,
// with every bad option reported at once.

import { Option, type Command } from "commander";

import type { Env } from "../config/config.js";
import { DefragError } from "../core/errors.js";
import type { CommandName, OptionSpec } from "./option-types.js";
import { ENVIRONMENT_HELP, OPTIONS, optionsFor, type OptionsFor } from "./options.js";

/** "--call-timeout <duration>" -> "--call-timeout". */
export function longFlag(spec: Pick<OptionSpec, "flag">): string {
  return spec.flag.split(/[\s,]+/).find((t) => t.startsWith("--")) ?? spec.flag;
}

/** The one-letter flag (talosctl's -n, -e), if the option has one. */
export function shortFlag(spec: Pick<OptionSpec, "flag">): string | undefined {
  return spec.flag.split(/[\s,]+/).find((t) => /^-[A-Za-z]$/.test(t));
}

/**
 * talosctl's habit (`talosctl -n 10.0.0.2 etcd status`): a command's options written before it are
 * moved after it, so `-n 10.0.0.2 status` means `status -n 10.0.0.2`. Only when every token before
 * the command is one of that command's options (with its value); anything else is left as it is, for
 * commander to report.
 */
export function optionsAfterCommand(argv: readonly string[], commands: readonly CommandName[]): string[] {
  const unchanged = [...argv];
  const flagOf = (o: OptionSpec, long: boolean): string | undefined => (long ? longFlag(o) : shortFlag(o));
  const names: { name: string; long: boolean }[] = [];
  let i = 0;
  for (let token = argv[0]; token?.startsWith("-") === true && token !== "--"; token = argv[i]) {
    // "--nodes=a,b" and "-na,b" carry their value; "--nodes a,b" and "-n a,b" take the next token.
    const long = token.startsWith("--");
    const name = long ? (token.split("=")[0] ?? token) : token.slice(0, 2);
    const spec = commands.flatMap((c) => optionsFor(c)).find((o) => flagOf(o, long) === name);
    if (spec === undefined) return unchanged;
    names.push({ name, long });
    const attached = long ? token.includes("=") : token.length > 2;
    i += spec.type.kind !== "boolean" && !attached ? 2 : 1;
  }
  const command = commands.find((c) => c === argv[i]);
  if (names.length === 0 || command === undefined) return unchanged;
  const own = optionsFor(command);
  if (!names.every((n) => own.some((o) => flagOf(o, n.long) === n.name))) return unchanged;
  return [command, ...argv.slice(0, i), ...argv.slice(i + 1)];
}

/** The --help line: the help, then the environment variable and the default. */
export function helpText(spec: OptionSpec): string {
  const shownDefault = spec.type.kind === "boolean" ? undefined : (spec.default ?? spec.defaultHelp);
  const extras = [
    `env ${[spec.env, ...(spec.alsoEnv ?? [])].join(" or ")}`,
    ...(shownDefault === undefined ? [] : [`default ${shownDefault}`]),
  ];
  return `${spec.help} [${extras.join(", ")}]`;
}

/**
 * Adds a command's options to its commander command. No commander defaults: commander only
 * reports what argv set, so that the environment can come between the flag and the default.
 */
export function addOptions(cmd: Command, command: CommandName): Command {
  for (const spec of optionsFor(command)) {
    const opt = new Option(spec.flag, helpText(spec));
    if (spec.type.choices) opt.choices(spec.type.choices);
    cmd.addOption(opt);
  }
  return cmd.addHelpText("after", ENVIRONMENT_HELP);
}

/** Every bad option at once; `partial` keeps the ones that were fine. */
export class OptionsError extends DefragError {
  readonly problems: readonly DefragError[];
  readonly command: CommandName;
  private readonly values: Readonly<Record<string, unknown>>;

  constructor(
    command: CommandName,
    problems: readonly DefragError[],
    values: Readonly<Record<string, unknown>>,
  ) {
    const only = problems.length === 1 ? problems[0] : undefined;
    super(
      "config",
      only?.message ??
        `${problems.length} options are invalid: ${problems.map((p) => p.describe()).join("; ")}`,
      { hint: only?.hint },
    );
    this.problems = problems;
    this.command = command;
    this.values = values;
  }

  /** The options that parsed, for what happens even so: the log format, the metrics of the failed run. */
  partial<C extends CommandName>(command: C): Partial<OptionsFor<C>> {
    // The values were parsed from this command's specs, so they have its types.
    return command === this.command ? (this.values as Partial<OptionsFor<C>>) : {};
  }
}

/**
 * flag > environment > default; an empty environment variable counts as unset. `flags` is what
 * commander parsed (keyed by its attribute names). Throws one OptionsError naming every bad option.
 */
export function parseOptions<C extends CommandName>(
  command: C,
  flags: Readonly<Record<string, unknown>>,
  env: Env,
): OptionsFor<C> {
  const values: Record<string, unknown> = {};
  const problems: DefragError[] = [];
  for (const spec of optionsFor(command)) {
    const input = inputOf(spec, flags, env);
    if (input === undefined) {
      values[spec.key] = undefined;
      continue;
    }
    try {
      values[spec.key] = spec.type.parse(input.text, input.source);
    } catch (err) {
      if (!(err instanceof DefragError)) throw err;
      problems.push(err);
    }
  }
  if (problems.length > 0) throw new OptionsError(command, problems, values);
  // Each value came from its spec's parser, which is what OptionsFor<C> reads its types from.
  return values as OptionsFor<C>;
}

function inputOf(
  spec: OptionSpec,
  flags: Readonly<Record<string, unknown>>,
  env: Env,
): { text: string; source: string } | undefined {
  const raw = flags[new Option(spec.flag).attributeName()];
  // A boolean flag is `true` when given.
  if (typeof raw === "string" || typeof raw === "boolean")
    return { text: String(raw), source: longFlag(spec) };
  for (const name of [spec.env, ...(spec.alsoEnv ?? [])]) {
    const fromEnv = env[name];
    if (fromEnv !== undefined && fromEnv !== "") return { text: fromEnv, source: name };
  }
  if (spec.default !== undefined) return { text: spec.default, source: `the default of ${longFlag(spec)}` };
  return undefined;
}

/** Our environment variables' prefix: a variable with it that no option reads is most likely a typo. */
const OUR_PREFIX = "TALOS_ETCD_DEFRAG_";

/**
 * One warning per environment variable with our prefix that no option reads (a typo in a
 * HelmRelease's `env` would otherwise do nothing), with the closest known name when there is one.
 */
export function unknownVariables(env: Env): string[] {
  const known = [...new Set(OPTIONS.map((o) => o.env).filter((e) => e.startsWith(OUR_PREFIX)))];
  return Object.keys(env)
    .filter((name) => name.startsWith(OUR_PREFIX) && !known.includes(name))
    .sort()
    .map((name) => {
      const closest = known
        .map((k) => ({ k, d: editDistance(name, k) }))
        .sort((a, b) => a.d - b.d)
        .find((c) => c.d <= 3);
      return `${name} is set but no option reads it: it is ignored${closest ? ` (did you mean ${closest.k}?)` : ""}; see --help for the variables`;
    });
}

/** Levenshtein distance, for names a few characters apart. */
function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i += 1) {
    const cur = [i];
    for (let j = 1; j <= b.length; j += 1)
      cur[j] = Math.min(
        (prev[j] ?? 0) + 1,
        (cur[j - 1] ?? 0) + 1,
        (prev[j - 1] ?? 0) + (a[i - 1] === b[j - 1] ? 0 : 1),
      );
    prev = cur;
  }
  return prev[b.length] ?? 0;
}
