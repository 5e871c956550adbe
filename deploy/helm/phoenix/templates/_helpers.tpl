{{/* The roles of the binary: their container port and whether a Service fronts them. */}}
{{- define "phoenix.roles" -}}
shop: {port: 8080, service: true}
admin: {port: 8081, service: true}
worker: {port: 8082, service: false}
{{- end }}

{{/* Labels on every object. */}}
{{- define "phoenix.labels" -}}
app.kubernetes.io/part-of: phoenix
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end }}

{{- define "phoenix.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end }}

{{/* The in-cluster servers' pod spec parts that Phoenix's own pods share. */}}
{{- define "phoenix.serverSecurity" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities: {drop: [ALL]}
{{- end }}
