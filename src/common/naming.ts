/** Names of a glidein's things on the site. Pure: the workflow and the activities agree on them. */

/** The container instance of a glidein: its id, prefixed with "glidein-" unless the id already says so. */
export function instanceName(glideinId: string): string {
  return glideinId.startsWith('glidein-') ? glideinId : `glidein-${glideinId}`;
}
