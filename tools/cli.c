/** @file
 * Shared plumbing of the bkr subcommands (see cli.h).
 */
#include "cli.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bkr/clock.h"
#include "bkr/error.h"
#include "bkr/io.h"
#include "bkr/log.h"
#include "bkr/progress.h"
#include "bkr/retention.h"
#include "bkr/store.h"
#include "bkr/utf8.h"
#include "bkr_version.h"

int cli_common(cli *c, int opt, const char *arg, const char *usage)
{
	switch (opt) {
	case 'r': c->repo = arg; return 1;
	case 'c': c->config = arg; return 1;
	case OPT_JSON: c->json = true; return 1;
	case 'q': c->quiet = true; c->progress = false; return 1;
	case 'v': c->verbose++; return 1;
	case OPT_NO_COLOR: c->color = c->color_err = false; return 1;
	case OPT_PASSWORD_FILE: c->keys.file = arg; bkr_key_set_source(&c->keys); return 1;
	case OPT_PASSWORD_COMMAND: c->keys.command = arg; bkr_key_set_source(&c->keys); return 1;
	case OPT_NEW_PASSWORD_FILE: c->keys.new_file = arg; bkr_key_set_source(&c->keys); return 1;
	case 'h': fputs(usage, stdout); return -1;
	default: return 0;
	}
}

void cli_json_string(FILE *f, const char *s, size_t len)
{
	json_out_literal(f, s, len);
}

void cli_json_path(FILE *f, const char *key, const char *s, size_t len)
{
	json_out j;
	json_out_init(&j, f);
	j.depth = 1; /* inside the caller's object: no comma before the key, no newline */
	json_out_path(&j, key, s, len);
}

/* A C0 or C1 control character, or DEL, at @p u (a UTF-8 sequence of @p n
 * bytes, 0 when it is not one): what no text output may print as it is. */
static bool control_seq(const unsigned char *u, size_t n)
{
	return n == 1 ? u[0] < 0x20 || u[0] == 0x7f : n == 2 && u[0] == 0xc2 && u[1] < 0xa0;
}

void cli_print_name(FILE *f, const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s;
	bool quote = len && p[0] == '"';

	for (size_t i = 0, n; i < len && !quote; i += n ? n : 1)
		quote = control_seq(p + i, n = bkr_utf8_seq(s + i, len - i));
	if (!quote) {
		fwrite(s, 1, len, f);
		return;
	}
	putc('"', f);
	for (size_t i = 0, n; i < len; i += n ? n : 1) {
		n = bkr_utf8_seq(s + i, len - i);
		if (p[i] == '\n' || p[i] == '\t' || p[i] == '\r' || p[i] == '"' || p[i] == '\\') {
			putc('\\', f);
			putc(p[i] == '\n' ? 'n' : p[i] == '\t' ? 't' : p[i] == '\r' ? 'r' : p[i], f);
		} else if (control_seq(p + i, n)) {
			for (size_t k = 0; k < n; k++)
				fprintf(f, "\\%03o", p[i + k]);
		} else {
			fwrite(s + i, 1, n ? n : 1, f);
		}
	}
	putc('"', f);
}

void cli_json_error(cli *c, int err, const char *msg)
{
	json_out j;
	if (!c->json)
		return;
	json_out_init(&j, stdout);
	json_out_begin_object(&j);
	json_out_key(&j, "error");
	json_out_begin_object(&j);
	json_out_member(&j, "code", bkr_error_name(err));
	json_out_key(&j, "exit");
	json_out_int(&j, bkr_exit_for(err));
	json_out_member(&j, "message", msg);
	json_out_end_object(&j);
	json_out_end_object(&j);
}

/* @p fmt formatted whole, however long (a path deeper than PATH_MAX); NULL:
 * out of memory. Free it. */
static char *vformat(const char *fmt, va_list ap)
{
	char *msg;
	va_list aq;
	int n;

	va_copy(aq, ap);
	n = vsnprintf(NULL, 0, fmt, aq);
	va_end(aq);
	if (n < 0 || !(msg = malloc((size_t)n + 1)))
		return NULL;
	vsnprintf(msg, (size_t)n + 1, fmt, ap);
	return msg;
}

/* "bkr CMD: TAG MSG" on stderr, MSG one line that nothing in it can forge
 * or colour: a control character or a byte that is not UTF-8 (a name in a
 * warning of bkr create, a PATH argument) is escaped (cli_text_safe) */
static void message_line(cli *c, const char *col, const char *tag, const char *msg)
{
	size_t cap = msg ? 4 * strlen(msg) + 16 : 0;
	char *safe = msg ? malloc(cap) : NULL;
	const char *shown = safe ? cli_text_safe(safe, cap, msg) : "(out of memory)";

	cli_progress_done(c);
	fprintf(stderr, "%sbkr %s:%s %s%s\n", cli_col_err(c, col), c->cmd ? c->cmd : "", cli_col_err(c, "reset"),
		tag ? tag : "", shown);
	free(safe);
}

static void vmessage(cli *c, const char *tag, const char *col, const char *fmt, va_list ap)
{
	char *msg = vformat(fmt, ap);
	message_line(c, col, tag, msg);
	free(msg);
}

int cli_usage_error(cli *c, const char *fmt, ...)
{
	char *raw, *safe = NULL;
	const char *msg = "(out of memory)";
	va_list ap;
	va_start(ap, fmt);
	raw = vformat(fmt, ap);
	va_end(ap);
	if (raw && (safe = malloc(4 * strlen(raw) + 16))) /* an argument quoted in it stays one line */
		msg = cli_text_safe(safe, 4 * strlen(raw) + 16, raw);
	if (c->cmd)
		fprintf(stderr, "bkr %s: %s (see 'bkr %s --help')\n", c->cmd, msg, c->cmd);
	else
		fprintf(stderr, "bkr: %s (see 'bkr --help')\n", msg);
	if (c->log_begun) /* an operand refused after the options began the log: its run says why, as cli_fail's */
		bkr_log_event(BKR_LOG_ERROR, c->cmd, "error",
			      (const char *[]){ "code", bkr_error_name(BKR_EINVAL), NULL }, "%s", raw ? raw : msg);
	cli_json_error(c, BKR_EINVAL, raw ? raw : msg);
	free(safe);
	free(raw);
	return BKR_EXIT_USAGE;
}

int cli_check_value(cli *c, const char *opt, const char *arg)
{
	if (!*arg)
		return cli_usage_error(c, "%s: expected a value, not ''", opt);
	return 0;
}

int cli_as_of(cli *c, const char *arg, int64_t *out)
{
	if (bkr_time_parse(arg, out) < 0) {
		/* a time past what bkr holds is one, but out of range: said so, as pin --until does */
		if (strstr(bkr_error_message(), "out of range"))
			return cli_usage_error(c, "--as-of: %s", bkr_error_message());
		return cli_usage_error(c, "--as-of: expected a time like 2026-11-30T12:00:00Z, not '%s'", arg);
	}
	if (*out < 0)
		return cli_usage_error(c, "--as-of: '%s' is before 1970, older than any backup", arg);
	return 0;
}

int cli_uint_arg(cli *c, const char *opt, const char *arg, const char *what, uint64_t min, uint64_t max,
		 uint64_t *out)
{
	if (bkr_config_parse_uint(arg, 10, max, out) < 0 || *out < min)
		return cli_usage_error(c, "%s: expected %s%llu..%llu (decimal digits: no sign, space or leading zero), not '%s'",
				       opt, what, (unsigned long long)min, (unsigned long long)max, arg);
	return 0;
}

int cli_check_tag(cli *c, const char *opt, const char *tag)
{
	char shown[64], why[64] = "";
	size_t len = strlen(tag), i;

	if (!len)
		return cli_usage_error(c, "%s: a tag is not empty", opt);
	if (!bkr_utf8_valid(tag, len))
		return cli_usage_error(c, "%s: a tag is UTF-8 text", opt);
	if (bkr_text_has_control(tag, len))
		snprintf(why, sizeof(why), "holds a control character");
	for (i = 0; i < len && !*why; i++) {
		unsigned char b = (unsigned char)tag[i];
		if (b == ',')
			snprintf(why, sizeof(why), "holds a comma (bkr list separates tags with commas)");
		else if (b == '/')
			snprintf(why, sizeof(why), "holds a '/' (the mount's /by-tag/TAG is a directory)");
	}
	if (!*why && (!strcmp(tag, ".") || !strcmp(tag, "..")))
		snprintf(why, sizeof(why), "cannot name the mount's /by-tag/TAG directory");
	if (!*why && len > CLI_TAG_MAX)
		snprintf(why, sizeof(why), "is longer than %d bytes", CLI_TAG_MAX);
	if (!*why)
		return 0;
	return cli_usage_error(c, "%s: tag '%s' %s", opt, bkr_text_escape(shown, sizeof(shown), tag, len), why);
}

const char *cli_text_safe(char *buf, size_t cap, const char *msg)
{
	size_t len = strlen(msg);

	if (!bkr_utf8_valid(msg, len) || bkr_text_has_control(msg, len))
		return bkr_text_escape(buf, cap, msg, len);
	return msg;
}

int cli_fail(cli *c, int err)
{
	const char *msg = bkr_error_message();
	if (!*msg)
		msg = bkr_error_name(err);
	bkr_log_event(BKR_LOG_ERROR, c->cmd, "error", (const char *[]){ "code", bkr_error_name(err), NULL }, "%s", msg);
	message_line(c, "red", NULL, msg);
	cli_json_error(c, err, msg);
	return bkr_exit_for(err);
}

/* The bytes of JSON string literal @p p (at its opening quote) as cJSON
 * wrote them (names raw, controls escaped) into @p raw; *end after it. */
static size_t unescape_literal(const char *p, char *raw, const char **end)
{
	size_t n = 0;

	for (p++; *p && *p != '"'; p++) {
		if (*p != '\\') {
			raw[n++] = *p;
			continue;
		}
		switch (*++p) {
		case 'b': raw[n++] = '\b'; break;
		case 'f': raw[n++] = '\f'; break;
		case 'n': raw[n++] = '\n'; break;
		case 'r': raw[n++] = '\r'; break;
		case 't': raw[n++] = '\t'; break;
		case 'u': {
			unsigned v = 0;
			for (int k = 1; k <= 4 && p[1]; k++, p++)
				v = v * 16 + (unsigned)(p[1] <= '9' ? p[1] - '0' : (p[1] | 0x20) - 'a' + 10);
			if (v < 0x80) {
				raw[n++] = (char)v;
			} else if (v < 0x800) {
				raw[n++] = (char)(0xc0 | v >> 6);
				raw[n++] = (char)(0x80 | (v & 0x3f));
			} else {
				raw[n++] = (char)(0xe0 | v >> 12);
				raw[n++] = (char)(0x80 | ((v >> 6) & 0x3f));
				raw[n++] = (char)(0x80 | (v & 0x3f));
			}
			break;
		}
		case 0: p--; break;
		default: raw[n++] = *p; break;
		}
	}
	*end = *p ? p + 1 : p;
	return n;
}

const char *cli_pin_text(char out[64], const bkr_manifest *m, int64_t now_ns)
{
	char when[32];
	int64_t until;

	if (!m->pinned_until)
		return strcpy(out, "");
	/* the manifest holds the time as given (any offset); a pin that is not
	 * a time keeps the backup forever, as retention reads it */
	if (!*m->pinned_until || bkr_time_parse(m->pinned_until, &until) < 0) {
		bkr_error_clear();
		return strcpy(out, "pinned");
	}
	bkr_time_format(when, until);
	snprintf(out, 64, "%s %s", bkr_retention_pinned(m, now_ns) ? "pinned until" : "pin expired", when);
	return out;
}

char *cli_manifest_json(const bkr_manifest *m, bool pretty)
{
	return cli_json_utf8(bkr_manifest_to_json(m, pretty));
}

char *cli_json_utf8(char *text)
{
	char *out = NULL, *raw;
	const char *p, *key = NULL;
	size_t outlen = 0, keylen = 0;
	bool in_array[64] = { false };
	int depth = 0;
	FILE *f;

	if (!text || bkr_utf8_valid(text, strlen(text)))
		return text;
	/* cJSON wrote a name's bytes as they are: by json_out's rules instead,
	 * U+FFFD in the string and a member's exact bytes in KEY_hex */
	if (!(raw = malloc(strlen(text) + 1)) || !(f = open_memstream(&out, &outlen))) {
		free(raw);
		free(text);
		return NULL;
	}
	for (p = text; *p;) {
		const char *start = p, *q;
		size_t n;
		if (*p == '{' || *p == '[') {
			if (depth < 63)
				in_array[++depth] = *p == '[';
			fputc(*p++, f);
			continue;
		}
		if (*p == '}' || *p == ']') {
			if (depth > 0)
				depth--;
			fputc(*p++, f);
			continue;
		}
		if (*p != '"') {
			fputc(*p++, f);
			continue;
		}
		n = unescape_literal(start, raw, &p);
		for (q = p; *q == ' ' || *q == '\n' || *q == '\t' || *q == '\r'; q++)
			;
		if (*q == ':') { /* a key (plain ASCII) */
			key = start + 1;
			keylen = (size_t)(p - start - 2);
			fwrite(start, 1, (size_t)(p - start), f);
		} else if (bkr_utf8_valid(raw, n)) {
			fwrite(start, 1, (size_t)(p - start), f);
		} else {
			json_out_literal(f, raw, n);
			if (key && !in_array[depth]) {
				fprintf(f, ",\"%.*s_hex\":\"", (int)keylen, key);
				for (size_t k = 0; k < n; k++)
					fprintf(f, "%02x", (unsigned char)raw[k]);
				fputc('"', f);
			}
		}
	}
	free(raw);
	free(text);
	if (fclose(f) != 0) {
		free(out);
		return NULL;
	}
	return out;
}

void cli_print_manifest(cli *c, const bkr_manifest *m)
{
	char *text = cli_manifest_json(m, true);
	json_out j;
	if (!text) {
		cli_fail(c, bkr_error_oom());
		return;
	}
	json_out_init(&j, stdout);
	json_out_raw(&j, text);
	free(text);
}

int cli_failf(cli *c, int err, const char *fmt, ...)
{
	char *msg;
	va_list ap;
	va_start(ap, fmt);
	msg = vformat(fmt, ap);
	va_end(ap);
	bkr_error_set(err, "%s", msg ? msg : "out of memory");
	free(msg);
	return cli_fail(c, err);
}

void cli_warn(cli *c, const char *fmt, ...)
{
	va_list ap;
	if (c->quiet)
		return;
	va_start(ap, fmt);
	vmessage(c, "warning: ", "yellow", fmt, ap);
	va_end(ap);
}

void cli_key_note(void *ctx, const char *message)
{
	cli_warn(ctx, "%s", message);
}

void cli_problem(cli *c, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vmessage(c, "warning: ", "yellow", fmt, ap);
	va_end(ap);
}

/* the backups dated in the future this run warned of (each once: a routine's
 * backup, cleanup and health steps all see them), the first BKR_FUTURE_NAMED
 * named, the rest counted for cli_warn_future_done */
static struct {
	char **ids;
	size_t n, cap;
} future_seen;

void cli_warn_future(cli *c, const char *id, int64_t time_ns)
{
	char when[32], msg[512], *dup;

	for (size_t i = 0; i < future_seen.n; i++)
		if (!strcmp(future_seen.ids[i], id))
			return;
	if (future_seen.n == future_seen.cap) {
		size_t cap = future_seen.cap ? 2 * future_seen.cap : 16;
		char **ids = realloc(future_seen.ids, cap * sizeof(*ids));
		if (!ids)
			return; /* a warning left out, not a failure */
		future_seen.ids = ids;
		future_seen.cap = cap;
	}
	if (!(dup = strdup(id)))
		return;
	future_seen.ids[future_seen.n++] = dup;
	if (future_seen.n > BKR_FUTURE_NAMED)
		return; /* counted: cli_warn_future_done */
	bkr_time_format(when, time_ns);
	snprintf(msg, sizeof(msg),
		 "backup %s is dated in the future (%s): the clock was ahead when it was made; it is not counted "
		 "as its sources' newest backup (schedules, health, recovery, 'latest') nor as a parent, retention keeps it without "
		 "counting it, and tier migration takes it for old",
		 id, when);
	bkr_log_kv(BKR_LOG_WARN, c->cmd ? c->cmd : "bkr", (const char *[]){ "backup_id", id, NULL }, "%s", msg);
	cli_warn(c, "%s", msg);
}

void cli_warn_future_done(cli *c)
{
	if (future_seen.n > BKR_FUTURE_NAMED) {
		size_t more = future_seen.n - BKR_FUTURE_NAMED;
		bkr_log(BKR_LOG_WARN, c->cmd ? c->cmd : "bkr",
			"%zu more backup%s dated in the future (bkr list shows them)", more, more == 1 ? " is" : "s are");
		cli_warn(c, "%zu more backup%s dated in the future (bkr list shows them)", more,
			 more == 1 ? " is" : "s are");
	}
	for (size_t i = 0; i < future_seen.n; i++)
		free(future_seen.ids[i]);
	free(future_seen.ids);
	memset(&future_seen, 0, sizeof(future_seen));
}

void cli_warn_holds(cli *c, const bkr_holds *h)
{
	static uint64_t warned[64]; /* FNV-1a of each line said */
	static size_t nwarned;

	for (size_t i = 0; i < h->nwarnings; i++) {
		const char *w = h->warnings[i];
		uint64_t sum = 14695981039346656037ull;
		bool seen = false;
		for (const unsigned char *p = (const unsigned char *)w; *p; p++)
			sum = (sum ^ *p) * 1099511628211ull;
		for (size_t k = 0; k < nwarned && !seen; k++)
			seen = warned[k] == sum;
		if (seen)
			continue;
		if (nwarned < sizeof(warned) / sizeof(warned[0]))
			warned[nwarned++] = sum;
		bkr_log(BKR_LOG_WARN, c->cmd ? c->cmd : "bkr", "%s", w);
		cli_warn(c, "%s", w);
	}
}

void cli_warn_future_cb(void *ctx, const char *id, int64_t time_ns)
{
	cli_warn_future(ctx, id, time_ns);
}

void cli_warn_future_list(cli *c, const bkr_manifest_list *l, int64_t now_ns)
{
	for (size_t i = 0; i < l->n; i++)
		if (l->items[i]->type != BKR_BACKUP_RECOVERY && bkr_time_in_future(l->items[i]->time_ns, now_ns))
			cli_warn_future(c, l->items[i]->backup_id, l->items[i]->time_ns);
}

/* A backup 'latest' passed over as dated in the future; a damaged manifest
 * so dated by its id is passed over as it would be if it read, named (its
 * id escaped already, its time INT64_MAX past 2262: bkr_repo_find_backup_at). */
void cli_warn_latest_passed(void *ctx, const char *id, int64_t time_ns, bool damaged)
{
	cli *c = ctx;
	char when[48] = "", msg[1024];

	if (!damaged) {
		cli_warn_future(c, id, time_ns);
		return;
	}
	if (time_ns != INT64_MAX) {
		when[0] = ' ';
		when[1] = '(';
		bkr_time_format(when + 2, time_ns);
		strcat(when, ")");
	}
	snprintf(msg, sizeof(msg),
		 "backups/%s.json is damaged and its id is dated in the future%s: 'latest' passes over it, as "
		 "over any backup made while the clock was ahead; run 'bkr verify'",
		 id, when);
	bkr_log_kv(BKR_LOG_WARN, c->cmd ? c->cmd : "bkr", (const char *[]){ "file", id, NULL }, "%s", msg);
	cli_warn(c, "%s", msg);
}

int cli_find_backup(cli *c, bkr_repo *r, const char *spec, bkr_manifest **out)
{
	return bkr_repo_find_backup_at(r, spec, bkr_time_now_ns(), cli_warn_latest_passed, c, out);
}

int cli_load_config(cli *c, bkr_config **out)
{
	const char *path = c->config ? c->config : getenv("BKR_CONFIG");
	*out = NULL;
	const bkr_config_s3 *s3;
	int err;
	if (!path || !*path)
		return 0;
	if (c->config_err)
		return bkr_error_set(c->config_err, "%s", c->config_msg);
	if ((err = bkr_config_load(out, path)) < 0)
		return err;
	/* the "s3" object reaches every s3:// store opened from now on */
	s3 = &(*out)->s3;
	bkr_store_s3_settings set = {
		.access_key_id = s3->access_key_id, .secret_access_key = s3->secret_access_key,
		.session_token = s3->session_token, .region = s3->region, .endpoint_url = s3->endpoint_url,
		.path_style = s3->path_style, .lock_stale_seconds = s3->lock_stale_seconds,
		.retry_pause_ms = s3->retry_pause_ms };
	memcpy(set.tune, s3->tune, sizeof(set.tune));
	bkr_store_s3_configure(&set);
	return 0;
}

const char *cli_repo_path(cli *c, const bkr_config *cfg)
{
	const char *env = getenv("BKR_REPO");
	if (c->repo)
		return c->repo;
	if (env && *env)
		return env;
	return cfg ? cfg->repository : NULL;
}

int cli_repo_location(cli *c, bkr_config **cfg, const char **path)
{
	int err = cli_load_config(c, cfg);
	*path = err < 0 ? NULL : cli_repo_path(c, *cfg);
	return err;
}

int cli_repo_needed(cli *c, bkr_config **cfg, const char **path)
{
	int err = cli_repo_location(c, cfg, path);

	if (err == 0 && !*path)
		err = bkr_error_set(BKR_EINVAL,
				    "no repository: give -r REPO, set BKR_REPO, or name one in the configuration (-c)");
	return err;
}

static void warn_index(void *ctx, const char *message)
{
	cli_warn(ctx, "%s (index file left out: the blobs it names are missing)", message);
}

void cli_warn_opened(cli *c, bkr_repo *r)
{
	if (bkr_repo_config_warning(r))
		cli_warn(c, "%s", bkr_repo_config_warning(r));
	bkr_repo_index_warnings(r, warn_index, c);
}

int cli_open_repo(cli *c, bkr_repo **out, int flags)
{
	bkr_config *cfg = NULL;
	const char *path;
	bool ours;
	int err;

	*out = NULL;
	if ((err = cli_repo_needed(c, &cfg, &path)) < 0) {
		bkr_config_free(cfg);
		return err;
	}
	err = bkr_repo_open(out, path, flags);
	if (err == 0)
		cli_warn_opened(c, *out);
	/* the repository records its tiers; one the configuration names for this repository and
	 * not recorded yet is searched too (not another repository's, given with -r) */
	ours = cfg && (!cfg->repository || strcmp(cfg->repository, path) == 0);
	if (err == 0 && ours && cfg->warm.path)
		err = bkr_repo_add_tier(*out, "warm", cfg->warm.path, false);
	if (err == 0 && ours && cfg->cold.path)
		err = bkr_repo_add_tier(*out, "cold", cfg->cold.path, false);
	bkr_config_free(cfg);
	return err;
}

void cli_term_init(cli *c)
{
	const char *no_color = getenv("NO_COLOR"), *term = getenv("TERM");
	bool dumb = term && !strcmp(term, "dumb");

	/* each stream by itself: 'bkr list > file' on a terminal writes no escapes into the file */
	c->color = !dumb && !(no_color && *no_color) && isatty(STDOUT_FILENO);
	c->color_err = !dumb && !(no_color && *no_color) && isatty(STDERR_FILENO);
	c->progress = !dumb && isatty(STDERR_FILENO);
}

static const char *color(bool on, const char *which)
{
	if (!on)
		return "";
	if (!strcmp(which, "red"))
		return "\033[31m";
	if (!strcmp(which, "green"))
		return "\033[32m";
	if (!strcmp(which, "yellow"))
		return "\033[33m";
	if (!strcmp(which, "bold"))
		return "\033[1m";
	if (!strcmp(which, "dim"))
		return "\033[2m";
	return "\033[0m";
}

const char *cli_col(cli *c, const char *which)
{
	return color(c->color, which);
}

const char *cli_col_err(cli *c, const char *which)
{
	return color(c->color_err, which);
}

void cli_human_bytes(char out[32], uint64_t n)
{
	bkr_progress_bytes(out, n);
}

/* the line on screen; the newest one held back by the rate limit */
static bool progress_shown;
static pthread_mutex_t progress_lock = PTHREAD_MUTEX_INITIALIZER;
static char progress_pending[256];
static cli *progress_cli;

static void progress_draw(const char *line)
{
	fprintf(stderr, "\r\033[K%s", line);
	fflush(stderr);
	progress_shown = true;
	progress_pending[0] = '\0';
}

/* A test's "stop" fault pauses the process: show what is held back first. */
static void progress_flush_on_stop(void)
{
	pthread_mutex_lock(&progress_lock);
	if (progress_pending[0] && progress_cli && progress_cli->progress)
		progress_draw(progress_pending);
	pthread_mutex_unlock(&progress_lock);
}

/* at most five lines a second, except a @p final one */
static void progress_line(cli *c, const char *line, bool final)
{
	static int64_t last;
	int64_t now = bkr_clock_mono_ns();

	if (!c->progress)
		return;
	pthread_mutex_lock(&progress_lock);
	if (!progress_cli) {
		progress_cli = c;
		bkr_io_fault_on_stop(progress_flush_on_stop);
	}
	if (progress_shown && !final && now - last < 200000000LL) {
		snprintf(progress_pending, sizeof(progress_pending), "%s", line);
	} else {
		last = now;
		progress_draw(line);
	}
	pthread_mutex_unlock(&progress_lock);
}

void cli_progress(cli *c, const char *fmt, ...)
{
	char line[256];
	va_list ap;

	if (!c->progress)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	progress_line(c, line, false);
}

void cli_progress_counts(cli *c, const char *what, const char *items, uint64_t items_done,
			 uint64_t items_total, uint64_t bytes_done, uint64_t bytes_total)
{
	static bkr_progress p;
	static char last_what[64], last_items[64];
	char line[256];
	int64_t now = bkr_clock_mono_ns();

	if (!c->progress)
		return;
	/* the first phase is measured from the command's start (the first line
	 * has a rate), a later one from its own first count */
	if (strncmp(last_what, what, sizeof(last_what) - 1) || strncmp(last_items, items, sizeof(last_items) - 1)) {
		bkr_progress_begin(&p, !*last_what && c->start_ns ? c->start_ns : now);
		snprintf(last_what, sizeof(last_what), "%s", what);
		snprintf(last_items, sizeof(last_items), "%s", items);
	}
	bkr_progress_update(&p, now, items_done, items_total, bytes_done, bytes_total);
	bkr_progress_format(&p, what, items, line, sizeof(line));
	progress_line(c, line, items_total && items_done == items_total); /* the end is always shown */
}

void cli_progress_step(void *ctx, const char *step, const char *items, uint64_t done, uint64_t total,
		       uint64_t bytes_done, uint64_t bytes_total)
{
	cli_progress_counts(ctx, step, items, done, total, bytes_done, bytes_total);
}

void cli_backup_progress(void *ctx, const bkr_backup_progress *p)
{
	if (p->phase == 1)
		cli_progress(ctx, "scanning: %llu files", (unsigned long long)p->files_total);
	else
		cli_progress_counts(ctx, "backing up", "files", p->files_done, p->files_total, p->bytes_done,
				    p->bytes_total);
}

void cli_verify_progress(void *ctx, const char *phase, uint64_t done, uint64_t total, uint64_t bytes_done,
			 uint64_t bytes_total)
{
	cli_progress_counts(ctx, "verifying", phase, done, total, bytes_done, bytes_total);
}

void cli_tier_progress(void *ctx, uint64_t packs_done, uint64_t packs_total, uint64_t bytes_done, uint64_t bytes_total)
{
	cli_progress_counts(ctx, "migrating", "packs", packs_done, packs_total, bytes_done, bytes_total);
}

void cli_progress_done(cli *c)
{
	(void)c;
	pthread_mutex_lock(&progress_lock);
	progress_pending[0] = '\0';
	pthread_mutex_unlock(&progress_lock);
	if (progress_shown) {
		fputs("\r\033[K", stderr);
		fflush(stderr);
		progress_shown = false;
	}
}

/* The log's own failure (a file that cannot be written; reported once) is a
 * warning.  -v: the log's info lines (-vv: debug too) on stderr; warnings
 * and errors reach the terminal through the commands' own messages. */
static void print_log_line(void *ctx, bkr_log_level level, const char *component, const char *message,
			   const char *json_line)
{
	cli *c = ctx;
	(void)json_line;
	if (!strcmp(component, "log") && level == BKR_LOG_ERROR) {
		cli_warn(c, "%s (not logging)", message);
		return;
	}
	if (!c->verbose || level > BKR_LOG_INFO)
		return;
	cli_progress_done(c);
	fprintf(stderr, "bkr %s: %s\n", c->cmd ? c->cmd : "", message);
}

void cli_log_begin(cli *c, int argc, char **argv)
{
	bkr_config *cfg = NULL;
	char *args = NULL;
	size_t len = 0;
	FILE *f;
	int err;

	if (!c->logs || c->log_begun)
		return;
	c->log_begun = true;
	/* the command itself reports a configuration that cannot be read, as
	 * this read found it: a second read that worked (an I/O error that
	 * passed) would run the command with its log in another directory */
	if ((err = cli_load_config(c, &cfg)) < 0) {
		cfg = NULL;
		c->config_err = err;
		snprintf(c->config_msg, sizeof(c->config_msg), "%s", bkr_error_message());
	}
	bkr_error_clear();
	c->log_dir = cfg && cfg->log_dir ? strdup(cfg->log_dir) : bkr_log_default_dir();
	if ((f = open_memstream(&args, &len))) {
		for (int i = 0; i < argc; i++)
			fprintf(f, "%s%s", i ? " " : "", argv[i]);
		fclose(f);
	}
	bkr_log_set_hook(print_log_line, c);
	err = bkr_log_command_begin(c->log_dir, c->verbose >= 2 ? BKR_LOG_DEBUG : BKR_LOG_INFO, c->cmd,
				    (const char *[]){ "version", BKR_VERSION, "args", args ? args : "",
						      "repository", cli_repo_path(c, cfg) ? cli_repo_path(c, cfg) : "",
						      NULL });
	if (err < 0)
		cli_warn(c, "%s (not logging)", bkr_error_message());
	bkr_error_clear();
	free(args);
	bkr_config_free(cfg);
}

void cli_log_end(cli *c, int rc)
{
	if (!c->log_begun)
		return;
	bkr_log_command_end(rc);
	bkr_log_set_hook(NULL, NULL);
	free(c->log_dir);
	c->log_dir = NULL;
	c->log_begun = false;
}

int cli_parse(cli *c, int argc, char **argv, const char *usage, const char *shortopts,
	      const struct option *longopts, cli_opt_fn handle, void *state, int *first_arg)
{
	static const struct option common[] = { CLI_COMMON_LONG, { NULL, 0, NULL, 0 } };
	struct option all[64];
	char shorts[128];
	size_t n = 0;
	int opt, rc, li = -1;

	/* GNU getopt permutes, so options may follow operands ("ls ID PATH --json"). */
	snprintf(shorts, sizeof(shorts), ":%s%s", CLI_COMMON_SHORT, shortopts ? shortopts : "");
	for (const struct option *o = longopts; o && o->name && n < 48; o++)
		all[n++] = *o;
	for (const struct option *o = common; o->name; o++)
		all[n++] = *o;
	memset(&all[n], 0, sizeof(all[n]));

	/* --json anywhere makes even an error about an earlier option JSON. */
	for (int i = 1; i < argc && strcmp(argv[i], "--"); i++)
		if (!strcmp(argv[i], "--json"))
			c->json = true;
	/* Long options by their exact names only, as the global options before
	 * the command: getopt_long would take an abbreviation ("--ty" for
	 * --type), which a later option could make ambiguous or change. */
	for (int i = 1; i < argc && strcmp(argv[i], "--"); i++) {
		const char *a = argv[i];
		size_t len;
		const struct option *o;
		if (a[0] != '-' || !a[1])
			continue;
		if (a[1] != '-') { /* short options: one taking a value takes the rest, or the next argument */
			for (const char *q = a + 1; *q; q++) {
				const char *k = *q == ':' ? NULL : strchr(shorts + 1, *q);
				if (k && k[1] == ':') {
					if (!q[1] && i + 1 < argc)
						i++;
					break;
				}
			}
			continue;
		}
		len = strcspn(a + 2, "=");
		for (o = all; o->name; o++)
			if (strlen(o->name) == len && !strncmp(o->name, a + 2, len))
				break;
		if (!o->name)
			return cli_usage_error(c, "unknown option '%.*s'", (int)(len + 2), a);
		if (o->has_arg == required_argument && !a[2 + len] && i + 1 < argc)
			i++; /* its value, whatever it looks like */
	}
	optind = 0; /* full re-initialisation of GNU getopt */
	opterr = 0;
	while ((opt = getopt_long(argc, argv, shorts, all, &li)) != -1) {
		if (opt == '?') {
			if (optopt && optopt < 256)
				return cli_usage_error(c, "unknown option '-%c'", optopt);
			return cli_usage_error(c, "unknown option '%s'", argv[optind - 1]);
		}
		if (opt == ':')
			return cli_usage_error(c, "option '%s' needs a value", argv[optind - 1]);
		if (optarg && !*optarg) { /* named as given: -t or --target */
			char name[64];
			if (li >= 0)
				snprintf(name, sizeof(name), "--%s", all[li].name);
			else
				snprintf(name, sizeof(name), "-%c", opt);
			return cli_check_value(c, name, optarg);
		}
		li = -1; /* set by a long option only */
		rc = cli_common(c, opt, optarg, usage);
		if (rc < 0)
			return CLI_PARSE_HELP;
		if (rc > 0)
			continue;
		if (!handle)
			return cli_usage_error(c, "unexpected option");
		if ((rc = handle(c, opt, optarg, state)) != 0)
			return rc;
	}
	/* an empty operand names no backup, path or repository: '' is no root ('ls ID ""'), no
	 * current directory, never a default */
	for (int i = optind; i < argc; i++)
		if (!*argv[i])
			return cli_usage_error(c, "operand %d is empty: an empty string names nothing", i - optind + 1);
	if (c->json)
		c->progress = false;
	*first_arg = optind;
	cli_log_begin(c, argc, argv);
	return 0;
}

static char *own(cli_sources *s, char *str)
{
	char **o;
	if (!str)
		return NULL;
	if (!(o = realloc(s->owned, (s->nowned + 1) * sizeof(*o)))) {
		free(str);
		return NULL;
	}
	s->owned = o;
	o[s->nowned++] = str;
	return str;
}

/* A source's name: the last component of @p arg as given (a symlink is named
 * itself, not its target), or of its real path @p abs when that is '.', '..'
 * or none ('/'). */
static char *source_name(const char *arg, const char *abs)
{
	size_t len = strlen(arg), start, n;

	while (len > 1 && arg[len - 1] == '/')
		len--;
	for (start = len; start > 0 && arg[start - 1] != '/'; start--)
		;
	n = len - start;
	if (n && !(arg[start] == '.' && (n == 1 || (n == 2 && arg[start + 1] == '.'))))
		return strndup(arg + start, n);
	arg = strrchr(abs, '/');
	return strdup(arg && arg[1] ? arg + 1 : "root");
}

int cli_sources_get(cli *c, const bkr_config *cfg, char **paths, int npaths,
		    char **only, size_t nonly, cli_sources *out)
{
	memset(out, 0, sizeof(*out));
	if (npaths > 0) {
		if (!(out->specs = calloc((size_t)npaths, sizeof(*out->specs))))
			return bkr_error_oom();
		for (int i = 0; i < npaths; i++) {
			/* NAME=PATH names the source; a NAME has no '/' (so "./a=b" is a path) */
			const char *arg = paths[i], *eq = strchr(arg, '='), *slash = strchr(arg, '/');
			bool named = eq && eq > arg && (!slash || slash > eq);
			char *abs, *name;
			if (named && !eq[1]) /* realpath("") would say "source : No such file or directory" */
				return bkr_error_set(BKR_EINVAL, "source %s: no PATH after '=' (NAME=PATH)", arg);
			abs = own(out, realpath(named ? eq + 1 : arg, NULL));
			if (!abs)
				return bkr_error_set_errno(errno, "source %s", named ? eq + 1 : arg);
			if (named) {
				name = own(out, strndup(arg, (size_t)(eq - arg)));
			} else {
				name = own(out, source_name(arg, abs));
			}
			if (!name)
				return bkr_error_oom();
			if (!strcmp(name, ".") || !strcmp(name, ".."))
				return bkr_error_set(BKR_EINVAL, "source %s: '%s' cannot name a source", arg, name);
			for (size_t k = 0; k < out->n; k++)
				if (!strcmp(out->specs[k].name, name))
					return bkr_error_set(BKR_EINVAL, "two sources are named '%s' (%s and %s); name them with NAME=PATH",
							     name, out->specs[k].path, abs);
			out->specs[out->n].name = name;
			out->specs[out->n].path = abs;
			out->n++;
		}
		out->workspace_root = out->n == 1 ? out->specs[0].path : NULL;
		return 0;
	}
	if (!cfg)
		return bkr_error_set(BKR_EINVAL, "nothing to back up: give PATHs or a configuration with -c");
	if (!(out->specs = calloc(cfg->nsources ? cfg->nsources * 4 : 1, sizeof(*out->specs))))
		return bkr_error_oom();
	for (size_t k = 0; k < nonly; k++)
		if (!bkr_config_find_source(cfg, only[k]))
			return bkr_error_set(BKR_ENOTFOUND, "%s: no source named '%s'", cfg->file ? cfg->file : "config", only[k]);
	for (size_t i = 0; i < cfg->nsources; i++) {
		const bkr_config_source *src = &cfg->sources[i];
		bool want = nonly == 0;
		for (size_t k = 0; k < nonly; k++)
			want |= !strcmp(only[k], src->name);
		if (!want)
			continue;
		if (src->npaths != 1)
			return bkr_error_set(BKR_EINVAL, "%s: source '%s' has %zu paths; bkr backs up one path per source",
					     cfg->file ? cfg->file : "config", src->name, src->npaths);
		bkr_source_spec *sp = &out->specs[out->n++];
		sp->name = src->name;
		sp->path = src->paths[0];
		sp->excludes = (const char *const *)src->excludes;
		sp->nexcludes = src->nexcludes;
	}
	out->workspace_root = cfg->workspace_root;
	(void)c;
	return 0;
}

size_t cli_skip_paths(const bkr_config *cfg, const char *skip[3])
{
	size_t n = 0;
	if (cfg) {
		const char *p[] = { cfg->warm.path, cfg->cold.path, cfg->log_dir };
		for (size_t i = 0; i < 3; i++)
			if (p[i])
				skip[n++] = p[i];
	}
	return n;
}

void cli_sources_free(cli_sources *s)
{
	for (size_t i = 0; i < s->nowned; i++)
		free(s->owned[i]);
	free(s->owned);
	free(s->specs);
	memset(s, 0, sizeof(*s));
}

int cli_live_abs_error(cli *c, const char *arg, int errnum)
{
	if (errnum == ENOENT || errnum == ENOTDIR)
		return 0;
	if (errnum == ENOMEM)
		return cli_fail(c, bkr_error_oom());
	bkr_error_set_errno(errnum, "%s", arg);
	if (errnum == ENAMETOOLONG)
		bkr_error_set(BKR_EIO, "%s (name it as SOURCE/PATH, as 'bkr ls' shows it)", bkr_error_message());
	return cli_fail(c, bkr_error_last_code());
}

char *cli_live_abs(const char *arg)
{
	char *r = realpath(arg, NULL), *dir, *slash, *out = NULL;
	const char *name;

	if (r)
		return r;
	if (!(dir = strdup(arg)))
		return NULL;
	/* "gone/" names what "gone" does (the directory it was) */
	for (size_t n = strlen(dir); n > 1 && dir[n - 1] == '/';)
		dir[--n] = '\0';
	slash = strrchr(dir, '/');
	if (slash)
		*slash = 0;
	name = slash ? slash + 1 : dir;
	r = realpath(slash ? (*dir ? dir : "/") : ".", NULL);
	if (r) {
		size_t rl = strlen(r), nl = strlen(name);
		bool sep = rl && r[rl - 1] != '/' && nl;
		if ((out = malloc(rl + nl + 2)))
			snprintf(out, rl + nl + 2, "%s%s%s", r, sep ? "/" : "", name);
	}
	free(r);
	free(dir);
	return out;
}
