// What the tests of `run` share: a rule that small test databases meet, the JSON
// summary as a program reads it, and the EtcdDefragment calls the journal saw.

import type { Harness } from "./harness.js";
import type { JournalEntry } from "./journal.js";

/** Low thresholds so that small test databases count as fragmented. */
export const TEST_RULE = "dbSizeFree >= 8 * MiB && fragmentation >= 0.3";

/** `run --output json`, written out here rather than taken from src/report: it is the contract under test. */
export interface Summary {
  result: string;
  startedAt: string;
  members: {
    node: string;
    memberId: string;
    name: string;
    action: string;
    reason: string;
    isLeader: boolean;
    before: { dbSize: number; dbSizeInUse: number } | null;
    after: { dbSize: number; dbSizeInUse: number } | null;
    durationMs: number | null;
    blockedMs: number | null;
    /** The member's quota the run judged it by. */
    quotaBytes?: number;
    notes: string[];
    leadershipMovedTo?: string;
  }[];
  reclaimedBytes: number;
  durationMs: number;
  alarmsDisarmed: string[];
  alarmsRaised: { alarm: string; member: string }[];
  snapshot: { node: string; path: string; bytes: number } | null;
  refusals: { gate: string; message: string; node?: string }[];
  error?: string;
}

export function parseSummary(stdout: string): Summary {
  return JSON.parse(stdout) as Summary;
}

/** The journal's next sequence number: entries from here on belong to what the test does next. */
export function nextSeq(h: Harness): number {
  return (h.journal.at(-1)?.seq ?? 0) + 1;
}

/** Local EtcdDefragment calls: when each member was really blocked, in start order. */
export function defrags(journal: readonly JournalEntry[], since = 0): JournalEntry[] {
  return journal
    .filter((j) => j.seq >= since && j.via === "local" && j.method === "EtcdDefragment")
    .sort((a, b) => a.start - b.start);
}
