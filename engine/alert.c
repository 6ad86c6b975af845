/** @file
 * Alerts about many files (bkr/alert.h): the first few named, the rest counted.
 */
#include "bkr/alert.h"

#include <stdarg.h>
#include <stdio.h>

void bkr_alert_files_add(bkr_alert_files *l, const char *fmt, ...)
{
	char item[sizeof(l->text)];
	va_list ap;
	int w;

	l->n++;
	if (l->full)
		return;
	va_start(ap, fmt);
	w = vsnprintf(item, sizeof(item), fmt, ap);
	va_end(ap);
	if (w < 0 || (size_t)w + (l->named ? 2 : 0) >= sizeof(l->text) - l->len) {
		l->full = true; /* it and the rest are counted, not named */
		return;
	}
	l->len += (size_t)snprintf(l->text + l->len, sizeof(l->text) - l->len, "%s%s", l->named ? ", " : "", item);
	l->full = ++l->named == BKR_ALERT_FILES;
}

const char *bkr_alert_files_text(const bkr_alert_files *l, const char *where, char *out, size_t cap)
{
	if (l->n > l->named)
		snprintf(out, cap, "%s%s%zu %s (every one in %s)", l->text, l->named ? " and " : "", l->n - l->named,
			 l->named ? "more" : "too long to name here", where);
	else
		snprintf(out, cap, "%s", l->text);
	return out;
}

const char *bkr_alert_needs_person(char *out, size_t cap, const char *const *paths, size_t n, const char *run,
				   const char *where)
{
	bkr_alert_files l = { 0 };
	char list[BKR_ALERT_FILES_TEXT + 400];

	if (n == 1) {
		snprintf(out, cap, "%s needs a person: recovery run %s could not recover it", paths[0], run);
		return out;
	}
	for (size_t i = 0; i < n; i++)
		bkr_alert_files_add(&l, "%s", paths[i]);
	snprintf(out, cap, "%zu files need a person: recovery run %s could not recover them: %s", n, run,
		 bkr_alert_files_text(&l, where, list, sizeof(list)));
	return out;
}
