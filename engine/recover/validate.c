/** @file
 * Validators: decide whether a file's bytes are usable.  "json" checks the
 * syntax (RFC 8259, no nesting limit; reports line and column of the first
 * error), "nonempty" rejects
 * a zero-length file, "command" runs a configured argv with "{path}" replaced
 * by a file holding the bytes and accepts exit status 0.  Files named *.json
 * get the json validator unless "json_validation" is false.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bkr/error.h"
#include "bkr/io.h"
#include "recover_i.h"

static bool is_json_name(const char *rel)
{
	size_t n = strlen(rel);
	return n >= 5 && strcmp(rel + n - 5, ".json") == 0;
}

bool bkr_rec_has_validator(const bkr_recover *rc, const char *rel)
{
	if (rc->rules->json_default && is_json_name(rel))
		return true;
	for (size_t i = 0; i < rc->rules->nvalidators; i++)
		if (bkr_rec_match(rc->rules->validators[i].pattern, rel, NULL))
			return true;
	return false;
}

/*
 * A JSON syntax checker (RFC 8259 grammar), iterative: nesting is only
 * limited by memory (one bit per level), so a deep but valid document is
 * never called invalid — cJSON, used here before, stops at 1000 levels.  A
 * \u escape of a lone surrogate is valid syntax and accepted; the bytes are
 * not checked for UTF-8 (as before); a leading UTF-8 BOM is skipped (as
 * cJSON did).  Returns 1 when the text is valid, 0 with the offset of the
 * first error in *err_off, or BKR_ENOMEM.
 */
static bool is_ws(uint8_t c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static bool is_hex(uint8_t c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static bool is_digit(uint8_t c)
{
	return c >= '0' && c <= '9';
}

/* a string starting at data[*i] == '"'; *i ends after its closing quote */
static bool json_string(const uint8_t *d, size_t len, size_t *i)
{
	size_t p = *i + 1;

	while (p < len) {
		uint8_t c = d[p];
		if (c == '"') {
			*i = p + 1;
			return true;
		}
		if (c < 0x20) {
			*i = p;
			return false;
		}
		if (c == '\\') {
			if (p + 1 >= len) {
				*i = p + 1;
				return false;
			}
			c = d[p + 1];
			if (c == 'u') {
				for (size_t k = 0; k < 4; k++) {
					if (p + 2 + k >= len || !is_hex(d[p + 2 + k])) {
						*i = p + 2 + k;
						return false;
					}
				}
				p += 6;
				continue;
			}
			if (!strchr("\"\\/bfnrt", c) || c == 0) {
				*i = p + 1;
				return false;
			}
			p += 2;
			continue;
		}
		p++;
	}
	*i = p;
	return false;
}

static bool json_number(const uint8_t *d, size_t len, size_t *i)
{
	size_t p = *i;

	if (p < len && d[p] == '-')
		p++;
	if (p < len && d[p] == '0') {
		p++;
	} else if (p < len && d[p] >= '1' && d[p] <= '9') {
		while (p < len && is_digit(d[p]))
			p++;
	} else {
		*i = p;
		return false;
	}
	if (p < len && d[p] == '.') {
		p++;
		if (p >= len || !is_digit(d[p])) {
			*i = p;
			return false;
		}
		while (p < len && is_digit(d[p]))
			p++;
	}
	if (p < len && (d[p] == 'e' || d[p] == 'E')) {
		p++;
		if (p < len && (d[p] == '+' || d[p] == '-'))
			p++;
		if (p >= len || !is_digit(d[p])) {
			*i = p;
			return false;
		}
		while (p < len && is_digit(d[p]))
			p++;
	}
	*i = p;
	return true;
}

int bkr_rec_json_check(const uint8_t *d, size_t len, size_t *err_off)
{
	uint8_t *stack = NULL; /* bit set: the level is an object */
	size_t depth = 0, cap = 0, i = 0;

	*err_off = 0;
	if (len >= 3 && d[0] == 0xEF && d[1] == 0xBB && d[2] == 0xBF)
		i = 3;
	for (;;) {
		/* a value */
		while (i < len && is_ws(d[i]))
			i++;
		if (i >= len)
			goto bad;
		if (d[i] == '{' || d[i] == '[') {
			bool obj = d[i] == '{';
			if (depth / 8 >= cap) {
				size_t nc = cap ? cap * 2 : 64;
				uint8_t *ns = realloc(stack, nc);
				if (!ns) {
					free(stack);
					return bkr_error_oom();
				}
				memset(ns + cap, 0, nc - cap);
				stack = ns;
				cap = nc;
			}
			if (obj)
				stack[depth / 8] |= (uint8_t)(1u << (depth % 8));
			else
				stack[depth / 8] &= (uint8_t)~(1u << (depth % 8));
			depth++;
			i++;
			while (i < len && is_ws(d[i]))
				i++;
			if (i < len && d[i] == (obj ? '}' : ']')) {
				depth--;
				i++;
				goto after;
			}
			if (!obj)
				continue;
			goto key;
		} else if (d[i] == '"') {
			if (!json_string(d, len, &i))
				goto bad;
		} else if (d[i] == '-' || is_digit(d[i])) {
			if (!json_number(d, len, &i))
				goto bad;
		} else {
			static const char *const lit[] = { "true", "false", "null" };
			size_t k = 0, n;
			while (k < 3 && lit[k][0] != d[i])
				k++;
			if (k == 3)
				goto bad;
			n = strlen(lit[k]);
			for (size_t m = 0; m < n; m++, i++)
				if (i >= len || d[i] != (uint8_t)lit[k][m])
					goto bad;
		}
	after:
		/* after a value: the end, or a separator / the close of the container */
		while (i < len && is_ws(d[i]))
			i++;
		if (depth == 0) {
			if (i < len)
				goto bad;
			free(stack);
			return 1;
		}
		if (i >= len)
			goto bad;
		{
			bool obj = (stack[(depth - 1) / 8] >> ((depth - 1) % 8)) & 1;
			if (d[i] == (obj ? '}' : ']')) {
				depth--;
				i++;
				goto after;
			}
			if (d[i] != ',')
				goto bad;
			i++;
			if (!obj)
				continue;
		}
	key:
		/* an object member: "key" ':' then its value */
		while (i < len && is_ws(d[i]))
			i++;
		if (i >= len || d[i] != '"' || !json_string(d, len, &i))
			goto bad;
		while (i < len && is_ws(d[i]))
			i++;
		if (i >= len || d[i] != ':')
			goto bad;
		i++;
	}
bad:
	free(stack);
	*err_off = i < len ? i : len;
	return 0;
}

static int check_json(const uint8_t *data, size_t len, char **why)
{
	size_t off, line = 1, col = 1;
	int r;

	*why = NULL;
	if (len == 0)
		return (*why = strdup("empty file, not valid JSON")) ? 0 : bkr_error_oom();
	if (memchr(data, '\0', len))
		return (*why = strdup("contains NUL bytes, not valid JSON")) ? 0 : bkr_error_oom();
	if ((r = bkr_rec_json_check(data, len, &off)) != 0)
		return r;
	for (size_t i = 0; i < off; i++) {
		if (data[i] == '\n') {
			line++;
			col = 1;
		} else {
			col++;
		}
	}
	if (asprintf(why, "not valid JSON (error at line %zu, column %zu)", line, col) < 0) {
		*why = NULL;
		return bkr_error_oom();
	}
	return 0;
}

static int check_command(bkr_recover *rc, const bkr_rec_validator *v, const char *rel, const uint8_t *data,
			 size_t len, char **why)
{
	const char *scratch;
	char path[4096], **argv = NULL;
	int fd = -1, err;
	bkr_rec_proc p = { 0 };

	*why = NULL;
	if ((err = bkr_rec_scratch(rc, &scratch)) < 0)
		return err;
	snprintf(path, sizeof(path), "%s/validate-XXXXXX", scratch);
	if ((fd = mkstemp(path)) < 0)
		return bkr_error_set_errno(errno, "validator: %s", path);
	if ((err = bkr_io_write_full(fd, data, len, path)) < 0)
		goto done;
	close(fd);
	fd = -1;
	if (!(argv = calloc(v->argc + 1, sizeof(*argv)))) {
		err = bkr_error_oom();
		goto done;
	}
	for (size_t i = 0; i < v->argc; i++) {
		if (!(argv[i] = bkr_rec_substitute(v->argv[i], NULL, path, path, rc->workspace, rel))) {
			err = bkr_error_oom();
			goto done;
		}
	}
	if ((err = bkr_rec_spawn(argv, NULL, 0, v->timeout_ms, &p)) < 0)
		goto done;
	if (!p.timed_out && WIFEXITED(p.status) && WEXITSTATUS(p.status) == 0) {
		err = 1;
	} else {
		char *d = bkr_rec_proc_describe("validator command", &p, v->timeout_ms);
		if (!d) {
			err = bkr_error_oom();
			goto done;
		}
		if (p.timed_out) {
			/* not a verdict: the file is not known to be invalid (a check slower
			 * on a grown file), so nothing may be overwritten for it */
			err = bkr_error_set(BKR_ETIMEOUT, "%s", d);
			free(d);
			goto done;
		}
		*why = d;
		err = 0;
	}
done:
	bkr_rec_proc_free(&p);
	if (argv)
		for (size_t i = 0; i < v->argc; i++)
			free(argv[i]);
	free(argv);
	if (fd >= 0)
		close(fd);
	unlink(path);
	return err;
}

int bkr_rec_validate(bkr_recover *rc, const char *rel, const uint8_t *data, size_t len, bool nonempty,
		     char **why)
{
	bool json_done = false;
	int r;

	*why = NULL;
	if (nonempty && len == 0)
		return (*why = strdup("empty file")) ? 0 : bkr_error_oom();
	for (size_t i = 0; i < rc->rules->nvalidators; i++) {
		const bkr_rec_validator *v = &rc->rules->validators[i];
		if (!bkr_rec_match(v->pattern, rel, NULL))
			continue;
		switch (v->type) {
		case BKR_VALIDATE_JSON:
			json_done = true;
			r = check_json(data, len, why);
			break;
		case BKR_VALIDATE_NONEMPTY:
			r = len ? 1 : ((*why = strdup("empty file")) ? 0 : bkr_error_oom());
			break;
		default:
			r = check_command(rc, v, rel, data, len, why);
			break;
		}
		if (r <= 0)
			return r;
	}
	if (!json_done && rc->rules->json_default && is_json_name(rel))
		return check_json(data, len, why);
	return 1;
}
