// Each member's configuration (its quota, its start-up defragment), read once per
// command from the backend: etcd reads its flags only when it starts.

import type { Backend } from "../core/backend.js";
import { DefragError } from "../core/errors.js";
import { effectiveQuota, ETCD_DEFAULT_QUOTA_BYTES, type MemberConfig } from "../core/member-config.js";
import { formatBytes } from "../core/units.js";

/** Where a member's quota comes from. */
export type QuotaSource = "spec" | "default" | "option" | "fallback";

export interface MemberQuota {
  bytes: number;
  source: QuotaSource;
}

export interface MemberConfigs {
  /** Per node: its configuration, or why it could not be read. */
  byNode: Map<string, MemberConfig | DefragError>;
  /** Per node: the quota that applies and where it comes from. */
  quotas: Map<string, MemberQuota>;
  /** Members whose configuration was read but does not parse (kind "config"): nothing may rely on them. */
  invalid: DefragError[];
  /** The one warning for every member whose configuration could not be read (then etcd's default is assumed). */
  warning?: string;
}

/**
 * Reads every node's configuration at once. `override` (--quota-bytes) replaces every
 * member's quota; the configuration is still read for the rest (start-up defragment).
 */
export async function readMemberConfigs(
  backend: Backend,
  nodes: readonly string[],
  opts: { override?: number | undefined; signal?: AbortSignal | undefined },
): Promise<MemberConfigs> {
  const read = await Promise.all(
    nodes.map(async (node): Promise<[string, MemberConfig | DefragError]> => {
      try {
        return [node, await backend.memberConfig(node, opts.signal)];
      } catch (err) {
        return [node, DefragError.from(err)];
      }
    }),
  );
  const byNode = new Map(read);
  const quotas = new Map<string, MemberQuota>();
  const invalid: DefragError[] = [];
  const unreadable: [string, DefragError][] = [];
  for (const [node, config] of read) {
    if (config instanceof DefragError) {
      if (config.kind === "internal" || config.kind === "aborted") throw config;
      if (config.kind === "config") invalid.push(config);
      else unreadable.push([node, config]);
    }
    if (opts.override !== undefined) quotas.set(node, { bytes: opts.override, source: "option" });
    else if (config instanceof DefragError)
      quotas.set(node, { bytes: ETCD_DEFAULT_QUOTA_BYTES, source: "fallback" });
    else
      quotas.set(node, {
        bytes: effectiveQuota(config),
        source: config.quotaBytes === undefined ? "default" : "spec",
      });
  }
  const result: MemberConfigs = { byNode, quotas, invalid };
  if (unreadable.length > 0 && opts.override === undefined) {
    const first = unreadable[0]?.[1];
    const nodesText = unreadable.map(([n]) => n).join(", ");
    result.warning =
      `cannot read etcd's configuration on ${nodesText} (${first?.message ?? "unknown"}): ` +
      `assuming etcd's default quota of ${formatBytes(ETCD_DEFAULT_QUOTA_BYTES)} there; ` +
      "run with --quota-bytes if the cluster sets quota-backend-bytes (reading the etcd spec needs Talos's State API and role os:reader or more)";
  }
  return result;
}

/** One line for the log: each member's quota and where it comes from. */
export function describeQuotas(quotas: ReadonlyMap<string, MemberQuota>): string {
  const parts = [...quotas].map(([node, q]) => `${node} ${formatBytes(q.bytes)} (${SOURCE_TEXT[q.source]})`);
  return `etcd quota: ${parts.join(", ")}`;
}

const SOURCE_TEXT: Record<QuotaSource, string> = {
  spec: "quota-backend-bytes in its etcd spec",
  default: "etcd's default: quota-backend-bytes not set",
  option: "--quota-bytes",
  fallback: "etcd's default assumed: its spec could not be read",
};
