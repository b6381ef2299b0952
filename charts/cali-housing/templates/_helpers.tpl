{{/*
Chart name, cut to 63 characters (the DNS label limit).
*/}}
{{- define "cali-housing.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Fully qualified app name, cut to 63 characters. When the release name already contains the chart
name it is used as is.
*/}}
{{- define "cali-housing.fullname" -}}
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
A component's resource name: <fullname>-<component>, cut to 63 characters.
Usage: include "cali-housing.componentName" (list . "monitor")
*/}}
{{- define "cali-housing.componentName" -}}
{{- $ctx := index . 0 }}
{{- printf "%s-%s" (include "cali-housing.fullname" $ctx | trunc (int (sub 62 (len (index . 1))))) (index . 1) | trimSuffix "-" }}
{{- end }}

{{- define "cali-housing.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Common labels.
*/}}
{{- define "cali-housing.labels" -}}
helm.sh/chart: {{ include "cali-housing.chart" . }}
{{ include "cali-housing.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | trunc 63 | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: cali-housing
housing.io/release: {{ .Release.Name }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
Selector labels.
*/}}
{{- define "cali-housing.selectorLabels" -}}
app.kubernetes.io/name: {{ include "cali-housing.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
Labels of a component. Usage: include "cali-housing.componentLabels" (list . "inference")
*/}}
{{- define "cali-housing.componentLabels" -}}
{{ include "cali-housing.labels" (index . 0) }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end }}

{{- define "cali-housing.componentSelectorLabels" -}}
{{ include "cali-housing.selectorLabels" (index . 0) }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end }}

{{/*
ServiceAccount name of a component. Usage: include "cali-housing.serviceAccountName" (list . "monitor")
*/}}
{{- define "cali-housing.serviceAccountName" -}}
{{- include "cali-housing.componentName" . }}
{{- end }}

{{/*
The required Secret reference: rendering fails with instructions when it is missing.
*/}}
{{/*
The Secret keys this release's pods require (one per line): the migration hook checks them first, so a
missing Secret or key fails the sync at once with the command that fixes it. Keep in step with every
`optional: false` secretKeyRef (tests/deploy/test_required_secret.py renders both and compares).
*/}}
{{- define "cali-housing.requiredSecretKeys" -}}
{{- $k := .Values.secrets.keys -}}
{{ $k.databaseUrl }}
{{ $k.modelSigningKey }}
{{- if not .Values.inference.feedback.allowAnonymous }}
{{ $k.feedbackToken }}
{{- end }}
{{- if .Values.mlflow.server.enabled }}
{{ $k.mlflowBackendStoreUri }}
{{- if .Values.mlflow.server.auth.enabled }}
{{ $k.mlflowFlaskSecretKey }}
{{ $k.mlflowAdminPassword }}
{{- if not .Values.config.mlflowTrackingUri }}
{{ $k.mlflowWriterPassword }}
{{ $k.mlflowMonitorPassword }}
{{ $k.mlflowReaderPassword }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}

{{- define "cali-housing.secretName" -}}
{{- $k := .Values.secrets.keys -}}
{{- $required := list $k.databaseUrl $k.modelSigningKey -}}
{{- if not .Values.inference.feedback.allowAnonymous }}{{ $required = append $required $k.feedbackToken }}{{ end -}}
{{- $example := printf "--from-literal=%s='postgresql://user:pass@host:5432/db' --from-literal=%s='<private key of housing keys new>'" $k.databaseUrl $k.modelSigningKey -}}
{{- if not .Values.inference.feedback.allowAnonymous }}{{ $example = printf "%s --from-literal=%s=\"$(openssl rand -hex 32)\"" $example $k.feedbackToken }}{{ end -}}
{{- if .Values.mlflow.server.enabled }}
{{- $required = append $required (printf "%s (while mlflow.server.enabled)" $k.mlflowBackendStoreUri) }}
{{- $example = printf "%s --from-literal=%s='postgresql+psycopg://user:pass@host:5432/mlflow'" $example $k.mlflowBackendStoreUri }}
{{- if .Values.mlflow.server.auth.enabled }}
{{- $authKeys := list $k.mlflowAdminPassword $k.mlflowFlaskSecretKey }}
{{- if include "cali-housing.inChartMlflowAuth" . }}{{ $authKeys = concat $authKeys (list $k.mlflowWriterPassword $k.mlflowMonitorPassword $k.mlflowReaderPassword) }}{{ end }}
{{- $required = append $required (printf "%s (while mlflow.server.auth.enabled)" (join ", " $authKeys)) }}
{{- range $authKeys }}
{{- $example = printf "%s --from-literal=%s=\"$(openssl rand -hex 24)\"" $example . }}
{{- end }}
{{- end }}
{{- end -}}
{{- $optional := list $k.telegramBotToken $k.telegramChatId $k.alertWebhookUrl -}}
{{- if not (include "cali-housing.inChartMlflowAuth" .) }}{{ $optional = concat $optional (list $k.mlflowWriterPassword $k.mlflowMonitorPassword $k.mlflowReaderPassword) }}{{ end -}}
{{- $optional = concat $optional (list $k.awsAccessKeyId $k.awsSecretAccessKey) -}}
{{- required (printf "set secrets.existingSecret: create a Secret with keys %s (required), and optionally %s; e.g. kubectl create secret generic cali-housing-secrets -n %s %s, then --set secrets.existingSecret=cali-housing-secrets" (join ", " $required) (join ", " $optional) .Release.Namespace $example) .Values.secrets.existingSecret }}
{{- end }}

{{/*
Image reference of a component: registry/repository@digest when <component>.image.digest is set,
else registry/repository:image.tag. image.tag stays required (the version label names the commit).
Usage: include "cali-housing.image" (list . "inference")
*/}}
{{- define "cali-housing.image" -}}
{{- $ctx := index . 0 }}
{{- $component := index $ctx.Values (index . 1) }}
{{- $tag := required "set image.tag: the commit SHA the images were built from (never latest)" $ctx.Values.image.tag }}
{{- if $component.image.digest }}
{{- /* By digest: the bytes that ran healthy in staging, whatever the tag points at later. */}}
{{- printf "%s/%s@%s" $ctx.Values.image.registry $component.image.repository $component.image.digest }}
{{- else }}
{{- printf "%s/%s:%s" $ctx.Values.image.registry $component.image.repository $tag }}
{{- end }}
{{- end }}

{{/*
MLflow tracking URI: the explicit value, else the in-chart server.
*/}}
{{- define "cali-housing.mlflowTrackingUri" -}}
{{- if .Values.config.mlflowTrackingUri }}
{{- .Values.config.mlflowTrackingUri }}
{{- else if .Values.mlflow.server.enabled }}
{{- printf "http://%s:%d" (include "cali-housing.componentName" (list . "mlflow")) (int .Values.mlflow.server.port) }}
{{- else }}
{{- fail "set config.mlflowTrackingUri (a hosted MLflow registry) or mlflow.server.enabled=true" }}
{{- end }}
{{- end }}

{{/*
A mandatory value from the Secret: the kubelet refuses to start the container
(CreateContainerConfigError) while the Secret lacks the key.
Usage: include "cali-housing.requiredSecretEnv" (list . "FEEDBACK_TOKEN" "feedbackToken")
*/}}
{{- define "cali-housing.requiredSecretEnv" -}}
{{- $ctx := index . 0 -}}
- name: {{ index . 1 }}
  valueFrom:
    secretKeyRef:
      name: {{ include "cali-housing.secretName" $ctx }}
      key: {{ index $ctx.Values.secrets.keys (index . 2) }}
      optional: false
{{- end }}

{{/*
An optional value from the Secret. Usage: include "cali-housing.optionalSecretEnv" (list . "TELEGRAM_BOT_TOKEN" "telegramBotToken")
*/}}
{{- define "cali-housing.optionalSecretEnv" -}}
{{- $ctx := index . 0 -}}
- name: {{ index . 1 }}
  valueFrom:
    secretKeyRef:
      name: {{ include "cali-housing.secretName" $ctx }}
      key: {{ index $ctx.Values.secrets.keys (index . 2) }}
      optional: true
{{- end }}

{{/*
The public keys a model version must be signed by (services/common/model_signing.py): every reader of
registry artifacts (inference, monitor, trainer) gets them; rendering fails without one.
*/}}
{{- define "cali-housing.modelVerifyEnv" -}}
{{- $keys := .Values.modelSigning.publicKeys -}}
{{- if not $keys }}
{{- fail "set modelSigning.publicKeys: the services load only model versions signed by the trainer. Run `housing keys new`: put its private key into the release Secret (key MODEL_SIGNING_KEY) and its public key into modelSigning.publicKeys in values-<env>.yaml" }}
{{- end -}}
- name: MODEL_VERIFY_KEYS
  value: {{ join "," $keys | quote }}
{{- end }}

{{/*
Non-empty when the clients talk to the in-chart MLflow server with basic auth on.
*/}}
{{- define "cali-housing.inChartMlflowAuth" -}}
{{- if and .Values.mlflow.server.enabled .Values.mlflow.server.auth.enabled (not .Values.config.mlflowTrackingUri) }}true{{ end }}
{{- end }}

{{/*
The MLflow login of one identity (mlflow.users: writer, monitor or reader), which MLflow's client
reads from MLFLOW_TRACKING_USERNAME/PASSWORD. Each workload gets its own identity's password and no
other: the in-chart server's basic auth makes it mandatory; a hosted registry may need none (optional).
With the in-chart server's auth off there is nothing to log in to.
Usage: include "cali-housing.mlflowLoginEnv" (list . "reader")
*/}}
{{- define "cali-housing.mlflowLoginEnv" -}}
{{- $ctx := index . 0 }}
{{- $who := index . 1 }}
{{- $key := printf "mlflow%sPassword" (title $who) }}
{{- $inChart := and $ctx.Values.mlflow.server.enabled (not $ctx.Values.config.mlflowTrackingUri) }}
{{- if or (not $inChart) $ctx.Values.mlflow.server.auth.enabled }}
- name: MLFLOW_TRACKING_USERNAME
  value: {{ index $ctx.Values.mlflow.users $who | quote }}
{{ include (ternary "cali-housing.requiredSecretEnv" "cali-housing.optionalSecretEnv" $inChart) (list $ctx "MLFLOW_TRACKING_PASSWORD" $key) }}
{{- end }}
{{- end }}

{{/*
Environment shared by every service (the same names as in services/common settings and the README).
*/}}
{{- define "cali-housing.commonEnv" -}}
- name: DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "cali-housing.secretName" . }}
      key: {{ .Values.secrets.keys.databaseUrl }}
- name: MLFLOW_TRACKING_URI
  value: {{ include "cali-housing.mlflowTrackingUri" . | quote }}
{{- /* The in-chart server proxies artifacts (--serve-artifacts, mlflow-artifacts:/ URIs): clients
upload and download through it, so the object store's keys live in its Deployment only. An external
server may hand out s3:// URIs that clients open themselves: only then do the services get them. */}}
{{- if not .Values.mlflow.server.enabled }}
{{ include "cali-housing.optionalSecretEnv" (list . "AWS_ACCESS_KEY_ID" "awsAccessKeyId") }}
{{ include "cali-housing.optionalSecretEnv" (list . "AWS_SECRET_ACCESS_KEY" "awsSecretAccessKey") }}
{{- with .Values.config.mlflowS3EndpointUrl }}
- name: MLFLOW_S3_ENDPOINT_URL
  value: {{ . | quote }}
{{- end }}
{{- with .Values.config.awsDefaultRegion }}
- name: AWS_DEFAULT_REGION
  value: {{ . | quote }}
{{- end }}
{{- end }}
- name: HOUSING_HOME
  value: /var/lib/housing
- name: LOG_LEVEL
  value: {{ .Values.config.logLevel | quote }}
- name: LOG_FORMAT
  value: {{ .Values.config.logFormat | default "json" | quote }}
{{- with .Values.config.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
A map of extra variables as an env list. Usage: include "cali-housing.envMap" .Values.trainer.env
*/}}
{{- define "cali-housing.envMap" -}}
{{- range $name, $value := . }}
{{ printf "- name: %s" $name }}
{{ printf "  value: %s" ($value | toString | quote) }}
{{- end }}
{{- end }}

{{/*
Writable folders under a read-only root filesystem.
*/}}
{{- define "cali-housing.writableVolumes" -}}
- name: housing-home
  emptyDir:
    sizeLimit: {{ .Values.housingHome.sizeLimit }}
- name: tmp
  emptyDir:
    sizeLimit: {{ .Values.housingHome.tmpSizeLimit }}
{{- end }}

{{- define "cali-housing.writableMounts" -}}
- name: housing-home
  mountPath: /var/lib/housing
- name: tmp
  mountPath: /tmp
{{- end }}

{{/*
The monitor's reports folder (REPORTS_DIR), shared by the monitor and maintenance CronJobs: a
claim when monitor.reports.persistence is on, else a folder of the pod's own housing home.
*/}}
{{- define "cali-housing.reportsDir" -}}/var/lib/housing/reports{{- end }}

{{- define "cali-housing.reportsEnv" -}}
- name: REPORTS_DIR
  value: {{ include "cali-housing.reportsDir" . }}
{{- end }}

{{- define "cali-housing.reportsMounts" -}}
{{- if .Values.monitor.reports.persistence.enabled }}
- name: reports
  mountPath: {{ include "cali-housing.reportsDir" . }}
{{- end }}
{{- end }}

{{- define "cali-housing.reportsVolumes" -}}
{{- if .Values.monitor.reports.persistence.enabled }}
- name: reports
  persistentVolumeClaim:
    claimName: {{ include "cali-housing.componentName" (list . "monitor-reports") }}
{{- end }}
{{- end }}

{{/*
Selects every pod of the release, the monitor-stamped trainer Jobs included (they carry
housing.io/release instead of app.kubernetes.io/instance).
*/}}
{{- define "cali-housing.releasePodSelector" -}}
app.kubernetes.io/name: {{ include "cali-housing.name" . }}
housing.io/release: {{ .Release.Name }}
{{- end }}

{{- define "cali-housing.imagePullSecrets" -}}
{{- with .Values.image.pullSecrets }}
imagePullSecrets:
{{- range . }}
  - name: {{ . }}
{{- end }}
{{- end }}
{{- end }}

{{/*
The trainer Job (a complete batch/v1 manifest). The monitor reads it from the ConfigMap, adds the
label housing.io/drift-report and creates it. It must carry no Argo CD tracking metadata
(app.kubernetes.io/instance is Argo CD's default tracking label), or Argo CD would prune the Job.
*/}}
{{- define "cali-housing.trainerJob" -}}
apiVersion: batch/v1
kind: Job
metadata:
  generateName: {{ include "cali-housing.componentName" (list . "trainer") }}-
  labels:
    app.kubernetes.io/name: {{ include "cali-housing.name" . }}
    app.kubernetes.io/component: trainer
    app.kubernetes.io/part-of: cali-housing
    app.kubernetes.io/managed-by: housing-monitor
    housing.io/release: {{ .Release.Name }}
spec:
  backoffLimit: {{ .Values.trainer.backoffLimit }}
  activeDeadlineSeconds: {{ .Values.trainer.activeDeadlineSeconds }}
  ttlSecondsAfterFinished: {{ .Values.trainer.ttlSecondsAfterFinished }}
  template:
    metadata:
      labels:
        app.kubernetes.io/name: {{ include "cali-housing.name" . }}
        app.kubernetes.io/component: trainer
        housing.io/release: {{ .Release.Name }}
    spec:
      restartPolicy: Never
      serviceAccountName: {{ include "cali-housing.serviceAccountName" (list . "trainer") }}
      {{- include "cali-housing.priorityClassName" . | nindent 6 }}
      automountServiceAccountToken: false
      securityContext:
        {{- toYaml .Values.podSecurityContext | nindent 8 }}
      {{- include "cali-housing.imagePullSecrets" . | nindent 6 }}
      containers:
        - name: trainer
          image: {{ include "cali-housing.image" (list . "trainer") }}
          imagePullPolicy: {{ .Values.image.pullPolicy }}
          command: ["housing", "train"]
          env:
            {{- include "cali-housing.commonEnv" . | nindent 12 }}
            {{- include "cali-housing.mlflowLoginEnv" (list . "writer") | nindent 12 }}
            # The trainer signs each version it registers; only it holds the private key.
            {{- include "cali-housing.requiredSecretEnv" (list . "MODEL_SIGNING_KEY" "modelSigningKey") | nindent 12 }}
            {{- include "cali-housing.modelVerifyEnv" . | nindent 12 }}
            # The monitor's smallest window: the trainer measures the estimate's band in chunks of it.
            - name: DRIFT_MIN_ROWS
              value: {{ .Values.monitor.driftMinRows | quote }}
            {{- include "cali-housing.envMap" .Values.trainer.env | nindent 12 }}
          resources:
            {{- toYaml .Values.trainer.resources | nindent 12 }}
          securityContext:
            {{- toYaml .Values.containerSecurityContext | nindent 12 }}
          volumeMounts:
            {{- include "cali-housing.writableMounts" . | nindent 12 }}
      volumes:
        {{- include "cali-housing.writableVolumes" . | nindent 8 }}
      {{- with .Values.trainer.nodeSelector }}
      nodeSelector:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with .Values.trainer.tolerations }}
      tolerations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
{{- end }}

{{/*
Inline checkov suppressions, each with its reason (checkov reads checkov.io/skipN annotations).
Usage: include "cali-housing.checkovSkips" (list "CKV_K8S_43" "CKV_K8S_15")
*/}}
{{- define "cali-housing.checkovSkips" -}}
{{- $reasons := dict
  "CKV_K8S_43" "staging pulls immutable commit-SHA tags that CI writes (the digest is not known before the push); prod pulls by digest once promote.yml pins <service>.image.digest"
  "CKV_K8S_15" "tags are immutable commit SHAs, so IfNotPresent pulls the same image without a registry round-trip on every restart"
  "CKV_K8S_35" "the services take 12-factor settings (DATABASE_URL, MLflow credentials) from the environment, by reference to the Secret"
  "CKV_K8S_38" "the monitor creates trainer Jobs through the Kubernetes API (Role: batch/jobs create/list only)"
  "CKV_K8S_8" "a one-shot helm test pod: nothing to keep alive"
  "CKV_K8S_9" "a one-shot helm test pod: it is the readiness check"
}}
{{- range $i, $id := . }}
checkov.io/skip{{ add1 $i }}: {{ printf "%s=%s" $id (get $reasons $id) | quote }}
{{- end }}
{{- end }}

{{/*
A Kubernetes quantity (a number, or a string such as "8Gi", "500M", "1073741824") in bytes, as a
float. Helm reads YAML numbers as floats, so numbers are taken as they are.
Usage: include "cali-housing.bytes" (list "inference.spool.persistence.size" .Values.inference.spool.persistence.size)
*/}}
{{- define "cali-housing.bytes" -}}
{{- $key := index . 0 }}
{{- $q := index . 1 }}
{{- if kindIs "string" $q }}
{{- $num := regexFind "^[0-9]+(\\.[0-9]+)?" $q }}
{{- $suffix := trimPrefix $num $q }}
{{- $mult := dict "" 1.0 "k" 1e3 "M" 1e6 "G" 1e9 "T" 1e12 "Ki" 1024.0 "Mi" 1048576.0 "Gi" 1073741824.0 "Ti" 1099511627776.0 }}
{{- if or (not $num) (not (hasKey $mult $suffix)) }}
{{- fail (printf "%s: %q is not a size (use e.g. 8Gi)" $key $q) }}
{{- end }}
{{- mulf (float64 $num) (get $mult $suffix) }}
{{- else }}
{{- float64 $q }}
{{- end }}
{{- end }}

{{/*
Most inference pods that can run at once: the HPA's maximum (else replicaCount) plus the rolling
update's surge pod (maxSurge 1).
*/}}
{{- define "cali-housing.inferenceMaxPods" -}}
{{- $i := .Values.inference }}
{{- add1 (ternary $i.autoscaling.maxReplicas $i.replicaCount $i.autoscaling.enabled) }}
{{- end }}

{{/*
Render-time checks of the inference settings; fails with the fix named.
*/}}
{{- define "cali-housing.validateInference" -}}
{{- $i := .Values.inference }}
{{- $budget := add $i.preStopSleepSeconds $i.httpShutdownSeconds $i.logDrainSeconds 5 }}
{{- if gt (int $budget) (int $i.terminationGracePeriodSeconds) }}
{{- fail (printf "inference.terminationGracePeriodSeconds (%d) is shorter than the shutdown: inference.preStopSleepSeconds (%d) + inference.httpShutdownSeconds (%d) + inference.logDrainSeconds (%d) + a 5 s margin = %d s; raise inference.terminationGracePeriodSeconds to at least %d or lower those" (int $i.terminationGracePeriodSeconds) (int $i.preStopSleepSeconds) (int $i.httpShutdownSeconds) (int $i.logDrainSeconds) (int $budget) (int $budget)) }}
{{- end }}
{{- if $i.spool.persistence.enabled }}
{{- $pods := include "cali-housing.inferenceMaxPods" . | int }}
{{- $size := include "cali-housing.bytes" (list "inference.spool.persistence.size" $i.spool.persistence.size) | float64 }}
{{- $need := mulf $pods (float64 $i.spool.maxBytes) }}
{{- if lt $size $need }}
{{- fail (printf "inference.spool.persistence.size (%v) cannot hold the spools of every inference server: %d pods (%s + 1 rollout surge pod) x inference.spool.maxBytes (%d) = %d bytes; set inference.spool.persistence.size to at least %dGi, or lower inference.spool.maxBytes or the replica count" $i.spool.persistence.size $pods (ternary (printf "inference.autoscaling.maxReplicas %d" (int $i.autoscaling.maxReplicas)) (printf "inference.replicaCount %d" (int $i.replicaCount)) $i.autoscaling.enabled) (int64 $i.spool.maxBytes) (int64 $need) (int64 (ceil (divf $need 1073741824.0)))) }}
{{- end }}
{{- end }}
{{- end }}

{{/*
The pods of one component of this release, trainer Jobs included (they carry housing.io/release,
not app.kubernetes.io/instance). Usage: include "cali-housing.componentPodSelector" (list . "trainer")
*/}}
{{- define "cali-housing.componentPodSelector" -}}
{{ include "cali-housing.releasePodSelector" (index . 0) }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end }}

{{/*
The egress NetworkPolicy of one component: the named destinations of networkPolicy.egress (each
`to` peers on its `ports`; DNS alone may have no `to`), plus extra rules given as YAML.
Usage: include "cali-housing.egressPolicy" (list . "monitor" (list "dns" "database") "")
*/}}
{{- define "cali-housing.egressPolicy" -}}
{{- $ctx := index . 0 }}
{{- $component := index . 1 }}
{{- $extra := index . 3 }}
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: {{ include "cali-housing.componentName" (list $ctx (printf "%s-egress" $component)) }}
  namespace: {{ $ctx.Release.Namespace }}
  labels:
    {{- include "cali-housing.componentLabels" (list $ctx $component) | nindent 4 }}
spec:
  podSelector:
    matchLabels:
      {{- include "cali-housing.componentPodSelector" (list $ctx $component) | nindent 6 }}
  policyTypes: [Egress]
  egress:
    {{- range index . 2 }}
    {{- $d := index $ctx.Values.networkPolicy.egress . }}
    {{- if not $d.to }}
    {{- fail (printf "networkPolicy.egress.%s.to is empty: that would allow its ports to any address; list the peers (ipBlock, namespaceSelector, podSelector)" .) }}
    {{- end }}
    # {{ . }}
    - ports:
        {{- toYaml $d.ports | nindent 8 }}
      {{- with $d.to }}
      to:
        {{- toYaml . | nindent 8 }}
      {{- end }}
    {{- end }}
    {{- with $extra }}
    {{- . | nindent 4 }}
    {{- end }}
{{- end }}

{{/*
The release's PriorityClass on every pod (prod above staging: on a full node the scheduler
preempts staging's pods, never prod's). Named after the release namespace; nothing when disabled.
*/}}
{{- define "cali-housing.priorityClassName" -}}
{{- if .Values.priorityClass.enabled }}
priorityClassName: {{ .Release.Namespace }}
{{- end }}
{{- end }}

{{/*
The annotation that has Stakater Reloader roll a Deployment when the release Secret changes (a rotated
token, a moved database): environment variables from a Secret are read once, at container start.
Reloader's "annotations" strategy (argocd/apps/platform-reloader.yaml) stamps the pod template with an
annotation git does not set, which Argo CD's diff leaves alone; its default env-var strategy would add an
env entry that selfHeal reverts. Without Reloader the annotation is inert: restart by hand
(docs/operations.md).
Usage: include "cali-housing.reloadOnSecret" .
*/}}
{{- define "cali-housing.reloadOnSecret" -}}
{{- if .Values.secrets.rollOnChange }}
secret.reloader.stakater.com/reload: {{ .Values.secrets.existingSecret | quote }}
{{- end }}
{{- end }}
