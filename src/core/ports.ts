// The ports of the run: what it is given besides a Backend (src/core/backend.ts) — a clock, a
// reporter, a snapshot store and a guard against a second run. core/ states them; run/ uses
// them; the adapters (report/, snapshot/, k8s/, the simulation) implement them.

/** Time for the run: every wait and every timer goes through it (the simulation's is virtual). */
export interface Clock {
  /** Milliseconds since the epoch. */
  now(): number;
  /** Resolves after `ms`; rejects when `signal` aborts first. */
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
  /** Calls `fn` every `ms` until the returned function is called. */
  every(ms: number, fn: () => void): () => void;
  /** Calls `fn` once after `ms` unless the returned function is called first. */
  after(ms: number, fn: () => void): () => void;
}

/** Where the run tells what it does; src/report renders it. */
export interface RunReporter {
  info(message: string, fields?: Record<string, unknown>): void;
  warn(message: string, fields?: Record<string, unknown>): void;
  error(message: string, fields?: Record<string, unknown>): void;
  /** Called at a steady interval while a member defragments. */
  heartbeat(node: string, elapsedMs: number): void;
  /** The heartbeat's member is done (clears a live progress line). */
  heartbeatDone(): void;
}

/** Where snapshots are kept (--snapshot-dir): src/snapshot/file-store.ts. */
export interface SnapshotStore {
  /** Where, for messages. */
  readonly where: string;
  /** A new snapshot of `node`'s member; nothing is kept unless committed. */
  create(node: string): Promise<SnapshotWriter>;
}

export interface SnapshotWriter {
  write(chunk: Uint8Array): Promise<void>;
  /**
   * Checks the snapshot (etcd's sha256 in its last 32 bytes matches the rest), keeps it, and removes the
   * oldest beyond the store's limit. Rejects, keeping nothing, when the check fails.
   */
  commit(): Promise<{ path: string; bytes: number; removed: string[] }>;
  /** Discards what was written. */
  abort(): Promise<void>;
}

/** Keeps two runs of this tool from overlapping: held for the whole run (a Kubernetes Lease, src/k8s/). */
export interface RunGuard {
  /**
   * Takes the guard, waiting up to `waitMs` while someone else holds it (calling onWait now and
   * then with the holder's identity). Rejects with DefragError kind "refused" naming the holder
   * when still held after waitMs.
   */
  acquire(opts: {
    waitMs: number;
    signal: AbortSignal;
    onWait: (holder: string, waitedMs: number) => void;
  }): Promise<HeldGuard>;
}

export interface HeldGuard {
  /** Aborted when the guard is lost (renewals failed past the lease duration): the run starts nothing new. */
  readonly lost: AbortSignal;
  /** Gives it up (best effort: an expired lease frees itself). */
  release(): Promise<void>;
}
