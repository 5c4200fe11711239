// The orchestrator: executes the plan against a backend, one member at a time,
// re-checking the gates before each, never starting a member while another may
// still be defragmenting, and stopping at the first failure.

import type { Backend } from "../core/backend.js";
import { DefragError } from "../core/errors.js";
import { checkGates, type GateFailure } from "../core/gates.js";
import { freeBytes, isLeader, type ClusterView, type MemberAlarm, type MemberStatus } from "../core/model.js";
import { decide, describeSizes, hasNospace, makePlan, type PlanItem } from "../core/plan.js";
import { formatBytes, formatDuration, formatMemberId } from "../core/units.js";
import { rolesAllow } from "../talos/rbac.js";
import { observeCluster } from "./observe.js";
import type { MemberResult, RunDeps, RunOptions, RunResult, Sizes } from "./types.js";
import { pollUntil } from "./wait.js";

const MiB = 1024 ** 2;
/** NOSPACE is disarmed only when every member is at most this share of the quota. */
export const DISARM_MAX_QUOTA_USAGE = 0.8;

/** Errors after which the member may still be defragmenting (etcd ignores cancellation). */
const IN_DOUBT = new Set(["timeout", "unreachable", "aborted", "tls"]);

class Stop extends Error {
  constructor(
    readonly kind: "failed" | "refused",
    readonly error: DefragError,
  ) {
    super(error.message);
  }
}

export async function runDefrag(backend: Backend, opts: RunOptions, deps: RunDeps): Promise<RunResult> {
  const startedAt = new Date(deps.now());
  const t0 = deps.now();
  const { reporter } = deps;
  const results: MemberResult[] = [];
  let refusals: GateFailure[] = [];
  const finish = (result: RunResult["result"], extra: Partial<RunResult> = {}): RunResult => {
    const reclaimedBytes = results.reduce(
      (sum, m) =>
        sum + (m.action === "defragmented" && m.before && m.after ? m.before.dbSize - m.after.dbSize : 0),
      0,
    );
    return {
      result,
      members: results,
      reclaimedBytes,
      durationMs: deps.now() - t0,
      alarmsDisarmed: [],
      refusals,
      startedAt,
      ...extra,
    };
  };

  reporter.info("reading the cluster");
  const initial = await observeCluster(backend, { nodes: opts.nodes, signal: deps.signal });
  for (const w of initial.warnings) reporter.warn(w);
  const nodes = initial.nodes.map((n) => n.node);
  // The last view and when it was read: a view this fresh (the first reading, or the health check
  // just after a member) serves as the next member's gate check, instead of reading the cluster again.
  const FRESH_MS = 1000;
  let last = { view: initial, at: deps.now() };
  const observe = async (): Promise<ClusterView> => {
    const view = await observeCluster(backend, { nodes, signal: undefined });
    last = { view, at: deps.now() };
    return view;
  };
  const observeFresh = async (): Promise<ClusterView> =>
    deps.now() - last.at < FRESH_MS ? last.view : observe();
  const gateOpts = { allowDowntime: opts.allowDowntime, maxAppliedLag: opts.maxAppliedLag };

  refusals = checkGates(initial, gateOpts);
  if (refusals.length > 0) {
    for (const f of refusals)
      reporter.error(`refused: ${f.message}`, { gate: f.gate, ...(f.node ? { node: f.node } : {}) });
    for (const n of initial.nodes) {
      results.push({
        node: n.node,
        memberId: n.ok ? formatMemberId(n.status.memberId) : "",
        name: n.name,
        action: "not-reached",
        reason: "the run was refused by a safety gate",
        isLeader: n.ok && isLeader(n.status),
        notes: [],
        ...(n.ok ? { before: sizes(n.status) } : {}),
      });
    }
    return finish("refused", {
      error: new DefragError("refused", `refused: ${refusals.map((f) => f.message).join("; ")}`),
    });
  }

  const plan = makePlan(initial, { rule: opts.rule, quotaBytes: opts.quotaBytes });
  const todo = plan.filter((p) => p.defragment);
  reporter.info(
    `plan: ${todo.length === 0 ? "nothing to defragment" : `defragment ${todo.map((p) => p.node).join(", ")} in this order`}`,
    { rule: opts.rule.source, quotaBytes: opts.quotaBytes },
  );
  for (const p of plan) {
    reporter.info(
      `${p.node}${p.isLeader ? " (leader)" : ""}: ${p.defragment ? "defragment" : "skip"}: ${p.reason}`,
      {
        node: p.node,
        member: formatMemberId(p.memberId),
      },
    );
  }

  if (opts.dryRun) {
    for (const p of plan) results.push(planned(p, p.defragment ? "would-defragment" : "skipped"));
    return finish("dry-run");
  }

  const canDefrag = opts.roles.length === 0 || rolesAllow(opts.roles, "EtcdDefragment");
  const canMove = opts.roles.length === 0 || rolesAllow(opts.roles, "EtcdForfeitLeadership");
  if (todo.length > 0 && !canDefrag) {
    refusals = [
      {
        gate: "reachable",
        message: `the client certificate's roles (${opts.roles.join(", ") || "none"}) do not allow EtcdDefragment: it needs role os:operator (or os:admin)`,
      },
    ];
  } else if (opts.moveLeader === "always" && todo.some((p) => p.isLeader) && !canMove) {
    refusals = [
      {
        gate: "reachable",
        message: `--move-leader always needs role os:admin to forfeit leadership, and the certificate has ${opts.roles.join(", ")}; use --move-leader auto or never`,
      },
    ];
  }
  if (refusals.length > 0) {
    for (const f of refusals) reporter.error(`refused: ${f.message}`);
    for (const p of plan)
      results.push({
        ...planned(p, "not-reached"),
        reason: "the run was refused: the certificate's role is not enough",
      });
    return finish("refused", { error: new DefragError("refused", refusals[0]?.message ?? "refused") });
  }

  let leaderMoveDenied = false;
  let done = 0;
  let stop: Stop | undefined;
  for (const item of plan) {
    if (!item.defragment) {
      results.push(planned(item, "skipped"));
      continue;
    }
    if (stop !== undefined) {
      results.push({ ...planned(item, "not-reached"), reason: `not reached: ${stop.error.message}` });
      continue;
    }
    if (deps.signal.aborted) {
      stop = new Stop("failed", new DefragError("aborted", "stopped by a signal before this member"));
      reporter.warn("stop requested: no further member is started");
      results.push({ ...planned(item, "not-reached"), reason: "not reached: stopped by a signal" });
      continue;
    }
    try {
      const result = await defragmentMember(item);
      results.push(result);
      if (result.action === "defragmented") done += 1;
    } catch (err) {
      if (err instanceof Stop) {
        stop = err;
        const last = results.at(-1);
        if (last === undefined || last.node !== item.node) {
          results.push({ ...planned(item, "not-reached"), reason: `not reached: ${err.error.message}` });
        }
        continue;
      }
      throw err;
    }
  }

  if (stop !== undefined) {
    reporter.error(`run stopped: ${stop.error.describe()}`);
    // A gate that fails before anything was defragmented is a refusal; afterwards, a failure.
    const kind = stop.kind === "refused" && done === 0 ? "refused" : "failed";
    return finish(kind, { error: stop.error });
  }

  let alarmsDisarmed: string[];
  try {
    alarmsDisarmed = await recoverNospace();
  } catch (err) {
    if (err instanceof Stop) return finish("failed", { error: err.error });
    throw err;
  }
  if (done === 0) return finish("nothing-to-do", { alarmsDisarmed });
  return finish("success", { alarmsDisarmed });

  // ---------------------------------------------------------------------------

  async function defragmentMember(item: PlanItem): Promise<MemberResult> {
    // Fresh numbers and gates just before this member.
    const view = await observeFresh();
    const failures = checkGates(view, gateOpts);
    if (failures.length > 0) {
      refusals = failures;
      for (const f of failures)
        reporter.error(`gate failed before ${item.node}: ${f.message}`, { gate: f.gate });
      throw new Stop(
        "refused",
        new DefragError(
          "refused",
          `gate failed before ${item.node}: ${failures.map((f) => f.message).join("; ")}`,
          {
            node: item.node,
          },
        ),
      );
    }
    const fresh = view.nodes.find((n) => n.node === item.node);
    if (fresh === undefined || !fresh.ok || fresh.status.memberId !== item.memberId) {
      throw new Stop(
        "failed",
        new DefragError("etcd", `member on ${item.node} changed since the plan`, { node: item.node }),
      );
    }
    let status = fresh.status;
    const decision = decide(status, { rule: opts.rule, quotaBytes: opts.quotaBytes }, hasNospace(view));
    const base: MemberResult = {
      ...planned(item, "skipped"),
      reason: decision.reason,
      isLeader: isLeader(status),
      before: sizes(status),
    };
    if (!decision.defragment) {
      reporter.info(`${item.node}: skip: ${decision.reason} (fresh numbers)`, { node: item.node });
      return base;
    }

    const notes: string[] = [];
    let leadershipMovedTo: string | undefined;
    if (isLeader(status) && opts.moveLeader !== "never") {
      const moved = await moveLeadership(item, status);
      if (moved.to !== undefined) {
        leadershipMovedTo = moved.to;
        notes.push(`leadership moved to ${moved.to} first`);
        status = moved.status ?? status;
      } else if (moved.note !== undefined) {
        notes.push(moved.note);
      }
    } else if (isLeader(status)) {
      notes.push("defragmented the leader in place (--move-leader never)");
      reporter.info(`${item.node} is the leader: defragmenting it in place, last (--move-leader never)`);
    }

    const before = sizes(status);
    reporter.info(`${item.node}: defragmenting (${describeSizes(status)})`, {
      node: item.node,
      member: formatMemberId(item.memberId),
      dbSize: before.dbSize,
      dbSizeInUse: before.dbSizeInUse,
    });
    const started = deps.now();
    const outcome = await callDefragment(item.node);
    let after: MemberStatus | undefined;
    if (outcome.error !== undefined) {
      const e = outcome.error;
      if (!IN_DOUBT.has(e.kind)) {
        reporter.error(`${item.node}: defragment failed: ${e.describe()}`, { node: item.node });
        const failed: MemberResult = {
          ...base,
          action: "failed",
          reason: e.describe(),
          before,
          notes,
          durationMs: deps.now() - started,
        };
        results.push(failed);
        throw new Stop("failed", e);
      }
      reporter.warn(
        `${item.node}: the defragment call ended after ${formatDuration(deps.now() - started)} without success (${e.message}); etcd keeps defragmenting regardless, so waiting up to ${formatDuration(opts.maxWaitMs)} for proof that it finished before touching any other member`,
        { node: item.node },
      );
      const proof = await waitFinished(item.node, before, deps.now() - started);
      if (proof === undefined) {
        const error = new DefragError(
          "timeout",
          `no proof that the defragment of ${item.node} finished within ${formatDuration(opts.maxWaitMs)} after the call ended (${e.message}); stopping without touching any other member`,
          {
            node: item.node,
            hint: "check the member with `talosctl -n <node> etcd status` and raise --timeout for a DB this size",
          },
        );
        reporter.error(error.describe());
        results.push({
          ...base,
          action: "failed",
          reason: error.message,
          before,
          notes,
          durationMs: deps.now() - started,
        });
        throw new Stop("failed", error);
      }
      notes.push(`the defragment call ended with "${e.message}"; ${proof.how}`);
      after = proof.status;
    }
    const durationMs = deps.now() - started;

    // This member healthy again (answers, knows a leader, caught up with it) before anything else;
    // the next member's gates then check the whole cluster.
    const healthy = await pollUntil(
      deps,
      { timeoutMs: opts.healthTimeoutMs, intervalMs: opts.pollIntervalMs },
      async () => {
        const v = await observe();
        return memberHealthy(v, item.node, opts.maxAppliedLag);
      },
    );
    if (!("value" in healthy)) {
      const error = new DefragError(
        "etcd",
        `${item.node} was defragmented but did not answer with a leader and caught up within ${formatDuration(opts.healthTimeoutMs)}${healthy.lastError instanceof Error ? ` (${healthy.lastError.message})` : ""}`,
        { node: item.node, hint: "check `talos-etcd-defrag status` before running again" },
      );
      reporter.error(error.describe());
      results.push({
        ...base,
        action: "defragmented",
        before,
        ...(after ? { after: sizes(after) } : {}),
        notes: [...notes, "not healthy again afterwards"],
        durationMs,
      });
      throw new Stop("failed", error);
    }
    after = healthy.value;
    const reclaimed = before.dbSize - after.dbSize;
    reporter.info(
      `${item.node}: defragmented in ${formatDuration(durationMs)}: ${formatBytes(before.dbSize)} -> ${formatBytes(after.dbSize)} (reclaimed ${formatBytes(reclaimed)})`,
      { node: item.node, durationMs, before: before.dbSize, after: after.dbSize, reclaimedBytes: reclaimed },
    );
    if (opts.pauseMs > 0 && item !== todo.at(-1)) {
      try {
        await deps.sleep(opts.pauseMs, deps.signal);
      } catch {
        // Interrupted by a signal: the loop stops before the next member.
      }
    }
    return {
      ...base,
      action: "defragmented",
      before,
      after: sizes(after),
      durationMs,
      notes,
      ...(leadershipMovedTo !== undefined ? { leadershipMovedTo } : {}),
    };
  }

  /** Calls EtcdDefragment; on SIGTERM it waits up to the grace period for the call, then gives up on it. */
  async function callDefragment(node: string): Promise<{ error?: DefragError }> {
    const call = new AbortController();
    let grace: NodeJS.Timeout | undefined;
    const onAbort = (): void => {
      reporter.warn(
        `stop requested: waiting up to ${formatDuration(opts.shutdownGraceMs)} for ${node} to finish its defragment`,
      );
      grace = setTimeout(() => {
        call.abort(
          new DefragError("aborted", "gave up waiting for the defragment after a stop request", { node }),
        );
      }, opts.shutdownGraceMs);
    };
    if (deps.signal.aborted) onAbort();
    else deps.signal.addEventListener("abort", onAbort, { once: true });
    const started = deps.now();
    const heartbeat = setInterval(() => {
      reporter.heartbeat(node, deps.now() - started);
    }, opts.heartbeatMs);
    try {
      await backend.defragment(node, { timeoutMs: opts.timeoutMs, signal: call.signal });
      return {};
    } catch (err) {
      return { error: DefragError.from(err, "etcd") };
    } finally {
      clearInterval(heartbeat);
      clearTimeout(grace);
      reporter.heartbeatDone();
      deps.signal.removeEventListener("abort", onAbort);
    }
  }

  /**
   * Positive evidence that a member's defragment finished after its call did not
   * succeed: its DB shrank as planned, or a second defragment call returned. etcd runs
   * one defragment at a time per member, so the second returns only after the first
   * ended (and does the work itself if the first never started, e.g. when the deadline
   * passed before the request reached etcd). The second call blocks the member again,
   * so it is made only when little was to be reclaimed or the DB has not shrunk in a
   * while (`callMs`: how long the first call ran).
   */
  async function waitFinished(
    node: string,
    before: Sizes,
    callMs: number,
  ): Promise<{ status: MemberStatus; how: string } | undefined> {
    const stopping = deps.signal.aborted;
    const budget = stopping ? Math.min(opts.maxWaitMs, opts.shutdownGraceMs) : opts.maxWaitMs;
    const started = deps.now();
    const expectShrink = freeBytes(before) >= Math.max(MiB, before.dbSize * 0.05);
    const shrunkTo = before.dbSize - freeBytes(before) / 2;
    const confirmAfter = expectShrink ? Math.min(budget / 2, Math.max(5_000, 4 * callMs)) : 0;
    // The member is most likely still defragmenting: keep telling so while waiting.
    const heartbeat = setInterval(() => {
      reporter.heartbeat(node, callMs + deps.now() - started);
    }, opts.heartbeatMs);
    try {
      const outcome = await pollUntil(
        deps,
        { timeoutMs: budget, intervalMs: opts.pollIntervalMs },
        async () => {
          const status = await backend.status(node);
          if (expectShrink && status.dbSize <= shrunkTo) {
            return {
              status,
              how: `its DB shrank to ${formatBytes(status.dbSize)}, ${formatDuration(deps.now() - started)} after the call ended`,
            };
          }
          const elapsed = deps.now() - started;
          const remaining = budget - elapsed;
          if (elapsed < confirmAfter || remaining <= 0) return undefined;
          await backend.defragment(node, { timeoutMs: remaining });
          return {
            status: await backend.status(node),
            how: "a second defragment call returned, which etcd runs only after the first has ended",
          };
        },
      );
      return "value" in outcome ? outcome.value : undefined;
    } finally {
      clearInterval(heartbeat);
      reporter.heartbeatDone();
    }
  }

  async function moveLeadership(
    item: PlanItem,
    status: MemberStatus,
  ): Promise<{ to?: string; status?: MemberStatus; note?: string }> {
    if (leaderMoveDenied || !canMove) {
      const note = "defragmented the leader in place: moving leadership needs role os:admin";
      if (!leaderMoveDenied)
        reporter.info(
          `${item.node} is the leader: ${note.replace("defragmented", "defragmenting")}; it goes last`,
        );
      leaderMoveDenied = true;
      return { note };
    }
    reporter.info(`${item.node} is the leader: moving leadership away first`, { node: item.node });
    let to: string;
    try {
      to = await backend.forfeitLeadership(item.node);
    } catch (err) {
      const e = DefragError.from(err, "etcd");
      if (e.kind === "permission" && opts.moveLeader === "auto") {
        leaderMoveDenied = true;
        const note = "defragmented the leader in place: moving leadership was denied (needs role os:admin)";
        reporter.info(
          `${item.node}: forfeiting leadership was denied (it needs os:admin); defragmenting the leader in place, last`,
        );
        return { note };
      }
      reporter.error(`${item.node}: could not move leadership: ${e.describe()}`);
      results.push({
        ...planned(item, "failed"),
        reason: `could not move leadership: ${e.describe()}`,
        before: sizes(status),
      });
      throw new Stop("failed", e);
    }
    const confirmed = await pollUntil(
      deps,
      { timeoutMs: opts.healthTimeoutMs, intervalMs: opts.pollIntervalMs },
      async () => {
        const v = await observe();
        const n = v.nodes.find((x) => x.node === item.node);
        if (n === undefined || !n.ok || isLeader(n.status) || checkGates(v, gateOpts).length > 0)
          return undefined;
        return n.status;
      },
    );
    if (!("value" in confirmed)) {
      const e = new DefragError(
        "etcd",
        `leadership did not move away from ${item.node} within ${formatDuration(opts.healthTimeoutMs)}`,
        { node: item.node },
      );
      if (opts.moveLeader === "always") {
        results.push({ ...planned(item, "failed"), reason: e.message, before: sizes(status) });
        throw new Stop("failed", e);
      }
      reporter.warn(`${e.message}; defragmenting it in place`);
      return { note: "leadership did not move; defragmented the leader in place" };
    }
    reporter.info(`${item.node}: leadership moved to ${to || "another member"}`, { node: item.node });
    return { to: to || "another member", status: confirmed.value };
  }

  async function recoverNospace(): Promise<string[]> {
    const view = await observeFresh();
    if (view.alarms.length === 0) return [];
    if (!view.alarms.every((a) => a.alarm === "NOSPACE")) {
      reporter.warn(
        `alarms left as they are: ${view.alarms.map(alarmText).join(", ")} (only NOSPACE alone is ever disarmed)`,
      );
      return [];
    }
    const limit = opts.quotaBytes * DISARM_MAX_QUOTA_USAGE;
    const over = view.nodes.filter((n) => !n.ok || n.status.dbSize > limit);
    if (over.length > 0) {
      reporter.warn(
        `NOSPACE stays armed: ${over.map((n) => (n.ok ? `${n.node} is at ${formatBytes(n.status.dbSize)} of a ${formatBytes(opts.quotaBytes)} quota` : `${n.node} did not answer`)).join(", ")}; free space or raise the quota first`,
      );
      return [];
    }
    const via = view.nodes.find((n) => n.ok)?.node;
    if (via === undefined) return [];
    reporter.info(
      `every member is under ${(DISARM_MAX_QUOTA_USAGE * 100).toFixed(0)}% of the quota: disarming NOSPACE`,
    );
    let disarmed: MemberAlarm[];
    try {
      disarmed = await backend.disarmAlarms(via);
    } catch (err) {
      reporter.error(`could not disarm NOSPACE: ${DefragError.from(err).describe()}`);
      throw new Stop("failed", DefragError.from(err, "etcd"));
    }
    const gone = await pollUntil(
      deps,
      { timeoutMs: opts.healthTimeoutMs, intervalMs: opts.pollIntervalMs },
      async () => {
        const alarms = await backend.alarms(via);
        return alarms.length === 0 ? true : undefined;
      },
    );
    if (!("value" in gone)) reporter.warn("NOSPACE was disarmed but an alarm is still listed");
    else reporter.info(`disarmed: ${disarmed.map(alarmText).join(", ")}`);
    return disarmed.map(alarmText);
  }
}

/** The member answers, knows a leader, and has applied about as much as the leader. */
function memberHealthy(view: ClusterView, node: string, maxLag: number): MemberStatus | undefined {
  const n = view.nodes.find((x) => x.node === node);
  if (n === undefined || !n.ok || n.status.leaderId === 0n) return undefined;
  const leader = view.nodes.find((x) => x.ok && x.status.memberId === n.status.leaderId);
  if (leader?.ok && leader.status.raftAppliedIndex - n.status.raftAppliedIndex > BigInt(maxLag))
    return undefined;
  return n.status;
}

function planned(p: PlanItem, action: MemberResult["action"]): MemberResult {
  return {
    node: p.node,
    memberId: formatMemberId(p.memberId),
    name: p.name,
    action,
    reason: p.reason,
    isLeader: p.isLeader,
    before: sizes(p.status),
    notes: [],
  };
}

function sizes(s: MemberStatus): Sizes {
  return { dbSize: s.dbSize, dbSizeInUse: s.dbSizeInUse };
}

function alarmText(a: MemberAlarm): string {
  return `${a.alarm} on ${formatMemberId(a.memberId)}`;
}
