// `status` output: a table for people, JSON for programs (stdout).

import { judgeEtcdVersion } from "../core/etcd-versions.js";
import { formatBytes, formatMemberId } from "../core/units.js";
import { fragmentation, freeBytes, isLeader, type ClusterView, type NodeView } from "../core/model.js";
import { membersNotRead } from "../run/observe.js";

export function statusJson(view: ClusterView): object {
  return {
    members: view.nodes.map((n) => nodeJson(view, n)),
    alarms: view.alarms.map((a) => ({ memberId: formatMemberId(a.memberId), alarm: a.alarm })),
    // Members of the member list without a row (e.g. not among --nodes): never fewer rows silently.
    membersNotShown: membersNotRead(view).map((m) => ({
      memberId: formatMemberId(m.id),
      name: m.name,
      ...(m.node !== undefined ? { node: m.node } : {}),
      isLearner: m.isLearner,
    })),
    warnings: view.warnings,
  };
}

/** A member that did not answer is still in the member list: its id from there. */
function listedId(view: ClusterView, node: string): string | undefined {
  const m = view.members?.find((x) => x.node === node);
  return m === undefined ? undefined : formatMemberId(m.id);
}

function nodeJson(view: ClusterView, n: NodeView): object {
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
  "ALARMS",
  "ERRORS",
];

export function statusTable(view: ClusterView): string {
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
