/** @file
 * Structured logging: one JSON object per line, one file per UTC day (see
 * bkr/log.h).
 *
 * One mutex (log_lock) guards all state.  Each line is built in memory first
 * and handed to a single write(2) on an O_APPEND descriptor, so lines from
 * threads and from other processes never interleave inside a line.  Logging
 * never touches the caller's last-error message.
 */
#include "bkr/log.h"
#include "bkr/clock.h"
#include "bkr/error.h"
#include "bkr/host.h"
#include "bkr/io.h"
#include "bkr/manifest.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static char *log_dir;                       /* guarded by log_lock */
static int log_fd = -1;                     /* guarded by log_lock */
static int64_t log_day = INT64_MIN;         /* day number of log_fd; log_lock */
static bkr_log_level log_min = BKR_LOG_INFO; /* log_lock */
static bkr_log_hook_fn log_hook;            /* log_lock */
static void *log_hook_ctx;                  /* log_lock */
static bool log_failed;                     /* a write error was reported; log_lock */
static char *log_command;                   /* bkr_log_command_begin's; log_lock */
static int64_t log_command_start;           /* its monotonic start; log_lock */

static const char *const level_names[] = { "debug", "info", "warn", "error" };

const char *bkr_log_level_name(bkr_log_level level)
{
	if ((unsigned)level > BKR_LOG_ERROR)
		return "unknown";
	return level_names[level];
}

int bkr_log_level_parse(const char *s, bkr_log_level *out)
{
	for (unsigned i = 0; s && i <= BKR_LOG_ERROR; i++) {
		if (!strcmp(s, level_names[i])) {
			*out = (bkr_log_level)i;
			return 0;
		}
	}
	if (s && !strcmp(s, "warning")) {
		*out = BKR_LOG_WARN;
		return 0;
	}
	return bkr_error_set(BKR_EINVAL, "unknown log level '%s' (expected debug, info, warn or error)",
			     s ? s : "(null)");
}

static int64_t day_of(int64_t time_ns)
{
	int64_t s = time_ns / 1000000000;
	if (time_ns < 0 && time_ns % 1000000000)
		s--;
	return s >= 0 ? s / 86400 : -((-s + 86399) / 86400);
}

int bkr_log_path(char *out, size_t cap, const char *dir, int64_t time_ns)
{
	char ts[32];
	int n;

	bkr_time_format(ts, time_ns);
	n = snprintf(out, cap, "%s/bkr-%.10s.log", dir, ts);
	if (n < 0 || (size_t)n >= cap)
		return bkr_error_set(BKR_EINVAL, "log path too long: %s", dir);
	return 0;
}

int bkr_log_open(const char *dir, bkr_log_level min_level)
{
	char *copy = NULL;
	int err;

	if (!dir || !*dir)
		return bkr_error_set(BKR_EINVAL, "no log directory given");
	if ((err = bkr_io_mkdir_p(dir, 0755)) < 0) {
		bkr_error_prefix("cannot create log directory %s", dir);
		return err;
	}
	if (access(dir, W_OK) != 0)
		return bkr_error_set_errno(errno, "log directory %s is not writable", dir);
	if (!(copy = strdup(dir)))
		return bkr_error_oom();
	pthread_mutex_lock(&log_lock);
	if (log_fd >= 0)
		close(log_fd);
	log_fd = -1;
	log_day = INT64_MIN;
	free(log_dir);
	log_dir = copy;
	log_min = min_level;
	log_failed = false;
	pthread_mutex_unlock(&log_lock);
	return 0;
}

void bkr_log_close(void)
{
	pthread_mutex_lock(&log_lock);
	if (log_fd >= 0)
		close(log_fd);
	log_fd = -1;
	log_day = INT64_MIN;
	free(log_dir);
	log_dir = NULL;
	pthread_mutex_unlock(&log_lock);
}

void bkr_log_set_level(bkr_log_level min_level)
{
	pthread_mutex_lock(&log_lock);
	log_min = min_level;
	pthread_mutex_unlock(&log_lock);
}

void bkr_log_set_hook(bkr_log_hook_fn hook, void *ctx)
{
	pthread_mutex_lock(&log_lock);
	log_hook = hook;
	log_hook_ctx = ctx;
	pthread_mutex_unlock(&log_lock);
}

/* ---- line building -------------------------------------------------------- */

struct buf {
	char *p;
	size_t len, cap;
	bool oom;
};

static void buf_add(struct buf *b, const char *s, size_t n)
{
	if (b->oom)
		return;
	if (b->len + n + 2 > b->cap) {
		size_t cap = b->cap ? b->cap : 256;
		char *p;
		while (b->len + n + 2 > cap)
			cap *= 2;
		if (!(p = realloc(b->p, cap))) {
			b->oom = true;
			return;
		}
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static void buf_str(struct buf *b, const char *s)
{
	buf_add(b, s, strlen(s));
}

/* A JSON string literal; invalid UTF-8 is kept as is, control chars are escaped. */
static void buf_json(struct buf *b, const char *s)
{
	static const char hex[] = "0123456789abcdef";
	const char *run = s;

	buf_add(b, "\"", 1);
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		char esc[7];
		size_t n = 0;
		if (c == '"' || c == '\\') {
			esc[0] = '\\';
			esc[1] = (char)c;
			n = 2;
		} else if (c == '\n') {
			memcpy(esc, "\\n", n = 2);
		} else if (c == '\t') {
			memcpy(esc, "\\t", n = 2);
		} else if (c == '\r') {
			memcpy(esc, "\\r", n = 2);
		} else if (c < 0x20 || c == 0x7f) {
			memcpy(esc, "\\u00", 4);
			esc[4] = hex[c >> 4];
			esc[5] = hex[c & 15];
			n = 6;
		} else {
			continue;
		}
		buf_add(b, run, (size_t)(s - run));
		buf_add(b, esc, n);
		run = s + 1;
	}
	buf_add(b, run, (size_t)(s - run));
	buf_add(b, "\"", 1);
}

static bool reserved(const char *key)
{
	static const char *const names[] = { "time", "level", "component", "pid", "command", "event", "message", NULL };
	for (int i = 0; names[i]; i++)
		if (!strcmp(key, names[i]))
			return true;
	return false;
}

/* Open the file for the day of @p now when needed.  Called with log_lock held. */
static int ensure_file(int64_t now)
{
	char path[4096];
	struct stat st;
	int64_t day = day_of(now);

	if (log_fd >= 0 && day == log_day)
		return 0;
	if (log_fd >= 0)
		close(log_fd);
	log_fd = -1;
	if (snprintf(path, sizeof(path), "%s/bkr-", log_dir) >= (int)sizeof(path) - 20)
		return -ENAMETOOLONG;
	{
		char ts[32];
		bkr_time_format(ts, now);
		snprintf(path + strlen(path), sizeof(path) - strlen(path), "%.10s.log", ts);
	}
	/* O_NONBLOCK: a FIFO put in the file's place fails (ENXIO) instead of
	 * blocking; whatever is not a regular file is never written to */
	log_fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NONBLOCK | O_NOCTTY, 0640);
	if (log_fd < 0)
		return errno == ENXIO ? -EINVAL : -errno; /* ENXIO: a FIFO without a reader */
	if (fstat(log_fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		close(log_fd);
		log_fd = -1;
		return -EINVAL;
	}
	log_day = day;
	return 0;
}

static void report_failure(const char *what, int errnum)
{
	char *msg = NULL;
	const char *said;
	if (log_failed || !log_hook)
		return;
	log_failed = true;
	/* whole, however long the directory's path */
	if (asprintf(&msg, "cannot %s log file in %s: %s", what, log_dir,
		     errnum == EINVAL ? "not a regular file" : strerror(errnum)) < 0)
		msg = NULL;
	said = msg ? msg : "cannot write the log file (out of memory naming it)";
	log_hook(log_hook_ctx, BKR_LOG_ERROR, "log", said, said);
	free(msg);
}

static void vlog(bkr_log_level level, const char *component, const char *event, const char *const *kv,
		 const char *fmt, va_list ap)
{
	struct buf b = { 0 };
	char ts[32], pid[24], *msg = NULL, *command = NULL;
	int64_t now;
	int saved_errno = errno;

	if ((unsigned)level > BKR_LOG_ERROR)
		level = BKR_LOG_ERROR;
	pthread_mutex_lock(&log_lock);
	if (level < log_min || (!log_dir && !log_hook)) {
		pthread_mutex_unlock(&log_lock);
		goto done;
	}
	if (log_command && !(command = strdup(log_command))) {
		pthread_mutex_unlock(&log_lock);
		goto done;
	}
	pthread_mutex_unlock(&log_lock);

	if (vasprintf(&msg, fmt, ap) < 0)
		msg = NULL;
	if (!msg)
		goto done;
	if (!component || !*component)
		component = "bkr";
	now = bkr_time_now_ns();
	bkr_time_format(ts, now);
	snprintf(pid, sizeof(pid), "%ld", (long)getpid());

	buf_str(&b, "{\"time\":");
	buf_json(&b, ts);
	buf_str(&b, ",\"level\":");
	buf_json(&b, bkr_log_level_name(level));
	buf_str(&b, ",\"component\":");
	buf_json(&b, component);
	buf_str(&b, ",\"pid\":");
	buf_str(&b, pid);
	if (command) {
		buf_str(&b, ",\"command\":");
		buf_json(&b, command);
	}
	if (event) {
		buf_str(&b, ",\"event\":");
		buf_json(&b, event);
	}
	buf_str(&b, ",\"message\":");
	buf_json(&b, msg);
	for (size_t i = 0; kv && kv[i] && kv[i + 1]; i += 2) {
		if (reserved(kv[i]))
			continue;
		buf_str(&b, ",");
		buf_json(&b, kv[i]);
		buf_str(&b, ":");
		buf_json(&b, kv[i + 1]);
	}
	buf_str(&b, "}");
	if (b.oom)
		goto done;

	pthread_mutex_lock(&log_lock);
	if (log_hook)
		log_hook(log_hook_ctx, level, component, msg, b.p);
	if (log_dir) {
		int e = ensure_file(now);
		if (e < 0) {
			report_failure("open", -e);
		} else {
			ssize_t w;
			b.p[b.len] = '\n'; /* buf_add keeps room for it */
			w = write(log_fd, b.p, b.len + 1);
			b.p[b.len] = '\0';
			if (w < 0)
				report_failure("write", errno);
			else if ((size_t)w != b.len + 1)
				report_failure("write", ENOSPC);
		}
	}
	pthread_mutex_unlock(&log_lock);
done:
	free(command);
	free(msg);
	free(b.p);
	errno = saved_errno;
}

void bkr_log_kv(bkr_log_level level, const char *component, const char *const *kv, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vlog(level, component, NULL, kv, fmt, ap);
	va_end(ap);
}

void bkr_log_event(bkr_log_level level, const char *component, const char *event, const char *const *kv,
		   const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vlog(level, component, event && *event ? event : NULL, kv, fmt, ap);
	va_end(ap);
}

/* ---- a command's log ------------------------------------------------------ */

char *bkr_log_default_dir(void)
{
	return bkr_host_state_dir();
}

int bkr_log_command_begin(const char *dir, bkr_log_level min_level, const char *command,
			  const char *const *kv)
{
	char *def = NULL, *name = NULL;
	int err;

	if (!dir && !(dir = def = bkr_log_default_dir()))
		return bkr_error_last_code(); /* bkr_host_state_dir's */
	if (!(name = strdup(command && *command ? command : "bkr"))) {
		free(def);
		return bkr_error_oom();
	}
	err = bkr_log_open(dir, min_level);
	free(def);
	pthread_mutex_lock(&log_lock);
	free(log_command);
	log_command = name;
	log_command_start = bkr_clock_mono_ns();
	if (err < 0)
		log_min = min_level; /* the hook still gets the lines */
	pthread_mutex_unlock(&log_lock);
	bkr_log_event(BKR_LOG_INFO, "bkr", "start", kv, "%s started", name);
	return err;
}

void bkr_log_command_end(int exit_status)
{
	char code[16], secs[32];
	int64_t start;
	bool begun;

	pthread_mutex_lock(&log_lock);
	begun = log_command != NULL;
	start = log_command_start;
	pthread_mutex_unlock(&log_lock);
	if (begun) {
		snprintf(code, sizeof(code), "%d", exit_status);
		snprintf(secs, sizeof(secs), "%.3f", (double)(bkr_clock_mono_ns() - start) / 1e9);
		/* 1 (a check found problems) and 6 (partly done) are warnings */
		bkr_log_level level = exit_status == 0 ? BKR_LOG_INFO
				    : exit_status == 1 || exit_status == 6 ? BKR_LOG_WARN : BKR_LOG_ERROR;
		bkr_log_event(level, "bkr", "end", (const char *[]){ "exit", code, "duration_s", secs, NULL },
			      "finished, exit status %d", exit_status);
	}
	bkr_log_close();
	pthread_mutex_lock(&log_lock);
	free(log_command);
	log_command = NULL;
	pthread_mutex_unlock(&log_lock);
}
