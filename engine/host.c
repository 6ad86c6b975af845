/** @file
 * Host name and state directory defaults (host.h).
 */
#include "bkr/host.h"

#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

void bkr_host_name(char *buf, size_t cap, const char *given)
{
	if (!cap)
		return;
	if (given)
		snprintf(buf, cap, "%s", given);
	else if (gethostname(buf, cap) < 0)
		buf[0] = '\0';
	buf[cap - 1] = '\0';
	if (!buf[0])
		snprintf(buf, cap, "localhost");
}

char *bkr_host_state_dir(void)
{
	const char *xdg = getenv("XDG_STATE_HOME"), *home = getenv("HOME");
	char *out = NULL;
	int r;

	if (xdg && xdg[0] == '/')
		r = asprintf(&out, "%s/bkr", xdg);
	else if (home && home[0] == '/')
		r = asprintf(&out, "%s/.local/state/bkr", home);
	else
		r = asprintf(&out, "/var/tmp/bkr-%u", (unsigned)getuid());
	if (r < 0)
		return NULL;
	/* no trailing or doubled '/' from the environment ("/home/u/" -> "/home/u") */
	size_t k = 0;
	for (size_t i = 0; out[i]; i++)
		if (!(out[i] == '/' && k > 0 && out[k - 1] == '/'))
			out[k++] = out[i];
	while (k > 1 && out[k - 1] == '/')
		k--;
	out[k] = '\0';
	return out;
}

void bkr_host_tune_malloc(void)
{
#ifdef M_MMAP_THRESHOLD
	/* Both fixed: setting either one stops glibc moving them itself. */
	(void)mallopt(M_MMAP_THRESHOLD, 32 << 20); /* glibc's maximum on 64-bit; over BKR_BLOB_MAX */
	(void)mallopt(M_TRIM_THRESHOLD, 64 << 20);
#endif
}
