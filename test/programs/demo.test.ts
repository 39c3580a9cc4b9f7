/**
 * The README's first command runs the main job on its embedded default: `scripts/dev demo` is `npm run demo` after
 * the set-up. Run here as the README runs it, on the loopback site (DEMO_SITE=local: the strict box's lifecycle and
 * fleet are the box suites' own), on free ports: a glidein registers, drains and is torn down; a fleet on a
 * schedule fills and the site is drained; nothing is left on the site.
 */
import { spawn } from 'node:child_process';
import { ROOT } from '../../sandbox/temporal';
import { EMPTY, footprint } from '../../sandbox/site-state';
import { ChildOutput } from '../support/child-output';
import { freePort } from '../support/ports';

it('npm run demo: one glidein registered and drained, a fleet of two filled and drained, nothing left', async () => {
  const [port, uiPort] = [await freePort(), await freePort()];
  const demo = spawn('npm', ['run', '--silent', 'demo'], {
    cwd: ROOT,
    env: {
      ...process.env,
      DEMO_SITE: 'local',
      DEMO_HOLD: '1',
      DEMO_FLEET: '2',
      TEMPORAL_PORT: String(port),
      TEMPORAL_UI_PORT: String(uiPort),
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const output = new ChildOutput(demo);
  const code = await new Promise<number | null>((resolve) => demo.once('exit', resolve));
  // Its last lines (the fleet's end) can still be in the pipe at 'exit'.
  await output.ended(10_000);
  const out = output.toString();
  expect({ code, tail: out.slice(-3000) }).toMatchObject({ code: 0 });
  expect(out).toMatch(/\[demo\] registered with the collector as slot1@\S+; holding 1 s, then drain/);
  expect(out).toContain('everything acquired on the site has been released');
  expect(out).toMatch(/\[demo\] fleet local-demo: \w+, 2 running/);
  expect(out).toMatch(/\[demo\] fleet \S+ ended: /);
  // Nothing of the demo's glidein is left on the site.
  const id = /started LaunchGlidein (\S+)/.exec(out)?.[1];
  expect(id).toMatch(/^glidein-local-demo-\d+$/);
  expect(await footprint(id!)).toEqual(EMPTY);
}, 600_000);
