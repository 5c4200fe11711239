// After the members: NOSPACE is disarmed when it is the only alarm and every member
// is well under the quota again, so that etcd accepts writes. Anything else raised
// is left as it is.

import { DefragError } from "../core/errors.js";
import type { MemberAlarm } from "../core/model.js";
import { formatBytes } from "../core/units.js";
import { alarmText, raised, type RaisedAlarm, type RunStop } from "../core/result.js";
import type { RunContext } from "./types.js";
import { pollUntil } from "./wait.js";

export async function recoverNospace(
  ctx: RunContext,
): Promise<{ disarmed: string[]; raised: RaisedAlarm[] } | { stop: RunStop }> {
  const { reporter, opts, clock } = ctx;
  const view = await ctx.live.view();
  const raisedNow = view.alarms.map(raised);
  if (view.alarms.length === 0) return { disarmed: [], raised: raisedNow };
  if (!view.alarms.every((a) => a.alarm === "NOSPACE")) {
    reporter.warn(
      `alarms left as they are: ${raisedNow.map(alarmText).join(", ")} (only NOSPACE alone is ever disarmed)`,
    );
    return { disarmed: [], raised: raisedNow };
  }
  if (opts.nospaceDisarmBelow <= 0 && view.alarms.length > 0) {
    reporter.warn("NOSPACE stays armed: disarming is off (--nospace-disarm-below 0)");
    return { disarmed: [], raised: raisedNow };
  }
  // Each member against its own quota (etcd raises NOSPACE per member, at that member's quota).
  const over = view.nodes.filter(
    (n) => !n.ok || n.status.dbSize > ctx.live.quota(n.node) * opts.nospaceDisarmBelow,
  );
  if (over.length > 0) {
    reporter.warn(
      `NOSPACE stays armed: ${over.map((n) => (n.ok ? `${n.node} is at ${formatBytes(n.status.dbSize)} of a ${formatBytes(ctx.live.quota(n.node))} quota` : `${n.node} did not answer`)).join(", ")}; free space or raise the quota first`,
    );
    return { disarmed: [], raised: raisedNow };
  }
  reporter.info(`every member is under ${percent(opts.nospaceDisarmBelow)} of the quota: disarming NOSPACE`);
  let disarmed: MemberAlarm[];
  try {
    disarmed = await ctx.backend.disarmNospace();
  } catch (err) {
    const e = DefragError.from(err);
    reporter.error(`could not disarm NOSPACE: ${e.describe()}`);
    return { stop: { kind: "failed", error: e } };
  }
  let left: MemberAlarm[] = [];
  const gone = await pollUntil(
    clock,
    { timeoutMs: opts.healthTimeoutMs, intervalMs: opts.pollIntervalMs },
    async () => {
      left = await ctx.backend.alarms();
      return left.length === 0 ? true : undefined;
    },
  );
  if (!("value" in gone))
    reporter.warn(
      `NOSPACE was disarmed but alarms are still listed: ${left.map((a) => alarmText(raised(a))).join(", ")}`,
    );
  else reporter.info(`disarmed: ${disarmed.map((a) => alarmText(raised(a))).join(", ")}`);
  return { disarmed: disarmed.map((a) => alarmText(raised(a))), raised: left.map(raised) };
}

export function percent(share: number): string {
  return `${Number((share * 100).toFixed(1))}%`;
}
