// The one option table: every flag, its environment variable, default and help.
// Commands, --help and the README are derived from it.

export type CommandName = "status" | "run";

export interface OptionSpec {
  /** Property name in the parsed options. */
  name: string;
  /** Commander flag syntax. */
  flag: string;
  env?: string;
  default?: string;
  help: string;
  commands: readonly CommandName[];
  choices?: readonly string[];
}

const ALL: readonly CommandName[] = ["status", "run"];

export const OPTIONS: readonly OptionSpec[] = [
  {
    name: "talosconfig",
    flag: "--talosconfig <path>",
    env: "TALOSCONFIG",
    help: "talosconfig file (else ~/.talos/config, then /var/run/secrets/talos.dev/config)",
    commands: ALL,
  },
  {
    name: "context",
    flag: "--context <name>",
    env: "TALOS_CONTEXT",
    help: "context of the talosconfig (default: its current context)",
    commands: ALL,
  },
  {
    name: "endpoints",
    flag: "--endpoints <list>",
    env: "TALOS_ENDPOINTS",
    help: "Talos API endpoints, comma separated (default: the context's)",
    commands: ALL,
  },
  {
    name: "nodes",
    flag: "--nodes <list>",
    env: "TALOS_NODES",
    help: "control-plane nodes, comma separated (default: the context's, else discovered from the etcd member list)",
    commands: ALL,
  },
  {
    name: "callTimeout",
    flag: "--call-timeout <duration>",
    env: "TALOS_ETCD_DEFRAG_CALL_TIMEOUT",
    default: "30s",
    help: "deadline of every Talos API call except the defragment itself",
    commands: ALL,
  },
  {
    name: "logFormat",
    flag: "--log-format <format>",
    env: "TALOS_ETCD_DEFRAG_LOG_FORMAT",
    default: "text",
    choices: ["text", "json"],
    help: "log format on stderr",
    commands: ALL,
  },
  {
    name: "output",
    flag: "--output <format>",
    env: "TALOS_ETCD_DEFRAG_OUTPUT",
    default: "table",
    choices: ["table", "json"],
    help: "result format on stdout",
    commands: ["status"],
  },
];

export function optionsFor(command: CommandName): OptionSpec[] {
  return OPTIONS.filter((o) => o.commands.includes(command));
}

export type Env = Readonly<Record<string, string | undefined>>;

/** flag > environment > default, as strings; undefined when none is set. */
export function resolveOptions(
  command: CommandName,
  parsed: Readonly<Record<string, unknown>>,
  env: Env,
): Record<string, string | undefined> {
  const out: Record<string, string | undefined> = {};
  for (const spec of optionsFor(command)) {
    const fromFlag = parsed[spec.name];
    const fromEnv = spec.env === undefined ? undefined : env[spec.env];
    out[spec.name] =
      typeof fromFlag === "string"
        ? fromFlag
        : fromEnv !== undefined && fromEnv !== ""
          ? fromEnv
          : spec.default;
  }
  return out;
}
