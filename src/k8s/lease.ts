// The run's guard as a Kubernetes Lease (coordination.k8s.io/v1), with the maintained
// client (@kubernetes/client-node), leader-election style: create it if absent (409: someone
// else won, read again), take it over only when it is released or expired, always with the
// resourceVersion read (so two takers cannot both win), renew it every third of its duration,
// release it on exit. Loaded with `await import()` only when a lease is configured.

import type { KubeConfig } from "@kubernetes/client-node";
import { ApiException, CoordinationV1Api, V1MicroTime, type V1Lease } from "@kubernetes/client-node";

import { configError, DefragError } from "../core/errors.js";
import type { Clock, HeldGuard, RunGuard } from "../core/ports.js";
import { HeldLease } from "./held-lease.js";
import { judge, observe, takenSpec, type LeaseRecord, type Observation } from "./lease-record.js";

/** Our clock and the API server's may differ this much before renewTime is written on the server's. */
const CLOCK_SKEW_TOLERANCE_MS = 2000;

export interface LeaseGuardOptions {
  kubeConfig: KubeConfig;
  namespace: string;
  name: string;
  /** Who we are in holderIdentity: unique per run. */
  identity: string;
  durationSeconds: number;
  clock: Clock;
  /** Monotonic milliseconds (performance.now), for "unchanged while we watched". */
  monotonic?: () => number;
  /** How often a waiting run reads the lease again; default a third of the duration, at most 2 s. */
  pollMs?: number;
  /** Told when a renewal fails (the lease is lost only when they keep failing). */
  onRenewError?: (err: DefragError) => void;
}

export function createLeaseGuard(opts: LeaseGuardOptions): RunGuard {
  return new LeaseGuard(opts);
}

interface Read {
  record: LeaseRecord | undefined;
  /** The API server's clock from the response's Date header, when there is one. */
  serverMs: number | undefined;
}

class LeaseGuard implements RunGuard {
  private readonly api: CoordinationV1Api;
  private readonly monotonic: () => number;
  private readonly pollMs: number;
  /** The API server's clock minus ours, from the last Date header (renewTime is written on its clock). */
  private offsetMs = 0;

  constructor(private readonly opts: LeaseGuardOptions) {
    this.api = opts.kubeConfig.makeApiClient(CoordinationV1Api);
    this.monotonic = opts.monotonic ?? (() => performance.now());
    this.pollMs = opts.pollMs ?? Math.min(2000, (opts.durationSeconds * 1000) / 3);
  }

  get what(): string {
    return `lease ${this.opts.namespace}/${this.opts.name}`;
  }

  async acquire(a: {
    waitMs: number;
    signal: AbortSignal;
    onWait: (holder: string, waitedMs: number) => void;
  }): Promise<HeldGuard> {
    const started = this.monotonic();
    let observed: Observation | undefined;
    for (;;) {
      if (a.signal.aborted) throw abortError(a.signal, `while waiting for the ${this.what}`);
      const { record, serverMs } = await this.read("get");
      if (record === undefined) {
        const created = await this.write(undefined);
        if (created !== undefined) return new HeldLease(this);
        continue; // Someone else created it first: read it.
      }
      observed = observe(observed, record, this.monotonic());
      const verdict = judge(
        record,
        this.opts.identity,
        { serverMs, monotonicMs: this.monotonic() },
        observed,
      );
      if (verdict.kind === "free") {
        const taken = await this.write(record);
        if (taken !== undefined) return new HeldLease(this);
        continue; // It changed under us (renewed, or taken by another): read it again.
      }
      const waited = this.monotonic() - started;
      if (waited >= a.waitMs) {
        const since = verdict.since === undefined ? "" : ` since ${verdict.since.toISOString()}`;
        throw new DefragError(
          "refused",
          `another run holds the ${this.what}: "${verdict.holder}"${since} (its lease expires in ${Math.ceil(verdict.expiresInMs / 1000)}s unless renewed); nothing was done`,
          {
            hint:
              a.waitMs > 0
                ? `waited ${Math.round(waited / 1000)}s (--lease-wait); let that run finish, or raise --lease-wait`
                : "let that run finish, or set --lease-wait to wait for it",
          },
        );
      }
      a.onWait(verdict.holder, waited);
      const pause = Math.max(50, Math.min(this.pollMs, a.waitMs - waited, verdict.expiresInMs + 100));
      try {
        await this.opts.clock.sleep(pause, a.signal);
      } catch {
        throw abortError(a.signal, `while waiting for the ${this.what}`);
      }
    }
  }

  /** The lease as it is now (undefined when absent). */
  private async read(verb: string): Promise<Read> {
    try {
      const r = await this.api.readNamespacedLeaseWithHttpInfo({
        name: this.opts.name,
        namespace: this.opts.namespace,
      });
      const date = r.headers.date ?? r.headers.Date;
      const serverMs = date === undefined ? undefined : Date.parse(date);
      if (serverMs !== undefined && !Number.isNaN(serverMs)) {
        // The Date header is truncated to the second: only a skew beyond that is worth correcting.
        const skew = serverMs - this.opts.clock.now();
        this.offsetMs = Math.abs(skew) > CLOCK_SKEW_TOLERANCE_MS ? skew : 0;
      }
      return {
        record: toRecord(r.data),
        serverMs: serverMs === undefined || Number.isNaN(serverMs) ? undefined : serverMs,
      };
    } catch (err) {
      if (err instanceof ApiException && err.code === 404) return { record: undefined, serverMs: undefined };
      throw this.mapError(err, verb);
    }
  }

  /**
   * Takes (or renews) the lease: creates it when `current` is undefined, else replaces it with
   * `current`'s resourceVersion. Undefined when someone else got there first (409).
   */
  private async write(current: LeaseRecord | undefined): Promise<LeaseRecord | undefined> {
    const now = new Date(this.opts.clock.now() + this.offsetMs);
    const spec = takenSpec(current, this.opts.identity, this.opts.durationSeconds, now);
    const body = this.body(current?.resourceVersion, {
      holderIdentity: spec.holder,
      leaseDurationSeconds: spec.durationSeconds,
      acquireTime: new V1MicroTime(spec.acquireTime.getTime()),
      renewTime: new V1MicroTime(spec.renewTime.getTime()),
      leaseTransitions: spec.transitions,
    });
    const verb = current === undefined ? "create" : "update";
    try {
      const written =
        current === undefined
          ? await this.api.createNamespacedLease({ namespace: this.opts.namespace, body })
          : await this.api.replaceNamespacedLease({
              name: this.opts.name,
              namespace: this.opts.namespace,
              body,
            });
      return toRecord(written);
    } catch (err) {
      if (err instanceof ApiException && (err.code === 409 || (verb === "update" && err.code === 404)))
        return undefined;
      throw this.mapError(err, verb);
    }
  }

  /** For HeldLease: renew (read, check it is still ours, write). "lost" when someone else holds it now. */
  async renew(): Promise<"renewed" | "lost"> {
    // A conflict means it changed between our read and our write: read it again.
    for (let attempt = 0; attempt < 3; attempt += 1) {
      const { record } = await this.read("get");
      if (record === undefined || record.holder !== this.opts.identity) return "lost";
      if ((await this.write(record)) !== undefined) return "renewed";
    }
    throw new DefragError("unreachable", `the ${this.what} kept changing while it was being renewed`);
  }

  /** For HeldLease: clear the holder (and shorten the duration), only if it is still ours. */
  async release(): Promise<void> {
    const { record } = await this.read("get");
    if (record === undefined || record.holder !== this.opts.identity) return;
    const body = this.body(record.resourceVersion, {
      leaseDurationSeconds: 1,
      renewTime: new V1MicroTime(this.opts.clock.now() + this.offsetMs),
      leaseTransitions: record.transitions,
    });
    try {
      await this.api.replaceNamespacedLease({ name: this.opts.name, namespace: this.opts.namespace, body });
    } catch (err) {
      if (err instanceof ApiException && err.code === 409) return; // Changed: no longer ours to clear.
      throw this.mapError(err, "update");
    }
  }

  /** This lease with `spec`; with a resourceVersion, a write that fails (409) if it changed since read. */
  private body(resourceVersion: string | undefined, spec: NonNullable<V1Lease["spec"]>): V1Lease {
    return {
      apiVersion: "coordination.k8s.io/v1",
      kind: "Lease",
      metadata: {
        name: this.opts.name,
        namespace: this.opts.namespace,
        ...(resourceVersion === undefined ? {} : { resourceVersion }),
      },
      spec,
    };
  }

  get durationMs(): number {
    return this.opts.durationSeconds * 1000;
  }

  get clock(): Clock {
    return this.opts.clock;
  }

  get now(): () => number {
    return this.monotonic;
  }

  reportRenewError(err: DefragError): void {
    this.opts.onRenewError?.(err);
  }

  private mapError(err: unknown, verb: string): DefragError {
    const server = this.opts.kubeConfig.getCurrentCluster()?.server ?? "the API server";
    const resource = `leases.coordination.k8s.io "${this.opts.name}" in namespace "${this.opts.namespace}"`;
    if (err instanceof ApiException) {
      const code = err.code;
      const message = statusMessage(err.body);
      if (code === 403) {
        // The chart creates the Lease and grants no create: a 403 on create means it was deleted.
        const hint =
          verb === "create"
            ? `the Lease does not exist and this identity may not create it. With the chart (lease.enabled) the release creates it: run helm upgrade (Flux: flux reconcile helmrelease --force) to restore it. Otherwise create it, or grant create on leases (apiGroup coordination.k8s.io) in namespace ${this.opts.namespace}`
            : `grant get and update on leases (apiGroup coordination.k8s.io) in namespace ${this.opts.namespace}, e.g. a Role with resourceNames [${this.opts.name}] (the chart's lease.enabled does this), and create the Lease or grant create on leases`;
        return configError(
          `the Kubernetes API server refused to ${verb} ${resource} (403 Forbidden${message ? `: ${message}` : ""})`,
          hint,
        );
      }
      if (code === 401) {
        return configError(
          `the Kubernetes API server ${server} did not accept the credentials (401 Unauthorized)`,
          "check the kubeconfig's user, or the pod's service-account token",
        );
      }
      if (code === 404 && verb === "create") {
        return configError(
          `cannot create ${resource}: ${message ?? "404 Not Found"}`,
          `check that namespace ${this.opts.namespace} exists (--lease NAMESPACE/NAME)`,
        );
      }
      return new DefragError(
        "unreachable",
        `the Kubernetes API server ${server} answered ${code} to ${verb} ${resource}${message ? `: ${message}` : ""}`,
        { endpoint: server, cause: err },
      );
    }
    const e = err as Error & { code?: string; cause?: { code?: string; message?: string } };
    const detail = e.cause?.message ?? e.message;
    return new DefragError(
      "unreachable",
      `cannot reach the Kubernetes API server ${server} to ${verb} the ${this.what}: ${detail}`,
      { endpoint: server, cause: err, hint: "check --kubeconfig / KUBECONFIG and that the API server is up" },
    );
  }
}

function toRecord(lease: V1Lease): LeaseRecord {
  const spec = lease.spec;
  return {
    holder: spec?.holderIdentity,
    durationSeconds: spec?.leaseDurationSeconds,
    acquireTime: toDate(spec?.acquireTime),
    renewTime: toDate(spec?.renewTime),
    transitions: spec?.leaseTransitions ?? 0,
    resourceVersion: lease.metadata?.resourceVersion ?? "",
  };
}

/** The client declares MicroTime as a Date but hands back the JSON string. */
function toDate(value: unknown): Date | undefined {
  if (value instanceof Date) return value;
  if (typeof value !== "string" || value === "") return undefined;
  const d = new Date(value);
  return Number.isNaN(d.getTime()) ? undefined : d;
}

function statusMessage(body: unknown): string | undefined {
  let b = body;
  if (typeof b === "string") {
    try {
      b = JSON.parse(b) as unknown;
    } catch {
      return b === "" ? undefined : (b as string);
    }
  }
  if (typeof b === "object" && b !== null && "message" in b && typeof b.message === "string")
    return b.message;
  return undefined;
}

function abortError(signal: AbortSignal, when: string): DefragError {
  const reason: unknown = signal.reason;
  if (reason instanceof DefragError) return reason;
  return new DefragError("aborted", `stopped ${when}`);
}
