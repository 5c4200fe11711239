// Minimal CustomResourceDefinitions for the custom kinds the chart renders, so that a real
// kube-apiserver accepts them: the kinds, versions and scope as their projects publish them.
// Their contents are checked offline against the projects' schemas (@kubernetes-models/*), not
// here; only the Talos ServiceAccount, which has no published schema, gets its fields here.

/** A CustomResourceDefinition as JSON (applied as it is, see KubeApiServer.apply). */
export interface Crd {
  apiVersion: "apiextensions.k8s.io/v1";
  kind: "CustomResourceDefinition";
  metadata: { name: string };
  spec: Record<string, unknown>;
}

function crd(
  group: string,
  version: string,
  kind: string,
  plural: string,
  spec: Record<string, unknown> = { type: "object", "x-kubernetes-preserve-unknown-fields": true },
): Crd {
  return {
    apiVersion: "apiextensions.k8s.io/v1",
    kind: "CustomResourceDefinition",
    metadata: { name: `${plural}.${group}` },
    spec: {
      group,
      scope: "Namespaced",
      names: { kind, plural, singular: kind.toLowerCase(), listKind: `${kind}List` },
      versions: [
        {
          name: version,
          served: true,
          storage: true,
          schema: { openAPIV3Schema: { type: "object", required: ["spec"], properties: { spec } } },
        },
      ],
    },
  };
}

export const MINIMAL_CRDS: Crd[] = [
  crd("external-secrets.io", "v1", "ExternalSecret", "externalsecrets"),
  crd("monitoring.coreos.com", "v1", "PrometheusRule", "prometheusrules"),
  // Talos's own (talos.dev/v1alpha1 ServiceAccount): spec.roles, a list of role names.
  crd("talos.dev", "v1alpha1", "ServiceAccount", "serviceaccounts", {
    type: "object",
    required: ["roles"],
    properties: { roles: { type: "array", minItems: 1, items: { type: "string", pattern: "^os:" } } },
  }),
];
