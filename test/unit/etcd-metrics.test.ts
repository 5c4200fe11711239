// What the etcd backend reads of a member's /metrics (parseDefragMetrics: the defrag gauge, the
// defragment duration histogram's count and sum, the leader changes) and where it reads them
// (metricsUrl: the client URL, or http://HOST:PORT with --etcd-metrics-port).

import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { metricsUrl } from "../../src/etcd/backend.js";
import { DEFRAG_INFLIGHT, parseDefragMetrics, type DefragMetrics } from "../../src/etcd/metrics.js";

/** As etcd 3.5.10+ exposes them (client_golang's text format), among other metrics. */
const ETCD_3_5 = `# HELP etcd_debugging_mvcc_db_compaction_keys_total Total number of db keys compacted.
# TYPE etcd_debugging_mvcc_db_compaction_keys_total counter
etcd_debugging_mvcc_db_compaction_keys_total 0
# HELP etcd_disk_backend_defrag_duration_seconds The latency distribution of backend defragmentation.
# TYPE etcd_disk_backend_defrag_duration_seconds histogram
etcd_disk_backend_defrag_duration_seconds_bucket{le="0.1"} 2
etcd_disk_backend_defrag_duration_seconds_bucket{le="0.2"} 3
etcd_disk_backend_defrag_duration_seconds_bucket{le="+Inf"} 3
etcd_disk_backend_defrag_duration_seconds_sum 0.3466831
etcd_disk_backend_defrag_duration_seconds_count 3
# HELP etcd_disk_defrag_inflight Whether or not defrag is active on the member. 1 means active, 0 means not.
# TYPE etcd_disk_defrag_inflight gauge
etcd_disk_defrag_inflight 0
# HELP etcd_server_leader_changes_seen_total The number of leader changes seen.
# TYPE etcd_server_leader_changes_seen_total counter
etcd_server_leader_changes_seen_total 2
# HELP grpc_server_handled_total Total number of RPCs completed on the server, regardless of success or failure.
# TYPE grpc_server_handled_total counter
grpc_server_handled_total{grpc_code="OK",grpc_method="Defragment",grpc_service="etcdserverpb.Maintenance",grpc_type="unary"} 3
`;

describe("parseDefragMetrics", () => {
  it(`reads ${DEFRAG_INFLIGHT}`, () => {
    assert.equal(DEFRAG_INFLIGHT, "etcd_disk_defrag_inflight");
  });

  const cases: { name: string; text: string; want: DefragMetrics }[] = [
    {
      name: "etcd 3.5.10+, quiet: every value, other metrics and comments skipped",
      text: ETCD_3_5,
      want: { inflight: false, finishedCount: 3, finishedSeconds: 0.3466831, leaderChanges: 2 },
    },
    {
      name: "etcd 3.5.10+, defragmenting: the gauge at 1",
      text: ETCD_3_5.replace("etcd_disk_defrag_inflight 0", "etcd_disk_defrag_inflight 1"),
      want: { inflight: true, finishedCount: 3, finishedSeconds: 0.3466831, leaderChanges: 2 },
    },
    {
      name: "before 3.5.10: no gauge → inflight undefined, the rest read",
      text: ETCD_3_5.replace(/^etcd_disk_defrag_inflight .*$/m, ""),
      want: { inflight: undefined, finishedCount: 3, finishedSeconds: 0.3466831, leaderChanges: 2 },
    },
    {
      name: "its HELP and TYPE lines alone are no gauge",
      text: "# HELP etcd_disk_defrag_inflight Whether or not defrag is active.\n# TYPE etcd_disk_defrag_inflight gauge\n",
      want: { inflight: undefined, finishedCount: 0, finishedSeconds: 0, leaderChanges: 0 },
    },
    {
      name: "nothing at all: zeros, no gauge",
      text: "",
      want: { inflight: undefined, finishedCount: 0, finishedSeconds: 0, leaderChanges: 0 },
    },
    {
      name: "scientific notation in _sum",
      text: "etcd_disk_backend_defrag_duration_seconds_sum 1.5e-05\netcd_disk_backend_defrag_duration_seconds_count 1\netcd_disk_defrag_inflight 0\n",
      want: { inflight: false, finishedCount: 1, finishedSeconds: 1.5e-5, leaderChanges: 0 },
    },
    {
      name: "large values in exponent form (client_golang formats with %g: a million is 1e+06)",
      text: "etcd_disk_backend_defrag_duration_seconds_sum 1.25e+03\netcd_server_leader_changes_seen_total 1e+06\n",
      want: { inflight: undefined, finishedCount: 0, finishedSeconds: 1250, leaderChanges: 1e6 },
    },
    {
      name: "a timestamp after the value is not the value",
      text: "etcd_disk_defrag_inflight 1 1700000000000\netcd_server_leader_changes_seen_total 7 1700000000000\n",
      want: { inflight: true, finishedCount: 0, finishedSeconds: 0, leaderChanges: 7 },
    },
    {
      name: "CRLF line ends",
      text: "etcd_disk_defrag_inflight 1\r\netcd_disk_backend_defrag_duration_seconds_count 4\r\n",
      want: { inflight: true, finishedCount: 4, finishedSeconds: 0, leaderChanges: 0 },
    },
    {
      name: "no final newline",
      text: "etcd_disk_defrag_inflight 0\netcd_server_leader_changes_seen_total 3",
      want: { inflight: false, finishedCount: 0, finishedSeconds: 0, leaderChanges: 3 },
    },
    {
      name: "names that only start like ours, and labelled lines of other metrics, are skipped",
      text: [
        "etcd_disk_defrag_inflight_total 9",
        "etcd_disk_backend_defrag_duration_seconds_count_x 9",
        'etcd_disk_backend_defrag_duration_seconds_bucket{le="0.5"} 9',
        'etcd_server_leader_changes_seen_total_other{reason="a b"} 9',
        'some_metric{label="etcd_disk_defrag_inflight 1"} 1',
        "etcd_disk_defrag_inflight 0",
      ].join("\n"),
      want: { inflight: false, finishedCount: 0, finishedSeconds: 0, leaderChanges: 0 },
    },
    {
      name: "a gauge above 1 is in flight too",
      text: "etcd_disk_defrag_inflight 2\n",
      want: { inflight: true, finishedCount: 0, finishedSeconds: 0, leaderChanges: 0 },
    },
    {
      name: "a gauge written as a float, 1.0",
      text: "etcd_disk_defrag_inflight 1.0\n",
      want: { inflight: true, finishedCount: 0, finishedSeconds: 0, leaderChanges: 0 },
    },
  ];
  for (const c of cases)
    it(c.name, () => {
      assert.deepEqual(parseDefragMetrics(c.text), c.want);
    });
});

describe("metricsUrl", () => {
  it("URL.hostname keeps an IPv6 address's brackets (what metricsUrl relies on)", () => {
    assert.equal(new URL("https://[fd00::2]:2379").hostname, "[fd00::2]");
  });

  const cases: { node: string; port: number | undefined; want: string }[] = [
    { node: "https://10.0.0.2:2379", port: undefined, want: "https://10.0.0.2:2379" },
    { node: "http://10.0.0.2:2379", port: undefined, want: "http://10.0.0.2:2379" },
    { node: "https://[fd00::2]:2379", port: undefined, want: "https://[fd00::2]:2379" },
    { node: "https://10.0.0.2:2379", port: 2381, want: "http://10.0.0.2:2381" },
    { node: "http://10.0.0.2:2379", port: 2381, want: "http://10.0.0.2:2381" },
    { node: "https://etcd-0.example:2379", port: 2381, want: "http://etcd-0.example:2381" },
    { node: "https://[fd00::2]:2379", port: 2381, want: "http://[fd00::2]:2381" },
    { node: "https://[::1]:2379", port: 12381, want: "http://[::1]:12381" },
  ];
  for (const c of cases)
    it(`${c.node} with port ${c.port ?? "unset"} → ${c.want}`, () => {
      const got = metricsUrl(c.node, c.port);
      assert.equal(got, c.want);
      // What MetricsReader requests must be a URL, with the host and port meant.
      const url = new URL(`${got}/metrics`);
      assert.equal(url.pathname, "/metrics");
      assert.equal(url.host, new URL(c.want).host);
    });
});
