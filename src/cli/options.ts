// The one option table: every flag, its environment variable, default, help, type and parser.
// Commander's options (argv, --help, usage errors), the typed options of each command and the
// README's options table (scripts/options-table.ts; test/unit/options.test.ts keeps it equal) are
// all derived from it. The kinds and parsers are in option-types.ts, the parsing in parse-options.ts.

import { DEFAULT_RULE } from "../core/rule.js";
import {
  boolean,
  choice,
  count,
  duration,
  leaseName,
  list,
  option,
  ratio,
  rule,
  size,
  text,
  url,
  type CommandName,
  type OptionSpec,
} from "./option-types.js";

const ALL = ["status", "run"] as const;

/** After the options in --help: the credentials that need no talosconfig file (config/config.ts reads them). */
export const ENVIRONMENT_HELP = `
Credentials without a talosconfig file (as a Kubernetes Secret provides them):
  TALOS_CA, TALOS_CRT, TALOS_KEY   the CA, client certificate and key: base64 of the PEM, exactly as
                                   in a talosconfig (raw PEM is accepted too); all three or none
  TALOS_ENDPOINTS                  the Talos API endpoints they are used with (or --endpoints)
When they are set no file is read; an explicit --talosconfig wins over them.`;

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
    flag: "-e, --endpoints <list>",
    env: "TALOS_ENDPOINTS",
    defaultHelp: "the context's",
    help: "Talos API endpoints, comma separated (IPv4, IPv6, names, host:port)",
    commands: ALL,
    type: list,
  }),
  option({
    key: "nodes",
    flag: "-n, --nodes <list>",
    env: "TALOS_NODES",
    defaultHelp: "every member of the etcd member list",
    help: "control-plane nodes to read, comma separated; without them, the etcd member list's peer-URL hosts (a context's nodes are not used)",
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
    help: "CEL expression deciding per member, on fresh numbers, whether to defragment it ('true' = every member), or a preset: @default, @fragmentation-alert (etcd's own alert's condition)",
    commands: ["run"],
    type: rule,
  }),
  option({
    key: "quotaBytes",
    flag: "--quota-bytes <size>",
    env: "TALOS_ETCD_DEFRAG_QUOTA_BYTES",
    defaultHelp: "each node's quota-backend-bytes, from its etcd spec",
    help: "every member's etcd quota, instead of the quota-backend-bytes read from each node's etcd spec (unset there: etcd's 2 GiB); e.g. 4GiB or 4294967296",
    commands: ["run"],
    type: size,
  }),
  option({
    key: "snapshotDir",
    flag: "--snapshot-dir <dir>",
    env: "TALOS_ETCD_DEFRAG_SNAPSHOT_DIR",
    help: "before the first defragment, save an etcd snapshot into this directory (mode 0600: it holds every Kubernetes Secret), checked against etcd's sha256; a failed snapshot refuses the run",
    commands: ["run"],
    type: text,
  }),
  option({
    key: "snapshotKeep",
    flag: "--snapshot-keep <count>",
    env: "TALOS_ETCD_DEFRAG_SNAPSHOT_KEEP",
    default: "3",
    help: "how many snapshots to keep in --snapshot-dir (the newest)",
    commands: ["run"],
    type: count,
  }),
  option({
    key: "nospaceDisarmBelow",
    flag: "--nospace-disarm-below <ratio>",
    env: "TALOS_ETCD_DEFRAG_NOSPACE_DISARM_BELOW",
    default: "0.8",
    help: "after the members, disarm NOSPACE only when it is the only alarm and every member is below this share of the quota; 0 never disarms",
    commands: ["run"],
    type: ratio,
  }),
  option({
    key: "affectedEtcd",
    flag: "--affected-etcd <mode>",
    env: "TALOS_ETCD_DEFRAG_AFFECTED_ETCD",
    default: "caught-up",
    help: "a member on an etcd that can corrupt data when a raft snapshot lands during its defragment (before 3.4.38, 3.5.0-3.5.22, 3.6.0-3.6.4): caught-up defragments it only while its applied index equals the leader's; refuse refuses the run (exit 3)",
    commands: ["run"],
    type: choice(["caught-up", "refuse"]),
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
    key: "minIntervalMs",
    flag: "--min-interval <duration>",
    env: "TALOS_ETCD_DEFRAG_MIN_INTERVAL",
    default: "1h",
    help: "skip a member whose etcd log shows a defragment finished less than this long ago, whatever the rule says (a Job retried, a run started by hand right after the schedule); 0 turns it off",
    commands: ["run"],
    type: duration({ allowZero: true }),
  }),
  option({
    key: "electionSettleMs",
    flag: "--election-settle <duration>",
    env: "TALOS_ETCD_DEFRAG_ELECTION_SETTLE",
    default: "30s",
    help: "after a leader election (a new leader or raft term between readings, or one in a member's etcd log), wait until the cluster has been stable this long before starting a member; 0 turns it off",
    commands: ["run"],
    type: duration({ allowZero: true }),
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
  option({
    key: "lease",
    flag: "--lease <namespace/name|auto|none>",
    env: "TALOS_ETCD_DEFRAG_LEASE",
    default: "auto",
    help: "hold this Kubernetes Lease (coordination.k8s.io/v1) for the whole run, so that two runs never overlap; auto: kube-system/etcd-defrag (the chart's) when a Kubernetes API is configured and its control-plane nodes are this etcd's members, else none",
    commands: ["run"],
    type: leaseName,
  }),
  option({
    key: "leaseWaitMs",
    flag: "--lease-wait <duration>",
    env: "TALOS_ETCD_DEFRAG_LEASE_WAIT",
    default: "1m",
    help: "with --lease: how long to wait while another run holds it before exit 3 (longer than the lease's 30s, so a run that died is taken over)",
    commands: ["run"],
    type: duration({ allowZero: true }),
  }),
  option({
    key: "kubeconfig",
    flag: "--kubeconfig <path>",
    env: "KUBECONFIG",
    defaultHelp: "in a pod, its service account; else ~/.kube/config",
    help: "with --lease: the Kubernetes API server and credentials",
    commands: ["run"],
    type: text,
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
