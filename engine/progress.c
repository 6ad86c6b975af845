/** @file
 * Progress figures for a terminal: done of total, rate, time left
 * (bkr/progress.h).
 */
#include "bkr/progress.h"

#include <stdio.h>
#include <string.h>

void bkr_progress_begin(bkr_progress *p, int64_t now_ns)
{
	memset(p, 0, sizeof(*p));
	p->start_ns = p->now_ns = now_ns;
}

void bkr_progress_update(bkr_progress *p, int64_t now_ns, uint64_t items_done, uint64_t items_total,
			 uint64_t bytes_done, uint64_t bytes_total)
{
	p->now_ns = now_ns > p->start_ns ? now_ns : p->start_ns;
	p->items_done = items_done;
	p->items_total = items_total && items_total < items_done ? items_done : items_total;
	p->bytes_done = bytes_done;
	p->bytes_total = bytes_total && bytes_total < bytes_done ? bytes_done : bytes_total;
}

/* per second since the start: @p done */
static double per_s(const bkr_progress *p, uint64_t done)
{
	double secs = (double)(p->now_ns - p->start_ns) / 1e9;
	return secs > 0 ? (double)done / secs : 0;
}

double bkr_progress_rate(const bkr_progress *p)
{
	return per_s(p, p->bytes_total || p->bytes_done ? p->bytes_done : p->items_done);
}

int64_t bkr_progress_eta_s(const bkr_progress *p)
{
	/* by bytes when their total is known, else by items */
	uint64_t done = p->bytes_total ? p->bytes_done : p->items_done;
	uint64_t total = p->bytes_total ? p->bytes_total : p->items_total;
	double rate = per_s(p, done);

	if (!total)
		return -1;
	if (done >= total)
		return 0;
	if (!done || rate <= 0)
		return -1;
	return (int64_t)((double)(total - done) / rate + 0.5);
}

void bkr_progress_bytes(char out[32], uint64_t n)
{
	static const char *const units[] = { "B", "KiB", "MiB", "GiB", "TiB", "PiB" };
	double v = (double)n;
	int u = 0;
	while (v >= 1024 && u < 5) {
		v /= 1024;
		u++;
	}
	if (u == 0)
		snprintf(out, 32, "%llu B", (unsigned long long)n);
	else
		snprintf(out, 32, "%.1f %s", v, units[u]);
}

/* "0:07", "12:03", "3:04:05" */
static void duration(char out[32], int64_t s)
{
	if (s >= 3600)
		snprintf(out, 32, "%lld:%02lld:%02lld", (long long)(s / 3600), (long long)(s / 60 % 60), (long long)(s % 60));
	else
		snprintf(out, 32, "%lld:%02lld", (long long)(s / 60), (long long)(s % 60));
}

void bkr_progress_format(const bkr_progress *p, const char *what, const char *items, char *out, size_t cap)
{
	char done[32], total[32], rate[32], left[32];
	size_t n = 0;
	int64_t eta = bkr_progress_eta_s(p);
	double r = bkr_progress_rate(p);

#define ADD(...)                                                                  \
	do {                                                                      \
		if (n < cap) {                                                    \
			int k_ = snprintf(out + n, cap - n, __VA_ARGS__);         \
			n = k_ < 0 ? cap : n + (size_t)k_;                        \
		}                                                                 \
	} while (0)

	if (!cap)
		return;
	out[0] = '\0';
	ADD("%s: %llu", what, (unsigned long long)p->items_done);
	if (p->items_total)
		ADD("/%llu", (unsigned long long)p->items_total);
	ADD(" %s", items);
	if (p->bytes_total || p->bytes_done) {
		bkr_progress_bytes(done, p->bytes_done);
		bkr_progress_bytes(total, p->bytes_total);
		if (p->bytes_total)
			ADD(", %s/%s (%d%%)", done, total, (int)(p->bytes_done * 100 / p->bytes_total));
		else
			ADD(", %s", done);
		bkr_progress_bytes(rate, (uint64_t)r);
		if (p->now_ns > p->start_ns)
			ADD(", %s/s", rate);
	} else {
		if (p->items_total)
			ADD(" (%d%%)", (int)(p->items_done * 100 / p->items_total));
		if (p->now_ns > p->start_ns)
			ADD(", %.1f/s", r);
	}
	if (eta >= 0) {
		duration(left, eta);
		ADD(", %s left", left);
	}
#undef ADD
	if (n >= cap)
		out[cap - 1] = '\0';
}
