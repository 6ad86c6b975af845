/** @file
 * What the local machine supplies as defaults: its host name (recorded in
 * manifests and recovery runs) and the per-user state directory (logs,
 * staged recovery runs).  One fallback each, for every caller.
 */
#ifndef BKR_HOST_H
#define BKR_HOST_H

#include <stddef.h>

/**
 * The host name into @p buf (@p cap bytes, NUL-terminated, truncated when
 * longer): @p given when not NULL, else gethostname(2), else "localhost"
 * (also when the name is empty).
 */
void bkr_host_name(char *buf, size_t cap, const char *given);

/**
 * The per-user state directory (malloc'd, no trailing '/', not created):
 * $XDG_STATE_HOME/bkr when that is an absolute path (the XDG rule: relative
 * values are ignored), else $HOME/.local/state/bkr when HOME is absolute,
 * else /var/tmp/bkr-UID (per user, never shared).  NULL on OOM.
 */
char *bkr_host_state_dir(void);

#endif
