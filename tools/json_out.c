/** @file
 * The JSON writer of bkr's --json output (see json_out.h).
 */
#include "json_out.h"

#include <inttypes.h>
#include <string.h>

#include "bkr/utf8.h"

void json_out_init(json_out *j, FILE *f)
{
	memset(j, 0, sizeof(*j));
	j->f = f;
}

/* Before any value: the comma between members, a newline between the
 * elements of a top-level array. */
static void before_value(json_out *j)
{
	if (j->after_key) {
		j->after_key = false;
		return;
	}
	if (j->depth == 0)
		return;
	/* deeper than the table (never, in bkr): the last level's flag serves */
	int lv = j->depth <= JSON_OUT_MAX_DEPTH ? j->depth - 1 : JSON_OUT_MAX_DEPTH - 1;
	if (j->items[lv])
		fputc(',', j->f);
	j->items[lv] = true;
	if (j->depth == 1 && j->array[0])
		fputc('\n', j->f);
}

/* After a value: a document ends with a newline. */
static void after_value(json_out *j)
{
	if (j->depth == 0)
		fputc('\n', j->f);
}

static void open_level(json_out *j, char ch)
{
	before_value(j);
	fputc(ch, j->f);
	if (j->depth < JSON_OUT_MAX_DEPTH) {
		j->items[j->depth] = false;
		j->array[j->depth] = ch == '[';
	}
	j->depth++;
}

static void close_level(json_out *j, char ch, bool newline_before)
{
	if (j->depth > 0)
		j->depth--;
	if (newline_before && j->depth == 0 && j->items[0] && j->array[0])
		fputc('\n', j->f);
	fputc(ch, j->f);
	if (j->depth == 0)
		fputc('\n', j->f);
}

void json_out_begin_object(json_out *j)
{
	open_level(j, '{');
}

void json_out_end_object(json_out *j)
{
	close_level(j, '}', false);
}

void json_out_begin_array(json_out *j)
{
	open_level(j, '[');
}

void json_out_end_array(json_out *j)
{
	close_level(j, ']', true);
}

void json_out_key(json_out *j, const char *key)
{
	before_value(j);
	fputc('"', j->f);
	fputs(key, j->f);
	fputs("\":", j->f);
	j->after_key = true;
}

void json_out_literal(FILE *f, const char *s, size_t len)
{
	fputc('"', f);
	for (size_t i = 0; i < len;) {
		unsigned char ch = (unsigned char)s[i];
		size_t n = bkr_utf8_seq(s + i, len - i);
		if (n == 0) {
			fputs("\\ufffd", f); /* not UTF-8: json_out_path adds the exact bytes */
			i++;
			continue;
		}
		if (n > 1)
			fwrite(s + i, 1, n, f);
		else if (ch == '"' || ch == '\\')
			fprintf(f, "\\%c", ch);
		else if (ch == '\n')
			fputs("\\n", f);
		else if (ch == '\t')
			fputs("\\t", f);
		else if (ch < 0x20 || ch == 0x7f)
			fprintf(f, "\\u%04x", ch);
		else
			fputc(ch, f);
		i += n;
	}
	fputc('"', f);
}

void json_out_bytes(json_out *j, const char *s, size_t len)
{
	before_value(j);
	json_out_literal(j->f, s, len);
	after_value(j);
}

void json_out_string(json_out *j, const char *s)
{
	json_out_bytes(j, s, strlen(s));
}

void json_out_uint(json_out *j, uint64_t v)
{
	before_value(j);
	fprintf(j->f, "%" PRIu64, v);
	after_value(j);
}

void json_out_int(json_out *j, int64_t v)
{
	before_value(j);
	fprintf(j->f, "%" PRId64, v);
	after_value(j);
}

void json_out_bool(json_out *j, bool v)
{
	before_value(j);
	fputs(v ? "true" : "false", j->f);
	after_value(j);
}

void json_out_null(json_out *j)
{
	before_value(j);
	fputs("null", j->f);
	after_value(j);
}

void json_out_raw(json_out *j, const char *json)
{
	before_value(j);
	fputs(json, j->f);
	after_value(j);
}

void json_out_member(json_out *j, const char *key, const char *s)
{
	json_out_key(j, key);
	if (s)
		json_out_string(j, s);
	else
		json_out_null(j);
}

void json_out_path(json_out *j, const char *key, const char *s, size_t len)
{
	json_out_key(j, key);
	json_out_bytes(j, s, len);
	if (!bkr_utf8_valid(s, len)) {
		before_value(j);
		fprintf(j->f, "\"%s_hex\":\"", key);
		for (size_t i = 0; i < len; i++)
			fprintf(j->f, "%02x", (unsigned char)s[i]);
		fputc('"', j->f);
	}
}

void json_out_hold(json_out *j, const bkr_hold *h)
{
	char t[32];

	json_out_begin_object(j);
	json_out_path(j, "path", h->path, strlen(h->path));
	json_out_member(j, "damage", h->damage);
	json_out_member(j, "backup_id", h->backup_id);
	json_out_member(j, "since", bkr_hold_since(h, t));
	json_out_member(j, "host", h->host);
	json_out_end_object(j);
}
