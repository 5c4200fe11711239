// The guard that keeps two runs of this tool from overlapping, as the run sees it. The
// Kubernetes Lease behind it lives in src/k8s/ (run/ and core/ never import it).

/** Keeps two runs of this tool from overlapping: held for the whole run. */
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
