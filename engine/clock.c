/** @file
 * The monotonic clock in nanoseconds (clock.h; the conversions are inline
 * there).
 */
#include "bkr/clock.h"

int64_t bkr_clock_mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return bkr_clock_ns(&ts);
}
