{{/* Names, labels and the derived facts every template shares. */}}

{{- define "musepose-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
The operator's objects are named musepose-operator whatever the release is called (the
operator runs once per cluster, next to its cluster-scoped CRD); fullnameOverride changes it.
*/}}
{{- define "musepose-operator.fullname" -}}
{{- default (include "musepose-operator.name" .) .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "musepose-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "musepose-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "musepose-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end -}}

{{- define "musepose-operator.labels" -}}
helm.sh/chart: {{ include "musepose-operator.chart" . }}
app.kubernetes.io/name: {{ include "musepose-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: musepose
{{- end -}}

{{- define "musepose-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "musepose-operator.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* repository:tag, or repository@digest; the tag defaults to the chart's appVersion. */}}
{{- define "musepose-operator.imageRef" -}}
{{- $image := index . 0 -}}
{{- $root := index . 1 -}}
{{- if $image.digest -}}
{{- printf "%s@%s" $image.repository $image.digest -}}
{{- else -}}
{{- printf "%s:%s" $image.repository (default $root.Chart.AppVersion $image.tag) -}}
{{- end -}}
{{- end -}}

{{/* "true" when the operator watches every namespace (no watchNamespaces). */}}
{{- define "musepose-operator.clusterwide" -}}
{{- if not .Values.operator.watchNamespaces -}}true{{- end -}}
{{- end -}}

{{/* "true" when a watchNamespaces entry is a kopf pattern (glob or negation), not a name. */}}
{{- define "musepose-operator.hasPatterns" -}}
{{- range .Values.operator.watchNamespaces -}}
{{- if not (regexMatch "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$" .) -}}true{{- end -}}
{{- end -}}
{{- end -}}

{{/* "true" when the operator RBAC must be cluster-wide: no namespaces, or patterns. */}}
{{- define "musepose-operator.clusterRbac" -}}
{{- if or (include "musepose-operator.clusterwide" .) (include "musepose-operator.hasPatterns" .) -}}true{{- end -}}
{{- end -}}

{{/* "true" when kopf peering is on: more than one replica (else --standalone). */}}
{{- define "musepose-operator.peering" -}}
{{- if gt (int .Values.replicaCount) 1 -}}true{{- end -}}
{{- end -}}

{{/* The exact watched namespace names, as a JSON list. */}}
{{- define "musepose-operator.watchedNamespaces" -}}
{{- $names := list -}}
{{- range .Values.operator.watchNamespaces -}}
{{- if regexMatch "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$" . -}}
{{- $names = append $names . -}}
{{- end -}}
{{- end -}}
{{- $names | uniq | toJson -}}
{{- end -}}

{{/*
Namespaces where runner pods run, as a JSON list: runner.namespaces, else the exact watched
namespaces, else the release namespace.
*/}}
{{- define "musepose-operator.runnerNamespaces" -}}
{{- $names := .Values.runner.namespaces -}}
{{- if not $names -}}
{{- $names = include "musepose-operator.watchedNamespaces" . | fromJsonArray -}}
{{- end -}}
{{- if not $names -}}
{{- $names = list .Release.Namespace -}}
{{- end -}}
{{- $names | uniq | toJson -}}
{{- end -}}

{{/* Where the S3 Secret is created: the release namespace and every runner namespace. */}}
{{- define "musepose-operator.secretNamespaces" -}}
{{- prepend (include "musepose-operator.runnerNamespaces" . | fromJsonArray) .Release.Namespace | uniq | toJson -}}
{{- end -}}

{{/* kopf's peering object name: fixed by the operator (musepose_operator.main.PEERING_NAME). */}}
{{- define "musepose-operator.peeringName" -}}musepose-operator{{- end -}}

{{/* Refuse value combinations that would install something that cannot work. */}}
{{- define "musepose-operator.validate" -}}
{{- if and (include "musepose-operator.hasPatterns" .) (not .Values.rbac.clusterDiscovery) -}}
{{- fail "operator.watchNamespaces holds a pattern: kopf must list namespaces to resolve it, so rbac.clusterDiscovery must be true" -}}
{{- end -}}
{{- if and (include "musepose-operator.hasPatterns" .) (include "musepose-operator.peering" .) -}}
{{- fail "operator.watchNamespaces holds a pattern: peering objects cannot be created in namespaces not known in advance; use exact names, leave it empty (cluster-wide) or set replicaCount to 1" -}}
{{- end -}}
{{- if and .Values.weights.pull.enabled .Values.runner.weights.image.reference -}}
{{- fail "weights.pull fills the weights PVC, runner.weights.image replaces it: choose one" -}}
{{- end -}}
{{- if and .Values.weights.pull.enabled (not .Values.runner.weights.pvc) -}}
{{- fail "weights.pull needs runner.weights.pvc (the volume it fills)" -}}
{{- end -}}
{{- if and .Values.s3.credentials.create (not .Values.s3.credentials.secretName) -}}
{{- fail "s3.credentials.create needs s3.credentials.secretName" -}}
{{- end -}}
{{- if and .Values.s3.credentials.create (or (not .Values.s3.credentials.accessKey) (not .Values.s3.credentials.secretKey)) -}}
{{- fail "s3.credentials.create needs s3.credentials.accessKey and s3.credentials.secretKey" -}}
{{- end -}}
{{- end -}}

{{- /* A NetworkPolicy egress rule: (list CIDRs ports); no CIDRs: any address, these ports. */ -}}
{{- define "musepose-operator.egressTo" -}}
{{- $cidrs := index . 0 -}}
{{- $ports := index . 1 -}}
- {{- if $cidrs }}
  to:
    {{- range $cidrs }}
    - ipBlock: {cidr: {{ . }}}
    {{- end }}
  {{- end }}
  ports:
    {{- range $ports }}
    - {protocol: TCP, port: {{ . }}}
    {{- end }}
{{- end -}}

{{- /* The egress rule to allow-listed https hosts (inputs.allowedHttpsHosts: host, port 443,
or host:port): their ports on networkPolicy.httpsCIDRs, by default every public address.
Runner pods fetch https inputs through it, the operator sends callbacks through it. */ -}}
{{- define "musepose-operator.httpsEgress" -}}
{{- $np := .Values.networkPolicy -}}
{{- $httpsPorts := list -}}
{{- range .Values.inputs.allowedHttpsHosts }}
{{- $parts := splitList ":" . -}}
{{- $httpsPorts = append $httpsPorts (ternary (last $parts) "443" (eq (len $parts) 2)) -}}
{{- end }}
{{- $httpsPorts = $httpsPorts | default (list "443") | uniq -}}
- to:
    {{- range $np.httpsCIDRs }}
    - ipBlock: {cidr: {{ . }}}
    {{- else }}
    - ipBlock:
        cidr: 0.0.0.0/0
        except: [10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16, 127.0.0.0/8, 169.254.0.0/16, 100.64.0.0/10]
    - ipBlock:
        cidr: ::/0
        except: ["fc00::/7", "fe80::/10", "::1/128", "64:ff9b::/96", "2002::/16"]
    {{- end }}
  ports:
    {{- range $httpsPorts }}
    - {protocol: TCP, port: {{ int . }}}
    {{- end }}
{{- end -}}

{{/* The Secret with the keys sealing status.output for reclaim (outputs.reclaimKeys). */}}
{{- define "musepose-operator.reclaimKeysSecret" -}}
{{- default (printf "%s-reclaim-keys" (include "musepose-operator.fullname" .)) .Values.outputs.reclaimKeys.existingSecret -}}
{{- end -}}

{{/* The weights pull Job, in each runner namespace: a new one for every install and upgrade. */}}
{{- define "musepose-operator.weightsPullJob" -}}
{{- printf "%s%d" (include "musepose-operator.weightsPullJobPrefix" .) (.Release.Revision | int) -}}
{{- end -}}

{{/* What every revision's weights pull Job name starts with (reserved: vap-weights-pull.yaml). */}}
{{- define "musepose-operator.weightsPullJobPrefix" -}}
{{- printf "%s-weights-pull-" (include "musepose-operator.fullname" . | trunc 40 | trimSuffix "-") -}}
{{- end -}}
