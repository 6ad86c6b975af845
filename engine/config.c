/** @file
 * The user configuration file (see bkr/config.h and docs/config.md).
 *
 * Loading walks the cJSON tree for a member name repeated in any object, at
 * any depth, then makes one pass over it: every object's member names are
 * checked against the list of known keys first (typo protection), then each
 * known key is type-checked and converted.  The first problem is
 * recorded as "<file>: key '<path>': <what was expected>" and stops the load.
 */
#include "bkr/config.h"
#include "bkr/error.h"
#include "bkr/host.h"
#include "bkr/io.h"
#include "bkr/pattern.h"
#include "bkr/store.h"
#include "bkr/utf8.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define KEYPATH_MAX 256
#define COUNT_MAX 1000000    /* upper bound of retention counts */
#define DAYS_MAX 36500       /* upper bound of tier ages */

/* ---- small helpers ------------------------------------------------------- */

static const char *const schedule_names[] = {
	[BKR_SCHEDULE_HOURLY] = "hourly",
	[BKR_SCHEDULE_DAILY] = "daily",
	[BKR_SCHEDULE_WEEKLY] = "weekly",
	[BKR_SCHEDULE_MANUAL] = "manual",
};

const char *bkr_schedule_name(bkr_schedule s)
{
	if ((unsigned)s > BKR_SCHEDULE_MANUAL)
		return "unknown";
	return schedule_names[s];
}

int bkr_schedule_parse(const char *s, bkr_schedule *out)
{
	for (unsigned i = 0; i <= BKR_SCHEDULE_MANUAL; i++) {
		if (s && !strcmp(s, schedule_names[i])) {
			*out = (bkr_schedule)i;
			return 0;
		}
	}
	return bkr_error_set(BKR_EINVAL, "unknown schedule '%s' (expected hourly, daily, weekly or manual)",
			     s ? s : "(null)");
}

static void free_strv(char **v, size_t n)
{
	if (!v)
		return;
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

static char **strv_new(size_t n)
{
	return calloc(n + 1, sizeof(char *));
}

/*
 * Lexically normalise an absolute path: collapse "//", drop ".", resolve
 * ".." (never above "/"), no trailing '/'.  In place; the result is never longer.
 */
static void normalize(char *p)
{
	char *out = p, *in = p;
	size_t n;

	/* p starts with '/' */
	while (*in) {
		while (*in == '/')
			in++;
		if (!*in)
			break;
		n = strcspn(in, "/");
		if (n == 1 && in[0] == '.') {
			/* skip */
		} else if (n == 2 && in[0] == '.' && in[1] == '.') {
			while (out > p && *--out != '/')
				;
		} else {
			*out++ = '/';
			memmove(out, in, n);
			out += n;
		}
		in += n;
	}
	if (out == p)
		*out++ = '/';
	*out = '\0';
}

/* Absolute, normalised form of @p path: "~" is $HOME, relative is against @p base. */
static char *resolve(const char *base, const char *path)
{
	const char *home = getenv("HOME");
	char *out = NULL;
	int n;

	if ((path[0] == '~' && (path[1] == '/' || !path[1])) && home && *home == '/')
		n = asprintf(&out, "%s/%s", home, path + 1);
	else if (path[0] == '/')
		n = asprintf(&out, "%s", path);
	else
		n = asprintf(&out, "%s/%s", base, path);
	if (n < 0)
		return NULL;
	normalize(out);
	return out;
}

/* A repository or tier: a URL ("s3://...") as it is, a path resolved against @p base. */
static char *resolve_location(const char *base, const char *location)
{
	return bkr_store_is_url(location) ? strdup(location) : resolve(base, location);
}

static const char *last_component(const char *path)
{
	const char *s = strrchr(path, '/');
	return s ? s + 1 : path;
}

static bool name_valid(const char *s)
{
	return s && *s && strcmp(s, ".") && strcmp(s, "..") && !strchr(s, '/') && strlen(s) <= 255;
}

/* ---- durations and patterns ---------------------------------------------- */

int bkr_config_parse_duration(const char *s, int64_t *seconds)
{
	static const struct { const char *unit; int64_t mul; } units[] = {
		{ "min", 60 }, { "s", 1 }, { "h", 3600 }, { "d", 86400 }, { "w", 7 * 86400 },
		{ "m", 30 * 86400 }, { "y", 365 * 86400 },
	};
	const char *p = s;
	int64_t total = 0, last = INT64_MAX;

	if (!s || !*s)
		goto bad;
	if (!strcmp(s, "0")) {
		*seconds = 0;
		return 0;
	}
	while (*p) {
		int64_t v = 0;
		size_t u;
		if (*p < '0' || *p > '9')
			goto bad;
		while (*p >= '0' && *p <= '9') {
			if (v > (INT64_MAX - 9) / 10)
				goto huge;
			v = v * 10 + (*p++ - '0');
		}
		for (u = 0; u < sizeof(units) / sizeof(units[0]); u++)
			if (!strncmp(p, units[u].unit, strlen(units[u].unit)))
				break;
		if (u == sizeof(units) / sizeof(units[0]))
			goto bad;
		p += strlen(units[u].unit);
		/* from the largest unit down: "2h30m" is no 2.5 hours but 30 months on */
		if (units[u].mul >= last)
			return bkr_error_set(BKR_EINVAL, "invalid duration '%s': %s (units go from the largest "
					     "down: y, m, w, d, h, min, s)", s, !strcmp(units[u].unit, "m") ?
					     "m is months; use min for minutes" : "a unit out of order");
		last = units[u].mul;
		if (v > (INT64_MAX - total) / units[u].mul)
			goto huge;
		total += v * units[u].mul;
	}
	*seconds = total;
	return 0;
huge:
	return bkr_error_set(BKR_EINVAL, "duration '%s' out of range (more than 292 billion years)", s);
bad:
	return bkr_error_set(BKR_EINVAL, "invalid duration '%s' (expected e.g. \"7d\", \"12h\", \"2w\", \"1y6m\")",
			     s ? s : "(null)");
}

int bkr_config_parse_uint(const char *s, int base, uint64_t max, uint64_t *out)
{
	uint64_t v = 0;

	if (!s || !*s || (base == 10 && s[0] == '0' && s[1]))
		goto bad;
	for (const char *p = s; *p; p++) {
		unsigned d = (unsigned)(unsigned char)*p - '0';
		if (d >= (unsigned)base || d > 9)
			goto bad;
		if (d > max || v > (max - d) / (unsigned)base)
			return bkr_error_set(BKR_EINVAL, "more than %llu", (unsigned long long)max);
		v = v * (unsigned)base + d;
	}
	*out = v;
	return 0;
bad:
	return bkr_error_set(BKR_EINVAL, "expected %s", base == 8 ? "octal digits (no sign or space)" :
			     "decimal digits (no sign, space or leading zero)");
}

bool bkr_config_match(char *const *patterns, size_t n, const char *rel)
{
	return bkr_pattern_match_under((const char *const *)patterns, n, rel);
}

/* ---- freeing and defaults ------------------------------------------------ */

static void source_clear(bkr_config_source *s)
{
	free(s->name);
	free_strv(s->paths, s->npaths);
	free_strv(s->excludes, s->nexcludes);
	memset(s, 0, sizeof(*s));
}

void bkr_config_free(bkr_config *c)
{
	if (!c)
		return;
	free(c->file);
	free(c->base_dir);
	free(c->repository);
	free(c->workspace_root);
	for (size_t i = 0; i < c->nsources; i++)
		source_clear(&c->sources[i]);
	free(c->sources);
	free(c->warm.path);
	free(c->cold.path);
	free(c->log_dir);
	free(c->metrics_file);
	free_strv(c->alert_command, c->nalert_command);
	free(c->recovery_json);
	free_strv(c->required_files, c->nrequired_files);
	free_strv(c->protected_patterns, c->nprotected_patterns);
	free(c->s3.access_key_id);
	free(c->s3.secret_access_key);
	free(c->s3.session_token);
	free(c->s3.region);
	free(c->s3.endpoint_url);
	free(c);
}

const bkr_retention_policy bkr_retention_default = {
	.keep_within_s = 30 * 86400,
};

static char *default_log_dir(void)
{
	char *out = bkr_host_state_dir();

	if (out)
		normalize(out);
	return out;
}

/* Everything except repository, workspace_root and sources. */
static int set_defaults(bkr_config *c)
{
	c->retention.policy = bkr_retention_default;
	c->warm.after_days = 7;
	c->cold.after_days = 30;
	c->compression_level = 1;
	c->s3.path_style = -1;
	if (!(c->log_dir = default_log_dir()))
		return bkr_error_last_code(); /* bkr_host_state_dir's */
	if (!(c->protected_patterns = strv_new(1)) || !(c->protected_patterns[0] = strdup("*")))
		return bkr_error_oom();
	c->nprotected_patterns = 1;
	return 0;
}

/* One source for the whole workspace, named after its last component. */
static int default_source(bkr_config *c)
{
	const char *name = last_component(c->workspace_root);
	bkr_config_source *s;

	if (!(c->sources = calloc(1, sizeof(*c->sources))))
		return bkr_error_oom();
	c->nsources = 1;
	s = &c->sources[0];
	s->schedule = BKR_SCHEDULE_HOURLY;
	if (!(s->name = strdup(*name ? name : "root")) || !(s->paths = strv_new(1)) ||
	    !(s->paths[0] = strdup(c->workspace_root)))
		return bkr_error_oom();
	s->npaths = 1;
	return 0;
}

static char *current_dir(void)
{
	char *cwd = getcwd(NULL, 0);
	if (!cwd)
		bkr_error_set_errno(errno, "cannot read the current directory");
	return cwd;
}

int bkr_config_default(bkr_config **out, const char *repository, const char *workspace)
{
	bkr_config *c = NULL;
	char *cwd = NULL;
	int err = 0;

	*out = NULL;
	if (!repository || !*repository) {
		err = bkr_error_set(BKR_EINVAL, "no repository given");
		goto done;
	}
	if (!(cwd = current_dir())) {
		err = bkr_error_last_code();
		goto done;
	}
	if (!(c = calloc(1, sizeof(*c)))) {
		err = bkr_error_oom();
		goto done;
	}
	if ((err = set_defaults(c)) < 0)
		goto done;
	if (!(c->base_dir = strdup(cwd)) || !(c->repository = resolve_location(cwd, repository)) ||
	    !(c->workspace_root = resolve(cwd, workspace && *workspace ? workspace : "/"))) {
		err = bkr_error_oom();
		goto done;
	}
	if (workspace && *workspace && (err = default_source(c)) < 0)
		goto done;
	*out = c;
	c = NULL;
done:
	free(cwd);
	bkr_config_free(c);
	return err;
}

/* ---- parsing ------------------------------------------------------------- */

struct ctx {
	const char *file;  /* for messages */
	bkr_config *c;
	int err;
};

static int oom(struct ctx *x)
{
	if (!x->err)
		x->err = bkr_error_oom();
	return x->err;
}

static int key_error(struct ctx *x, const char *path, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int key_error(struct ctx *x, const char *path, const char *fmt, ...)
{
	char *msg = NULL;
	va_list ap;

	if (x->err)
		return x->err;
	/* formatted aside (on the heap: kept whole), so an argument may be bkr_error_message() */
	va_start(ap, fmt);
	if (vasprintf(&msg, fmt, ap) < 0)
		msg = NULL;
	va_end(ap);
	if (!msg)
		return oom(x);
	x->err = bkr_error_set(BKR_EINVAL, "%s: key '%s': %s", x->file, path, msg);
	free(msg);
	return x->err;
}

static void keypath(char *out, const char *prefix, const char *key)
{
	if (prefix && *prefix)
		snprintf(out, KEYPATH_MAX, "%.120s.%.120s", prefix, key);
	else
		snprintf(out, KEYPATH_MAX, "%.200s", key);
}

/*
 * Reject a member name repeated in any object below @p item (readers would
 * disagree on which one counts), at every depth: the recovery section and
 * the values inside it too.  @p kp holds the key path of @p item in its first
 * @p base bytes.  The values of '_' keys are comments, not looked into.
 */
static int check_repeats(struct ctx *x, const cJSON *item, char *kp, size_t base)
{
	const cJSON *a;
	const char **names;
	size_t n = 0, i = 0, at;
	bool member = cJSON_IsObject(item);
	int r;

	if (member)
		cJSON_ArrayForEach(a, item)
			n++;
	if (n > 1) { /* the first repeated name, in O(n log n) */
		if (!(names = malloc(n * sizeof(*names))))
			return oom(x);
		n = 0;
		cJSON_ArrayForEach(a, item)
			names[n++] = a->string ? a->string : "";
		r = bkr_json_find_repeat(&at, names, n);
		if (r > 0)
			snprintf(kp + base, KEYPATH_MAX - base, "%s%s", base ? "." : "", names[at]);
		free(names);
		if (r < 0)
			return oom(x);
		if (r > 0)
			return key_error(x, kp, "appears more than once");
	}
	cJSON_ArrayForEach(a, item) {
		if ((cJSON_IsObject(a) || cJSON_IsArray(a)) && !(member && a->string && a->string[0] == '_')) {
			if (member)
				snprintf(kp + base, KEYPATH_MAX - base, "%s%s", base ? "." : "",
					 a->string ? a->string : "");
			else
				snprintf(kp + base, KEYPATH_MAX - base, "[%zu]", i);
			if (check_repeats(x, a, kp, strlen(kp)) < 0)
				return x->err;
			kp[base] = '\0';
		}
		i++;
	}
	return 0;
}

/* Reject unknown member names of @p obj ('_' keys are comments; repeated ones
 * were rejected by check_repeats). */
static int check_keys(struct ctx *x, const cJSON *obj, const char *prefix, const char *const *known)
{
	const cJSON *a;
	char kp[KEYPATH_MAX];

	cJSON_ArrayForEach(a, obj) {
		size_t i;
		keypath(kp, prefix, a->string ? a->string : "");
		if (a->string[0] == '_')
			continue;
		for (i = 0; known[i]; i++)
			if (!strcmp(a->string, known[i]))
				break;
		if (!known[i]) {
			char list[KEYPATH_MAX * 2] = "";
			size_t k = 0;
			for (i = 0; known[i] && k < sizeof(list); i++)
				k += (size_t)snprintf(list + k, sizeof(list) - k, "%s%s", i ? ", " : "", known[i]);
			return key_error(x, kp, "unknown key (known keys here: %s)", list);
		}
	}
	return 0;
}

const char *bkr_config_program_problem(const char *program)
{
	if (program[0] != '/' && strchr(program, '/'))
		return "the program is a relative path, which would depend on the directory bkr runs in: give an "
		       "absolute path or a name found in PATH";
	return NULL;
}

static int get_string(struct ctx *x, const cJSON *it, const char *path, char **out)
{
	if (!cJSON_IsString(it) || !it->valuestring)
		return key_error(x, path, "expected a string");
	if (!*it->valuestring)
		return key_error(x, path, "expected a non-empty string");
	if (!(*out = strdup(it->valuestring)))
		return oom(x);
	return 0;
}

static int get_path(struct ctx *x, const cJSON *it, const char *path, const char *base, char **out)
{
	if (!cJSON_IsString(it) || !it->valuestring)
		return key_error(x, path, "expected a string (a path)");
	if (!*it->valuestring)
		return key_error(x, path, "expected a non-empty path");
	if (!(*out = resolve(base, it->valuestring)))
		return oom(x);
	return 0;
}

static int get_location(struct ctx *x, const cJSON *it, const char *path, const char *base, char **out)
{
	if (!cJSON_IsString(it) || !it->valuestring)
		return key_error(x, path, "expected a string (a path or an s3:// URL)");
	if (!*it->valuestring)
		return key_error(x, path, "expected a non-empty path");
	if (!(*out = resolve_location(base, it->valuestring)))
		return oom(x);
	return 0;
}

/* An array of non-empty strings; paths are resolved against @p base when non-NULL. */
static int get_strv(struct ctx *x, const cJSON *it, const char *path, const char *base,
		    bool nonempty, char ***out, size_t *n)
{
	const cJSON *el;
	size_t cnt, i = 0;
	char **v;

	if (!cJSON_IsArray(it))
		return key_error(x, path, "expected an array of strings");
	cJSON_ArrayForEach(el, it) {
		if (!cJSON_IsString(el) || !el->valuestring)
			return key_error(x, path, "expected an array of strings");
		if (!*el->valuestring) {
			char kp[KEYPATH_MAX];
			snprintf(kp, sizeof(kp), "%s[%zu]", path, i);
			return key_error(x, kp, "expected a non-empty string");
		}
		i++;
	}
	cnt = i;
	if (nonempty && !cnt)
		return key_error(x, path, "expected a non-empty array of strings");
	if (!(v = strv_new(cnt)))
		return oom(x);
	i = 0;
	cJSON_ArrayForEach(el, it) {
		v[i] = base ? resolve(base, el->valuestring) : strdup(el->valuestring);
		if (!v[i]) {
			free_strv(v, i);
			return oom(x);
		}
		i++;
	}
	*out = v;
	*n = cnt;
	return 0;
}

/* Set on a number whose text has a fraction or an exponent (mark_numbers): cJSON
 * keeps only the double, and 1e2 or 5.0 is not an integer as written.  A bit
 * of cJSON's type field that cJSON itself never sets or reads (it looks at
 * the low byte, cJSON_IsReference and cJSON_StringIsConst). */
#define NOT_INTEGER_TEXT (1 << 14)
/* Set on a number whose text has a leading zero (05, -007): not JSON (RFC 8259
 * allows none), though cJSON reads it, and an octal 010 to some readers. */
#define LEADING_ZERO_TEXT (1 << 13)

static int get_int(struct ctx *x, const cJSON *it, const char *path, int min, int max, int *out)
{
	double v;
	if (!cJSON_IsNumber(it))
		return key_error(x, path, "expected a number");
	v = it->valuedouble;
	if (it->type & NOT_INTEGER_TEXT)
		return key_error(x, path, "expected an integer between %d and %d, written without a fraction or an exponent",
				 min, max);
	if (it->type & LEADING_ZERO_TEXT)
		return key_error(x, path, "expected an integer between %d and %d, written without a leading zero", min,
				 max);
	if (!(v >= min && v <= max) || v != (double)(int)v)
		return key_error(x, path, "expected an integer between %d and %d", min, max);
	*out = (int)v;
	return 0;
}

/* Source names are unique (checked in O(n log n)). */
static int check_source_names(struct ctx *x)
{
	const bkr_config *c = x->c;
	const char **names;
	char kp[KEYPATH_MAX];
	size_t at;
	int r;

	if (c->nsources < 2)
		return 0;
	if (!(names = malloc(c->nsources * sizeof(*names))))
		return oom(x);
	for (size_t i = 0; i < c->nsources; i++)
		names[i] = c->sources[i].name;
	r = bkr_json_find_repeat(&at, names, c->nsources);
	free(names);
	if (r < 0)
		return oom(x);
	if (r == 0)
		return 0;
	snprintf(kp, sizeof(kp), "sources[%zu].name", at);
	return key_error(x, kp, "source name '%s' is used twice", c->sources[at].name);
}

static int parse_sources(struct ctx *x, const cJSON *arr)
{
	static const char *const known[] = { "name", "paths", "excludes", "priority", "schedule", NULL };
	bkr_config *c = x->c;
	const cJSON *el, *it;
	char sp[KEYPATH_MAX], kp[KEYPATH_MAX], esc[4 * 255 + 4];
	size_t cnt, i = 0;

	if (!cJSON_IsArray(arr))
		return key_error(x, "sources", "expected an array of objects");
	cnt = (size_t)cJSON_GetArraySize(arr);
	if (!cnt)
		return key_error(x, "sources", "expected at least one source (omit the key for the default)");
	if (!(c->sources = calloc(cnt, sizeof(*c->sources))))
		return oom(x);
	cJSON_ArrayForEach(el, arr) {
		bkr_config_source *s = &c->sources[i];
		snprintf(sp, sizeof(sp), "sources[%zu]", i);
		if (!cJSON_IsObject(el))
			return key_error(x, sp, "expected an object");
		c->nsources = ++i;
		s->schedule = BKR_SCHEDULE_HOURLY;
		if (check_keys(x, el, sp, known) < 0)
			return x->err;
		keypath(kp, sp, "paths");
		if ((it = cJSON_GetObjectItemCaseSensitive(el, "paths"))) {
			if (get_strv(x, it, kp, c->workspace_root, true, &s->paths, &s->npaths) < 0)
				return x->err;
			/* create, the routines and health back up and judge one path per
			 * source: a second one would pass config check and fail every backup */
			if (s->npaths > 1)
				return key_error(x, kp, "%zu paths: a source backs up one path (give each "
						 "directory a source of its own)", s->npaths);
		} else {
			if (!(s->paths = strv_new(1)) || !(s->paths[0] = strdup(c->workspace_root)))
				return oom(x);
			s->npaths = 1;
		}
		keypath(kp, sp, "name");
		if ((it = cJSON_GetObjectItemCaseSensitive(el, "name"))) {
			if (get_string(x, it, kp, &s->name) < 0)
				return x->err;
		} else {
			const char *n = last_component(s->paths[0]);
			if (!(s->name = strdup(*n ? n : "root")))
				return oom(x);
		}
		if (!name_valid(s->name))
			return key_error(x, kp, "'%s' is not a valid source name (no '/', not '.' or '..')",
					 bkr_text_escape(esc, sizeof(esc), s->name, strlen(s->name)));
		/* a name is printed (health, routines, ls) and is a Prometheus label: text, as a tag is */
		if (!bkr_utf8_valid(s->name, strlen(s->name)) || bkr_text_has_control(s->name, strlen(s->name)))
			return key_error(x, kp, "source name '%s'%s %s", bkr_text_escape(esc, sizeof(esc), s->name, strlen(s->name)),
					 it ? "" : " (the last component of its first path; give a \"name\")",
					 bkr_utf8_valid(s->name, strlen(s->name)) ? "holds a control character" : "is not UTF-8 text");
		keypath(kp, sp, "excludes");
		if ((it = cJSON_GetObjectItemCaseSensitive(el, "excludes")) &&
		    get_strv(x, it, kp, NULL, false, &s->excludes, &s->nexcludes) < 0)
			return x->err;
		keypath(kp, sp, "priority");
		if ((it = cJSON_GetObjectItemCaseSensitive(el, "priority")) &&
		    get_int(x, it, kp, -1000, 1000, &s->priority) < 0)
			return x->err;
		keypath(kp, sp, "schedule");
		if ((it = cJSON_GetObjectItemCaseSensitive(el, "schedule"))) {
			if (!cJSON_IsString(it) || !it->valuestring)
				return key_error(x, kp, "expected a string");
			if (bkr_schedule_parse(it->valuestring, &s->schedule) < 0)
				return key_error(x, kp, "expected \"hourly\", \"daily\", \"weekly\" or \"manual\"");
		}
	}
	return check_source_names(x);
}

static const char *const policy_keys[] = { "keep_last", "keep_hourly", "keep_daily",
					   "keep_weekly", "keep_monthly", "keep_yearly", "keep_within", NULL };

/* Fill @p p from the policy keys of @p obj (other keys already checked). */
static int parse_policy(struct ctx *x, const cJSON *obj, const char *prefix, bkr_retention_policy *p)
{
	int *const counts[] = { &p->keep_last, &p->keep_hourly, &p->keep_daily,
				&p->keep_weekly, &p->keep_monthly, &p->keep_yearly };
	char kp[KEYPATH_MAX];
	const cJSON *it;

	for (int i = 0; i < 6; i++) {
		keypath(kp, prefix, policy_keys[i]);
		if ((it = cJSON_GetObjectItemCaseSensitive(obj, policy_keys[i])) &&
		    get_int(x, it, kp, 0, COUNT_MAX, counts[i]) < 0)
			return x->err;
	}
	keypath(kp, prefix, "keep_within");
	if ((it = cJSON_GetObjectItemCaseSensitive(obj, "keep_within"))) {
		if (!cJSON_IsString(it) || !it->valuestring)
			return key_error(x, kp, "expected a duration string such as \"7d\"");
		if (bkr_config_parse_duration(it->valuestring, &p->keep_within_s) < 0)
			return key_error(x, kp, "%s", bkr_error_message()); /* formatted aside first */
	}
	return 0;
}

static int parse_retention(struct ctx *x, const cJSON *obj)
{
	static const char *const known[] = { "keep_last", "keep_hourly", "keep_daily", "keep_weekly",
					     "keep_monthly", "keep_yearly", "keep_within", "full", "incremental",
					     "differential", "snapshot", "recovery", NULL };
	bkr_config_retention *r = &x->c->retention;
	char kp[KEYPATH_MAX];

	if (!cJSON_IsObject(obj))
		return key_error(x, "retention", "expected an object");
	/* a "retention" object replaces the default whole: keys it omits are off */
	memset(&r->policy, 0, sizeof(r->policy));
	if (check_keys(x, obj, "retention", known) < 0 || parse_policy(x, obj, "retention", &r->policy) < 0)
		return x->err;
	for (unsigned t = 0; t <= BKR_BACKUP_RECOVERY; t++) {
		const char *name = bkr_backup_type_name((bkr_backup_type)t);
		const cJSON *o = cJSON_GetObjectItemCaseSensitive(obj, name);
		keypath(kp, "retention", name);
		r->override[t] = r->policy;
		if (!o)
			continue;
		if (!cJSON_IsObject(o))
			return key_error(x, kp, "expected an object (a retention policy for %s backups)", name);
		if (check_keys(x, o, kp, policy_keys) < 0 || parse_policy(x, o, kp, &r->override[t]) < 0)
			return x->err;
		r->has_override[t] = true;
	}
	return 0;
}

static int parse_tier(struct ctx *x, const cJSON *obj, const char *name, bkr_config_tier *t)
{
	static const char *const known[] = { "path", "after_days", NULL };
	char tp[KEYPATH_MAX], kp[KEYPATH_MAX];
	const cJSON *it;

	keypath(tp, "tiers", name);
	if (!cJSON_IsObject(obj))
		return key_error(x, tp, "expected an object");
	if (check_keys(x, obj, tp, known) < 0)
		return x->err;
	keypath(kp, tp, "path");
	if (!(it = cJSON_GetObjectItemCaseSensitive(obj, "path")))
		return key_error(x, kp, "missing (a configured tier needs a directory)");
	if (get_location(x, it, kp, x->c->base_dir, &t->path) < 0)
		return x->err;
	keypath(kp, tp, "after_days");
	if ((it = cJSON_GetObjectItemCaseSensitive(obj, "after_days")) &&
	    get_int(x, it, kp, 0, DAYS_MAX, &t->after_days) < 0)
		return x->err;
	return 0;
}

static int parse_tiers(struct ctx *x, const cJSON *obj)
{
	static const char *const known[] = { "warm", "cold", NULL };
	bkr_config *c = x->c;
	const cJSON *it;

	if (!cJSON_IsObject(obj))
		return key_error(x, "tiers", "expected an object");
	if (check_keys(x, obj, "tiers", known) < 0)
		return x->err;
	if ((it = cJSON_GetObjectItemCaseSensitive(obj, "warm")) && parse_tier(x, it, "warm", &c->warm) < 0)
		return x->err;
	if ((it = cJSON_GetObjectItemCaseSensitive(obj, "cold")) && parse_tier(x, it, "cold", &c->cold) < 0)
		return x->err;
	if (c->warm.path && c->cold.path && c->cold.after_days < c->warm.after_days)
		return key_error(x, "tiers.cold.after_days", "%d is less than tiers.warm.after_days (%d)",
				 c->cold.after_days, c->warm.after_days);
	/* by name, or as directories that are one (a symlink, a bind mount) */
	if (c->warm.path && c->cold.path && bkr_store_same_place(c->warm.path, c->cold.path))
		return key_error(x, "tiers.cold.path", "is the same directory as tiers.warm.path");
	/* nor one inside the other: the repository's own files (trash/ is emptied) */
	for (int i = 0; i < 2 && c->repository; i++) {
		const char *tp = i ? c->cold.path : c->warm.path, *key = i ? "tiers.cold.path" : "tiers.warm.path";
		if (!tp)
			continue;
		if (bkr_store_same_place(tp, c->repository))
			return key_error(x, key, "is the repository itself (a tier needs its own directory)");
		if (bkr_store_within(tp, c->repository))
			return key_error(x, key, "%s is inside the repository %s (a tier needs its own directory)",
					 tp, c->repository);
		if (bkr_store_within(c->repository, tp))
			return key_error(x, key, "%s holds the repository %s (a tier needs its own directory)",
					 tp, c->repository);
	}
	/* nor one tier inside the other: its data/ would hold the other tier
	 * (after the repository's checks, which name the worse mistake) */
	if (c->warm.path && c->cold.path && bkr_store_within(c->warm.path, c->cold.path))
		return key_error(x, "tiers.warm.path", "%s is inside tiers.cold.path %s (each tier needs its own directory)",
				 c->warm.path, c->cold.path);
	if (c->warm.path && c->cold.path && bkr_store_within(c->cold.path, c->warm.path))
		return key_error(x, "tiers.cold.path", "%s is inside tiers.warm.path %s (each tier needs its own directory)",
				 c->cold.path, c->warm.path);
	return 0;
}

static int parse_s3(struct ctx *x, const cJSON *obj)
{
	static const char *const known[] = { "access_key_id", "secret_access_key", "session_token", "region",
					     "endpoint_url", "path_style", "lock_stale_seconds", "retry_pause_ms",
					     "keep_packs", "keep_mib", "keep_check_ms", "attempts",
					     "connect_timeout_seconds", "stall_timeout_seconds", NULL };
	bkr_config_s3 *s3 = &x->c->s3;
	const cJSON *it;
	struct {
		const char *key;
		char **dst;
	} strs[] = {
		{ "access_key_id", &s3->access_key_id }, { "secret_access_key", &s3->secret_access_key },
		{ "session_token", &s3->session_token }, { "region", &s3->region },
		{ "endpoint_url", &s3->endpoint_url },
	};
	char kp[KEYPATH_MAX];

	if (!cJSON_IsObject(obj))
		return key_error(x, "s3", "expected an object such as {\"endpoint_url\": \"http://127.0.0.1:7480\"}");
	if (check_keys(x, obj, "s3", known) < 0)
		return x->err;
	for (size_t i = 0; i < sizeof(strs) / sizeof(*strs); i++) {
		keypath(kp, "s3", strs[i].key);
		if ((it = cJSON_GetObjectItemCaseSensitive(obj, strs[i].key)) && get_string(x, it, kp, strs[i].dst) < 0)
			return x->err;
	}
	if (s3->endpoint_url && strncmp(s3->endpoint_url, "http://", 7) && strncmp(s3->endpoint_url, "https://", 8))
		return key_error(x, "s3.endpoint_url", "expected http://HOST[:PORT] or https://HOST[:PORT]");
	if ((it = cJSON_GetObjectItemCaseSensitive(obj, "path_style"))) {
		if (!cJSON_IsBool(it))
			return key_error(x, "s3.path_style", "expected true or false");
		s3->path_style = cJSON_IsTrue(it) ? 1 : 0;
	}
	if ((it = cJSON_GetObjectItemCaseSensitive(obj, "lock_stale_seconds")) &&
	    get_int(x, it, "s3.lock_stale_seconds", 2, 86400, &s3->lock_stale_seconds) < 0)
		return -1;
	if ((it = cJSON_GetObjectItemCaseSensitive(obj, "retry_pause_ms")) &&
	    get_int(x, it, "s3.retry_pause_ms", 1, 60000, &s3->retry_pause_ms) < 0)
		return x->err;
	for (int i = 0; i < BKR_S3_NTUNE; i++) {
		const bkr_s3_tunable *t = &bkr_s3_tunables[i];
		keypath(kp, "s3", t->key);
		if ((it = cJSON_GetObjectItemCaseSensitive(obj, t->key)) &&
		    get_int(x, it, kp, t->min, t->max, &s3->tune[i]) < 0)
			return x->err;
	}
	return 0;
}

static int parse_root(struct ctx *x, const cJSON *root)
{
	static const char *const known[] = { "repository", "workspace_root", "sources", "retention",
					     "tiers", "compression", "log_dir", "alert_command", "alert_timeout",
					     "metrics_file", "recovery", "required_files", "protected_patterns", "s3", NULL };
	static const char *const compression_keys[] = { "level", NULL };
	bkr_config *c = x->c;
	const cJSON *it;
	char kp[KEYPATH_MAX] = "", esc[1024], esc2[1024];

	if (!cJSON_IsObject(root)) {
		x->err = bkr_error_set(BKR_EINVAL, "%s: expected a JSON object at the top level", x->file);
		return x->err;
	}
	if (check_repeats(x, root, kp, 0) < 0 || check_keys(x, root, "", known) < 0)
		return x->err;

	if (!(it = cJSON_GetObjectItemCaseSensitive(root, "repository")))
		return key_error(x, "repository", "missing (the path of the backup repository is required)");
	if (get_location(x, it, "repository", c->base_dir, &c->repository) < 0)
		return x->err;
	if (!(it = cJSON_GetObjectItemCaseSensitive(root, "workspace_root")))
		return key_error(x, "workspace_root", "missing (the directory to back up is required)");
	if (get_path(x, it, "workspace_root", c->base_dir, &c->workspace_root) < 0)
		return x->err;

	if ((it = cJSON_GetObjectItemCaseSensitive(root, "sources"))) {
		if (parse_sources(x, it) < 0)
			return x->err;
	} else if (default_source(c) < 0) {
		return oom(x);
	} else if (!bkr_utf8_valid(c->sources[0].name, strlen(c->sources[0].name)) ||
		   bkr_text_has_control(c->sources[0].name, strlen(c->sources[0].name))) {
		return key_error(x, "workspace_root",
				 "the default source's name '%s' (its last component) %s; give \"sources\" with a \"name\"",
				 bkr_text_escape(esc, sizeof(esc), c->sources[0].name, strlen(c->sources[0].name)),
				 bkr_utf8_valid(c->sources[0].name, strlen(c->sources[0].name)) ? "holds a control character"
												 : "is not UTF-8 text");
	}
	for (unsigned t = 0; t <= BKR_BACKUP_RECOVERY; t++)
		c->retention.override[t] = c->retention.policy;
	if ((it = cJSON_GetObjectItemCaseSensitive(root, "retention")) && parse_retention(x, it) < 0)
		return x->err;
	if ((it = cJSON_GetObjectItemCaseSensitive(root, "tiers")) && parse_tiers(x, it) < 0)
		return x->err;
	if ((it = cJSON_GetObjectItemCaseSensitive(root, "compression"))) {
		const cJSON *lv;
		if (!cJSON_IsObject(it))
			return key_error(x, "compression", "expected an object such as {\"level\": 1}");
		if (check_keys(x, it, "compression", compression_keys) < 0)
			return x->err;
		if ((lv = cJSON_GetObjectItemCaseSensitive(it, "level")) &&
		    get_int(x, lv, "compression.level", 0, 9, &c->compression_level) < 0)
			return x->err;
	}
	if ((it = cJSON_GetObjectItemCaseSensitive(root, "log_dir"))) {
		free(c->log_dir);
		c->log_dir = NULL;
		if (get_path(x, it, "log_dir", c->base_dir, &c->log_dir) < 0)
			return x->err;
	}
	if ((it = cJSON_GetObjectItemCaseSensitive(root, "metrics_file"))) {
		const char *raw, *tail;
		struct stat st;
		if (get_path(x, it, "metrics_file", c->base_dir, &c->metrics_file) < 0)
			return x->err;
		/* a file is rewritten there (a temporary file, then rename): not a directory */
		raw = it->valuestring;
		tail = strrchr(raw, '/') ? strrchr(raw, '/') + 1 : raw;
		if (!*tail || !strcmp(tail, ".") || !strcmp(tail, "..") || !strcmp(raw, "~"))
			return key_error(x, "metrics_file", "names a directory; give the file's path (e.g. %s/bkr.prom)",
					 bkr_text_escape(esc, sizeof(esc), c->metrics_file, strlen(c->metrics_file)));
		if (stat(c->metrics_file, &st) == 0 && S_ISDIR(st.st_mode))
			return key_error(x, "metrics_file", "%s is a directory; give the file's path (e.g. %s/bkr.prom)",
					 bkr_text_escape(esc, sizeof(esc), c->metrics_file, strlen(c->metrics_file)),
					 bkr_text_escape(esc2, sizeof(esc2), c->metrics_file, strlen(c->metrics_file)));
	}
	if ((it = cJSON_GetObjectItemCaseSensitive(root, "alert_command"))) {
		const char *why;
		if (get_strv(x, it, "alert_command", NULL, true, &c->alert_command, &c->nalert_command) < 0)
			return x->err;
		if ((why = bkr_config_program_problem(c->alert_command[0])))
			return key_error(x, "alert_command", "%s", why);
	}
	if ((it = cJSON_GetObjectItemCaseSensitive(root, "alert_timeout"))) {
		int64_t secs = 0;
		if (cJSON_IsNumber(it)) {
			if (get_int(x, it, "alert_timeout", 1, 86400, &c->alert_timeout_s) < 0)
				return x->err;
		} else if (!cJSON_IsString(it)) {
			return key_error(x, "alert_timeout", "expected a number of seconds or a duration such as \"2min\"");
		} else if (bkr_config_parse_duration(it->valuestring, &secs) < 0) {
			return key_error(x, "alert_timeout", "%s", bkr_error_message()); /* formatted aside first */
		} else if (secs < 1 || secs > 86400) {
			return key_error(x, "alert_timeout", "expected from 1 s to 1 d, not %s", it->valuestring);
		} else {
			c->alert_timeout_s = (int)secs;
		}
	}
	if ((it = cJSON_GetObjectItemCaseSensitive(root, "recovery"))) {
		char *text;
		if (!cJSON_IsObject(it))
			return key_error(x, "recovery", "expected an object");
		if (!(text = cJSON_PrintUnformatted(it)))
			return oom(x);
		c->recovery_json = strdup(text);
		cJSON_free(text);
		if (!c->recovery_json)
			return oom(x);
	}
	if ((it = cJSON_GetObjectItemCaseSensitive(root, "required_files")) &&
	    get_strv(x, it, "required_files", c->workspace_root, false, &c->required_files,
		     &c->nrequired_files) < 0)
		return x->err;
	/* scan checks them in the workspace (and recovery writes only there) */
	for (size_t i = 0; i < c->nrequired_files; i++) {
		const char *rel = bkr_path_under(c->required_files[i], c->workspace_root);
		char *real = rel ? NULL : realpath(c->workspace_root, NULL); /* scan takes the real path too */
		if (real) {
			rel = bkr_path_under(c->required_files[i], real);
			free(real);
		}
		if (!rel || !*rel) {
			const cJSON *el = cJSON_GetArrayItem(it, (int)i);
			snprintf(kp, sizeof(kp), "required_files[%zu]", i);
			return key_error(x, kp, "'%s' is %s workspace_root %s: a required file is a path inside the workspace",
					 bkr_text_escape(esc, sizeof(esc), el->valuestring, strlen(el->valuestring)),
					 rel ? "the directory" : "outside",
					 bkr_text_escape(esc2, sizeof(esc2), c->workspace_root, strlen(c->workspace_root)));
		}
	}
	if ((it = cJSON_GetObjectItemCaseSensitive(root, "protected_patterns"))) {
		free_strv(c->protected_patterns, c->nprotected_patterns);
		c->protected_patterns = NULL;
		c->nprotected_patterns = 0;
		if (get_strv(x, it, "protected_patterns", NULL, false, &c->protected_patterns,
			     &c->nprotected_patterns) < 0)
			return x->err;
	}
	if ((it = cJSON_GetObjectItemCaseSensitive(root, "s3")) && parse_s3(x, it) < 0)
		return x->err;
	return 0;
}

/* "line L, column C" of byte @p off in @p text. */
static void position(const char *text, size_t len, size_t off, int *line, int *col)
{
	*line = 1;
	*col = 1;
	for (size_t i = 0; i < off && i < len; i++) {
		if (text[i] == '\n') {
			(*line)++;
			*col = 1;
		} else {
			(*col)++;
		}
	}
}

/* Up to 20 bytes of @p s, stopping at a line end (keeps the message one line). */
static size_t excerpt_len(const char *s, size_t max)
{
	size_t n = 0;
	while (n < max && n < 20 && s[n] != '\n' && s[n] != '\r')
		n++;
	return n;
}

/* ---- "\u0000" in strings ------------------------------------------------ */

/* A walk over JSON text that cJSON accepted, keeping the key path, to name the
 * first string holding an escaped NUL (cJSON would cut the string there). */
struct nulscan {
	const char *p, *end;
	char kp[KEYPATH_MAX];
	const char *target; /* when set: stop at the string holding this byte (hit) */
	bool hit;
	unsigned depth;     /* ns_value's objects and arrays open: no deeper than cJSON parses */
};

/* Whitespace as cJSON skips it: every byte up to and including the space. */
static void ns_ws(struct nulscan *s)
{
	while (s->p < s->end && (unsigned char)*s->p <= ' ')
		s->p++;
}

/* Skip the string at s->p (its opening quote); true if it holds \u0000. @p name gets its raw bytes. */
static bool ns_string(struct nulscan *s, const char **name, size_t *len)
{
	bool nul = false;
	const char *start = ++s->p;
	while (s->p < s->end && *s->p != '"') {
		if (*s->p == '\\') {
			if (s->end - s->p >= 6 && !memcmp(s->p + 1, "u0000", 5))
				nul = true;
			s->p++;
		}
		s->p++;
	}
	*name = start;
	*len = (size_t)(s->p - start);
	s->p++;
	if (s->target && s->target >= start - 1 && s->target < s->p)
		s->hit = true;
	return nul || s->hit;
}

static bool ns_value(struct nulscan *s)
{
	size_t base = strlen(s->kp);
	const char *name;
	size_t len, i = 0;

	ns_ws(s);
	if (s->p >= s->end)
		return false;
	if (*s->p == '"')
		return ns_string(s, &name, &len);
	if (*s->p != '{' && *s->p != '[') {
		while (s->p < s->end && (unsigned char)*s->p > ' ' && !strchr(",]}", *s->p))
			s->p++;
		return false;
	}
	/* text that nests deeper than cJSON parses is refused by cJSON (the walk
	 * names the key of a bad string in it): stop there, where recursion into
	 * '[[[[...' of a few MiB would overflow the stack */
	if (s->depth >= CJSON_NESTING_LIMIT)
		return false;
	char close = *s->p == '{' ? '}' : ']';
	s->p++;
	for (const char *last = NULL;; i++) {
		ns_ws(s);
		if (s->p >= s->end || s->p == last)
			return false; /* the end, or a walk out of step with the text: no progress, stop */
		last = s->p;
		if (*s->p == close) {
			s->p++;
			s->kp[base] = '\0';
			return false;
		}
		if (*s->p == ',') {
			s->p++;
			ns_ws(s);
		}
		if (close == '}') {
			bool nul = ns_string(s, &name, &len);
			snprintf(s->kp + base, sizeof(s->kp) - base, "%s%.*s", base ? "." : "", (int)len, name);
			if (nul)
				return true;
			ns_ws(s);
			s->p++; /* ':' */
		} else {
			snprintf(s->kp + base, sizeof(s->kp) - base, "[%zu]", i);
		}
		s->depth++;
		bool nul = ns_value(s);
		s->depth--;
		if (nul)
			return true;
	}
}

/* Walk the text cJSON accepted beside its tree (same order: cJSON keeps
 * every member, repeated ones too) and mark each number written with a
 * '.', 'e' or 'E' (NOT_INTEGER_TEXT) or with a leading zero (LEADING_ZERO_TEXT). */
static void mark_numbers(struct nulscan *s, cJSON *node)
{
	const char *name, *tok;
	size_t len;

	ns_ws(s);
	if (s->p >= s->end || !node)
		return;
	if (*s->p == '"') {
		ns_string(s, &name, &len);
		return;
	}
	if (*s->p != '{' && *s->p != '[') {
		for (tok = s->p; s->p < s->end && (unsigned char)*s->p > ' ' && !strchr(",]}", *s->p); s->p++)
			;
		if (cJSON_IsNumber(node) && s->p - tok >= 2 + (*tok == '-') && tok[*tok == '-'] == '0' &&
		    tok[1 + (*tok == '-')] >= '0' && tok[1 + (*tok == '-')] <= '9')
			node->type |= LEADING_ZERO_TEXT;
		for (; cJSON_IsNumber(node) && tok < s->p; tok++)
			if (*tok == '.' || *tok == 'e' || *tok == 'E') {
				node->type |= NOT_INTEGER_TEXT;
				break;
			}
		return;
	}
	char close = *s->p == '{' ? '}' : ']';
	s->p++;
	for (cJSON *child = node->child;; child = child->next) {
		ns_ws(s);
		if (s->p >= s->end || !child || *s->p == close) { /* the end (or out of step: stop) */
			if (s->p < s->end && *s->p == close)
				s->p++;
			return;
		}
		if (*s->p == ',') {
			s->p++;
			ns_ws(s);
		}
		if (close == '}') {
			ns_string(s, &name, &len);
			ns_ws(s);
			s->p++; /* ':' */
		}
		mark_numbers(s, child);
	}
}

/* Reject a string with an escaped NUL, naming its key (a path would be cut short silently). */
static int check_nul(struct ctx *x, const char *text, size_t len)
{
	struct nulscan s = { text, text + len, "", NULL, false };
	if (!memmem(text, len, "\\u0000", 6) || !ns_value(&s))
		return 0;
	return key_error(x, s.kp[0] ? s.kp : "(top level)", "contains a NUL character (\\u0000), which no path or name may hold");
}

int bkr_config_from_string(bkr_config **out, const char *text, size_t len,
			   const char *name, const char *base_dir)
{
	struct ctx x = { name && *name ? name : "config", NULL, 0 };
	cJSON *root = NULL;
	const char *end = NULL;
	char *cwd = NULL;

	*out = NULL;
	if (!(x.c = calloc(1, sizeof(*x.c)))) {
		x.err = bkr_error_oom();
		goto done;
	}
	if (!base_dir || base_dir[0] != '/') {
		if (!(cwd = current_dir())) {
			x.err = bkr_error_last_code();
			goto done;
		}
	}
	if (!base_dir)
		x.c->base_dir = strdup(cwd);
	else
		x.c->base_dir = resolve(cwd ? cwd : "/", base_dir);
	if (!x.c->base_dir || (name && !(x.c->file = strdup(name)))) {
		x.err = bkr_error_oom();
		goto done;
	}
	if ((x.err = set_defaults(x.c)) < 0)
		goto done;
	if (text && len >= 3 && !memcmp(text, "\xef\xbb\xbf", 3)) { /* a UTF-8 byte order mark (some editors write one) */
		text += 3;
		len -= 3;
	}
	if (!text || memchr(text, '\0', len)) {
		x.err = bkr_error_set(BKR_EINVAL, "%s: not a text file (contains NUL bytes)", x.file);
		goto done;
	}
	root = cJSON_ParseWithLengthOpts(text, len, &end, false);
	if (root) {
		/* only whitespace may follow the object */
		const char *p = end;
		while (p < text + len && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
			p++;
		if (p < text + len)
			end = p;
		else
			end = NULL;
	}
	if (!root || end) {
		int line, col;
		size_t off = end && end >= text ? (size_t)(end - text) : len;
		while (off < len && (text[off] == ' ' || text[off] == '\t' || text[off] == '\n' ||
				     text[off] == '\r'))
			off++;
		position(text, len, off, &line, &col);
		if (!len || off >= len)
			x.err = bkr_error_set(BKR_EINVAL, "%s: invalid JSON: unexpected end of file at line %d, column %d",
					      x.file, line, col);
		else {
			/* inside a string ("\ud800", a bad escape): name its key */
			struct nulscan ns = { text, text + len, "", text + off, false };
			char where[KEYPATH_MAX + 16] = "";
			if (!root && ns_value(&ns) && ns.hit && ns.kp[0])
				snprintf(where, sizeof(where), "key '%s': ", ns.kp);
			x.err = bkr_error_set(BKR_EINVAL, "%s: %sinvalid JSON at line %d, column %d (near '%.*s')",
					      x.file, where, line, col, (int)excerpt_len(text + off, len - off),
					      text + off);
		}
		goto done;
	}
	{
		struct nulscan ns = { text, text + len, "", NULL, false };
		mark_numbers(&ns, root);
	}
	if (check_nul(&x, text, len) < 0 || parse_root(&x, root) < 0)
		goto done;
	*out = x.c;
	x.c = NULL;
done:
	free(cwd);
	cJSON_Delete(root);
	bkr_config_free(x.c);
	return x.err;
}

int bkr_config_load(bkr_config **out, const char *path)
{
	uint8_t *text = NULL;
	size_t len = 0;
	char *dir = NULL, *slash;
	int err;

	*out = NULL;
	if ((err = bkr_io_read_file(path, BKR_CONFIG_MAX_SIZE, &text, &len)) < 0) {
		/* not a regular file, or too large: the configuration is wrong (exit 2), not the repository */
		if (err == BKR_ECORRUPT) /* formatted aside by bkr_error_set: the message whole */
			err = bkr_error_set(BKR_EINVAL, "%s", bkr_error_message());
		bkr_error_prefix("cannot read configuration");
		goto done;
	}
	if (!(dir = strdup(path))) {
		err = bkr_error_oom();
		goto done;
	}
	slash = strrchr(dir, '/');
	if (!slash)
		strcpy(dir, ".");
	else if (slash == dir)
		slash[1] = '\0';
	else
		*slash = '\0';
	err = bkr_config_from_string(out, (const char *)text, len, path, dir);
done:
	free(dir);
	free(text);
	return err;
}

const bkr_retention_policy *bkr_config_retention_for(const bkr_config *c, bkr_backup_type t)
{
	if ((unsigned)t <= BKR_BACKUP_RECOVERY && c->retention.has_override[t])
		return &c->retention.override[t];
	return &c->retention.policy;
}

const bkr_config_source *bkr_config_find_source(const bkr_config *c, const char *name)
{
	for (size_t i = 0; name && i < c->nsources; i++)
		if (!strcmp(c->sources[i].name, name))
			return &c->sources[i];
	return NULL;
}

/* ---- effective configuration as JSON ------------------------------------- */

static bool put(cJSON *obj, const char *key, cJSON *item)
{
	if (!item)
		return false;
	if (!cJSON_AddItemToObject(obj, key, item)) {
		cJSON_Delete(item);
		return false;
	}
	return true;
}

static cJSON *strv_json(char *const *v, size_t n)
{
	cJSON *arr = cJSON_CreateArray();
	for (size_t i = 0; arr && i < n; i++) {
		cJSON *s = cJSON_CreateString(v[i]);
		if (!s || !cJSON_AddItemToArray(arr, s)) {
			cJSON_Delete(s);
			cJSON_Delete(arr);
			return NULL;
		}
	}
	return arr;
}

static cJSON *policy_json(const bkr_retention_policy *p)
{
	cJSON *o = cJSON_CreateObject();
	char within[32];
	bool ok = o != NULL;

	/* the largest unit that divides it exactly: "2d", not "172800s" */
	{
		static const struct { int64_t mul; const char *unit; } u[] = {
			{ 7 * 86400, "w" }, { 86400, "d" }, { 3600, "h" }, { 60, "min" }, { 1, "s" } };
		for (size_t i = 0; i < sizeof(u) / sizeof(u[0]); i++) {
			if (p->keep_within_s % u[i].mul == 0) {
				snprintf(within, sizeof(within), "%lld%s",
					 (long long)(p->keep_within_s / u[i].mul), u[i].unit);
				break;
			}
		}
	}
	ok = ok && put(o, "keep_last", cJSON_CreateNumber(p->keep_last));
	ok = ok && put(o, "keep_hourly", cJSON_CreateNumber(p->keep_hourly));
	ok = ok && put(o, "keep_daily", cJSON_CreateNumber(p->keep_daily));
	ok = ok && put(o, "keep_weekly", cJSON_CreateNumber(p->keep_weekly));
	ok = ok && put(o, "keep_monthly", cJSON_CreateNumber(p->keep_monthly));
	ok = ok && put(o, "keep_yearly", cJSON_CreateNumber(p->keep_yearly));
	ok = ok && put(o, "keep_within", cJSON_CreateString(p->keep_within_s ? within : "0"));
	if (!ok) {
		cJSON_Delete(o);
		return NULL;
	}
	return o;
}

static cJSON *tier_json(const bkr_config_tier *t)
{
	cJSON *o = cJSON_CreateObject();
	if (o && put(o, "path", cJSON_CreateString(t->path)) &&
	    put(o, "after_days", cJSON_CreateNumber(t->after_days)))
		return o;
	cJSON_Delete(o);
	return NULL;
}

char *bkr_config_to_json(const bkr_config *c, bool pretty)
{
	cJSON *root = cJSON_CreateObject(), *arr = NULL, *o;
	char *text = NULL, *out = NULL;
	bool ok = root != NULL;

	ok = ok && put(root, "repository", cJSON_CreateString(c->repository));
	ok = ok && put(root, "workspace_root", cJSON_CreateString(c->workspace_root));
	ok = ok && put(root, "sources", arr = cJSON_CreateArray());
	for (size_t i = 0; ok && i < c->nsources; i++) {
		const bkr_config_source *s = &c->sources[i];
		ok = (o = cJSON_CreateObject()) && cJSON_AddItemToArray(arr, o);
		if (!ok) {
			cJSON_Delete(o);
			break;
		}
		ok = put(o, "name", cJSON_CreateString(s->name)) &&
		     put(o, "paths", strv_json(s->paths, s->npaths)) &&
		     put(o, "excludes", strv_json(s->excludes, s->nexcludes)) &&
		     put(o, "priority", cJSON_CreateNumber(s->priority)) &&
		     put(o, "schedule", cJSON_CreateString(bkr_schedule_name(s->schedule)));
	}
	ok = ok && put(root, "retention", o = policy_json(&c->retention.policy));
	for (unsigned t = 0; ok && t <= BKR_BACKUP_RECOVERY; t++)
		if (c->retention.has_override[t])
			ok = put(o, bkr_backup_type_name((bkr_backup_type)t),
				 policy_json(&c->retention.override[t]));
	ok = ok && put(root, "tiers", o = cJSON_CreateObject());
	if (ok && c->warm.path)
		ok = put(o, "warm", tier_json(&c->warm));
	if (ok && c->cold.path)
		ok = put(o, "cold", tier_json(&c->cold));
	ok = ok && put(root, "compression", o = cJSON_CreateObject());
	ok = ok && put(o, "level", cJSON_CreateNumber(c->compression_level));
	ok = ok && put(root, "log_dir", cJSON_CreateString(c->log_dir ? c->log_dir : ""));
	if (ok && c->metrics_file)
		ok = put(root, "metrics_file", cJSON_CreateString(c->metrics_file));
	if (ok && c->alert_command)
		ok = put(root, "alert_command", strv_json(c->alert_command, c->nalert_command));
	if (ok && c->alert_timeout_s)
		ok = put(root, "alert_timeout", cJSON_CreateNumber(c->alert_timeout_s));
	if (ok && c->recovery_json)
		ok = put(root, "recovery", cJSON_Parse(c->recovery_json));
	ok = ok && put(root, "required_files", strv_json(c->required_files, c->nrequired_files));
	ok = ok && put(root, "protected_patterns",
		       strv_json(c->protected_patterns, c->nprotected_patterns));
	bool s3_tuned = false;
	for (int i = 0; i < BKR_S3_NTUNE; i++)
		s3_tuned |= c->s3.tune[i] > 0;
	if (ok && (c->s3.access_key_id || c->s3.region || c->s3.endpoint_url || c->s3.path_style >= 0 ||
		   c->s3.lock_stale_seconds || c->s3.retry_pause_ms || c->s3.secret_access_key || c->s3.session_token ||
		   s3_tuned)) {
		/* the secret key and session token are not shown */
		ok = put(root, "s3", o = cJSON_CreateObject());
		if (ok && c->s3.access_key_id)
			ok = put(o, "access_key_id", cJSON_CreateString(c->s3.access_key_id));
		if (ok && c->s3.region)
			ok = put(o, "region", cJSON_CreateString(c->s3.region));
		if (ok && c->s3.endpoint_url)
			ok = put(o, "endpoint_url", cJSON_CreateString(c->s3.endpoint_url));
		if (ok && c->s3.path_style >= 0)
			ok = put(o, "path_style", cJSON_CreateBool(c->s3.path_style));
		if (ok && c->s3.lock_stale_seconds)
			ok = put(o, "lock_stale_seconds", cJSON_CreateNumber(c->s3.lock_stale_seconds));
		if (ok && c->s3.retry_pause_ms)
			ok = put(o, "retry_pause_ms", cJSON_CreateNumber(c->s3.retry_pause_ms));
		for (int i = 0; i < BKR_S3_NTUNE; i++)
			if (ok && c->s3.tune[i])
				ok = put(o, bkr_s3_tunables[i].key, cJSON_CreateNumber(c->s3.tune[i]));
	}
	if (ok)
		text = pretty ? cJSON_Print(root) : cJSON_PrintUnformatted(root);
	if (text) {
		out = strdup(text);
		cJSON_free(text);
	}
	cJSON_Delete(root);
	return out;
}
