/**
 * Commands on the worker node as Slurm steps (`workerNode.access: srun`), the way JSC's psslurm allows in: the
 * login node runs `srun --jobid=<job> --overlap …`, never ssh into the node. A step's processes end with the
 * step (proctrack/cgroup, psslurm), so a command that must leave processes behind (the tunnel, a cvmfs mount,
 * the container instance, the glidein) cannot run in its own step. It is handed to the holder job's batch
 * script, which runs it as its own child: those processes then live exactly as long as the allocation, survive
 * a crashed worker (nothing on the login node holds them), and end with the job whatever becomes of us.
 *
 * The hand-over is node-local: the batch script reads request names from a FIFO in
 * /tmp/jsc-glidein-job-<job id>/ (blocked in `read`, no polling), a short step (IN_JOB) writes the request's argv
 * (NUL-separated, never a shell line) and stdin into a private directory there, names it on the FIFO, and waits
 * on a FIFO of its own for the answer: stdout, stderr and the exit code, returned as if the command had run in
 * the step. Nothing crosses the shared file system and no login-node process outlives a command.
 */

import { REMOVE_CREDENTIALS } from '../paths';
import { SAFE_PATH, UNSAFE_PATH_EXIT } from '../scripts/prelude';

/** The node-local directory of a job's supervisor (the job id comes from the step's or the job's environment). */
const SPOOL = '/tmp/jsc-glidein-job-$SLURM_JOB_ID';

/** IN_JOB exits with this when the job has no supervisor (yet): retryable, the batch script may still be starting. */
export const NO_SUPERVISOR_EXIT = 75;

/**
 * The holder job's batch script with srun access: holds the node and runs what steps hand over. Ends (and its
 * children with the job) when Slurm ends the job; `scancel` is the only way to stop it. As it ends it removes the
 * pool credential from the glidein's directory (its working directory: sbatch --chdir), worker or no worker.
 */
export const SUPERVISOR_SCRIPT = `#!/bin/sh
# jsc-glidein holder job: keeps the node allocated and runs, as its own children, the commands whose processes
# must live as long as the job (handed over by srun --overlap steps; see src/site/scripts/job-supervisor.ts).
set -u
${SAFE_PATH}spool=${SPOOL}
umask 077
# A job id is known in advance: a co-tenant may have made this name first. Only a spool of our own is cleared; a
# squatted one fails the job (and so the allocation, loudly), and mkdir without -p loses no race to one.
if [ -e "$spool" ] || [ -L "$spool" ]; then safe_path "$spool" || exit ${UNSAFE_PATH_EXIT}; rm -rf "$spool"; fi
mkdir "$spool" || exit 1
mkfifo "$spool/.requests" && mv "$spool/.requests" "$spool/requests" || exit 1
trap 'rm -rf "$spool"; ${REMOVE_CREDENTIALS} exit 0' TERM INT HUP
exec 3<>"$spool/requests"
echo "jsc-glidein supervisor of job $SLURM_JOB_ID ready on $(uname -n)"
while read -r id <&3; do
  case $id in r.????????) ;; *) continue;; esac
  r=$spool/$id
  [ -f "$r/argv" ] || continue
  (
    exec 3<&-
    cd "$HOME" 2>/dev/null || cd /
    xargs -0 -x -a "$r/argv" sh -c '"$@"; echo $? > "$0"' "$r/rc.new" < "$r/stdin" > "$r/out" 2> "$r/err"
    [ -s "$r/rc.new" ] || echo 126 > "$r/rc.new"
    mv "$r/rc.new" "$r/rc"
    echo done 1<>"$r/done"
  ) </dev/null &
done
`;

/**
 * IN_JOB with_stdin=$1 argv...: run argv as a child of the job's supervisor, and answer as the command did. With
 * $1 = 1 the step's stdin is passed on. Exits 75 when the job has no supervisor within 15 s, 77 when its spool is not
 * ours alone (a squatter's: nothing is handed over).
 */
/* eslint-disable max-len -- the script's text is exact (it runs as it is); one echo line is longer */
export const IN_JOB = `set -u
${SAFE_PATH}spool=${SPOOL}
i=0
while [ ! -p "$spool/requests" ]; do
  if [ $i -ge 150 ]; then
    echo "job $SLURM_JOB_ID has no jsc-glidein supervisor on $(uname -n) (its batch script is not the holder script, or has not started)" >&2
    exit ${NO_SUPERVISOR_EXIT}
  fi
  sleep 0.1; i=$((i + 1))
done
umask 077
# Never hand argv and stdin (a credential, for one) to a spool or a FIFO that is not ours.
for p in "$spool" "$spool/requests"; do safe_path "$p" || exit ${UNSAFE_PATH_EXIT}; done
r=$(mktemp -d "$spool/r.XXXXXXXX") || exit 1
if [ "$1" = 1 ]; then cat > "$r/stdin"; else : > "$r/stdin"; fi
shift
printf '%s\\0' "$@" > "$r/argv" && mkfifo "$r/done" || exit 1
exec 4<>"$r/done"
echo "\${r##*/}" > "$spool/requests"
read -r _ <&4
cat "$r/out"; cat "$r/err" >&2
rc=$(cat "$r/rc"); rm -rf "$r"
exit "$rc"`;
/* eslint-enable max-len */

/** A command handed to the job's supervisor by a step (argv, with or without the step's stdin). */
export function inJobArgv(argv: readonly string[], withStdin: boolean): string[] {
  return ['sh', '-c', IN_JOB, 'sh', withStdin ? '1' : '0', ...argv];
}
