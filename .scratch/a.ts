import { SshPool } from '/work/main/src/remote/ssh';
import * as fs from 'node:fs';
const key = '/tmp/glidein-local-site/operator/id_ed25519', kh = '/tmp/glidein-local-site/operator/known_hosts';
async function main() {
  const pool = new SshPool({ log: (e, f) => console.log(Date.now() % 100000, e, JSON.stringify(f)) });
  const login = { host: '127.0.0.1', port: 2201, user: 'glidein', identityFile: key, knownHostsFile: kh };
  const c = pool.executor(login);
  const before = fs.readFileSync('/tmp/glidein-local-site/login/sshd.log', 'utf8').length;
  console.log(await c.run(['sh', '-c', 'echo $SSH_CONNECTION; echo $$; ps -o pid,ppid,user,args -p $PPID']));
  const w = pool.executor({ host: '127.0.0.2', port: 2202, user: 'glidein', identityFile: key, knownHostsFile: kh, jump: login });
  console.log(await w.run(['sh', '-c', 'echo $SSH_CONNECTION; hostname']));
  console.log(fs.readFileSync('/tmp/glidein-local-site/login/sshd.log', 'utf8').slice(before));
  // abort
  const ac = new AbortController();
  const t0 = Date.now();
  const p = c.run(['sleep', '30.777']);
  setTimeout(() => ac.abort(), 500);
  const p2 = c.run(['sleep', '31.777'], { signal: ac.signal });
  console.log(await p2.catch((e) => e), Date.now() - t0);
  await new Promise((r) => setTimeout(r, 300));
  console.log(require('child_process').execSync('ps -ef | grep sleep | grep -v grep').toString());
  void p;
  pool.close();
}
main().then(() => process.exit(0), (e) => { console.error(e); process.exit(1); });
