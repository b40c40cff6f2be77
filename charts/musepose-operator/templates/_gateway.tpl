{{/* Names and derived facts of the compatibility gateway (templates/gateway-*.yaml). */}}

{{- define "musepose-operator.gateway.fullname" -}}
{{- printf "%s-gateway" (include "musepose-operator.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "musepose-operator.gateway.selectorLabels" -}}
app.kubernetes.io/name: {{ include "musepose-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: gateway
{{- end -}}

{{- define "musepose-operator.gateway.labels" -}}
{{ include "musepose-operator.labels" . }}
app.kubernetes.io/component: gateway
{{- end -}}

{{- define "musepose-operator.gateway.serviceAccountName" -}}
{{- if .Values.gateway.serviceAccount.create -}}
{{- default (include "musepose-operator.gateway.fullname" .) .Values.gateway.serviceAccount.name -}}
{{- else -}}
{{- required "gateway.serviceAccount.name is required when gateway.serviceAccount.create is false" .Values.gateway.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/*
Namespaces the gateway creates Animations in, as a JSON list: gateway.namespaces, else the
exact names of operator.watchNamespaces. Empty: any namespace (cluster-wide RBAC).
*/}}
{{- define "musepose-operator.gateway.namespaces" -}}
{{- $names := .Values.gateway.namespaces -}}
{{- if not $names -}}
{{- if not (include "musepose-operator.hasPatterns" .) -}}
{{- $names = include "musepose-operator.watchedNamespaces" . | fromJsonArray -}}
{{- end -}}
{{- end -}}
{{- $names | default list | uniq | toJson -}}
{{- end -}}

{{- define "musepose-operator.gateway.validate" -}}
{{- if and .Values.gateway.ingress.enabled (not .Values.gateway.ingress.host) -}}
{{- fail "gateway.ingress.enabled needs gateway.ingress.host" -}}
{{- end -}}
{{- $served := include "musepose-operator.gateway.namespaces" . | fromJsonArray -}}
{{- if and .Values.gateway.defaultNamespace $served (not (has .Values.gateway.defaultNamespace $served)) -}}
{{- fail (printf "gateway.defaultNamespace %q is not among the namespaces the gateway serves (%s)" .Values.gateway.defaultNamespace (join ", " $served)) -}}
{{- end -}}
{{- end -}}

{{/* The Secret holding the keys that seal the gateway's records (gateway.recordKeys). */}}
{{- define "musepose-operator.gateway.recordKeysSecret" -}}
{{- default (printf "%s-records" (include "musepose-operator.gateway.fullname" .)) .Values.gateway.recordKeys.existingSecret -}}
{{- end -}}
