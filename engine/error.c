/** @file
 * The per-thread last-error message (see bkr/error.h).
 */
#include "bkr/error.h"
#include "bkr/exit.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Room for a message naming a path deeper than PATH_MAX whole.  A longer one
 * keeps its start and its last ERROR_TAIL bytes, where the reason is, around
 * a marker saying how much was left out. */
#define BKR_ERROR_MAX 8192
#define ERROR_TAIL 1024

static __thread char last_msg[BKR_ERROR_MAX];
static __thread int last_code;

static int code_for_errno(int errnum)
{
	switch (errnum) {
	case ENOENT: return BKR_ENOTFOUND;
	case EEXIST: return BKR_EEXISTS;
	case ENOSPC:
	case EDQUOT: return BKR_ENOSPC;
	case ENOMEM: return BKR_ENOMEM;
	case EWOULDBLOCK: return BKR_ELOCKED;
	case EINVAL: return BKR_EINVAL;
	default: return BKR_EIO;
	}
}

/* Make @p msg (@p len bytes) the thread's message.  It may be the current
 * message itself (bkr_error_message() as an argument): it is formatted aside
 * first by every caller, so the copy never overlaps. */
static void keep(const char *msg, size_t len)
{
	static const char mark[] = " [... %zu bytes ...] ";
	size_t head = 0, left = 0, ml = 0, was;

	if (len < sizeof(last_msg)) {
		memcpy(last_msg, msg, len + 1);
		return;
	}
	do { /* the marker's length depends on the count it shows */
		was = ml;
		head = sizeof(last_msg) - 1 - ERROR_TAIL - ml;
		left = len - ERROR_TAIL - head;
		ml = (size_t)snprintf(NULL, 0, mark, left);
	} while (ml != was);
	memcpy(last_msg, msg, head);
	snprintf(last_msg + head, ml + 1, mark, left);
	memcpy(last_msg + head + ml, msg + len - ERROR_TAIL, ERROR_TAIL + 1);
}

/* "<fmt ...><sep><tail>" formatted whole (on the heap when it does not fit
 * @p buf) and kept; @p tail NULL: the format alone.  Out of memory: what fit. */
static void vkeep(char *buf, size_t cap, const char *tail, const char *fmt, va_list ap)
{
	size_t tl = tail ? 2 + strlen(tail) : 0, len;
	char *big = NULL;
	va_list aq;
	int n;

	va_copy(aq, ap);
	n = vsnprintf(buf, cap, fmt, aq);
	va_end(aq);
	len = n < 0 ? 0 : (size_t)n;
	if (len + tl >= cap && (big = malloc(len + tl + 1))) {
		vsnprintf(big, len + 1, fmt, ap);
		buf = big;
	} else if (len >= cap) {
		len = cap - 1;
	}
	if (tail && len + tl < (big ? len + tl + 1 : cap)) {
		memcpy(buf + len, ": ", 2);
		memcpy(buf + len + 2, tail, tl - 1);
		len += tl;
	}
	keep(buf, len);
	free(big);
}

int bkr_error_set(int code, const char *fmt, ...)
{
	char buf[BKR_ERROR_MAX];
	va_list ap;
	va_start(ap, fmt);
	vkeep(buf, sizeof(buf), NULL, fmt, ap);
	va_end(ap);
	last_code = code;
	return code;
}

int bkr_error_set_errno(int errnum, const char *fmt, ...)
{
	char buf[BKR_ERROR_MAX];
	va_list ap;
	va_start(ap, fmt);
	vkeep(buf, sizeof(buf), strerror(errnum), fmt, ap);
	va_end(ap);
	last_code = code_for_errno(errnum);
	return last_code;
}

void bkr_error_prefix(const char *fmt, ...)
{
	char buf[BKR_ERROR_MAX], old[BKR_ERROR_MAX];
	va_list ap;
	memcpy(old, last_msg, sizeof(old));
	va_start(ap, fmt);
	vkeep(buf, sizeof(buf), old, fmt, ap);
	va_end(ap);
}

const char *bkr_error_message(void)
{
	return last_msg;
}

int bkr_error_last_code(void)
{
	return last_code;
}

void bkr_error_clear(void)
{
	last_msg[0] = '\0';
	last_code = BKR_OK;
}

int bkr_error_oom(void)
{
	return bkr_error_set(BKR_ENOMEM, "out of memory");
}

const char *bkr_error_name(int code)
{
	switch (code) {
	case BKR_OK: return "ok";
	case BKR_ENOTFOUND: return "not found";
	case BKR_EEXISTS: return "exists";
	case BKR_ECORRUPT: return "corrupt";
	case BKR_ELOCKED: return "locked";
	case BKR_EINVAL: return "invalid";
	case BKR_EUNSUPPORTED: return "unsupported";
	case BKR_ENOMEM: return "out of memory";
	case BKR_EIO: return "I/O error";
	case BKR_ENOSPC: return "no space";
	case BKR_EAMBIGUOUS: return "ambiguous";
	case BKR_ETIMEOUT: return "timeout";
	case BKR_EUNAVAILABLE: return "unavailable";
	case BKR_EKEY: return "wrong passphrase";
	default: return "error";
	}
}

int bkr_exit_for(int err)
{
	switch (err) {
	case BKR_OK: return BKR_EXIT_OK;
	case BKR_EINVAL: return BKR_EXIT_USAGE;
	case BKR_ENOTFOUND: return BKR_EXIT_NOTFOUND;
	case BKR_EAMBIGUOUS: return BKR_EXIT_USAGE;
	case BKR_ECORRUPT:
	case BKR_EUNSUPPORTED: return BKR_EXIT_CORRUPT;
	case BKR_ELOCKED: return BKR_EXIT_LOCKED;
	case BKR_EIO:
	case BKR_ENOSPC:
	case BKR_EEXISTS: return BKR_EXIT_IO;
	case BKR_ETIMEOUT:
	case BKR_EUNAVAILABLE: return BKR_EXIT_UNAVAILABLE;
	case BKR_ENOMEM: return BKR_EXIT_INTERNAL;
	case BKR_EKEY: return BKR_EXIT_KEY;
	default: return err < 0 ? BKR_EXIT_INTERNAL : BKR_EXIT_OK;
	}
}
