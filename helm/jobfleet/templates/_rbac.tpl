{{/*
The operator's permissions: exactly jobfleet_operator.rbac.rules() and
leader_election_rules() (`jobfleet-operator rbac` prints them; tests/packaging/test_rbac.py
fails when the two differ). Why each verb is there is documented in operator/README.md#rbac.
*/}}
{{- define "jobfleet.operatorRules" -}}
- apiGroups: ["jobfleet.dev"]
  resources: ["queues"]
  verbs: ["get", "list", "watch", "patch"]
- apiGroups: ["jobfleet.dev"]
  resources: ["queues/status"]
  verbs: ["get", "patch", "update"]
- apiGroups: ["apps"]
  resources: ["deployments"]
  verbs: ["get", "list", "watch", "create", "patch"]
- apiGroups: ["apps"]
  resources: ["deployments/scale"]
  verbs: ["get", "patch", "update"]
# Worker settings; watched so that a manual edit is repaired at once.
- apiGroups: [""]
  resources: ["configmaps"]
  verbs: ["get", "list", "watch", "create", "patch"]
# A Queue's Redis URL or password: read by name, never listed or watched.
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get"]
# Worker pods ranked by jobs in flight (pod-deletion-cost) before a scale-in: idle ones go first.
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["list", "patch"]
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create", "patch"]
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
{{- end }}

{{- define "jobfleet.leaderElectionRules" -}}
- apiGroups: ["coordination.k8s.io"]
  resources: ["leases"]
  verbs: ["get", "create", "update"]
{{- end }}
