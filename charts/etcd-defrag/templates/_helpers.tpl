{{- define "etcd-defrag.labels" -}}
app.kubernetes.io/name: etcd-defrag
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end }}

{{- define "etcd-defrag.selectorLabels" -}}
app.kubernetes.io/name: etcd-defrag
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* Roles of the Talos ServiceAccount: os:admin only when leader moves are wanted. */}}
{{- define "etcd-defrag.roles" -}}
{{- $roles := .Values.auth.serviceAccount.roles -}}
{{- if and .Values.auth.serviceAccount.allowLeaderMove (ne .Values.defrag.moveLeader "never") (not (has "os:admin" $roles)) -}}
{{- $roles = append $roles "os:admin" -}}
{{- end -}}
{{- toYaml $roles -}}
{{- end }}

{{- define "etcd-defrag.secretName" -}}
{{- .Values.auth.secret.name | default "etcd-defrag-talosconfig" -}}
{{- end }}

{{/* A Prometheus duration ("8d", "36h", "90m") in seconds: (list DURATION "its.value.name"). */}}
{{- define "etcd-defrag.seconds" -}}
{{- $d := index . 0 | toString -}}
{{- $name := index . 1 -}}
{{- $n := regexFind "^[0-9]+" $d | int64 -}}
{{- $unit := regexReplaceAll "^[0-9]+" $d "" -}}
{{- $factor := dict "s" 1 "m" 60 "h" 3600 "d" 86400 "w" 604800 -}}
{{- if not (hasKey $factor $unit) -}}
{{- fail (printf "%s %q: use one number and one unit of s, m, h, d or w" $name $d) -}}
{{- end -}}
{{- mul $n (get $factor $unit) -}}
{{- end }}

{{/* A Go duration of the CLI ("90s", "15m", "1h30m", "500ms") in seconds, as a float. */}}
{{- define "etcd-defrag.durationSeconds" -}}
{{- $factor := dict "ms" 0.001 "s" 1.0 "m" 60.0 "h" 3600.0 -}}
{{- $total := 0.0 -}}
{{- range regexFindAll "[0-9]+(\\.[0-9]+)?(ms|s|m|h)" (toString .) -1 -}}
{{- $unit := regexFind "(ms|s|m|h)$" . -}}
{{- $total = addf $total (mulf (trimSuffix $unit . | float64) (get $factor $unit)) -}}
{{- end -}}
{{- $total -}}
{{- end }}

{{/* The run's worst case in seconds; fails rendering when cronjob.activeDeadlineSeconds cannot hold it. */}}
{{- define "etcd-defrag.checkDeadline" -}}
{{- $d := .Values.defrag -}}
{{- $sec := dict -}}
{{- range $key := list "timeout" "maxWait" "healthTimeout" "pause" "callTimeout" -}}
{{- $_ := set $sec $key (include "etcd-defrag.durationSeconds" (get $d $key) | float64) -}}
{{- end -}}
{{- $members := max (int $d.maxMembers) (len $d.nodes) -}}
{{- /* Per member: the call; proof of finish, another run's defragment, a node's upgrade or reboot, an election (maxWait each); healthy again and, on an affected etcd, caught up (healthTimeout each); the pause. */ -}}
{{- $perMember := addf $sec.timeout (mulf 4 $sec.maxWait) (mulf 2 $sec.healthTimeout) $sec.pause -}}
{{- $worst := addf (mulf $members $perMember) (mulf 10 $sec.callTimeout) -}}
{{- $snapshot := 0.0 -}}
{{- if .Values.snapshot.enabled -}}{{- $snapshot = $sec.timeout -}}{{- end -}}
{{- $lease := 0.0 -}}
{{- if .Values.lease.enabled -}}{{- $lease = include "etcd-defrag.durationSeconds" .Values.lease.wait | float64 -}}{{- end -}}
{{- $worst = addf $worst $snapshot $lease | ceil | int64 -}}
{{- if lt (int64 .Values.cronjob.activeDeadlineSeconds) $worst -}}
{{- /* The formula as values.yaml writes it (test/integration/chart.test.ts evaluates that one and compares). */ -}}
{{- $formula := "members x (defrag.timeout + 4 x defrag.maxWait + 2 x defrag.healthTimeout + defrag.pause) + 10 x defrag.callTimeout (+ defrag.timeout with snapshot.enabled) (+ lease.wait with lease.enabled)" -}}
{{- fail (printf "cronjob.activeDeadlineSeconds (%d s) is shorter than the worst case of a run, %d s: worst case = %s, with members %d (defrag.maxMembers, or the number of defrag.nodes), defrag.timeout %s, defrag.maxWait %s, defrag.healthTimeout %s, defrag.pause %s, defrag.callTimeout %s, snapshot.enabled %t, lease.wait %s (lease.enabled %t). Raise cronjob.activeDeadlineSeconds or lower those values" (int64 .Values.cronjob.activeDeadlineSeconds) $worst $formula $members $d.timeout $d.maxWait $d.healthTimeout $d.pause $d.callTimeout .Values.snapshot.enabled .Values.lease.wait .Values.lease.enabled) -}}
{{- end -}}
{{- end }}

{{/* defrag.quotaBytes as the CLI reads it: an integer as digits (not 2.147483648e+09), a string as is. */}}
{{- define "etcd-defrag.quotaBytes" -}}
{{- $q := .Values.defrag.quotaBytes -}}
{{- if kindIs "string" $q -}}
{{- $q -}}
{{- else -}}
{{- $q | int64 -}}
{{- end -}}
{{- end }}

{{- define "etcd-defrag.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) -}}
{{- end }}

{{/*
The container's environment: the run's options from values, the credentials, the metrics unless .noMetrics,
the lease unless .noLease, and extraEnv last (Kubernetes keeps the last of two entries of one name, so a
value of extraEnv wins).
*/}}
{{- define "etcd-defrag.env" -}}
- name: TALOS_ETCD_DEFRAG_BACKEND
  value: {{ .Values.backend | quote }}
- name: TALOS_ETCD_DEFRAG_OUTPUT
  value: {{ .Values.output | quote }}
- name: TALOS_ETCD_DEFRAG_LOG_FORMAT
  value: {{ .Values.logFormat | quote }}
{{- with .Values.defrag }}
{{- if .rule }}
- name: TALOS_ETCD_DEFRAG_RULE
  value: {{ .rule | quote }}
{{- end }}
- name: TALOS_ETCD_DEFRAG_QUOTA_BYTES
  value: {{ include "etcd-defrag.quotaBytes" $ | quote }}
- name: TALOS_ETCD_DEFRAG_NOSPACE_DISARM_BELOW
  value: {{ .nospaceDisarmBelow | quote }}
- name: TALOS_ETCD_DEFRAG_TIMEOUT
  value: {{ .timeout | quote }}
- name: TALOS_ETCD_DEFRAG_MAX_WAIT
  value: {{ .maxWait | quote }}
- name: TALOS_ETCD_DEFRAG_MIN_INTERVAL
  value: {{ .minInterval | quote }}
- name: TALOS_ETCD_DEFRAG_ELECTION_SETTLE
  value: {{ .electionSettle | quote }}
- name: TALOS_ETCD_DEFRAG_MOVE_LEADER
  value: {{ .moveLeader | quote }}
- name: TALOS_ETCD_DEFRAG_ALLOW_DOWNTIME
  value: {{ .allowDowntime | quote }}
- name: TALOS_ETCD_DEFRAG_AFFECTED_ETCD
  value: {{ .affectedEtcd | quote }}
- name: TALOS_ETCD_DEFRAG_PAUSE
  value: {{ .pause | quote }}
- name: TALOS_ETCD_DEFRAG_HEALTH_TIMEOUT
  value: {{ .healthTimeout | quote }}
- name: TALOS_ETCD_DEFRAG_SHUTDOWN_GRACE
  value: {{ .shutdownGrace | quote }}
- name: TALOS_ETCD_DEFRAG_CALL_TIMEOUT
  value: {{ .callTimeout | quote }}
- name: TALOS_ETCD_DEFRAG_HEARTBEAT
  value: {{ .heartbeat | quote }}
- name: TALOS_ETCD_DEFRAG_DRY_RUN
  value: {{ .dryRun | quote }}
{{- if .nodes }}
- name: TALOS_NODES
  value: {{ join "," .nodes | quote }}
{{- end }}
{{- end }}
{{- if not .noMetrics }}
{{- with .Values.metrics.pushgatewayUrl }}
- name: TALOS_ETCD_DEFRAG_PUSHGATEWAY_URL
  value: {{ . | quote }}
{{- end }}
{{- with .Values.metrics.clusterName }}
- name: TALOS_ETCD_DEFRAG_CLUSTER_NAME
  value: {{ . | quote }}
{{- end }}
{{- end }}
{{- if eq .Values.backend "etcd" }}
- name: TALOS_ETCD_DEFRAG_ETCD_ENDPOINTS
  value: {{ join "," .Values.etcd.endpoints | quote }}
{{- /* Files of the Secret's volume (etcd-defrag.credentialVolume), whatever its keys are called. */}}
- name: TALOS_ETCD_DEFRAG_CACERT
  value: {{ include "etcd-defrag.etcdClientDir" . }}/ca.crt
- name: TALOS_ETCD_DEFRAG_CERT
  value: {{ include "etcd-defrag.etcdClientDir" . }}/tls.crt
- name: TALOS_ETCD_DEFRAG_KEY
  value: {{ include "etcd-defrag.etcdClientDir" . }}/tls.key
- name: TALOS_ETCD_DEFRAG_COMPACT
  value: {{ .Values.etcd.compact | quote }}
- name: TALOS_ETCD_DEFRAG_WITHOUT_DEFRAG_GAUGE
  value: {{ .Values.etcd.withoutDefragGauge | quote }}
- name: TALOS_ETCD_DEFRAG_ETCD_METRICS_PORT
  value: {{ .Values.etcd.metricsPort | default "" | quote }}
{{- else if eq .Values.auth.mode "serviceAccount" }}
- name: TALOSCONFIG
  value: /var/run/secrets/talos.dev/config
{{- else }}
- name: TALOS_ENDPOINTS
  value: {{ join "," .Values.auth.endpoints | quote }}
{{- range $key := list "TALOS_CA" "TALOS_CRT" "TALOS_KEY" }}
- name: {{ $key }}
  valueFrom:
    secretKeyRef:
      name: {{ include "etcd-defrag.secretName" $ }}
      key: {{ $key }}
{{- end }}
{{- end }}
{{- if and .Values.lease.enabled (not .noLease) }}
- name: TALOS_ETCD_DEFRAG_LEASE
  value: {{ printf "%s/%s" .Release.Namespace .Values.lease.name | quote }}
- name: TALOS_ETCD_DEFRAG_LEASE_WAIT
  value: {{ .Values.lease.wait | quote }}
{{- else if not .noLease }}
{{- /* lease.enabled false: no Kubernetes identity is mounted, and the run is told so (not auto). */}}
- name: TALOS_ETCD_DEFRAG_LEASE
  value: "none"
{{- end }}
{{- with .Values.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
A container of the verification Job: the CronJob's image, environment and restrictions, without metrics and
without the lease (a dry run takes none, and the Job has no Kubernetes token).
*/}}
{{- define "etcd-defrag.verifyContainer" -}}
image: {{ include "etcd-defrag.image" . | quote }}
imagePullPolicy: {{ .Values.image.pullPolicy }}
env:
  {{- /* A dry run's metrics would replace the last real run's in the Pushgateway. */}}
  {{- include "etcd-defrag.env" (merge (dict "noMetrics" true "noLease" true) .) | nindent 2 }}
securityContext:
  allowPrivilegeEscalation: false
  readOnlyRootFilesystem: true
  capabilities:
    drop: ["ALL"]
resources:
  {{- toYaml .Values.resources | nindent 2 }}
{{- with include "etcd-defrag.credentialMount" . | trim }}
volumeMounts:
  {{- . | nindent 2 }}
{{- end }}
{{- end }}

{{/* Where the etcd client certificate's Secret is mounted (backend etcd). */}}
{{- define "etcd-defrag.etcdClientDir" -}}
/var/run/secrets/etcd-client
{{- end }}

{{/* The credentials' volume mount: the etcd client certificate (backend etcd), or Talos's talosconfig. */}}
{{- define "etcd-defrag.credentialMount" -}}
{{- if eq .Values.backend "etcd" }}
- name: etcd-client
  mountPath: {{ include "etcd-defrag.etcdClientDir" . }}
  readOnly: true
{{- else if eq .Values.auth.mode "serviceAccount" }}
- name: talos-secrets
  mountPath: /var/run/secrets/talos.dev
  readOnly: true
{{- end }}
{{- end }}

{{/* The credentials' volume, for etcd-defrag.credentialMount. */}}
{{- define "etcd-defrag.credentialVolume" -}}
{{- if eq .Values.backend "etcd" }}
- name: etcd-client
  secret:
    # Created by hand from the client certificate, its key and etcd's CA certificate (never the CA's key).
    secretName: {{ .Values.etcd.clientCertSecret }}
    # 0440, written in decimal: owned by the pod's fsGroup, readable by the run's group and nobody else.
    defaultMode: 288
    # Fixed file names whatever the Secret's keys; a key missing from the Secret keeps the pod from starting.
    items:
      - key: {{ .Values.etcd.clientCertSecretKeys.ca }}
        path: ca.crt
      - key: {{ .Values.etcd.clientCertSecretKeys.cert }}
        path: tls.crt
      - key: {{ .Values.etcd.clientCertSecretKeys.key }}
        path: tls.key
{{- else if eq .Values.auth.mode "serviceAccount" }}
- name: talos-secrets
  secret:
    # Created and rotated by Talos for the talos.dev ServiceAccount of the same name.
    secretName: etcd-defrag
{{- end }}
{{- end }}

{{/*
Where the pods run. Backend etcd: on the network of a control-plane node (etcd's clients are expected there, by
etcd's firewall rules as by its certificates' holders), so hostNetwork with cluster DNS still resolving Services
(the Pushgateway), and on control-plane nodes only, so that the etcd client key is never handed to a worker's
kubelet. hostNetwork needs no privilege: the container keeps every restriction.
*/}}
{{- define "etcd-defrag.placement" -}}
{{- $etcd := eq .Values.backend "etcd" -}}
{{- if $etcd }}
hostNetwork: true
dnsPolicy: ClusterFirstWithHostNet
{{- end }}
{{- with .Values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- $tolerations := .Values.tolerations | default list }}
{{- if $etcd }}
{{- $tolerations = concat (.Values.etcd.tolerations | default list) $tolerations }}
{{- end }}
{{- with $tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- $affinity := deepCopy (.Values.affinity | default dict) }}
{{- /* Exists, not a value: kubeadm labels its control-plane nodes "", k3s and RKE2 "true". */}}
{{- if and $etcd .Values.etcd.controlPlaneLabel (not (hasKey $affinity "nodeAffinity")) }}
{{- $term := dict "matchExpressions" (list (dict "key" .Values.etcd.controlPlaneLabel "operator" "Exists")) }}
{{- $_ := set $affinity "nodeAffinity" (dict "requiredDuringSchedulingIgnoredDuringExecution" (dict "nodeSelectorTerms" (list $term))) }}
{{- end }}
{{- with $affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/* Combinations the schema cannot check: each backend's required values, and no value of the other's. */}}
{{- define "etcd-defrag.checkBackend" -}}
{{- if eq .Values.backend "etcd" }}
{{- if empty .Values.etcd.endpoints }}
{{- fail "etcd.endpoints is required with backend=etcd: list etcd client URLs the member list is read through, e.g. https://10.0.0.11:2379" }}
{{- end }}
{{- if empty .Values.etcd.clientCertSecret }}
{{- fail (printf "etcd.clientCertSecret is required with backend=etcd: the name of an existing Secret in %s with the keys %s (etcd's CA certificate), %s and %s (the client certificate and its key); docs/other-distributions.md shows how to make it" .Release.Namespace .Values.etcd.clientCertSecretKeys.ca .Values.etcd.clientCertSecretKeys.cert .Values.etcd.clientCertSecretKeys.key) }}
{{- end }}
{{- if or (ne .Values.auth.mode "serviceAccount") (not (empty .Values.auth.endpoints)) }}
{{- fail (printf "auth.mode (%s) and auth.endpoints configure the Talos API credentials (backend=talos); with backend=etcd the credentials are etcd.clientCertSecret and the endpoints etcd.endpoints: leave auth unset" .Values.auth.mode) }}
{{- end }}
{{- if not (empty .Values.defrag.nodes) }}
{{- fail "defrag.nodes chooses Talos nodes (backend=talos); with backend=etcd every member of the etcd member list is read, each at its own client URL: leave defrag.nodes empty" }}
{{- end }}
{{- if .Values.networkPolicy.enabled }}
{{- fail "networkPolicy.enabled: with backend=etcd the pods use their node's network (hostNetwork), where most network plugins apply no NetworkPolicy, so it would restrict nothing. Set networkPolicy.enabled=false and restrict etcd's port 2379 on the nodes (their firewall)" }}
{{- end }}
{{- else }}
{{- if or (not (empty .Values.etcd.endpoints)) .Values.etcd.clientCertSecret .Values.etcd.compact }}
{{- fail "etcd.endpoints, etcd.clientCertSecret and etcd.compact apply with backend=etcd: set backend=etcd, or leave them unset for the Talos API (backend=talos)" }}
{{- end }}
{{- end }}
{{- end }}
