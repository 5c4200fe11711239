// Byte sizes and durations: parsing user input and formatting for people.

const IEC = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"] as const;

/** 1536 -> "1.5 KiB"; one decimal from KiB up, whole bytes below. */
export function formatBytes(bytes: number | bigint): string {
  let value = Number(bytes);
  const negative = value < 0;
  value = Math.abs(value);
  let unit = 0;
  while (value >= 1024 && unit < IEC.length - 1) {
    value /= 1024;
    unit += 1;
  }
  const text = unit === 0 ? `${value} B` : `${value.toFixed(1)} ${IEC[unit] ?? "B"}`;
  return negative ? `-${text}` : text;
}

const SIZE_UNITS: Record<string, number> = {
  "": 1,
  b: 1,
  k: 1000,
  kb: 1000,
  m: 1000 ** 2,
  mb: 1000 ** 2,
  g: 1000 ** 3,
  gb: 1000 ** 3,
  t: 1000 ** 4,
  tb: 1000 ** 4,
  ki: 1024,
  kib: 1024,
  mi: 1024 ** 2,
  mib: 1024 ** 2,
  gi: 1024 ** 3,
  gib: 1024 ** 3,
  ti: 1024 ** 4,
  tib: 1024 ** 4,
};

/** "2147483648", "2GiB", "4GB", "512Mi" -> bytes; undefined when it is not a size. */
export function parseBytes(text: string): number | undefined {
  const match = /^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$/.exec(text);
  if (!match) return undefined;
  const factor = SIZE_UNITS[(match[2] ?? "").toLowerCase()];
  if (factor === undefined) return undefined;
  const bytes = Number(match[1]) * factor;
  return Number.isSafeInteger(Math.round(bytes)) ? Math.round(bytes) : undefined;
}

const DURATION_UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/**
 * Go-style durations as in talosctl and etcd flags: "15m", "90s", "1h30m", "250ms". As in Go, a bare
 * number is no duration (is "10" seconds or minutes?), but for "0".
 */
export function parseDuration(text: string): number | undefined {
  const trimmed = text.trim();
  if (/^0+(\.0+)?$/.test(trimmed)) return 0;
  const part = /(\d+(?:\.\d+)?)(ms|s|m|h)/gy;
  let total = 0;
  let consumed = 0;
  for (let m = part.exec(trimmed); m !== null; m = part.exec(trimmed)) {
    total += Number(m[1]) * (DURATION_UNITS[m[2] ?? ""] ?? Number.NaN);
    consumed = part.lastIndex;
  }
  if (consumed === 0 || consumed !== trimmed.length || !Number.isFinite(total)) return undefined;
  return Math.round(total);
}

/** 93_500 -> "1m33.5s"; 850 -> "850ms". */
export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)}ms`;
  const totalSeconds = ms / 1000;
  if (totalSeconds < 60) return `${totalSeconds.toFixed(1)}s`;
  const minutes = Math.floor(totalSeconds / 60);
  const seconds = totalSeconds - minutes * 60;
  if (minutes < 60) return `${minutes}m${seconds.toFixed(0)}s`;
  return `${Math.floor(minutes / 60)}h${minutes % 60}m`;
}

/** Member ids as Talos and etcd print them: 16 zero-padded hex digits. */
export function formatMemberId(id: bigint): string {
  return id.toString(16).padStart(16, "0");
}
