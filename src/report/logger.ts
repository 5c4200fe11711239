// Logs go to stderr (results go to stdout): readable text by default, JSON
// lines with --log-format json. pino does the structured part and redaction;
// the text format is a thin rendering of the same records.

import { pino, type Logger as PinoLogger } from "pino";

export type LogFormat = "text" | "json";
export type LogFields = Record<string, unknown>;

export interface Logger {
  debug(message: string, fields?: LogFields): void;
  info(message: string, fields?: LogFields): void;
  warn(message: string, fields?: LogFields): void;
  error(message: string, fields?: LogFields): void;
}

export interface Sink {
  write(chunk: string): unknown;
}

/** Field names that could ever hold key material; pino blanks them wherever they appear. */
const SECRET_PATHS = ["ca", "crt", "key", "caPem", "certPem", "keyPem", "TALOS_CA", "TALOS_CRT", "TALOS_KEY"];

export function createLogger(opts: {
  format: LogFormat;
  sink?: Sink;
  level?: string;
  runId?: string;
}): Logger {
  const sink = opts.sink ?? process.stderr;
  const destination = opts.format === "json" ? sink : { write: (line: string) => sink.write(toText(line)) };
  const base = opts.runId === undefined ? null : { runId: opts.runId };
  const logger: PinoLogger = pino(
    {
      level: opts.level ?? "info",
      base,
      messageKey: "msg",
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      redact: { paths: [...SECRET_PATHS, ...SECRET_PATHS.map((p) => `*.${p}`)], censor: "[redacted]" },
    },
    destination,
  );
  const log =
    (level: "debug" | "info" | "warn" | "error") =>
    (message: string, fields?: LogFields): void => {
      if (fields === undefined) logger[level](message);
      else logger[level](fields, message);
    };
  return { debug: log("debug"), info: log("info"), warn: log("warn"), error: log("error") };
}

const TEXT_LEVEL: Record<string, string> = { debug: "DEBUG", info: "INFO ", warn: "WARN ", error: "ERROR" };
const SKIP = new Set(["level", "time", "msg", "runId"]);

/** One JSON record -> "2026-11-24T02:00:01.123Z INFO  message key=value ...". */
function toText(line: string): string {
  let record: Record<string, unknown>;
  try {
    record = JSON.parse(line) as Record<string, unknown>;
  } catch {
    return line;
  }
  const fields = Object.entries(record)
    .filter(([k]) => !SKIP.has(k))
    .map(([k, v]) => `${k}=${typeof v === "string" && !/\s/.test(v) ? v : JSON.stringify(v)}`)
    .join(" ");
  const level = TEXT_LEVEL[String(record.level)] ?? String(record.level);
  const time = typeof record.time === "string" ? record.time : "";
  return `${time} ${level} ${typeof record.msg === "string" ? record.msg : JSON.stringify(record.msg ?? "")}${fields === "" ? "" : `  ${fields}`}\n`;
}
