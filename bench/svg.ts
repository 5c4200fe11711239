// A timeline a person can look at: one lane per member, its defrag windows as
// bars, and every client operation on it as a dot at its start (height = latency).

import type { Op } from "./load.js";

export interface Timeline {
  title: string;
  members: string[];
  t0: number;
  t1: number;
  windows: { member: number; start: number; end: number }[];
  ops: Op[];
}

const W = 1000;
const LANE = 120;
const LEFT = 110;
const TOP = 40;

function esc(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

export function renderTimeline(t: Timeline): string {
  const span = Math.max(1, t.t1 - t.t0);
  const x = (ms: number): number => LEFT + ((ms - t.t0) / span) * (W - LEFT - 20);
  const maxLatency = Math.max(50, ...t.ops.map((o) => o.latencyMs));
  const parts: string[] = [];
  const height = TOP + t.members.length * LANE + 40;
  parts.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${height}" font-family="sans-serif" font-size="12">`,
  );
  parts.push(`<rect width="100%" height="100%" fill="white"/>`);
  parts.push(`<text x="10" y="20" font-size="14" font-weight="bold">${esc(t.title)}</text>`);
  t.members.forEach((name, i) => {
    const y = TOP + i * LANE;
    parts.push(`<text x="10" y="${y + LANE / 2}">${esc(name)}</text>`);
    parts.push(
      `<line x1="${LEFT}" x2="${W - 20}" y1="${y + LANE - 10}" y2="${y + LANE - 10}" stroke="#999"/>`,
    );
    for (const w of t.windows.filter((x2) => x2.member === i)) {
      parts.push(
        `<rect x="${x(w.start).toFixed(1)}" y="${y + 5}" width="${Math.max(1, x(w.end) - x(w.start)).toFixed(1)}" height="${LANE - 15}" fill="#f4a261" opacity="0.5"><title>defrag ${(w.end - w.start).toFixed(0)} ms</title></rect>`,
      );
    }
    for (const o of t.ops.filter((op) => op.member === i)) {
      const h = (Math.log1p(o.latencyMs) / Math.log1p(maxLatency)) * (LANE - 20);
      const color = !o.ok
        ? "#d00000"
        : o.kind === "keepalive"
          ? "#2a9d8f"
          : o.kind === "put"
            ? "#264653"
            : "#457b9d";
      parts.push(
        `<circle cx="${x(o.start).toFixed(1)}" cy="${(y + LANE - 10 - h).toFixed(1)}" r="${o.ok ? 1.5 : 3}" fill="${color}"/>`,
      );
    }
  });
  const axisY = TOP + t.members.length * LANE + 15;
  for (let i = 0; i <= 5; i += 1) {
    const ms = (span * i) / 5;
    parts.push(
      `<text x="${x(t.t0 + ms).toFixed(1)}" y="${axisY}" text-anchor="middle">${(ms / 1000).toFixed(1)} s</text>`,
    );
  }
  parts.push(
    `<text x="${LEFT}" y="${axisY + 18}">bars: member defragmenting (from etcd's log) · dots: operations (height: log latency, max ${maxLatency.toFixed(0)} ms; red: failed)</text>`,
  );
  parts.push("</svg>");
  return parts.join("\n") + "\n";
}
