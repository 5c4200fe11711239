// `npm run chart-readme`: writes the values table of charts/etcd-defrag/README.md from values.yaml (each
// key, its default, and the comment right above it). test/unit/chart-readme.test.ts fails when it is stale.

import { readFileSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";

import { isMap, isPair, isScalar, isSeq, parseDocument, type Pair, type YAMLMap } from "yaml";

export const CHART = join(resolve(import.meta.dirname, ".."), "charts", "etcd-defrag");
export const CHART_README = join(CHART, "README.md");
export const BEGIN = "<!-- BEGIN values table: generated from values.yaml by `npm run chart-readme` -->";
export const END = "<!-- END values table -->";

interface Row {
  key: string;
  default: string;
  description: string;
}

/** The comment's last paragraph (a file's header, before a blank line, is not the first key's). */
function clean(comment: string | null | undefined): string {
  return (
    (comment ?? "")
      .split(/\n\s*\n/)
      .at(-1)
      ?.split("\n")
      .map((l) => l.trim())
      .filter((l) => l !== "")
      .join(" ")
      .replace(/\s+/g, " ") ?? ""
  );
}

function rows(map: YAMLMap, prefix: string, mapComment = ""): Row[] {
  const out: Row[] = [];
  map.items.forEach((item: Pair, i) => {
    if (!isPair(item) || !isScalar(item.key)) return;
    const key = `${prefix}${String(item.key.value)}`;
    // yaml attaches the comment above a map's first key to the key or to the map, depending on the layout.
    const comment = clean(item.key.commentBefore) || (i === 0 ? mapComment : "");
    const value = item.value;
    if (isMap(value) && value.items.length > 0) {
      if (comment) out.push({ key, default: "", description: comment });
      out.push(...rows(value, `${key}.`, clean(value.commentBefore)));
      return;
    }
    const json = isScalar(value) || isSeq(value) || isMap(value) ? JSON.stringify(value.toJSON()) : "null";
    out.push({ key, default: json, description: comment });
  });
  return out;
}

/** A pipe ends a cell in Markdown, also inside code spans. */
function cell(text: string): string {
  return text.replace(/\|/g, "\\|");
}

/** The Markdown table, aligned the way prettier aligns it (so that `prettier --check` agrees). */
export function renderValuesTable(valuesYaml = readFileSync(join(CHART, "values.yaml"), "utf8")): string {
  const doc = parseDocument(valuesYaml);
  const root = doc.contents;
  if (!isMap(root)) throw new Error("values.yaml is not a map");
  const header = ["value", "default", "description"];
  const body = rows(root, "").map((r) => [
    `\`${r.key}\``,
    r.default === "" ? "" : cell(`\`${r.default}\``),
    cell(r.description),
  ]);
  const widths = header.map((h, i) => Math.max(3, h.length, ...body.map((r) => (r[i] ?? "").length)));
  const line = (cells: readonly string[]): string =>
    `| ${cells.map((c, i) => c.padEnd(widths[i] ?? 0)).join(" | ")} |`;
  return [line(header), line(widths.map((w) => "-".repeat(w))), ...body.map(line)].join("\n") + "\n";
}

/** The table between the markers, or undefined when the markers are missing. */
export function readmeTable(readme: string): string | undefined {
  const begin = readme.indexOf(BEGIN);
  const end = readme.indexOf(END);
  if (begin < 0 || end < begin) return undefined;
  return readme.slice(begin + BEGIN.length, end).trim() + "\n";
}

if (process.argv[1] && resolve(process.argv[1]) === resolve(import.meta.filename)) {
  const readme = readFileSync(CHART_README, "utf8");
  const begin = readme.indexOf(BEGIN);
  const end = readme.indexOf(END);
  if (begin < 0 || end < begin)
    throw new Error(`${CHART_README}: the markers ${BEGIN} ... ${END} are missing`);
  const updated = `${readme.slice(0, begin + BEGIN.length)}\n\n${renderValuesTable()}\n${readme.slice(end)}`;
  writeFileSync(CHART_README, updated);
  console.log(`wrote the values table of ${CHART_README}`);
}
