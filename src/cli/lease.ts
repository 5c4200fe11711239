// `run --lease`: the Kubernetes Lease that keeps two runs from overlapping, loaded only
// when needed (the Kubernetes client takes a noticeable part of a second to load). By default
// (auto) the chart's Lease, kube-system/etcd-defrag, wherever a Kubernetes API is configured and
// it is this etcd's cluster; without one, the log says that nothing stops a run started at the
// same moment.

import { randomBytes } from "node:crypto";
import { hostname } from "node:os";

import { DefragError } from "../core/errors.js";
import { formatDuration } from "../core/units.js";
import type { Clock, HeldGuard, RunGuard } from "../core/ports.js";
import { kubeConfigured } from "../k8s/configured.js";
// Types only: the client itself is loaded when a lease is wanted.
import type { KubeConfig } from "@kubernetes/client-node";
import type { CommandContext } from "./context.js";
import type { RunCliOptions } from "./options.js";

/** The Lease's duration: a run that died stops counting this long after its last renewal. */
export const LEASE_DURATION_SECONDS = 30;

/** Unique per run: the pod's name (its hostname) or the host's, the pid, and a random part. */
export function leaseIdentity(env: Readonly<Record<string, string | undefined>>): string {
  const host = env.HOSTNAME !== undefined && env.HOSTNAME !== "" ? env.HOSTNAME : hostname();
  return `${host}_${process.pid}_${randomBytes(3).toString("hex")}`;
}

/** The Lease `auto` takes: the chart's (its namespace and name by default). */
export const AUTO_LEASE = { namespace: "kube-system", name: "etcd-defrag" } as const;

const ALONE =
  "nothing stops another run started at the same moment from blocking a second member (README, Two runs never overlap)";

/**
 * The guard the options ask for, or undefined: --lease none, or auto without this etcd's Kubernetes.
 * An explicit Lease's config errors are exit 2 before any call; auto only says why it takes none.
 * `memberHosts` reads the etcd members' hosts (for auto's same-cluster check).
 */
export async function guardFor(
  ctx: CommandContext<RunCliOptions>,
  clock: Clock,
  memberHosts: () => Promise<string[]>,
): Promise<{ guard: RunGuard; what: string } | undefined> {
  const option = ctx.options.lease ?? "auto";
  if (option === "none") {
    ctx.logger.info(`no lease (--lease none): ${ALONE}`);
    return undefined;
  }
  const where = { kubeconfig: ctx.options.kubeconfig, env: ctx.env };
  if (option === "auto" && !kubeConfigured(where)) {
    ctx.logger.info(
      `no lease: no Kubernetes API is configured (no --kubeconfig, KUBECONFIG, pod or ~/.kube/config); ${ALONE}`,
    );
    return undefined;
  }
  const [{ createLeaseGuard }, { loadKubeConfig }] = await Promise.all([
    import("../k8s/lease.js"),
    import("../k8s/kubeconfig.js"),
  ]);
  let lease = option === "auto" ? undefined : option;
  let kubeConfig;
  if (option === "auto") {
    const auto = await autoLease(ctx, () => loadKubeConfig(where), memberHosts);
    if (auto === undefined) return undefined;
    ({ lease, kubeConfig } = auto);
  } else {
    kubeConfig = loadKubeConfig(where);
  }
  if (lease === undefined) return undefined;
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

/** auto: the chart's Lease when the configured Kubernetes is this etcd's cluster; else why not, said. */
async function autoLease(
  ctx: CommandContext<RunCliOptions>,
  load: () => KubeConfig,
  memberHosts: () => Promise<string[]>,
): Promise<{ lease: { namespace: string; name: string }; kubeConfig: KubeConfig } | undefined> {
  const { controlPlaneAddresses, sameCluster } = await import("../k8s/same-cluster.js");
  let kubeConfig;
  try {
    kubeConfig = load();
  } catch (err) {
    ctx.logger.warn(
      `no lease: the Kubernetes configuration cannot be used (${DefragError.from(err).describe()}); ${ALONE}`,
    );
    return undefined;
  }
  const server = kubeConfig.getCurrentCluster()?.server ?? "the API server";
  let nodes: string[];
  let hosts: string[];
  try {
    [nodes, hosts] = await Promise.all([controlPlaneAddresses(kubeConfig), memberHosts()]);
  } catch (err) {
    ctx.logger.warn(
      `no lease: cannot tell whether the Kubernetes API at ${server} is this etcd's cluster (${DefragError.from(err).message}); ${ALONE}; pass --lease NAMESPACE/NAME to take one there anyway`,
    );
    return undefined;
  }
  if (!sameCluster(nodes, hosts)) {
    ctx.logger.warn(
      `no lease: the Kubernetes API at ${server} is not this etcd's cluster (its control-plane nodes: ${[...nodes].sort().join(", ") || "none"}; the etcd members: ${[...hosts].sort().join(", ")}); ${ALONE}; pass --kubeconfig for this cluster's, or --lease NAMESPACE/NAME to use that one anyway`,
    );
    return undefined;
  }
  ctx.logger.info(
    `the Kubernetes API at ${server} is this etcd's cluster: taking the lease ${AUTO_LEASE.namespace}/${AUTO_LEASE.name} (--lease none: no lease)`,
  );
  return { lease: { ...AUTO_LEASE }, kubeConfig };
}
