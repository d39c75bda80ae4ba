{{- define "lab-service.name" -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "lab-service.labels" -}}
app.kubernetes.io/name: {{ include "lab-service.name" . }}
app.kubernetes.io/part-of: identity-lab
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ .Chart.Name }}-{{ .Chart.Version }}
{{- end -}}

{{- define "lab-service.selector" -}}
app.kubernetes.io/name: {{ include "lab-service.name" . }}
{{- end -}}

{{- define "lab-service.serviceAccount" -}}
{{- default (include "lab-service.name" .) .Values.serviceAccount.name -}}
{{- end -}}
