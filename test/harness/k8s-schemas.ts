// Every Kubernetes object the chart or the docs render, checked against the published schemas
// (the kubernetes-models packages); for an API version newer than a package's, against its newest.

import assert from "node:assert/strict";

import { ExternalSecret } from "@kubernetes-models/external-secrets/external-secrets.io/v1beta1/ExternalSecret";
import { HelmRelease } from "@kubernetes-models/flux-cd/helm.toolkit.fluxcd.io/v2beta2/HelmRelease";
import { Kustomization } from "@kubernetes-models/flux-cd/kustomize.toolkit.fluxcd.io/v1/Kustomization";
import { OCIRepository } from "@kubernetes-models/flux-cd/source.toolkit.fluxcd.io/v1beta2/OCIRepository";
import { PrometheusRule } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PrometheusRule";
import { CronJob } from "kubernetes-models/batch/v1/CronJob";
import { Lease } from "kubernetes-models/coordination.k8s.io/v1/Lease";
import { Job } from "kubernetes-models/batch/v1/Job";
import { NetworkPolicy } from "kubernetes-models/networking.k8s.io/v1/NetworkPolicy";
import { Role } from "kubernetes-models/rbac.authorization.k8s.io/v1/Role";
import { RoleBinding } from "kubernetes-models/rbac.authorization.k8s.io/v1/RoleBinding";
import { ServiceAccount } from "kubernetes-models/v1/ServiceAccount";

import type { K8sObject } from "./chart.js";

export /** Validates with the library's schema; for an API version newer than the library, with its newest one. */
function validateObject(o: K8sObject): void {
  switch (o.kind) {
    case "CronJob":
      new CronJob(o as never).validate();
      return;
    case "Job":
      new Job(o as never).validate();
      return;
    case "NetworkPolicy":
      new NetworkPolicy(o as never).validate();
      return;
    case "ExternalSecret":
      // external-secrets.io/v1 has the same ExternalSecret schema as v1beta1, the library's newest.
      new ExternalSecret({ ...o, apiVersion: "external-secrets.io/v1beta1" } as never).validate();
      return;
    case "HelmRelease": {
      // helm.toolkit.fluxcd.io/v2 is v2beta2 plus chartRef (which the library's schema predates): the rest
      // validates with v2beta2, chartRef is checked here.
      const { chartRef, ...rest } = o.spec as { chartRef?: unknown };
      const spec: Record<string, unknown> = rest;
      if (chartRef !== undefined) {
        assert.deepEqual(Object.keys(chartRef as object).sort(), ["kind", "name"]);
        assert.ok(["OCIRepository", "HelmChart"].includes((chartRef as { kind: string }).kind));
        spec.chart = { spec: { chart: "placeholder", sourceRef: { kind: "HelmRepository", name: "x" } } };
      }
      new HelmRelease({ ...o, spec, apiVersion: "helm.toolkit.fluxcd.io/v2beta2" } as never).validate();
      return;
    }
    case "OCIRepository":
      // source.toolkit.fluxcd.io/v1 (Flux 2.6) promoted v1beta2 unchanged, the library's newest.
      new OCIRepository({ ...o, apiVersion: "source.toolkit.fluxcd.io/v1beta2" } as never).validate();
      return;
    case "PrometheusRule":
      new PrometheusRule(o).validate();
      return;
    case "Kustomization":
      new Kustomization(o as never).validate();
      return;
    case "ServiceAccount":
      if (o.apiVersion === "v1") {
        new ServiceAccount(o).validate();
        return;
      }
      // talos.dev/v1alpha1 has no published schema: its fields are asserted directly.
      assert.equal(o.apiVersion, "talos.dev/v1alpha1");
      assert.deepEqual(Object.keys(o.spec), ["roles"]);
      return;
    case "Role":
      new Role(o).validate();
      return;
    case "Lease":
      new Lease(o).validate();
      return;
    case "RoleBinding":
      new RoleBinding(o as never).validate();
      return;
    default:
      assert.fail(`no schema check for ${o.apiVersion} ${o.kind}`);
  }
}
