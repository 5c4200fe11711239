// `run --lease`: the Kubernetes Lease that keeps two runs from overlapping, loaded only
// when asked for (the Kubernetes client takes a noticeable part of a second to load).

import { randomBytes } from "node:crypto";
import { hostname } from "node:os";

import { DefragError } from "../core/errors.js";
import { formatDuration } from "../core/units.js";
import type { Clock, HeldGuard, RunGuard } from "../core/ports.js";
import type { CommandContext } from "./context.js";
import type { RunCliOptions } from "./options.js";

/** The Lease's duration: a run that died stops counting this long after its last renewal. */
export const LEASE_DURATION_SECONDS = 30;

/** Unique per run: the pod's name (its hostname) or the host's, the pid, and a random part. */
export function leaseIdentity(env: Readonly<Record<string, string | undefined>>): string {
  const host = env.HOSTNAME !== undefined && env.HOSTNAME !== "" ? env.HOSTNAME : hostname();
  return `${host}_${process.pid}_${randomBytes(3).toString("hex")}`;
}

/** The guard the options ask for, or undefined without --lease. Config errors (exit 2) before any call. */
export async function guardFor(
  ctx: CommandContext<RunCliOptions>,
  clock: Clock,
): Promise<{ guard: RunGuard; what: string } | undefined> {
  const lease = ctx.options.lease;
  if (lease === undefined) return undefined;
  const [{ createLeaseGuard }, { loadKubeConfig }] = await Promise.all([
    import("../k8s/lease.js"),
    import("../k8s/kubeconfig.js"),
  ]);
  const kubeConfig = loadKubeConfig({ kubeconfig: ctx.options.kubeconfig, env: ctx.env });
  const what = `lease ${lease.namespace}/${lease.name}`;
  const guard = createLeaseGuard({
    kubeConfig,
    namespace: lease.namespace,
    name: lease.name,
    identity: leaseIdentity(ctx.env),
    durationSeconds: LEASE_DURATION_SECONDS,
    clock,
    onRenewError: (err) => {
      ctx.logger.warn(`could not renew the ${what}: ${err.describe()}`);
    },
  });
  return { guard, what };
}

/** Takes the guard, logging while it waits. Rejects with a "refused" DefragError when it stays held. */
export async function acquireGuard(
  ctx: CommandContext<RunCliOptions>,
  g: { guard: RunGuard; what: string },
): Promise<HeldGuard> {
  let lastLog = -Infinity;
  const held = await g.guard.acquire({
    waitMs: ctx.options.leaseWaitMs,
    signal: ctx.signal,
    onWait: (holder, waitedMs) => {
      if (waitedMs - lastLog < 10_000) return;
      lastLog = waitedMs;
      ctx.logger.info(
        `waiting for the ${g.what}: another run holds it (${holder}); waited ${formatDuration(waitedMs)} of ${formatDuration(ctx.options.leaseWaitMs)}`,
        { holder },
      );
    },
  });
  ctx.logger.info(`holding the ${g.what} for this run`);
  return held;
}

/** Gives the guard up; a failure is a warning (the lease expires by itself). */
export async function releaseGuard(
  ctx: CommandContext<RunCliOptions>,
  what: string,
  held: HeldGuard,
): Promise<void> {
  try {
    await held.release();
  } catch (err) {
    ctx.logger.warn(
      `could not release the ${what} (it expires by itself within ${LEASE_DURATION_SECONDS}s): ${DefragError.from(err).describe()}`,
    );
  }
}
