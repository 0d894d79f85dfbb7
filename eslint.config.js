// ESLint (flat config) for meshfed's TypeScript: src, test and bench.
// typescript-eslint's `recommended` set without type information (fast: no
// program is built), plus the house rules: no `any` (an unavoidable one gets an
// eslint-disable comment saying why), unused names only when they start with
// `_`, and type-only imports written as `import type` so that they are visibly
// erased at run time (the import-cycle check counts them all the same); also
// no `import('...').T` type annotations, so every dependency is an import line.

import js from '@eslint/js';
import { defineConfig } from 'eslint/config';
import tseslint from 'typescript-eslint';

export default defineConfig(
  { ignores: ['dist/**', 'node_modules/**'] },
  {
    files: ['src/**/*.ts', 'test/**/*.ts', 'bench/**/*.ts'],
    extends: [js.configs.recommended, tseslint.configs.recommended],
    linterOptions: { reportUnusedDisableDirectives: 'error' },
    rules: {
      '@typescript-eslint/no-explicit-any': 'error',
      '@typescript-eslint/no-unused-vars': [
        'error',
        { args: 'all', argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'all', caughtErrorsIgnorePattern: '^_', destructuredArrayIgnorePattern: '^_', ignoreRestSiblings: true },
      ],
      '@typescript-eslint/consistent-type-imports': ['error', { prefer: 'type-imports', fixStyle: 'inline-type-imports' }],
    },
  },
);
