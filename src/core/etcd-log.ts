// What etcd's own log says about defragmentation on one member. etcd (3.4 with the
// zap logger, 3.5, 3.6, 3.7) writes one JSON object a line. The markers:
//   "starting defragment"          a Defragment call was accepted (any client: us, talosctl, etcdctl)
//   "finished defragment" /
//   "failed to defragment"         that call ended
//   "defragmenting"                the backend started (also etcd's own start-up defragment)
//   "finished defragmenting directory" (3.5+) / "defragmented" (3.4)
//                                  the backend finished, with etcd's own duration in "took"
//   "starting an etcd server"      the process (re)started: nothing before it is still running
// Pure: lines in, activity out.

import type { DefragActivity } from "./model.js";

const UNIT_MS: Record<string, number> = {
  h: 3_600_000,
  m: 60_000,
  s: 1000,
  ms: 1,
  us: 1e-3,
  µs: 1e-3,
  ns: 1e-6,
};

/** A Go time.Duration string ("1m2.5s", "25.08ms", "850µs") in milliseconds; undefined if it is not one. */
export function goDurationMs(text: string): number | undefined {
  let total = 0;
  let rest = text;
  if (rest === "") return undefined;
  while (rest.length > 0) {
    const m = /^(\d+(?:\.\d+)?)(h|ms|m|s|us|µs|ns)/.exec(rest);
    const unit = m?.[2];
    const factor = unit === undefined ? undefined : UNIT_MS[unit];
    if (m === null || factor === undefined) return undefined;
    total += Number(m[1]) * factor;
    rest = rest.slice(m[0].length);
  }
  return total;
}

/** etcd's timestamp ("2026-11-27T13:15:13.123456Z", or with an offset) in ms since the epoch, to the µs. */
export function etcdTimeMs(ts: string): number | undefined {
  const ms = Date.parse(ts);
  if (Number.isNaN(ms)) return undefined;
  // Date.parse keeps milliseconds only; etcd writes microseconds.
  const extra = /\.\d{3}(\d{1,3})/.exec(ts)?.[1];
  return extra === undefined ? ms : ms + Number(extra.padEnd(3, "0")) / 1000;
}

interface Entry {
  msg: string;
  at: number | undefined;
  took: string | undefined;
}

/** Every marker above contains one of these: other lines (most of them) are not parsed at all. */
const MARKER_WORDS = ["defragment", "starting an etcd server", "raft.node: "];

/** raft's own lines when the leader changes (go.etcd.io/raft node.go): elected, changed, lost. */
const LEADER_CHANGE = /^raft\.node: [0-9a-f]+ (elected leader|changed leader from|lost leader) /;
/** The last elections kept: enough to tell a recent one, never a growing list. */
const ELECTIONS_KEPT = 8;

function parse(line: string): Entry | undefined {
  if (!line.startsWith("{") || !MARKER_WORDS.some((w) => line.includes(w))) return undefined;
  try {
    const o = JSON.parse(line) as { msg?: unknown; ts?: unknown; took?: unknown };
    if (typeof o.msg !== "string") return undefined;
    return {
      msg: o.msg,
      at: typeof o.ts === "string" ? etcdTimeMs(o.ts) : undefined,
      took: typeof o.took === "string" ? o.took : undefined,
    };
  } catch {
    // A line cut by the tail window, or not etcd's: not evidence either way.
    return undefined;
  }
}

/**
 * Follows one member's etcd log line by line, oldest first (a tail, then what etcd logs next), and
 * keeps its defragmentation state. A tail that begins in the middle of a defragment shows no start
 * line: until some marker has been seen, the state at the window's start is unknown (`anchored`
 * false) and the tail alone cannot rule out a defragment in progress.
 */
export class EtcdLogTracker {
  private readonly calls: (number | undefined)[] = [];
  private backend: { since: number | undefined } | undefined;
  private readonly finished: DefragActivity["finished"] = [];
  private readonly elections: number[] = [];
  private anchoredAt = false;

  /** Whether a marker line was seen: from it on, the state is known (README, Design: the live view). */
  get anchored(): boolean {
    return this.anchoredAt;
  }

  /** Takes one line; true when it changed the state. */
  push(line: string): boolean {
    const e = parse(line.trim());
    if (e === undefined) return false;
    // A leader change says nothing about defragmenting: it does not anchor the state.
    if (LEADER_CHANGE.test(e.msg)) {
      if (e.at === undefined) return false;
      this.elections.push(e.at);
      if (this.elections.length > ELECTIONS_KEPT) this.elections.shift();
      return true;
    }
    switch (e.msg) {
      case "starting an etcd server":
        this.calls.length = 0;
        this.backend = undefined;
        break;
      case "starting defragment":
        this.calls.push(e.at);
        break;
      case "finished defragment":
      case "failed to defragment":
        // Its start may be before the tail window; the oldest open call is the one that ended.
        this.calls.shift();
        if (e.msg === "failed to defragment") this.backend = undefined;
        break;
      case "defragmenting":
        this.backend = { since: e.at };
        break;
      case "finished defragmenting directory":
      case "defragmented": {
        this.backend = undefined;
        const tookMs = e.took === undefined ? undefined : goDurationMs(e.took);
        if (e.at !== undefined && tookMs !== undefined) this.finished.push({ end: e.at, tookMs });
        break;
      }
      default:
        return false;
    }
    this.anchoredAt = true;
    return true;
  }

  activity(): DefragActivity {
    const finished = [...this.finished];
    const elections = this.elections.length > 0 ? { elections: [...this.elections] } : {};
    if (this.calls.length === 0 && this.backend === undefined)
      return { inProgress: undefined, finished, ...elections };
    const starts = [...this.calls, this.backend?.since].filter((t): t is number => t !== undefined);
    return {
      inProgress: {
        since: starts.length > 0 ? Math.min(...starts) : undefined,
        by: this.calls.length > 0 ? "call" : "start-up",
      },
      finished,
      ...elections,
    };
  }
}

/** The defragmentation state of one member from the tail of its etcd log, oldest line first. */
export function defragActivity(lines: readonly string[]): DefragActivity {
  const tracker = new EtcdLogTracker();
  for (const line of lines) tracker.push(line);
  return tracker.activity();
}
