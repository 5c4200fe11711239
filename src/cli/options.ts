// The one option table: every flag, its environment variable, default and help.
// Commands, --help and the README are derived from it.

import { DEFAULT_RULE } from "../core/rule.js";

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
  /** A flag without a value; its environment variable takes true/false. */
  boolean?: boolean;
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
  {
    name: "output",
    flag: "--output <format>",
    env: "TALOS_ETCD_DEFRAG_OUTPUT",
    default: "text",
    choices: ["text", "json"],
    help: "format of the final summary on stdout",
    commands: ["run"],
  },
  {
    name: "dryRun",
    flag: "--dry-run",
    env: "TALOS_ETCD_DEFRAG_DRY_RUN",
    boolean: true,
    help: "compute and print the plan; change nothing",
    commands: ["run"],
  },
  {
    name: "rule",
    flag: "--rule <expr>",
    env: "TALOS_ETCD_DEFRAG_RULE",
    default: DEFAULT_RULE,
    help: "CEL expression deciding per member, on fresh numbers, whether to defragment it ('true' = every member)",
    commands: ["run"],
  },
  {
    name: "quotaBytes",
    flag: "--quota-bytes <size>",
    env: "TALOS_ETCD_DEFRAG_QUOTA_BYTES",
    default: "2GiB",
    help: "etcd's --quota-backend-bytes on the cluster (Talos leaves etcd's 2 GiB default); e.g. 4GiB or 4294967296",
    commands: ["run"],
  },
  {
    name: "timeout",
    flag: "--timeout <duration>",
    env: "TALOS_ETCD_DEFRAG_TIMEOUT",
    default: "15m",
    help: "the longest one member's defragment call may take",
    commands: ["run"],
  },
  {
    name: "maxWait",
    flag: "--max-wait <duration>",
    env: "TALOS_ETCD_DEFRAG_MAX_WAIT",
    default: "15m",
    help: "after a defragment call that did not succeed, how long to wait for proof that the member finished before failing the run",
    commands: ["run"],
  },
  {
    name: "moveLeader",
    flag: "--move-leader <mode>",
    env: "TALOS_ETCD_DEFRAG_MOVE_LEADER",
    default: "auto",
    choices: ["auto", "always", "never"],
    help: "forfeit leadership before defragmenting the leader (auto: when the role allows it, os:admin)",
    commands: ["run"],
  },
  {
    name: "allowDowntime",
    flag: "--allow-downtime",
    env: "TALOS_ETCD_DEFRAG_ALLOW_DOWNTIME",
    boolean: true,
    help: "allow a cluster of fewer than 3 voting members, where blocking one member stops writes",
    commands: ["run"],
  },
  {
    name: "pause",
    flag: "--pause <duration>",
    env: "TALOS_ETCD_DEFRAG_PAUSE",
    default: "10s",
    help: "settle time after a member is healthy again, before the next one",
    commands: ["run"],
  },
  {
    name: "healthTimeout",
    flag: "--health-timeout <duration>",
    env: "TALOS_ETCD_DEFRAG_HEALTH_TIMEOUT",
    default: "5m",
    help: "how long a member may take to be healthy again (answers, caught up, leader known) after its defrag",
    commands: ["run"],
  },
  {
    name: "shutdownGrace",
    flag: "--shutdown-grace <duration>",
    env: "TALOS_ETCD_DEFRAG_SHUTDOWN_GRACE",
    default: "25s",
    help: "on SIGTERM, how long to wait for the member being defragmented before reporting",
    commands: ["run"],
  },
  {
    name: "pushgatewayUrl",
    flag: "--pushgateway-url <url>",
    env: "TALOS_ETCD_DEFRAG_PUSHGATEWAY_URL",
    help: "push the run's metrics to this Prometheus Pushgateway (job etcd-defrag), also after a failed run",
    commands: ["run"],
  },
  {
    name: "metricsFile",
    flag: "--metrics-file <path>",
    env: "TALOS_ETCD_DEFRAG_METRICS_FILE",
    help: "write the run's metrics to this file in the Prometheus text format (textfile collector)",
    commands: ["run"],
  },
  {
    name: "clusterName",
    flag: "--cluster-name <name>",
    env: "TALOS_ETCD_DEFRAG_CLUSTER_NAME",
    help: "the cluster label of the metrics (default: the talosconfig context's name)",
    commands: ["run"],
  },
  {
    name: "heartbeat",
    flag: "--heartbeat <duration>",
    env: "TALOS_ETCD_DEFRAG_HEARTBEAT",
    default: "30s",
    help: "interval of the progress line logged while a member defragments",
    commands: ["run"],
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
    const raw = parsed[spec.name];
    const fromFlag = typeof raw === "boolean" ? String(raw) : raw;
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
