// What every command gets: resolved options, environment, output streams, logger, abort signal.

import type { LogFormat, Logger, Sink } from "../report/logger.js";
import type { Env } from "./options.js";

export interface CommandContext {
  options: Record<string, string | undefined>;
  env: Env;
  stdout: Sink;
  logger: Logger;
  logFormat: LogFormat;
  signal: AbortSignal;
  now: () => Date;
}
