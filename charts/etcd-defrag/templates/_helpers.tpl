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
