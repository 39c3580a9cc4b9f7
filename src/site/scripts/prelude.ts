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

/** A script exits with this when a path it would use is not safe to (sysexits' EX_NOPERM): a permanent fault. */
export const UNSAFE_PATH_EXIT = 77;

/**
 * `safe_path <path> [root]` fails, naming the path on stderr, unless the path is not a symbolic link, is owned by
 * this user (or by root, with a second argument: an administrator's install) and is writable by nobody else. On a
 * shared login node, in a group-shared project directory (JSC's are setgid, 2770), anything a co-tenant could write
 * or swap is refused before it is trusted. A path that does not exist passes (the caller makes it, under umask 077).
 */
export const SAFE_PATH = `safe_path() {
  [ -L "$1" ] && { echo "$1 is a symbolic link: refusing to use it" >&2; return 1; }
  [ -e "$1" ] || return 0
  s_owner=$(stat -c %u "$1") || return 1
  if [ "$s_owner" != "$(id -u)" ] && { [ -z "\${2:-}" ] || [ "$s_owner" != 0 ]; }; then
    echo "$1 is owned by uid $s_owner, not by $(id -un): refusing to use it" >&2; return 1
  fi
  if [ -n "$(find "$1" -maxdepth 0 -perm /022 2>/dev/null)" ]; then
    echo "$1 is writable by its group or by others ($(stat -c %A "$1")): refusing to use it; run chmod go-w $1" >&2
    return 1
  fi
  return 0
}
`;

if (SAFE_PATH.includes("'")) throw new Error('SAFE_PATH must not contain a single quote');
