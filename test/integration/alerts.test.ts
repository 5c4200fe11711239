// The chart's alert rules, rendered by helm and tested with promtool: each alert
// fires where it should and stays quiet where it should not.

import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";

import { PrometheusRule } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PrometheusRule";
import { parse, stringify } from "yaml";

import { REPO_ROOT } from "../harness/run-cli.js";
import { GiB, MiB } from "../harness/units.js";

interface Rule {
  alert: string;
  expr: string;
  annotations: Record<string, string>;
}

describe("alert rules (promtool test rules)", () => {
  let dir: string;
  let rules: Rule[];

  before(() => {
    const helm = join(REPO_ROOT, ".cache", "bin", "helm");
    const r = spawnSync(
      helm,
      [
        "template",
        "etcd-defrag",
        join(REPO_ROOT, "charts", "etcd-defrag"),
        "-n",
        "kube-system",
        "--set",
        "prometheusRule.enabled=true",
        "-s",
        "templates/prometheusrule.yaml",
      ],
      { encoding: "utf8" },
    );
    assert.equal(r.status, 0, `${r.stderr} (helm comes from scripts/k8s-tools.sh)`);
    const object = parse(r.stdout) as { spec: { groups: { rules: Rule[] }[] } };
    new PrometheusRule(object as never).validate();
    rules = object.spec.groups.flatMap((g) => g.rules);
    dir = mkdtempSync(join(tmpdir(), "alerts-test-"));
    writeFileSync(join(dir, "rules.yaml"), stringify({ groups: object.spec.groups }));
  });

  after(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  /** The annotations the rule would produce for these label values (promtool compares them too). */
  function annotations(alert: string, vars: Record<string, string>): Record<string, string> {
    const rule = rules.find((r) => r.alert === alert);
    assert.ok(rule, alert);
    return Object.fromEntries(
      Object.entries(rule.annotations).map(([k, v]) => [
        k,
        v.replace(
          /\{\{ (\$labels\.\w+|\$value \| humanizeDuration) \}\}/g,
          (_, name: string) => vars[name] ?? "",
        ),
      ]),
    );
  }

  function promtool(tests: unknown[]): { code: number | null; out: string } {
    const file = join(dir, `tests-${Math.random().toString(36).slice(2)}.yaml`);
    writeFileSync(file, stringify({ rule_files: ["rules.yaml"], evaluation_interval: "1m", tests }));
    const r = spawnSync("promtool", ["test", "rules", file], { encoding: "utf8", cwd: dir });
    return { code: r.status, out: r.stdout + r.stderr };
  }

  it("has the seven alerts, each with a runbook pointer", () => {
    assert.deepEqual(
      rules.map((r) => r.alert),
      [
        "EtcdDefragRunFailed",
        "EtcdAlarmRaisedAfterDefrag",
        "EtcdDefragNoRecentSuccess",
        "EtcdDefragMetricsAbsent",
        "EtcdDefragNotRunRecently",
        "EtcdDatabaseHighlyFragmented",
        "EtcdDatabaseNearQuota",
      ],
    );
    for (const r of rules) assert.match(r.annotations.runbook ?? "", /README, Troubleshooting/);
  });

  it("EtcdDefragRunFailed fires after a failed or refused run, not after a success", () => {
    const r = promtool([
      {
        interval: "1m",
        input_series: [
          {
            series: 'etcd_defrag_run_result{job="etcd-defrag",cluster="prod",result="refused"}',
            values: "0 0 1 1",
          },
          {
            series: 'etcd_defrag_run_result{job="etcd-defrag",cluster="prod",result="success"}',
            values: "1 1 0 0",
          },
          {
            series: 'etcd_defrag_run_result{job="etcd-defrag",cluster="lab",result="failed"}',
            values: "0 0 0 0",
          },
          {
            series: 'etcd_defrag_run_result{job="etcd-defrag",cluster="lab",result="success"}',
            values: "1 1 1 1",
          },
        ],
        alert_rule_test: [
          { eval_time: "1m", alertname: "EtcdDefragRunFailed", exp_alerts: [] },
          {
            eval_time: "3m",
            alertname: "EtcdDefragRunFailed",
            exp_alerts: [
              {
                exp_labels: { severity: "warning", cluster: "prod" },
                exp_annotations: annotations("EtcdDefragRunFailed", { "$labels.cluster": "prod" }),
              },
            ],
          },
        ],
      },
    ]);
    assert.equal(r.code, 0, r.out);
  });

  it("a run that left an alarm raised: EtcdDefragRunFailed and the critical EtcdAlarmRaisedAfterDefrag fire", () => {
    const r = promtool([
      {
        interval: "1m",
        input_series: [
          {
            series: 'etcd_defrag_run_result{job="etcd-defrag",cluster="prod",result="alarm-raised"}',
            values: "0 1 1",
          },
          {
            series: 'etcd_defrag_alarm_raised{job="etcd-defrag",cluster="prod",alarm="NOSPACE"}',
            values: "0 1 1",
          },
          {
            series: 'etcd_defrag_alarm_raised{job="etcd-defrag",cluster="prod",alarm="CORRUPT"}',
            values: "0 0 0",
          },
        ],
        alert_rule_test: [
          { eval_time: "0m", alertname: "EtcdAlarmRaisedAfterDefrag", exp_alerts: [] },
          {
            eval_time: "2m",
            alertname: "EtcdDefragRunFailed",
            exp_alerts: [
              {
                exp_labels: { severity: "warning", cluster: "prod" },
                exp_annotations: annotations("EtcdDefragRunFailed", { "$labels.cluster": "prod" }),
              },
            ],
          },
          {
            eval_time: "2m",
            alertname: "EtcdAlarmRaisedAfterDefrag",
            exp_alerts: [
              {
                exp_labels: { severity: "critical", cluster: "prod", alarm: "NOSPACE" },
                exp_annotations: annotations("EtcdAlarmRaisedAfterDefrag", {
                  "$labels.cluster": "prod",
                  "$labels.alarm": "NOSPACE",
                }),
              },
            ],
          },
        ],
      },
    ]);
    assert.equal(r.code, 0, r.out);
  });

  it("EtcdDefragNoRecentSuccess fires when the last success is older than 8 days", () => {
    const r = promtool([
      {
        interval: "1h",
        input_series: [
          // Succeeded at time 0, never again.
          {
            series: 'etcd_defrag_last_success_timestamp_seconds{job="etcd-defrag",cluster="prod"}',
            values: "0x240",
          },
          // Succeeded a day ago.
          {
            series: 'etcd_defrag_last_success_timestamp_seconds{job="etcd-defrag",cluster="lab"}',
            values: "691200x240",
          },
        ],
        alert_rule_test: [
          { eval_time: "7d", alertname: "EtcdDefragNoRecentSuccess", exp_alerts: [] },
          {
            eval_time: "9d",
            alertname: "EtcdDefragNoRecentSuccess",
            exp_alerts: [
              {
                exp_labels: { severity: "warning", cluster: "prod" },
                exp_annotations: annotations("EtcdDefragNoRecentSuccess", {
                  "$labels.cluster": "prod",
                  "$value | humanizeDuration": "9d 0h 0m 0s",
                }),
              },
            ],
          },
        ],
      },
    ]);
    assert.equal(r.code, 0, r.out);
  });

  it("EtcdDefragMetricsAbsent fires when no run ever pushed metrics, for longer than 8 days", () => {
    const r = promtool([
      {
        // Nothing from etcd-defrag at all (an image that cannot be pulled, a job that never started).
        interval: "1h",
        input_series: [{ series: 'up{job="pushgateway"}', values: "1x240" }],
        alert_rule_test: [
          { eval_time: "7d", alertname: "EtcdDefragMetricsAbsent", exp_alerts: [] },
          {
            eval_time: "9d",
            alertname: "EtcdDefragMetricsAbsent",
            exp_alerts: [
              {
                exp_labels: { severity: "warning" },
                exp_annotations: annotations("EtcdDefragMetricsAbsent", {}),
              },
            ],
          },
        ],
      },
      {
        // A run pushed: quiet.
        interval: "1h",
        input_series: [
          {
            series: 'etcd_defrag_last_run_timestamp_seconds{job="etcd-defrag",cluster="prod"}',
            values: "0x240",
          },
        ],
        alert_rule_test: [{ eval_time: "9d", alertname: "EtcdDefragMetricsAbsent", exp_alerts: [] }],
      },
    ]);
    assert.equal(r.code, 0, r.out);
  });

  it("with metrics.clusterName, EtcdDefragMetricsAbsent watches that cluster's series", () => {
    const rendered = spawnSync(
      join(REPO_ROOT, ".cache", "bin", "helm"),
      [
        "template",
        "etcd-defrag",
        join(REPO_ROOT, "charts", "etcd-defrag"),
        "--set",
        "prometheusRule.enabled=true",
        "--set",
        "metrics.clusterName=prod",
        "-s",
        "templates/prometheusrule.yaml",
      ],
      { encoding: "utf8" },
    );
    assert.equal(rendered.status, 0, rendered.stderr);
    const object = parse(rendered.stdout) as { spec: { groups: { rules: Rule[] }[] } };
    const absent = object.spec.groups
      .flatMap((g) => g.rules)
      .find((x) => x.alert === "EtcdDefragMetricsAbsent");
    assert.equal(absent?.expr, 'absent(etcd_defrag_last_run_timestamp_seconds{cluster="prod"})');
  });

  it("a Pushgateway scraped without honor_labels (job becomes exported_job): the alerts still fire and stay quiet", () => {
    // What Prometheus stores then: the scrape's own job and instance, ours renamed to exported_job.
    const labels = (cluster: string, more = "") =>
      `{job="pushgateway",instance="pushgateway.monitoring:9091",exported_job="etcd-defrag",cluster="${cluster}"${more}}`;
    const r = promtool([
      {
        interval: "1h",
        input_series: [
          { series: `etcd_defrag_run_result${labels("prod", ',result="failed"')}`, values: "1x240" },
          { series: `etcd_defrag_last_run_timestamp_seconds${labels("prod")}`, values: "0x240" },
          { series: `etcd_defrag_last_success_timestamp_seconds${labels("prod")}`, values: "0x240" },
        ],
        alert_rule_test: [
          {
            eval_time: "1h",
            alertname: "EtcdDefragRunFailed",
            exp_alerts: [
              {
                exp_labels: { severity: "warning", cluster: "prod" },
                exp_annotations: annotations("EtcdDefragRunFailed", { "$labels.cluster": "prod" }),
              },
            ],
          },
          { eval_time: "9d", alertname: "EtcdDefragMetricsAbsent", exp_alerts: [] },
          {
            eval_time: "9d",
            alertname: "EtcdDefragNoRecentSuccess",
            exp_alerts: [
              {
                exp_labels: { severity: "warning", cluster: "prod" },
                exp_annotations: annotations("EtcdDefragNoRecentSuccess", {
                  "$labels.cluster": "prod",
                  "$value | humanizeDuration": "9d 0h 0m 0s",
                }),
              },
            ],
          },
        ],
      },
    ]);
    assert.equal(r.code, 0, r.out);
  });

  it("EtcdDefragNotRunRecently fires when the last run is older than 8 days, whatever its result", () => {
    const r = promtool([
      {
        interval: "1h",
        input_series: [
          // Ran at time 0 (and failed: no success metric at all), never again.
          {
            series: 'etcd_defrag_last_run_timestamp_seconds{job="etcd-defrag",cluster="prod"}',
            values: "0x240",
          },
          // Ran a day ago.
          {
            series: 'etcd_defrag_last_run_timestamp_seconds{job="etcd-defrag",cluster="lab"}',
            values: "691200x240",
          },
        ],
        alert_rule_test: [
          { eval_time: "7d", alertname: "EtcdDefragNotRunRecently", exp_alerts: [] },
          {
            eval_time: "9d",
            alertname: "EtcdDefragNotRunRecently",
            exp_alerts: [
              {
                exp_labels: { severity: "warning", cluster: "prod" },
                exp_annotations: annotations("EtcdDefragNotRunRecently", {
                  "$labels.cluster": "prod",
                  "$value | humanizeDuration": "9d 0h 0m 0s",
                }),
              },
            ],
          },
        ],
      },
    ]);
    assert.equal(r.code, 0, r.out);
  });

  it("EtcdDatabaseHighlyFragmented fires after a day of >50% free space on a DB over 100 MiB", () => {
    const labels = (instance: string) => `{job="etcd",instance="${instance}"}`;
    const r = promtool([
      {
        // Samples every minute: a series is stale 5 minutes after its last sample, which would reset "for".
        interval: "1m",
        input_series: [
          { series: `etcd_mvcc_db_total_size_in_bytes${labels("cp-1")}`, values: `${300 * MiB}x1600` },
          { series: `etcd_mvcc_db_total_size_in_use_in_bytes${labels("cp-1")}`, values: `${100 * MiB}x1600` },
          // Fragmented but small: not worth an alert.
          { series: `etcd_mvcc_db_total_size_in_bytes${labels("cp-2")}`, values: `${50 * MiB}x1600` },
          { series: `etcd_mvcc_db_total_size_in_use_in_bytes${labels("cp-2")}`, values: `${10 * MiB}x1600` },
          // Large but not fragmented.
          { series: `etcd_mvcc_db_total_size_in_bytes${labels("cp-3")}`, values: `${300 * MiB}x1600` },
          { series: `etcd_mvcc_db_total_size_in_use_in_bytes${labels("cp-3")}`, values: `${250 * MiB}x1600` },
        ],
        alert_rule_test: [
          { eval_time: "12h", alertname: "EtcdDatabaseHighlyFragmented", exp_alerts: [] },
          {
            eval_time: "25h",
            alertname: "EtcdDatabaseHighlyFragmented",
            exp_alerts: [
              {
                exp_labels: { severity: "warning", job: "etcd", instance: "cp-1" },
                exp_annotations: annotations("EtcdDatabaseHighlyFragmented", { "$labels.instance": "cp-1" }),
              },
            ],
          },
        ],
      },
    ]);
    assert.equal(r.code, 0, r.out);
  });

  it("EtcdDatabaseNearQuota fires above 80% of the quota for 10 minutes", () => {
    const labels = (instance: string) => `{job="etcd",instance="${instance}"}`;
    const r = promtool([
      {
        interval: "1m",
        input_series: [
          { series: `etcd_mvcc_db_total_size_in_bytes${labels("cp-1")}`, values: `${1.8 * GiB}x20` },
          { series: `etcd_server_quota_backend_bytes${labels("cp-1")}`, values: `${2 * GiB}x20` },
          { series: `etcd_mvcc_db_total_size_in_bytes${labels("cp-2")}`, values: `${1 * GiB}x20` },
          { series: `etcd_server_quota_backend_bytes${labels("cp-2")}`, values: `${2 * GiB}x20` },
        ],
        alert_rule_test: [
          { eval_time: "5m", alertname: "EtcdDatabaseNearQuota", exp_alerts: [] },
          {
            eval_time: "15m",
            alertname: "EtcdDatabaseNearQuota",
            exp_alerts: [
              {
                exp_labels: { severity: "critical", job: "etcd", instance: "cp-1" },
                exp_annotations: annotations("EtcdDatabaseNearQuota", { "$labels.instance": "cp-1" }),
              },
            ],
          },
        ],
      },
    ]);
    assert.equal(r.code, 0, r.out);
  });

  it("promtool would notice a wrong expectation (the check is live)", () => {
    const r = promtool([
      {
        interval: "1m",
        input_series: [
          {
            series: 'etcd_defrag_run_result{job="etcd-defrag",cluster="prod",result="success"}',
            values: "1 1 1",
          },
        ],
        alert_rule_test: [
          {
            eval_time: "2m",
            alertname: "EtcdDefragRunFailed",
            exp_alerts: [{ exp_labels: { severity: "warning", cluster: "prod" } }],
          },
        ],
      },
    ]);
    assert.notEqual(r.code, 0);
  });
});
