/** @file
 * The "recovery" section of the configuration: parsing (every key checked,
 * errors naming the exact key path), pattern matching with captures, and
 * placeholder substitution for command arguments and MongoDB filters.
 *
 * Rule patterns are globs on workspace-relative paths: '*' matches any run of
 * characters except '/', '**' any run including '/', '?' one character other
 * than '/', and "{name}" captures one non-empty path component part (no '/').
 * A pattern without '/' also matches the last component of a path.  Protected
 * patterns keep the configuration's fnmatch semantics (bkr_config_match).
 */
#include <ctype.h>
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bkr/config.h"
#include "bkr/error.h"
#include "bkr/pattern.h"
#include "recover_i.h"

static const char *const strategy_names[BKR_STRATEGY_COUNT] = {
	"backup", "git", "mongodb", "regenerate", "manual",
};

const char *bkr_strategy_name(bkr_strategy_type t)
{
	return (unsigned)t < BKR_STRATEGY_COUNT ? strategy_names[t] : "unknown";
}

int bkr_strategy_parse(const char *s, bkr_strategy_type *out)
{
	for (int i = 0; i < BKR_STRATEGY_COUNT; i++) {
		if (s && strcmp(s, strategy_names[i]) == 0) {
			*out = (bkr_strategy_type)i;
			return 0;
		}
	}
	return bkr_error_set(BKR_EINVAL, "unknown strategy '%s' (expected backup, git, mongodb, regenerate or manual)",
			     s ? s : "");
}

char *bkr_rec_strdup(const char *s)
{
	return s ? strdup(s) : NULL;
}

int64_t bkr_rec_parse_duration(const char *s)
{
	int64_t total = 0;
	const char *p = s;

	if (!s || !*s)
		return -1;
	if (strcmp(s, "0") == 0)
		return 0;
	while (*p) {
		char *end;
		int64_t unit;
		long long v;

		if (!isdigit((unsigned char)*p))
			return -1;
		v = strtoll(p, &end, 10);
		if (end == p || v < 0 || v > 1000000000LL)
			return -1;
		p = end;
		if (strncmp(p, "min", 3) == 0) {
			unit = 60;
			p += 3;
		} else if (strncmp(p, "ms", 2) == 0) {
			return -1; /* sub-second durations are given as numbers */
		} else {
			switch (*p) {
			case 's': unit = 1; break;
			case 'h': unit = 3600; break;
			case 'd': unit = 86400; break;
			case 'w': unit = 7 * 86400; break;
			case 'm': unit = 30 * 86400; break;
			case 'y': unit = 365 * 86400; break;
			case '\0': unit = 1; p--; break;
			default: return -1;
			}
			p++;
		}
		total += v * unit;
	}
	return total;
}

/* ---- matching ------------------------------------------------------------ */

static bool match_here(const char *p, const char *s, bkr_rec_captures *caps)
{
	while (*p) {
		if (p[0] == '*' && p[1] == '*') {
			const char *q = p + 2;
			for (const char *t = s;; t++) {
				if (match_here(q, t, caps))
					return true;
				if (!*t)
					return false;
			}
		}
		if (*p == '*') {
			for (const char *t = s;; t++) {
				if (match_here(p + 1, t, caps))
					return true;
				if (!*t || *t == '/')
					return false;
			}
		}
		if (*p == '{') {
			const char *close = strchr(p, '}');
			size_t nl = close ? (size_t)(close - p - 1) : 0;
			size_t idx;

			if (!close || nl == 0 || nl >= sizeof(caps->name[0]))
				goto literal;
			idx = caps ? caps->n : 0;
			for (const char *t = s + 1;; t++) {
				if (t[-1] == '/' || t[-1] == '\0')
					return false;
				if (caps) {
					size_t vl = (size_t)(t - s);
					if (idx >= BKR_REC_MAX_CAPTURES || vl >= sizeof(caps->value[0]))
						return false;
					memcpy(caps->name[idx], p + 1, nl);
					caps->name[idx][nl] = '\0';
					memcpy(caps->value[idx], s, vl);
					caps->value[idx][vl] = '\0';
					caps->n = idx + 1;
				}
				if (match_here(close + 1, t, caps))
					return true;
				if (caps)
					caps->n = idx;
			}
		}
		if (*p == '?') {
			if (!*s || *s == '/')
				return false;
			p++;
			s++;
			continue;
		}
	literal:
		if (*p != *s)
			return false;
		p++;
		s++;
	}
	return *s == '\0';
}

bool bkr_rec_match(const char *pattern, const char *rel, bkr_rec_captures *caps)
{
	bool ok;

	if (caps)
		caps->n = 0;
	ok = match_here(pattern, rel, caps);
	if (!ok && !strchr(pattern, '/')) {
		const char *last = strrchr(rel, '/');
		if (last)
			ok = match_here(pattern, last + 1, caps);
	}
	if (ok && caps) {
		/* a capture is one safe name part: never "." or ".." */
		for (size_t i = 0; i < caps->n; i++)
			if (strcmp(caps->value[i], ".") == 0 || strcmp(caps->value[i], "..") == 0)
				return false;
	}
	return ok;
}

bool bkr_rec_glob_any(char *const *patterns, size_t n, const char *rel)
{
	return bkr_pattern_match((const char *const *)patterns, n, rel);
}

const bkr_rec_rule *bkr_rec_rule_for(const bkr_recover_rules *r, const char *rel, bkr_rec_captures *caps)
{
	for (size_t i = 0; i < r->nrules; i++)
		if (bkr_rec_match(r->rules[i].pattern, rel, caps))
			return &r->rules[i];
	if (caps)
		caps->n = 0;
	return &r->fallback;
}

char *bkr_rec_substitute(const char *tmpl, const bkr_rec_captures *caps, const char *path,
			 const char *output, const char *workspace, const char *rel)
{
	size_t cap = strlen(tmpl) + 1, len = 0;
	char *out = malloc(cap);
	const char *p = tmpl;

	if (!out)
		return NULL;
	while (*p) {
		const char *val = NULL;
		size_t skip = 1;

		if (*p == '{') {
			const char *close = strchr(p, '}');
			if (close) {
				size_t nl = (size_t)(close - p - 1);
				skip = nl + 2;
				if (nl == 4 && strncmp(p + 1, "path", 4) == 0)
					val = path;
				else if (nl == 6 && strncmp(p + 1, "output", 6) == 0)
					val = output;
				else if (nl == 9 && strncmp(p + 1, "workspace", 9) == 0)
					val = workspace;
				else if (nl == 3 && strncmp(p + 1, "rel", 3) == 0)
					val = rel;
				for (size_t i = 0; !val && caps && i < caps->n; i++)
					if (strlen(caps->name[i]) == nl && strncmp(p + 1, caps->name[i], nl) == 0)
						val = caps->value[i];
				if (!val)
					skip = 1;
			}
		}
		if (!val) {
			val = p;
			skip = 1;
		}
		size_t vl = val == p ? 1 : strlen(val);
		if (len + vl + 1 > cap) {
			size_t nc = (len + vl + 1) * 2;
			char *n = realloc(out, nc);
			if (!n) {
				free(out);
				return NULL;
			}
			out = n;
			cap = nc;
		}
		memcpy(out + len, val, vl);
		len += vl;
		p += skip;
	}
	out[len] = '\0';
	return out;
}

/* ---- parsing -------------------------------------------------------------- */

typedef struct {
	const char *what;
} pctx;

static int bad(const pctx *c, const char *key, const char *msg)
{
	return bkr_error_set(BKR_EINVAL, "%s: key '%s': %s", c->what, key, msg);
}

static void free_argv(char **argv)
{
	if (!argv)
		return;
	for (char **a = argv; *a; a++)
		free(*a);
	free(argv);
}

static int get_string(const pctx *c, const cJSON *v, const char *key, char **out)
{
	if (!cJSON_IsString(v))
		return bad(c, key, "expected a string");
	if (!(*out = strdup(v->valuestring)))
		return bkr_error_oom();
	return 0;
}

/*
 * A path of the machine (a git strategy's "repository", "staging_dir"):
 * absolute, since a relative one would name another place in each directory
 * bkr runs from (a shell's, cron's, a systemd unit's).
 */
static int get_abs_path(const pctx *c, const cJSON *v, const char *key, char **out)
{
	int err;

	if ((err = get_string(c, v, key, out)) < 0)
		return err;
	if (**out != '/')
		return bad(c, key,
			   "expected an absolute path (a relative one would depend on the directory bkr runs in: "
			   "a shell's, cron's, a systemd unit's)");
	return 0;
}

/*
 * A git strategy's "prefix": the workspace's path inside the repository, as
 * its trees name it, so written as a directory may be ("srv/ws/",
 * "./srv//ws" are "srv/ws"); an absolute path or '..' names nothing in a
 * tree and is refused.
 */
static int get_git_prefix(const pctx *c, const cJSON *v, const char *key, char **out)
{
	const char *p;
	char *w;
	int err;

	if ((err = get_string(c, v, key, out)) < 0)
		return err;
	if (**out == '/')
		return bad(c, key, "a path inside the git repository, from its root: not absolute");
	for (p = w = *out; *p;) {
		const char *part = p;
		size_t n;

		while (*p && *p != '/')
			p++;
		n = (size_t)(p - part);
		if (n == 2 && part[0] == '.' && part[1] == '.')
			return bad(c, key, "'..' is not allowed in a path inside the git repository");
		if (n && !(n == 1 && *part == '.')) {
			if (w != *out)
				*w++ = '/';
			memmove(w, part, n);
			w += n;
		}
		while (*p == '/')
			p++;
	}
	*w = 0;
	return 0;
}

static int get_strings(const pctx *c, const cJSON *v, const char *key, bool nonempty, char ***out, size_t *n)
{
	size_t cnt = 0;
	char **arr;
	const cJSON *e;

	if (!cJSON_IsArray(v))
		return bad(c, key, "expected an array of strings");
	cnt = (size_t)cJSON_GetArraySize(v);
	if (nonempty && cnt == 0)
		return bad(c, key, "expected a non-empty array of strings");
	if (!(arr = calloc(cnt + 1, sizeof(*arr))))
		return bkr_error_oom();
	size_t i = 0;
	cJSON_ArrayForEach(e, v) {
		if (!cJSON_IsString(e)) {
			char k[512];
			snprintf(k, sizeof(k), "%s[%zu]", key, i);
			free_argv(arr);
			return bad(c, k, "expected a string");
		}
		if (!(arr[i++] = strdup(e->valuestring))) {
			free_argv(arr);
			return bkr_error_oom();
		}
	}
	*out = arr;
	if (n)
		*n = cnt;
	return 0;
}

/*
 * A command's argv (a regenerate or manual strategy's, a validator's,
 * alert_command): its program is a name looked up in PATH or an absolute
 * path, as the top-level alert_command's (bkr_config_program_problem).
 */
static int get_command(const pctx *c, const cJSON *v, const char *key, char ***argv, size_t *argc)
{
	const char *why;
	int err;

	if ((err = get_strings(c, v, key, true, argv, argc)) < 0)
		return err;
	if ((why = bkr_config_program_problem((*argv)[0])))
		return bad(c, key, why);
	return 0;
}

/** A duration: a number of seconds or a string such as "30s", "7d". */
static int get_duration_s(const pctx *c, const cJSON *v, const char *key, int64_t *out)
{
	if (cJSON_IsNumber(v)) {
		if (v->valuedouble < 0 || v->valuedouble > 1e12)
			return bad(c, key, "expected a non-negative number of seconds");
		*out = (int64_t)v->valuedouble;
		return 0;
	}
	if (cJSON_IsString(v)) {
		int64_t d = bkr_rec_parse_duration(v->valuestring);
		if (d < 0)
			return bad(c, key, "expected a duration such as \"30s\", \"10min\", \"7d\"");
		*out = d;
		return 0;
	}
	return bad(c, key, "expected a number or a duration");
}

static int get_timeout_ms(const pctx *c, const cJSON *v, const char *key, int64_t *out)
{
	if (cJSON_IsNumber(v)) {
		if (v->valuedouble <= 0 || v->valuedouble > 1e9)
			return bad(c, key, "expected a positive number of seconds");
		*out = (int64_t)(v->valuedouble * 1000.0);
		if (*out < 1)
			*out = 1;
		return 0;
	}
	if (cJSON_IsString(v)) {
		int64_t d = bkr_rec_parse_duration(v->valuestring);
		if (d <= 0)
			return bad(c, key, "expected a positive duration such as \"30s\"");
		*out = d * 1000;
		return 0;
	}
	return bad(c, key, "expected a number or a duration");
}

static int get_int(const pctx *c, const cJSON *v, const char *key, int64_t lo, int64_t hi, int64_t *out)
{
	if (!cJSON_IsNumber(v) || v->valuedouble != (double)(int64_t)v->valuedouble ||
	    v->valuedouble < (double)lo || v->valuedouble > (double)hi) {
		char m[128];
		snprintf(m, sizeof(m), "expected an integer from %lld to %lld", (long long)lo, (long long)hi);
		return bad(c, key, m);
	}
	*out = (int64_t)v->valuedouble;
	return 0;
}

static int get_object_text(const pctx *c, const cJSON *v, const char *key, char **out)
{
	if (!cJSON_IsObject(v))
		return bad(c, key, "expected an object");
	if (!(*out = cJSON_PrintUnformatted(v)))
		return bkr_error_oom();
	return 0;
}

static int check_pattern(const pctx *c, const char *key, const char *p)
{
	if (!*p)
		return bad(c, key, "empty pattern");
	if (p[0] == '/')
		return bad(c, key, "patterns are relative to the workspace root, not absolute");
	if (strstr(p, "..") && (strcmp(p, "..") == 0 || strncmp(p, "../", 3) == 0 || strstr(p, "/../") ||
				(strlen(p) >= 3 && strcmp(p + strlen(p) - 3, "/..") == 0)))
		return bad(c, key, "'..' is not allowed in a pattern");
	for (const char *q = p; (q = strchr(q, '{')); q++) {
		const char *close = strchr(q, '}');
		if (!close || close == q + 1)
			return bad(c, key, "unterminated or empty {capture}");
		for (const char *t = q + 1; t < close; t++)
			if (!isalnum((unsigned char)*t) && *t != '_')
				return bad(c, key, "capture names are letters, digits and '_'");
		if ((size_t)(close - q) > 63)
			return bad(c, key, "capture name too long");
		/* one name, one value: "users/{id}/{id}.json" would match
		 * users/alice/bob.json and give {id} only one of the two */
		for (const char *prev = p; (prev = strchr(prev, '{')) && prev < q; prev++)
			if (strncmp(prev, q, (size_t)(close - q + 1)) == 0)
				return bad(c, key, "a capture name appears twice in the pattern");
	}
	return 0;
}

static void strategy_free(bkr_rec_strategy *s)
{
	free(s->key);
	free_argv(s->argv);
	free(s->git_repository);
	free(s->git_ref);
	free(s->git_prefix);
	free(s->uri);
	free(s->database);
	free(s->collection);
	free(s->filter);
	free(s->sort);
	free(s->projection);
}

static void rule_free(bkr_rec_rule *r)
{
	for (size_t i = 0; i < r->n; i++)
		strategy_free(&r->strategies[i]);
	free(r->strategies);
	free(r->pattern);
}

static bool allowed(const char *k, const char *const *keys)
{
	if (k[0] == '_')
		return true;
	for (; *keys; keys++)
		if (strcmp(k, *keys) == 0)
			return true;
	return false;
}

static int parse_strategy(const pctx *c, const cJSON *v, const char *key, bkr_rec_strategy *s)
{
	static const char *const common[] = { "type", "max_age", NULL };
	static const char *const k_git[] = { "type", "max_age", "repository", "ref", "prefix", "max_commits", NULL };
	static const char *const k_mongo[] = { "type", "max_age", "uri", "database", "collection", "filter", "sort",
		"projection", "output", "limit", "server_selection_timeout_ms", "socket_timeout_ms",
		"connect_timeout_ms", "timeout", NULL };
	static const char *const k_cmd[] = { "type", "max_age", "command", "timeout", NULL };
	const char *const *keys = common;
	const cJSON *e, *t;
	char k[512];
	int err = 0;

	memset(s, 0, sizeof(*s));
	s->timeout_ms = BKR_REC_DEFAULT_TIMEOUT_MS;
	s->git_max_commits = 10000;
	s->server_selection_timeout_ms = 2000;
	s->socket_timeout_ms = 5000;
	s->connect_timeout_ms = 2000;
	if (!(s->key = strdup(key)))
		return bkr_error_oom();
	if (cJSON_IsString(v)) {
		if (bkr_strategy_parse(v->valuestring, &s->type) < 0)
			return bad(c, key, bkr_error_message()); /* formatted aside by bkr_error_set, whole */
		if (s->type == BKR_STRATEGY_MONGODB || s->type == BKR_STRATEGY_REGENERATE)
			return bad(c, key, "this strategy needs settings: write it as an object");
		if (!(s->git_ref = strdup("HEAD")))
			return bkr_error_oom();
		return 0;
	}
	if (!cJSON_IsObject(v))
		return bad(c, key, "expected an object or a strategy name");
	t = cJSON_GetObjectItemCaseSensitive(v, "type");
	snprintf(k, sizeof(k), "%s.type", key);
	if (!t)
		return bad(c, k, "missing (backup, git, mongodb, regenerate or manual)");
	if (!cJSON_IsString(t))
		return bad(c, k, "expected a string");
	if (bkr_strategy_parse(t->valuestring, &s->type) < 0)
		return bad(c, k, bkr_error_message()); /* formatted aside by bkr_error_set, whole */
	switch (s->type) {
	case BKR_STRATEGY_GIT: keys = k_git; break;
	case BKR_STRATEGY_MONGODB: keys = k_mongo; break;
	case BKR_STRATEGY_REGENERATE:
	case BKR_STRATEGY_MANUAL: keys = k_cmd; break;
	default: break;
	}
	cJSON_ArrayForEach(e, v) {
		snprintf(k, sizeof(k), "%s.%s", key, e->string);
		if (!allowed(e->string, keys))
			return bad(c, k, "unknown key for this strategy type");
		if (strcmp(e->string, "type") == 0 || e->string[0] == '_')
			continue;
		if (strcmp(e->string, "max_age") == 0)
			err = get_duration_s(c, e, k, &s->max_age_s);
		else if (strcmp(e->string, "repository") == 0)
			err = get_abs_path(c, e, k, &s->git_repository);
		else if (strcmp(e->string, "ref") == 0)
			err = get_string(c, e, k, &s->git_ref);
		else if (strcmp(e->string, "prefix") == 0)
			err = get_git_prefix(c, e, k, &s->git_prefix);
		else if (strcmp(e->string, "max_commits") == 0)
			err = get_int(c, e, k, 1, 10000000, &s->git_max_commits);
		else if (strcmp(e->string, "uri") == 0)
			err = get_string(c, e, k, &s->uri);
		else if (strcmp(e->string, "database") == 0)
			err = get_string(c, e, k, &s->database);
		else if (strcmp(e->string, "collection") == 0)
			err = get_string(c, e, k, &s->collection);
		else if (strcmp(e->string, "filter") == 0)
			err = get_object_text(c, e, k, &s->filter);
		else if (strcmp(e->string, "sort") == 0)
			err = get_object_text(c, e, k, &s->sort);
		else if (strcmp(e->string, "projection") == 0)
			err = get_object_text(c, e, k, &s->projection);
		else if (strcmp(e->string, "output") == 0) {
			if (!cJSON_IsString(e) || (strcmp(e->valuestring, "document") && strcmp(e->valuestring, "array")))
				err = bad(c, k, "expected \"document\" or \"array\"");
			else
				s->as_array = strcmp(e->valuestring, "array") == 0;
		} else if (strcmp(e->string, "limit") == 0)
			err = get_int(c, e, k, 0, 1000000, &s->limit);
		else if (strcmp(e->string, "server_selection_timeout_ms") == 0 ||
			 strcmp(e->string, "socket_timeout_ms") == 0 ||
			 strcmp(e->string, "connect_timeout_ms") == 0) {
			int64_t ms = 0;
			if (!(err = get_int(c, e, k, 1, 3600000, &ms))) {
				if (e->string[1] == 'e')
					s->server_selection_timeout_ms = (int32_t)ms;
				else if (e->string[1] == 'o')
					s->socket_timeout_ms = (int32_t)ms;
				else
					s->connect_timeout_ms = (int32_t)ms;
			}
		} else if (strcmp(e->string, "command") == 0)
			err = get_command(c, e, k, &s->argv, &s->argc);
		else if (strcmp(e->string, "timeout") == 0) {
			err = get_timeout_ms(c, e, k, &s->timeout_ms);
			s->timeout_set = true;
		}
		if (err < 0)
			return err;
	}
	if (s->type == BKR_STRATEGY_MONGODB) {
		const char *need[] = { "uri", "database", "collection" };
		char *have[] = { s->uri, s->database, s->collection };
		for (int i = 0; i < 3; i++) {
			if (!have[i]) {
				snprintf(k, sizeof(k), "%s.%s", key, need[i]);
				return bad(c, k, "missing (required for mongodb)");
			}
			if (!*have[i]) {
				snprintf(k, sizeof(k), "%s.%s", key, need[i]);
				return bad(c, k, "empty");
			}
		}
		if (strncmp(s->uri, "mongodb://", 10) != 0 && strncmp(s->uri, "mongodb+srv://", 14) != 0) {
			snprintf(k, sizeof(k), "%s.uri", key);
			return bad(c, k, "expected a mongodb:// or mongodb+srv:// URI");
		}
		if (strpbrk(s->database, "/\\. \"$")) {
			snprintf(k, sizeof(k), "%s.database", key);
			return bad(c, k, "a MongoDB database name holds none of / \\ . space \" $");
		}
		if (!s->filter && !(s->filter = strdup("{}")))
			return bkr_error_oom();
	}
	if (s->type == BKR_STRATEGY_REGENERATE && !s->argv) {
		snprintf(k, sizeof(k), "%s.command", key);
		return bad(c, k, "missing (an argv array, e.g. [\"python3\", \"rebuild.py\", \"{path}\", \"{output}\"])");
	}
	if (!s->git_ref && !(s->git_ref = strdup("HEAD")))
		return bkr_error_oom();
	return 0;
}

static int parse_strategies(const pctx *c, const cJSON *v, const char *key, bkr_rec_rule *r)
{
	const cJSON *e;
	size_t i = 0;
	int err;

	if (!cJSON_IsArray(v) || cJSON_GetArraySize(v) == 0)
		return bad(c, key, "expected a non-empty array of strategies");
	r->strategies = calloc((size_t)cJSON_GetArraySize(v), sizeof(*r->strategies));
	if (!r->strategies)
		return bkr_error_oom();
	cJSON_ArrayForEach(e, v) {
		char k[512];
		snprintf(k, sizeof(k), "%s[%zu]", key, i);
		r->n = i + 1;
		if ((err = parse_strategy(c, e, k, &r->strategies[i])) < 0)
			return err;
		i++;
	}
	return 0;
}

static int default_fallback(bkr_rec_rule *r)
{
	static const bkr_strategy_type types[] = { BKR_STRATEGY_BACKUP, BKR_STRATEGY_MANUAL };

	if (!(r->strategies = calloc(2, sizeof(*r->strategies))))
		return bkr_error_oom();
	for (size_t i = 0; i < 2; i++) {
		bkr_rec_strategy *s = &r->strategies[i];
		r->n = i + 1;
		s->type = types[i];
		s->timeout_ms = BKR_REC_DEFAULT_TIMEOUT_MS;
		s->key = strdup("recovery.default_strategies");
		s->git_ref = strdup("HEAD");
		s->git_max_commits = 10000;
		if (!s->key || !s->git_ref)
			return bkr_error_oom();
	}
	return 0;
}

static int parse_validator(const pctx *c, const cJSON *v, const char *key, bkr_rec_validator *out)
{
	static const char *const keys[] = { "pattern", "type", "command", "timeout", NULL };
	const cJSON *e;
	char k[512];
	int err = 0;
	bool have_type = false;

	out->timeout_ms = BKR_REC_DEFAULT_TIMEOUT_MS;
	if (!cJSON_IsObject(v))
		return bad(c, key, "expected an object {\"pattern\", \"type\"}");
	cJSON_ArrayForEach(e, v) {
		snprintf(k, sizeof(k), "%s.%s", key, e->string);
		if (!allowed(e->string, keys))
			return bad(c, k, "unknown key");
		if (e->string[0] == '_')
			continue;
		if (strcmp(e->string, "pattern") == 0) {
			if ((err = get_string(c, e, k, &out->pattern)) < 0 ||
			    (err = check_pattern(c, k, out->pattern)) < 0)
				return err;
		} else if (strcmp(e->string, "type") == 0) {
			if (!cJSON_IsString(e))
				return bad(c, k, "expected a string");
			have_type = true;
			if (strcmp(e->valuestring, "json") == 0)
				out->type = BKR_VALIDATE_JSON;
			else if (strcmp(e->valuestring, "nonempty") == 0)
				out->type = BKR_VALIDATE_NONEMPTY;
			else if (strcmp(e->valuestring, "command") == 0)
				out->type = BKR_VALIDATE_COMMAND;
			else
				return bad(c, k, "expected \"json\", \"nonempty\" or \"command\"");
		} else if (strcmp(e->string, "command") == 0) {
			if ((err = get_command(c, e, k, &out->argv, &out->argc)) < 0)
				return err;
		} else if (strcmp(e->string, "timeout") == 0) {
			if ((err = get_timeout_ms(c, e, k, &out->timeout_ms)) < 0)
				return err;
		}
	}
	if (!out->pattern) {
		snprintf(k, sizeof(k), "%s.pattern", key);
		return bad(c, k, "missing");
	}
	if (!have_type) {
		snprintf(k, sizeof(k), "%s.type", key);
		return bad(c, k, "missing (json, nonempty or command)");
	}
	if (out->type == BKR_VALIDATE_COMMAND && !out->argv) {
		snprintf(k, sizeof(k), "%s.command", key);
		return bad(c, k, "missing (an argv array with \"{path}\")");
	}
	return 0;
}

void bkr_recover_rules_free(bkr_recover_rules *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->nrules; i++)
		rule_free(&r->rules[i]);
	free(r->rules);
	rule_free(&r->fallback);
	for (size_t i = 0; i < r->nvalidators; i++) {
		free(r->validators[i].pattern);
		free_argv(r->validators[i].argv);
	}
	free(r->validators);
	free_argv(r->required);
	free_argv(r->protected_patterns);
	free_argv(r->alert);
	free(r->staging_dir);
	free(r);
}

int bkr_recover_rules_parse(bkr_recover_rules **out, const char *json, const char *what)
{
	static const char *const keys[] = { "rules", "default_strategies", "validators", "json_validation",
		"required_files", "protected_patterns", "alert_command", "alert_timeout", "staging_dir", NULL };
	bkr_recover_rules *r = NULL;
	cJSON *root = NULL;
	const cJSON *e;
	pctx c = { what ? what : "config" };
	char k[512];
	int err = 0;

	*out = NULL;
	if (!(r = calloc(1, sizeof(*r))))
		return bkr_error_oom();
	r->json_default = true;
	r->alert_timeout_ms = BKR_REC_DEFAULT_TIMEOUT_MS;
	if (json && *json) {
		const char *ep = NULL;
		root = cJSON_ParseWithOpts(json, &ep, true);
		if (!root) {
			err = bkr_error_set(BKR_EINVAL, "%s: recovery: not valid JSON near offset %zu", c.what,
					    ep ? (size_t)(ep - json) : 0);
			goto done;
		}
		if (!cJSON_IsObject(root)) {
			err = bad(&c, "recovery", "expected an object");
			goto done;
		}
		cJSON_ArrayForEach(e, root) {
			snprintf(k, sizeof(k), "recovery.%s", e->string);
			if (!allowed(e->string, keys)) {
				err = bad(&c, k, "unknown key");
				goto done;
			}
			if (e->string[0] == '_')
				continue;
			if (strcmp(e->string, "rules") == 0) {
				const cJSON *rv;
				size_t i = 0;
				if (!cJSON_IsArray(e)) {
					err = bad(&c, k, "expected an array of {\"pattern\", \"strategies\"}");
					goto done;
				}
				r->rules = calloc((size_t)cJSON_GetArraySize(e) + 1, sizeof(*r->rules));
				if (!r->rules) {
					err = bkr_error_oom();
					goto done;
				}
				cJSON_ArrayForEach(rv, e) {
					bkr_rec_rule *rule = &r->rules[i];
					const cJSON *f, *pat = NULL, *st = NULL;
					char rk[512];
					snprintf(rk, sizeof(rk), "recovery.rules[%zu]", i);
					r->nrules = ++i;
					if (!cJSON_IsObject(rv)) {
						err = bad(&c, rk, "expected an object {\"pattern\", \"strategies\"}");
						goto done;
					}
					cJSON_ArrayForEach(f, rv) {
						if (f->string[0] == '_')
							continue;
						if (strcmp(f->string, "pattern") == 0)
							pat = f;
						else if (strcmp(f->string, "strategies") == 0)
							st = f;
						else {
							snprintf(k, sizeof(k), "%s.%s", rk, f->string);
							err = bad(&c, k, "unknown key");
							goto done;
						}
					}
					snprintf(k, sizeof(k), "%s.pattern", rk);
					if (!pat) {
						err = bad(&c, k, "missing");
						goto done;
					}
					if ((err = get_string(&c, pat, k, &rule->pattern)) < 0 ||
					    (err = check_pattern(&c, k, rule->pattern)) < 0)
						goto done;
					snprintf(k, sizeof(k), "%s.strategies", rk);
					if (!st) {
						err = bad(&c, k, "missing");
						goto done;
					}
					if ((err = parse_strategies(&c, st, k, rule)) < 0)
						goto done;
				}
			} else if (strcmp(e->string, "default_strategies") == 0) {
				if ((err = parse_strategies(&c, e, k, &r->fallback)) < 0)
					goto done;
			} else if (strcmp(e->string, "validators") == 0) {
				const cJSON *vv;
				size_t i = 0;
				if (!cJSON_IsArray(e)) {
					err = bad(&c, k, "expected an array of validators");
					goto done;
				}
				r->validators = calloc((size_t)cJSON_GetArraySize(e) + 1, sizeof(*r->validators));
				if (!r->validators) {
					err = bkr_error_oom();
					goto done;
				}
				cJSON_ArrayForEach(vv, e) {
					snprintf(k, sizeof(k), "recovery.validators[%zu]", i);
					r->nvalidators = i + 1;
					if ((err = parse_validator(&c, vv, k, &r->validators[i])) < 0)
						goto done;
					i++;
				}
			} else if (strcmp(e->string, "json_validation") == 0) {
				if (!cJSON_IsBool(e)) {
					err = bad(&c, k, "expected true or false");
					goto done;
				}
				r->json_default = cJSON_IsTrue(e);
			} else if (strcmp(e->string, "required_files") == 0) {
				if ((err = get_strings(&c, e, k, false, &r->required, &r->nrequired)) < 0)
					goto done;
				for (size_t i = 0; i < r->nrequired; i++) {
					char kk[512];
					snprintf(kk, sizeof(kk), "%s[%zu]", k, i);
					if (r->required[i][0] != '/' && !bkr_rec_rel_ok(r->required[i])) {
						err = bad(&c, kk, "not a clean path inside the workspace");
						goto done;
					}
				}
			} else if (strcmp(e->string, "protected_patterns") == 0) {
				if ((err = get_strings(&c, e, k, false, &r->protected_patterns, &r->nprotected)) < 0)
					goto done;
			} else if (strcmp(e->string, "alert_command") == 0) {
				if ((err = get_command(&c, e, k, &r->alert, &r->nalert)) < 0)
					goto done;
			} else if (strcmp(e->string, "alert_timeout") == 0) {
				if ((err = get_timeout_ms(&c, e, k, &r->alert_timeout_ms)) < 0)
					goto done;
			} else if (strcmp(e->string, "staging_dir") == 0) {
				if ((err = get_abs_path(&c, e, k, &r->staging_dir)) < 0)
					goto done;
			}
		}
	}
	if (!r->fallback.strategies && (err = default_fallback(&r->fallback)) < 0)
		goto done;
	*out = r;
	r = NULL;
done:
	cJSON_Delete(root);
	bkr_recover_rules_free(r);
	return err;
}
