/** @file
 * The pure parts of the S3 store (store_s3_parse.h): the s3:// URL, the
 * endpoint, SigV4's percent-encoding, and a small XML reader for what S3
 * answers — enough for ListObjectsV2 (elements, attributes skipped,
 * comments, CDATA, the five named entities and numeric references), strict
 * about nesting, refusing what it does not understand (BKR_ECORRUPT) rather
 * than guessing.
 */
#include "store_s3_parse.h"
#include "bkr/error.h"
#include "bkr/store.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- URL and endpoint ----------------------------------------------------- */

static bool bucket_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
	       c == '-' || c == '_';
}

int bkr_s3_url_parse(bkr_s3_url *out, const char *url)
{
	const char *b, *slash, *p;
	size_t n;

	memset(out, 0, sizeof(*out));
	if (strncmp(url, "s3://", 5))
		return bkr_error_set(BKR_EINVAL, "%s: not an s3:// URL (expected s3://BUCKET[/PREFIX])", url);
	b = url + 5;
	slash = strchr(b, '/');
	n = slash ? (size_t)(slash - b) : strlen(b);
	if (n < 3 || n > 63)
		return bkr_error_set(BKR_EINVAL, "%s: a bucket name has 3 to 63 characters (expected s3://BUCKET[/PREFIX])", url);
	for (size_t i = 0; i < n; i++)
		if (!bucket_char(b[i]))
			return bkr_error_set(BKR_EINVAL, "%s: bad character '%c' in the bucket name", url, b[i]);
	if (!isalnum((unsigned char)b[0]) || !isalnum((unsigned char)b[n - 1]))
		return bkr_error_set(BKR_EINVAL, "%s: a bucket name begins and ends with a letter or digit", url);
	memcpy(out->bucket, b, n);
	if (!slash)
		return 0;
	p = slash + 1;
	n = strlen(p);
	while (n > 0 && p[n - 1] == '/')
		n--;
	if (n >= sizeof(out->prefix) - 1)
		return bkr_error_set(BKR_EINVAL, "s3://%.*s/...: prefix too long (%zu bytes; at most %zu)", (int)(slash - b),
				     b, n, sizeof(out->prefix) - 2);
	memcpy(out->prefix, p, n);
	out->prefix[n] = '\0';
	for (const char *c = out->prefix; *c;) {
		const char *e = strchr(c, '/');
		size_t k = e ? (size_t)(e - c) : strlen(c);
		if (k == 0 || (k == 1 && c[0] == '.') || (k == 2 && c[0] == '.' && c[1] == '.'))
			return bkr_error_set(BKR_EINVAL, "%s: empty, '.' or '..' component in the prefix", url);
		c += k + (e ? 1 : 0);
	}
	for (const char *c = out->prefix; *c; c++)
		if ((unsigned char)*c < 0x20 || *c == 0x7f)
			return bkr_error_set(BKR_EINVAL, "%s: control character in the prefix", url);
	return 0;
}

int bkr_s3_endpoint_parse(bkr_s3_endpoint *out, const char *url)
{
	const char *h, *end, *port = NULL;
	size_t n;

	memset(out, 0, sizeof(*out));
	if (!strncmp(url, "https://", 8)) {
		out->https = true;
		h = url + 8;
	} else if (!strncmp(url, "http://", 7)) {
		h = url + 7;
	} else {
		return bkr_error_set(BKR_EINVAL, "endpoint %s: expected http://HOST[:PORT] or https://HOST[:PORT]", url);
	}
	{
		/* user:password@ in the endpoint: refused, and never echoed */
		const char *at = memchr(h, '@', strcspn(h, "/?#"));
		if (at)
			return bkr_error_set(BKR_EINVAL, "endpoint %s://...@%s: a user name or password in the endpoint URL "
					     "is refused (the credentials go in AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)",
					     out->https ? "https" : "http", at + 1);
	}
	if (*h == '[') {
		if (!(end = strchr(h, ']')))
			return bkr_error_set(BKR_EINVAL, "endpoint %s: unclosed '[' in the host", url);
		end++;
	} else {
		end = h + strcspn(h, ":/?#");
	}
	n = (size_t)(end - h);
	if (n == 0 || n >= sizeof(out->host))
		return bkr_error_set(BKR_EINVAL, "endpoint %s: no host", url);
	memcpy(out->host, h, n);
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)h[i]) && !strchr(".-_[]:", h[i]))
			return bkr_error_set(BKR_EINVAL, "endpoint %s: bad character in the host", url);
	if (*end == ':') {
		char *e;
		unsigned long v;
		port = end + 1;
		v = strtoul(port, &e, 10);
		if (!isdigit((unsigned char)*port) || v == 0 || v > 65535 || (*e && *e != '/' && *e != '?' && *e != '#'))
			return bkr_error_set(BKR_EINVAL, "endpoint %s: bad port (expected 1 to 65535)", url);
		out->port = (unsigned)v;
		end = e;
	}
	if (*end && strcmp(end, "/"))
		return bkr_error_set(BKR_EINVAL, "endpoint %s: an endpoint has no path (expected http[s]://HOST[:PORT])", url);
	return 0;
}

bool bkr_s3_endpoint_path_style(const bkr_s3_endpoint *e)
{
	int dots = 0;
	if (e->host[0] == '[' || !strcasecmp(e->host, "localhost"))
		return true;
	for (const char *p = e->host; *p; p++) {
		if (*p == '.')
			dots++;
		else if (!isdigit((unsigned char)*p))
			return false;
	}
	return dots == 3;
}

int bkr_s3_encode(char *out, size_t cap, const char *s, bool keep_slash)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t n = strlen(out);
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		bool plain = isalnum(*p) || *p == '-' || *p == '_' || *p == '.' || *p == '~' || (keep_slash && *p == '/');
		if (n + (plain ? 1 : 3) >= cap)
			return bkr_error_set(BKR_EINVAL, "name too long for a request: %.60s", s);
		if (plain) {
			out[n++] = (char)*p;
		} else {
			out[n++] = '%';
			out[n++] = hex[*p >> 4];
			out[n++] = hex[*p & 15];
		}
	}
	out[n] = '\0';
	return 0;
}

/* ---- XML ------------------------------------------------------------------- */

#define XML_DEPTH 8
#define XML_NAME 32
#define XML_TEXT 2048

struct xml {
	const char *p, *end;
	int depth;                       /* open elements */
	char names[XML_DEPTH][XML_NAME]; /* the open elements (deeper ones are counted, not kept) */
	char text[XML_TEXT];             /* character data since the last tag */
	size_t tlen;
	bool overflow;                   /* text longer than XML_TEXT: only an error if used */
};

static int bad(const char *why)
{
	return bkr_error_set(BKR_ECORRUPT, "S3 answer: malformed XML (%s)", why);
}

static void put_utf8(struct xml *x, unsigned long c)
{
	char b[4];
	size_t n;
	if (c < 0x80) {
		b[0] = (char)c;
		n = 1;
	} else if (c < 0x800) {
		b[0] = (char)(0xc0 | (c >> 6));
		b[1] = (char)(0x80 | (c & 0x3f));
		n = 2;
	} else if (c < 0x10000) {
		b[0] = (char)(0xe0 | (c >> 12));
		b[1] = (char)(0x80 | ((c >> 6) & 0x3f));
		b[2] = (char)(0x80 | (c & 0x3f));
		n = 3;
	} else {
		b[0] = (char)(0xf0 | (c >> 18));
		b[1] = (char)(0x80 | ((c >> 12) & 0x3f));
		b[2] = (char)(0x80 | ((c >> 6) & 0x3f));
		b[3] = (char)(0x80 | (c & 0x3f));
		n = 4;
	}
	if (x->tlen + n >= XML_TEXT) {
		x->overflow = true;
		return;
	}
	memcpy(x->text + x->tlen, b, n);
	x->tlen += n;
}

/* An entity after '&' (x->p past it) into the text. */
static int entity(struct xml *x)
{
	static const struct { const char *name; char c; } named[] = {
		{ "amp;", '&' }, { "lt;", '<' }, { "gt;", '>' }, { "quot;", '"' }, { "apos;", '\'' },
	};
	size_t left = (size_t)(x->end - x->p);
	for (size_t i = 0; i < sizeof(named) / sizeof(*named); i++) {
		size_t n = strlen(named[i].name);
		if (left >= n && !memcmp(x->p, named[i].name, n)) {
			x->p += n;
			put_utf8(x, (unsigned char)named[i].c);
			return 0;
		}
	}
	if (left >= 3 && x->p[0] == '#') {
		bool hexa = x->p[1] == 'x';
		const char *q = x->p + 1 + hexa;
		unsigned long c = 0;
		int digits = 0;
		for (; q < x->end && *q != ';'; q++, digits++) {
			int d = isdigit((unsigned char)*q) ? *q - '0'
				: hexa && isxdigit((unsigned char)*q) ? tolower((unsigned char)*q) - 'a' + 10 : -1;
			if (d < 0 || digits > 7)
				return bad("bad character reference");
			c = c * (hexa ? 16 : 10) + (unsigned long)d;
		}
		if (q == x->end || digits == 0 || c == 0 || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
			return bad("bad character reference");
		x->p = q + 1;
		put_utf8(x, c);
		return 0;
	}
	return bad("unknown entity");
}

/* Skip to just past @p what; false when it never comes. */
static bool skip_past(struct xml *x, const char *what)
{
	size_t n = strlen(what);
	for (; x->p + n <= x->end; x->p++)
		if (!memcmp(x->p, what, n)) {
			x->p += n;
			return true;
		}
	return false;
}

static const char *parent(const struct xml *x, int up)
{
	int d = x->depth - 1 - up;
	return d >= 0 && d < XML_DEPTH ? x->names[d] : "";
}

/* The <Contents> being read. */
struct listed {
	char *key;         /* XML_TEXT bytes */
	bool have_key;
	int64_t modified;
	char etag[96];     /* "" when absent or too long */
	uint64_t size;
};

/* Element x->names[depth-1] closes with the text collected. */
static int on_close(struct xml *x, bkr_s3_list_page *pg, struct listed *cur)
{
	const char *name = parent(x, 0);
	x->text[x->tlen] = '\0';
	if (x->depth == 3 && !strcmp(parent(x, 1), "Contents")) {
		if (!strcmp(name, "Key")) {
			if (x->overflow || strlen(x->text) != x->tlen)
				return bad("bad <Key>");
			memcpy(cur->key, x->text, x->tlen + 1);
			cur->have_key = true;
		} else if (!strcmp(name, "LastModified")) {
			cur->modified = bkr_s3_parse_time(x->text);
		} else if (!strcmp(name, "ETag")) {
			if (!x->overflow && x->tlen < sizeof(cur->etag) && strlen(x->text) == x->tlen)
				memcpy(cur->etag, x->text, x->tlen + 1);
		} else if (!strcmp(name, "Size")) {
			/* only a stamp's part: a server's odd <Size> is not worth failing a listing */
			char *end;
			unsigned long long v;
			errno = 0;
			v = strtoull(x->text, &end, 10);
			cur->size = x->overflow || !x->tlen || *end || errno || x->text[0] == '-' ? 0 : v;
		}
	} else if (x->depth == 2 && !strcmp(name, "Contents")) {
		int64_t modified = cur->modified > 0 ? cur->modified : 0;
		int err;
		if (!cur->have_key)
			return bad("<Contents> without <Key>");
		if ((err = pg->on_object ? pg->on_object(pg->ctx, cur->key, modified, cur->etag, cur->size)
					 : pg->on_key(pg->ctx, cur->key, modified)) < 0)
			return err;
		cur->have_key = false;
		cur->modified = 0;
		cur->etag[0] = '\0';
		cur->size = 0;
	} else if (x->depth == 2 && !strcmp(name, "IsTruncated")) {
		pg->truncated = !strcmp(x->text, "true");
	} else if (x->depth == 2 && !strcmp(name, "NextContinuationToken")) {
		if (x->overflow || x->tlen >= sizeof(pg->token) || strlen(x->text) != x->tlen)
			return bad("bad <NextContinuationToken>");
		memcpy(pg->token, x->text, x->tlen + 1);
	}
	return 0;
}

static bool name_char(char c)
{
	return isalnum((unsigned char)c) || c == '_' || c == '-' || c == '.' || c == ':';
}

int bkr_s3_list_parse(const char *xml, size_t len, bkr_s3_list_page *pg)
{
	struct xml *x = calloc(1, sizeof(*x));
	char *key = malloc(XML_TEXT);
	struct listed cur = { .key = key };
	bool root_seen = false;
	int err = 0;

	pg->truncated = false;
	pg->token[0] = '\0';
	if (!x || !key) {
		err = bkr_error_oom();
		goto done;
	}
	x->p = xml;
	x->end = xml + len;
	while (x->p < x->end) {
		char c = *x->p;
		if (c == '&') {
			x->p++;
			if ((err = entity(x)) < 0)
				goto done;
			continue;
		}
		if (c != '<') {
			if (x->depth == 0 && !isspace((unsigned char)c)) {
				err = bad("text outside the root element");
				goto done;
			}
			if (x->tlen + 1 >= XML_TEXT)
				x->overflow = true;
			else
				x->text[x->tlen++] = c;
			x->p++;
			continue;
		}
		if (x->end - x->p >= 2 && x->p[1] == '?') {
			if (!skip_past(x, "?>")) {
				err = bad("unclosed <?");
				goto done;
			}
		} else if (x->end - x->p >= 4 && !memcmp(x->p, "<!--", 4)) {
			if (!skip_past(x, "-->")) {
				err = bad("unclosed comment");
				goto done;
			}
		} else if (x->end - x->p >= 9 && !memcmp(x->p, "<![CDATA[", 9)) {
			const char *s = x->p + 9;
			x->p = s;
			if (!skip_past(x, "]]>")) {
				err = bad("unclosed CDATA");
				goto done;
			}
			for (const char *q = s; q < x->p - 3; q++) {
				if (x->tlen + 1 >= XML_TEXT)
					x->overflow = true;
				else
					x->text[x->tlen++] = *q;
			}
		} else if (x->end - x->p >= 2 && x->p[1] == '!') {
			if (!skip_past(x, ">")) { /* <!DOCTYPE ...> */
				err = bad("unclosed <!");
				goto done;
			}
		} else if (x->end - x->p >= 2 && x->p[1] == '/') {
			const char *s = x->p + 2, *q = s;
			while (q < x->end && name_char(*q))
				q++;
			if (x->depth == 0) {
				err = bad("closing tag with nothing open");
				goto done;
			}
			if (x->depth <= XML_DEPTH &&
			    ((size_t)(q - s) != strlen(parent(x, 0)) || memcmp(s, parent(x, 0), (size_t)(q - s)))) {
				err = bad("mismatched closing tag");
				goto done;
			}
			while (q < x->end && isspace((unsigned char)*q))
				q++;
			if (q == x->end || *q != '>') {
				err = bad("unclosed tag");
				goto done;
			}
			x->p = q + 1;
			if ((err = on_close(x, pg, &cur)) < 0)
				goto done;
			x->depth--;
			x->tlen = 0;
			x->overflow = false;
		} else {
			const char *s = x->p + 1, *q = s;
			bool empty = false;
			char quote = 0;
			while (q < x->end && name_char(*q))
				q++;
			if (q == s) {
				err = bad("bad tag name");
				goto done;
			}
			if (x->depth == 0 && root_seen) {
				err = bad("two root elements");
				goto done;
			}
			for (const char *n = q; n < x->end; n++) { /* attributes */
				if (quote) {
					if (*n == quote)
						quote = 0;
				} else if (*n == '"' || *n == '\'') {
					quote = *n;
				} else if (*n == '>') {
					empty = n > q && n[-1] == '/';
					x->p = n + 1;
					break;
				}
				if (n + 1 == x->end) {
					err = bad("unclosed tag");
					goto done;
				}
			}
			if (x->p <= s) {
				err = bad("unclosed tag");
				goto done;
			}
			root_seen = true;
			if (x->depth < XML_DEPTH) {
				size_t n = (size_t)(q - s) < XML_NAME - 1 ? (size_t)(q - s) : XML_NAME - 1;
				memcpy(x->names[x->depth], s, n);
				x->names[x->depth][n] = '\0';
			}
			x->depth++;
			x->tlen = 0;
			x->overflow = false;
			if (empty) {
				if ((err = on_close(x, pg, &cur)) < 0)
					goto done;
				x->depth--;
			}
		}
	}
	if (x->depth != 0 || !root_seen)
		err = bad(root_seen ? "unclosed element" : "no element");
done:
	free(key);
	free(x);
	return err;
}

void bkr_s3_error_code(const char *xml, size_t len, char *out, size_t cap)
{
	const char *end = xml + len;
	out[0] = '\0';
	for (const char *p = xml; p + 6 <= end; p++)
		if (!memcmp(p, "<Code>", 6)) {
			size_t n = 0;
			for (p += 6; p < end && *p != '<' && n + 1 < cap; p++)
				if (isalnum((unsigned char)*p))
					out[n++] = *p;
			out[n] = '\0';
			return;
		}
}

int64_t bkr_s3_parse_time(const char *s)
{
	struct tm tm;
	const char *e;
	memset(&tm, 0, sizeof(tm));
	if (!(e = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm)) && !(e = strptime(s, "%a, %d %b %Y %H:%M:%S GMT", &tm)))
		return -1;
	(void)e;
	return (int64_t)timegm(&tm);
}

/* docs/s3.md "Tuning"; the configuration's s3.KEY, the environment's BKR_S3_KEY */
const bkr_s3_tunable bkr_s3_tunables[BKR_S3_NTUNE] = {
	[BKR_S3_KEEP_PACKS] = { "keep_packs", "BKR_S3_KEEP_PACKS", 4, 1, BKR_S3_KEEP_PACKS_MAX },
	[BKR_S3_KEEP_MIB] = { "keep_mib", "BKR_S3_KEEP_MIB", 256, 1, 1 << 20 },
	[BKR_S3_KEEP_CHECK_MS] = { "keep_check_ms", "BKR_S3_KEEP_CHECK_MS", 10000, 1, 86400000 },
	[BKR_S3_ATTEMPTS] = { "attempts", "BKR_S3_ATTEMPTS", 6, 1, 20 },
	[BKR_S3_CONNECT_TIMEOUT] = { "connect_timeout_seconds", "BKR_S3_CONNECT_TIMEOUT_SECONDS", 10, 1, 600 },
	[BKR_S3_STALL_TIMEOUT] = { "stall_timeout_seconds", "BKR_S3_STALL_TIMEOUT_SECONDS", 60, 1, 3600 },
};
