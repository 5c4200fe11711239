// A real Prometheus Pushgateway (Debian's prometheus-pushgateway) on loopback.

import { spawn, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";

import parsePrometheusTextFormat from "parse-prometheus-text-format";

import { waitFor } from "./wait.js";

export const PUSHGATEWAY_BIN = process.env.PUSHGATEWAY_BIN ?? "/usr/bin/prometheus-pushgateway";

export interface Sample {
  labels: Record<string, string>;
  value: string;
}

export interface MetricFamily {
  name: string;
  type: string;
  metrics: Sample[];
}

export function parseMetrics(text: string): MetricFamily[] {
  return parsePrometheusTextFormat(text) as MetricFamily[];
}

/** The value of the one sample of `name` whose labels include `labels`. */
export function sample(
  families: MetricFamily[],
  name: string,
  labels: Record<string, string> = {},
): number | undefined {
  const family = families.find((f) => f.name === name);
  const match = family?.metrics.find((m) => Object.entries(labels).every(([k, v]) => m.labels[k] === v));
  return match === undefined ? undefined : Number(match.value);
}

export class PushgatewayProcess {
  private constructor(
    readonly url: string,
    private readonly child: ChildProcess,
  ) {}

  static async start(address: string, port = 9091): Promise<PushgatewayProcess> {
    if (!existsSync(PUSHGATEWAY_BIN)) {
      throw new Error(
        `${PUSHGATEWAY_BIN} not found: install Debian's prometheus-pushgateway (scripts/test.sh does)`,
      );
    }
    const child = spawn(PUSHGATEWAY_BIN, [`--web.listen-address=${address}:${port}`], { stdio: "ignore" });
    const pg = new PushgatewayProcess(`http://${address}:${port}`, child);
    await waitFor("the Pushgateway to be ready", async () =>
      (await fetch(`${pg.url}/-/ready`)).ok ? true : undefined,
    );
    return pg;
  }

  async scrape(): Promise<MetricFamily[]> {
    return parseMetrics(await (await fetch(`${this.url}/metrics`)).text());
  }

  async stop(): Promise<void> {
    if (this.child.exitCode !== null) return;
    const exited = new Promise((resolve) => this.child.once("exit", resolve));
    this.child.kill("SIGKILL");
    await exited;
  }
}
