{{/*
Names. Kubernetes names and label values stop at 63 characters, so every name is truncated there
(and a trailing "-" left by the cut is trimmed).
*/}}
{{- define "datajax-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "datajax-operator.fullname" -}}
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

{{/* A name derived from the full name with a suffix, still within 63 characters. */}}
{{- define "datajax-operator.suffixed" -}}
{{- $suffix := index . 1 }}
{{- $base := include "datajax-operator.fullname" (index . 0) | trunc (int (sub 62 (len $suffix))) | trimSuffix "-" }}
{{- printf "%s-%s" $base $suffix }}
{{- end }}

{{- define "datajax-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "datajax-operator.labels" -}}
helm.sh/chart: {{ include "datajax-operator.chart" . }}
{{ include "datajax-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: datajax-operator
{{- end }}

{{- define "datajax-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "datajax-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "datajax-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "datajax-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "datajax-operator.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag }}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository $tag }}
{{- end }}
{{- end }}

{{/*
Prometheus `job` labels. The ServiceMonitors relabel `job` to these values and the GKE managed
Prometheus objects are named after them (there the job is the object's name), so the alert rules,
written once, select the same series under either collector.
*/}}
{{- define "datajax-operator.job.operator" -}}
{{- include "datajax-operator.suffixed" (list . "operator") }}
{{- end }}
{{- define "datajax-operator.job.sidecar" -}}
{{- include "datajax-operator.suffixed" (list . "sidecar") }}
{{- end }}
{{- define "datajax-operator.job.vllm" -}}
{{- include "datajax-operator.suffixed" (list . "vllm") }}
{{- end }}

{{/* Labels every serving pod carries (rendered by the operator); the scrape objects select by it. */}}
{{- define "datajax-operator.modelSelector" -}}
app.kubernetes.io/name: datajax-model
{{- end }}

{{/*
Pod labels copied onto every model series as target labels. The operator's renderer puts them on
serving pods; dashboards and alerts group by the target label names.
*/}}
{{- define "datajax-operator.modelTargetLabels" -}}
- from: app.kubernetes.io/instance
  to: model
- from: datajax.dev/tpu-generation
  to: tpu_generation
- from: datajax.dev/tpu-topology
  to: tpu_topology
{{- end }}

{{/* Operator command line, per the operator process contract. */}}
{{- define "datajax-operator.args" -}}
- run
{{- if .Values.watch.allNamespaces }}
- --all-namespaces
{{- else }}
{{- range .Values.watch.namespaces }}
- --namespace={{ . }}
{{- end }}
{{- end }}
- --config=/etc/datajax-operator/config.yaml
- --log-format={{ .Values.logFormat }}
- --liveness-port={{ .Values.ports.health }}
- --metrics-port={{ .Values.ports.metrics }}
{{- if .Values.leaderElection.enabled }}
- --peering={{ .Values.leaderElection.peeringName }}
{{- /* a priority of its own per replica (from POD_NAME): kopf pauses replicas of equal priority */}}
- --priority=pod-name
- --peering-lifetime={{ .Values.leaderElection.lifetimeSeconds }}
{{- end }}
{{- end }}

{{/* Fail early on combinations the schema cannot express. */}}
{{- define "datajax-operator.validate" -}}
{{- if and (not .Values.watch.allNamespaces) (empty .Values.watch.namespaces) }}
{{- fail "watch.namespaces must list at least one namespace when watch.allNamespaces is false" }}
{{- end }}
{{- if and .Values.watch.allNamespaces (not (empty .Values.watch.namespaces)) }}
{{- fail "watch.namespaces must be empty when watch.allNamespaces is true (pick one mode)" }}
{{- end }}
{{- if and (gt (int .Values.replicas) 1) (not .Values.leaderElection.enabled) }}
{{- fail "replicas above 1 need leaderElection.enabled=true: without kopf peering every replica would act on every model" }}
{{- end }}
{{- end }}

{{/*
The alert groups, rendered once from files/alerts.yaml (the single source) with alerts.extraLabels
merged into every alert (not into the recording rules' series); PrometheusRule and ClusterRules both
emit exactly this.
*/}}
{{- define "datajax-operator.alertGroups" -}}
{{- $doc := tpl (.Files.Get "files/alerts.yaml") . | fromYaml }}
{{- if hasKey $doc "Error" }}
{{- fail (printf "files/alerts.yaml does not parse: %s" (get $doc "Error")) }}
{{- end }}
{{- range $g := $doc.groups }}
{{- range $r := $g.rules }}
{{- if $r.alert }}
{{- $_ := set $r "labels" (merge (dict) $r.labels $.Values.alerts.extraLabels) }}
{{- end }}
{{- end }}
{{- end }}
{{- toYaml $doc.groups }}
{{- end }}
