/** @file
 * UTF-8 validation and replacement (see bkr/utf8.h).
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bkr/utf8.h"

size_t bkr_utf8_seq(const char *str, size_t len)
{
	const unsigned char *s = (const unsigned char *)str;
	size_t n;
	uint32_t cp;

	if (s[0] < 0x80)
		return 1;
	if ((s[0] & 0xe0) == 0xc0) {
		n = 2;
		cp = s[0] & 0x1f;
	} else if ((s[0] & 0xf0) == 0xe0) {
		n = 3;
		cp = s[0] & 0x0f;
	} else if ((s[0] & 0xf8) == 0xf0) {
		n = 4;
		cp = s[0] & 0x07;
	} else {
		return 0;
	}
	if (n > len)
		return 0;
	for (size_t i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (s[i] & 0x3f);
	}
	if ((n == 2 && cp < 0x80) || (n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return n;
}

bool bkr_utf8_valid(const char *s, size_t len)
{
	for (size_t i = 0; i < len;) {
		size_t n = bkr_utf8_seq(s + i, len - i);
		if (!n)
			return false;
		i += n;
	}
	return true;
}

bool bkr_text_has_control(const char *s, size_t len)
{
	const unsigned char *u = (const unsigned char *)s;

	for (size_t i = 0, n; i < len; i += n ? n : 1) {
		n = bkr_utf8_seq(s + i, len - i);
		if ((n == 1 && (u[i] < 0x20 || u[i] == 0x7f)) || (n == 2 && u[i] == 0xc2 && u[i + 1] < 0xa0))
			return true;
	}
	return false;
}

/* Escape s[0..len) into out[0..limit) (limit bytes of text, no NUL):
 * returns the bytes written; *done tells whether all of s went in. */
static size_t escape_into(char *out, size_t limit, const char *s, size_t len, bool *done)
{
	static const char hex[] = "0123456789abcdef";
	size_t o = 0, i = 0;

	while (i < len) {
		unsigned char c = (unsigned char)s[i];
		size_t n = c < 0x80 ? 1 : bkr_utf8_seq(s + i, len - i);
		bool plain = n > 1 ? !(c == 0xc2 && (unsigned char)s[i + 1] < 0xa0) /* C1: U+0080..U+009F */
				   : n == 1 && c >= 0x20 && c != 0x7f && c != '\\';
		if (plain) {
			if (o + n > limit)
				break;
			memcpy(out + o, s + i, n);
			o += n;
			i += n;
			continue;
		}
		if (!n)
			n = 1; /* not UTF-8: this byte alone */
		if (o + (c == '\\' ? 2 : 4 * n) > limit)
			break;
		for (size_t k = 0; k < n; k++) {
			unsigned char b = (unsigned char)s[i + k];
			out[o++] = '\\';
			if (b == '\\') {
				out[o++] = '\\';
				continue;
			}
			out[o++] = 'x';
			out[o++] = hex[b >> 4];
			out[o++] = hex[b & 15];
		}
		i += n;
	}
	*done = i == len;
	return o;
}

char *bkr_text_escape(char *out, size_t cap, const char *s, size_t len)
{
	bool done;
	size_t o;

	if (!cap)
		return out;
	o = escape_into(out, cap - 1, s, len, &done);
	if (!done && cap > 4) { /* cut at a character, and marked */
		o = escape_into(out, cap - 4, s, len, &done);
		memcpy(out + o, "...", 3);
		o += 3;
	}
	out[o] = '\0';
	return out;
}

char *bkr_text_escape_dup(const char *s, size_t len)
{
	/* \xHH is the most one byte becomes */
	char *out = len < (SIZE_MAX - 1) / 4 ? malloc(4 * len + 1) : NULL;
	return out ? bkr_text_escape(out, 4 * len + 1, s, len) : NULL;
}

char *bkr_text_vsetf(char **s, const char *fmt, va_list ap)
{
	char *text;

	if (vasprintf(&text, fmt, ap) < 0)
		text = NULL;
	free(*s); /* after: an argument may be the old string */
	return *s = text;
}

char *bkr_text_setf(char **s, const char *fmt, ...)
{
	va_list ap;
	char *text;

	va_start(ap, fmt);
	text = bkr_text_vsetf(s, fmt, ap);
	va_end(ap);
	return text;
}

char *bkr_utf8_clean(const char *s)
{
	size_t len = strlen(s), o = 0;
	char *out = malloc(len * 3 + 1); /* each bad byte becomes 3 */

	if (!out)
		return NULL;
	for (size_t i = 0; i < len;) {
		size_t n = bkr_utf8_seq(s + i, len - i);
		if (!n) {
			memcpy(out + o, "\xef\xbf\xbd", 3);
			o += 3;
			i++;
			continue;
		}
		memcpy(out + o, s + i, n);
		o += n;
		i += n;
	}
	out[o] = '\0';
	return out;
}
