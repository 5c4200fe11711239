// Before the first change: does the credential allow what the plan needs? A run
// that would be denied halfway is refused now, with what is missing.

import type { Permissions } from "../core/backend.js";
import type { GateFailure } from "../core/gates.js";
import type { PlanItem } from "../core/plan.js";
import type { MoveLeader } from "./types.js";

export function preflight(
  plan: readonly PlanItem[],
  permissions: Permissions,
  moveLeader: MoveLeader,
): GateFailure[] {
  const todo = plan.filter((p) => p.defragment);
  if (todo.length === 0) return [];
  const { defragment, moveLeadership } = permissions;
  if (!defragment.allowed) return [{ gate: "permission", message: defragment.reason }];
  if (moveLeader === "always" && todo.some((p) => p.isLeader) && !moveLeadership.allowed) {
    return [
      {
        gate: "permission",
        message: `--move-leader always: ${moveLeadership.reason}; use --move-leader auto or never`,
      },
    ];
  }
  return [];
}
