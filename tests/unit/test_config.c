/** @file
 * Unit tests of engine/config.c: the two-line configuration and its defaults,
 * a full configuration, relative path resolution, one-line errors naming the
 * exact key path for every wrong type, unknown keys and bad values, bad JSON
 * with a line/column hint, glob matching, durations, and the effective
 * configuration dump loading back to the same values.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bkr/config.h"
#include "bkr/error.h"

#include "testutil.h"

struct fixture {
	char dir[PATH_MAX];    /**< private temp dir (realpath) */
	char state[PATH_MAX];  /**< $XDG_STATE_HOME for the default log_dir */
	char *old_xdg;
	char *old_home;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	char tmpl[] = "/tmp/bkr-test-config-XXXXXX";

	assert_non_null(f);
	assert_non_null(mkdtemp(tmpl));
	assert_non_null(realpath(tmpl, f->dir));
	snprintf(f->state, sizeof(f->state), "%.200s/state", f->dir);
	if (getenv("XDG_STATE_HOME"))
		f->old_xdg = strdup(getenv("XDG_STATE_HOME"));
	if (getenv("HOME"))
		f->old_home = strdup(getenv("HOME"));
	setenv("XDG_STATE_HOME", f->state, 1);
	setenv("HOME", f->dir, 1);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	if (f->old_xdg)
		setenv("XDG_STATE_HOME", f->old_xdg, 1);
	else
		unsetenv("XDG_STATE_HOME");
	if (f->old_home)
		setenv("HOME", f->old_home, 1);
	tu_rmrf(f->dir);
	free(f->old_xdg);
	free(f->old_home);
	free(f);
	return 0;
}

static bkr_config *load_ok(const char *text, const char *base)
{
	bkr_config *c = NULL;
	int err = bkr_config_from_string(&c, text, strlen(text), "bkr.json", base);
	if (err)
		fail_msg("config failed (%d): %s\n%s", err, bkr_error_message(), text);
	assert_non_null(c);
	return c;
}

/* Loading must fail with BKR_EINVAL and one line "bkr.json: ..." holding @p n1 and @p n2. */
static void expect_error(const char *text, const char *n1, const char *n2)
{
	bkr_config *c = (bkr_config *)1;
	const char *msg;
	int err = bkr_config_from_string(&c, text, strlen(text), "bkr.json", "/base");
	msg = bkr_error_message();
	if (err != BKR_EINVAL)
		fail_msg("expected EINVAL, got %d (%s) for %s", err, msg, text);
	assert_null(c);
	if (strncmp(msg, "bkr.json: ", 10) != 0)
		fail_msg("message '%s' does not start with the file name", msg);
	if (n1 && !strstr(msg, n1))
		fail_msg("message '%s' lacks '%s' (config %s)", msg, n1, text);
	if (n2 && !strstr(msg, n2))
		fail_msg("message '%s' lacks '%s' (config %s)", msg, n2, text);
	assert_null(strchr(msg, '\n'));
}

#define BASE "{\"repository\":\"/r\",\"workspace_root\":\"/w/ws\""

/* BASE + "," + @p rest + "}" */
static char *with(const char *rest)
{
	char *s = NULL;
	assert_true(asprintf(&s, BASE ",%s}", rest) > 0);
	return s;
}

static void expect_key_error(const char *rest, const char *key, const char *what)
{
	char *text = with(rest), needle[300];
	snprintf(needle, sizeof(needle), "key '%s'", key);
	expect_error(text, needle, what);
	free(text);
}

/* ---- defaults ------------------------------------------------------------------ */

static void check_default_policy(const bkr_retention_policy *p)
{
	/* the seed's "keep 30 days" and nothing else */
	assert_int_equal(p->keep_last, 0);
	assert_int_equal(p->keep_hourly, 0);
	assert_int_equal(p->keep_daily, 0);
	assert_int_equal(p->keep_weekly, 0);
	assert_int_equal(p->keep_monthly, 0);
	assert_int_equal(p->keep_yearly, 0);
	assert_int_equal(p->keep_within_s, 30 * 86400);
}

/* A repository or tier named by URL is kept as it is, not resolved as a path. */
static void test_url_locations(void **state)
{
	struct fixture *f = *state;
	bkr_config *c = load_ok("{\"repository\": \"s3://bucket/some/prefix\", \"workspace_root\": \"/srv/ws\",\n"
				" \"tiers\": {\"cold\": {\"path\": \"s3://cold\"}}}\n", f->dir);
	assert_string_equal(c->repository, "s3://bucket/some/prefix");
	assert_string_equal(c->cold.path, "s3://cold");
	assert_int_equal(c->s3.path_style, -1);
	assert_null(c->s3.endpoint_url);
	bkr_config_free(c);
	c = load_ok("{\"repository\": \"s3://b\", \"workspace_root\": \"/w\", \"s3\": {\"access_key_id\": \"AK\", "
		    "\"secret_access_key\": \"not+shown=secret\", \"region\": \"eu-west-1\", \"endpoint_url\": \"http://127.0.0.1:7480\", "
		    "\"path_style\": true, \"lock_stale_seconds\": 30, \"keep_packs\": 8, \"keep_mib\": 1024, "
		    "\"keep_check_ms\": 1, \"attempts\": 3, \"connect_timeout_seconds\": 5, "
		    "\"stall_timeout_seconds\": 120}}", f->dir);
	assert_string_equal(c->s3.access_key_id, "AK");
	assert_string_equal(c->s3.secret_access_key, "not+shown=secret");
	assert_string_equal(c->s3.region, "eu-west-1");
	assert_string_equal(c->s3.endpoint_url, "http://127.0.0.1:7480");
	assert_int_equal(c->s3.path_style, 1);
	assert_int_equal(c->s3.lock_stale_seconds, 30);
	assert_int_equal(c->s3.tune[BKR_S3_KEEP_PACKS], 8);
	assert_int_equal(c->s3.tune[BKR_S3_KEEP_MIB], 1024);
	assert_int_equal(c->s3.tune[BKR_S3_KEEP_CHECK_MS], 1);
	assert_int_equal(c->s3.tune[BKR_S3_ATTEMPTS], 3);
	assert_int_equal(c->s3.tune[BKR_S3_CONNECT_TIMEOUT], 5);
	assert_int_equal(c->s3.tune[BKR_S3_STALL_TIMEOUT], 120);
	{
		char *text = bkr_config_to_json(c, false);
		assert_non_null(text);
		/* config show gives them back, as a configuration that loads to the same values */
		assert_non_null(strstr(text, "\"keep_packs\":8,\"keep_mib\":1024,\"keep_check_ms\":1,\"attempts\":3,"
					     "\"connect_timeout_seconds\":5,\"stall_timeout_seconds\":120"));
		assert_non_null(strstr(text, "\"endpoint_url\":\"http://127.0.0.1:7480\""));
		/* the secret is not shown; its text has characters that neither a mkdtemp
		 * name nor the rest of the JSON can hold, so this cannot match by chance */
		assert_null(strstr(text, "not+shown"));
		assert_null(strstr(text, "secret_access_key"));
		free(text);
	}
	bkr_config_free(c);
	expect_error("{\"repository\": \"/r\", \"workspace_root\": \"/w\", \"s3\": {\"path_style\": 1}}", "s3.path_style", "true or false");
	expect_error("{\"repository\": \"/r\", \"workspace_root\": \"/w\", \"s3\": {\"endpoint\": \"x\"}}", "s3.endpoint", NULL);
	expect_error("{\"repository\": \"/r\", \"workspace_root\": \"/w\", \"s3\": {\"endpoint_url\": \"x\"}}", "s3.endpoint_url", "http");
	expect_error("{\"repository\": \"/r\", \"workspace_root\": \"/w\", \"s3\": []}", "s3", "object");
}

static void test_two_line_config(void **state)
{
	struct fixture *f = *state;
	char want[PATH_MAX + 16];
	bkr_config *c = load_ok("{\"repository\": \"/srv/backup\",\n \"workspace_root\": \"/srv/ws\"}\n",
				f->dir);

	assert_string_equal(c->file, "bkr.json");
	assert_string_equal(c->base_dir, f->dir);
	assert_string_equal(c->repository, "/srv/backup");
	assert_string_equal(c->workspace_root, "/srv/ws");
	assert_int_equal(c->nsources, 1);
	assert_string_equal(c->sources[0].name, "ws");
	assert_int_equal(c->sources[0].npaths, 1);
	assert_string_equal(c->sources[0].paths[0], "/srv/ws");
	assert_null(c->sources[0].paths[1]);
	assert_int_equal(c->sources[0].nexcludes, 0);
	assert_int_equal(c->sources[0].priority, 0);
	assert_int_equal(c->sources[0].schedule, BKR_SCHEDULE_HOURLY);
	check_default_policy(&c->retention.policy);
	for (int t = 0; t <= BKR_BACKUP_RECOVERY; t++) {
		assert_false(c->retention.has_override[t]);
		assert_ptr_equal(bkr_config_retention_for(c, (bkr_backup_type)t), &c->retention.policy);
	}
	assert_null(c->warm.path);
	assert_int_equal(c->warm.after_days, 7);
	assert_null(c->cold.path);
	assert_int_equal(c->cold.after_days, 30);
	assert_int_equal(c->compression_level, 1);
	snprintf(want, sizeof(want), "%s/bkr", f->state);
	assert_string_equal(c->log_dir, want);
	assert_null(c->alert_command);
	assert_int_equal(c->nalert_command, 0);
	assert_null(c->recovery_json);
	assert_int_equal(c->nrequired_files, 0);
	assert_int_equal(c->nprotected_patterns, 1);
	assert_string_equal(c->protected_patterns[0], "*");
	assert_ptr_equal(bkr_config_find_source(c, "ws"), &c->sources[0]);
	assert_null(bkr_config_find_source(c, "nope"));
	bkr_config_free(c);

	/* without XDG_STATE_HOME the log dir is under $HOME */
	unsetenv("XDG_STATE_HOME");
	c = load_ok(BASE "}", "/");
	snprintf(want, sizeof(want), "%.200s/.local/state/bkr", f->dir);
	assert_string_equal(c->log_dir, want);
	bkr_config_free(c);
	bkr_config_free(NULL);
}

static void test_load_file_relative_paths(void **state)
{
	struct fixture *f = *state;
	char path[PATH_MAX], want[PATH_MAX + 64], sub[PATH_MAX];
	bkr_config *c = NULL;
	FILE *fp;

	snprintf(sub, sizeof(sub), "%.200s/etc", f->dir);
	assert_int_equal(mkdir(sub, 0755), 0);
	snprintf(path, sizeof(path), "%.300s/bkr.json", sub);
	fp = fopen(path, "w");
	assert_non_null(fp);
	fputs("{\n"
	      "  \"repository\": \"../repo\",\n"
	      "  \"workspace_root\": \"./ws/./x/..\",\n"
	      "  \"log_dir\": \"logs\",\n"
	      "  \"metrics_file\": \"metrics/bkr.prom\",\n"
	      "  \"tiers\": {\"warm\": {\"path\": \"~/warm\"}, \"cold\": {\"path\": \"/mnt//cold/\"}},\n"
	      "  \"sources\": [{\"name\": \"data\", \"paths\": [\"data\"]}, {\"name\": \"other\", \"paths\": [\"/abs/other\"]}],\n"
	      "  \"required_files\": [\"config/app.json\"]\n"
	      "}\n", fp);
	fclose(fp);
	assert_int_equal(bkr_config_load(&c, path), 0);
	assert_string_equal(c->file, path);
	assert_string_equal(c->base_dir, sub);
	snprintf(want, sizeof(want), "%s/repo", f->dir);
	assert_string_equal(c->repository, want);
	snprintf(want, sizeof(want), "%s/ws", sub);
	assert_string_equal(c->workspace_root, want);
	snprintf(want, sizeof(want), "%s/logs", sub);
	assert_string_equal(c->log_dir, want);
	snprintf(want, sizeof(want), "%s/metrics/bkr.prom", sub);
	assert_string_equal(c->metrics_file, want);
	snprintf(want, sizeof(want), "%s/warm", f->dir); /* HOME is the temp dir */
	assert_string_equal(c->warm.path, want);
	assert_string_equal(c->cold.path, "/mnt/cold");
	/* source paths and required files are relative to the workspace root */
	snprintf(want, sizeof(want), "%s/ws/data", sub);
	assert_string_equal(c->sources[0].paths[0], want);
	assert_string_equal(c->sources[1].paths[0], "/abs/other");
	snprintf(want, sizeof(want), "%s/ws/config/app.json", sub);
	assert_string_equal(c->required_files[0], want);
	bkr_config_free(c);

	/* a relative config path resolves against the current directory */
	{
		char old[PATH_MAX];
		assert_non_null(getcwd(old, sizeof(old)));
		assert_int_equal(chdir(f->dir), 0);
		assert_int_equal(bkr_config_load(&c, "etc/bkr.json"), 0);
		snprintf(want, sizeof(want), "%s/repo", f->dir);
		assert_string_equal(c->repository, want);
		bkr_config_free(c);
		assert_int_equal(chdir(old), 0);
	}

	/* missing file */
	snprintf(path, sizeof(path), "%.200s/none.json", f->dir);
	c = (bkr_config *)1;
	assert_int_equal(bkr_config_load(&c, path), BKR_ENOTFOUND);
	assert_null(c);
	assert_non_null(strstr(bkr_error_message(), "none.json"));
	/* a directory is not a config file */
	assert_true(bkr_config_load(&c, f->dir) < 0);
	assert_null(c);
}

static const char full_config[] =
	"{\n"
	"  \"_comment\": \"keys starting with _ are ignored\",\n"
	"  \"repository\": \"/srv/backup\",\n"
	"  \"workspace_root\": \"/srv/ws\",\n"
	"  \"sources\": [\n"
	"    {\"name\": \"conversations\", \"paths\": [\"conversations\"], \"excludes\": [\"*.tmp\", \"cache\"],\n"
	"     \"priority\": 10, \"schedule\": \"hourly\"},\n"
	"    {\"name\": \"config\", \"paths\": [\"config\"], \"priority\": -5,\n"
	"     \"schedule\": \"daily\"},\n"
	"    {\"paths\": [\"/var/lib/svc/data\"], \"schedule\": \"manual\"},\n"
	"    {\"name\": \"svc\", \"paths\": [\"/etc/svc\"], \"schedule\": \"daily\"}\n"
	"  ],\n"
	"  \"retention\": {\"keep_last\": 3, \"keep_hourly\": 0, \"keep_daily\": 14, \"keep_weekly\": 8,\n"
	"                \"keep_monthly\": 24, \"keep_within\": \"2d12h\",\n"
	"                \"snapshot\": {\"keep_last\": 100},\n"
	"                \"full\": {\"keep_monthly\": 120, \"keep_within\": \"1y\", \"keep_yearly\": 10}},\n"
	"  \"tiers\": {\"warm\": {\"path\": \"/mnt/warm\", \"after_days\": 3},\n"
	"            \"cold\": {\"path\": \"/mnt/cold\", \"after_days\": 90}},\n"
	"  \"compression\": {\"level\": 6},\n"
	"  \"log_dir\": \"/var/log/bkr\",\n"
	"  \"metrics_file\": \"/var/lib/prometheus/node-exporter/bkr.prom\",\n"
	"  \"alert_command\": [\"/usr/local/bin/page\", \"--team\", \"ops\"],\n"
	"  \"alert_timeout\": \"2min\",\n"
	"  \"recovery\": {\"rules\": [{\"pattern\": \"*.json\", \"strategies\": [\"backup\", \"git\"]}],\n"
	"               \"git\": {\"repository\": \"/srv/ws.git\"}},\n"
	"  \"required_files\": [\"config/app.json\", \"/srv/ws/svc/main.conf\"],\n"
	"  \"protected_patterns\": [\"conversations/*.json\", \"config/*\"]\n"
	"}\n";

static void test_full_config(void **state)
{
	bkr_config *c = load_ok(full_config, "/etc");
	const bkr_retention_policy *p;
	cJSON *rec;

	(void)state;
	assert_int_equal(c->nsources, 4);
	assert_string_equal(c->sources[0].name, "conversations");
	assert_string_equal(c->sources[0].paths[0], "/srv/ws/conversations");
	assert_int_equal(c->sources[0].nexcludes, 2);
	assert_string_equal(c->sources[0].excludes[0], "*.tmp");
	assert_string_equal(c->sources[0].excludes[1], "cache");
	assert_int_equal(c->sources[0].priority, 10);
	assert_int_equal(c->sources[0].schedule, BKR_SCHEDULE_HOURLY);
	assert_string_equal(c->sources[1].name, "config");
	assert_int_equal(c->sources[1].npaths, 1);
	assert_string_equal(c->sources[1].paths[0], "/srv/ws/config");
	assert_string_equal(c->sources[3].name, "svc");
	assert_string_equal(c->sources[3].paths[0], "/etc/svc");
	assert_int_equal(c->sources[1].priority, -5);
	assert_int_equal(c->sources[1].schedule, BKR_SCHEDULE_DAILY);
	assert_string_equal(c->sources[2].name, "data"); /* last component of its first path */
	assert_int_equal(c->sources[2].schedule, BKR_SCHEDULE_MANUAL);
	assert_int_equal(c->sources[2].nexcludes, 0);

	p = &c->retention.policy;
	assert_int_equal(p->keep_last, 3);
	assert_int_equal(p->keep_hourly, 0);
	assert_int_equal(p->keep_daily, 14);
	assert_int_equal(p->keep_weekly, 8);
	assert_int_equal(p->keep_monthly, 24);
	assert_int_equal(p->keep_within_s, 2 * 86400 + 12 * 3600);
	assert_int_equal(p->keep_yearly, 0); /* omitted: off, not the default's */
	p = bkr_config_retention_for(c, BKR_BACKUP_SNAPSHOT);
	assert_true(c->retention.has_override[BKR_BACKUP_SNAPSHOT]);
	assert_int_equal(p->keep_last, 100);
	assert_int_equal(p->keep_daily, 14); /* inherited */
	p = bkr_config_retention_for(c, BKR_BACKUP_FULL);
	assert_int_equal(p->keep_monthly, 120);
	assert_int_equal(p->keep_last, 3);
	assert_int_equal(p->keep_within_s, 365 * 86400);
	assert_int_equal(p->keep_yearly, 10);
	assert_ptr_equal(bkr_config_retention_for(c, BKR_BACKUP_INCREMENTAL), &c->retention.policy);

	assert_string_equal(c->warm.path, "/mnt/warm");
	assert_int_equal(c->warm.after_days, 3);
	assert_string_equal(c->cold.path, "/mnt/cold");
	assert_int_equal(c->cold.after_days, 90);
	assert_int_equal(c->compression_level, 6);
	assert_string_equal(c->log_dir, "/var/log/bkr");
	assert_int_equal(c->nalert_command, 3);
	assert_string_equal(c->alert_command[0], "/usr/local/bin/page");
	assert_string_equal(c->alert_command[2], "ops");
	assert_null(c->alert_command[3]);
	assert_int_equal(c->alert_timeout_s, 120);
	assert_non_null(c->recovery_json);
	rec = cJSON_Parse(c->recovery_json);
	assert_non_null(rec);
	assert_string_equal(cJSON_GetObjectItem(cJSON_GetObjectItem(rec, "git"), "repository")->valuestring,
			    "/srv/ws.git");
	cJSON_Delete(rec);
	assert_int_equal(c->nrequired_files, 2);
	assert_string_equal(c->required_files[0], "/srv/ws/config/app.json");
	assert_string_equal(c->required_files[1], "/srv/ws/svc/main.conf");
	assert_int_equal(c->nprotected_patterns, 2);
	assert_string_equal(c->protected_patterns[0], "conversations/*.json");
	bkr_config_free(c);
}

static void test_to_json_round_trip(void **state)
{
	bkr_config *c = load_ok(full_config, "/etc"), *back;
	char *a = bkr_config_to_json(c, true), *b;

	(void)state;
	assert_non_null(a);
	assert_non_null(strstr(a, "\"keep_within\":\t\"60h\""));
	assert_non_null(strstr(a, "\"keep_within\":\t\"365d\""));
	back = load_ok(a, "/elsewhere");
	b = bkr_config_to_json(back, true);
	assert_non_null(b);
	assert_string_equal(a, b);
	assert_int_equal(back->retention.policy.keep_within_s, c->retention.policy.keep_within_s);
	assert_int_equal(back->alert_timeout_s, 120);
	assert_true(back->retention.has_override[BKR_BACKUP_FULL]);
	assert_false(back->retention.has_override[BKR_BACKUP_DIFFERENTIAL]);
	free(a);
	free(b);
	bkr_config_free(back);
	bkr_config_free(c);

	/* defaults omit unset optional keys and still load */
	c = load_ok(BASE "}", "/");
	a = bkr_config_to_json(c, false);
	assert_null(strstr(a, "alert_command"));
	assert_non_null(strstr(a, "\"keep_within\":\"30d\"")); /* the seed default */
	assert_null(strstr(a, "recovery"));
	back = load_ok(a, "/");
	assert_null(back->warm.path);
	assert_null(back->alert_command);
	free(a);
	bkr_config_free(back);
	bkr_config_free(c);
}

static void test_config_default(void **state)
{
	bkr_config *c = NULL;
	char cwd[PATH_MAX], want[PATH_MAX + 16];

	(void)state;
	assert_non_null(getcwd(cwd, sizeof(cwd)));
	assert_int_equal(bkr_config_default(&c, "repo", "/srv/my-ws/"), 0);
	snprintf(want, sizeof(want), "%s/repo", cwd);
	assert_string_equal(c->repository, want);
	assert_string_equal(c->workspace_root, "/srv/my-ws");
	assert_null(c->file);
	assert_int_equal(c->nsources, 1);
	assert_string_equal(c->sources[0].name, "my-ws");
	assert_int_equal(c->compression_level, 1);
	check_default_policy(&c->retention.policy);
	bkr_config_free(c);

	assert_int_equal(bkr_config_default(&c, "/r", NULL), 0);
	assert_string_equal(c->workspace_root, "/");
	assert_int_equal(c->nsources, 0);
	bkr_config_free(c);

	c = (bkr_config *)1;
	assert_int_equal(bkr_config_default(&c, "", "/w"), BKR_EINVAL);
	assert_null(c);
}

/* A required file given by the workspace's real path (workspace_root is a symlink) is inside it, as scan takes it. */
static void test_required_real_path(void **state)
{
	struct fixture *f = *state;
	char real[PATH_MAX + 8], link[PATH_MAX + 8], *text = NULL;
	bkr_config *c;

	snprintf(real, sizeof(real), "%.4000s/real", f->dir);
	snprintf(link, sizeof(link), "%.4000s/link", f->dir);
	assert_int_equal(mkdir(real, 0700), 0);
	assert_int_equal(symlink(real, link), 0);
	assert_true(asprintf(&text, "{\"repository\":\"/r\",\"workspace_root\":\"%s\",\"required_files\":[\"%s/a\"]}",
			     link, real) > 0);
	c = load_ok(text, "/");
	free(text);
	bkr_config_free(c);
	assert_true(asprintf(&text, "{\"repository\":\"/r\",\"workspace_root\":\"%s\",\"required_files\":[\"%s/a\"]}",
			     link, f->dir) > 0);
	expect_error(text, "key 'required_files[0]'", "outside workspace_root");
	free(text);
}

/* ---- errors ------------------------------------------------------------------------ */

static void test_wrong_types(void **state)
{
	static const struct { const char *rest, *key, *what; } cases[] = {
		{ "\"sources\": {}", "sources", "expected an array of objects" },
		{ "\"sources\": [1]", "sources[0]", "expected an object" },
		{ "\"sources\": [{\"name\": \"a\"}, {\"name\": 5}]", "sources[1].name", "expected a string" },
		{ "\"sources\": [{\"paths\": \"/x\"}]", "sources[0].paths", "expected an array of strings" },
		{ "\"sources\": [{\"paths\": [\"/x\", 3]}]", "sources[0].paths", "expected an array of strings" },
		{ "\"sources\": [{\"excludes\": [true]}]", "sources[0].excludes", "expected an array of strings" },
		{ "\"sources\": [{\"priority\": \"high\"}]", "sources[0].priority", "expected a number" },
		{ "\"sources\": [{\"priority\": 1.5}]", "sources[0].priority", "expected an integer" },
		{ "\"sources\": [{\"schedule\": 1}]", "sources[0].schedule", "expected a string" },
		{ "\"retention\": []", "retention", "expected an object" },
		{ "\"retention\": {\"keep_last\": \"3\"}", "retention.keep_last", "expected a number" },
		{ "\"retention\": {\"keep_hourly\": null}", "retention.keep_hourly", "expected a number" },
		{ "\"retention\": {\"keep_daily\": true}", "retention.keep_daily", "expected a number" },
		{ "\"retention\": {\"keep_weekly\": [1]}", "retention.keep_weekly", "expected a number" },
		{ "\"retention\": {\"keep_monthly\": {}}", "retention.keep_monthly", "expected a number" },
		{ "\"retention\": {\"keep_within\": 7}", "retention.keep_within", "duration string" },
		{ "\"retention\": {\"snapshot\": 5}", "retention.snapshot", "expected an object" },
		{ "\"retention\": {\"full\": {\"keep_last\": \"x\"}}", "retention.full.keep_last", "expected a number" },
		{ "\"tiers\": \"warm\"", "tiers", "expected an object" },
		{ "\"tiers\": {\"warm\": \"/x\"}", "tiers.warm", "expected an object" },
		{ "\"tiers\": {\"warm\": {\"path\": 1}}", "tiers.warm.path", "expected a string" },
		{ "\"tiers\": {\"cold\": {\"path\": \"/c\", \"after_days\": \"30\"}}", "tiers.cold.after_days", "expected a number" },
		{ "\"compression\": 1", "compression", "expected an object" },
		{ "\"compression\": {\"level\": \"fast\"}", "compression.level", "expected a number" },
		{ "\"log_dir\": [\"/l\"]", "log_dir", "expected a string" },
		{ "\"metrics_file\": 1", "metrics_file", "expected a string" },
		{ "\"alert_command\": \"page ops\"", "alert_command", "expected an array of strings" },
		{ "\"alert_timeout\": 0", "alert_timeout", "between 1 and 86400" },
		{ "\"alert_timeout\": 1.5", "alert_timeout", "without a fraction" },
		{ "\"alert_timeout\": \"2d\"", "alert_timeout", "from 1 s to 1 d, not 2d" },
		{ "\"alert_timeout\": \"0\"", "alert_timeout", "from 1 s to 1 d" },
		{ "\"alert_timeout\": \"soon\"", "alert_timeout", "invalid duration 'soon'" },
		{ "\"alert_timeout\": [30]", "alert_timeout", "a number of seconds or a duration" },
		{ "\"recovery\": [1]", "recovery", "expected an object" },
		{ "\"recovery\": \"x\"", "recovery", "expected an object" },
		{ "\"required_files\": \"a\"", "required_files", "expected an array of strings" },
		{ "\"protected_patterns\": [1]", "protected_patterns", "expected an array of strings" },
	};
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		expect_key_error(cases[i].rest, cases[i].key, cases[i].what);

	/* the required keys themselves */
	expect_error("{\"repository\": 1, \"workspace_root\": \"/w\"}", "key 'repository'", "expected a string");
	expect_error("{\"repository\": \"/r\", \"workspace_root\": null}", "key 'workspace_root'", "expected a string");
}

static void test_missing_required(void **state)
{
	(void)state;
	expect_error("{\"workspace_root\": \"/w\"}", "key 'repository'", "missing");
	expect_error("{\"repository\": \"/r\"}", "key 'workspace_root'", "missing");
	expect_error("{}", "key 'repository'", "missing");
	expect_error("{\"repository\": \"\", \"workspace_root\": \"/w\"}", "key 'repository'", "non-empty");
	expect_key_error("\"tiers\": {\"warm\": {\"after_days\": 3}}", "tiers.warm.path", "missing");
}

static void test_unknown_keys(void **state)
{
	(void)state;
	expect_key_error("\"repositry\": \"/r\"", "repositry", "unknown key");
	expect_key_error("\"sources\": [{\"name\": \"a\", \"exclude\": []}]", "sources[0].exclude", "unknown key");
	expect_key_error("\"retention\": {\"keep_dayly\": 7}", "retention.keep_dayly", "unknown key");
	expect_key_error("\"retention\": {\"weekly\": {}}", "retention.weekly", "unknown key");
	expect_key_error("\"retention\": {\"full\": {\"snapshot\": {}}}", "retention.full.snapshot", "unknown key");
	expect_key_error("\"tiers\": {\"hot\": {\"path\": \"/h\"}}", "tiers.hot", "unknown key");
	expect_key_error("\"tiers\": {\"warm\": {\"path\": \"/h\", \"days\": 1}}", "tiers.warm.days", "unknown key");
	expect_key_error("\"compression\": {\"codec\": \"zlib\"}", "compression.codec", "unknown key");
	/* the message lists what is allowed there */
	expect_key_error("\"compression\": {\"lvl\": 1}", "compression.lvl", "known keys here: level");
	/* repeated keys, at every depth, named by their whole path */
	expect_key_error("\"log_dir\": \"/a\", \"log_dir\": \"/b\"", "log_dir", "more than once");
	expect_key_error("\"sources\": [{\"name\": \"a\"}, {\"name\": \"b\", \"name\": \"c\"}]", "sources[1].name",
			 "more than once");
	expect_key_error("\"retention\": {\"full\": {\"keep_last\": 1, \"keep_last\": 2}}",
			 "retention.full.keep_last", "more than once");
	expect_key_error("\"recovery\": {\"rules\": [{\"pattern\": \"a\", \"strategies\": [\"backup\"]}], \"rules\": []}",
			 "recovery.rules", "more than once");
	expect_key_error("\"recovery\": {\"rules\": [{\"pattern\": \"a\", \"pattern\": \"b\", \"strategies\": []}]}",
			 "recovery.rules[0].pattern", "more than once");
	expect_key_error("\"recovery\": {\"rules\": [{\"pattern\": \"a\", \"strategies\": [{\"type\": \"mongodb\", "
			 "\"filter\": {\"id\": 1, \"x\": [[{\"k\": 1, \"k\": 2}]]}}]}]}",
			 "recovery.rules[0].strategies[0].filter.x[0][0].k", "more than once");
	/* the value of a comment is not looked into */
	bkr_config_free(load_ok(BASE ",\"_note\":{\"a\":1,\"a\":2}}", "/"));
	/* comments are fine anywhere */
	bkr_config_free(load_ok(BASE ",\"_note\":1,\"retention\":{\"_why\":\"x\"}}", "/"));
	/* the recovery section is not checked here */
	bkr_config_free(load_ok(BASE ",\"recovery\":{\"anything\":[1,2]}}", "/"));
}

static void test_bad_values(void **state)
{
	static const struct { const char *rest, *key, *what; } cases[] = {
		{ "\"compression\": {\"level\": 10}", "compression.level", "between 0 and 9" },
		{ "\"compression\": {\"level\": -1}", "compression.level", "between 0 and 9" },
		{ "\"retention\": {\"keep_last\": -1}", "retention.keep_last", "between 0 and" },
		{ "\"retention\": {\"keep_daily\": 1e12}", "retention.keep_daily", "between 0 and" },
		{ "\"retention\": {\"keep_within\": \"7 days\"}", "retention.keep_within", "invalid duration '7 days'" },
		{ "\"retention\": {\"keep_within\": \"\"}", "retention.keep_within", "invalid duration" },
		{ "\"retention\": {\"keep_within\": \"2h30m\"}", "retention.keep_within", "m is months" },
		{ "\"retention\": {\"snapshot\": {\"keep_within\": \"d\"}}", "retention.snapshot.keep_within", "invalid duration" },
		{ "\"sources\": []", "sources", "at least one source" },
		{ "\"sources\": [{\"schedule\": \"monthly\"}]", "sources[0].schedule", "hourly" },
		{ "\"sources\": [{\"name\": \"a/b\"}]", "sources[0].name", "not a valid source name" },
		{ "\"sources\": [{\"name\": \"..\"}]", "sources[0].name", "not a valid source name" },
		{ "\"sources\": [{\"name\": \"\"}]", "sources[0].name", "non-empty" },
		/* names are text, as tags are: no control character, UTF-8 (printed, and Prometheus labels) */
		{ "\"sources\": [{\"name\": \"a\\nFAKE\"}]", "sources[0].name", "'a\\x0aFAKE' holds a control character" },
		{ "\"sources\": [{\"name\": \"a\"}, {\"name\": \"e\\u001b[31mX\"}]", "sources[1].name", "control character" },
		{ "\"sources\": [{\"name\": \"d\\u007f\"}]", "sources[0].name", "control character" },
		{ "\"sources\": [{\"name\": \"c1\\u0085\"}]", "sources[0].name", "control character" },
		{ "\"sources\": [{\"name\": \"tab\\there\"}]", "sources[0].name", "control character" },
		{ "\"sources\": [{\"name\": \"a\xff\"}]", "sources[0].name", "'a\\xff' is not UTF-8 text" },
		{ "\"sources\": [{\"name\": \"\xc0\xaf\"}]", "sources[0].name", "is not UTF-8 text" },
		{ "\"sources\": [{\"paths\": [\"x\\nFAKE\"]}]", "sources[0].name", "the last component of its first path" },
		{ "\"sources\": [{\"name\": \"x\"}, {\"name\": \"y\"}, {\"name\": \"x\"}]", "sources[2].name", "used twice" },
		{ "\"sources\": [{\"paths\": [\"/a\"]}, {\"paths\": [\"/b/a\"]}]", "sources[1].name", "used twice" },
		{ "\"sources\": [{\"paths\": []}]", "sources[0].paths", "non-empty array" },
		{ "\"sources\": [{\"paths\": [\"/a\", \"\"]}]", "sources[0].paths[1]", "non-empty" },
		/* one path per source: create refuses more, so config check must too */
		{ "\"sources\": [{\"name\": \"a\"}, {\"name\": \"config\", \"paths\": [\"config\", \"/etc/svc\"]}]",
		  "sources[1].paths", "2 paths: a source backs up one path" },
		{ "\"sources\": [{\"priority\": 5000}]", "sources[0].priority", "between -1000 and 1000" },
		/* an integer key takes an integer as written: not 1e2, not 5.0 (cJSON gives only the double) */
		{ "\"sources\": [{\"priority\": 1e2}]", "sources[0].priority", "without a fraction or an exponent" },
		{ "\"sources\": [{\"name\": \"a\"}, {\"name\": \"b\", \"priority\": 2E0}]", "sources[1].priority", "exponent" },
		{ "\"retention\": {\"keep_last\": 5.0}", "retention.keep_last", "without a fraction" },
		/* not JSON, though cJSON reads it: a leading zero (octal to some readers) */
		{ "\"retention\": {\"keep_last\": 05}", "retention.keep_last", "between 0 and 1000000, written without a leading zero" },
		{ "\"retention\": {\"snapshot\": {\"keep_weekly\": -007}}", "retention.snapshot.keep_weekly", "leading zero" },
		{ "\"retention\": {\"keep_daily\": 00}", "retention.keep_daily", "leading zero" },
		{ "\"sources\": [{\"priority\": 010}]", "sources[0].priority", "leading zero" },
		{ "\"retention\": {\"keep_hourly\": 1000001}", "retention.keep_hourly", "between 0 and 1000000" },
		{ "\"retention\": {\"keep_yearly\": 5.5}", "retention.keep_yearly", "without a fraction" },
		{ "\"retention\": {\"keep_monthly\": \"5\"}", "retention.keep_monthly", "expected a number" },
		{ "\"retention\": {\"_n\": [1.5, {\"a\": 2e3}], \"full\": {\"keep_daily\": 7.00}}", "retention.full.keep_daily", "fraction" },
		{ "\"tiers\": {\"warm\": {\"path\": \"/w\", \"after_days\": 1e1}}", "tiers.warm.after_days", "exponent" },
		{ "\"compression\": {\"level\": 1.0}", "compression.level", "fraction" },
		{ "\"s3\": {\"retry_pause_ms\": 2.5e2}", "s3.retry_pause_ms", "fraction" },
		{ "\"s3\": {\"keep_packs\": 0}", "s3.keep_packs", "between 1 and 64" },
		{ "\"s3\": {\"keep_packs\": 65}", "s3.keep_packs", "between 1 and 64" },
		{ "\"s3\": {\"keep_mib\": \"256\"}", "s3.keep_mib", "expected a number" },
		{ "\"s3\": {\"keep_check_ms\": -1}", "s3.keep_check_ms", "between 1 and 86400000" },
		{ "\"s3\": {\"attempts\": 21}", "s3.attempts", "between 1 and 20" },
		{ "\"s3\": {\"connect_timeout_seconds\": 0}", "s3.connect_timeout_seconds", "between 1 and 600" },
		{ "\"s3\": {\"stall_timeout_seconds\": 1.5}", "s3.stall_timeout_seconds", "fraction" },
		{ "\"alert_command\": []", "alert_command", "non-empty array" },
		/* its program as a recovery command's: a name in PATH or an absolute path */
		{ "\"alert_command\": [\"./page.sh\", \"--team\"]", "alert_command", "the program is a relative path" },
		{ "\"alert_command\": [\"bin/page\"]", "alert_command", "give an absolute path or a name found in PATH" },
		/* required files are in the workspace */
		{ "\"required_files\": [\"a\", \"/etc/passwd\"]", "required_files[1]", "'/etc/passwd' is outside workspace_root /w/ws" },
		{ "\"required_files\": [\"../x\"]", "required_files[0]", "'../x' is outside workspace_root" },
		{ "\"required_files\": [\"a/../../ws2/x\"]", "required_files[0]", "outside" },
		{ "\"required_files\": [\".\"]", "required_files[0]", "'.' is the directory workspace_root /w/ws" },
		/* the metrics file is a file: a name of a directory is refused */
		{ "\"metrics_file\": \"/var/lib/prom/\"", "metrics_file", "names a directory; give the file's path (e.g. /var/lib/prom/bkr.prom)" },
		{ "\"metrics_file\": \"m/.\"", "metrics_file", "names a directory" },
		{ "\"metrics_file\": \"..\"", "metrics_file", "names a directory" },
		{ "\"metrics_file\": \"/tmp\"", "metrics_file", "/tmp is a directory" },
		{ "\"tiers\": {\"warm\": {\"path\": \"\"}}", "tiers.warm.path", "non-empty" },
		{ "\"tiers\": {\"warm\": {\"path\": \"/w\", \"after_days\": -3}}", "tiers.warm.after_days", "between 0" },
		{ "\"tiers\": {\"warm\": {\"path\": \"/w\", \"after_days\": 40}, \"cold\": {\"path\": \"/c\"}}",
		  "tiers.cold.after_days", "less than tiers.warm.after_days" },
		{ "\"tiers\": {\"warm\": {\"path\": \"/w\"}, \"cold\": {\"path\": \"/w/\"}}", "tiers.cold.path", "same directory" },
		{ "\"tiers\": {\"warm\": {\"path\": \"/t/w\"}, \"cold\": {\"path\": \"/t\"}}", "tiers.warm.path",
		  "/t/w is inside tiers.cold.path /t" },
		{ "\"tiers\": {\"warm\": {\"path\": \"/t\"}, \"cold\": {\"path\": \"/t/c/\"}}", "tiers.cold.path",
		  "/t/c is inside tiers.warm.path /t" },
		{ "\"tiers\": {\"warm\": {\"path\": \"/r\"}}", "tiers.warm.path", "repository itself" },
		{ "\"tiers\": {\"cold\": {\"path\": \"/r/trash\"}}", "tiers.cold.path", "inside the repository /r" },
		{ "\"tiers\": {\"warm\": {\"path\": \"/r/data/x/\"}}", "tiers.warm.path", "inside the repository" },
		{ "\"tiers\": {\"cold\": {\"path\": \"/\"}}", "tiers.cold.path", "holds the repository /r" },
	};
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		expect_key_error(cases[i].rest, cases[i].key, cases[i].what);
	/* the default source is named after workspace_root */
	expect_error("{\"repository\": \"/r\", \"workspace_root\": \"/w/x\\u001b[2J\"}", "key 'workspace_root'",
		     "name 'x\\x1b[2J' (its last component) holds a control character");
	expect_error("{\"repository\": \"/r\", \"workspace_root\": \"/w/\xff\"}", "key 'workspace_root'", "not UTF-8");
	/* a path may hold them (the only way to name such a file), a UTF-8 name anything printable */
	/* integers as written, beside numbers with fractions elsewhere (comments, recovery) */
	bkr_config *c = load_ok(BASE ",\"_x\":[1.5,{\"e\":1e9}],\"recovery\":{\"_t\":2.5},\"retention\":{\"keep_last\":-0,"
				"\"keep_daily\":7},\"sources\":[{\"priority\":-12}],\"compression\":{\"level\":9}}", "/");
	assert_int_equal(c->retention.policy.keep_last, 0);
	assert_int_equal(c->retention.policy.keep_daily, 7);
	assert_int_equal(c->sources[0].priority, -12);
	assert_int_equal(c->compression_level, 9);
	assert_non_null(strstr(c->recovery_json, "2.5"));
	bkr_config_free(c);
	/* a UTF-8 byte order mark is skipped; positions count from after it */
	c = load_ok("\xef\xbb\xbf" BASE "}", "/");
	bkr_config_free(c);
	expect_error("\xef\xbb\xbf{\"repository\" 1}", "invalid JSON at line 1, column 15", NULL);
	c = load_ok(BASE ",\"required_files\":[\"a/../b\",\"/w/ws/c/d\",\"~x\"]}", "/");
	assert_int_equal(c->nrequired_files, 3);
	assert_string_equal(c->required_files[0], "/w/ws/b");
	assert_string_equal(c->required_files[1], "/w/ws/c/d");
	assert_string_equal(c->required_files[2], "/w/ws/~x");
	bkr_config_free(c);
	c = load_ok(BASE ",\"alert_command\":[\"notify-ops\",\"./arg\"]}", "/"); /* looked up in PATH */
	assert_string_equal(c->alert_command[0], "notify-ops");
	bkr_config_free(c);
	c = load_ok(BASE ",\"metrics_file\":\"/tmp/no-such-dir/bkr.prom\"}", "/");
	assert_string_equal(c->metrics_file, "/tmp/no-such-dir/bkr.prom");
	bkr_config_free(c);
	c = load_ok(BASE ",\"sources\":[{\"name\":\"caf\xc3\xa9 \\\"q\\\"\",\"paths\":[\"a\\nb\xff\"]}]}", "/");
	assert_string_equal(c->sources[0].name, "caf\xc3\xa9 \"q\"");
	assert_string_equal(c->sources[0].paths[0], "/w/ws/a\nb\xff");
	bkr_config_free(c);
}

/* A duration refused names the value whole and ends with the reason: the
 * message was cut to 512 bytes twice (once copied aside, once in key_error),
 * losing a long value's end and the rule after it. */
static void test_duration_message_whole(void **state)
{
	static const char *const keys[] = { "retention.keep_within", "alert_timeout" };
	char value[601], rest[700], want[1200];
	(void)state;

	for (size_t i = 0; i + 2 < sizeof(value); i += 2) /* "1d1d...": a unit out of order */
		memcpy(value + i, "1d", 2);
	value[sizeof(value) - 1] = '\0';
	for (size_t k = 0; k < 2; k++) {
		bkr_config *c = NULL;
		char *text;
		if (k == 0)
			snprintf(rest, sizeof(rest), "\"retention\": {\"keep_within\": \"%s\"}", value);
		else
			snprintf(rest, sizeof(rest), "\"alert_timeout\": \"%s\"", value);
		text = with(rest);
		assert_int_equal(bkr_config_from_string(&c, text, strlen(text), "bkr.json", "/base"), BKR_EINVAL);
		assert_null(c);
		snprintf(want, sizeof(want), "bkr.json: key '%s': invalid duration '%s': a unit out of order (units go "
			 "from the largest down: y, m, w, d, h, min, s)", keys[k], value);
		assert_string_equal(bkr_error_message(), want);
		free(text);
	}
}

static void test_bad_json(void **state)
{
	(void)state;
	/* a missing comma on line 4 */
	expect_error("{\n  \"repository\": \"/r\",\n  \"workspace_root\": \"/w\"\n  \"log_dir\": \"/l\"\n}\n",
		     "invalid JSON at line 4, column 3", "near '\"log_dir\": \"/l\"'");
	expect_error("{\"repository\": ", "invalid JSON", "end of file");
	expect_error("", "invalid JSON", "end of file");
	expect_error("   \n", "invalid JSON", "line 2");
	expect_error(BASE "} trailing", "invalid JSON at line 1, column", "near 'trailing'");
	expect_error("[1, 2]", "expected a JSON object", NULL);
	expect_error("\"just a string\"", "expected a JSON object", NULL);
	expect_error("{'repository': '/r'}", "invalid JSON at line 1, column", "near");
	/* an error inside a string names its key */
	expect_error(BASE ",\"sources\":[{\"name\":\"a\"},{\"paths\":[\"x\", \"\\ud800\"]}]}",
		     "bkr.json: key 'sources[1].paths[1]': invalid JSON at line 1, column", "near '\\ud800");
	expect_error(BASE ",\"log_dir\":\"a\\q\"}", "key 'log_dir': invalid JSON", NULL);
	{
		bkr_config *c = NULL;
		assert_int_equal(bkr_config_from_string(&c, "{\"a\0\":1}", 8, "bkr.json", "/"), BKR_EINVAL);
		assert_non_null(strstr(bkr_error_message(), "NUL"));
	}
	{
		/* nesting deeper than cJSON parses (1000 levels) is invalid JSON, however deep: the
		 * walk naming the key of a bad string went as deep as the text and overflowed the
		 * stack (SIGSEGV) on 100000 '[' */
		size_t n = 1 << 20;
		char *deep = malloc(n + 1);
		assert_non_null(deep);
		memset(deep, '[', n);
		deep[n] = '\0';
		expect_error(deep, "invalid JSON at line 1, column 1001", "near '[[[[");
		memcpy(deep, "{\"a\":", 5);
		expect_error(deep, "invalid JSON at line 1, column 1005", NULL);
		free(deep);
	}
}

/* A NUL escaped into a string would cut a path short silently: refused, naming the key. */
static void test_nul_in_strings(void **state)
{
	(void)state;
	expect_key_error("\"log_dir\": \"/l\\u0000/x\"", "log_dir", "NUL");
	expect_key_error("\"sources\": [{\"paths\": [\"/a\", \"/b\\u0000/c\"]}]", "sources[0].paths[1]", "NUL");
	expect_key_error("\"tiers\": {\"warm\": {\"path\": \"\\u0000\"}}", "tiers.warm.path", "NUL");
	expect_error("{\"repository\": \"/r\\u0000\", \"workspace_root\": \"/w\"}", "key 'repository'", "NUL");
	/* an escaped backslash before "u0000" is no NUL */
	bkr_config *c = load_ok(BASE ",\"log_dir\":\"/l\\\\u0000\"}", "/");
	assert_string_equal(c->log_dir, "/l\\u0000");
	bkr_config_free(c);
	/* cJSON's whitespace is every byte up to the space: a form feed before an
	 * object in an array once put the walk out of step and made it spin */
	expect_key_error("\"x\": [\f{\"a\": 1}, \"\\u0000\"]", "x[1]", "NUL");
	expect_key_error("\"x\": {\v\"a\"\f:\x01[\x1f\"\\u0000\"]}", "x.a[0]", "NUL");
}

/* Duplicate checks are O(n log n): 200,000 keys (2.6 MB), and 50,000 sources. */
static void test_many_keys(void **state)
{
	enum { N = 200000, NS = 50000 };
	size_t cap = (size_t)N * 24 + 256, n = 0;
	char *text = malloc(cap);
	bkr_config *c = NULL;
	(void)state;

	n += (size_t)snprintf(text + n, cap - n, BASE);
	for (int i = 0; i < N; i++)
		n += (size_t)snprintf(text + n, cap - n, ",\"_c%d\":0", i);
	snprintf(text + n, cap - n, ",\"_c%d\":1}", N - 7);
	expect_error(text, "key '_c199993'", "more than once");

	n = (size_t)snprintf(text, cap, BASE ",\"sources\":[");
	for (int i = 0; i < NS; i++)
		n += (size_t)snprintf(text + n, cap - n, "%s{\"name\":\"s%d\"}", i ? "," : "", i);
	snprintf(text + n, cap - n, "]}");
	c = load_ok(text, "/");
	assert_int_equal(c->nsources, NS);
	bkr_config_free(c);
	snprintf(text + n, cap - n, ",{\"name\":\"s3\"}]}");
	expect_error(text, "key 'sources[50000].name'", "used twice");
	free(text);
}

/* A FIFO as the configuration is refused at once (it blocked forever), and so
 * is a configuration over 4 MiB: both configuration errors (exit 2). */
static void test_load_not_regular(void **state)
{
	struct fixture *f = *state;
	char p[PATH_MAX + 32];
	bkr_config *c = NULL;
	FILE *fp;

	snprintf(p, sizeof(p), "%s/fifo.json", f->dir);
	assert_int_equal(mkfifo(p, 0600), 0);
	assert_int_equal(bkr_config_load(&c, p), BKR_EINVAL);
	assert_null(c);
	assert_non_null(strstr(bkr_error_message(), "not a regular file"));
	assert_non_null(strstr(bkr_error_message(), p));

	snprintf(p, sizeof(p), "%s/big.json", f->dir);
	assert_non_null(fp = fopen(p, "w"));
	fputs(BASE "}", fp);
	assert_int_equal(ftruncate(fileno(fp), (off_t)BKR_CONFIG_MAX_SIZE + 1), 0);
	fclose(fp);
	assert_int_equal(bkr_config_load(&c, p), BKR_EINVAL);
	assert_null(c);
	assert_non_null(strstr(bkr_error_message(), "too large"));
}

/* ---- helpers -------------------------------------------------------------------------- */

static void test_match(void **state)
{
	char *ex[] = { "*.tmp", "cache", "logs/*.log" };
	char *all[] = { "*" };
	char *json[] = { "conversations/*.json" };
	(void)state;

	assert_true(bkr_config_match(ex, 3, "a.tmp"));
	assert_true(bkr_config_match(ex, 3, "dir/sub/b.tmp"));
	assert_true(bkr_config_match(ex, 3, "cache"));
	assert_true(bkr_config_match(ex, 3, "x/cache"));
	assert_true(bkr_config_match(ex, 3, "x/cache/deep/file.bin")); /* below an excluded dir */
	assert_true(bkr_config_match(ex, 3, "logs/app.log"));
	assert_true(bkr_config_match(ex, 3, "/logs/app.log"));
	assert_false(bkr_config_match(ex, 3, "a.tmpx"));
	assert_false(bkr_config_match(ex, 3, "cached"));
	assert_false(bkr_config_match(ex, 3, "other/logs/app.log"));
	assert_false(bkr_config_match(ex, 3, "logs"));
	assert_false(bkr_config_match(ex, 0, "a.tmp"));
	assert_false(bkr_config_match(ex, 3, ""));
	assert_false(bkr_config_match(ex, 3, NULL));
	assert_true(bkr_config_match(all, 1, "any/path/at/all"));
	assert_true(bkr_config_match(json, 1, "conversations/2026/a.json"));
	assert_false(bkr_config_match(json, 1, "config/a.json"));
}

static void test_durations(void **state)
{
	static const struct { const char *s; int64_t v; } ok[] = {
		{ "0", 0 }, { "7d", 7 * 86400 }, { "12h", 12 * 3600 }, { "2w", 14 * 86400 },
		{ "1y6m", 365 * 86400 + 180 * 86400 }, { "90s", 90 }, { "30min", 1800 },
		{ "1d12h", 86400 + 43200 }, { "3600s", 3600 }, { "2h30min", 2 * 3600 + 1800 },
		{ "1y1m1w1d1h1min1s", 365 * 86400 + 30 * 86400 + 7 * 86400 + 86400 + 3600 + 60 + 1 },
	};
	static const char *const bad[] = { "", "d", "7", "7 d", "7x", "-1d", "1.5d", "7dd" };
	static const char *const huge[] = { "99999999999999999999d", "1000000000000y", "9223372036854775807s" };
	int64_t v;
	(void)state;
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		assert_int_equal(bkr_config_parse_duration(ok[i].s, &v), 0);
		assert_int_equal(v, ok[i].v);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (bkr_config_parse_duration(bad[i], &v) != BKR_EINVAL)
			fail_msg("'%s' accepted", bad[i]);
		assert_non_null(strstr(bkr_error_message(), "invalid duration"));
	}
	/* well-formed but past int64 seconds: said so, not "invalid" */
	for (size_t i = 0; i < sizeof(huge) / sizeof(huge[0]); i++) {
		if (bkr_config_parse_duration(huge[i], &v) != BKR_EINVAL)
			fail_msg("'%s' accepted", huge[i]);
		assert_non_null(strstr(bkr_error_message(), "out of range"));
		assert_non_null(strstr(bkr_error_message(), huge[i]));
	}
	/* units from the largest down: "m" after hours is months, not minutes */
	assert_int_equal(bkr_config_parse_duration("2h30m", &v), BKR_EINVAL);
	assert_non_null(strstr(bkr_error_message(), "m is months; use min for minutes"));
	assert_int_equal(bkr_config_parse_duration("1d2w", &v), BKR_EINVAL);
	assert_non_null(strstr(bkr_error_message(), "from the largest"));
	assert_int_equal(bkr_config_parse_duration("30min1h", &v), BKR_EINVAL);
}

/* the one rule for a numeric option's value (bkr's --threads, --keep-*...; bkrfs's -o uid=...) */
static void test_parse_uint(void **state)
{
	static const struct { const char *s; int base; uint64_t max, v; } ok[] = {
		{ "0", 10, 9, 0 }, { "9", 10, 9, 9 }, { "256", 10, 256, 256 }, { "1000000", 10, 1000000, 1000000 },
		{ "18446744073709551615", 10, UINT64_MAX, UINT64_MAX }, { "022", 8, 0777, 022 }, { "0", 8, 0777, 0 },
		{ "0777", 8, 0777, 0777 },
	};
	static const struct { const char *s; int base; uint64_t max; const char *why; } bad[] = {
		{ "", 10, 9, "decimal digits" }, { "+5", 10, 9, "decimal digits" }, { " 5", 10, 9, "no sign, space" },
		{ "5 ", 10, 9, "decimal" }, { "05", 10, 9, "leading zero" }, { "00", 10, 9, "leading zero" },
		{ "-1", 10, 9, "decimal" }, { "0x10", 10, 99, "decimal" }, { "5.0", 10, 9, "decimal" },
		{ "1e3", 10, 9999, "decimal" }, { "10", 10, 9, "more than 9" }, { "257", 10, 256, "more than 256" },
		{ "18446744073709551616", 10, UINT64_MAX, "more than 18446744073709551615" },
		{ "99999999999999999999999", 10, UINT64_MAX, "more than" }, { "8", 8, 0777, "octal digits" },
		{ "1000", 8, 0777, "more than 511" }, { "+22", 8, 0777, "octal" }, { "", 8, 0777, "octal" },
	};
	uint64_t v;
	(void)state;
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		if (bkr_config_parse_uint(ok[i].s, ok[i].base, ok[i].max, &v) != 0)
			fail_msg("'%s' refused: %s", ok[i].s, bkr_error_message());
		assert_true(v == ok[i].v);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		v = 4242;
		if (bkr_config_parse_uint(bad[i].s, bad[i].base, bad[i].max, &v) != BKR_EINVAL)
			fail_msg("'%s' accepted", bad[i].s);
		if (!strstr(bkr_error_message(), bad[i].why))
			fail_msg("'%s': %s", bad[i].s, bkr_error_message());
		assert_true(v == 4242); /* nothing set */
	}
	assert_int_equal(bkr_config_parse_uint(NULL, 10, 9, &v), BKR_EINVAL);
}

static void test_schedules(void **state)
{
	bkr_schedule s;
	(void)state;
	for (int i = 0; i <= BKR_SCHEDULE_MANUAL; i++) {
		assert_int_equal(bkr_schedule_parse(bkr_schedule_name((bkr_schedule)i), &s), 0);
		assert_int_equal(s, i);
	}
	assert_int_equal(bkr_schedule_parse("monthly", &s), BKR_EINVAL);
	assert_non_null(strstr(bkr_error_message(), "monthly"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_url_locations, setup, teardown),
		cmocka_unit_test_setup_teardown(test_two_line_config, setup, teardown),
		cmocka_unit_test_setup_teardown(test_load_file_relative_paths, setup, teardown),
		cmocka_unit_test_setup_teardown(test_full_config, setup, teardown),
		cmocka_unit_test_setup_teardown(test_to_json_round_trip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_config_default, setup, teardown),
		cmocka_unit_test_setup_teardown(test_required_real_path, setup, teardown),
		cmocka_unit_test(test_wrong_types),
		cmocka_unit_test(test_missing_required),
		cmocka_unit_test(test_unknown_keys),
		cmocka_unit_test(test_bad_values),
		cmocka_unit_test(test_parse_uint),
		cmocka_unit_test(test_bad_json),
		cmocka_unit_test(test_nul_in_strings),
		cmocka_unit_test(test_many_keys),
		cmocka_unit_test_setup_teardown(test_load_not_regular, setup, teardown),
		cmocka_unit_test(test_match),
		cmocka_unit_test(test_durations),
		cmocka_unit_test(test_duration_message_whole),
		cmocka_unit_test(test_schedules),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
