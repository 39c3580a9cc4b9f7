/**
 * Real-format secrets, made fresh for each run (nothing here is a key of anything), and the site text around them:
 * a JWT signed as a pool's IDTOKEN is, PEM blocks from node:crypto, an X.509-proxy-shaped file, their base64.
 */
import { createHash, generateKeyPairSync, randomBytes, sign } from 'node:crypto';

const b64url = (data: Buffer | string) => Buffer.from(data).toString('base64url');

/** A JWT as HTCondor issues IDTOKENs: RS256 header, the pool's claims, a real signature. */
export function makeJwt(): string {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const header = b64url(JSON.stringify({ alg: 'RS256', typ: 'JWT', kid: 'POOL' }));
  const payload = b64url(
    JSON.stringify({
      iss: 'collector.example.org:9618',
      sub: 'glidein@jsc',
      iat: 1_700_000_000,
      exp: 1_900_000_000,
      jti: randomBytes(16).toString('hex'),
      scope: 'condor:/READ condor:/ADVERTISE_STARTD condor:/ADVERTISE_MASTER',
    }),
  );
  const signature = b64url(sign('sha256', Buffer.from(`${header}.${payload}`), privateKey));
  return `${header}.${payload}.${signature}`;
}

/** An RSA key in PEM (PKCS#1, as an X.509 proxy holds it) and an Ed25519 one (PKCS#8). */
export function makeKeys(): { rsa: string; ed25519: string } {
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({
    type: 'pkcs1',
    format: 'pem',
  }) as string;
  const ed25519 = generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
  return { rsa, ed25519 };
}

/** A PEM block of DER-looking bytes (SEQUENCE, long form length), wrapped at 64 as OpenSSL writes it. */
function pemBlock(label: string, der: Buffer): string {
  const body = der
    .toString('base64')
    .match(/.{1,64}/g)!
    .join('\n');
  return `-----BEGIN ${label}-----\n${body}\n-----END ${label}-----\n`;
}

/** An X.509 proxy file as voms-proxy-init writes one: the proxy certificate, its key, the user's certificate. */
export function makeProxy(rsaKey: string): string {
  const der = (n: number) => Buffer.concat([Buffer.from([0x30, 0x82, n >> 8, n & 0xff]), randomBytes(n)]);
  return pemBlock('CERTIFICATE', der(700)) + rsaKey + pemBlock('CERTIFICATE', der(1100));
}

/** The base64 body lines of a PEM block: what a log tail cut inside the block shows. */
export function bodyLines(pem: string): string[] {
  return pem.split('\n').filter((l) => l && !l.startsWith('-----'));
}

/** What must never be seen of a secret: every run of 12 base64 characters in it, and its whole if shorter. */
export function fragmentsOf(secret: string): string[] {
  const runs = secret.match(/[A-Za-z0-9+/_-]{12,}/g) ?? [];
  const out = new Set<string>();
  for (const run of runs) for (let i = 0; i + 12 <= run.length; i += 6) out.add(run.slice(i, i + 12));
  if (out.size === 0) out.add(secret);
  return [...out];
}

/** The fragments of `secrets` that `text` still shows. */
export function leaked(text: string, secrets: string[]): string[] {
  return secrets.flatMap(fragmentsOf).filter((f) => text.includes(f));
}

/** A password as people choose them: words and spaces, and a random part no site text contains. */
export function makePassword(): string {
  return `correct horse ${createHash('sha1').update(randomBytes(8)).digest('base64').slice(0, 10)} staple`;
}

/**
 * Ordinary site text a redactor must leave exactly as it is: what results, statuses and the workflow's decisions
 * are made of (paths, ids, hosts, pids, times, hex names, ad names, commands).
 */
export const SITE_TEXT = [
  '/p/project/jsc/glidein/work/glidein-jsc-juwels-3/glidein.log',
  // A step's failure naming the profile field (the step's name looks like a secret's label; the field is no secret).
  'stageCredential: credentials.idToken file /home/op/pool.idtoken expired at 2026-12-07T23:22:42.000Z',
  '/p/home/jusers/smith1/juwels/.apptainer/instances/logs/jwc01/smith1/glidein-4f3a9c2e7b1d.err',
  'slot1@glidein-jsc-juwels-3@jwc01.juwels.fz-juelich.de Unclaimed/Idle',
  'slot1_1@glidein-fleet-2-17@jrc0123.jureca Claimed/Busy',
  'glidein-4f3a9c2e7b1d0a5c',
  'sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08',
  'deadbeefcafebabe0123456789abcdef0123456789abcdef0123456789abcdef',
  '2025-03-14T09:26:53.589Z',
  '05/01/24 12:00:01 (pid:4242) ******************************************************',
  '05/01/24 12:00:01 (pid:4242) ** condor_master (CONDOR_MASTER) STARTING UP',
  '05/01/24 12:00:02 (pid:4242) Sent ad to central manager for glidein@jwc01 (127.0.0.1:40163)',
  'Submitted batch job 1234567',
  'JOBID=1234567 NODELIST=jwc[01-04] STATE=RUNNING TIME_LEFT=23:59:12',
  'debug1: Authentications that can continue: publickey',
  'debug1: Offering public key: /home/op/.ssh/id_ed25519 ED25519 ' +
    'SHA256:kG7Xq3Jb2mVtZ1w0uPjA9yH5nC4sR8eL6dF0oI2aB3c explicit agent',
  'debug1: Authentication succeeded (publickey).',
  'debug1: Local connections to LOCALHOST:1080 forwarded to remote address socks:0',
  '[proxychains] Strict chain  ...  127.0.0.1:1080  ...  collector.example.org:9618  ...  OK',
  '[proxychains] config file found: /p/project/jsc/glidein/work/glidein-jsc-juwels-3/proxychains.conf',
  'CernVM-FS: loading Fuse module... done',
  'CernVM-FS: mounted cvmfs on /cvmfs/cms.cern.ch',
  'Traceback (most recent call last):\n  File "/p/project/jsc/glidein/work/g1/relay.py", line 212, in ' +
    'serve\n    conn, addr = sock.accept()\nConnectionResetError: [Errno 104] Connection reset by peer',
  'the SOCKS tunnel on port 41002 is down',
  'pool credential idToken /etc/glidein/pool.idtoken valid until 2030-01-01T00:00:00.000Z',
  'tokenFile: /x/token; uses a bearer token; password authentication refused',
  '* Server auth using Basic with user glidein; Basic authentication failed; basic configuration',
  'http://collector.example.org:9618/ and https://squid.kit.edu:3128/x?y=1',
  'user@host:22, root@jwc01:~#, 12:30:00@jwc01, ssh glidein@login01.juwels',
  'CVMFS_HTTP_PROXY="http://squid.kit.edu:3128|http://squid2.kit.edu:3128;DIRECT"',
  'socks5 127.0.0.1 1080',
  'Apptainer instance glidein-4f3a9c2e7b1d started: PID 31337, image /p/project/jsc/images/glidein_x86_64.sif',
];
