/** @file
 * Nanosecond times: the one place that converts between struct timespec and
 * the int64 nanoseconds stored in trees and manifests, and reads the
 * monotonic clock for durations and progress.  Wall-clock times of
 * manifests are bkr_time_now_ns() (manifest.h).
 */
#ifndef BKR_CLOCK_H
#define BKR_CLOCK_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#define BKR_NS_PER_S 1000000000LL

/** CLOCK_MONOTONIC in ns (durations, progress intervals). */
int64_t bkr_clock_mono_ns(void);

/** @p t in ns since the epoch (st_mtim, st_ctim). */
static inline int64_t bkr_clock_ns(const struct timespec *t)
{
	return (int64_t)t->tv_sec * BKR_NS_PER_S + t->tv_nsec;
}

/** @p ns as a timespec; tv_nsec is in [0, 1e9) also for times before 1970. */
static inline struct timespec bkr_clock_timespec(int64_t ns)
{
	struct timespec t;
	int64_t s = ns / BKR_NS_PER_S, f = ns % BKR_NS_PER_S;

	if (f < 0) {
		f += BKR_NS_PER_S;
		s--;
	}
	t.tv_sec = (time_t)s;
	t.tv_nsec = (long)f;
	return t;
}

/**
 * How far after "now" a backup's time may lie and still count as made now:
 * 5 minutes of clock skew (hosts writing one repository whose clocks differ
 * a little, a clock NTP stepped back).  A backup dated later than that was
 * made while the clock was ahead (docs/operations.md, "Backups dated in the
 * future").
 */
#define BKR_CLOCK_SKEW_NS (300 * BKR_NS_PER_S)

/**
 * How long before @p now_ns @p t_ns is (0 when it is not before): an unsigned
 * count, since two times bkr holds (1677 to 2262, from a manifest or a
 * record) may lie further apart than an int64 counts.
 */
static inline uint64_t bkr_time_since_ns(int64_t t_ns, int64_t now_ns)
{
	return t_ns < now_ns ? (uint64_t)now_ns - (uint64_t)t_ns : 0;
}

/**
 * How many backups dated in the future a warning names, one by one, before
 * it counts the rest in one line (bkr's commands, the mount's log): a clock
 * that was ahead for a day of hourly backups is one problem, not 24 lines.
 */
#define BKR_FUTURE_NAMED 5

/**
 * True when a backup made at @p t_ns is dated in the future at @p now_ns:
 * more than BKR_CLOCK_SKEW_NS after it.  The schedules, retention and health
 * ask this one question, so they agree: such a backup is never a source's
 * newest backup, and retention keeps it without counting it.
 */
static inline bool bkr_time_in_future(int64_t t_ns, int64_t now_ns)
{
	return t_ns > now_ns && (uint64_t)t_ns - (uint64_t)now_ns > (uint64_t)BKR_CLOCK_SKEW_NS;
}

#endif
