// A lease while this run holds it: renewed every third of its duration on the run's clock;
// lost (the run starts nothing new) when another run took it, or when renewals kept failing
// for two thirds of the duration, before anyone else may take it over.

import { DefragError } from "../core/errors.js";
import type { Clock, HeldGuard } from "../core/ports.js";

/** What a held lease needs of the guard that took it. */
export interface LeaseOps {
  readonly clock: Clock;
  readonly durationMs: number;
  /** "the Lease NAMESPACE/NAME", for messages. */
  readonly what: string;
  now(): number;
  renew(): Promise<"renewed" | "lost">;
  release(): Promise<void>;
  reportRenewError(err: DefragError): void;
}

export class HeldLease implements HeldGuard {
  private readonly controller = new AbortController();
  private readonly stopTimer: () => void;
  private lastRenewed: number;
  private inFlight: Promise<void> | undefined;
  private released = false;

  constructor(private readonly guard: LeaseOps) {
    this.lastRenewed = guard.now();
    this.stopTimer = guard.clock.every(guard.durationMs / 3, () => {
      this.inFlight ??= this.renew().finally(() => {
        this.inFlight = undefined;
      });
    });
  }

  get lost(): AbortSignal {
    return this.controller.signal;
  }

  private async renew(): Promise<void> {
    if (this.released || this.controller.signal.aborted) return;
    try {
      const r = await this.guard.renew();
      if (r === "lost") {
        this.lose(`another run took the ${this.guard.what}`);
        return;
      }
      this.lastRenewed = this.guard.now();
    } catch (err) {
      const e = DefragError.from(err);
      this.guard.reportRenewError(e);
      // Lost two thirds into the lease, before anyone else may take it over: the run starts nothing new.
      if (this.guard.now() - this.lastRenewed >= (this.guard.durationMs * 2) / 3) {
        this.lose(
          `could not renew the ${this.guard.what} for ${Math.round((this.guard.now() - this.lastRenewed) / 1000)}s: ${e.message}`,
        );
      }
    }
  }

  private lose(why: string): void {
    this.stopTimer();
    this.controller.abort(new DefragError("aborted", `lost the guard against concurrent runs: ${why}`));
  }

  async release(): Promise<void> {
    if (this.released) return;
    this.released = true;
    this.stopTimer();
    await this.inFlight;
    if (this.controller.signal.aborted) return;
    await this.guard.release();
  }
}
