/**
 * Shell pieces the site scripts share, so that each is written once. A script that needs one starts with it
 * (`${PROC_STAT}` at its top); the definitions are constants, never built from input.
 */

/**
 * `proc_stat <pid>` reads /proc/<pid>/stat: sets `p_state` (R, S, Z, …) and `p_start` (the start time in clock
 * ticks since boot, which with the pid names one process even after the pid is reused); fails when there is no
 * such process. The fields are counted after the last `) `, as the command name between the parentheses may hold
 * spaces. Written without single quotes, so that a script can also hand it on inside a single-quoted string (the
 * spawn's child records itself with it).
 */
export const PROC_STAT = `proc_stat() {
  p_rest=$(sed "s/^.*) //" "/proc/$1/stat" 2>/dev/null) || return 1
  p_state=$(printf "%s\\n" "$p_rest" | cut -d" " -f1)
  p_start=$(printf "%s\\n" "$p_rest" | cut -d" " -f20)
}
`;

if (PROC_STAT.includes("'")) throw new Error('PROC_STAT must not contain a single quote: it is embedded in one');
