// Each member's configuration (its quota, its start-up defragment), read once per command from
// the backend (etcd reads its flags only when it starts), and the quotas resolved from it in one
// place (core/quota.ts). Under --quota-bytes nothing is read: the option is every member's quota.

import type { Backend } from "../core/backend.js";
import { DefragError } from "../core/errors.js";
import type { MemberConfig } from "../core/member-config.js";
import { resolveQuotas, type MemberConfigs } from "../core/quota.js";

export async function readMemberConfigs(
  backend: Backend,
  nodes: readonly string[],
  opts: { quotaBytes?: number | undefined; signal?: AbortSignal | undefined },
): Promise<MemberConfigs> {
  const read =
    opts.quotaBytes !== undefined
      ? []
      : await Promise.all(
          nodes.map(async (node): Promise<[string, MemberConfig | DefragError]> => {
            try {
              return [node, await backend.memberConfig(node, opts.signal)];
            } catch (err) {
              const e = DefragError.from(err);
              if (e.kind === "internal" || e.kind === "aborted") throw e;
              return [node, e];
            }
          }),
        );
  const byNode = new Map(read);
  return {
    byNode,
    quotas: resolveQuotas(nodes, byNode, opts.quotaBytes, backend.words.configUnreadable),
    where: backend.words.configWhere,
  };
}
