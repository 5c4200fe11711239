// `talos-etcd-defrag status`: one row per member.

import { affectedMembers } from "../core/gates.js";
import { configWarnings, statusJson, statusTable } from "../report/status.js";
import { readMemberConfigs } from "../run/member-config.js";
import { observeCluster } from "../run/observe.js";
import { connect, loadConnection } from "./connect.js";
import type { CommandContext } from "./context.js";
import { exitCodeForStatus } from "./exit.js";
import type { StatusOptions } from "./options.js";

export async function statusCommand(ctx: CommandContext<StatusOptions>): Promise<number> {
  const connection = loadConnection(ctx);
  ctx.logger.debug("connecting", { source: connection.source, endpoints: connection.endpoints });
  const backend = connect(ctx, connection);
  try {
    const view = await observeCluster(backend, { nodes: connection.nodes, signal: ctx.signal });
    // Each member's quota and start-up defragment, from its own configuration (read once).
    const configs = await readMemberConfigs(
      backend,
      view.nodes.filter((n) => n.ok).map((n) => n.node),
      { signal: ctx.signal },
    );
    for (const warning of [...view.warnings, ...configWarnings(view, configs)]) ctx.logger.warn(warning);
    for (const a of affectedMembers(view, backend.words.fixedEtcd))
      ctx.logger.warn(a.warning, { node: a.node, etcdVersion: a.version });
    for (const n of view.nodes) {
      if (!n.ok) ctx.logger.error(`cannot read member status: ${n.error.describe()}`, { node: n.node });
    }
    if (ctx.options.output === "json")
      ctx.stdout.write(JSON.stringify(statusJson(view, configs), null, 2) + "\n");
    else ctx.stdout.write(statusTable(view, configs));
    return exitCodeForStatus(view.nodes.filter((n) => !n.ok).length);
  } finally {
    backend.close();
  }
}
