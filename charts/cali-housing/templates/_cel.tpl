{{- define "cali-housing.celLiteral" -}}
{{- /* A value as a CEL literal whose every member is dyn(): the API server's type checker refuses a
map or list literal whose members differ in type (an env list of value and valueFrom entries). */}}
{{- if kindIs "map" . -}}
{ {{- range $i, $k := keys . | sortAlpha }}{{ if $i }},{{ end }}{{ toJson $k }}:dyn({{ include "cali-housing.celLiteral" (get $ $k) }}){{ end -}} }
{{- else if kindIs "slice" . -}}
[ {{- range $i, $v := . }}{{ if $i }},{{ end }}dyn({{ include "cali-housing.celLiteral" $v }}){{ end -}} ]
{{- else -}}
{{ toJson . }}
{{- end -}}
{{- end }}
