/** @file
 * Unit tests of the git strategy against a real repository made with the git
 * CLI: several commits, the newest copy of a file is invalid JSON (fallback
 * to an older commit), a file deleted in HEAD, max_age, a missing repository
 * falling through to the next strategy, and the default discovery of the
 * repository containing the workspace.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <cmocka.h>

#include "../../engine/recover/recover_i.h"
#include "bkr/error.h"
#include "test_recover_util.h"

typedef struct {
	char *dir, ws[PATH_MAX];
} fx;

#define GIT "git -c user.name=t -c user.email=t@example.com -c init.defaultBranch=main -c commit.gpgsign=false"

static int commit(fx *f, const char *msg, const char *date)
{
	return tu_sh("cd %s && " GIT " add -A >/dev/null && GIT_AUTHOR_DATE='%s' GIT_COMMITTER_DATE='%s' " GIT
		     " commit -qm '%s' >/dev/null",
		     f->ws, date, date, msg);
}

static int setup(void **state)
{
	fx *f = calloc(1, sizeof(*f));
	f->dir = tu_mkdtemp();
	snprintf(f->ws, sizeof(f->ws), "%s/ws", f->dir);
	tu_mkdirs(f->ws);
	assert_int_equal(tu_sh("cd %s && " GIT " init -q .", f->ws), 0);
	tu_writes(f->ws, "conv/a.json", "{\"v\":1}\n");
	tu_writes(f->ws, "conv/gone.json", "{\"gone\":true}\n");
	tu_writes(f->ws, "conv/old.json", "{\"old\":true}\n");
	assert_int_equal(commit(f, "one", "2020-01-01T00:00:00Z"), 0);
	tu_sh("rm %s/conv/old.json", f->ws);
	assert_int_equal(commit(f, "one-b", "2020-01-02T00:00:00Z"), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	fx *f = *state;
	tu_rmrf(f->dir);
	free(f->dir);
	free(f);
	return 0;
}

static bkr_recover *engine(fx *f, const char *json)
{
	bkr_recover_setup s = BKR_RECOVER_SETUP_INIT;
	bkr_recover *rc = NULL;
	char stage[PATH_MAX];
	snprintf(stage, sizeof(stage), "%s/stage", f->dir);
	s.workspace = f->ws;
	s.recovery_json = json;
	s.staging_dir = stage;
	assert_int_equal(bkr_recover_new(&rc, &s, NULL), 0);
	return rc;
}

static void history(fx *f)
{
	char now[64];
	snprintf(now, sizeof(now), "@%ld +0000", (long)time(NULL) - 60);
	/* two: a valid v2 (recent) */
	tu_writes(f->ws, "conv/a.json", "{\"v\":2}\n");
	assert_int_equal(commit(f, "two", now), 0);
	/* three: a broken copy (newest) */
	tu_writes(f->ws, "conv/a.json", "{\"v\":3,");
	assert_int_equal(commit(f, "three", now), 0);
	/* four: gone.json deleted in HEAD */
	tu_sh("rm %s/conv/gone.json", f->ws);
	assert_int_equal(commit(f, "four", now), 0);
}

static void test_fallback_and_deleted(void **state)
{
	fx *f = *state;
	bkr_recover *rc;
	bkr_recover_report *rep = NULL;
	bkr_recover_options o = BKR_RECOVER_OPTIONS_INIT;
	cJSON *root, *e, *src;

	history(f);
	rc = engine(f, "{\"rules\":[{\"pattern\":\"conv/*.json\",\"strategies\":[{\"type\":\"git\"}]}]}");
	o.apply = true;
	/* a.json in the workspace is the broken HEAD copy */
	root = tu_recover(rc, "conv/a.json", &o, &rep);
	e = tu_report_file(root, "conv/a.json");
	assert_string_equal(tu_str(e, "kind"), "invalid");
	assert_string_equal(tu_str(e, "status"), "recovered");
	src = cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(e, "attempts"), 0), "source");
	assert_int_equal(strlen(tu_str(src, "commit")), 40);
	assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(src, "rejected")), 1);
	assert_true(cJSON_IsTrue(cJSON_GetObjectItem(e, "applied")));
	tu_assert_file(f->ws, "conv/a.json", "{\"v\":2}\n");
	cJSON_Delete(root);
	bkr_recover_report_free(rep);

	/* gone.json only exists in history */
	root = tu_recover(rc, "conv/gone.json", &o, &rep);
	e = tu_report_file(root, "conv/gone.json");
	assert_string_equal(tu_str(e, "kind"), "missing");
	assert_string_equal(tu_str(e, "status"), "recovered");
	tu_assert_file(f->ws, "conv/gone.json", "{\"gone\":true}\n");
	cJSON_Delete(root);
	bkr_recover_report_free(rep);
	bkr_recover_free(rc);
}

static void test_max_age_and_missing_repo(void **state)
{
	fx *f = *state;
	bkr_recover *rc;
	bkr_recover_report *rep = NULL;
	bkr_recover_options o = BKR_RECOVER_OPTIONS_INIT;
	cJSON *root, *e;
	char json[2048];

	history(f);
	/* old.json's only copy is from 2020: outside a 1-day max_age */
	snprintf(json, sizeof(json),
		 "{\"rules\":[{\"pattern\":\"conv/old.json\",\"strategies\":["
		 "{\"type\":\"git\",\"repository\":\"%s/no-such-repo\"},"
		 "{\"type\":\"git\",\"max_age\":\"1d\"},"
		 "{\"type\":\"git\",\"ref\":\"refs/heads/nope\"},"
		 "{\"type\":\"git\",\"ref\":\"main\",\"repository\":\"%s\"}]}]}",
		 f->dir, f->ws);
	rc = engine(f, json);
	root = tu_recover(rc, "conv/old.json", &o, &rep);
	e = tu_report_file(root, "conv/old.json");
	assert_string_equal(tu_attempt(e, 0, "result"), "unavailable");
	assert_non_null(strstr(tu_attempt(e, 0, "error"), "no-such-repo"));
	assert_string_equal(tu_attempt(e, 1, "result"), "not_found");
	assert_non_null(strstr(tu_attempt(e, 1, "error"), "max_age"));
	assert_string_equal(tu_attempt(e, 2, "result"), "not_found");
	assert_string_equal(tu_attempt(e, 3, "result"), "recovered");
	assert_string_equal(tu_str(e, "status"), "recovered");
	assert_false(tu_exists(f->ws, "conv/old.json")); /* no --apply */
	cJSON_Delete(root);
	bkr_recover_report_free(rep);
	bkr_recover_free(rc);
}

/* Commits in the same second (scripts, rebases): the newest valid one is
 * taken, never its parent (a walk sorted by time alone may take either). */
static void test_same_second(void **state)
{
	fx *f = *state;
	bkr_recover *rc;
	bkr_recover_report *rep = NULL;
	bkr_recover_options o = BKR_RECOVER_OPTIONS_INIT;

	/* a new history whose first commits share a second */
	assert_int_equal(tu_sh("cd %s && rm -rf .git && " GIT " init -q .", f->ws), 0);
	for (int v = 10; v <= 14; v++) {
		char body[32];
		snprintf(body, sizeof(body), "{\"v\":%d}\n", v);
		tu_writes(f->ws, "conv/a.json", body);
		assert_int_equal(commit(f, "same second", "2021-01-01T00:00:00Z"), 0);
	}
	tu_writes(f->ws, "conv/a.json", "{broken");
	assert_int_equal(commit(f, "broken", "2021-01-01T00:00:09Z"), 0);
	rc = engine(f, "{\"rules\":[{\"pattern\":\"conv/*.json\",\"strategies\":[\"git\"]}]}");
	o.apply = true;
	assert_int_equal(bkr_recover_file(rc, "conv/a.json", &o, &rep), 0);
	tu_assert_file(f->ws, "conv/a.json", "{\"v\":14}\n");
	bkr_recover_report_free(rep);
	bkr_recover_free(rc);
}

static void test_no_repository(void **state)
{
	fx *f = *state;
	bkr_recover *rc;
	bkr_recover_report *rep = NULL;
	bkr_recover_options o = BKR_RECOVER_OPTIONS_INIT;
	cJSON *root, *e;

	tu_sh("rm -rf %s/.git", f->ws);
	rc = engine(f, "{\"rules\":[{\"pattern\":\"*\",\"strategies\":[\"git\",\"manual\"]}]}");
	o.force_strategy = true;
	o.strategy = BKR_STRATEGY_GIT;
	root = tu_recover(rc, "conv/zzz.json", &o, &rep);
	e = tu_report_file(root, "conv/zzz.json");
	assert_int_equal(tu_nattempts(e), 1);
	assert_string_equal(tu_attempt(e, 0, "result"), "unavailable");
	assert_string_equal(tu_str(e, "status"), "failed");
	cJSON_Delete(root);
	bkr_recover_report_free(rep);
	bkr_recover_free(rc);
}

/* The first rejected copy's reason in attempt 0 of @p path's entry (NULL = none). */
static const char *rejected_reason(cJSON *root, const char *path, int i)
{
	cJSON *e = tu_report_file(root, path);
	cJSON *src = cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(e, "attempts"), 0), "source");
	return tu_str(cJSON_GetArrayItem(cJSON_GetObjectItem(src, "rejected"), i), "reason");
}

/* A symlink in git is not a file: its blob is the link text.  It was
 * recovered as a regular file holding "real.json"; now it is refused and the
 * next strategy runs. */
static void test_symlink_refused(void **state)
{
	fx *f = *state;
	bkr_recover *rc;
	bkr_recover_report *rep = NULL;
	bkr_recover_options o = BKR_RECOVER_OPTIONS_INIT;
	cJSON *root, *e;

	tu_writes(f->ws, "cfg/real.json", "{\"mode\":\"prod\"}\n");
	assert_int_equal(tu_sh("cd %s/cfg && ln -s real.json current.json", f->ws), 0);
	assert_int_equal(commit(f, "link", "2020-01-03T00:00:00Z"), 0);
	tu_sh("rm %s/cfg/current.json", f->ws);
	rc = engine(f, "{\"rules\":[{\"pattern\":\"cfg/*\",\"strategies\":[\"git\",\"manual\"]}]}");
	o.apply = true;
	root = tu_recover(rc, "cfg/current.json", &o, &rep);
	e = tu_report_file(root, "cfg/current.json");
	assert_string_equal(tu_attempt(e, 0, "result"), "not_found");
	assert_non_null(strstr(tu_attempt(e, 0, "error"), "symlink"));
	assert_string_equal(rejected_reason(root, "cfg/current.json", 0), "a symlink in git");
	assert_string_equal(tu_attempt(e, 1, "strategy"), "manual");
	assert_string_equal(tu_str(e, "status"), "manual");
	assert_false(tu_exists(f->ws, "cfg/current.json"));
	cJSON_Delete(root);
	bkr_recover_report_free(rep);
	bkr_recover_free(rc);
}

/* The loose object that @p rev names (git rev-parse) in @p f's workspace
 * repository rewritten by the shell command @p write, which finds its path in $p. */
static int rewrite_object(fx *f, const char *rev, const char *write)
{
	return tu_sh("cd %s && o=$(git rev-parse %s) && p=.git/objects/${o%%%%${o#??}}/${o#??} && chmod u+w $p && %s",
		     f->ws, rev, write);
}

/* The loose object that @p rev names overwritten with garbage. */
static int garble_object(fx *f, const char *rev)
{
	return rewrite_object(f, rev, "printf garbage > $p");
}

/* The size limit is checked on the object's header, before the blob is
 * inflated: a loose object whose header says 600 MiB (the rest is not there)
 * is "too large" — git_blob_lookup inflated it first and failed on it. */
static void test_large_blob_header(void **state)
{
	fx *f = *state;
	bkr_recover *rc;
	bkr_recover_report *rep = NULL;
	bkr_recover_options o = BKR_RECOVER_OPTIONS_INIT;
	cJSON *root, *e;
	const char *why;

	tu_writes(f->ws, "data/big.bin", "small\n");
	assert_int_equal(commit(f, "big", "2020-01-03T00:00:00Z"), 0);
	assert_int_equal(rewrite_object(f, "HEAD:data/big.bin",
					"python3 -c 'import sys,zlib; open(sys.argv[1],\"wb\").write("
					"zlib.compress(b\"blob 629145600\\0small\\n\"))' $p"),
			 0);
	tu_sh("rm %s/data/big.bin", f->ws);
	rc = engine(f, "{\"rules\":[{\"pattern\":\"data/*\",\"strategies\":[\"git\"]}]}");
	root = tu_recover(rc, "data/big.bin", &o, &rep);
	e = tu_report_file(root, "data/big.bin");
	assert_string_equal(tu_str(e, "status"), "failed");
	why = rejected_reason(root, "data/big.bin", 0);
	assert_non_null(why);
	if (!strstr(why, "too large"))
		fail_msg("rejected for '%s', not for its size", why);
	cJSON_Delete(root);
	bkr_recover_report_free(rep);
	bkr_recover_free(rc);
}

/*
 * d/a.txt in two commits, the newest one's object @p object (a git rev-parse
 * of HEAD:...) damaged, and the file gone: the git attempt fails naming the
 * commit and the damage (with @p rejected, also as the rejected copy's
 * reason), and the manual strategy runs; the older copy is not taken.
 */
static void damaged_newest(fx *f, const char *object, bool rejected)
{
	bkr_recover *rc;
	bkr_recover_report *rep = NULL;
	bkr_recover_options o = BKR_RECOVER_OPTIONS_INIT;
	cJSON *root, *e;
	char *head;
	const char *err;

	tu_writes(f->ws, "d/a.txt", "v1\n");
	assert_int_equal(commit(f, "v1", "2020-01-03T00:00:00Z"), 0);
	tu_writes(f->ws, "d/a.txt", "v2-newest\n");
	assert_int_equal(commit(f, "v2", "2020-01-04T00:00:00Z"), 0);
	assert_int_equal(tu_sh("cd %s && git rev-parse HEAD > head", f->ws), 0);
	assert_int_equal(garble_object(f, object), 0);
	head = tu_read(f->ws, "head", NULL);
	head[40] = 0;
	tu_sh("rm %s/d/a.txt %s/head", f->ws, f->ws);
	rc = engine(f, "{\"rules\":[{\"pattern\":\"d/*\",\"strategies\":[\"git\",\"manual\"]}]}");
	o.apply = true;
	root = tu_recover(rc, "d/a.txt", &o, &rep);
	e = tu_report_file(root, "d/a.txt");
	assert_string_equal(tu_attempt(e, 0, "result"), "failed");
	err = tu_attempt(e, 0, "error");
	if (!strstr(err, head) || !strstr(err, "damaged"))
		fail_msg("the error does not name commit %s and the damage: %s", head, err);
	if (rejected)
		assert_non_null(strstr(rejected_reason(root, "d/a.txt", 0), "damaged"));
	assert_string_equal(tu_str(e, "status"), "manual");
	assert_false(tu_exists(f->ws, "d/a.txt")); /* not v1 */
	free(head);
	cJSON_Delete(root);
	bkr_recover_report_free(rep);
	bkr_recover_free(rc);
}

/* The newest copy's object is damaged: recovery took the older commit's copy
 * silently (exit 0, "1 recovered", only the JSON's rejected showed it).  The
 * attempt fails now, naming the commit and the object; the next strategy runs. */
static void test_damaged_object(void **state)
{
	damaged_newest(*state, "HEAD:d/a.txt", true);
}

/* The newest commit's tree holding the file is damaged (a directory's tree
 * object, not the blob): the walk took that commit as one without the file
 * and recovered the older commit's copy in silence.  It fails now, as for a
 * damaged blob, naming the commit. */
static void test_damaged_tree(void **state)
{
	damaged_newest(*state, "HEAD:d", false);
}

/* A shallow clone (a CI checkout, "git clone --depth 1"): libgit2's revwalk
 * fails on the missing parents before it returns a commit, and the attempt
 * said "no commit of HEAD has conv/a.json" with the file in HEAD.  The
 * first parents are followed now, to where the clone stops. */
static void test_shallow_clone(void **state)
{
	fx *f = *state;
	bkr_recover *rc;
	bkr_recover_report *rep = NULL;
	bkr_recover_options o = BKR_RECOVER_OPTIONS_INIT;
	cJSON *root, *e;

	tu_writes(f->ws, "conv/a.json", "{\"v\":2}\n");
	assert_int_equal(commit(f, "v2", "2020-01-03T00:00:00Z"), 0);
	tu_writes(f->ws, "conv/a.json", "{\"v\":3,");
	assert_int_equal(commit(f, "broken", "2020-01-04T00:00:00Z"), 0);
	/* the workspace's repository becomes a clone of its two newest commits */
	assert_int_equal(tu_sh("cd %s && " GIT " clone -q --depth 2 file://%s clone && rm -rf %s/.git && "
			       "mv clone/.git %s/.git && rm -rf clone && test -f %s/.git/shallow",
			       f->dir, f->ws, f->ws, f->ws, f->ws),
			 0);
	rc = engine(f, "{\"rules\":[{\"pattern\":\"conv/*.json\",\"strategies\":[\"git\"]}]}");
	o.apply = true;
	root = tu_recover(rc, "conv/a.json", &o, &rep);
	e = tu_report_file(root, "conv/a.json");
	if (strcmp(tu_str(e, "status"), "recovered") != 0)
		fail_msg("not recovered from the shallow clone: %s", tu_attempt(e, 0, "error"));
	assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(
				 cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(e, "attempts"), 0), "source"),
				 "rejected")),
			 1); /* the broken newest copy */
	tu_assert_file(f->ws, "conv/a.json", "{\"v\":2}\n");
	cJSON_Delete(root);
	bkr_recover_report_free(rep);
	/* conv/old.json was deleted before the clone's history begins */
	root = tu_recover(rc, "conv/old.json", &o, &rep);
	e = tu_report_file(root, "conv/old.json");
	assert_string_equal(tu_attempt(e, 0, "result"), "not_found");
	cJSON_Delete(root);
	bkr_recover_report_free(rep);
	bkr_recover_free(rc);
}

/* Not a shallow clone, but a commit cannot be read: a damaged history, never
 * "no commit of HEAD has conv/a.json" (the file is in HEAD).  (A missing
 * parent in a repository that is not shallow makes libgit2 1.5 leak 16
 * bytes in git_revwalk_next: an unreadable one here keeps ASan quiet.) */
static void test_history_unreadable(void **state)
{
	fx *f = *state;
	bkr_recover *rc;
	bkr_recover_report *rep = NULL;
	bkr_recover_options o = BKR_RECOVER_OPTIONS_INIT;
	cJSON *root, *e;

	assert_int_equal(garble_object(f, "HEAD~1"), 0);
	tu_writes(f->ws, "conv/a.json", "{\"v\":3,");
	rc = engine(f, "{\"rules\":[{\"pattern\":\"conv/*.json\",\"strategies\":[\"git\"]}]}");
	root = tu_recover(rc, "conv/a.json", &o, &rep);
	e = tu_report_file(root, "conv/a.json");
	assert_string_equal(tu_attempt(e, 0, "result"), "failed");
	if (!strstr(tu_attempt(e, 0, "error"), "cannot be walked"))
		fail_msg("a history with an unreadable commit: %s", tu_attempt(e, 0, "error"));
	cJSON_Delete(root);
	bkr_recover_report_free(rep);
	bkr_recover_free(rc);
}

/* A shallow clone whose history holds a commit that cannot be read (below
 * HEAD, above where the clone stops): the first-parent walk took the failed
 * lookup for the clone's end and said "no valid copy of conv/a.json in 1
 * commit" (invalid), as if git held only the broken copy.  The walk ends at
 * the commits the clone's shallow file names; an unreadable commit before
 * them is a history that cannot be walked, as in a full clone. */
static void test_shallow_damaged(void **state)
{
	fx *f = *state;
	bkr_recover *rc;
	bkr_recover_report *rep = NULL;
	bkr_recover_options o = BKR_RECOVER_OPTIONS_INIT;
	cJSON *root, *e;

	tu_writes(f->ws, "conv/a.json", "{\"v\":2}\n");
	assert_int_equal(commit(f, "v2", "2020-01-03T00:00:00Z"), 0);
	tu_writes(f->ws, "conv/b.json", "{}\n");
	assert_int_equal(commit(f, "mid", "2020-01-04T00:00:00Z"), 0);
	tu_writes(f->ws, "conv/a.json", "{\"v\":3,");
	assert_int_equal(commit(f, "broken", "2020-01-05T00:00:00Z"), 0);
	/* shallow below v2 (git writes this file for "clone --depth 3") */
	assert_int_equal(tu_sh("cd %s && git rev-parse HEAD~2 > .git/shallow", f->ws), 0);
	assert_int_equal(garble_object(f, "HEAD~1"), 0);
	rc = engine(f, "{\"rules\":[{\"pattern\":\"conv/*.json\",\"strategies\":[\"git\"]}]}");
	o.apply = true;
	root = tu_recover(rc, "conv/a.json", &o, &rep);
	e = tu_report_file(root, "conv/a.json");
	assert_string_equal(tu_attempt(e, 0, "result"), "failed");
	if (!strstr(tu_attempt(e, 0, "error"), "cannot be walked"))
		fail_msg("a shallow history with an unreadable commit: %s", tu_attempt(e, 0, "error"));
	tu_assert_file(f->ws, "conv/a.json", "{\"v\":3,"); /* not v2, past the damage */
	cJSON_Delete(root);
	bkr_recover_report_free(rep);
	bkr_recover_free(rc);
}

/* "prefix" written as a directory is ("srv/ws/", "./srv/ws"): it was joined
 * with '/' as it was, "srv/ws//conv/a.json" is in no tree, and every file
 * was not_found ("no commit of HEAD has srv/ws//conv/a.json") after a
 * config check that said ok.  The prefix is taken as the path it names; an
 * absolute one or one with '..' is refused, naming the key. */
static void test_prefix_spelling(void **state)
{
	fx *f = *state;
	static const char *const ok[] = { "srv/ws/", "./srv//ws", "srv/./ws/" };
	static const char *const refused[] = { "/srv/ws", "srv/../srv/ws" };
	bkr_recover_setup su = BKR_RECOVER_SETUP_INIT;
	bkr_recover *rc = NULL;
	bkr_recover_report *rep = NULL;
	bkr_recover_options o = BKR_RECOVER_OPTIONS_INIT;
	char json[PATH_MAX * 2], stage[PATH_MAX];
	cJSON *root, *e;

	/* a bare repository holding the workspace under srv/ws */
	tu_writes(f->dir, "src/srv/ws/conv/a.json", "{\"in\":\"srv/ws\"}\n");
	assert_int_equal(tu_sh("cd %s/src && " GIT " init -q . && " GIT " add -A && " GIT " commit -qm one >/dev/null && "
			       "cd .. && git clone -q --bare src bare.git",
			       f->dir),
			 0);
	for (size_t k = 0; k < sizeof(ok) / sizeof(ok[0]); k++) {
		snprintf(json, sizeof(json),
			 "{\"rules\":[{\"pattern\":\"conv/*.json\",\"strategies\":[{\"type\":\"git\",\"repository\":"
			 "\"%s/bare.git\",\"prefix\":\"%s\"}]}]}",
			 f->dir, ok[k]);
		rc = engine(f, json);
		root = tu_recover(rc, "conv/a.json", &o, &rep);
		e = tu_report_file(root, "conv/a.json");
		if (strcmp(tu_str(e, "status"), "recovered") != 0)
			fail_msg("prefix '%s': %s", ok[k], tu_attempt(e, 0, "error"));
		cJSON_Delete(root);
		bkr_recover_report_free(rep);
		bkr_recover_free(rc);
	}
	snprintf(stage, sizeof(stage), "%s/stage", f->dir);
	su.workspace = f->ws;
	su.staging_dir = stage;
	for (size_t k = 0; k < sizeof(refused) / sizeof(refused[0]); k++) {
		snprintf(json, sizeof(json),
			 "{\"rules\":[{\"pattern\":\"conv/*.json\",\"strategies\":[{\"type\":\"git\",\"prefix\":\"%s\"}]}]}",
			 refused[k]);
		su.recovery_json = json;
		assert_int_equal(bkr_recover_new(&rc, &su, NULL), BKR_EINVAL);
		if (!strstr(bkr_error_message(), "key 'recovery.rules[0].strategies[0].prefix'"))
			fail_msg("prefix '%s': %s", refused[k], bkr_error_message());
	}
}

/* A file kept in Git LFS: its blob is the pointer, not the file, and was
 * recovered as the file (a 130-byte text in place of a model; no validator
 * for *.bin saw it).  It is refused now, as a symlink is, and no older
 * commit is used: the next strategy runs.  A git-crypt blob alike. */
static void test_filter_stand_in(void **state)
{
	fx *f = *state;
	bkr_recover *rc;
	bkr_recover_report *rep = NULL;
	bkr_recover_options o = BKR_RECOVER_OPTIONS_INIT;
	cJSON *root, *e;

	tu_writes(f->ws, "data/model.bin", "the model before LFS\n");
	tu_writes(f->ws, "data/secret.bin", "the secret before git-crypt\n");
	assert_int_equal(commit(f, "plain", "2020-01-03T00:00:00Z"), 0);
	tu_writes(f->ws, "data/model.bin",
		  "version https://git-lfs.github.com/spec/v1\n"
		  "oid sha256:4d7a214614ab2935c943f9e0ff69d22eadbb8f32b1258daaa5e2ca24d17e2393\nsize 12345\n");
	assert_int_equal(tu_sh("printf '\\000GITCRYPT\\000ciphertext' > %s/data/secret.bin", f->ws), 0);
	assert_int_equal(commit(f, "lfs", "2020-01-04T00:00:00Z"), 0);
	tu_sh("rm %s/data/model.bin %s/data/secret.bin", f->ws, f->ws);
	rc = engine(f, "{\"rules\":[{\"pattern\":\"data/*\",\"strategies\":[\"git\",\"manual\"]}]}");
	o.apply = true;
	for (int k = 0; k < 2; k++) {
		const char *path = k ? "data/secret.bin" : "data/model.bin";
		root = tu_recover(rc, path, &o, &rep);
		e = tu_report_file(root, path);
		assert_string_equal(tu_attempt(e, 0, "result"), "not_found");
		if (!strstr(tu_attempt(e, 0, "error"), k ? "git-crypt" : "Git LFS pointer"))
			fail_msg("%s: %s", path, tu_attempt(e, 0, "error"));
		assert_string_equal(tu_str(e, "status"), "manual");
		assert_false(tu_exists(f->ws, path)); /* neither the stand-in nor the older file */
		cJSON_Delete(root);
		bkr_recover_report_free(rep);
	}
	bkr_recover_free(rc);
}

/* A file in a git submodule: the superproject holds only a gitlink at the
 * submodule's path.  Discovery started at the workspace root, found the
 * superproject, passed every commit where lib is a gitlink as one without
 * lib/conf.json, and recovered the superproject's own copy from before lib
 * became a submodule (exit 0, an old version over the newer one the
 * submodule holds).  Discovery now starts at the file's directory (the
 * submodule's checkout), and a walk of the superproject stops where the path
 * enters a submodule, naming it: never the older copy. */
static void test_submodule(void **state)
{
	fx *f = *state;
	bkr_recover *rc;
	bkr_recover_report *rep = NULL;
	bkr_recover_options o = BKR_RECOVER_OPTIONS_INIT;
	cJSON *root, *e;
	char json[PATH_MAX + 256];
	const char *err;

	/* lib/conf.json was the superproject's own file first */
	tu_writes(f->ws, "lib/conf.json", "{\"v\":\"old, in the superproject\"}\n");
	assert_int_equal(commit(f, "lib", "2020-01-03T00:00:00Z"), 0);
	/* then lib became a submodule holding a newer conf.json */
	tu_writes(f->dir, "libsrc/conf.json", "{\"v\":\"new, in the submodule\"}\n");
	assert_int_equal(tu_sh("cd %s/libsrc && " GIT " init -q . && " GIT " add -A && GIT_AUTHOR_DATE=2020-01-05T00:00:00Z "
			       "GIT_COMMITTER_DATE=2020-01-05T00:00:00Z " GIT " commit -qm sub >/dev/null",
			       f->dir),
			 0);
	assert_int_equal(tu_sh("cd %s && " GIT " rm -rq lib && " GIT " -c protocol.file.allow=always submodule add -q "
			       "file://%s/libsrc lib >/dev/null 2>&1",
			       f->ws, f->dir),
			 0);
	assert_int_equal(commit(f, "lib as a submodule", "2020-01-06T00:00:00Z"), 0);
	tu_sh("rm %s/lib/conf.json", f->ws);

	/* the default: the repository of the file's directory, the submodule */
	rc = engine(f, "{\"rules\":[{\"pattern\":\"lib/*\",\"strategies\":[\"git\",\"manual\"]}]}");
	o.apply = true;
	root = tu_recover(rc, "lib/conf.json", &o, &rep);
	e = tu_report_file(root, "lib/conf.json");
	if (strcmp(tu_str(e, "status"), "recovered") != 0)
		fail_msg("not recovered from the submodule: %s", tu_attempt(e, 0, "error"));
	tu_assert_file(f->ws, "lib/conf.json", "{\"v\":\"new, in the submodule\"}\n");
	cJSON_Delete(root);
	bkr_recover_report_free(rep);
	bkr_recover_free(rc);

	/* the superproject named: its walk stops at the submodule, naming it */
	tu_sh("rm %s/lib/conf.json", f->ws);
	snprintf(json, sizeof(json),
		 "{\"rules\":[{\"pattern\":\"lib/*\",\"strategies\":[{\"type\":\"git\",\"repository\":\"%s\"},"
		 "\"manual\"]}]}",
		 f->ws);
	rc = engine(f, json);
	root = tu_recover(rc, "lib/conf.json", &o, &rep);
	e = tu_report_file(root, "lib/conf.json");
	assert_string_equal(tu_attempt(e, 0, "result"), "not_found");
	err = tu_attempt(e, 0, "error");
	if (!strstr(err, "submodule 'lib'"))
		fail_msg("the error does not name the submodule: %s", err);
	assert_string_equal(tu_str(e, "status"), "manual");
	assert_false(tu_exists(f->ws, "lib/conf.json")); /* not the superproject's old copy */
	cJSON_Delete(root);
	bkr_recover_report_free(rep);
	bkr_recover_free(rc);
}

/* A "prefix" so long that it and the file's path pass PATH_MAX: the attempt
 * failed with "path too long" alone, naming neither the path nor the key to
 * change. */
static void test_prefix_too_long(void **state)
{
	fx *f = *state;
	bkr_recover_options o = BKR_RECOVER_OPTIONS_INIT;
	bkr_recover_report *rep = NULL;
	char prefix[PATH_MAX - 8], json[PATH_MAX * 2];
	bkr_recover *rc;
	cJSON *root, *e;
	const char *err;

	memset(prefix, 'p', sizeof(prefix) - 1);
	prefix[sizeof(prefix) - 1] = '\0';
	snprintf(json, sizeof(json),
		 "{\"rules\":[{\"pattern\":\"conv/*.json\",\"strategies\":[{\"type\":\"git\",\"prefix\":\"%s\"}]}]}",
		 prefix);
	rc = engine(f, json);
	root = tu_recover(rc, "conv/a.json", &o, &rep);
	e = tu_report_file(root, "conv/a.json");
	assert_string_equal(tu_attempt(e, 0, "result"), "failed");
	err = tu_attempt(e, 0, "error");
	if (!strstr(err, "path too long") || !strstr(err, "pppp/conv/a.json") ||
	    !strstr(err, "recovery.rules[0].strategies[0]"))
		fail_msg("a prefix past PATH_MAX: %s", err);
	cJSON_Delete(root);
	bkr_recover_report_free(rep);
	bkr_recover_free(rc);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_fallback_and_deleted, setup, teardown),
		cmocka_unit_test_setup_teardown(test_max_age_and_missing_repo, setup, teardown),
		cmocka_unit_test_setup_teardown(test_same_second, setup, teardown),
		cmocka_unit_test_setup_teardown(test_no_repository, setup, teardown),
		cmocka_unit_test_setup_teardown(test_symlink_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_large_blob_header, setup, teardown),
		cmocka_unit_test_setup_teardown(test_damaged_object, setup, teardown),
		cmocka_unit_test_setup_teardown(test_damaged_tree, setup, teardown),
		cmocka_unit_test_setup_teardown(test_shallow_clone, setup, teardown),
		cmocka_unit_test_setup_teardown(test_history_unreadable, setup, teardown),
		cmocka_unit_test_setup_teardown(test_shallow_damaged, setup, teardown),
		cmocka_unit_test_setup_teardown(test_filter_stand_in, setup, teardown),
		cmocka_unit_test_setup_teardown(test_submodule, setup, teardown),
		cmocka_unit_test_setup_teardown(test_prefix_spelling, setup, teardown),
		cmocka_unit_test_setup_teardown(test_prefix_too_long, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
