// Reading a member's /metrics (on its client URL, with the same TLS as its gRPC API) for what
// etcd says about defragmentation there: etcd_disk_defrag_inflight (1 while a defragment runs,
// whoever started it; etcd 3.5.10+ and 3.6+), the defragment duration histogram's count and sum
// (one more each time one finishes), and the leader changes it has seen.

import { request as httpRequest, Agent as HttpAgent } from "node:http";
import { request as httpsRequest, Agent as HttpsAgent } from "node:https";
import { isIP } from "node:net";

import type { EtcdTls } from "../config/etcd-config.js";
import { DefragError } from "../core/errors.js";
import { etcdCallError } from "./errors.js";

export const DEFRAG_INFLIGHT = "etcd_disk_defrag_inflight";
const DEFRAG_COUNT = "etcd_disk_backend_defrag_duration_seconds_count";
const DEFRAG_SUM = "etcd_disk_backend_defrag_duration_seconds_sum";
const LEADER_CHANGES = "etcd_server_leader_changes_seen_total";

export interface DefragMetrics {
  /** etcd_disk_defrag_inflight; undefined when this etcd does not export it (before 3.5.10). */
  inflight: boolean | undefined;
  /** Defragments finished since etcd started, and the seconds they took in all. */
  finishedCount: number;
  finishedSeconds: number;
  leaderChanges: number;
}

/** The metrics this module reads, from Prometheus's text format; other lines are skipped unparsed. */
export function parseDefragMetrics(text: string): DefragMetrics {
  const values = new Map<string, number>();
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const space = line.indexOf(" ");
    const name = line.slice(0, space);
    if (name !== DEFRAG_INFLIGHT && name !== DEFRAG_COUNT && name !== DEFRAG_SUM && name !== LEADER_CHANGES)
      continue;
    values.set(
      name,
      Number(
        line
          .slice(space + 1)
          .trim()
          .split(" ")[0],
      ),
    );
  }
  const inflight = values.get(DEFRAG_INFLIGHT);
  return {
    inflight: inflight === undefined ? undefined : inflight > 0,
    finishedCount: values.get(DEFRAG_COUNT) ?? 0,
    finishedSeconds: values.get(DEFRAG_SUM) ?? 0,
    leaderChanges: values.get(LEADER_CHANGES) ?? 0,
  };
}

/** One member's /metrics, over a kept-alive connection (a scrape every half second must not redo TLS). */
export class MetricsReader {
  private readonly agent: HttpAgent | HttpsAgent;
  private readonly https: boolean;

  constructor(
    readonly url: string,
    tls: EtcdTls | undefined,
    private readonly timeoutMs: number,
  ) {
    this.https = url.startsWith("https:");
    const host = new URL(url).hostname.replace(/^\[|\]$/g, "");
    this.agent = this.https
      ? new HttpsAgent({
          keepAlive: true,
          maxSockets: 1,
          ...(tls?.caPem !== undefined ? { ca: tls.caPem } : {}),
          ...(tls?.certPem !== undefined ? { cert: tls.certPem } : {}),
          ...(tls?.keyPem !== undefined ? { key: tls.keyPem } : {}),
          minVersion: "TLSv1.2",
          ...(isIP(host) === 0 ? { servername: host } : {}),
        })
      : new HttpAgent({ keepAlive: true, maxSockets: 1 });
  }

  /** Every failure names the gauge and the ways around an etcd that serves no /metrics here. */
  async read(signal: AbortSignal): Promise<DefragMetrics> {
    try {
      return await this.get(signal);
    } catch (err) {
      const e = DefragError.from(err);
      if (e.kind === "internal" || e.kind === "aborted" || e.kind === "tls") throw e;
      throw new DefragError(
        e.kind,
        `${DEFRAG_INFLIGHT} cannot be read at ${this.url}/metrics: ${e.message}`,
        {
          node: e.node,
          cause: err,
          hint: "etcd serves /metrics on its client URL unless it runs with --listen-client-http-urls (k3s, RKE2): pass --etcd-metrics-port with its --listen-metrics-urls port (2381 with etcd-expose-metrics), or --without-defrag-gauge status-only",
        },
      );
    }
  }

  private get(signal: AbortSignal): Promise<DefragMetrics> {
    const request = this.https ? httpsRequest : httpRequest;
    return new Promise((resolve, reject) => {
      const req = request(
        `${this.url}/metrics`,
        { agent: this.agent, signal, timeout: this.timeoutMs, headers: { accept: "text/plain" } },
        (res) => {
          const chunks: Buffer[] = [];
          res.on("data", (c: Buffer) => chunks.push(c));
          res.on("error", (err) => {
            reject(etcdCallError("metrics", this.url, err));
          });
          res.on("end", () => {
            if (res.statusCode !== 200) {
              reject(
                new DefragError("etcd", `${this.url}/metrics answered HTTP ${res.statusCode ?? "?"}`, {
                  node: this.url,
                }),
              );
              return;
            }
            resolve(parseDefragMetrics(Buffer.concat(chunks).toString("utf8")));
          });
        },
      );
      req.on("timeout", () => {
        req.destroy(
          new DefragError("timeout", `${this.url}/metrics did not answer in time`, { node: this.url }),
        );
      });
      req.on("error", (err) => {
        reject(etcdCallError("metrics", this.url, err));
      });
      req.end();
    });
  }

  close(): void {
    this.agent.destroy();
  }
}
