// Printing `meshfed install` manifests: YAML (multi-document, each object's
// comment above it, as `kubectl apply -f -` reads it) or JSON (a Kubernetes
// List). Pure: strings out.
import { Document } from 'yaml';
import { kubeList, type Manifest } from './manifests.js';

export function renderYaml(manifests: readonly Manifest[], header: string): string {
  return manifests
    .map((mf, i) => {
      const doc = new Document(mf.object);
      const comment = [...(i === 0 ? [header] : []), ...(mf.comment ? [mf.comment] : [])].join('\n');
      if (comment)
        doc.commentBefore = comment
          .split('\n')
          .map((l) => ` ${l}`)
          .join('\n');
      return doc.toString({ lineWidth: 0 });
    })
    .join('---\n');
}

export function renderJson(manifests: readonly Manifest[]): string {
  return JSON.stringify(kubeList(manifests.map((mf) => mf.object)), null, 2) + '\n';
}
