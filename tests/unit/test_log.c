/** @file
 * Unit tests of engine/log.c: lines land in the daily file as one valid JSON
 * object each, with level filtering, escaping and extra key/values; the
 * terminal hook; concurrent threads and processes produce whole lines;
 * logging never disturbs the caller's last error; a command's start, events
 * and end; and only a regular file is ever written (a FIFO in the day file's
 * place neither blocks nor receives a line).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bkr/error.h"
#include "bkr/io.h"
#include "bkr/log.h"
#include "bkr/manifest.h"

#include "testutil.h"

struct fixture {
	char dir[256];        /**< private temp dir */
	char logdir[300];     /**< dir/logs (created by bkr_log_open) */
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	char tmpl[] = "/tmp/bkr-test-log-XXXXXX";

	assert_non_null(f);
	assert_non_null(mkdtemp(tmpl));
	snprintf(f->dir, sizeof(f->dir), "%s", tmpl);
	snprintf(f->logdir, sizeof(f->logdir), "%s/logs", f->dir);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	bkr_log_close();
	bkr_log_set_hook(NULL, NULL);
	bkr_log_set_level(BKR_LOG_INFO);
	tu_rmrf(f->dir);
	free(f);
	return 0;
}

/* Read today's file (or yesterday's, if the test straddled midnight UTC). */
static char *read_log(const struct fixture *f, int64_t t0)
{
	char path[512];
	uint8_t *data = NULL, *more = NULL;
	size_t len = 0, mlen = 0;
	int64_t t1 = bkr_time_now_ns();

	assert_int_equal(bkr_log_path(path, sizeof(path), f->logdir, t0), 0);
	if (bkr_io_read_file(path, 1u << 30, &data, &len) < 0)
		data = (uint8_t *)strdup(""), len = 0;
	assert_int_equal(bkr_log_path(path, sizeof(path), f->logdir, t1), 0);
	if (t1 / 86400000000000LL != t0 / 86400000000000LL &&
	    bkr_io_read_file(path, 1u << 30, &more, &mlen) == 0) {
		data = realloc(data, len + mlen + 1);
		memcpy(data + len, more, mlen + 1);
		free(more);
	}
	return (char *)data;
}

/* Split into lines; each must be a JSON object.  Returns the count. */
static size_t for_each_line(char *text, void (*fn)(cJSON *obj, void *ctx), void *ctx)
{
	size_t n = 0;
	char *save = NULL;
	assert_true(*text == '\0' || text[strlen(text) - 1] == '\n');
	for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		cJSON *obj = cJSON_Parse(line);
		if (!obj || !cJSON_IsObject(obj))
			fail_msg("not a JSON object: %s", line);
		if (fn)
			fn(obj, ctx);
		cJSON_Delete(obj);
		n++;
	}
	return n;
}

static const char *str(cJSON *o, const char *k)
{
	cJSON *it = cJSON_GetObjectItemCaseSensitive(o, k);
	assert_true(cJSON_IsString(it));
	return it->valuestring;
}

/* ---- basics ---------------------------------------------------------------------------- */

static void collect(cJSON *o, void *ctx)
{
	cJSON *arr = ctx;
	cJSON_AddItemToArray(arr, cJSON_Duplicate(o, true));
}

static void test_daily_file_json_lines(void **state)
{
	struct fixture *f = *state;
	int64_t t0 = bkr_time_now_ns(), t;
	cJSON *lines = cJSON_CreateArray(), *l;
	char *text, path[512];
	struct stat st;

	assert_int_equal(bkr_log_open(f->logdir, BKR_LOG_DEBUG), 0);
	bkr_log_info("backup", "backup %s done in %.1f s", "b1", 1.5);
	bkr_log_kv(BKR_LOG_WARN, "recover", (const char *[]){ "path", "a/\"b\"\n.json", "strategy", "git",
							      "level", "spoofed", NULL },
		   "file %d recovered", 7);
	bkr_log_debug("fs", "tab\there, ctl\x01 and backslash \\ and ünïcode");
	bkr_log_error(NULL, "no component");
	bkr_log_close();
	bkr_log_info("backup", "after close: not written");

	text = read_log(f, t0);
	assert_int_equal(for_each_line(text, collect, lines), 4);
	free(text);

	l = cJSON_GetArrayItem(lines, 0);
	assert_string_equal(str(l, "level"), "info");
	assert_string_equal(str(l, "component"), "backup");
	assert_string_equal(str(l, "message"), "backup b1 done in 1.5 s");
	assert_int_equal(cJSON_GetObjectItem(l, "pid")->valueint, getpid());
	assert_int_equal(bkr_time_parse(str(l, "time"), &t), 0);
	assert_true(t >= t0 - 1000 && t <= bkr_time_now_ns());

	l = cJSON_GetArrayItem(lines, 1);
	assert_string_equal(str(l, "level"), "warn"); /* the reserved key was not used */
	assert_string_equal(str(l, "message"), "file 7 recovered");
	assert_string_equal(str(l, "path"), "a/\"b\"\n.json");
	assert_string_equal(str(l, "strategy"), "git");

	l = cJSON_GetArrayItem(lines, 2);
	assert_string_equal(str(l, "level"), "debug");
	assert_string_equal(str(l, "message"), "tab\there, ctl\x01 and backslash \\ and ünïcode");

	l = cJSON_GetArrayItem(lines, 3);
	assert_string_equal(str(l, "level"), "error");
	assert_string_equal(str(l, "component"), "bkr");

	/* the file is named after the UTC day its line was written on (that of
	 * the first line's time: "now" may be the next day by here) */
	l = cJSON_GetArrayItem(lines, 0);
	assert_int_equal(bkr_time_parse(str(l, "time"), &t), 0);
	assert_int_equal(bkr_log_path(path, sizeof(path), f->logdir, t), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_true(S_ISREG(st.st_mode));
	cJSON_Delete(lines);
}

static void test_log_path(void **state)
{
	char p[64];
	(void)state;
	assert_int_equal(bkr_log_path(p, sizeof(p), "/var/log/bkr", 1795676400123456789LL), 0);
	assert_string_equal(p, "/var/log/bkr/bkr-2026-11-26.log");
	assert_int_equal(bkr_log_path(p, sizeof(p), "/l", 1795737599999999999LL), 0); /* 23:59:59.999 */
	assert_string_equal(p, "/l/bkr-2026-11-26.log");
	assert_int_equal(bkr_log_path(p, sizeof(p), "/l", 1795737600000000000LL), 0);
	assert_string_equal(p, "/l/bkr-2026-11-27.log");
	assert_int_equal(bkr_log_path(p, 10, "/var/log/bkr", 0), BKR_EINVAL);
}

static void test_level_filter(void **state)
{
	struct fixture *f = *state;
	int64_t t0 = bkr_time_now_ns();
	char *text;

	assert_int_equal(bkr_log_open(f->logdir, BKR_LOG_WARN), 0);
	bkr_log_debug("t", "d");
	bkr_log_info("t", "i");
	bkr_log_warn("t", "w");
	bkr_log_error("t", "e");
	bkr_log_set_level(BKR_LOG_DEBUG);
	bkr_log_debug("t", "d2");
	text = read_log(f, t0);
	assert_int_equal(for_each_line(text, NULL, NULL), 3);
	free(text);
}

static void test_level_names(void **state)
{
	bkr_log_level l;
	(void)state;
	for (int i = 0; i <= BKR_LOG_ERROR; i++) {
		assert_int_equal(bkr_log_level_parse(bkr_log_level_name((bkr_log_level)i), &l), 0);
		assert_int_equal(l, i);
	}
	assert_int_equal(bkr_log_level_parse("warning", &l), 0);
	assert_int_equal(l, BKR_LOG_WARN);
	assert_int_equal(bkr_log_level_parse("loud", &l), BKR_EINVAL);
	assert_non_null(strstr(bkr_error_message(), "'loud'"));
}

/* ---- hook ------------------------------------------------------------------------------- */

struct seen {
	int n;
	bkr_log_level last_level;
	char last_component[32];
	char last_message[128];
	char last_line[512];
};

static void hook(void *ctx, bkr_log_level level, const char *component, const char *message,
		 const char *json_line)
{
	struct seen *s = ctx;
	s->n++;
	s->last_level = level;
	snprintf(s->last_component, sizeof(s->last_component), "%s", component);
	snprintf(s->last_message, sizeof(s->last_message), "%s", message);
	snprintf(s->last_line, sizeof(s->last_line), "%s", json_line);
}

static void test_hook(void **state)
{
	struct fixture *f = *state;
	struct seen s = { 0 };
	int64_t t0 = bkr_time_now_ns();
	char *text;
	cJSON *o;

	/* no file: only the hook */
	bkr_log_set_hook(hook, &s);
	bkr_log_info("cli", "hello %s", "world");
	assert_int_equal(s.n, 1);
	assert_int_equal(s.last_level, BKR_LOG_INFO);
	assert_string_equal(s.last_component, "cli");
	assert_string_equal(s.last_message, "hello world");
	assert_null(strchr(s.last_line, '\n'));
	o = cJSON_Parse(s.last_line);
	assert_non_null(o);
	assert_string_equal(str(o, "message"), "hello world");
	cJSON_Delete(o);
	bkr_log_debug("cli", "filtered");
	assert_int_equal(s.n, 1);

	/* file and hook */
	assert_int_equal(bkr_log_open(f->logdir, BKR_LOG_INFO), 0);
	bkr_log_warn("cli", "both");
	assert_int_equal(s.n, 2);
	bkr_log_set_hook(NULL, NULL);
	bkr_log_warn("cli", "file only");
	assert_int_equal(s.n, 2);
	text = read_log(f, t0);
	assert_int_equal(for_each_line(text, NULL, NULL), 2);
	free(text);
}

static void test_errors(void **state)
{
	struct fixture *f = *state;
	char file[300];
	FILE *fp;

	/* a log directory below a regular file cannot be created */
	snprintf(file, sizeof(file), "%s/plain", f->dir);
	fp = fopen(file, "w");
	assert_non_null(fp);
	fclose(fp);
	snprintf(file, sizeof(file), "%s/plain/logs", f->dir);
	assert_true(bkr_log_open(file, BKR_LOG_INFO) < 0);
	assert_non_null(strstr(bkr_error_message(), "plain"));
	assert_int_equal(bkr_log_open("", BKR_LOG_INFO), BKR_EINVAL);
	assert_int_equal(bkr_log_open(NULL, BKR_LOG_INFO), BKR_EINVAL);

	/* logging with nowhere to go is a no-op, and never changes the last error */
	bkr_error_set(BKR_ECORRUPT, "the caller's message");
	bkr_log_error("x", "nothing configured");
	assert_int_equal(bkr_log_open(f->logdir, BKR_LOG_DEBUG), 0);
	bkr_error_set(BKR_ECORRUPT, "the caller's message");
	bkr_log_error("x", "to the file");
	assert_string_equal(bkr_error_message(), "the caller's message");
	assert_int_equal(bkr_error_last_code(), BKR_ECORRUPT);
}

static void test_write_failure_reported_once(void **state)
{
	struct fixture *f = *state;
	struct seen s = { 0 };

	assert_int_equal(bkr_log_open(f->logdir, BKR_LOG_INFO), 0);
	bkr_log_set_hook(hook, &s);
	/* the directory disappears before the day's file is first opened */
	assert_int_equal(rmdir(f->logdir), 0);
	bkr_error_set(BKR_EEXISTS, "keep me");
	bkr_log_info("t", "one");
	bkr_log_info("t", "two");
	/* both lines reach the hook, plus one report of the failure */
	assert_int_equal(s.n, 3);
	assert_string_equal(s.last_message, "two");
	assert_string_equal(bkr_error_message(), "keep me");
	/* it recovers once the directory is back (reopening resets the report) */
	assert_int_equal(bkr_log_open(f->logdir, BKR_LOG_INFO), 0);
	bkr_log_info("t", "three");
	assert_int_equal(s.n, 4);
}

/* ---- concurrency ------------------------------------------------------------------------- */

#define THREADS 8
#define PER_THREAD 400

struct worker {
	int id;
};

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	char big[3000];
	char tid[16], seq[16];

	memset(big, 'a' + w->id, sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	snprintf(tid, sizeof(tid), "%d", w->id);
	for (int i = 0; i < PER_THREAD; i++) {
		snprintf(seq, sizeof(seq), "%d", i);
		/* every 10th line is long (several KiB) */
		bkr_log_kv(BKR_LOG_INFO, "worker", (const char *[]){ "thread", tid, "seq", seq, NULL },
			   "%s", i % 10 == 0 ? big : "short line");
	}
	return NULL;
}

struct tally {
	int count[THREADS + 8][PER_THREAD];
};

static void tally_line(cJSON *o, void *ctx)
{
	struct tally *t = ctx;
	int th = atoi(str(o, "thread")), seq = atoi(str(o, "seq"));
	const char *msg = str(o, "message");
	assert_true(th >= 0 && th < THREADS + 8);
	assert_true(seq >= 0 && seq < PER_THREAD);
	if (seq % 10 == 0) {
		assert_int_equal(strlen(msg), 2999);
		for (size_t i = 0; i < 2999; i++)
			assert_int_equal(msg[i], 'a' + th);
	} else {
		assert_string_equal(msg, "short line");
	}
	t->count[th][seq]++;
}

static void test_threads_whole_lines(void **state)
{
	struct fixture *f = *state;
	pthread_t th[THREADS];
	struct worker w[THREADS];
	struct tally *t = calloc(1, sizeof(*t));
	int64_t t0 = bkr_time_now_ns();
	char *text;

	assert_int_equal(bkr_log_open(f->logdir, BKR_LOG_INFO), 0);
	for (int i = 0; i < THREADS; i++) {
		w[i].id = i;
		assert_int_equal(pthread_create(&th[i], NULL, worker_main, &w[i]), 0);
	}
	for (int i = 0; i < THREADS; i++)
		pthread_join(th[i], NULL);
	text = read_log(f, t0);
	assert_int_equal(for_each_line(text, tally_line, t), THREADS * PER_THREAD);
	for (int i = 0; i < THREADS; i++)
		for (int j = 0; j < PER_THREAD; j++)
			assert_int_equal(t->count[i][j], 1);
	free(text);
	free(t);
}

static void test_processes_whole_lines(void **state)
{
	struct fixture *f = *state;
	enum { PROCS = 4 };
	struct tally *t; /* allocated after the forks, so children leak nothing */
	int64_t t0 = bkr_time_now_ns();
	pid_t pids[PROCS];
	char *text;

	assert_int_equal(bkr_log_open(f->logdir, BKR_LOG_INFO), 0);
	for (int p = 0; p < PROCS; p++) {
		pids[p] = fork();
		assert_true(pids[p] >= 0);
		if (pids[p] == 0) {
			/* each process opens its own descriptor, as separate tools would */
			struct worker w = { 8 + p };
			bkr_log_close();
			if (bkr_log_open(f->logdir, BKR_LOG_INFO) < 0)
				_exit(2);
			worker_main(&w);
			bkr_log_close();
			_exit(0);
		}
	}
	for (int p = 0; p < PROCS; p++) {
		int st;
		assert_int_equal(waitpid(pids[p], &st, 0), pids[p]);
		assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	}
	t = calloc(1, sizeof(*t));
	assert_non_null(t);
	text = read_log(f, t0);
	assert_int_equal(for_each_line(text, tally_line, t), PROCS * PER_THREAD);
	for (int p = 0; p < PROCS; p++)
		for (int j = 0; j < PER_THREAD; j++)
			assert_int_equal(t->count[8 + p][j], 1);
	free(text);
	free(t);
}

/* ---- a command's log ----------------------------------------------------------------- */

struct cmd_lines {
	int n;
	char event[8][16];
	char command[8][16];
	char exit_status[8][8];
	bool reserved_kept;
};

static void cmd_line(cJSON *o, void *ctx)
{
	struct cmd_lines *c = ctx;
	cJSON *cmd = cJSON_GetObjectItemCaseSensitive(o, "command");
	cJSON *ev = cJSON_GetObjectItemCaseSensitive(o, "event");
	cJSON *ex = cJSON_GetObjectItemCaseSensitive(o, "exit");

	assert_true(c->n < 8);
	snprintf(c->event[c->n], sizeof(c->event[0]), "%s", cJSON_IsString(ev) ? ev->valuestring : "-");
	snprintf(c->command[c->n], sizeof(c->command[0]), "%s", cJSON_IsString(cmd) ? cmd->valuestring : "-");
	snprintf(c->exit_status[c->n], sizeof(c->exit_status[0]), "%s", cJSON_IsString(ex) ? ex->valuestring : "-");
	if (cJSON_IsString(cmd) && !strcmp(cmd->valuestring, "forged"))
		c->reserved_kept = true;
	c->n++;
}

static void test_command_events(void **state)
{
	struct fixture *f = *state;
	struct cmd_lines c = { 0 };
	int64_t t0 = bkr_time_now_ns();
	char *text;

	assert_int_equal(bkr_log_command_begin(f->logdir, BKR_LOG_INFO, "restore",
					       (const char *[]){ "args", "restore latest", NULL }), 0);
	/* "command" and "event" are the log's own members: a kv cannot forge them */
	bkr_log_event(BKR_LOG_INFO, "restore", "restored", (const char *[]){ "command", "forged", "files", "3", NULL },
		      "restored %d files", 3);
	bkr_log_info("restore", "a line without an event");
	bkr_log_command_end(6);
	bkr_log_info("restore", "after the end: no file");
	text = read_log(f, t0);
	assert_int_equal(for_each_line(text, cmd_line, &c), 4);
	free(text);
	assert_string_equal(c.event[0], "start");
	assert_string_equal(c.event[1], "restored");
	assert_string_equal(c.event[2], "-");
	assert_string_equal(c.event[3], "end");
	for (int i = 0; i < 4; i++)
		assert_string_equal(c.command[i], "restore");
	assert_string_equal(c.exit_status[3], "6");
	assert_false(c.reserved_kept);

	/* a second command in the same process starts afresh */
	memset(&c, 0, sizeof(c));
	assert_int_equal(bkr_log_command_begin(f->logdir, BKR_LOG_INFO, "verify", NULL), 0);
	bkr_log_command_end(0);
	text = read_log(f, t0);
	assert_int_equal(for_each_line(text, cmd_line, &c), 6);
	free(text);
	assert_string_equal(c.command[4], "verify");
	assert_string_equal(c.exit_status[5], "0");
	/* an end without a begin writes nothing */
	bkr_log_command_end(0);
}

static void test_default_dir(void **state)
{
	struct fixture *f = *state;
	char *old = getenv("XDG_STATE_HOME") ? strdup(getenv("XDG_STATE_HOME")) : NULL, *d, want[400];

	setenv("XDG_STATE_HOME", f->dir, 1);
	d = bkr_log_default_dir();
	snprintf(want, sizeof(want), "%s/bkr", f->dir);
	assert_string_equal(d, want);
	free(d);
	/* NULL: the default directory, created */
	assert_int_equal(bkr_log_command_begin(NULL, BKR_LOG_INFO, "init", NULL), 0);
	bkr_log_command_end(0);
	assert_int_equal(access(want, W_OK), 0);
	if (old)
		setenv("XDG_STATE_HOME", old, 1);
	else
		unsetenv("XDG_STATE_HOME");
	free(old);
}

static void test_fifo_never_written(void **state)
{
	struct fixture *f = *state;
	struct seen s = { 0 };
	char path[512], next[512], buf[64];
	int rd, rd2;
	int64_t now = bkr_time_now_ns();

	assert_int_equal(mkdir(f->logdir, 0755), 0);
	/* today's file and tomorrow's are FIFOs: the lines below may be written
	 * after midnight UTC (into a regular file, had only today's been one) */
	assert_int_equal(bkr_log_path(path, sizeof(path), f->logdir, now), 0);
	assert_int_equal(mkfifo(path, 0644), 0);
	assert_int_equal(bkr_log_path(next, sizeof(next), f->logdir, now + 86400000000000LL), 0);
	assert_int_equal(mkfifo(next, 0644), 0);
	bkr_log_set_hook(hook, &s);
	assert_int_equal(bkr_log_open(f->logdir, BKR_LOG_INFO), 0);
	/* no reader: the open must not block (the test would hang) */
	bkr_log_info("t", "not into a FIFO");
	assert_int_equal(s.n, 2); /* the line itself, then the failure (once) */
	assert_non_null(strstr(s.last_message, "not a regular file"));
	bkr_log_close();
	/* with a reader the FIFO could be opened: still nothing is written to it */
	rd = open(path, O_RDONLY | O_NONBLOCK);
	assert_true(rd >= 0);
	rd2 = open(next, O_RDONLY | O_NONBLOCK);
	assert_true(rd2 >= 0);
	assert_int_equal(bkr_log_open(f->logdir, BKR_LOG_INFO), 0);
	s.n = 0;
	bkr_log_info("t", "not into a pipe either");
	assert_int_equal(s.n, 2);
	assert_non_null(strstr(s.last_message, "not a regular file"));
	assert_true(read(rd, buf, sizeof(buf)) <= 0);
	assert_true(read(rd2, buf, sizeof(buf)) <= 0);
	close(rd);
	close(rd2);
	bkr_log_close();
	bkr_log_set_hook(NULL, NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_daily_file_json_lines, setup, teardown),
		cmocka_unit_test(test_log_path),
		cmocka_unit_test_setup_teardown(test_level_filter, setup, teardown),
		cmocka_unit_test(test_level_names),
		cmocka_unit_test_setup_teardown(test_hook, setup, teardown),
		cmocka_unit_test_setup_teardown(test_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_write_failure_reported_once, setup, teardown),
		cmocka_unit_test_setup_teardown(test_threads_whole_lines, setup, teardown),
		cmocka_unit_test_setup_teardown(test_processes_whole_lines, setup, teardown),
		cmocka_unit_test_setup_teardown(test_command_events, setup, teardown),
		cmocka_unit_test_setup_teardown(test_default_dir, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fifo_never_written, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
