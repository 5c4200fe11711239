// Each member's quota, resolved in one place: --quota-bytes for every member when given, else
// the member's own quota-backend-bytes, else etcd's default (2 GiB) when it is not set or its
// configuration could not be read (said once, with what would let it be read). A configuration
// that was read but does not parse is a refusal: nothing may rely on it. Pure.

import { DefragError } from "./errors.js";
import type { GateFailure } from "./gates.js";
import { effectiveQuota, ETCD_DEFAULT_QUOTA_BYTES, type MemberConfig } from "./member-config.js";
import { formatBytes } from "./units.js";

/** Where a member's quota comes from. */
export type QuotaSource = "spec" | "default" | "option" | "fallback";

export interface MemberQuota {
  bytes: number;
  source: QuotaSource;
}

export interface Quotas {
  /** Per node: the quota that applies and where it comes from. */
  byNode: Map<string, MemberQuota>;
  /** Members whose configuration was read but does not parse: the run is refused (gate member-config). */
  refusals: GateFailure[];
  /** The one warning for every member whose configuration could not be read (then etcd's default is assumed). */
  warning?: string;
}

/**
 * The quotas from each node's configuration (or why it could not be read) and --quota-bytes.
 * `unreadableHint` is the backend's words for what lets a configuration be read.
 */
export function resolveQuotas(
  nodes: readonly string[],
  configs: ReadonlyMap<string, MemberConfig | DefragError>,
  override: number | undefined,
  unreadableHint: string,
): Quotas {
  const byNode = new Map<string, MemberQuota>();
  const refusals: GateFailure[] = [];
  const unreadable: [string, DefragError][] = [];
  for (const node of nodes) {
    const config = configs.get(node);
    if (config instanceof DefragError && override === undefined) {
      if (config.kind === "config")
        refusals.push({ gate: "member-config", message: config.describe(), node: config.node ?? node });
      else unreadable.push([node, config]);
    }
    byNode.set(node, quotaOf(config, override));
  }
  const quotas: Quotas = { byNode, refusals };
  if (override === undefined && unreadable.length > 0) {
    const first = unreadable[0]?.[1];
    quotas.warning =
      `cannot read etcd's configuration on ${unreadable.map(([n]) => n).join(", ")} (${first?.message ?? "unknown"}): ` +
      `assuming etcd's default quota of ${formatBytes(ETCD_DEFAULT_QUOTA_BYTES)} there; ` +
      `run with --quota-bytes if the cluster sets quota-backend-bytes (${unreadableHint})`;
  }
  return quotas;
}

function quotaOf(config: MemberConfig | DefragError | undefined, override: number | undefined): MemberQuota {
  if (override !== undefined) return { bytes: override, source: "option" };
  if (config === undefined || config instanceof DefragError)
    return { bytes: ETCD_DEFAULT_QUOTA_BYTES, source: "fallback" };
  return { bytes: effectiveQuota(config), source: config.quotaBytes === undefined ? "default" : "spec" };
}

/**
 * One line for the log: each member's quota and where it comes from; `configName` is the backend's
 * name for where a member's etcd flags are read from.
 */
export function describeQuotas(quotas: ReadonlyMap<string, MemberQuota>, configName: string): string {
  const options = [...quotas.values()].filter((q) => q.source === "option");
  const first = options[0];
  if (first !== undefined && options.length === quotas.size)
    return `etcd quota: ${formatBytes(first.bytes)} for every member, from --quota-bytes (overrides the quota configured on the nodes, which is not read)`;
  const text: Record<QuotaSource, string> = {
    spec: `quota-backend-bytes in its ${configName}`,
    default: "etcd's default: quota-backend-bytes not set",
    option: "--quota-bytes",
    fallback: `etcd's default assumed: its ${configName} could not be read`,
  };
  const parts = [...quotas].map(([node, q]) => `${node} ${formatBytes(q.bytes)} (${text[q.source]})`);
  return `etcd quota: ${parts.join(", ")}`;
}

/** Every member's configuration as read for one command, and the quotas resolved from it. */
export interface MemberConfigs {
  /** Per node: its configuration, or why it could not be read (none read under --quota-bytes). */
  byNode: ReadonlyMap<string, MemberConfig | DefragError>;
  quotas: Quotas;
  /** Where a person sets a member's etcd flags (BackendWords.configWhere), for warnings about them. */
  where: string;
}
