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
      to: { path: '^src/(translate|federation)/' },
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
