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

{{/* A Prometheus duration ("8d", "36h", "90m") in seconds. */}}
{{- define "etcd-defrag.seconds" -}}
{{- $d := . | toString -}}
{{- $n := regexFind "^[0-9]+" $d | int64 -}}
{{- $unit := regexReplaceAll "^[0-9]+" $d "" -}}
{{- $factor := dict "s" 1 "m" 60 "h" 3600 "d" 86400 "w" 604800 -}}
{{- if not (hasKey $factor $unit) -}}
{{- fail (printf "prometheusRule.noSuccessFor %q: use one number and one unit of s, m, h, d or w" $d) -}}
{{- end -}}
{{- mul $n (get $factor $unit) -}}
{{- end }}
