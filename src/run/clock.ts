// The system's clock for the run (the Clock port is in src/core/ports.ts); the
// virtual-clock simulation (test/unit/sim-backend.ts) runs minutes in milliseconds instead.

import { setTimeout as delay } from "node:timers/promises";

import type { Clock } from "../core/ports.js";

export const systemClock: Clock = {
  now: () => Date.now(),
  sleep: (ms, signal) => delay(ms, undefined, signal ? { signal } : {}),
  every: (ms, fn) => {
    const timer = setInterval(fn, ms);
    return () => {
      clearInterval(timer);
    };
  },
  after: (ms, fn) => {
    const timer = setTimeout(fn, ms);
    return () => {
      clearTimeout(timer);
    };
  },
};
