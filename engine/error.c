/** @file
 * The per-thread last-error message (see bkr/error.h).
 */
#include "bkr/error.h"
#include "bkr/exit.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#define BKR_ERROR_MAX 1024

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

/* The message is formatted aside first: an argument may be the current
 * message itself (bkr_error_message()), and vsnprintf's source and
 * destination must not overlap. */
int bkr_error_set(int code, const char *fmt, ...)
{
	char buf[BKR_ERROR_MAX];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	memcpy(last_msg, buf, sizeof(last_msg));
	last_code = code;
	return code;
}

int bkr_error_set_errno(int errnum, const char *fmt, ...)
{
	char buf[BKR_ERROR_MAX];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	snprintf(last_msg, sizeof(last_msg), "%.900s: %.120s", buf, strerror(errnum));
	last_code = code_for_errno(errnum);
	return last_code;
}

void bkr_error_prefix(const char *fmt, ...)
{
	char prefix[BKR_ERROR_MAX], old[BKR_ERROR_MAX];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(prefix, sizeof(prefix), fmt, ap);
	va_end(ap);
	memcpy(old, last_msg, sizeof(old));
	snprintf(last_msg, sizeof(last_msg), "%.300s: %.700s", prefix, old);
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
