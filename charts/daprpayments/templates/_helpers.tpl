{{/* Chart name, truncated to the 63 characters Kubernetes allows in names and labels. */}}
{{- define "daprpayments.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Release-qualified name: every object of a release starts with it. */}}
{{- define "daprpayments.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* Labels for metadata. Never use these in selectors: they change with every chart version. */}}
{{- define "daprpayments.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version | replace "+" "_" | trunc 63 }}
{{ include "daprpayments.selectorLabels" . }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/part-of: daprpayments
daprpayments.dev/region: {{ .root.Values.region.name }}
{{- end -}}

{{/* Selector labels: stable for the life of a release. */}}
{{- define "daprpayments.selectorLabels" -}}
app.kubernetes.io/name: {{ include "daprpayments.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* Dapr app id of a component: release-qualified, so two releases in one namespace never collide. */}}
{{- define "daprpayments.appId" -}}
{{- printf "%s-%s" (include "daprpayments.fullname" .root) .component -}}
{{- end -}}

{{/* Client URLs of etcd: the chart's StatefulSet or the external cluster. */}}
{{- define "daprpayments.etcdEndpoints" -}}
{{- if .Values.etcd.enabled -}}
{{- $full := include "daprpayments.fullname" . -}}
{{- $urls := list -}}
{{- $scheme := ternary "https" "http" .Values.etcd.tls.enabled -}}
{{- range $i := until (int .Values.etcd.replicas) -}}
{{- $urls = append $urls (printf "%s://%s-etcd-%d.%s-etcd-headless:2379" $scheme $full $i $full) -}}
{{- end -}}
{{- join "," $urls -}}
{{- else -}}
{{- join "," .Values.etcd.externalEndpoints -}}
{{- end -}}
{{- end -}}

{{/* Secure defaults for every container: non-root, read-only root, no privilege escalation, no capabilities. */}}
{{- define "daprpayments.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
capabilities:
  drop: [ALL]
{{- end -}}

{{- /* A container's pull policy: image.pullPolicy, or when that is empty, Never for an image named daprpayments/… (the
     images scripts/build-images.sh tags and kind loads: they are in no registry, and a node pulling that name would get
     whatever docker.io/daprpayments holds, a namespace this project does not own) and IfNotPresent for any other.
     Called with (list $root $image). */}}
{{- define "daprpayments.pullPolicy" -}}
{{- $root := index . 0 -}}{{- $image := index . 1 -}}
{{- $root.Values.image.pullPolicy | default (ternary "Never" "IfNotPresent" (hasPrefix "daprpayments/" $image)) -}}
{{- end -}}

{{- /* A pod's imagePullSecrets (image.pullSecrets: names of Secrets in the release's namespace), at (dict "root" $root
     "indent" n); nothing when there are none. */}}
{{- define "daprpayments.imagePullSecrets" -}}
{{- with .root.Values.image.pullSecrets }}
{{- $lines := list "imagePullSecrets:" }}
{{- range . }}{{ $lines = append $lines (printf "  - name: %s" .) }}{{ end }}
{{- join "\n" $lines | nindent $.indent }}
{{- end }}
{{- end -}}

{{- define "daprpayments.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
fsGroup: 10001
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- /* Seconds as a .NET TimeSpan ("d.hh:mm:ss"), for configuration binding: with the days apart, 86400 s is one day
     ("24:00:00" would be read as 24 days). */}}
{{- define "daprpayments.timespan" -}}
{{- $s := int . -}}
{{- printf "%d.%02d:%02d:%02d" (div $s 86400) (div (mod $s 86400) 3600) (div (mod $s 3600) 60) (mod $s 60) -}}
{{- end -}}

{{/* A podSelector body matching the release's app pods (not etcd, not the test pod). */}}
{{- define "daprpayments.appPods" -}}
matchLabels:
  app.kubernetes.io/instance: {{ .Release.Name }}
matchExpressions:
  - {key: app.kubernetes.io/component, operator: In, values: [api, orchestrator, ledger, risk, failover]}
{{- end -}}

{{/* A podSelector body matching the apps that use etcd: every app but risk (in-memory velocity, no etcd user). */}}
{{- define "daprpayments.etcdClientApps" -}}
matchLabels:
  app.kubernetes.io/instance: {{ .Release.Name }}
matchExpressions:
  - {key: app.kubernetes.io/component, operator: In, values: [api, orchestrator, ledger, failover]}
{{- end -}}

{{/* The etcd users with a client certificate (its common name), space-separated: root (the bootstrap Job), the
     maintenance user (root role: the etcd-maintenance Deployment), one per app, and the orchestrator's Dapr state
     store. Payments.Etcd.EtcdRoles holds the same table; a deployment test compares them. */}}
{{- define "daprpayments.etcdUsers" -}}
root maintenance ledger api orchestrator failover statestore
{{- end -}}

{{/* The key families each app's etcd role may read and write ("rw") or only read ("read"), relative to
     payments.keyPrefix: the same table as Payments.Etcd.EtcdRoles.For (a deployment test compares them). */}}
{{- define "daprpayments.etcdRoles" -}}
ledger: {rw: [ledger/], read: [region/, api/, payments/, webhooks/endpoints/, webhooks/removed/, replication/copied]}
api: {rw: [api/, payments/, idempotency/, webhooks/, locks/webhook-dispatcher], read: [region/]}
orchestrator: {rw: [payments/, webhooks/outbox/, locks/payment-sweeper, sweeper/], read: [region/]}
failover: {rw: [region/, ledger/, api/, payments/, webhooks/endpoints/, webhooks/removed/, webhooks/outbox/, webhooks/due/, replication/, sweeper/], read: []}
statestore: {rw: [dapr], read: []}
{{- end -}}

{{/* The Secret with the client certificate of etcd user .user (keys ca.crt, tls.crt, tls.key). */}}
{{- define "daprpayments.etcdClientSecret" -}}
{{- printf "%s-etcd-client-%s" (include "daprpayments.fullname" .root) .user -}}
{{- end -}}

{{/* The Secret with the metrics scraper's token (key "token", optional "nextToken"): the apps check it, the
     ServiceMonitor/PodMonitor present it. */}}
{{- define "daprpayments.metricsTokenSecret" -}}
{{- .Values.monitoring.metrics.tokenSecretName | default (printf "%s-metrics-token" (include "daprpayments.fullname" .)) -}}
{{- end -}}

{{/* An alert's runbook annotation: a link under monitoring.runbookBaseUrl, or the file's name in the source. */}}
{{- define "daprpayments.runbook" -}}
{{- if .base -}}
runbook_url: "{{ .base }}/{{ .file }}"
{{- else -}}
runbook: "docs/runbooks/{{ .file }} in the DaprPayments source"
{{- end -}}
{{- end -}}
