// What every command gets: its typed options, environment, output streams, logger, abort signal.

import type { LogFormat, Logger, Sink } from "../report/logger.js";
import type { Env } from "../config/config.js";

export interface CommandContext<O> {
  options: O;
  env: Env;
  stdout: Sink;
  stderr: Sink;
  /** stderr is an interactive terminal with text logs: show a live progress line. */
  liveProgress: boolean;
  logger: Logger;
  logFormat: LogFormat;
  signal: AbortSignal;
  now: () => Date;
}
