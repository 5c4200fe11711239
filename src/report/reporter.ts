// Renders the run's progress: log lines, a heartbeat during a long defrag, and
// on an interactive terminal a live progress line instead of heartbeat lines.

import { formatDuration } from "../core/units.js";
import type { RunReporter } from "../core/ports.js";
import type { Logger, Sink } from "./logger.js";

export function createReporter(logger: Logger, opts: { live?: Sink | undefined }): RunReporter {
  let liveShown = false;
  const clearLive = (): void => {
    if (liveShown && opts.live) opts.live.write("\r\x1b[K");
    liveShown = false;
  };
  return {
    info: (message, fields) => {
      clearLive();
      logger.info(message, fields);
    },
    warn: (message, fields) => {
      clearLive();
      logger.warn(message, fields);
    },
    error: (message, fields) => {
      clearLive();
      logger.error(message, fields);
    },
    heartbeat: (node, elapsedMs) => {
      if (opts.live) {
        opts.live.write(`\r\x1b[K${node}: defragmenting... ${formatDuration(elapsedMs)}`);
        liveShown = true;
      } else {
        logger.info(`${node}: still defragmenting after ${formatDuration(elapsedMs)}`, {
          node,
          elapsedMs: Math.round(elapsedMs),
        });
      }
    },
    heartbeatDone: clearLive,
  };
}
