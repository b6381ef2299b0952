// Usage: node ci/crd-validate.mjs FILE|- ...  -- validates Argo CD and prometheus-operator resources
// against the schemas in @kubernetes-models (Argo CD v3, prometheus-operator v1).
import { readFileSync } from "node:fs";
import yaml from "js-yaml";
import { Application, AppProject, ApplicationSet } from "@kubernetes-models/argo-cd/argoproj.io/v1alpha1";
import { ServiceMonitor, PodMonitor, PrometheusRule } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1";
const models = { Application, AppProject, ApplicationSet, ServiceMonitor, PodMonitor, PrometheusRule };
let bad = 0;
for (const f of process.argv.slice(2)) {
  for (const doc of yaml.loadAll(readFileSync(f === "-" ? 0 : f, "utf8"))) {
    if (!doc?.apiVersion || !/^(argoproj\.io|monitoring\.coreos\.com)\//.test(doc.apiVersion)) continue;
    const M = models[doc.kind], id = `${f} ${doc.kind}/${doc.metadata?.name}`;
    if (!M) { console.log(`ERROR ${id}: no model for ${doc.apiVersion}`); bad++; continue; }
    try { new M(doc).validate(); console.log(`OK ${id}`); } catch (e) { bad++; console.log(`ERROR ${id}: ${e.message}`); }
  }
}
process.exit(bad ? 1 : 0);
