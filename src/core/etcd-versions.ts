// What the tool knows about etcd versions: parsing the version a member reports
// (EtcdMemberStatus.protocol_version, etcd's own server version) and whether it is one
// that can corrupt its data when a raft snapshot is applied while it defragments
// (etcd PRs 20650, 20653 and 20659: fixed in 3.6.5, 3.5.23 and 3.4.38, by etcd's changelogs). Pure.

export interface EtcdVersion {
  major: number;
  minor: number;
  patch: number;
  /** "rc.0" of "3.7.0-rc.0"; empty for a release. */
  prerelease: string;
}

/** The fixed releases. Which platform release ships them is the backend's to say (BackendWords.fixedEtcd). */
export const SNAPSHOT_DEFRAG_FIX = {
  fixedIn: ["3.4.38", "3.5.23", "3.6.5"],
  prs: "etcd PRs 20650, 20653 and 20659",
} as const;

/** "3.6.4", "v3.6.4", "3.7.0-rc.0"; undefined when it is not MAJOR.MINOR.PATCH. */
export function parseEtcdVersion(text: string): EtcdVersion | undefined {
  const m = /^v?(\d{1,4})\.(\d{1,4})\.(\d{1,4})(?:-([0-9A-Za-z.-]+))?(?:\+[0-9A-Za-z.-]+)?$/.exec(
    text.trim(),
  );
  if (m === null) return undefined;
  return { major: Number(m[1]), minor: Number(m[2]), patch: Number(m[3]), prerelease: m[4] ?? "" };
}

/** Semver order on release numbers; a pre-release comes before its release (and pre-releases tie). */
function compare(a: EtcdVersion, b: EtcdVersion): number {
  const d = a.major - b.major || a.minor - b.minor || a.patch - b.patch;
  if (d !== 0) return d;
  if (a.prerelease === b.prerelease) return 0;
  if (a.prerelease === "") return 1;
  if (b.prerelease === "") return -1;
  return 0;
}

const v = (major: number, minor: number, patch: number): EtcdVersion => ({
  major,
  minor,
  patch,
  prerelease: "",
});

export type VersionVerdict =
  /** Not a version this tool can judge: refuse (nothing defragmented). */
  | { kind: "unknown"; reason: string }
  | { kind: "fixed"; version: EtcdVersion }
  /** Can corrupt data when a raft snapshot is applied during a defragment. */
  | { kind: "affected"; version: EtcdVersion; fixedIn: string };

/**
 * Affected: etcd before 3.4.38, 3.5.0 to 3.5.22, 3.6.0 to 3.6.4 (pre-releases of a line count as
 * its first release). Fixed: 3.4.38+, 3.5.23+, 3.6.5+ and 3.7 on (CHANGELOG-3.4/3.5/3.6: v3.4.38
 * PR 20659, v3.5.23 PR 20653, v3.6.5 PR 20650). Another major version is unknown.
 */
export function judgeEtcdVersion(text: string): VersionVerdict {
  const version = parseEtcdVersion(text);
  if (version === undefined)
    return {
      kind: "unknown",
      reason:
        text.trim() === ""
          ? "reports no etcd version"
          : `reports etcd version "${text}", which does not parse`,
    };
  if (version.major !== 3)
    return { kind: "unknown", reason: `runs etcd ${text}, a major version this tool does not know` };
  if (compare(version, v(3, 4, 38)) < 0)
    return {
      kind: "affected",
      version,
      fixedIn: version.minor === 4 ? "3.4.38" : "3.4.38, 3.5.23 and 3.6.5",
    };
  if (compare(version, { ...v(3, 5, 0), prerelease: "0" }) >= 0 && compare(version, v(3, 5, 23)) < 0)
    return { kind: "affected", version, fixedIn: "3.5.23" };
  if (compare(version, { ...v(3, 6, 0), prerelease: "0" }) >= 0 && compare(version, v(3, 6, 5)) < 0)
    return { kind: "affected", version, fixedIn: "3.6.5" };
  return { kind: "fixed", version };
}

/**
 * The warning for an affected member, naming it, its version, the fixed versions and where they come
 * from (`fixedEtcd`: the backend's words, BackendWords.fixedEtcd).
 */
export function affectedWarning(
  member: string,
  verdict: Extract<VersionVerdict, { kind: "affected" }>,
  text: string,
  fixedEtcd: (fixedIn: string) => string,
): string {
  return `member ${member} runs etcd ${text}, which can corrupt its data when a raft snapshot is applied while it defragments (${SNAPSHOT_DEFRAG_FIX.prs}); fixed in etcd ${verdict.fixedIn}, ${fixedEtcd(verdict.fixedIn)}`;
}
