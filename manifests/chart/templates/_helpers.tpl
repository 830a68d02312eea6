{{- define "infadapter.name" -}}infadapter{{- end -}}

{{- define "infadapter.fullname" -}}
{{- if contains "infadapter" .Release.Name -}}{{ .Release.Name | trunc 63 | trimSuffix "-" }}{{- else -}}{{ printf "%s-infadapter" .Release.Name | trunc 63 | trimSuffix "-" }}{{- end -}}
{{- end -}}

{{- define "infadapter.labels" -}}
app.kubernetes.io/name: infadapter
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "infadapter.selector" -}}
app.kubernetes.io/name: infadapter
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end -}}

{{- define "infadapter.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}{{ default (include "infadapter.fullname" .) .Values.serviceAccount.name }}{{- else -}}{{ default "default" .Values.serviceAccount.name }}{{- end -}}
{{- end -}}

{{- define "infadapter.peering" -}}{{ gt (int .Values.replicaCount) 1 }}{{- end -}}

{{- define "infadapter.image" -}}
{{- $repo := required "image.repository is required: no public InfAdapter image is published. Build one with `docker build -f e2e/Dockerfile.operator -t REGISTRY/infadapter:TAG .`, push it, and install with --set image.repository=REGISTRY/infadapter --set image.tag=TAG" .Values.image.repository -}}
{{- printf "%s:%s" $repo (.Values.image.tag | default .Chart.AppVersion) -}}
{{- end -}}
