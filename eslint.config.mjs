// Lint rules after temporalio/samples-typescript's .shared/.eslintrc.js, in ESLint's flat config.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import { builtinModules } from 'node:module';

/** SDK packages that load Node code or the core bridge: never at run time in workflow code. */
const TEMPORAL_OUTSIDE_WORKFLOWS = [
  '@temporalio/activity',
  '@temporalio/worker',
  '@temporalio/client',
  '@temporalio/testing',
];

export default tseslint.config(
  {
    ignores: [
      'lib/**',
      'node_modules/**',
      'coverage/**',
      'sandbox/standins/**',
      '**/*.mjs',
      '*.config.js',
      '.scratch/**',
      'bench/.build/**',
    ],
  },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    files: ['**/*.ts'],
    // The lint-rules test lints snippets as src/workflows/probe.ts, a file that never exists.
    languageOptions: {
      parserOptions: {
        projectService: { allowDefaultProject: ['src/workflows/probe.ts'] },
        tsconfigRootDir: import.meta.dirname,
      },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'object-shorthand': ['error', 'always'],
    },
  },
  {
    // Every line within prettier's printWidth, which prettier itself does not enforce on strings, comments and regexes.
    files: ['**/*.ts'],
    rules: { 'max-len': ['error', { code: 120, tabWidth: 2, ignoreUrls: true }] },
  },
  {
    // Tests mutate parsed YAML profiles freely to inject faults.
    files: ['test/**/*.ts', 'sandbox/**/*.ts'],
    rules: { '@typescript-eslint/no-explicit-any': 'off' },
  },
  {
    // Production code never depends on the sandbox (the test sites) or on tests.
    files: ['src/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              group: ['**/sandbox', '**/sandbox/*', '**/test/*'],
              message: 'production code never imports the sandbox or tests',
            },
          ],
        },
      ],
    },
  },
  {
    // Workflow code runs in Temporal's deterministic sandbox: no Node built-ins, no I/O libraries, and from activities
    // and the SDK's non-workflow packages only types. typescript-eslint's rule, as the core one has no allowTypeImports
    // on paths (and ignores `import type` nowhere).
    files: ['src/workflows/**/*.ts'],
    rules: {
      'no-restricted-imports': 'off',
      '@typescript-eslint/no-restricted-imports': [
        'error',
        {
          paths: [
            ...[...builtinModules, ...builtinModules.map((m) => `node:${m}`)].map((name) => ({
              name,
              message: 'workflows run in a sandbox without Node built-ins',
            })),
            ...['ssh2', 'pino', 'yaml'].map((name) => ({ name, message: 'workflows do no I/O' })),
            ...TEMPORAL_OUTSIDE_WORKFLOWS.map((name) => ({
              name,
              allowTypeImports: true,
              message: 'workflows import only types from the SDK outside @temporalio/workflow and @temporalio/common',
            })),
          ],
          patterns: [
            {
              group: [
                '**/activities',
                '**/activities/*',
                '**/remote',
                '**/remote/*',
                '**/site/load*',
                '**/worker',
                '**/worker.*',
              ],
              allowTypeImports: true,
              message: 'workflows import only types from activities',
            },
            {
              group: ['**/sandbox', '**/sandbox/*', '**/test/*'],
              message: 'production code never imports the sandbox or tests',
            },
            {
              group: TEMPORAL_OUTSIDE_WORKFLOWS.map((name) => `${name}/*`),
              allowTypeImports: true,
              message: 'workflows import only types from the SDK outside @temporalio/workflow and @temporalio/common',
            },
          ],
        },
      ],
    },
  },
);
