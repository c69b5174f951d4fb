{{/* The labels every object of the kustomize base carries. */}}
{{- define "invsync.labels" -}}
app.kubernetes.io/name: invsync
app.kubernetes.io/component: {{ . }}
app.kubernetes.io/part-of: invsync
{{- end }}

{{- define "invsync.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end }}
