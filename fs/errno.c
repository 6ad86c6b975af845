/** @file
 * The one mapping from libbkr error codes to the errno a FUSE reply carries.
 * Anything that might mean "the bytes are not what was backed up" is EIO:
 * a read never returns a wrong byte.
 */
#include <errno.h>

#include "bkr/error.h"
#include "bkrfs.h"

int bkrfs_errno(int code)
{
	switch (code) {
	case BKR_OK:
		return 0;
	case BKR_ENOTFOUND:
		return ENOENT;
	case BKR_EEXISTS:
		return EEXIST;
	case BKR_ECORRUPT:
		return EIO;
	case BKR_ELOCKED:
		return EAGAIN;
	case BKR_EINVAL:
		return EINVAL;
	case BKR_EUNSUPPORTED:
		return EOPNOTSUPP;
	case BKR_ENOMEM:
		return ENOMEM;
	case BKR_ENOSPC:
		return ENOSPC;
	case BKR_EAMBIGUOUS:
		return EINVAL;
	case BKR_ETIMEOUT:
		return ETIMEDOUT;
	case BKR_EUNAVAILABLE:
		return EIO;
	case BKR_EIO:
	case BKR_ERROR:
	default:
		return EIO;
	}
}

int bkrfs_data_errno(int bkr_code)
{
	int e = bkrfs_errno(bkr_code);

	return e == ENOENT ? EIO : e;
}
