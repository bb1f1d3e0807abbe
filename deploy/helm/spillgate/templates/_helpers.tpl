{{/* The chart's name, and the release-scoped name every object starts with. */}}
{{- define "spillgate.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "spillgate.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "spillgate.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/part-of: spillgate
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end }}

{{- define "spillgate.gatewaySelector" -}}
app.kubernetes.io/name: {{ include "spillgate.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: gateway
{{- end }}

{{/* An engine group's objects; called with (dict "root" $ "engine" $engine). */}}
{{- define "spillgate.engineSelector" -}}
app.kubernetes.io/name: {{ .engine.name }}-engine
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: engine
{{- end }}

{{- define "spillgate.engineName" -}}
{{- printf "%s-%s-engine" (include "spillgate.fullname" .root) .engine.name | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The headless Service whose DNS name the gateway resolves to find the engine pods. */}}
{{- define "spillgate.engineServiceName" -}}
{{- printf "%s-%s-engines" (include "spillgate.fullname" .root) .engine.name | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "spillgate.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}

{{- define "spillgate.secretsName" -}}
{{- .Values.secrets.name | default (printf "%s-secrets" (include "spillgate.fullname" .)) }}
{{- end }}

{{- define "spillgate.providerKeysName" -}}
{{- .Values.providerKeys.name | default (printf "%s-provider-keys" (include "spillgate.fullname" .)) }}
{{- end }}

{{- define "spillgate.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- .Values.serviceAccount.name | default (include "spillgate.fullname" .) }}
{{- else }}
{{- .Values.serviceAccount.name | default "default" }}
{{- end }}
{{- end }}

{{/* Where the provider-keys Secret is mounted; `api_key_file` points into it. */}}
{{- define "spillgate.providerKeysMount" -}}/run/secrets/spillgate{{- end }}

{{/*
The engine groups as a YAML list: each entry of `engines` with the keys it leaves out taken
from `engineDefaults` (a key given replaces the default whole), checked. The one place the
templates read engines from.
*/}}
{{- define "spillgate.engines" -}}
{{- $engines := list }}
{{- $names := dict }}
{{- range $i, $given := .Values.engines }}
{{- $engine := deepCopy $given }}
{{- range $key, $value := $.Values.engineDefaults }}
{{- if not (hasKey $engine $key) }}
{{- $_ := set $engine $key (deepCopy $value) }}
{{- end }}
{{- end }}
{{- if hasKey $names $engine.name }}
{{- fail (printf "engines[%d]: the name %q is used twice" $i $engine.name) }}
{{- end }}
{{- $_ := set $names $engine.name true }}
{{- if lt (int $engine.preStopSleepSeconds) (mul 2 (int $engine.discoverIntervalS) | int) }}
{{- fail (printf "engines[%d]: preStopSleepSeconds must be at least twice discoverIntervalS, so the gateways drop the pod from DNS before vLLM stops" $i) }}
{{- end }}
{{- if gt (int $engine.replicas) (int $engine.maxReplicas) }}
{{- fail (printf "engines[%d]: replicas (%d) is above maxReplicas (%d)" $i (int $engine.replicas) (int $engine.maxReplicas)) }}
{{- end }}
{{- $engines = append $engines $engine }}
{{- end }}
{{- toYaml $engines }}
{{- end }}

{{/* vLLM's arguments for one engine; called with the engine. */}}
{{- define "spillgate.vllmArgs" -}}
- --model={{ .model }}
- --served-model-name={{ .servedModelName }}
- --host=0.0.0.0
- --port=8000
- --max-num-seqs={{ .maxNumSeqs }}
{{- range .args }}
- {{ . | quote }}
{{- end }}
{{- if .toolCallParser }}
- --enable-auto-tool-choice
- --tool-call-parser={{ .toolCallParser }}
{{- end }}
{{- end }}

{{/* The two queues an engine group's pods are scaled on (requests waiting for a pod). */}}
{{- define "spillgate.queueQuery" -}}
(sum(vllm:num_requests_waiting{namespace="{{ .root.Release.Namespace }}", model_name="{{ .engine.servedModelName }}"}) or vector(0))
+ (sum(spillgate_local_queue_depth{namespace="{{ .root.Release.Namespace }}", engine=~"{{ .engine.name }}@.+"}) or vector(0))
{{- end }}
