// The one option table: every flag, its environment variable, default, help, type and parser.
// Commander's options (argv, --help, usage errors), the typed options of each command and the
// README's options table (scripts/options-table.ts; test/unit/options.test.ts keeps it equal) are
// all derived from it.

import { Option, type Command } from "commander";

import { splitList } from "../config/endpoints.js";
import { DefragError, configError } from "../core/errors.js";
import { DEFAULT_RULE, compileRule, type Rule } from "../core/rule.js";
import { parseBytes, parseDuration } from "../core/units.js";

export type CommandName = "status" | "run";

export type Env = Readonly<Record<string, string | undefined>>;

export type OptionKind = "string" | "list" | "duration" | "size" | "boolean" | "choice" | "url" | "rule";

/** How the text of a flag or environment variable becomes a value. */
export interface OptionType<T> {
  readonly kind: OptionKind;
  readonly choices?: readonly string[];
  /** `source` is where the text came from (a flag or an environment variable), for the message. Throws a config error. */
  readonly parse: (text: string, source: string) => T;
}

export interface OptionSpec<
  K extends string = string,
  C extends readonly CommandName[] = readonly CommandName[],
  V = unknown,
> {
  /** Property name in the parsed options. */
  readonly key: K;
  /** Commander flag syntax: "--name <arg>", or "--name" for a boolean. */
  readonly flag: string;
  readonly env: string;
  /** Parsed like user input when neither the flag nor the environment variable is set. */
  readonly default?: string;
  /** The default in words, where the value alone does not say it: no value, or a long one (the README shows this). */
  readonly defaultHelp?: string;
  readonly help: string;
  readonly commands: C;
  readonly type: OptionType<V>;
}

interface SpecInput<K extends string, C extends readonly CommandName[], T> {
  key: K;
  flag: string;
  env: string;
  default?: string;
  defaultHelp?: string;
  help: string;
  commands: C;
  type: OptionType<T>;
}

// With a default the value is always there; without one it is undefined when nothing sets it.
function option<const K extends string, const C extends readonly CommandName[], T>(
  spec: SpecInput<K, C, T> & { default: string },
): OptionSpec<K, C, T>;
function option<const K extends string, const C extends readonly CommandName[], T>(
  spec: SpecInput<K, C, T>,
): OptionSpec<K, C, T | undefined>;
function option<const K extends string, const C extends readonly CommandName[], T>(
  spec: SpecInput<K, C, T>,
): OptionSpec<K, C, T | undefined> {
  return spec;
}

// ---- Types

/** Free text; empty counts as unset. */
const text: OptionType<string | undefined> = {
  kind: "string",
  parse: (value) => (value === "" ? undefined : value),
};

/** Comma or space separated; an empty list counts as unset. Items are checked where they are used. */
const list: OptionType<readonly string[] | undefined> = {
  kind: "list",
  parse: (value) => {
    const items = splitList(value);
    return items.length === 0 ? undefined : items;
  },
};

/** Milliseconds, from Go-style durations. */
function duration(opts: { allowZero?: boolean } = {}): OptionType<number> {
  const allowZero = opts.allowZero === true;
  return {
    kind: "duration",
    parse: (value, source) => {
      const ms = parseDuration(value);
      if (ms === undefined || ms < 0 || (ms === 0 && !allowZero)) {
        throw configError(
          `${source} "${value}" is not a ${allowZero ? "duration" : "positive duration"}`,
          "use e.g. 30s, 5m or 1h30m",
        );
      }
      return ms;
    },
  };
}

/** Bytes, from a number or a size with a unit. */
const size: OptionType<number> = {
  kind: "size",
  parse: (value, source) => {
    const bytes = parseBytes(value);
    if (bytes === undefined || bytes <= 0) {
      throw configError(
        `${source} "${value}" is not a size`,
        "use bytes or a unit, e.g. 2147483648, 2GiB or 4GB",
      );
    }
    return bytes;
  },
};

/** A flag without a value; its environment variable takes true/false, 1/0 or yes/no. */
const boolean: OptionType<boolean> = {
  kind: "boolean",
  parse: (value, source) => {
    const lower = value.toLowerCase();
    if (["true", "1", "yes"].includes(lower)) return true;
    if (["false", "0", "no"].includes(lower)) return false;
    throw configError(`${source} "${value}" is not true or false`, "use true/false, 1/0 or yes/no");
  },
};

function choice<const V extends string>(choices: readonly V[]): OptionType<V> {
  return {
    kind: "choice",
    choices,
    parse: (value, source) => {
      const found = choices.find((c) => c === value);
      if (found === undefined) {
        throw configError(
          `${source} "${value}" is not one of ${choices.join(", ")}`,
          `set ${source} to one of them`,
        );
      }
      return found;
    },
  };
}

/** An http(s) URL; empty counts as unset. */
function url(example: string): OptionType<string | undefined> {
  return {
    kind: "url",
    parse: (value, source) => {
      if (value === "") return undefined;
      let parsed: URL | undefined;
      try {
        parsed = new URL(value);
      } catch {
        parsed = undefined;
      }
      if (parsed === undefined || !["http:", "https:"].includes(parsed.protocol)) {
        throw configError(`${source} "${value}" is not an http(s) URL`, `e.g. ${example}`);
      }
      return value;
    },
  };
}

/** A CEL rule, compiled and type-checked now so that a bad one is a usage error before any call. */
const rule: OptionType<Rule> = { kind: "rule", parse: (value) => compileRule(value) };

// ---- The table

const ALL = ["status", "run"] as const;

const TABLE = [
  option({
    key: "talosconfig",
    flag: "--talosconfig <path>",
    env: "TALOSCONFIG",
    defaultHelp: "~/.talos/config, then /var/run/secrets/talos.dev/config",
    help: "talosconfig file",
    commands: ALL,
    type: text,
  }),
  option({
    key: "context",
    flag: "--context <name>",
    env: "TALOS_CONTEXT",
    defaultHelp: "the talosconfig's current context",
    help: "context of the talosconfig",
    commands: ALL,
    type: text,
  }),
  option({
    key: "endpoints",
    flag: "--endpoints <list>",
    env: "TALOS_ENDPOINTS",
    defaultHelp: "the context's",
    help: "Talos API endpoints, comma separated (IPv4, IPv6, names, host:port)",
    commands: ALL,
    type: list,
  }),
  option({
    key: "nodes",
    flag: "--nodes <list>",
    env: "TALOS_NODES",
    defaultHelp: "the context's, else discovered",
    help: "control-plane nodes, comma separated; without them, the etcd member list's peer-URL hosts",
    commands: ALL,
    type: list,
  }),
  option({
    key: "callTimeoutMs",
    flag: "--call-timeout <duration>",
    env: "TALOS_ETCD_DEFRAG_CALL_TIMEOUT",
    default: "30s",
    help: "deadline of every Talos API call except the defragment itself",
    commands: ALL,
    type: duration(),
  }),
  option({
    key: "logFormat",
    flag: "--log-format <format>",
    env: "TALOS_ETCD_DEFRAG_LOG_FORMAT",
    default: "text",
    help: "log format on stderr",
    commands: ALL,
    type: choice(["text", "json"]),
  }),
  option({
    key: "output",
    flag: "--output <format>",
    env: "TALOS_ETCD_DEFRAG_OUTPUT",
    default: "table",
    help: "result format on stdout",
    commands: ["status"],
    type: choice(["table", "json"]),
  }),
  option({
    key: "output",
    flag: "--output <format>",
    env: "TALOS_ETCD_DEFRAG_OUTPUT",
    default: "text",
    help: "format of the final summary on stdout",
    commands: ["run"],
    type: choice(["text", "json"]),
  }),
  option({
    key: "dryRun",
    flag: "--dry-run",
    env: "TALOS_ETCD_DEFRAG_DRY_RUN",
    default: "false",
    help: "compute and print the plan; change nothing",
    commands: ["run"],
    type: boolean,
  }),
  option({
    key: "rule",
    flag: "--rule <expr>",
    env: "TALOS_ETCD_DEFRAG_RULE",
    default: DEFAULT_RULE,
    defaultHelp: "see The rule, below",
    help: "CEL expression deciding per member, on fresh numbers, whether to defragment it ('true' = every member)",
    commands: ["run"],
    type: rule,
  }),
  option({
    key: "quotaBytes",
    flag: "--quota-bytes <size>",
    env: "TALOS_ETCD_DEFRAG_QUOTA_BYTES",
    default: "2GiB",
    help: "etcd's --quota-backend-bytes on the cluster (Talos leaves etcd's 2 GiB default); e.g. 4GiB or 4294967296",
    commands: ["run"],
    type: size,
  }),
  option({
    key: "timeoutMs",
    flag: "--timeout <duration>",
    env: "TALOS_ETCD_DEFRAG_TIMEOUT",
    default: "15m",
    help: "the longest one member's defragment call may take",
    commands: ["run"],
    type: duration(),
  }),
  option({
    key: "maxWaitMs",
    flag: "--max-wait <duration>",
    env: "TALOS_ETCD_DEFRAG_MAX_WAIT",
    default: "15m",
    help: "after a defragment call that did not succeed, how long to wait for proof that the member finished before failing the run",
    commands: ["run"],
    type: duration(),
  }),
  option({
    key: "moveLeader",
    flag: "--move-leader <mode>",
    env: "TALOS_ETCD_DEFRAG_MOVE_LEADER",
    default: "auto",
    help: "forfeit leadership before defragmenting the leader (auto: when the role allows it, os:admin)",
    commands: ["run"],
    type: choice(["auto", "always", "never"]),
  }),
  option({
    key: "allowDowntime",
    flag: "--allow-downtime",
    env: "TALOS_ETCD_DEFRAG_ALLOW_DOWNTIME",
    default: "false",
    help: "allow a cluster of fewer than 3 voting members, where blocking one member stops writes",
    commands: ["run"],
    type: boolean,
  }),
  option({
    key: "pauseMs",
    flag: "--pause <duration>",
    env: "TALOS_ETCD_DEFRAG_PAUSE",
    default: "10s",
    help: "settle time after a member is healthy again, before the next one",
    commands: ["run"],
    type: duration({ allowZero: true }),
  }),
  option({
    key: "healthTimeoutMs",
    flag: "--health-timeout <duration>",
    env: "TALOS_ETCD_DEFRAG_HEALTH_TIMEOUT",
    default: "5m",
    help: "how long a member may take to be healthy again (answers, caught up, leader known) after its defrag",
    commands: ["run"],
    type: duration(),
  }),
  option({
    key: "shutdownGraceMs",
    flag: "--shutdown-grace <duration>",
    env: "TALOS_ETCD_DEFRAG_SHUTDOWN_GRACE",
    default: "25s",
    help: "on SIGTERM, how long to wait for the member being defragmented before reporting",
    commands: ["run"],
    type: duration(),
  }),
  option({
    key: "pushgatewayUrl",
    flag: "--pushgateway-url <url>",
    env: "TALOS_ETCD_DEFRAG_PUSHGATEWAY_URL",
    defaultHelp: "none",
    help: "push the run's metrics to this Prometheus Pushgateway (job etcd-defrag), also after a failed run",
    commands: ["run"],
    type: url("http://pushgateway.monitoring:9091"),
  }),
  option({
    key: "metricsFile",
    flag: "--metrics-file <path>",
    env: "TALOS_ETCD_DEFRAG_METRICS_FILE",
    defaultHelp: "none",
    help: "write the run's metrics to this file in the Prometheus text format (textfile collector)",
    commands: ["run"],
    type: text,
  }),
  option({
    key: "clusterName",
    flag: "--cluster-name <name>",
    env: "TALOS_ETCD_DEFRAG_CLUSTER_NAME",
    defaultHelp: "the talosconfig context's name",
    help: "the cluster label of the metrics",
    commands: ["run"],
    type: text,
  }),
  option({
    key: "heartbeatMs",
    flag: "--heartbeat <duration>",
    env: "TALOS_ETCD_DEFRAG_HEARTBEAT",
    default: "30s",
    help: "interval of the progress line logged while a member defragments",
    commands: ["run"],
    type: duration(),
  }),
] as const;

/** The table, for code that walks it (help, README); the types below read TABLE's precise entries. */
export const OPTIONS: readonly OptionSpec[] = TABLE;

type TableSpec = (typeof TABLE)[number];
type ValueOf<S> = S extends OptionSpec<string, readonly CommandName[], infer V> ? V : never;

/** The typed options of one command, derived from the table. */
export type OptionsFor<C extends CommandName> = {
  readonly [S in TableSpec as C extends S["commands"][number] ? S["key"] : never]: ValueOf<S>;
};

export type StatusOptions = OptionsFor<"status">;
export type RunCliOptions = OptionsFor<"run">;

export function optionsFor(command: CommandName): OptionSpec[] {
  return OPTIONS.filter((o) => o.commands.includes(command));
}

/** "--call-timeout <duration>" -> "--call-timeout". */
export function longFlag(spec: Pick<OptionSpec, "flag">): string {
  return spec.flag.split(" ")[0] ?? spec.flag;
}

/** The --help line: the help, then the environment variable and the default. */
export function helpText(spec: OptionSpec): string {
  const shownDefault = spec.type.kind === "boolean" ? undefined : (spec.default ?? spec.defaultHelp);
  const extras = [`env ${spec.env}`, ...(shownDefault === undefined ? [] : [`default ${shownDefault}`])];
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
  return cmd;
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
  const fromEnv = env[spec.env];
  if (fromEnv !== undefined && fromEnv !== "") return { text: fromEnv, source: spec.env };
  if (spec.default !== undefined) return { text: spec.default, source: `the default of ${longFlag(spec)}` };
  return undefined;
}
