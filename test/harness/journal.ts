// A journal of every Talos API call a harness server receives, with times.
// Local EtcdDefragment entries are when a member was really blocked: the
// server keeps awaiting etcd after the client gives up, so `end` is etcd's end.

export interface JournalEntry {
  seq: number;
  /** The node address of the server that received the call. */
  server: string;
  /** The `node`/`nodes` metadata, or null when the call was for the server itself. */
  target: string | null;
  method: string;
  via: "local" | "forward" | "aggregate";
  roles: string[];
  /** ms since the epoch, fractional (performance.timeOrigin + performance.now()). */
  start: number;
  /** 0 while the call is running. */
  end: number;
  code: string;
  message?: string;
  /** For COSI's State.Get: the resource type asked for. */
  resource?: string;
  /** When the client went away (deadline, reset) while the server kept working. */
  clientGoneAt?: number;
}

export function now(): number {
  return performance.timeOrigin + performance.now();
}

export class Journal {
  readonly entries: JournalEntry[] = [];
  private seq = 0;

  begin(e: Omit<JournalEntry, "seq" | "start" | "end" | "code">): JournalEntry {
    this.seq += 1;
    const entry: JournalEntry = { ...e, seq: this.seq, start: now(), end: 0, code: "" };
    this.entries.push(entry);
    return entry;
  }

  /** Defragments that are running right now on some member. */
  activeDefrags(): JournalEntry[] {
    return this.entries.filter((e) => e.via === "local" && e.method === "EtcdDefragment" && e.end === 0);
  }
}
