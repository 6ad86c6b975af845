/** @file
 * Host name and state directory defaults (host.h).
 */
#include "bkr/host.h"

#include <malloc.h>
#include <openssl/crypto.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
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

/* An OpenSSL allocation this big is advised for transparent huge pages. */
#define OSSL_HUGE (2u << 20)

void bkr_host_advise_huge(void *p, size_t n, size_t align)
{
	long pg = sysconf(_SC_PAGESIZE);
	uintptr_t a = align ? align : pg > 0 ? (uintptr_t)pg : 4096;
	uintptr_t lo = ((uintptr_t)p + a - 1) & ~(a - 1), hi = ((uintptr_t)p + n) & ~(a - 1);

#ifdef MADV_HUGEPAGE
	if (hi > lo)
		(void)madvise((void *)lo, hi - lo, MADV_HUGEPAGE);
#else
	(void)lo;
	(void)hi;
#endif
}

static void *ossl_malloc(size_t n, const char *file, int line)
{
	void *p = malloc(n);
	(void)file;
	(void)line;
	if (p && n >= OSSL_HUGE)
		bkr_host_advise_huge(p, n, 0);
	return p;
}

static void *ossl_realloc(void *p, size_t n, const char *file, int line)
{
	void *q = realloc(p, n);
	(void)file;
	(void)line;
	if (q && n >= OSSL_HUGE)
		bkr_host_advise_huge(q, n, 0);
	return q;
}

static void ossl_free(void *p, const char *file, int line)
{
	(void)file;
	(void)line;
	free(p);
}

void bkr_host_tune_malloc(void)
{
#ifdef M_MMAP_THRESHOLD
	/* Both fixed: setting either one stops glibc moving them itself. */
	(void)mallopt(M_MMAP_THRESHOLD, 32 << 20); /* glibc's maximum on 64-bit; over BKR_BLOB_MAX */
	(void)mallopt(M_TRIM_THRESHOLD, 64 << 20);
#endif
}

void bkr_host_tune_openssl(void)
{
	/* Refused (0) once OpenSSL has allocated anything: then it keeps its own. */
	(void)CRYPTO_set_mem_functions(ossl_malloc, ossl_realloc, ossl_free);
}
