// Lint rules after temporalio/samples-typescript's .shared/.eslintrc.js, in ESLint's flat config.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import { builtinModules } from 'node:module';

export default tseslint.config(
  { ignores: ['lib/**', 'node_modules/**', 'coverage/**', 'test/standins/**', '**/*.mjs', '*.config.js', '.scratch/**', 'bench/.build/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    files: ['**/*.ts'],
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'object-shorthand': ['error', 'always'],
    },
  },
  {
    // Tests mutate parsed YAML profiles freely to inject faults.
    files: ['test/**/*.ts'],
    rules: { '@typescript-eslint/no-explicit-any': 'off' },
  },
  {
    // Workflow code runs in Temporal's deterministic sandbox: no Node built-ins, no I/O libraries.
    files: ['src/workflows/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          paths: [...builtinModules, ...builtinModules.map((m) => `node:${m}`), 'ssh2', 'pino', 'yaml'],
          patterns: [{ group: ['**/activities/*', '**/remote/*', '**/site/load*'], allowTypeImports: true, message: 'workflows import only types from activities' }],
        },
      ],
    },
  },
);
