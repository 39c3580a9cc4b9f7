/**
 * The house rules of src/, checked by dependency-cruiser in `npm run lint` (docs/ARCHITECTURE.md, "Layers"). From the
 * ground up: common/ (names, schemas, pure rules), remote/ (how commands reach a host), site/ (what a site is and
 * what runs there), activities/ (the steps' bodies), workflows/ (the lifecycles), and on top the processes that wire
 * them: worker.ts, cli/, and their helpers. An arrow may point down or sideways within a folder, never up; type
 * imports count; no circles.
 */
const GROUND = '^src/common/';
const below = (folders) => `^src/(?!(${folders.join('|')})/)`;

// eslint-disable-next-line no-undef -- dependency-cruiser reads CommonJS
module.exports = {
  forbidden: [
    {
      name: 'no-circular',
      severity: 'error',
      comment: 'A circle of imports makes its files one unit: nothing in it can be read, tested or moved alone.',
      from: { path: '^src/' },
      to: { circular: true },
    },
    {
      name: 'common-is-the-ground-floor',
      severity: 'error',
      comment: 'common/ holds the names and rules every layer shares: it imports nothing above it.',
      from: { path: GROUND },
      to: { path: below(['common']) },
    },
    {
      name: 'remote-knows-no-site',
      severity: 'error',
      comment: 'remote/ runs commands on a host: it knows nothing of sites, steps or workflows.',
      from: { path: '^src/remote/' },
      to: { path: below(['common', 'remote']) },
    },
    {
      name: 'site-knows-no-step',
      severity: 'error',
      comment: 'site/ (profiles, adapters, scripts) says how a site is driven; which step asks is not its business.',
      from: { path: '^src/site/' },
      to: { path: below(['common', 'remote', 'site']) },
    },
    {
      name: 'activities-never-import-workflows',
      severity: 'error',
      comment: 'Activities are called by workflows, never the other way round; they import no workflow, CLI or worker.',
      from: { path: '^src/activities/' },
      to: { path: below(['common', 'remote', 'site', 'activities']) },
    },
    {
      name: 'workflows-stay-in-the-sandbox',
      severity: 'error',
      comment: 'Workflow code runs in the deterministic sandbox: it may take types from activities, nothing from the I/O floors.',
      from: { path: '^src/workflows/' },
      to: { path: '^src/(remote|cli)/|^src/(worker|logger|metrics|temporal-connection|connection-watch)\\.ts$' },
    },
    {
      name: 'src-never-imports-sandbox-or-tests',
      severity: 'error',
      comment: 'Production code never depends on the test sites, tests or benchmarks.',
      from: { path: '^src/' },
      to: { path: '^(sandbox|test|bench|scripts)/' },
    },
    {
      name: 'tools-never-import-tests',
      severity: 'error',
      comment: 'The test sites, benchmarks and scripts stand on their own: a test file is nobody\'s library.',
      from: { path: '^(sandbox|bench|scripts)/' },
      to: { path: '^test/' },
    },
    {
      name: 'no-circular-in-tools',
      severity: 'error',
      comment: 'No circles in the test sites or benchmarks either.',
      from: { path: '^(sandbox|bench|scripts)/' },
      to: { circular: true },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    exclude: { path: '^(node_modules|lib)/' },
  },
};
