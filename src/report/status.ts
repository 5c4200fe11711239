// `status` output: a table for people, JSON for programs (stdout).

import { judgeEtcdVersion } from "../core/etcd-versions.js";
import { formatBytes, formatMemberId } from "../core/units.js";
import {
  fragmentation,
  freeBytes,
  isLeader,
  membersNotRead,
  type ClusterView,
  type NodeView,
} from "../core/model.js";
import { DefragError } from "../core/errors.js";
import { startupDefragCell, startupDefragReport, type StartupDefragReport } from "../core/member-config.js";
import type { MemberConfigs, MemberQuota } from "../core/quota.js";

/** What `status` knows of one member's configuration: its quota, its start-up defragment. */
interface ConfigView {
  quota: MemberQuota | undefined;
  /** The configuration was read but its quota does not parse. */
  invalid: DefragError | undefined;
  startupDefrag: StartupDefragReport | undefined;
}

function configView(configs: MemberConfigs | undefined, n: NodeView): ConfigView {
  const config = configs?.byNode.get(n.node);
  const read = config !== undefined && !(config instanceof DefragError) ? config : undefined;
  return {
    quota:
      config instanceof DefragError && config.kind === "config"
        ? undefined
        : configs?.quotas.byNode.get(n.node),
    invalid: config instanceof DefragError && config.kind === "config" ? config : undefined,
    startupDefrag:
      read !== undefined && read.flagsUnknown !== true && n.ok
        ? startupDefragReport(read.startupDefrag, n.status.protocolVersion, n.node, configs?.where ?? "")
        : undefined,
  };
}

/**
 * The warnings about members' configurations, for the log and the JSON: the one about
 * configurations that could not be read, quotas that do not parse, start-up defragment spellings.
 */
export function configWarnings(view: ClusterView, configs: MemberConfigs | undefined): string[] {
  if (configs === undefined) return [];
  const out: string[] = [];
  if (configs.quotas.warning !== undefined) out.push(configs.quotas.warning);
  for (const r of configs.quotas.refusals) out.push(r.message);
  for (const n of view.nodes) out.push(...(configView(configs, n).startupDefrag?.warnings ?? []));
  return out;
}

export function statusJson(view: ClusterView, configs?: MemberConfigs): object {
  return {
    members: view.nodes.map((n) => nodeJson(view, n, configView(configs, n))),
    alarms: view.alarms.map((a) => ({ memberId: formatMemberId(a.memberId), alarm: a.alarm })),
    // Members of the member list without a row (e.g. not among --nodes): never fewer rows silently.
    membersNotShown: membersNotRead(view).map((m) => ({
      memberId: formatMemberId(m.id),
      name: m.name,
      ...(m.node !== undefined ? { node: m.node } : {}),
      isLearner: m.isLearner,
    })),
    warnings: [...view.warnings, ...configWarnings(view, configs)],
  };
}

/** A member that did not answer is still in the member list: its id from there. */
function listedId(view: ClusterView, node: string): string | undefined {
  const m = view.members?.find((x) => x.node === node);
  return m === undefined ? undefined : formatMemberId(m.id);
}

function nodeJson(view: ClusterView, n: NodeView, config: ConfigView): object {
  if (!n.ok) {
    const memberId = listedId(view, n.node);
    return {
      node: n.node,
      ...(memberId === undefined ? {} : { memberId }),
      name: n.name,
      error: n.error.describe(),
      errorKind: n.error.kind,
    };
  }
  const s = n.status;
  return {
    node: n.node,
    memberId: formatMemberId(s.memberId),
    name: n.name,
    dbSize: s.dbSize,
    dbSizeInUse: s.dbSizeInUse,
    dbSizeFree: freeBytes(s),
    fragmentation: Number(fragmentation(s).toFixed(4)),
    isLeader: isLeader(s),
    leaderId: formatMemberId(s.leaderId),
    isLearner: s.isLearner,
    raftTerm: Number(s.raftTerm),
    raftIndex: Number(s.raftIndex),
    raftAppliedIndex: Number(s.raftAppliedIndex),
    protocolVersion: s.protocolVersion,
    storageVersion: s.storageVersion,
    // The etcd server's version (protocol_version), and whether it has the snapshot/defragment bug.
    etcdVersion: s.protocolVersion,
    etcdVersionStatus: judgeEtcdVersion(s.protocolVersion).kind,
    ...(config.quota !== undefined
      ? {
          quotaBytes: config.quota.bytes,
          quotaSource: config.quota.source,
          quotaUsage: Number((s.dbSize / config.quota.bytes).toFixed(4)),
        }
      : {}),
    ...(config.invalid !== undefined ? { quotaError: config.invalid.message } : {}),
    ...(config.startupDefrag !== undefined
      ? {
          startupDefrag: {
            configured: config.startupDefrag.configured,
            ...(config.startupDefrag.thresholdMegabytes !== undefined
              ? { thresholdMegabytes: config.startupDefrag.thresholdMegabytes }
              : {}),
            ...(config.startupDefrag.flag !== undefined ? { flag: config.startupDefrag.flag } : {}),
          },
        }
      : {}),
    alarms: n.alarms,
    errors: s.errors,
  };
}

const HEADERS = [
  "NODE",
  "MEMBER",
  "NAME",
  "DB SIZE",
  "IN USE",
  "FREE",
  "FRAG",
  "LEADER",
  "RAFT TERM",
  "RAFT INDEX",
  "APPLIED",
  "LEARNER",
  "ETCD",
  "QUOTA",
  "STARTUP DEFRAG",
  "ALARMS",
  "ERRORS",
];

/** The quota cell: its size and how full, marked when it is etcd's default rather than read. */
function quotaCell(config: ConfigView, dbSize: number): string {
  if (config.invalid !== undefined) return "invalid";
  const q = config.quota;
  if (q === undefined) return "-";
  const mark = q.source === "fallback" ? " (assumed)" : q.source === "default" ? " (default)" : "";
  return `${formatBytes(q.bytes)} ${((dbSize / q.bytes) * 100).toFixed(0)}%${mark}`;
}

export function statusTable(view: ClusterView, configs?: MemberConfigs): string {
  const rows = view.nodes.map((n): string[] => {
    if (!n.ok) return [n.node, listedId(view, n.node) ?? "-", n.name || "-", "error:", n.error.describe()];
    const s = n.status;
    return [
      n.node,
      formatMemberId(s.memberId),
      n.name || "-",
      formatBytes(s.dbSize),
      formatBytes(s.dbSizeInUse),
      formatBytes(freeBytes(s)),
      `${(fragmentation(s) * 100).toFixed(0)}%`,
      isLeader(s) ? "*" : "",
      s.raftTerm.toString(),
      s.raftIndex.toString(),
      s.raftAppliedIndex.toString(),
      s.isLearner ? "yes" : "no",
      etcdCell(s.protocolVersion),
      quotaCell(configView(configs, n), s.dbSize),
      (() => {
        const r = configView(configs, n).startupDefrag;
        return r === undefined ? "-" : startupDefragCell(r);
      })(),
      n.alarms.join(",") || "-",
      s.errors.join(", ") || "-",
    ];
  });
  return renderTable(HEADERS, rows);
}

/** The version, marked when it has the snapshot/defragment bug or cannot be judged. */
function etcdCell(version: string): string {
  const kind = judgeEtcdVersion(version).kind;
  if (kind === "fixed") return version;
  return `${version || "?"} (${kind})`;
}

/** Left-aligned columns; a short row's last cell may run past the columns (error rows). */
export function renderTable(headers: string[], rows: string[][]): string {
  const widths = headers.map((h, i) =>
    Math.max(h.length, ...rows.filter((r) => r.length === headers.length).map((r) => (r[i] ?? "").length)),
  );
  const line = (cells: string[]): string =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i] ?? c.length)))
      .join("  ")
      .trimEnd();
  return [line(headers), ...rows.map(line)].join("\n") + "\n";
}
