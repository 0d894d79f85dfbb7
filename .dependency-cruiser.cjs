// Module-graph rules for meshfed, checked by `npm run cycles` (dependency-cruiser).
// Type-only imports count (tsPreCompilationDeps: true): a cycle through
// `import type` still ties the modules' designs together, even though the
// compiler erases it. Only project modules are judged; npm packages and node:
// built-ins are allowed everywhere. Every relative import must resolve, so the
// check cannot pass because the resolver lost an edge.

/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    {
      name: 'no-circular',
      severity: 'error',
      comment: 'An import cycle in src/ (type-only imports included). Break it by moving the shared part to a module both can import.',
      from: { path: '^src/' },
      to: { circular: true },
    },
    {
      name: 'xds-independent-of-translate-and-federation',
      severity: 'error',
      comment: 'src/xds is the protocol layer: it serves resources it is given and knows nothing of how they are made (translate) or of the federated view (federation).',
      from: { path: '^src/xds/' },
      to: { path: '^src/(translate|federation|policies|agent|hub)/' },
    },
    {
      name: 'xdsapi-is-the-bottom',
      severity: 'error',
      comment: 'src/xdsapi (type URLs, resource shape, names) is the xDS vocabulary under the server, the translation and the plugins: it imports only src/util.',
      from: { path: '^src/xdsapi/' },
      to: { path: '^src/', pathNot: '^src/(xdsapi|util)/' },
    },
    {
      name: 'translation-names-no-policy-kind',
      severity: 'error',
      comment: 'Translation drives the plugin contract (src/policies/plugin.ts, resolve.ts, common.ts); it never imports a policy kind, so adding a kind never touches it.',
      from: { path: '^src/translate/' },
      to: { path: '^src/policies/[^/]+/' },
    },
    {
      name: 'translation-is-pure',
      severity: 'error',
      comment: 'Translation is pure (state in, resources out): no server, store, agent, hub or CLI, and no I/O modules.',
      from: { path: '^src/translate/' },
      to: { path: '^src/(xds|store|agent|hub|cli|demo|channel|discovery)/' },
    },
    {
      name: 'translation-does-no-io',
      severity: 'error',
      comment: 'Translation is pure: no file, network or process modules (node:net is allowed for its pure isIP).',
      from: { path: '^src/(translate|policies|federation|analysis|xdsapi|install)/' },
      to: { dependencyTypes: ['core'], path: '^(node:)?(fs|fs/promises|http|https|http2|tls|dgram|child_process|worker_threads)$' },
    },
    {
      name: 'policies-below-their-users',
      severity: 'error',
      comment: 'Policy plugins sit under translation, analysis and the composition root (src/registry.ts): they never import them, nor a process (agent, hub, cli).',
      from: { path: '^src/policies/' },
      to: { path: '^src/(translate|analysis|registry\\.ts|agent|hub|cli|demo|xds)(/|$)' },
    },
    {
      name: 'one-composition-root',
      severity: 'error',
      comment: 'Only the composition root (src/registry.ts) and analysis (plan, explain) import policy kinds by name.',
      from: { path: '^src/', pathNot: '^src/(registry\\.ts|analysis/|policies/)' },
      to: { path: '^src/policies/[^/]+/' },
    },
    {
      name: 'api-only-api-and-util',
      severity: 'error',
      comment: 'src/api (the object model) is the base of the graph: it may import only src/api and src/util.',
      from: { path: '^src/api/' },
      to: { path: '^src/', pathNot: '^src/(api|util)/' },
    },
    {
      name: 'no-unresolvable',
      severity: 'error',
      comment: 'An import that does not resolve to a file: a typo, or a resolver that would hide edges from the rules above.',
      from: { path: '^src/' },
      to: { couldNotResolve: true },
    },
  ],
  options: {
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    doNotFollow: { path: ['node_modules'] },
    exclude: { path: ['^dist/'] },
  },
};
