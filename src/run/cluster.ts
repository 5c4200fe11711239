// The run's reading of the cluster: the nodes fixed at the start, and the last view
// with when it was read, so that a view under a second old (the first reading, or the
// health check just after a member) serves as the next gate check instead of a new read.

import type { Backend } from "../core/backend.js";
import type { ClusterView } from "../core/model.js";
import { raised } from "./results.js";
import type { RaisedAlarm } from "./types.js";
import type { Clock } from "./clock.js";
import { observeCluster } from "./observe.js";

const FRESH_MS = 1000;

export class ClusterReader {
  private last: { view: ClusterView; at: number };
  readonly nodes: readonly string[];

  constructor(
    private readonly backend: Backend,
    private readonly clock: Clock,
    first: ClusterView,
  ) {
    this.nodes = first.nodes.map((n) => n.node);
    this.last = { view: first, at: clock.now() };
  }

  /** Reads the cluster now. */
  async read(): Promise<ClusterView> {
    const view = await observeCluster(this.backend, { nodes: this.nodes });
    this.last = { view, at: this.clock.now() };
    return view;
  }

  /** The alarms raised as last read, for the result. */
  alarmsRaised(): RaisedAlarm[] {
    return this.last.view.alarms.map(raised);
  }

  /** The last view if it is fresh enough to decide on, else a new reading. */
  fresh(): Promise<ClusterView> {
    return this.clock.now() - this.last.at < FRESH_MS ? Promise.resolve(this.last.view) : this.read();
  }
}
