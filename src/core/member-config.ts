// What a member's etcd is configured with, as far as defragmentation cares: its
// quota (quota-backend-bytes) and its start-up defragment. Parsing etcd's flags
// and judging them against the member's version is here; reading them is the
// backend's (Backend.memberConfig). Pure.

import { DefragError } from "./errors.js";
import { formatBytes } from "./units.js";

/** etcd's own default quota (2 GiB), used when quota-backend-bytes is unset or 0; Talos sets none. */
export const ETCD_DEFAULT_QUOTA_BYTES = 2 * 1024 ** 3;

/** The two spellings of etcd's start-up defragment threshold flag (without dashes). */
export const STARTUP_DEFRAG_FLAG_EXPERIMENTAL = "experimental-bootstrap-defrag-threshold-megabytes";
export const STARTUP_DEFRAG_FLAG = "bootstrap-defrag-threshold-megabytes";
export type StartupDefragFlag = typeof STARTUP_DEFRAG_FLAG_EXPERIMENTAL | typeof STARTUP_DEFRAG_FLAG;

export interface StartupDefragSetting {
  /** The flag's name as configured. */
  flag: StartupDefragFlag;
  /** Its value as configured (megabytes; 0 switches it off). */
  value: string;
}

/** A member's configuration as the backend reads it. */
export interface MemberConfig {
  /** quota-backend-bytes as configured; absent when not set (etcd's default, 2 GiB, applies). */
  quotaBytes?: number;
  /** The start-up defragment threshold flags that are set, each under the name used (both when both are). */
  startupDefrag: StartupDefragSetting[];
  /** The backend reads the quota only, not etcd's flags (etcd's own API): the start-up defragment is unknown. */
  flagsUnknown?: true;
}

/** etcd flags by name (no dashes), each with its values in order, as Talos's extraArgs carry them. */
export type EtcdFlags = Readonly<Record<string, readonly string[]>>;

/**
 * The member's configuration from its etcd flags (`where`: where a person sets them, for messages). etcd parses a repeated flag's last value
 * (Go's flag package). A quota that etcd would not take as a byte count, or that switches
 * the quota off (negative), rejects with kind "config" naming the node: nothing may rely on it.
 */
export function memberConfigFromFlags(flags: EtcdFlags, node: string, where: string): MemberConfig {
  const config: MemberConfig = { startupDefrag: [] };
  const quota = lastValue(flags, "quota-backend-bytes");
  if (quota !== undefined) {
    const bytes = parseQuotaBytes(quota);
    if (bytes === undefined)
      throw new DefragError(
        "config",
        `etcd's quota-backend-bytes on ${node} is "${quota}", which is not a byte count`,
        {
          node,
          hint: `fix ${where} (an integer number of bytes), or run with --quota-bytes`,
        },
      );
    if (bytes < 0)
      throw new DefragError(
        "config",
        `etcd's quota-backend-bytes on ${node} is ${quota}: the quota is switched off, so no share of it can be judged`,
        { node, hint: "run with --quota-bytes set to the size the rule and the NOSPACE check should assume" },
      );
    if (bytes > 0) config.quotaBytes = bytes;
  }
  for (const flag of [STARTUP_DEFRAG_FLAG_EXPERIMENTAL, STARTUP_DEFRAG_FLAG] as const) {
    const value = lastValue(flags, flag);
    if (value !== undefined) config.startupDefrag.push({ flag, value });
  }
  return config;
}

function lastValue(flags: EtcdFlags, name: string): string | undefined {
  const values = flags[name];
  return values === undefined || values.length === 0 ? undefined : values[values.length - 1];
}

/**
 * A quota as etcd's int64 flag reads it (Go's strconv.ParseInt with base 0: decimal,
 * 0x/0o/0b prefixes, underscores between digits), or undefined when it does not parse.
 */
export function parseQuotaBytes(text: string): number | undefined {
  const t = text.trim();
  const m = /^([+-]?)(0[xX][0-9a-fA-F_]+|0[oO][0-7_]+|0[bB][01_]+|[0-9][0-9_]*)$/.exec(t);
  if (m === null) return undefined;
  const digits = (m[2] ?? "").replace(/_/g, "");
  if (/__|_$/.test(m[2] ?? "") || /^0[xXoObB]$/.test(digits)) return undefined;
  let value: bigint;
  try {
    value = BigInt(/^0[0-7]+$/.test(digits) ? `0o${digits.slice(1)}` : digits);
  } catch {
    return undefined;
  }
  if (m[1] === "-") value = -value;
  if (value > 2n ** 63n - 1n || value < -(2n ** 63n)) return undefined;
  return Number(value);
}

/** The quota that applies to a member: the configured one, else etcd's default. */
export function effectiveQuota(config: MemberConfig): number {
  return config.quotaBytes ?? ETCD_DEFAULT_QUOTA_BYTES;
}

/** What `status` tells about a member's start-up defragment. */
export interface StartupDefragReport {
  /** Whether etcd will defragment itself at start-up under this configuration and version. */
  configured: boolean;
  /** The threshold in megabytes, when configured. */
  thresholdMegabytes?: number;
  /** The flag's name that the member's version understands (undefined when the version is unknown). */
  flag?: StartupDefragFlag;
  /** What a person must know: a spelling this version does not accept, a value that does not parse. */
  warnings: string[];
}

/**
 * The start-up defragment flag names etcd accepts by version, the one to use first: 3.4 none
 * (the experimental flag came with 3.5.0), 3.5 only the experimental one, 3.6 both (the experimental one deprecated), 3.7 and later only the new one (the old
 * spelling stops etcd from starting: on Talos 1.14 that is the etcd of every control plane).
 */
export function acceptedStartupDefragFlags(version: string): StartupDefragFlag[] | undefined {
  const m = /^v?(\d+)\.(\d+)/.exec(version.trim());
  if (m === null) return undefined;
  const major = Number(m[1]);
  const minor = Number(m[2]);
  if (major !== 3) return major > 3 ? [STARTUP_DEFRAG_FLAG] : undefined;
  if (minor <= 4) return [];
  if (minor === 5) return [STARTUP_DEFRAG_FLAG_EXPERIMENTAL];
  if (minor === 6) return [STARTUP_DEFRAG_FLAG, STARTUP_DEFRAG_FLAG_EXPERIMENTAL];
  return [STARTUP_DEFRAG_FLAG];
}

/** Judges a member's start-up defragment settings against its etcd version (MemberStatus.protocolVersion). */
export function startupDefragReport(
  settings: readonly StartupDefragSetting[],
  version: string,
  node: string,
  /** Where a person sets etcd's flags (BackendWords.configWhere), for the warnings. */
  where: string,
): StartupDefragReport {
  const accepted = acceptedStartupDefragFlags(version);
  const preferred = accepted?.[0];
  const report: StartupDefragReport = {
    configured: false,
    ...(preferred !== undefined ? { flag: preferred } : {}),
    warnings: [],
  };
  const usable: { flag: StartupDefragFlag; megabytes: number }[] = [];
  for (const s of settings) {
    if (accepted !== undefined && !accepted.includes(s.flag)) {
      const why =
        preferred === undefined
          ? `etcd ${version} has no start-up defragment (3.5 added it): etcd does not start with it`
          : s.flag === STARTUP_DEFRAG_FLAG_EXPERIMENTAL
            ? `etcd ${version} no longer accepts it (removed in 3.7: etcd does not start with it); spell it --${preferred}`
            : `etcd ${version} does not accept it yet (new in 3.6: etcd does not start with it); spell it --${preferred}`;
      report.warnings.push(`${node}: etcd flag --${s.flag}=${s.value} in ${where}: ${why}`);
      continue;
    }
    const megabytes = /^\d+$/.test(s.value.trim()) ? Number(s.value.trim()) : undefined;
    if (megabytes === undefined) {
      report.warnings.push(`${node}: etcd flag --${s.flag}=${s.value} is not a number of megabytes`);
      continue;
    }
    if (accepted === undefined)
      report.warnings.push(
        `${node}: etcd version "${version}" is unknown: cannot tell whether it accepts --${s.flag}`,
      );
    usable.push({ flag: s.flag, megabytes });
  }
  if (usable.length > 1)
    report.warnings.push(
      `${node}: both --${STARTUP_DEFRAG_FLAG_EXPERIMENTAL} and --${STARTUP_DEFRAG_FLAG} are set in ${where}: etcd 3.6 refuses to start with both; keep --${STARTUP_DEFRAG_FLAG}`,
    );
  else if (usable[0]?.flag === STARTUP_DEFRAG_FLAG_EXPERIMENTAL && accepted?.length === 2)
    report.warnings.push(
      `${node}: etcd flag --${STARTUP_DEFRAG_FLAG_EXPERIMENTAL}=${usable[0].megabytes} in ${where} is deprecated in etcd ${version} and removed in 3.7, where etcd does not start with it; spell it --${STARTUP_DEFRAG_FLAG}`,
    );
  // With both spellings set, the new one is what etcd would take (3.6 refuses to start at all).
  const chosen = usable.find((u) => u.flag === STARTUP_DEFRAG_FLAG) ?? usable[0];
  if (chosen !== undefined && chosen.megabytes > 0) {
    report.configured = true;
    report.thresholdMegabytes = chosen.megabytes;
  }
  return report;
}

/** A short cell for the status table: "off", or the threshold. */
export function startupDefragCell(report: StartupDefragReport): string {
  return report.configured && report.thresholdMegabytes !== undefined
    ? `above ${formatBytes(report.thresholdMegabytes * 1024 ** 2)} free`
    : "off";
}
