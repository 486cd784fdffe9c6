{{/*
Chart name.
*/}}
{{- define "jfintech.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Fully qualified app name (truncated to 63 chars, the DNS label limit).
*/}}
{{- define "jfintech.fullname" -}}
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

{{/*
Name of a per-process resource: <fullname>-<suffix>.
Usage: include "jfintech.componentName" (dict "root" $ "suffix" "web")
*/}}
{{- define "jfintech.componentName" -}}
{{- $full := include "jfintech.fullname" .root | trunc (int (sub 62 (len .suffix))) | trimSuffix "-" }}
{{- printf "%s-%s" $full .suffix }}
{{- end }}

{{- define "jfintech.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Common labels (no component).
*/}}
{{- define "jfintech.labels" -}}
helm.sh/chart: {{ include "jfintech.chart" . }}
app.kubernetes.io/name: {{ include "jfintech.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: jfintech
{{- end }}

{{/*
Selector labels of one component (immutable once deployed).
Usage: include "jfintech.selectorLabels" (dict "root" $ "component" "web")
*/}}
{{- define "jfintech.selectorLabels" -}}
app.kubernetes.io/name: {{ include "jfintech.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/*
Full label set of one component.
Usage: include "jfintech.componentLabels" (dict "root" $ "component" "web")
*/}}
{{- define "jfintech.componentLabels" -}}
{{ include "jfintech.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "jfintech.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "jfintech.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
Name of the Secret the app processes read (see values.yaml "Secrets").
*/}}
{{- define "jfintech.secretName" -}}
{{- if and .Values.secret.create .Values.existingSecret }}
{{- fail "Set either existingSecret (production) or secret.create=true (dev only), not both." }}
{{- end }}
{{- if .Values.existingSecret }}
{{- .Values.existingSecret }}
{{- else }}
{{- include "jfintech.fullname" . }}
{{- end }}
{{- end }}

{{/*
Secret read by the migration hook. A chart-rendered Secret is not yet installed when
pre-install hooks run, so in dev mode the Job reads a hook copy of it.
*/}}
{{- define "jfintech.migrationSecretName" -}}
{{- if .Values.secret.create }}
{{- include "jfintech.componentName" (dict "root" . "suffix" "migrate") }}
{{- else }}
{{- include "jfintech.secretName" . }}
{{- end }}
{{- end }}

{{/*
ServiceAccount used by the migration hook (same reasoning as the Secret above).
*/}}
{{- define "jfintech.migrationServiceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- include "jfintech.componentName" (dict "root" . "suffix" "migrate") }}
{{- else }}
{{- include "jfintech.serviceAccountName" . }}
{{- end }}
{{- end }}

{{- define "jfintech.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag | toString) }}
{{- end }}
{{- end }}

{{/*
Non-secret environment as a YAML map (ConfigMap data, and inline env of the migration hook).
*/}}
{{- define "jfintech.configData" -}}
{{- $hosts := list }}
{{- range .Values.config.allowedHosts }}{{- $hosts = append $hosts . }}{{- end }}
{{- if .Values.ingress.enabled }}
{{- range .Values.ingress.hosts }}{{- $hosts = append $hosts .host }}{{- end }}
{{- end }}
{{- $svc := include "jfintech.componentName" (dict "root" . "suffix" "web") }}
{{- $hosts = append $hosts $svc }}
{{- $hosts = append $hosts (printf "%s.%s.svc" $svc .Release.Namespace) }}
{{- $hosts = append $hosts (printf "%s.%s.svc.cluster.local" $svc .Release.Namespace) }}
{{- $data := dict
  "DJANGO_SETTINGS_MODULE" .Values.config.djangoSettingsModule
  "ALLOWED_HOSTS" ($hosts | uniq | join ",")
  "LOG_LEVEL" .Values.config.logLevel
  "OTEL_SERVICE_NAME" (default (include "jfintech.fullname" .) .Values.config.otel.serviceName)
  "OTEL_TRACES_EXPORTER" .Values.config.otel.tracesExporter
  "OTEL_EXPORTER_OTLP_ENDPOINT" .Values.config.otel.endpoint
  "OTEL_METRICS_EXPORTER" "none"
  "OTEL_LOGS_EXPORTER" "none"
  "PROMETHEUS_MULTIPROC_DIR" .Values.config.prometheusMultiprocDir
  "PYTHONUNBUFFERED" "1"
  "PYTHONDONTWRITEBYTECODE" "1"
}}
{{- $c := .Values.config.celery }}
{{- if not (lt (int $c.taskTimeLimit) (int $c.visibilityTimeout)) }}
{{- fail "config.celery.taskTimeLimit must be below visibilityTimeout: the broker would deliver a slow task twice" }}
{{- end }}
{{- if not (lt (int $c.taskSoftTimeLimit) (int $c.taskTimeLimit)) }}
{{- fail "config.celery.taskSoftTimeLimit must be below taskTimeLimit" }}
{{- end }}
{{- $_ := set $data "CELERY_VISIBILITY_TIMEOUT" (toString $c.visibilityTimeout) }}
{{- $_ := set $data "CELERY_TASK_TIME_LIMIT" (toString $c.taskTimeLimit) }}
{{- $_ := set $data "CELERY_TASK_SOFT_TIME_LIMIT" (toString $c.taskSoftTimeLimit) }}
{{- $_ := set $data "CELERY_KEY_PREFIX" $c.keyPrefix }}
{{- range $k := list "CELERY_VISIBILITY_TIMEOUT" "CELERY_TASK_TIME_LIMIT" "CELERY_TASK_SOFT_TIME_LIMIT" "CELERY_KEY_PREFIX" }}
{{- if hasKey $.Values.config.extraEnv $k }}
{{- fail (printf "set %s through config.celery, not config.extraEnv (the worker drain and the KEDA triggers are derived from it)" $k) }}
{{- end }}
{{- end }}
{{- range $k, $v := .Values.config.extraEnv }}
{{- $_ := set $data $k (toString $v) }}
{{- end }}
{{- toYaml $data }}
{{- end }}

{{/*
Secret-backed env of the long-running processes: the RUNTIME database role only.
DATABASE_OWNER_URL is deliberately NOT exposed to them.
*/}}
{{- define "jfintech.runtimeSecretEnv" -}}
{{- $secret := include "jfintech.secretName" . }}
{{- range list "SECRET_KEY" "DATABASE_URL" "REDIS_URL" "AUDIT_HMAC_KEY" }}
- name: {{ . }}
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: {{ . }}
{{- end }}
{{- end }}

{{/*
Downward-API env shared by every container.
Usage: include "jfintech.podEnv" (dict "root" $ "component" "web")
*/}}
{{- define "jfintech.podEnv" -}}
- name: POD_NAME
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
- name: POD_NAMESPACE
  valueFrom:
    fieldRef:
      fieldPath: metadata.namespace
# Probes and Prometheus address the pod by IP; settings add POD_IP to ALLOWED_HOSTS.
- name: POD_IP
  valueFrom:
    fieldRef:
      fieldPath: status.podIP
- name: OTEL_RESOURCE_ATTRIBUTES
  value: "k8s.pod.name=$(POD_NAME),k8s.namespace.name=$(POD_NAMESPACE),jfintech.component={{ .component }}"
{{- with .root.Values.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
envFrom of the long-running processes.
*/}}
{{- define "jfintech.envFrom" -}}
- configMapRef:
    name: {{ include "jfintech.fullname" . }}
{{- with .Values.extraEnvFrom }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
Pod annotations: config checksums (config changes roll every pod) + user annotations.
Usage: include "jfintech.podAnnotations" (dict "root" $ "extra" .Values.web.podAnnotations)
*/}}
{{- define "jfintech.podAnnotations" -}}
checksum/config: {{ include "jfintech.configData" .root | sha256sum }}
{{- if .root.Values.secret.create }}
checksum/secret: {{ toYaml .root.Values.secret.values | sha256sum }}
{{- end }}
{{- with .root.Values.podAnnotations }}
{{ toYaml . }}
{{- end }}
{{- with .extra }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
Pod-level spec shared by every pod: identity, security, pull secrets, scheduling.
Usage: include "jfintech.podCommon" (dict "root" $ "proc" .Values.web "serviceAccountName" "...")
*/}}
{{- define "jfintech.podCommon" -}}
{{- $root := .root }}
serviceAccountName: {{ .serviceAccountName | default (include "jfintech.serviceAccountName" $root) }}
automountServiceAccountToken: false
enableServiceLinks: false
securityContext:
  {{- toYaml $root.Values.podSecurityContext | nindent 2 }}
{{- with $root.Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $root.Values.priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
{{- with (.proc.nodeSelector | default $root.Values.nodeSelector) }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with (.proc.tolerations | default $root.Values.tolerations) }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with (.proc.affinity | default $root.Values.affinity) }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/*
Container securityContext.
*/}}
{{- define "jfintech.containerSecurityContext" -}}
{{- toYaml .Values.securityContext }}
{{- end }}

{{/*
Writable scratch volumes: /tmp and the prometheus multiprocess directory.
*/}}
{{- define "jfintech.volumes" -}}
{{- $tmp := dict }}
{{- with .Values.tmpVolume.medium }}{{ $_ := set $tmp "medium" . }}{{ end }}
{{- with .Values.tmpVolume.sizeLimit }}{{ $_ := set $tmp "sizeLimit" . }}{{ end }}
{{- $prom := dict }}
{{- with .Values.prometheusVolume.medium }}{{ $_ := set $prom "medium" . }}{{ end }}
{{- with .Values.prometheusVolume.sizeLimit }}{{ $_ := set $prom "sizeLimit" . }}{{ end }}
- name: tmp
  emptyDir: {{- toYaml $tmp | nindent 4 }}
- name: prometheus-multiproc
  emptyDir: {{- toYaml $prom | nindent 4 }}
{{- end }}

{{- define "jfintech.volumeMounts" -}}
- name: tmp
  mountPath: /tmp
- name: prometheus-multiproc
  mountPath: {{ .Values.config.prometheusMultiprocDir }}
{{- end }}

{{/*
Topology spread of one Deployment's pods (values: topologySpread).
Usage: include "jfintech.topologySpread" (dict "root" $ "selector" (dict ...))
*/}}
{{- define "jfintech.topologySpread" -}}
{{- $selector := .selector }}
{{- with .root.Values.topologySpread }}
topologySpreadConstraints:
{{- range . }}
  - maxSkew: {{ .maxSkew | default 1 }}
    topologyKey: {{ required "topologySpread[].topologyKey is required" .topologyKey }}
    whenUnsatisfiable: {{ .whenUnsatisfiable | default "ScheduleAnyway" }}
    labelSelector:
      matchLabels:
        {{- toYaml $selector | nindent 8 }}
{{- end }}
{{- end }}
{{- end }}

{{/*
A worker's autoscaling settings: workerDefaults.autoscaling with the entry's overrides.
Usage: include "jfintech.workerAutoscaling" (dict "root" $ "worker" $w) | fromYaml
*/}}
{{- define "jfintech.workerAutoscaling" -}}
{{- toYaml (mergeOverwrite (deepCopy .root.Values.workerDefaults.autoscaling) (.worker.autoscaling | default dict)) }}
{{- end }}

{{/*
Seconds a drained worker lets its tasks run (worker_soft_shutdown_timeout): the worker's
drainSeconds, capped at the task hard time limit (no task runs longer than that).
Usage: include "jfintech.workerDrainSeconds" (dict "root" $ "worker" $w)
*/}}
{{- define "jfintech.workerDrainSeconds" -}}
{{- $drain := int (hasKey .worker "drainSeconds" | ternary .worker.drainSeconds .root.Values.workerDefaults.drainSeconds) }}
{{- min $drain (int .root.Values.config.celery.taskTimeLimit) }}
{{- end }}

{{/*
NetworkPolicy egress rules every role gets: DNS, PostgreSQL and the OTLP collector when traces
are exported; Redis too unless "redis" is false.
Usage: include "jfintech.netpolEgress" (dict "root" $ "redis" true "extra" list)
*/}}
{{- define "jfintech.netpolEgress" -}}
{{- $np := .root.Values.networkPolicy }}
- to:
    {{- toYaml $np.dns.to | nindent 4 }}
  ports:
    {{- toYaml $np.dns.ports | nindent 4 }}
- to:
    {{- toYaml $np.postgresql.to | nindent 4 }}
  ports:
    {{- toYaml $np.postgresql.ports | nindent 4 }}
{{- if .redis }}
- to:
    {{- toYaml $np.redis.to | nindent 4 }}
  ports:
    {{- toYaml $np.redis.ports | nindent 4 }}
{{- end }}
{{- if eq .root.Values.config.otel.tracesExporter "otlp" }}
- to:
    {{- toYaml $np.otlp.to | nindent 4 }}
  ports:
    {{- toYaml $np.otlp.ports | nindent 4 }}
{{- end }}
{{- with .extra }}
{{ toYaml . }}
{{- end }}
{{- end }}
