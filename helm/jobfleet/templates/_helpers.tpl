{{/*
Names and labels shared by every template.
*/}}

{{/* The chart name, overridable. */}}
{{- define "jobfleet.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The prefix of every object name: <release>-jobfleet, or just <release> when the release name
already contains the chart name (helm install jobfleet ... gives "jobfleet", not
"jobfleet-jobfleet"). Capped at 52 characters so suffixes like "-leader-election" still fit
the 63-character limit of labels and DNS names.
*/}}
{{- define "jobfleet.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 52 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 52 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 52 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "jobfleet.operatorName" -}}
{{- printf "%s-operator" (include "jobfleet.fullname" .) }}
{{- end }}

{{- define "jobfleet.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels on every object. */}}
{{- define "jobfleet.labels" -}}
helm.sh/chart: {{ include "jobfleet.chart" . }}
app.kubernetes.io/name: {{ include "jobfleet.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: jobfleet
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Selector of the operator's pods (immutable once installed: keep it minimal). */}}
{{- define "jobfleet.operatorSelectorLabels" -}}
app.kubernetes.io/name: {{ include "jobfleet.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end }}

{{- define "jobfleet.operatorLabels" -}}
{{ include "jobfleet.labels" . }}
app.kubernetes.io/component: operator
{{- end }}

{{- define "jobfleet.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "jobfleet.operatorName" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* repository[:tag][@digest]; the digest pins the image when given. */}}
{{- define "jobfleet.image" -}}
{{- $tag := default .Chart.AppVersion .image.tag }}
{{- if .image.digest }}
{{- printf "%s@%s" .image.repository .image.digest }}
{{- else }}
{{- printf "%s:%s" .image.repository $tag }}
{{- end }}
{{- end }}

{{/*
The namespaces the operator reconciles Queues in (a list), or nil when it watches all.
*/}}
{{- define "jobfleet.watchNamespaces" -}}
{{- if .Values.operator.watchAllNamespaces }}
{{- list | toJson }}
{{- else if .Values.operator.watchNamespaces }}
{{- .Values.operator.watchNamespaces | uniq | toJson }}
{{- else }}
{{- list .Release.Namespace | toJson }}
{{- end }}
{{- end }}

{{/* Redis: the Secret (name and key) Queues in the release namespace reference, if any. */}}
{{- define "jobfleet.redisSecretName" -}}
{{- if .Values.redis.existingSecret.name }}
{{- .Values.redis.existingSecret.name }}
{{- else if or .Values.redis.url .Values.redis.dev.enabled }}
{{- printf "%s-redis" (include "jobfleet.fullname" .) }}
{{- end }}
{{- end }}

{{- define "jobfleet.redisSecretKey" -}}
{{- if .Values.redis.existingSecret.name }}
{{- .Values.redis.existingSecret.key }}
{{- else }}
{{- print "url" }}
{{- end }}
{{- end }}

{{- define "jobfleet.redisDevName" -}}
{{- printf "%s-redis" (include "jobfleet.fullname" .) }}
{{- end }}

{{- define "jobfleet.redisDevSelectorLabels" -}}
app.kubernetes.io/name: {{ include "jobfleet.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: redis
{{- end }}

{{/*
Consistency checks that values.schema.json cannot express across keys; `helm install`
fails with these messages before anything is created.
*/}}
{{- define "jobfleet.validate" -}}
{{- if and (gt (int .Values.operator.replicas) 1) (not .Values.operator.leaderElection) }}
{{- fail "operator.replicas > 1 needs operator.leaderElection: true (two acting operators would fight over every fleet)" }}
{{- end }}
{{- if and .Values.operator.watchAllNamespaces .Values.operator.watchNamespaces }}
{{- fail "set operator.watchNamespaces or operator.watchAllNamespaces, not both" }}
{{- end }}
{{- $sources := 0 }}
{{- if .Values.redis.url }}{{ $sources = add1 $sources }}{{ end }}
{{- if .Values.redis.existingSecret.name }}{{ $sources = add1 $sources }}{{ end }}
{{- if .Values.redis.dev.enabled }}{{ $sources = add1 $sources }}{{ end }}
{{- if gt $sources 1 }}
{{- fail "set at most one of redis.url, redis.existingSecret.name and redis.dev.enabled" }}
{{- end }}
{{- end }}

{{/* The admin server (`jobfleet admin`). */}}
{{- define "jobfleet.adminName" -}}
{{- printf "%s-admin" (include "jobfleet.fullname" .) }}
{{- end }}

{{- define "jobfleet.adminSelectorLabels" -}}
app.kubernetes.io/name: {{ include "jobfleet.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: admin
{{- end }}

{{- define "jobfleet.adminLabels" -}}
{{ include "jobfleet.labels" . }}
app.kubernetes.io/component: admin
{{- end }}

{{/* The Secret of the admin tokens: the existing one, or the chart's. */}}
{{- define "jobfleet.adminTokensSecret" -}}
{{- default (printf "%s-tokens" (include "jobfleet.adminName" .)) .Values.admin.existingSecret }}
{{- end }}

{{/* Processes of the admin server: admin.processes, else the CPU limit rounded up (the
operator's default_processes for a Queue's workers: "1500m" and "1.5" give 2), 1 without one. */}}
{{- define "jobfleet.adminProcesses" -}}
{{- $a := .Values.admin }}
{{- if $a.processes }}
{{- int $a.processes }}
{{- else }}
{{- $cpu := toString (dig "limits" "cpu" "" ($a.resources | default dict)) }}
{{- if not $cpu }}
{{- 1 }}
{{- else }}
{{- $cores := ternary (divf (trimSuffix "m" $cpu | float64) 1000) ($cpu | float64) (hasSuffix "m" $cpu) }}
{{- max 1 (min 64 (int (ceil $cores))) }}
{{- end }}
{{- end }}
{{- end }}

{{- define "jobfleet.validateAdmin" -}}
{{- if .Values.admin.enabled }}
{{- if not (include "jobfleet.redisSecretName" .) }}
{{- fail "admin.enabled needs a Redis: set redis.url, redis.existingSecret.name or redis.dev.enabled" }}
{{- end }}
{{- $tokens := concat .Values.admin.tokens.admin .Values.admin.tokens.viewer }}
{{- if and .Values.admin.existingSecret $tokens }}
{{- fail "set admin.tokens or admin.existingSecret, not both" }}
{{- end }}
{{- if not (or .Values.admin.existingSecret $tokens) }}
{{- fail "admin.enabled needs tokens: set admin.tokens.admin / admin.tokens.viewer or admin.existingSecret" }}
{{- end }}
{{- end }}
{{- end }}
