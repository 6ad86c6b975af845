/** @file
 * Unit tests of the regenerate and manual strategies with real scripts: one
 * that rebuilds the file, one that hangs past its timeout (its process group
 * is killed), one that fails, one that writes invalid output; the manual
 * alert command writes its stdin to a file.  No repository: runs are staged.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "../../engine/recover/recover_i.h"
#include "bkr/error.h"
#include "bkr/utf8.h"
#include "test_recover_util.h"

typedef struct {
	char *dir, ws[PATH_MAX], bin[PATH_MAX], stage[PATH_MAX];
	bkr_recover *rc;
} fx;

static int setup(void **state)
{
	fx *f = calloc(1, sizeof(*f));
	char json[8192];
	bkr_recover_setup s = BKR_RECOVER_SETUP_INIT;

	f->dir = tu_mkdtemp();
	snprintf(f->ws, sizeof(f->ws), "%s/ws", f->dir);
	snprintf(f->bin, sizeof(f->bin), "%s/bin", f->dir);
	snprintf(f->stage, sizeof(f->stage), "%s/stage", f->dir);
	tu_mkdirs(f->ws);
	tu_writes(f->bin, "good.sh", "#!/bin/sh\nprintf '{\"rebuilt\":\"%s\",\"id\":\"%s\"}\\n' \"$1\" \"$3\" > \"$2\"\n");
	tu_writes(f->bin, "hang.sh", "#!/bin/sh\nsleep 30 &\necho $! > \"$1\"\nsleep 30\n");
	tu_writes(f->bin, "fail.sh", "#!/bin/sh\necho 'source data is gone' >&2\nexit 3\n");
	tu_writes(f->bin, "bad.sh", "#!/bin/sh\nprintf '{\"half\": ' > \"$2\"\n");
	tu_writes(f->bin, "silent.sh", "#!/bin/sh\nexit 0\n");
	tu_writes(f->bin, "alert.sh", "#!/bin/sh\ncat > \"$1\"\necho run >> \"$1.count\"\n");
	tu_writes(f->bin, "fifo.sh", "#!/bin/sh\nmkfifo \"$1\"\n");
	/* leak.sh OUTPUT DIR: 20 MB in OUTPUT, and a process outside its group
	 * (setsid; leak.sh exits once it is) holding OUTPUT open, which empties
	 * it when DIR/go is written to and then writes DIR/done */
	tu_writes(f->bin, "leak.sh",
		  "#!/bin/sh\nhead -c 20000000 /dev/zero | tr '\\0' x > \"$1\"\n"
		  "mkfifo \"$2/go\" \"$2/done\" \"$2/ready\"\nexec 3<>\"$1\"\n"
		  "setsid sh -c 'echo $$ > \"$1/leak.pid\"; echo > \"$1/ready\"; read x < \"$1/go\"; "
		  "truncate -s 0 /proc/self/fd/3; echo ok > \"$1/done\"' leak \"$2\" </dev/null >/dev/null 2>&1 &\n"
		  "read x < \"$2/ready\"\n");
	tu_sh("chmod +x %s/*.sh", f->bin);
	snprintf(json, sizeof(json),
		 "{\"rules\":["
		 "{\"pattern\":\"ok/{id}.json\",\"strategies\":[{\"type\":\"regenerate\",\"command\":[\"%s/good.sh\",\"{path}\",\"{output}\",\"{id}\"]}]},"
		 "{\"pattern\":\"hang/{id}.json\",\"strategies\":["
		 "{\"type\":\"regenerate\",\"command\":[\"%s/hang.sh\",\"%s/hang.pid\"],\"timeout\":1},"
		 "{\"type\":\"regenerate\",\"command\":[\"%s/good.sh\",\"{path}\",\"{output}\",\"{id}\"]}]},"
		 "{\"pattern\":\"fail/{id}.json\",\"strategies\":["
		 "{\"type\":\"regenerate\",\"command\":[\"%s/fail.sh\"]},"
		 "{\"type\":\"regenerate\",\"command\":[\"%s/bad.sh\",\"{path}\",\"{output}\"]},"
		 "{\"type\":\"regenerate\",\"command\":[\"%s/silent.sh\"]},"
		 "{\"type\":\"regenerate\",\"command\":[\"/nonexistent/tool\"]},"
		 "{\"type\":\"manual\",\"command\":[\"%s/alert.sh\",\"%s/alert.json\"]}]},"
		 "{\"pattern\":\"fifo/{id}.json\",\"strategies\":["
		 "{\"type\":\"regenerate\",\"command\":[\"%s/fifo.sh\",\"{output}\"],\"timeout\":2},"
		 "{\"type\":\"regenerate\",\"command\":[\"%s/good.sh\",\"{path}\",\"{output}\",\"{id}\"]}]},"
		 "{\"pattern\":\"down/{id}.json\",\"strategies\":[{\"type\":\"manual\",\"command\":[\"%s/fail.sh\"]}]},"
		 "{\"pattern\":\"slow/{id}.json\",\"strategies\":[{\"type\":\"manual\",\"timeout\":4,"
		 "\"command\":[\"sh\",\"-c\",\"echo run >> %s/slow.count; exec sleep 600\",\"{path}\"]}]},"
		 "{\"pattern\":\"leak/{id}.txt\",\"strategies\":["
		 "{\"type\":\"regenerate\",\"command\":[\"%s/leak.sh\",\"{output}\",\"%s\"]}]}],"
		 "\"validators\":[{\"pattern\":\"leak/*\",\"type\":\"command\","
		 "\"command\":[\"sh\",\"-c\",\"echo > %s/go && cat %s/done >/dev/null\"]}]}",
		 f->bin, f->bin, f->dir, f->bin, f->bin, f->bin, f->bin, f->bin, f->dir, f->bin, f->bin, f->bin, f->dir,
		 f->bin, f->dir, f->dir, f->dir);
	s.workspace = f->ws;
	s.recovery_json = json;
	s.staging_dir = f->stage;
	s.hostname = "testhost";
	assert_int_equal(bkr_recover_new(&f->rc, &s, NULL), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	fx *f = *state;
	char *pid = tu_read(f->dir, "leak.pid", NULL);
	if (pid)
		kill(atoi(pid), SIGKILL); /* test_output_shrinks' process, if it still waits */
	free(pid);
	bkr_recover_free(f->rc);
	tu_rmrf(f->dir);
	free(f->dir);
	free(f);
	return 0;
}

static cJSON *recover(fx *f, const char *path, bool apply, bkr_recover_report **rep)
{
	bkr_recover_options o = BKR_RECOVER_OPTIONS_INIT;
	o.apply = apply;
	return tu_recover(f->rc, path, &o, rep);
}

static void test_regenerate_ok(void **state)
{
	fx *f = *state;
	bkr_recover_report *rep;
	cJSON *root = recover(f, "ok/c42.json", true, &rep), *e;
	const bkr_recover_summary *s = bkr_recover_report_summary(rep);
	char *got, expect[PATH_MAX * 2], staged[PATH_MAX];

	assert_int_equal(s->files, 1);
	assert_int_equal(s->recovered, 1);
	assert_int_equal(s->applied, 1);
	assert_false(s->stored);
	assert_non_null(s->staged_dir); /* no repository: staged */
	e = tu_report_file(root, "ok/c42.json");
	assert_non_null(e);
	assert_string_equal(tu_str(e, "status"), "recovered");
	assert_string_equal(tu_str(e, "strategy"), "regenerate");
	assert_string_equal(tu_attempt(e, 0, "result"), "recovered");
	got = tu_read(f->ws, "ok/c42.json", NULL);
	snprintf(expect, sizeof(expect), "{\"rebuilt\":\"%s/ok/c42.json\",\"id\":\"c42\"}\n", f->ws);
	assert_string_equal(got, expect);
	free(got);
	/* the staged copy and report */
	snprintf(staged, sizeof(staged), "%s/files", s->staged_dir);
	tu_assert_file(staged, "ok/c42.json", expect);
	assert_true(tu_exists(s->staged_dir, "report.json"));
	assert_string_equal(tu_str(cJSON_GetObjectItem(root, "storage"), "kind"), "staged");
	/* a healthy file is recovered into the run but never applied */
	cJSON_Delete(root);
	bkr_recover_report_free(rep);
	tu_writes(f->ws, "ok/c43.json", "{\"mine\":true}");
	root = recover(f, "ok/c43.json", true, &rep);
	e = tu_report_file(root, "ok/c43.json");
	assert_string_equal(tu_str(e, "kind"), "healthy");
	assert_false(cJSON_IsTrue(cJSON_GetObjectItem(e, "applied")));
	tu_assert_file(f->ws, "ok/c43.json", "{\"mine\":true}");
	cJSON_Delete(root);
	bkr_recover_report_free(rep);
}

/*
 * A command's output replacing a set-ID file is not made set-ID: it took
 * the damaged file's mode whole, so a 6755 file rebuilt by a command became
 * a set-user-ID file with content no one made set-ID.  The report says so.
 */
static void test_regenerate_setid(void **state)
{
	fx *f = *state;
	bkr_recover_report *rep;
	char p[PATH_MAX], staged[PATH_MAX];
	struct stat st;

	tu_writes(f->ws, "ok/c44.json", "{\"half\": ");
	snprintf(p, sizeof(p), "%s/ok/c44.json", f->ws);
	assert_int_equal(chmod(p, 06754), 0);
	cJSON *root = recover(f, "ok/c44.json", true, &rep), *e = tu_report_file(root, "ok/c44.json");
	assert_string_equal(tu_str(e, "status"), "recovered");
	assert_true(cJSON_IsTrue(cJSON_GetObjectItem(e, "applied")));
	assert_int_equal(stat(p, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0754);
	assert_non_null(tu_str(e, "setid_dropped"));
	assert_non_null(strstr(tu_str(e, "setid_dropped"), "set-ID"));
	/* the run's copy too */
	snprintf(staged, sizeof(staged), "%s/files/ok/c44.json", bkr_recover_report_summary(rep)->staged_dir);
	assert_int_equal(stat(staged, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0754);
	cJSON_Delete(root);
	bkr_recover_report_free(rep);
}

static void test_regenerate_hang(void **state)
{
	fx *f = *state;
	bkr_recover_report *rep;
	cJSON *root, *e;
	char *pid = NULL, stat[64], pidfile[PATH_MAX];
	int attempt, i;
	pid_t child;

	/* hang.sh writes its background child's pid once it runs; the 1 s timeout
	 * counts from the fork, and under valgrind on a loaded machine it passed
	 * before the script got that far (no hang.pid: the check of the group kill
	 * had nothing to check).  Then the run is repeated, each one timed out. */
	snprintf(pidfile, sizeof(pidfile), "%s/hang.pid", f->dir);
	for (attempt = 0;; attempt++) {
		unlink(pidfile);
		root = recover(f, "hang/h1.json", false, &rep);
		e = tu_report_file(root, "hang/h1.json");
		/* the rule's 1 s timeout ended it (not the script, which sleeps 30 s) */
		assert_string_equal(tu_attempt(e, 0, "result"), "timeout");
		assert_non_null(strstr(tu_attempt(e, 0, "error"), "timed out after 1.0s"));
		assert_string_equal(tu_attempt(e, 1, "result"), "recovered");
		assert_string_equal(tu_str(e, "status"), "recovered");
		/* dry run: the workspace is untouched */
		assert_false(tu_exists(f->ws, "hang/h1.json"));
		pid = tu_read(f->dir, "hang.pid", NULL);
		if (pid && strchr(pid, '\n') && atoi(pid) > 0)
			break;
		free(pid);
		cJSON_Delete(root);
		bkr_recover_report_free(rep);
		assert_true(attempt < 20); /* the script never ran as far as its second line */
	}
	/* the background child of the hanging script was killed with its group:
	 * within 10 s it is gone, or a zombie not reaped yet (a lazy init), or
	 * its pid is some other program's (reused); a sleep still asleep is not */
	child = (pid_t)atoi(pid);
	snprintf(stat, sizeof(stat), "/proc/%d/stat", (int)child);
	for (i = 0;; i++) {
		char *st = tu_read(NULL, stat, NULL);
		bool alive = st && strstr(st, "(sleep) ") && !strstr(st, ") Z ");
		free(st);
		if (!alive)
			break;
		assert_true(i < 1000);
		usleep(10000);
	}
	free(pid);
	cJSON_Delete(root);
	bkr_recover_report_free(rep);
}

static void test_fail_then_manual(void **state)
{
	fx *f = *state;
	bkr_recover_report *rep;
	cJSON *root = recover(f, "fail/x9.json", true, &rep), *e, *alert;
	const bkr_recover_summary *s = bkr_recover_report_summary(rep);
	char *text;

	e = tu_report_file(root, "fail/x9.json");
	assert_int_equal(tu_nattempts(e), 5);
	assert_string_equal(tu_attempt(e, 0, "result"), "failed");
	assert_non_null(strstr(tu_attempt(e, 0, "error"), "status 3: source data is gone"));
	assert_string_equal(tu_attempt(e, 1, "result"), "invalid");
	assert_non_null(strstr(tu_attempt(e, 1, "error"), "not valid JSON"));
	assert_non_null(strstr(tu_attempt(e, 2, "error"), "wrote nothing"));
	assert_non_null(strstr(tu_attempt(e, 3, "error"), "could not be executed"));
	assert_string_equal(tu_attempt(e, 4, "result"), "manual");
	assert_string_equal(tu_str(e, "status"), "manual");
	assert_int_equal(s->manual, 1);
	assert_int_equal(s->recovered, 0);
	assert_false(tu_exists(f->ws, "fail/x9.json"));
	/* the alert got a JSON description on stdin */
	text = tu_read(f->dir, "alert.json", NULL);
	assert_non_null(text);
	alert = cJSON_Parse(text);
	assert_non_null(alert);
	assert_string_equal(tu_str(alert, "path"), "fail/x9.json");
	assert_string_equal(tu_str(alert, "event"), "bkr.recovery.manual");
	assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(alert, "attempts")), 4);
	cJSON_Delete(alert);
	free(text);
	cJSON_Delete(root);
	bkr_recover_report_free(rep);

	/* a name that is not UTF-8: the description is still UTF-8 JSON (U+FFFD
	 * and "path_hex", as in the report), which an alert command that decodes
	 * its stdin strictly can read; the raw byte made such a command fail and
	 * no one was told */
	root = recover(f, "fail/x\xff.json", true, &rep);
	assert_string_equal(tu_str(tu_report_file(root, "fail/x\xef\xbf\xbd.json"), "status"), "manual");
	text = tu_read(f->dir, "alert.json", NULL);
	assert_non_null(text);
	assert_true(bkr_utf8_valid(text, strlen(text)));
	alert = cJSON_Parse(text);
	assert_non_null(alert);
	assert_string_equal(tu_str(alert, "path"), "fail/x\xef\xbf\xbd.json");
	assert_string_equal(tu_str(alert, "path_hex"), "6661696c2f78ff2e6a736f6e");
	cJSON_Delete(alert);
	free(text);
	cJSON_Delete(root);
	bkr_recover_report_free(rep);
}

/*
 * An alert that could not be delivered asks no person: the file is failed
 * and says so (it counted as "1 need a person, 0 failed", exit status as if
 * someone had been told).
 */
static void test_alert_failed(void **state)
{
	fx *f = *state;
	bkr_recover_report *rep;
	cJSON *root = recover(f, "down/x1.json", true, &rep), *e;
	const bkr_recover_summary *s = bkr_recover_report_summary(rep);

	e = tu_report_file(root, "down/x1.json");
	assert_int_equal(tu_nattempts(e), 1);
	assert_string_equal(tu_attempt(e, 0, "result"), "alert_failed");
	assert_non_null(strstr(tu_attempt(e, 0, "error"), "status 3: source data is gone"));
	assert_string_equal(tu_str(e, "status"), "failed");
	assert_non_null(strstr(tu_str(e, "error"), "the alert was not delivered"));
	assert_int_equal(s->manual, 0);
	assert_int_equal(s->failed, 1);
	cJSON_Delete(root);
	bkr_recover_report_free(rep);

	/* a dry run sends no alert: recorded as needing a person */
	root = recover(f, "down/x1.json", false, &rep);
	e = tu_report_file(root, "down/x1.json");
	assert_string_equal(tu_attempt(e, 0, "result"), "manual");
	assert_string_equal(tu_str(e, "status"), "manual");
	assert_int_equal(bkr_recover_report_summary(rep)->manual, 1);
	assert_int_equal(bkr_recover_report_summary(rep)->failed, 0);
	cJSON_Delete(root);
	bkr_recover_report_free(rep);
}

/*
 * Three files that need a person, one alert command line: one alert for the
 * run, not one a file (200 files made 200 alert commands), whose
 * description names them all - "files" each with its attempts, "count",
 * "message" naming them - and keeps the first's "path" and "attempts" as a
 * description of one file had them
 */
static void test_alert_once(void **state)
{
	fx *f = *state;
	bkr_recover_options o = BKR_RECOVER_OPTIONS_INIT;
	bkr_recover_report *rep = NULL;
	const char *names[] = { "fail/y1.json", "fail/y2.json", "fail/y3.json" };
	char dir[PATH_MAX + 8], want[512], *text, *count;
	cJSON *root, *alert, *files;

	snprintf(dir, sizeof(dir), "%s/fail", f->ws);
	tu_mkdirs(dir);
	for (size_t i = 0; i < 3; i++)
		tu_writes(f->ws, names[i], "not json");
	o.apply = true;
	assert_int_equal(bkr_recover_batch(f->rc, &o, &rep), 0);
	root = cJSON_Parse(bkr_recover_report_json(rep));
	assert_non_null(root);
	for (size_t i = 0; i < 3; i++) {
		cJSON *e = tu_report_file(root, names[i]);
		assert_string_equal(tu_attempt(e, 4, "result"), "manual");
		assert_string_equal(tu_str(e, "status"), "manual");
	}
	assert_int_equal(bkr_recover_report_summary(rep)->manual, 3);
	assert_int_equal(bkr_recover_report_summary(rep)->failed, 0);
	count = tu_read(f->dir, "alert.json.count", NULL);
	assert_non_null(count);
	assert_string_equal(count, "run\n");
	text = tu_read(f->dir, "alert.json", NULL);
	assert_non_null(text);
	assert_non_null(alert = cJSON_Parse(text));
	assert_string_equal(tu_str(alert, "event"), "bkr.recovery.manual");
	assert_int_equal(cJSON_GetObjectItem(alert, "count")->valueint, 3);
	snprintf(want, sizeof(want), "3 files need a person: recovery run %s could not recover them: fail/y1.json, "
		 "fail/y2.json, fail/y3.json", tu_str(alert, "run_id"));
	assert_string_equal(tu_str(alert, "message"), want);
	assert_string_equal(tu_str(alert, "path"), "fail/y1.json");
	assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(alert, "attempts")), 4);
	files = cJSON_GetObjectItem(alert, "files");
	assert_int_equal(cJSON_GetArraySize(files), 3);
	for (int i = 0; i < 3; i++) {
		cJSON *x = cJSON_GetArrayItem(files, i);
		assert_string_equal(tu_str(x, "path"), names[i]);
		snprintf(want, sizeof(want), "%s/%s", f->ws, names[i]);
		assert_string_equal(tu_str(x, "absolute_path"), want);
		assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(x, "attempts")), 4);
	}
	cJSON_Delete(alert);
	free(text);
	free(count);
	cJSON_Delete(root);
	bkr_recover_report_free(rep);
}

/*
 * An alert command that never exits: a run waited its timeout for it once
 * for every file that needed a person (200 files, 200 timeouts, the run and
 * its locks held for hours).  Once it timed out it is not run again in the
 * run: its other alerts (a command line naming {path} is one alert a file)
 * fail at once, naming the file it timed out on, and every file is failed
 * (no one was asked).
 */
static void test_alert_hung(void **state)
{
	fx *f = *state;
	bkr_recover_options o = BKR_RECOVER_OPTIONS_INIT;
	bkr_recover_report *rep = NULL;
	const char *names[] = { "slow/a.json", "slow/b.json", "slow/c.json" };
	const char *hung = NULL;
	char dir[PATH_MAX + 8], want[256], *count;
	cJSON *root;
	size_t timed_out = 0, not_run = 0;

	snprintf(dir, sizeof(dir), "%s/slow", f->ws);
	tu_mkdirs(dir);
	for (size_t i = 0; i < 3; i++)
		tu_writes(f->ws, names[i], "not json");
	o.apply = true;
	assert_int_equal(bkr_recover_batch(f->rc, &o, &rep), 0);
	root = cJSON_Parse(bkr_recover_report_json(rep));
	assert_non_null(root);
	for (size_t i = 0; i < 3; i++) {
		cJSON *e = tu_report_file(root, names[i]);
		assert_int_equal(tu_nattempts(e), 1);
		assert_string_equal(tu_attempt(e, 0, "result"), "alert_failed");
		assert_string_equal(tu_str(e, "status"), "failed");
		if (strstr(tu_attempt(e, 0, "error"), "alert command timed out after 4.0s")) {
			timed_out++;
			hung = names[i];
		}
	}
	assert_int_equal(timed_out, 1);
	snprintf(want, sizeof(want), "alert command not run: it timed out on the alert for %s earlier in this run", hung);
	for (size_t i = 0; i < 3; i++)
		if (strcmp(names[i], hung) != 0 && !strcmp(tu_attempt(tu_report_file(root, names[i]), 0, "error"), want))
			not_run++;
	assert_int_equal(not_run, 2);
	assert_int_equal(bkr_recover_report_summary(rep)->failed, 3);
	assert_int_equal(bkr_recover_report_summary(rep)->manual, 0);
	/* run once, not once a file (the 4 s timeout leaves sh time to count
	 * itself on a loaded machine: 2 s was a race) */
	count = tu_read(f->dir, "slow.count", NULL);
	assert_non_null(count);
	assert_string_equal(count, "run\n");
	free(count);
	cJSON_Delete(root);
	bkr_recover_report_free(rep);
}

static void test_hostile_paths(void **state)
{
	fx *f = *state;
	bkr_recover_report *rep = NULL;
	bkr_recover_options o = BKR_RECOVER_OPTIONS_INIT;
	char outside[PATH_MAX], link[PATH_MAX];
	cJSON *root, *e;

	o.apply = true;
	assert_int_equal(bkr_recover_file(f->rc, "../escape.json", &o, &rep), BKR_EINVAL);
	assert_int_equal(bkr_recover_file(f->rc, "/etc/passwd", &o, &rep), BKR_EINVAL);
	/* ok/ is a symlink pointing out of the workspace: nothing is written there */
	snprintf(outside, sizeof(outside), "%s/outside", f->dir);
	tu_mkdirs(outside);
	tu_sh("rm -rf %s/ok", f->ws);
	snprintf(link, sizeof(link), "%s/ok", f->ws);
	assert_int_equal(symlink(outside, link), 0);
	root = tu_recover(f->rc, "ok/evil.json", &o, &rep);
	e = tu_report_file(root, "ok/evil.json");
	assert_false(cJSON_IsTrue(cJSON_GetObjectItem(e, "applied")));
	assert_non_null(strstr(tu_str(e, "apply_result"), "symlink"));
	assert_false(tu_exists(outside, "evil.json"));
	cJSON_Delete(root);
	bkr_recover_report_free(rep);
}

/* A command that leaves a FIFO at {output}: opening it blocked bkr forever
 * (no timeout applies once the command has exited).  It is not a regular
 * file: the attempt fails and the next strategy runs. */
static void test_output_fifo(void **state)
{
	fx *f = *state;
	bkr_recover_report *rep;
	cJSON *root, *e;

	alarm(20); /* the old code never returns: end the test instead of hanging */
	root = recover(f, "fifo/q1.json", false, &rep);
	alarm(0);
	e = tu_report_file(root, "fifo/q1.json");
	assert_string_equal(tu_attempt(e, 0, "result"), "failed");
	assert_non_null(strstr(tu_attempt(e, 0, "error"), "not a regular file"));
	assert_string_equal(tu_attempt(e, 1, "result"), "recovered");
	assert_string_equal(tu_str(e, "status"), "recovered");
	cJSON_Delete(root);
	bkr_recover_report_free(rep);
}

/* A command that exits 0 but leaves a process outside its group (setsid)
 * holding {output} open: an output over 16 MiB was mapped as it was, so when
 * that process emptied the file (here once the validator had read it), the
 * apply read the mapping past the file's end and bkr died of SIGBUS.  The
 * output is copied now, as a live file is (bkr_rec_read_at): the bytes
 * validated are the bytes written. */
static void test_output_shrinks(void **state)
{
	fx *f = *state;
	bkr_recover_report *rep;
	cJSON *root, *e;
	struct stat st;
	char path[PATH_MAX];

	root = recover(f, "leak/l1.txt", true, &rep);
	e = tu_report_file(root, "leak/l1.txt");
	if (strcmp(tu_str(e, "status"), "recovered") != 0)
		fail_msg("not recovered: %s", tu_attempt(e, 0, "error"));
	snprintf(path, sizeof(path), "%s/leak/l1.txt", f->ws);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_size, 20000000);
	assert_int_equal(tu_sh("tr -d x < %s | wc -c | grep -qx 0", path), 0);
	cJSON_Delete(root);
	bkr_recover_report_free(rep);
}

static void test_spawn(void **state)
{
	bkr_rec_proc p;
	char *argv[] = { "cat", NULL };
	(void)state;
	assert_int_equal(bkr_rec_spawn(argv, "hello", 5, 5000, &p), 0);
	assert_false(p.timed_out);
	assert_string_equal(p.output, "hello");
	bkr_rec_proc_free(&p);
	char *big = malloc(1 << 20);
	memset(big, 'x', 1 << 20);
	char *tru[] = { "true", NULL }; /* never reads stdin: no SIGPIPE for us */
	assert_int_equal(bkr_rec_spawn(tru, big, 1 << 20, 5000, &p), 0);
	assert_true(WIFEXITED(p.status) && WEXITSTATUS(p.status) == 0);
	bkr_rec_proc_free(&p);
	free(big);
}

/* A timeout of 25 days or more: the remaining time was kept in an int, which
 * went negative, and the command "timed out" at once. */
static void test_spawn_long_timeout(void **state)
{
	bkr_rec_proc p;
	char *argv[] = { "sh", "-c", "echo done", NULL };
	(void)state;
	assert_int_equal(bkr_rec_spawn(argv, NULL, 0, 30LL * 86400 * 1000, &p), 0);
	assert_false(p.timed_out);
	assert_true(WIFEXITED(p.status) && WEXITSTATUS(p.status) == 0);
	assert_string_equal(p.output, "done\n");
	bkr_rec_proc_free(&p);
	assert_int_equal(bkr_rec_spawn(argv, NULL, 0, INT64_MAX, &p), 0);
	assert_false(p.timed_out);
	bkr_rec_proc_free(&p);
}

/* A command that exits 0 at once but leaves a background child holding its
 * stdout: bkr waited for the pipe to close and reported "timed out".  The exit
 * decides now; the child is killed with the group.  The child outlives the
 * timeout, so waiting for the pipe shows as timed_out, not as elapsed time
 * (a bound on that failed on a loaded machine); the timeout is long enough
 * for sh to start there. */
static void test_spawn_background_child(void **state)
{
	bkr_rec_proc p;
	char *argv[] = { "sh", "-c", "echo out; sleep 600 & exit 0", NULL };
	(void)state;
	assert_int_equal(bkr_rec_spawn(argv, NULL, 0, 60000, &p), 0);
	assert_false(p.timed_out);
	assert_true(WIFEXITED(p.status) && WEXITSTATUS(p.status) == 0);
	assert_string_equal(p.output, "out\n");
	bkr_rec_proc_free(&p);
}

/* An alert command that prints a megabyte, then its error, and fails: only
 * the first 4 KiB were kept, so the "last line" quoted was one of the
 * megabyte.  The tail is kept now: the quoted line is the real last one. */
static void test_spawn_keeps_tail(void **state)
{
	bkr_rec_proc p;
	char *argv[] = { "sh", "-c",
			 "head -c 1048576 /dev/zero | tr '\\0' 'x'; echo; echo 'the pager said: quota exceeded' >&2; exit 4",
			 NULL };
	char *d;
	(void)state;
	assert_int_equal(bkr_rec_spawn(argv, NULL, 0, 60000, &p), 0);
	assert_false(p.timed_out);
	assert_true(WIFEXITED(p.status) && WEXITSTATUS(p.status) == 4);
	assert_true(strlen(p.output) == 4096);
	assert_non_null(strstr(p.output, "xx\nthe pager said: quota exceeded\n"));
	d = bkr_rec_proc_describe("alert command", &p, 60000);
	assert_non_null(d);
	assert_string_equal(d, "alert command exited with status 4: the pager said: quota exceeded");
	free(d);
	bkr_rec_proc_free(&p);
}

/* A command whose output holds NUL bytes (a binary progress record, a
 * UTF-16 message): the output was a C string, so what it said after the
 * first NUL - its error - was lost, and the line quoted was the one before
 * it.  The bytes are kept (output_len), the quoted line is the last one, a
 * NUL in it written as U+2400. */
static void test_spawn_output_nul(void **state)
{
	bkr_rec_proc p;
	char *argv[] = { "sh", "-c", "printf 'progress\\000\\001\\nthe pager said:\\000quota exceeded\\n'; exit 3", NULL };
	char *d;
	(void)state;
	assert_int_equal(bkr_rec_spawn(argv, NULL, 0, 60000, &p), 0);
	assert_true(WIFEXITED(p.status) && WEXITSTATUS(p.status) == 3);
	assert_int_equal(p.output_len, 42);
	assert_memory_equal(p.output, "progress\0\1\nthe pager said:\0quota exceeded\n", 42);
	d = bkr_rec_proc_describe("alert command", &p, 60000);
	assert_non_null(d);
	assert_string_equal(d, "alert command exited with status 3: the pager said:\xe2\x90\x80quota exceeded");
	free(d);
	bkr_rec_proc_free(&p);
}

/* A failing command's last line is quoted up to 300 bytes, cut at a
 * character: the cut fell inside a UTF-8 sequence, so a line of valid UTF-8
 * became a message that is not (U+FFFD and error_hex in the report). */
static void test_describe_cut_utf8(void **state)
{
	bkr_rec_proc p = { 0 };
	char line[400], *d;
	(void)state;
	memset(line, 'a', 299);
	memcpy(line + 299, "\xc3\xa9tail\n", 8); /* an e-acute across byte 300 */
	p.output = line;
	p.output_len = 307;
	p.status = 1 << 8; /* exited with status 1 */
	d = bkr_rec_proc_describe("alert command", &p, 1000);
	assert_non_null(d);
	assert_true(bkr_utf8_valid(d, strlen(d)));
	assert_int_equal(strlen(d), strlen("alert command exited with status 1: ") + 299);
	free(d);
	/* a line that fits whole keeps its last character */
	p.output = "no space left on device \xc3\xa9\n";
	p.output_len = strlen(p.output);
	d = bkr_rec_proc_describe("alert command", &p, 1000);
	assert_string_equal(d, "alert command exited with status 1: no space left on device \xc3\xa9");
	free(d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_regenerate_ok, setup, teardown),
		cmocka_unit_test_setup_teardown(test_regenerate_setid, setup, teardown),
		cmocka_unit_test_setup_teardown(test_regenerate_hang, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fail_then_manual, setup, teardown),
		cmocka_unit_test_setup_teardown(test_alert_failed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_alert_once, setup, teardown),
		cmocka_unit_test_setup_teardown(test_alert_hung, setup, teardown),
		cmocka_unit_test_setup_teardown(test_hostile_paths, setup, teardown),
		cmocka_unit_test_setup_teardown(test_output_fifo, setup, teardown),
		cmocka_unit_test_setup_teardown(test_output_shrinks, setup, teardown),
		cmocka_unit_test(test_spawn),
		cmocka_unit_test(test_spawn_long_timeout),
		cmocka_unit_test(test_spawn_background_child),
		cmocka_unit_test(test_spawn_keeps_tail),
		cmocka_unit_test(test_spawn_output_nul),
		cmocka_unit_test(test_describe_cut_utf8),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
