/** @file
 * Unit tests of the S3 store's pure parts (engine/store_s3_parse.c): the
 * s3:// URL, the endpoint and path-style choice, SigV4 percent-encoding, the
 * ListObjectsV2 reader (entities, CDATA, paging, hostile XML), and of
 * bkr_store_s3_open without a server (missing credentials, bad endpoint),
 * and of requests against a fake server on loopback that answers what a
 * test scripts (hostile or broken answers: a listing that never ends, a
 * range that was not asked, a copy's lost answer).  Requests to a real
 * server are tested by tests/integration/test_s3.sh.
 */
#include <arpa/inet.h>
#include <linux/sockios.h>
#include <malloc.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "bkr/clock.h"
#include "bkr/error.h"
#include "bkr/log.h"
#include "bkr/store.h"
#include "bkr/store_cache.h"
#include "store_s3_parse.h"
#include "testutil.h"

static void test_url(void **state)
{
	bkr_s3_url u;
	(void)state;
	assert_int_equal(bkr_s3_url_parse(&u, "s3://bucket"), 0);
	assert_string_equal(u.bucket, "bucket");
	assert_string_equal(u.prefix, "");
	assert_int_equal(bkr_s3_url_parse(&u, "s3://my-bucket.1/a/b/"), 0);
	assert_string_equal(u.bucket, "my-bucket.1");
	assert_string_equal(u.prefix, "a/b");
	assert_int_equal(bkr_s3_url_parse(&u, "s3://bucket/"), 0);
	assert_string_equal(u.prefix, "");
	assert_int_equal(bkr_s3_url_parse(&u, "s3://ab"), BKR_EINVAL);
	assert_non_null(strstr(bkr_error_message(), "3 to 63"));
	assert_int_equal(bkr_s3_url_parse(&u, "s3://"), BKR_EINVAL);
	assert_int_equal(bkr_s3_url_parse(&u, "s3://bu cket"), BKR_EINVAL);
	assert_int_equal(bkr_s3_url_parse(&u, "s3://-bucket"), BKR_EINVAL);
	assert_int_equal(bkr_s3_url_parse(&u, "s3://bucket/a//b"), BKR_EINVAL);
	assert_int_equal(bkr_s3_url_parse(&u, "s3://bucket/a/../b"), BKR_EINVAL);
	assert_int_equal(bkr_s3_url_parse(&u, "s3://bucket/./b"), BKR_EINVAL);
	assert_int_equal(bkr_s3_url_parse(&u, "s3://bucket/a\tb"), BKR_EINVAL);
	assert_int_equal(bkr_s3_url_parse(&u, "http://bucket"), BKR_EINVAL);
	assert_non_null(strstr(bkr_error_message(), "http://bucket"));
	{
		/* the prefix's limit is said */
		char url[700];
		snprintf(url, sizeof(url), "s3://bucket/%0510d", 0);
		assert_int_equal(bkr_s3_url_parse(&u, url), 0);
		snprintf(url, sizeof(url), "s3://bucket/%0511d", 0);
		assert_int_equal(bkr_s3_url_parse(&u, url), BKR_EINVAL);
		assert_non_null(strstr(bkr_error_message(), "at most 510"));
	}
}

static void test_endpoint(void **state)
{
	bkr_s3_endpoint e;
	(void)state;
	assert_int_equal(bkr_s3_endpoint_parse(&e, "http://127.0.0.1:7480"), 0);
	assert_false(e.https);
	assert_string_equal(e.host, "127.0.0.1");
	assert_int_equal(e.port, 7480);
	assert_true(bkr_s3_endpoint_path_style(&e));
	assert_int_equal(bkr_s3_endpoint_parse(&e, "https://s3.eu-west-1.amazonaws.com/"), 0);
	assert_true(e.https);
	assert_int_equal(e.port, 0);
	assert_false(bkr_s3_endpoint_path_style(&e));
	assert_int_equal(bkr_s3_endpoint_parse(&e, "http://localhost:9000"), 0);
	assert_true(bkr_s3_endpoint_path_style(&e));
	assert_int_equal(bkr_s3_endpoint_parse(&e, "http://[::1]:9000"), 0);
	assert_string_equal(e.host, "[::1]");
	assert_true(bkr_s3_endpoint_path_style(&e));
	assert_int_equal(bkr_s3_endpoint_parse(&e, "http://minio.local:9000"), 0);
	assert_false(bkr_s3_endpoint_path_style(&e));
	assert_int_equal(bkr_s3_endpoint_parse(&e, "http://1.2.3:9000"), 0);
	assert_false(bkr_s3_endpoint_path_style(&e)); /* not an IPv4 address: a name */
	assert_int_equal(bkr_s3_endpoint_parse(&e, "127.0.0.1:7480"), BKR_EINVAL);
	assert_int_equal(bkr_s3_endpoint_parse(&e, "http://h:0"), BKR_EINVAL);
	assert_int_equal(bkr_s3_endpoint_parse(&e, "http://h:70000"), BKR_EINVAL);
	assert_int_equal(bkr_s3_endpoint_parse(&e, "http://h/path"), BKR_EINVAL);
	assert_int_equal(bkr_s3_endpoint_parse(&e, "http://"), BKR_EINVAL);
	assert_int_equal(bkr_s3_endpoint_parse(&e, "http://[::1"), BKR_EINVAL);
	/* a port with junk after it is a bad port, not a path */
	assert_int_equal(bkr_s3_endpoint_parse(&e, "http://127.0.0.1:57215x"), BKR_EINVAL);
	assert_non_null(strstr(bkr_error_message(), "bad port"));
	assert_int_equal(bkr_s3_endpoint_parse(&e, "http://h:+80"), BKR_EINVAL);
	assert_non_null(strstr(bkr_error_message(), "bad port"));
	/* user:password@ refused, the password never echoed */
	assert_int_equal(bkr_s3_endpoint_parse(&e, "http://user:s3cretpw@127.0.0.1:1"), BKR_EINVAL);
	assert_null(strstr(bkr_error_message(), "s3cretpw"));
	assert_non_null(strstr(bkr_error_message(), "AWS_SECRET_ACCESS_KEY"));
	assert_int_equal(bkr_s3_endpoint_parse(&e, "http://user:s3cretpw@127.0.0.1:x"), BKR_EINVAL);
	assert_null(strstr(bkr_error_message(), "s3cretpw"));
}

static void test_encode(void **state)
{
	char out[64];
	(void)state;
	out[0] = '\0';
	assert_int_equal(bkr_s3_encode(out, sizeof(out), "data/ab/x.pack", true), 0);
	assert_string_equal(out, "data/ab/x.pack");
	out[0] = '\0';
	assert_int_equal(bkr_s3_encode(out, sizeof(out), "a/b c+d=~", false), 0);
	assert_string_equal(out, "a%2Fb%20c%2Bd%3D~");
	out[0] = '\0';
	assert_int_equal(bkr_s3_encode(out, sizeof(out), "\xc3\xa9", false), 0);
	assert_string_equal(out, "%C3%A9");
	out[0] = '\0';
	assert_int_equal(bkr_s3_encode(out, 8, "abcdefgh", false), BKR_EINVAL);
}

struct seen {
	char keys[8][128];
	int64_t times[8];
	int n;
	int stop_at;
};

static int on_key(void *ctx, const char *key, int64_t modified)
{
	struct seen *s = ctx;
	if (s->n == s->stop_at)
		return bkr_error_set(BKR_EIO, "stop");
	snprintf(s->keys[s->n], sizeof(s->keys[0]), "%s", key);
	s->times[s->n++] = modified;
	return 0;
}

static int parse(const char *xml, struct seen *s, bkr_s3_list_page *pg)
{
	memset(s, 0, sizeof(*s));
	s->stop_at = -1;
	memset(pg, 0, sizeof(*pg));
	pg->on_key = on_key;
	pg->ctx = s;
	return bkr_s3_list_parse(xml, strlen(xml), pg);
}

static void test_list(void **state)
{
	static const char page[] =
		"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
		"<ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
		"<Name>b</Name><Prefix>repo/</Prefix><KeyCount>3</KeyCount><MaxKeys>2</MaxKeys>"
		"<IsTruncated>true</IsTruncated>"
		"<Contents><Key>repo/data/ab/1.pack</Key><LastModified>2026-11-30T06:47:00.000Z</LastModified>"
		"<ETag>&quot;0f&quot;</ETag><Size>3</Size><StorageClass>STANDARD</StorageClass></Contents>"
		"<!-- a comment --><Contents><Size>0</Size><Key>repo/a&amp;b &lt;&#x41;&#66;&gt;</Key></Contents>"
		"<Contents><Key><![CDATA[repo/c<d]]></Key><Owner><ID>x</ID></Owner></Contents>"
		"<NextContinuationToken>1/Jh+&amp;=</NextContinuationToken>"
		"<Empty/></ListBucketResult>\n";
	bkr_s3_list_page pg;
	struct seen s;
	(void)state;
	assert_int_equal(parse(page, &s, &pg), 0);
	assert_int_equal(s.n, 3);
	assert_string_equal(s.keys[0], "repo/data/ab/1.pack");
	assert_int_equal(s.times[0], 1796021220);
	assert_string_equal(s.keys[1], "repo/a&b <AB>");
	assert_int_equal(s.times[1], 0);
	assert_string_equal(s.keys[2], "repo/c<d");
	assert_true(pg.truncated);
	assert_string_equal(pg.token, "1/Jh+&=");

	assert_int_equal(parse("<ListBucketResult><IsTruncated>false</IsTruncated></ListBucketResult>", &s, &pg), 0);
	assert_int_equal(s.n, 0);
	assert_false(pg.truncated);
	assert_string_equal(pg.token, "");

	/* the callback's error stops the walk and is returned */
	memset(&s, 0, sizeof(s));
	s.stop_at = 1;
	pg.on_key = on_key;
	pg.ctx = &s;
	assert_int_equal(bkr_s3_list_parse(page, strlen(page), &pg), BKR_EIO);
	assert_int_equal(s.n, 1);
}

/* on_object: each <Contents> with its ETag and Size (the stamp of bkr_store_list_stamped) */
struct seen_obj {
	char keys[4][64], etags[4][128];
	uint64_t sizes[4];
	int n;
};

static int on_object(void *ctx, const char *key, int64_t modified, const char *etag, uint64_t size)
{
	struct seen_obj *s = ctx;
	(void)modified;
	assert_true(s->n < 4);
	snprintf(s->keys[s->n], sizeof(s->keys[0]), "%s", key);
	snprintf(s->etags[s->n], sizeof(s->etags[0]), "%s", etag);
	s->sizes[s->n++] = size;
	return 0;
}

static void test_list_objects(void **state)
{
	static const char page[] =
		"<ListBucketResult><IsTruncated>false</IsTruncated>"
		"<Contents><Key>r/a.json</Key><ETag>&quot;0f1e&quot;</ETag><Size>890</Size></Contents>"
		"<Contents><Size>x12</Size><Key>r/b.json</Key></Contents>"
		"<Contents><Key>r/c.json</Key><ETag>\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"</ETag>"
		"<Size>18446744073709551615</Size></Contents>"
		"</ListBucketResult>";
	bkr_s3_list_page pg = { 0 };
	struct seen_obj s = { 0 };
	(void)state;
	pg.on_key = on_key; /* not called when on_object is there */
	pg.on_object = on_object;
	pg.ctx = &s;
	assert_int_equal(bkr_s3_list_parse(page, strlen(page), &pg), 0);
	assert_int_equal(s.n, 3);
	assert_string_equal(s.keys[0], "r/a.json");
	assert_string_equal(s.etags[0], "\"0f1e\"");
	assert_int_equal(s.sizes[0], 890);
	/* no ETag, a Size that is no number: "" and 0, not a failed listing */
	assert_string_equal(s.keys[1], "r/b.json");
	assert_string_equal(s.etags[1], "");
	assert_int_equal(s.sizes[1], 0);
	/* an ETag too long to keep is left out */
	assert_string_equal(s.etags[2], "");
	assert_true(s.sizes[2] == UINT64_MAX);
}

static void test_list_hostile(void **state)
{
	static const char *const bad[] = {
		"",
		"   ",
		"<a>",
		"<a></b>",
		"<a></a><b></b>",
		"text<a></a>",
		"</a>",
		"<a><Contents></Contents></a>",                   /* no Key */
		"<a><Contents><Key>k&bogus;</Key></Contents></a>", /* unknown entity */
		"<a><Contents><Key>k&#0;</Key></Contents></a>",    /* NUL */
		"<a><Contents><Key>k&#x110000;</Key></Contents></a>",
		"<a><Contents><Key>k&#xD800;</Key></Contents></a>",
		"<a><Contents><Key>k&#;</Key></Contents></a>",
		"<a><Contents><Key>k&amp</Key></Contents></a>",
		"<a x=\"1></a>",
		"<a><!-- never closed </a>",
		"<a><![CDATA[ never closed </a>",
		"<?xml never closed",
		"<a><",
		"<a></a",
		"<a><Contents><Key>",
	};
	bkr_s3_list_page pg;
	struct seen s;
	char *huge;
	size_t n = 10000;
	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
		int err = parse(bad[i], &s, &pg);
		if (err != BKR_ECORRUPT)
			fail_msg("accepted (%d): %s", err, bad[i]);
		assert_non_null(strstr(bkr_error_message(), "malformed XML"));
	}
	/* a key longer than any S3 key, and deep nesting */
	huge = malloc(n + 100);
	assert_non_null(huge);
	strcpy(huge, "<a><Contents><Key>");
	memset(huge + strlen(huge), 'k', n);
	strcpy(huge + 18 + n, "</Key></Contents></a>");
	assert_int_equal(parse(huge, &s, &pg), BKR_ECORRUPT);
	huge[0] = '\0';
	for (int i = 0; i < 200; i++)
		strcat(huge, "<d>");
	for (int i = 0; i < 200; i++)
		strcat(huge, "</d>");
	assert_int_equal(parse(huge, &s, &pg), 0);
	free(huge);
}

static void test_error_code_and_time(void **state)
{
	static const char err[] = "<?xml version=\"1.0\"?><Error><Code>NoSuchBucket</Code><Message/></Error>";
	char code[32];
	(void)state;
	bkr_s3_error_code(err, strlen(err), code, sizeof(code));
	assert_string_equal(code, "NoSuchBucket");
	bkr_s3_error_code("<Error>", 7, code, sizeof(code));
	assert_string_equal(code, "");
	bkr_s3_error_code("<Code>PreconditionFailedAndMuchLongerThanTheBuffer", 51, code, 8);
	assert_string_equal(code, "Precond");
	assert_int_equal(bkr_s3_parse_time("1970-01-01T00:01:00.000Z"), 60);
	assert_int_equal(bkr_s3_parse_time("Mon, 30 Nov 2026 06:47:00 GMT"), 1796021220);
	assert_int_equal(bkr_s3_parse_time("yesterday"), -1);
}

/* Opening sends nothing: what is missing is named at once. */
static void test_open_without_server(void **state)
{
	bkr_store *s = NULL;
	(void)state;
	unsetenv("AWS_ACCESS_KEY_ID");
	unsetenv("AWS_SECRET_ACCESS_KEY");
	unsetenv("AWS_ENDPOINT_URL");
	unsetenv("AWS_ENDPOINT_URL_S3");
	bkr_store_s3_configure(NULL);
	assert_int_equal(bkr_store_open(&s, "s3://bucket/p", 0), BKR_EINVAL);
	assert_null(s);
	assert_non_null(strstr(bkr_error_message(), "AWS_ACCESS_KEY_ID"));
	setenv("AWS_ACCESS_KEY_ID", "AK", 1);
	assert_int_equal(bkr_store_open(&s, "s3://bucket/p", 0), BKR_EINVAL);
	assert_non_null(strstr(bkr_error_message(), "AWS_SECRET_ACCESS_KEY"));
	/* the configuration supplies what the environment lacks */
	bkr_store_s3_configure(&(bkr_store_s3_settings){ .secret_access_key = "SK", .endpoint_url = "ftp://x",
							  .path_style = -1 });
	assert_int_equal(bkr_store_open(&s, "s3://bucket/p", 0), BKR_EINVAL);
	assert_non_null(strstr(bkr_error_message(), "ftp://x"));
	setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9", 1);
	assert_int_equal(bkr_store_open(&s, "s3://bucket/p/", 0), 0);
	assert_string_equal(bkr_store_location(s), "s3://bucket/p");
	bkr_store_free(s);
	assert_int_equal(bkr_store_open(&s, "s3://b", 0), BKR_EINVAL);
	/* a region with a newline: a usage error naming the variable, the newline escaped */
	setenv("AWS_REGION", "us\neast-1", 1);
	assert_int_equal(bkr_store_open(&s, "s3://bucket/p", 0), BKR_EINVAL);
	assert_non_null(strstr(bkr_error_message(), "AWS_REGION"));
	assert_null(strchr(bkr_error_message(), '\n'));
	unsetenv("AWS_REGION");
	bkr_store_s3_configure(NULL);
	unsetenv("AWS_ACCESS_KEY_ID");
	unsetenv("AWS_ENDPOINT_URL");
}

/* ---- a fake S3 server on loopback -------------------------------------------------- */

/* One request as the fake server read it. */
struct fake_req {
	char method[16];
	char target[4096]; /* path and query, as sent */
	char headers[8192];
	int n;             /* how many requests came before it */
};

typedef struct fake fake;

/* Answer @p q on connection @p c (fake_reply, or raw bytes with fake_raw). */
typedef void (*fake_fn)(fake *f, const struct fake_req *q, int c);

struct fake {
	int lfd, port;
	pthread_t thread;
	fake_fn fn;
	void *ctx;
	int nreq;
	bool threaded;      /* each connection served by a thread of its own, at once */
	int live;           /* such threads still running */
	char seen[64][200]; /* "METHOD target" of the first requests */
};

/* Send @p len bytes of @p text: false when the client went away before taking them all. */
static bool fake_raw(int c, const char *text, size_t len)
{
	while (len > 0) {
		ssize_t n = send(c, text, len, MSG_NOSIGNAL); /* a client gone: no SIGPIPE */
		if (n <= 0)
			return false;
		text += n;
		len -= (size_t)n;
	}
	return true;
}

/* An S3-like answer: @p status, extra header lines @p hdrs (each ending "\r\n"), @p body. */
static void fake_reply(int c, int status, const char *hdrs, const char *body)
{
	char head[1024];
	int n = snprintf(head, sizeof(head),
			 "HTTP/1.1 %d X\r\nx-amz-request-id: 1\r\nContent-Length: %zu\r\nConnection: close\r\n%s\r\n",
			 status, strlen(body), hdrs ? hdrs : "");
	fake_raw(c, head, (size_t)n);
	fake_raw(c, body, strlen(body));
}

/* The value of header @p name in @p q ("" when absent) into @p out. */
static const char *fake_header(const struct fake_req *q, const char *name, char *out, size_t cap)
{
	size_t n = strlen(name);
	out[0] = '\0';
	for (const char *p = q->headers; *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : p + strlen(p))
		if (!strncasecmp(p, name, n) && p[n] == ':') {
			const char *v = p + n + 1 + strspn(p + n + 1, " ");
			snprintf(out, cap, "%.*s", (int)strcspn(v, "\r\n"), v);
			break;
		}
	return out;
}

/* Read the request on connection @p c, answer it with f->fn, close it. */
static void fake_serve(fake *f, int c)
{
	char buf[16384], *end, clen[32], expect[64];
	struct fake_req q = { 0 };
	size_t got = 0;
	long body;
	while (got < sizeof(buf) - 1) {
		ssize_t n = read(c, buf + got, sizeof(buf) - 1 - got);
		if (n <= 0)
			break;
		got += (size_t)n;
		buf[got] = '\0';
		if (strstr(buf, "\r\n\r\n"))
			break;
	}
	buf[got] = '\0';
	if (!(end = strstr(buf, "\r\n\r\n"))) {
		close(c);
		return;
	}
	end[2] = '\0';
	sscanf(buf, "%15s %4095s", q.method, q.target);
	snprintf(q.headers, sizeof(q.headers), "%s", strchr(buf, '\n') + 1);
	body = atol(fake_header(&q, "Content-Length", clen, sizeof(clen)));
	body -= (long)(got - (size_t)(end + 4 - buf));
	if (!strcasecmp(fake_header(&q, "Expect", expect, sizeof(expect)), "100-continue"))
		fake_raw(c, "HTTP/1.1 100 Continue\r\n\r\n", 25);
	while (body > 0) { /* the body: not looked at */
		ssize_t n = read(c, buf, sizeof(buf));
		if (n <= 0)
			break;
		body -= n;
	}
	q.n = __atomic_fetch_add(&f->nreq, 1, __ATOMIC_RELAXED);
	if (q.n < 64)
		snprintf(f->seen[q.n], sizeof(f->seen[0]), "%s %s", q.method, q.target);
	f->fn(f, &q, c);
	shutdown(c, SHUT_WR);
	while (read(c, buf, sizeof(buf)) > 0)
		;
	close(c);
}

struct fake_conn {
	fake *f;
	int c;
};

static void *fake_conn_main(void *arg)
{
	struct fake_conn *fc = arg;
	fake_serve(fc->f, fc->c);
	__atomic_fetch_sub(&fc->f->live, 1, __ATOMIC_RELEASE);
	free(fc);
	return NULL;
}

static void *fake_main(void *arg)
{
	fake *f = arg;
	for (;;) {
		struct fake_conn *fc;
		pthread_t t;
		int c = accept(f->lfd, NULL, NULL);
		if (c < 0)
			break;
		if (!f->threaded) {
			fake_serve(f, c);
			continue;
		}
		assert_non_null(fc = malloc(sizeof(*fc)));
		*fc = (struct fake_conn){ f, c };
		__atomic_fetch_add(&f->live, 1, __ATOMIC_RELAXED);
		assert_int_equal(pthread_create(&t, NULL, fake_conn_main, fc), 0);
		pthread_detach(t);
	}
	return NULL;
}

/* Open the store @p url on @p port of loopback (retries 1 ms apart). */
static void open_at(int port, const char *url, bkr_store **s)
{
	char endpoint[64];
	snprintf(endpoint, sizeof(endpoint), "http://127.0.0.1:%d", port);
	/* nothing of the environment's between us and the fake server */
	for (const char *const *v = (const char *const[]){ "AWS_ENDPOINT_URL_S3", "AWS_SESSION_TOKEN", "AWS_REGION",
							   "AWS_DEFAULT_REGION", "http_proxy", "ALL_PROXY", "all_proxy",
							   NULL };
	     *v; v++)
		unsetenv(*v);
	setenv("AWS_ACCESS_KEY_ID", "AKFAKE", 1);
	setenv("AWS_SECRET_ACCESS_KEY", "SKFAKE", 1);
	setenv("AWS_ENDPOINT_URL", endpoint, 1);
	bkr_store_s3_configure(&(bkr_store_s3_settings){ .path_style = -1, .retry_pause_ms = 1 });
	assert_int_equal(bkr_store_open(s, url, 0), 0);
}

/* A socket of loopback bound to a free port, listening when @p listening; its port in *@p port. */
static int loopback_socket(bool listening, int *port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t alen = sizeof(a);
	int fd;
	assert_true((fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	if (listening)
		assert_int_equal(listen(fd, 16), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &alen), 0);
	*port = ntohs(a.sin_port);
	return fd;
}

/* Start a fake server answering with @p fn and open the store @p url on it. */
static void fake_start(fake *f, fake_fn fn, void *ctx, const char *url, bkr_store **s)
{
	memset(f, 0, sizeof(*f));
	f->fn = fn;
	f->ctx = ctx;
	f->lfd = loopback_socket(true, &f->port);
	assert_int_equal(pthread_create(&f->thread, NULL, fake_main, f), 0);
	open_at(f->port, url, s);
}

static void store_close(bkr_store *s)
{
	bkr_store_free(s);
	bkr_store_s3_configure(NULL);
	unsetenv("AWS_ACCESS_KEY_ID");
	unsetenv("AWS_SECRET_ACCESS_KEY");
	unsetenv("AWS_ENDPOINT_URL");
}

static void fake_stop(fake *f, bkr_store *s)
{
	store_close(s);
	shutdown(f->lfd, SHUT_RDWR);
	pthread_join(f->thread, NULL);
	close(f->lfd);
	while (__atomic_load_n(&f->live, __ATOMIC_ACQUIRE)) /* the store closed: each ends at once */
		usleep(1000);
}

static int count_name(void *ctx, const char *name)
{
	(void)name;
	(*(int *)ctx)++;
	return 0;
}

/* Pages whose continuation token was given before: the same one each time (ctx 0), or two in turn. */
static void on_looping_list(fake *f, const struct fake_req *q, int c)
{
	const char *tok = strstr(q->target, "continuation-token=");
	const char *next = !*(int *)f->ctx ? "same" : tok && !strncmp(tok + 19, "t1", 2) ? "t2" : "t1";
	char body[512];
	/* a client that follows the tokens blindly lists for ever: ended after 20 pages */
	snprintf(body, sizeof(body),
		 "<ListBucketResult><IsTruncated>%s</IsTruncated><Contents><Key>repo/index/%d</Key></Contents>"
		 "<NextContinuationToken>%s</NextContinuationToken></ListBucketResult>",
		 q->n < 20 ? "true" : "false", q->n, next);
	fake_reply(c, 200, "Content-Type: application/xml\r\n", body);
}

/* A listing that comes back to a token it gave is refused, not followed for ever. */
static void test_list_token_loop(void **state)
{
	(void)state;
	for (int mode = 0; mode < 2; mode++) {
		bkr_store *s;
		fake f;
		int n = 0;
		fake_start(&f, on_looping_list, &mode, "s3://bucket/repo", &s);
		assert_int_equal(bkr_store_list(s, "index/", count_name, &n), BKR_ECORRUPT);
		assert_non_null(strstr(bkr_error_message(), "continuation token"));
		assert_int_equal(f.nreq, mode ? 3 : 2);
		fake_stop(&f, s);
	}
}

/* An object of 100 bytes 'A'..'Z' over and over, read by ranges: answered with the range
 * asked (ctx 0), one 5 bytes further that says so (1), or the range asked without Content-Range (2). */
static void on_ranged(fake *f, const struct fake_req *q, int c)
{
	char range[64], head[256], body[128];
	unsigned long long a = 0, b = 0;
	int mode = *(int *)f->ctx;
	if (sscanf(fake_header(q, "Range", range, sizeof(range)), "bytes=%llu-%llu", &a, &b) != 2 || a >= 100) {
		fake_reply(c, 416, "", "<Error><Code>InvalidRange</Code></Error>");
		return;
	}
	if (b > 99)
		b = 99;
	if (mode == 1) {
		a += 5;
		b = b + 5 > 99 ? 99 : b + 5;
	}
	for (unsigned long long i = a; i <= b; i++)
		body[i - a] = (char)('A' + i % 26);
	body[b - a + 1] = '\0';
	snprintf(head, sizeof(head), mode == 2 ? "" : "Content-Range: bytes %llu-%llu/100\r\n", a, b);
	fake_reply(c, 206, head, body);
}

/* A 206 of another range than the one asked (or that does not say which) is no data of it. */
static void test_range_answer(void **state)
{
	static const char *const names[] = { "index/0f.idx", "data/0f/p.pack" }; /* plain, and through a window */
	(void)state;
	for (int mode = 0; mode < 3; mode++)
		for (int k = 0; k < 2; k++) {
			bkr_store *s;
			char buf[11] = { 0 };
			fake f;
			int err;
			fake_start(&f, on_ranged, &mode, "s3://bucket/repo", &s);
			err = bkr_store_get_range(s, names[k], 30, 10, buf, 0);
			if (mode == 0) {
				assert_int_equal(err, 0);
				assert_string_equal(buf, "EFGHIJKLMN");
			} else {
				if (err != BKR_EUNAVAILABLE)
					fail_msg("%s, answer %d: %d, read '%s'", names[k], mode, err, buf);
				assert_non_null(strstr(bkr_error_message(), names[k]));
				assert_non_null(strstr(bkr_error_message(), "range"));
			}
			fake_stop(&f, s);
		}
}

/* A pack on a server that ignores Range: every GET is answered 200 with the whole object
 * (a HEAD with its size and ETag).  Counted: GETs, HEADs, bodies sent whole. */
struct no_range {
	char *body;
	size_t len;
	char etag[16];
	int gets, heads, whole;
	unsigned long long sent; /* bytes of bodies sent */
	pthread_mutex_t mu;
	pthread_cond_t cond;
	int gate;  /* every GET waits until this many came (0: none) */
	int hold;  /* the first GET sends half its body, then waits until this many readers wait for it
		      (the store's debug line) or more GETs than that came (0: none) */
	int waits; /* "waits for the whole object" lines logged */
	bool cut;  /* the held GET is then cut short (the connection closed halfway) */
};

static void no_range_init(struct no_range *nr, size_t len, char first)
{
	memset(nr, 0, sizeof(*nr));
	nr->len = len;
	assert_non_null(nr->body = malloc(len + 1));
	for (size_t i = 0; i < len; i++)
		nr->body[i] = (char)(first + i % 26);
	nr->body[len] = '\0';
	snprintf(nr->etag, sizeof(nr->etag), "\"%c0\"", first);
	pthread_mutex_init(&nr->mu, NULL);
	pthread_cond_init(&nr->cond, NULL);
}

static void no_range_free(struct no_range *nr)
{
	free(nr->body);
	pthread_mutex_destroy(&nr->mu);
	pthread_cond_destroy(&nr->cond);
}

static void on_no_range(fake *f, const struct fake_req *q, int c)
{
	struct no_range *nr = f->ctx;
	char head[256];
	const char *body;
	size_t len;
	int k, n;
	pthread_mutex_lock(&nr->mu);
	body = nr->body;
	len = nr->len;
	n = snprintf(head, sizeof(head), "HTTP/1.1 200 X\r\nx-amz-request-id: 1\r\nContent-Length: %zu\r\nETag: %s\r\n"
		     "Connection: close\r\n\r\n", len, nr->etag);
	if (!strcmp(q->method, "HEAD")) {
		nr->heads++;
		pthread_mutex_unlock(&nr->mu);
		fake_raw(c, head, (size_t)n);
		return;
	}
	k = nr->gets++;
	pthread_cond_broadcast(&nr->cond);
	while (nr->gets < nr->gate)
		pthread_cond_wait(&nr->cond, &nr->mu);
	pthread_mutex_unlock(&nr->mu);
	if (!fake_raw(c, head, (size_t)n))
		return;
	if (nr->hold && k == 0) {
		if (!fake_raw(c, body, len / 2))
			return;
		pthread_mutex_lock(&nr->mu);
		while (nr->waits < nr->hold && nr->gets <= nr->hold)
			pthread_cond_wait(&nr->cond, &nr->mu);
		pthread_mutex_unlock(&nr->mu);
		if (!nr->cut && fake_raw(c, body + len / 2, len - len / 2))
			__atomic_fetch_add(&nr->whole, 1, __ATOMIC_RELAXED);
	} else if (fake_raw(c, body, len)) {
		__atomic_fetch_add(&nr->whole, 1, __ATOMIC_RELAXED);
	}
	__atomic_fetch_add(&nr->sent, len, __ATOMIC_RELAXED);
}

/* Each read of a pack at a server that ignores Range does not download the pack again: the
 * whole object of the first answer is kept, and later reads, small or large (the disk
 * cache's blocks), come from it (after a HEAD each, or from the windows). */
static void test_range_ignored(void **state)
{
	static const struct { uint64_t off; size_t len; } reads[] = {
		{ 10, 100 },                     /* a tree blob: through a window */
		{ (1 << 20) + 5, 300 },          /* the next window */
		{ (3 << 20) + 50, 50 },          /* the object's end, a short window */
		{ (1 << 20) - 10, 20 },          /* across two windows */
		{ 512 << 10, 2 << 20 },          /* a large read (a block of the disk cache) */
	};
	struct no_range nr;
	bkr_store *s;
	fake f;
	(void)state;
	no_range_init(&nr, (3 << 20) + 100, 'A');
	fake_start(&f, on_no_range, &nr, "s3://bucket/repo", &s);
	for (size_t k = 0; k < sizeof(reads) / sizeof(*reads); k++) {
		char *buf = malloc(reads[k].len);
		assert_non_null(buf);
		assert_int_equal(bkr_store_get_range(s, "data/0f/p.pack", reads[k].off, reads[k].len, buf, 0), 0);
		assert_memory_equal(buf, nr.body + reads[k].off, reads[k].len);
		free(buf);
	}
	if (nr.gets != 1)
		fail_msg("%d GETs, %llu bytes for %zu reads of a %zu-byte pack", nr.gets, nr.sent,
			 sizeof(reads) / sizeof(*reads), nr.len);
	/* a read past the end is still refused as truncated */
	{
		char buf[10];
		assert_int_equal(bkr_store_get_range(s, "data/0f/p.pack", nr.len - 5, 10, buf, 0), BKR_ECORRUPT);
		assert_non_null(strstr(bkr_error_message(), "truncated"));
	}
	assert_int_equal(nr.gets, 1);
	fake_stop(&f, s);
	no_range_free(&nr);
}

/* The store's debug line saying a reader waits for a download in flight, counted. */
static void count_waits(void *ctx, bkr_log_level level, const char *component, const char *message,
			const char *json_line)
{
	struct no_range *nr = ctx;
	(void)level, (void)component, (void)json_line;
	if (!strstr(message, "waits for the whole object"))
		return;
	pthread_mutex_lock(&nr->mu);
	nr->waits++;
	pthread_cond_broadcast(&nr->cond);
	pthread_mutex_unlock(&nr->mu);
}

#define SF_READERS 4
struct sf_reader {
	bkr_store *s;
	const char *name;
	uint64_t off;
	size_t len;
	char *buf;
	int err;
};

static void *sf_read(void *arg)
{
	struct sf_reader *r = arg;
	r->err = bkr_store_get_range(r->s, r->name, r->off, r->len, r->buf, 0);
	return NULL;
}

/* SF_READERS threads read other ranges of one pack at once; each gets its bytes. */
static void read_at_once(bkr_store *s, const struct no_range *nr, const char *name)
{
	struct sf_reader r[SF_READERS];
	pthread_t t[SF_READERS];
	for (int k = 0; k < SF_READERS; k++) {
		r[k] = (struct sf_reader){ .s = s, .name = name, .off = (uint64_t)k * (nr->len / SF_READERS) + 7,
					   .len = 512u << 10 };
		assert_non_null(r[k].buf = malloc(r[k].len));
		assert_int_equal(pthread_create(&t[k], NULL, sf_read, &r[k]), 0);
	}
	for (int k = 0; k < SF_READERS; k++) {
		assert_int_equal(pthread_join(t[k], NULL), 0);
		if (r[k].err)
			fail_msg("reader %d: %s", k, bkr_error_message());
		assert_memory_equal(r[k].buf, nr->body + r[k].off, r[k].len);
		free(r[k].buf);
	}
}

/* Readers of one pack at once, the store knowing that the server ignores Range (a pack read
 * before): one downloads it, the others wait for that download instead of each starting
 * its own (the server holds the answer until they wait, or until they all asked).  When
 * that download is cut short halfway (cut), it is retried, and the readers waiting get the
 * bytes of the retried answer: two GETs, one body sent whole. */
static void test_range_ignored_single_flight(void **state)
{
	(void)state;
	for (int cut = 0; cut < 2; cut++) {
		struct no_range nr;
		bkr_store *s;
		char buf[100];
		fake f;
		no_range_init(&nr, 8u << 20, 'A');
		fake_start(&f, on_no_range, &nr, "s3://bucket/repo", &s);
		f.threaded = true;
		assert_int_equal(bkr_store_get_range(s, "data/0a/a.pack", 10, sizeof(buf), buf, 0), 0);
		assert_int_equal(nr.gets, 1);
		bkr_log_set_level(BKR_LOG_DEBUG);
		bkr_log_set_hook(count_waits, &nr);
		nr.gets = nr.whole = 0;
		nr.hold = SF_READERS - 1;
		nr.cut = cut;
		read_at_once(s, &nr, "data/0f/p.pack");
		bkr_log_set_hook(NULL, NULL);
		bkr_log_set_level(BKR_LOG_INFO);
		if (nr.gets != 1 + cut || nr.whole != 1)
			fail_msg("%d readers of one pack%s: %d GETs, %d whole bodies sent", SF_READERS,
				 cut ? " (the first answer cut short)" : "", nr.gets, nr.whole);
		fake_stop(&f, s);
		no_range_free(&nr);
	}
}

/* Readers of one pack at once before the store knows that the server ignores Range: each
 * asks (the server answers when all asked), one answer is kept whole and the others are
 * dropped after their headers, their readers served from it: one body of 16 MiB sent whole,
 * not one per reader. */
static void test_range_ignored_first_answers(void **state)
{
	struct no_range nr;
	bkr_store *s;
	fake f;
	(void)state;
	no_range_init(&nr, 16u << 20, 'A');
	nr.gate = SF_READERS;
	fake_start(&f, on_no_range, &nr, "s3://bucket/repo", &s);
	f.threaded = true;
	read_at_once(s, &nr, "data/0f/p.pack");
	assert_int_equal(nr.gets, SF_READERS);
	if (nr.whole != 1)
		fail_msg("%d readers of one pack: %d whole bodies of %zu bytes sent", SF_READERS, nr.whole, nr.len);
	fake_stop(&f, s);
	no_range_free(&nr);
}

/* Until the monotonic clock is @p ms past now: an interval of s3.keep_check_ms has passed. */
static void clock_pass_ms(int ms)
{
	int64_t until = bkr_clock_mono_ns() + (int64_t)ms * 1000000;
	while (bkr_clock_mono_ns() <= until)
		;
}

/* A copy kept is used without asking the server again for s3.keep_check_ms after its
 * download (or its last HEAD): reads of a pack within it cost no request at all, not
 * one HEAD each. */
static void test_range_ignored_no_head(void **state)
{
	struct no_range nr;
	size_t len = 2u << 20;
	char *buf;
	bkr_store *s;
	fake f;
	(void)state;
	no_range_init(&nr, (3 << 20) + 100, 'A');
	setenv("BKR_S3_KEEP_CHECK_MS", "86400000", 1);
	fake_start(&f, on_no_range, &nr, "s3://bucket/repo", &s);
	assert_non_null(buf = malloc(len));
	for (int k = 0; k < 8; k++) {
		assert_int_equal(bkr_store_get_range(s, "data/0f/p.pack", 100 + (uint64_t)k * 1000, len, buf, 0), 0);
		assert_memory_equal(buf, nr.body + 100 + k * 1000, len);
	}
	if (nr.gets != 1 || nr.heads != 0)
		fail_msg("8 reads of one pack kept: %d GETs, %d HEADs", nr.gets, nr.heads);
	free(buf);
	fake_stop(&f, s);
	unsetenv("BKR_S3_KEEP_CHECK_MS");
	no_range_free(&nr);
}

/* A pack replaced in the bucket after it was downloaded whole (another ETag of the same
 * size, or another size) is downloaded again once s3.keep_check_ms has passed (here 1 ms),
 * never served from the copy kept after that; a read after the interval of an unchanged
 * one asks one HEAD and is served from the copy. */
static void test_range_ignored_replaced(void **state)
{
	struct no_range nr;
	size_t len = 2u << 20;
	char *buf;
	bkr_store *s;
	fake f;
	(void)state;
	no_range_init(&nr, (3 << 20) + 100, 'A');
	setenv("BKR_S3_KEEP_CHECK_MS", "1", 1);
	fake_start(&f, on_no_range, &nr, "s3://bucket/repo", &s);
	assert_non_null(buf = malloc(len));
	assert_int_equal(bkr_store_get_range(s, "data/0f/p.pack", 100, len, buf, 0), 0);
	assert_memory_equal(buf, nr.body + 100, len);
	/* unchanged: from the copy (a HEAD says it is still the object) */
	clock_pass_ms(2);
	assert_int_equal(bkr_store_get_range(s, "data/0f/p.pack", 1000, len, buf, 0), 0);
	assert_memory_equal(buf, nr.body + 1000, len);
	assert_int_equal(nr.gets, 1);
	assert_int_equal(nr.heads, 1);
	for (int mode = 0; mode < 2; mode++) {
		struct no_range next;
		/* the same size with another ETag; then another size with the same ETag */
		no_range_init(&next, mode ? nr.len + 7 : nr.len, mode ? 'A' + 1 : 'C');
		pthread_mutex_lock(&nr.mu);
		free(nr.body);
		nr.body = next.body;
		nr.len = next.len;
		if (!mode)
			memcpy(nr.etag, next.etag, sizeof(nr.etag));
		pthread_mutex_unlock(&nr.mu);
		next.body = NULL;
		no_range_free(&next);
		clock_pass_ms(2);
		assert_int_equal(bkr_store_get_range(s, "data/0f/p.pack", 2000, len, buf, 0), 0);
		if (memcmp(buf, nr.body + 2000, len))
			fail_msg("replaced pack (%s): the copy kept before was served", mode ? "size" : "ETag");
		assert_int_equal(nr.gets, 2 + mode);
	}
	free(buf);
	fake_stop(&f, s);
	unsetenv("BKR_S3_KEEP_CHECK_MS");
	no_range_free(&nr);
}

/* s3.keep_packs (BKR_S3_KEEP_PACKS): with 1, a second pack read takes the first one's place
 * and the first is downloaded again; with the default (4) both stay. */
static void test_range_ignored_keep_packs(void **state)
{
	static const char *const order[] = { "data/0a/a.pack", "data/0b/b.pack", "data/0a/a.pack" };
	(void)state;
	for (int one = 0; one < 2; one++) {
		struct no_range nr;
		size_t len = 300u << 10; /* not through a window */
		char *buf;
		bkr_store *s;
		fake f;
		no_range_init(&nr, 1u << 20, 'A');
		if (one)
			setenv("BKR_S3_KEEP_PACKS", "1", 1);
		setenv("BKR_S3_KEEP_CHECK_MS", "86400000", 1);
		fake_start(&f, on_no_range, &nr, "s3://bucket/repo", &s);
		assert_non_null(buf = malloc(len));
		for (size_t k = 0; k < sizeof(order) / sizeof(*order); k++) {
			assert_int_equal(bkr_store_get_range(s, order[k], 10, len, buf, 0), 0);
			assert_memory_equal(buf, nr.body + 10, len);
		}
		if (nr.gets != (one ? 3 : 2))
			fail_msg("keep_packs %s: %d GETs for reads of a, b, a", one ? "1" : "default", nr.gets);
		free(buf);
		fake_stop(&f, s);
		unsetenv("BKR_S3_KEEP_PACKS");
		unsetenv("BKR_S3_KEEP_CHECK_MS");
		no_range_free(&nr);
	}
}

/* A tunable's variable that is not a whole number in its range stops the open: one line
 * naming the variable, its value escaped; nothing is sent. */
static void test_tunables_env(void **state)
{
	static const struct { const char *env, *value, *says; } bad[] = {
		{ "BKR_S3_KEEP_PACKS", "0", "from 1 to 64" },
		{ "BKR_S3_KEEP_PACKS", "65", "from 1 to 64" },
		{ "BKR_S3_KEEP_MIB", "12MiB", "from 1 to 1048576" },
		{ "BKR_S3_KEEP_CHECK_MS", "-5", "from 1 to 86400000" },
		{ "BKR_S3_ATTEMPTS", "07", "from 1 to 20" },
		{ "BKR_S3_CONNECT_TIMEOUT_SECONDS", "9999999999999999999999", "from 1 to 600" },
		{ "BKR_S3_STALL_TIMEOUT_SECONDS", "1\n2", "from 1 to 3600" },
	};
	(void)state;
	setenv("AWS_ACCESS_KEY_ID", "AK", 1);
	setenv("AWS_SECRET_ACCESS_KEY", "SK", 1);
	setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9", 1);
	bkr_store_s3_configure(NULL);
	for (size_t k = 0; k < sizeof(bad) / sizeof(*bad); k++) {
		bkr_store *s = NULL;
		setenv(bad[k].env, bad[k].value, 1);
		assert_int_equal(bkr_store_open(&s, "s3://bucket/p", 0), BKR_EINVAL);
		assert_null(s);
		if (!strstr(bkr_error_message(), bad[k].env) || !strstr(bkr_error_message(), bad[k].says) ||
		    strchr(bkr_error_message(), '\n'))
			fail_msg("%s=%s: %s", bad[k].env, bad[k].value, bkr_error_message());
		unsetenv(bad[k].env);
	}
	/* a good one, and the configuration's value where the environment has none */
	{
		bkr_store *s = NULL;
		bkr_store_s3_settings set = { .path_style = -1 };
		set.tune[BKR_S3_ATTEMPTS] = 2;
		bkr_store_s3_configure(&set);
		setenv("BKR_S3_KEEP_PACKS", "64", 1);
		assert_int_equal(bkr_store_open(&s, "s3://bucket/p", 0), 0);
		bkr_store_free(s);
		unsetenv("BKR_S3_KEEP_PACKS");
	}
	bkr_store_s3_configure(NULL);
	unsetenv("AWS_ACCESS_KEY_ID");
	unsetenv("AWS_SECRET_ACCESS_KEY");
	unsetenv("AWS_ENDPOINT_URL");
}

/* Where no temporary file can be made ($TMPDIR missing), a server that ignores Range still
 * gives every read its bytes, readers at once included (none waits for a copy that is not
 * kept): each read downloads the pack, as it did before copies were kept. */
static void test_range_ignored_no_tmpdir(void **state)
{
	struct no_range nr;
	char *tmpdir = getenv("TMPDIR") ? strdup(getenv("TMPDIR")) : NULL;
	size_t len = 300u << 10; /* not through a window */
	bkr_store *s;
	char *buf;
	fake f;
	(void)state;
	no_range_init(&nr, 4u << 20, 'A');
	assert_non_null(buf = malloc(len));
	setenv("TMPDIR", "/nonexistent-bkr-tmpdir", 1);
	fake_start(&f, on_no_range, &nr, "s3://bucket/repo", &s);
	f.threaded = true;
	assert_int_equal(bkr_store_get_range(s, "data/0f/p.pack", 10, len, buf, 0), 0);
	read_at_once(s, &nr, "data/0f/p.pack");
	fake_stop(&f, s);
	if (tmpdir)
		setenv("TMPDIR", tmpdir, 1);
	else
		unsetenv("TMPDIR");
	free(tmpdir);
	assert_memory_equal(buf, nr.body + 10, len);
	assert_int_equal(nr.gets, 1 + SF_READERS);
	assert_int_equal(nr.heads, 0);
	free(buf);
	no_range_free(&nr);
}

/* Bytes the reader of connection @p c (on loopback, this process) has not read yet: the
 * rx_queue of its socket in /proc/self/net/tcp; -1 when not found. */
static long peer_unread(int c, int server_port)
{
	struct sockaddr_in a;
	socklen_t alen = sizeof(a);
	char line[512];
	long unread = -1;
	FILE *t;
	assert_int_equal(getpeername(c, (struct sockaddr *)&a, &alen), 0);
	assert_non_null(t = fopen("/proc/self/net/tcp", "r"));
	while (fgets(line, sizeof(line), t)) {
		unsigned lport, rport;
		unsigned long tx, rx;
		if (sscanf(line, " %*d: %*x:%x %*x:%x %*x %lx:%lx", &lport, &rport, &tx, &rx) == 4 &&
		    lport == ntohs(a.sin_port) && rport == (unsigned)server_port)
			unread = (long)rx;
	}
	fclose(t);
	return unread;
}

/* Several packs of 40 MiB on a server that ignores Range, read at once by as many threads
 * (a mount's, each missing another pack): every answer is the whole pack, all but its last
 * byte sent and read by each reader before the server samples the heap. */
#define BIG_READERS 6
struct big_no_range {
	char *body;
	size_t len;
	pthread_barrier_t sent;
	size_t heap;     /* the heap's bytes in use then */
	int port;
};

static size_t heap_in_use(void)
{
	struct mallinfo2 mi = mallinfo2();
	return mi.uordblks + mi.hblkhd;
}

static void on_big_no_range(fake *f, const struct fake_req *q, int c)
{
	struct big_no_range *b = f->ctx;
	char head[256];
	int n = snprintf(head, sizeof(head), "HTTP/1.1 200 X\r\nx-amz-request-id: 1\r\nContent-Length: %zu\r\n"
			 "ETag: \"0f\"\r\nConnection: close\r\n\r\n", b->len);
	int queued, i;
	(void)q;
	fake_raw(c, head, (size_t)n);
	fake_raw(c, b->body, b->len - 1);
	/* until the reader has it all: none in our send queue, none unread in its receive queue */
	for (i = 0; i < 60000; i++) {
		assert_int_equal(ioctl(c, SIOCOUTQ, &queued), 0);
		if (queued == 0 && peer_unread(c, b->port) == 0)
			break;
		usleep(1000);
	}
	assert_true(i < 60000);
	if (pthread_barrier_wait(&b->sent) == PTHREAD_BARRIER_SERIAL_THREAD)
		b->heap = heap_in_use();
	pthread_barrier_wait(&b->sent);
	fake_raw(c, b->body + b->len - 1, 1);
}

struct big_reader {
	bkr_store *s;
	char name[64];
	char *buf;
	int err;
};

static void *big_read(void *arg)
{
	struct big_reader *r = arg;
	r->err = bkr_store_get_range(r->s, r->name, 0, 4u << 20, r->buf, 0); /* a run of the disk cache's blocks */
	return NULL;
}

/* The whole answers to ranged GETs of packs read at once by several threads are not held
 * in memory: once each kept its 32 MiB (64 MiB of room, the buffer doubled), 6 readers
 * 384 MiB, and a mount's readers are as many as FUSE's threads and its look-ahead's; then
 * one of them at a time kept 32 MiB for the windows; now they go to temporary files (the
 * heap below 48 MiB more, whatever their number).
 * (Under ASan or valgrind mallinfo2 does not see their heap: the bound holds trivially.) */
static void test_range_ignored_concurrent(void **state)
{
	struct big_no_range b = { .len = 40u << 20 };
	struct big_reader r[BIG_READERS];
	pthread_t t[BIG_READERS];
	size_t before;
	bkr_store *s;
	fake f;
	(void)state;
	assert_non_null(b.body = malloc(b.len));
	for (size_t i = 0; i < b.len; i++)
		b.body[i] = (char)('A' + i % 26);
	assert_int_equal(pthread_barrier_init(&b.sent, NULL, BIG_READERS), 0);
	fake_start(&f, on_big_no_range, &b, "s3://bucket/repo", &s);
	f.threaded = true;
	b.port = f.port;
	for (int k = 0; k < BIG_READERS; k++) {
		r[k] = (struct big_reader){ .s = s };
		snprintf(r[k].name, sizeof(r[k].name), "data/0%d/p%d.pack", k, k);
		assert_non_null(r[k].buf = malloc(4u << 20));
	}
	before = heap_in_use();
	for (int k = 0; k < BIG_READERS; k++)
		assert_int_equal(pthread_create(&t[k], NULL, big_read, &r[k]), 0);
	for (int k = 0; k < BIG_READERS; k++) {
		assert_int_equal(pthread_join(t[k], NULL), 0);
		assert_int_equal(r[k].err, 0);
		assert_memory_equal(r[k].buf, b.body, 4u << 20);
		free(r[k].buf);
	}
	if (b.heap > before && b.heap - before > ((size_t)48 << 20))
		fail_msg("%d readers of whole answers held %zu MiB at once", BIG_READERS, (b.heap - before) >> 20);
	fake_stop(&f, s);
	pthread_barrier_destroy(&b.sent);
	free(b.body);
}

/* The objects of a rename: repo/data/ab/x.pack moved to repo/trash/x.pack by a server-side copy. */
struct moving {
	int mode;       /* the first copy: 0 answered 500 though done, 1 answered 200 with an error inside */
	int copies;
	bool from, to;  /* which objects are there */
	bool deleted;
};

static void on_moving(fake *f, const struct fake_req *q, int c)
{
	struct moving *m = f->ctx;
	bool is_to = strstr(q->target, "/trash/") != NULL, *there = is_to ? &m->to : &m->from;
	char src[256];
	if (!strcmp(q->method, "HEAD")) {
		static const char found[] = "HTTP/1.1 200 OK\r\nx-amz-request-id: 1\r\nETag: \"0f1e\"\r\n"
					    "Content-Length: 5\r\nConnection: close\r\n\r\n";
		if (*there)
			fake_raw(c, found, strlen(found));
		else
			fake_reply(c, 404, "", "");
	} else if (!strcmp(q->method, "PUT") && is_to && fake_header(q, "x-amz-copy-source", src, sizeof(src))[0]) {
		if (m->copies++ && m->to) {
			fake_reply(c, 412, "", "<Error><Code>PreconditionFailed</Code></Error>");
		} else if (m->copies == 1 && m->mode == 0) {
			m->to = true; /* done, but the answer says otherwise */
			fake_reply(c, 500, "", "<Error><Code>InternalError</Code></Error>");
		} else if (m->copies == 1 && m->mode == 1) {
			fake_reply(c, 200, "", "<?xml version=\"1.0\"?>\n<Error><Code>InternalError</Code></Error>");
		} else {
			m->to = true;
			fake_reply(c, 200, "", "<CopyObjectResult><ETag>\"0f1e\"</ETag></CopyObjectResult>");
		}
	} else if (!strcmp(q->method, "DELETE") && !is_to) {
		m->deleted = m->from;
		m->from = false;
		fake_reply(c, 204, "", "");
	} else {
		fake_reply(c, 400, "", "<Error><Code>NotExpected</Code></Error>");
	}
}

/* A move into trash/ whose copy failed on the way is tried again, and its own earlier copy is no other object. */
static void test_rename_retried(void **state)
{
	(void)state;
	for (int mode = 0; mode < 2; mode++) {
		struct moving m = { .mode = mode, .from = true };
		bkr_store *s;
		fake f;
		int err;
		fake_start(&f, on_moving, &m, "s3://bucket/repo", &s);
		if ((err = bkr_store_rename(s, "data/ab/x.pack", "trash/x.pack")) != 0)
			fail_msg("copy answered %s first: %d %s", mode ? "200 with an error" : "500", err, bkr_error_message());
		assert_true(m.to);
		assert_true(m.deleted);
		assert_int_equal(m.copies, 2);
		/* a copy that is there already is still refused */
		m.from = true;
		assert_int_equal(bkr_store_rename(s, "data/ab/x.pack", "trash/x.pack"), BKR_EEXISTS);
		assert_true(m.from);
		fake_stop(&f, s);
	}
}

struct names_seen {
	char names[8][64];
	int n;
};

static int keep_name(void *ctx, const char *name)
{
	struct names_seen *ns = ctx;
	assert_true(ns->n < 8);
	snprintf(ns->names[ns->n++], sizeof(ns->names[0]), "%s", name);
	return 0;
}

/* A listing with keys no object of the store can have, or (ctx 1) one outside the prefix asked. */
static void on_odd_keys(fake *f, const struct fake_req *q, int c)
{
	char body[1024];
	(void)q;
	snprintf(body, sizeof(body),
		 "<ListBucketResult><IsTruncated>false</IsTruncated>"
		 "<Contents><Key>repo/data/</Key></Contents>"                     /* a console's folder */
		 "<Contents><Key>repo/data/ab/.tmp-1</Key></Contents>"
		 "<Contents><Key>repo/data/../.tmp-2</Key></Contents>"
		 "<Contents><Key>repo/data//.tmp-3</Key></Contents>"
		 "<Contents><Key>repo/data/./x</Key></Contents>"
		 "%s</ListBucketResult>",
		 *(int *)f->ctx ? "<Contents><Key>other/data/ab/.tmp-4</Key></Contents>" : "");
	fake_reply(c, 200, "", body);
}

/* A listing hands over names the store can be asked for, under the prefix asked, and no others. */
static void test_list_odd_keys(void **state)
{
	(void)state;
	for (int mode = 0; mode < 2; mode++) {
		struct names_seen ns = { 0 };
		bkr_store *s;
		fake f;
		fake_start(&f, on_odd_keys, &mode, "s3://bucket/repo", &s);
		if (!mode) {
			assert_int_equal(bkr_store_list(s, "data/", keep_name, &ns), 0);
			assert_int_equal(ns.n, 1);
			assert_string_equal(ns.names[0], "data/ab/.tmp-1");
		} else {
			assert_int_equal(bkr_store_list(s, "data/", keep_name, &ns), BKR_ECORRUPT);
			assert_non_null(strstr(bkr_error_message(), "other/data/ab/.tmp-4"));
		}
		fake_stop(&f, s);
	}
}

/* Locks of "locks/repo": the one being taken is written; the listing shows an old lock
 * whose key has "/../" after its mode (written by hand into the bucket). */
static void on_locking(fake *f, const struct fake_req *q, int c)
{
	bool listing = strstr(q->target, "list-type=2") != NULL;
	(void)f;
	if (!strcmp(q->method, "PUT")) {
		fake_reply(c, 200, "ETag: \"0f1e\"\r\n", "");
	} else if (!strcmp(q->method, "GET") && listing) {
		fake_reply(c, 200, "Date: Mon, 30 Nov 2026 06:47:00 GMT\r\n",
			   "<ListBucketResult><IsTruncated>false</IsTruncated>"
			   "<Contents><Key>repo/locks/repo-x-/../../data/ab/p.pack</Key>"
			   "<LastModified>2020-01-01T00:00:00.000Z</LastModified></Contents></ListBucketResult>");
	} else if (!strcmp(q->method, "DELETE")) {
		fake_reply(c, 204, "", "");
	} else {
		fake_reply(c, 404, "", "<Error><Code>NoSuchKey</Code></Error>");
	}
}

/* A stale-looking lock object whose key is no lock's name is neither read nor removed:
 * its request would address another object (a pack). */
static void test_lock_odd_key(void **state)
{
	bkr_store_held *held = NULL;
	bkr_store *s;
	fake f;
	(void)state;
	fake_start(&f, on_locking, NULL, "s3://bucket/repo", &s);
	assert_int_equal(bkr_store_lock(s, "locks/repo", true, false, &held), 0);
	bkr_store_unlock(held);
	for (int i = 0; i < f.nreq && i < 64; i++)
		if (strstr(f.seen[i], "/data/") || strstr(f.seen[i], ".."))
			fail_msg("request %d: %s", i, f.seen[i]);
	fake_stop(&f, s);
}

/* A GET of an object answered by a body whose end the answer does not give (ctx 0, and 3
 * at first only), in chunks (1), in chunks cut short (2). */
static void on_unsized(fake *f, const struct fake_req *q, int c)
{
	static const char *const answers[] = {
		"HTTP/1.1 200 OK\r\nx-amz-request-id: 1\r\nConnection: close\r\n\r\n{\"cut\":",
		"HTTP/1.1 200 OK\r\nx-amz-request-id: 1\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
		"5\r\nhello\r\n0\r\n\r\n",
		"HTTP/1.1 200 OK\r\nx-amz-request-id: 1\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
		"5\r\nhel",
	};
	int mode = *(int *)f->ctx;
	if (mode == 3 && q->n > 0)
		fake_reply(c, 200, "", "{\"whole\":1}");
	else
		fake_raw(c, answers[mode % 3], strlen(answers[mode % 3]));
}

/* An object's body that could have been cut short unseen (no length, no chunks) is asked
 * again and in the end refused, never taken whole. */
static void test_get_unsized(void **state)
{
	static const struct { int err, nreq; const char *data; } want[] = {
		{ BKR_EUNAVAILABLE, 6, NULL }, { 0, 1, "hello" }, { BKR_EUNAVAILABLE, 6, NULL }, { 0, 2, "{\"whole\":1}" },
	};
	(void)state;
	for (int mode = 0; mode < 4; mode++) {
		uint8_t *data = NULL;
		size_t len = 0;
		bkr_store *s;
		fake f;
		int err;
		fake_start(&f, on_unsized, &mode, "s3://bucket/repo", &s);
		err = bkr_store_get(s, "backups/b.json", 1000, &data, &len);
		if (err != want[mode].err)
			fail_msg("answer %d: %d (%zu bytes) %s", mode, err, len, err ? bkr_error_message() : "");
		assert_int_equal(f.nreq, want[mode].nreq);
		if (want[mode].data) {
			assert_int_equal(len, strlen(want[mode].data));
			assert_memory_equal(data, want[mode].data, len);
		}
		if (mode == 0) {
			assert_non_null(strstr(bkr_error_message(), "backups/b.json"));
			assert_non_null(strstr(bkr_error_message(), "Content-Length"));
		}
		free(data);
		fake_stop(&f, s);
	}
}

/* Two pages, the second beginning with the last key of the first (a continuation off by one,
 * ctx 0), or listing again from the top (1: every key of the first page given again). */
static void on_repeating_pages(fake *f, const struct fake_req *q, int c)
{
	if (!strstr(q->target, "continuation-token="))
		fake_reply(c, 200, "",
			   "<ListBucketResult><IsTruncated>true</IsTruncated>"
			   "<Contents><Key>repo/backups/a.json</Key></Contents><Contents><Key>repo/backups/b.json</Key></Contents>"
			   "<NextContinuationToken>t</NextContinuationToken></ListBucketResult>");
	else
		fake_reply(c, 200, "",
			   *(int *)f->ctx ? "<ListBucketResult><IsTruncated>false</IsTruncated>"
					    "<Contents><Key>repo/backups/a.json</Key></Contents>"
					    "<Contents><Key>repo/backups/b.json</Key></Contents>"
					    "<Contents><Key>repo/backups/c.json</Key></Contents></ListBucketResult>"
					  : "<ListBucketResult><IsTruncated>false</IsTruncated>"
					    "<Contents><Key>repo/backups/b.json</Key></Contents>"
					    "<Contents><Key>repo/backups/c.json</Key></Contents></ListBucketResult>");
}

/* A key given again, at the top of the next page or further on, is handed over once
 * (given twice, `bkr list` showed the backup twice and `cleanup --keep-last` counted it twice). */
static void test_list_repeated_key(void **state)
{
	(void)state;
	for (int mode = 0; mode < 2; mode++) {
		struct names_seen ns = { 0 };
		bkr_store *s;
		fake f;
		fake_start(&f, on_repeating_pages, &mode, "s3://bucket/repo", &s);
		assert_int_equal(bkr_store_list(s, "backups/", keep_name, &ns), 0);
		assert_int_equal(f.nreq, 2);
		if (ns.n != 3)
			fail_msg("mode %d: %d names, the last '%s'", mode, ns.n, ns.names[ns.n - 1]);
		assert_string_equal(ns.names[0], "backups/a.json");
		assert_string_equal(ns.names[1], "backups/b.json");
		assert_string_equal(ns.names[2], "backups/c.json");
		fake_stop(&f, s);
	}
}

/* HEAD answered with the object's Content-Length (ctx 0) or without it (1). */
static void on_head(fake *f, const struct fake_req *q, int c)
{
	static const char *const answers[] = {
		"HTTP/1.1 200 OK\r\nx-amz-request-id: 1\r\nETag: \"0f\"\r\nContent-Length: 12345\r\nConnection: close\r\n\r\n",
		"HTTP/1.1 200 OK\r\nx-amz-request-id: 1\r\nETag: \"0f\"\r\nConnection: close\r\n\r\n",
	};
	const char *a = answers[*(int *)f->ctx];
	(void)q;
	fake_raw(c, a, strlen(a));
}

/* An object's size the server does not give is no size of 0 (every read of it "truncated"). */
static void test_head_without_length(void **state)
{
	(void)state;
	for (int mode = 0; mode < 2; mode++) {
		uint64_t size = 7;
		bkr_store *s;
		fake f;
		fake_start(&f, on_head, &mode, "s3://bucket/repo", &s);
		if (!mode) {
			assert_int_equal(bkr_store_stat(s, "data/ab/p.pack", &size), 0);
			assert_int_equal(size, 12345);
		} else {
			int err = bkr_store_stat(s, "data/ab/p.pack", &size);
			if (err != BKR_EUNAVAILABLE)
				fail_msg("%d, size %llu", err, (unsigned long long)size);
			assert_non_null(strstr(bkr_error_message(), "data/ab/p.pack"));
			assert_non_null(strstr(bkr_error_message(), "Content-Length"));
		}
		fake_stop(&f, s);
	}
}

/* AWS's answers to a request signed for us-east-1 of a bucket in eu-west-1: a redirect
 * (GET: with a body; HEAD: headers only), or a refusal of the signature's region. */
static void on_other_region(fake *f, const struct fake_req *q, int c)
{
	static const char head[] = "HTTP/1.1 301 Moved Permanently\r\nx-amz-request-id: 1\r\n"
				   "x-amz-bucket-region: eu-west-1\r\nConnection: close\r\n\r\n";
	(void)f;
	if (!strcmp(q->method, "HEAD"))
		fake_raw(c, head, strlen(head));
	else if (strstr(q->target, "list-type=2"))
		fake_reply(c, 400, "x-amz-bucket-region: eu-west-1\r\n",
			   "<Error><Code>AuthorizationHeaderMalformed</Code><Message>the region 'us-east-1' is wrong; "
			   "expecting 'eu-west-1'</Message><Region>eu-west-1</Region></Error>");
	else
		fake_reply(c, 301, "x-amz-bucket-region: eu-west-1\r\n",
			   "<Error><Code>PermanentRedirect</Code><Endpoint>bucket.s3.eu-west-1.amazonaws.com</Endpoint>"
			   "</Error>");
}

/* A bucket in another region than the one configured is a setting to change (exit 2), named. */
static void test_other_region(void **state)
{
	uint8_t *data = NULL;
	uint64_t size;
	size_t len;
	bkr_store *s;
	fake f;
	int n = 0;
	(void)state;
	fake_start(&f, on_other_region, NULL, "s3://bucket/repo", &s);
	assert_int_equal(bkr_store_get(s, "config.json", 1000, &data, &len), BKR_EINVAL);
	assert_non_null(strstr(bkr_error_message(), "bucket 'bucket' is in region eu-west-1, not us-east-1: set AWS_REGION=eu-west-1"));
	assert_int_equal(bkr_store_stat(s, "config.json", &size), BKR_EINVAL);
	assert_non_null(strstr(bkr_error_message(), "AWS_REGION=eu-west-1"));
	assert_int_equal(bkr_store_list(s, "backups/", count_name, &n), BKR_EINVAL);
	assert_non_null(strstr(bkr_error_message(), "AWS_REGION=eu-west-1"));
	/* the folder listed is named, as an object is */
	assert_non_null(strstr(bkr_error_message(), "s3://bucket/repo: listing backups/: bucket 'bucket' is in region"));
	fake_stop(&f, s);
}

/* An endpoint that refuses every connection: the error names the object asked for (or the
 * folder listed), not only the repository. */
static void test_unreachable_names_object(void **state)
{
	uint8_t *data = NULL, buf[16];
	size_t len;
	bkr_store *s;
	int port, n = 0;
	/* bound, not listening: a connection is refused */
	int fd = loopback_socket(false, &port);
	(void)state;
	open_at(port, "s3://bucket/repo", &s);
	assert_int_equal(bkr_store_get(s, "backups/b.json", 1000, &data, &len), BKR_EUNAVAILABLE);
	assert_non_null(strstr(bkr_error_message(), "s3://bucket/repo/backups/b.json: cannot reach the S3 endpoint"));
	assert_int_equal(bkr_store_get_range(s, "data/0f/p.pack", 100, 10, buf, 0), BKR_EUNAVAILABLE);
	assert_non_null(strstr(bkr_error_message(), "s3://bucket/repo/data/0f/p.pack: cannot reach"));
	assert_int_equal(bkr_store_list(s, "index/", count_name, &n), BKR_EUNAVAILABLE);
	assert_non_null(strstr(bkr_error_message(), "s3://bucket/repo: listing index/: cannot reach"));
	/* no credentials in it */
	assert_null(strstr(bkr_error_message(), "SKFAKE"));
	/* a write that never reached the server was not done */
	assert_int_equal(bkr_store_put(s, "backups/b.json", "{}", 2), BKR_EUNAVAILABLE);
	assert_non_null(strstr(bkr_error_message(), "s3://bucket/repo/backups/b.json: cannot reach"));
	store_close(s);
	close(fd);
}

/* Every request answered 503 (a server that keeps failing). */
static void on_unavailable(fake *f, const struct fake_req *q, int c)
{
	(void)f;
	(void)q;
	fake_reply(c, 503, "", "<Error><Code>ServiceUnavailable</Code></Error>");
}

/* s3.attempts (BKR_S3_ATTEMPTS): a request that keeps failing is tried that many times in all
 * (6 by default), then one error saying so. */
static void test_attempts_setting(void **state)
{
	(void)state;
	for (int set = 0; set < 2; set++) {
		uint8_t *data = NULL;
		size_t len;
		bkr_store *s;
		fake f;
		if (set)
			setenv("BKR_S3_ATTEMPTS", "2", 1);
		fake_start(&f, on_unavailable, NULL, "s3://bucket/repo", &s);
		assert_int_equal(bkr_store_get(s, "backups/b.json", 1000, &data, &len), BKR_EUNAVAILABLE);
		assert_non_null(strstr(bkr_error_message(), "keeps failing"));
		if (f.nreq != (set ? 2 : 6))
			fail_msg("BKR_S3_ATTEMPTS %s: %d requests", set ? "2" : "unset", f.nreq);
		fake_stop(&f, s);
		unsetenv("BKR_S3_ATTEMPTS");
	}
}

/* Every request read whole, then the connection closed with no answer. */
static void on_silent(fake *f, const struct fake_req *q, int c)
{
	(void)f;
	(void)q;
	(void)c;
}

/* A write the server got whole but never answered may have been done (as a local store's
 * fsync failing after the work, 5227c1f): the error says so; a read's does not. */
static void test_write_answer_lost(void **state)
{
	uint8_t *d = NULL;
	size_t n;
	bkr_store *s;
	fake f;
	(void)state;
	fake_start(&f, on_silent, NULL, "s3://bucket/repo", &s);
	assert_int_equal(bkr_store_put(s, "backups/b.json", "{}", 2), BKR_EUNAVAILABLE);
	assert_non_null(strstr(bkr_error_message(), "s3://bucket/repo/backups/b.json may be in place (the request "
						     "was sent whole, its answer lost): cannot reach the S3 endpoint"));
	assert_int_equal(f.nreq, 6);
	assert_int_equal(bkr_store_get(s, "backups/b.json", 100, &d, &n), BKR_EUNAVAILABLE);
	assert_non_null(strstr(bkr_error_message(), "s3://bucket/repo/backups/b.json: cannot reach"));
	fake_stop(&f, s);
}

/* backups/b.json holds the text ctx; nothing else is there. */
static void on_manifest(fake *f, const struct fake_req *q, int c)
{
	if (!strcmp(q->method, "GET") && strstr(q->target, "/repo/backups/b.json"))
		fake_reply(c, 200, "", f->ctx);
	else
		fake_reply(c, 404, "", "<Error><Code>NoSuchKey</Code></Error>");
}

/* backups/b.json read through the caching store @p c is @p want. */
static void cached_read(bkr_store *c, const char *want)
{
	uint8_t *d = NULL;
	size_t n = 0;
	assert_int_equal(bkr_store_get(c, "backups/b.json", 1000, &d, &n), 0);
	if (n != strlen(want) || memcmp(d, want, n))
		fail_msg("read '%.*s' through the cache %s, the server has '%s'", (int)n, (char *)d,
			 bkr_store_cache_root(c), want);
	free(d);
}

/* s3://bucket/repo on two servers is two repositories: the disk cache keeps them apart (the
 * second server's object was served from the first's copy), and both may be open at once. */
static void test_cache_per_endpoint(void **state)
{
	char dir[PATH_MAX], path[PATH_MAX + 20], want[128];
	bkr_store *s, *c1, *c2;
	fake f1, f2;
	FILE *fp;
	(void)state;
	assert_int_equal(tu_mkdtemp_in(dir, sizeof(dir), "s3-cache"), 0);
	fake_start(&f1, on_manifest, "{\"server\":1}", "s3://bucket/repo", &s);
	assert_int_equal(bkr_store_cache_open(&c1, s, dir, 0), 0);
	cached_read(c1, "{\"server\":1}");
	bkr_store_free(c1);
	/* the other server, after the first: its own object */
	fake_start(&f2, on_manifest, "{\"server\":2}", "s3://bucket/repo", &s);
	assert_int_equal(bkr_store_cache_open(&c2, s, dir, 0), 0);
	cached_read(c2, "{\"server\":2}");
	assert_int_equal(f2.nreq, 1);
	/* the directory names the endpoint */
	snprintf(path, sizeof(path), "%s/location", bkr_store_cache_root(c2));
	assert_non_null(fp = fopen(path, "r"));
	assert_non_null(fgets(want, sizeof(want), fp));
	fclose(fp);
	snprintf(path, sizeof(path), "s3://bucket/repo at http://127.0.0.1:%d", f2.port);
	assert_string_equal(want, path);
	/* both at once (the first was refused: "in use by another process"); each is kept */
	open_at(f1.port, "s3://bucket/repo", &s);
	if (bkr_store_cache_open(&c1, s, dir, 0) != 0)
		fail_msg("%s", bkr_error_message());
	assert_string_not_equal(bkr_store_cache_root(c1), bkr_store_cache_root(c2));
	cached_read(c1, "{\"server\":1}");
	assert_int_equal(f1.nreq, 1);
	bkr_store_free(c1);
	fake_stop(&f1, NULL);
	fake_stop(&f2, c2);
	tu_rmrf(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_url),
		cmocka_unit_test(test_endpoint),
		cmocka_unit_test(test_encode),
		cmocka_unit_test(test_list),
		cmocka_unit_test(test_list_objects),
		cmocka_unit_test(test_list_hostile),
		cmocka_unit_test(test_error_code_and_time),
		cmocka_unit_test(test_open_without_server),
		cmocka_unit_test(test_list_token_loop),
		cmocka_unit_test(test_range_answer),
		cmocka_unit_test(test_range_ignored),
		cmocka_unit_test(test_range_ignored_single_flight),
		cmocka_unit_test(test_range_ignored_first_answers),
		cmocka_unit_test(test_range_ignored_no_head),
		cmocka_unit_test(test_range_ignored_replaced),
		cmocka_unit_test(test_range_ignored_keep_packs),
		cmocka_unit_test(test_tunables_env),
		cmocka_unit_test(test_attempts_setting),
		cmocka_unit_test(test_range_ignored_no_tmpdir),
		cmocka_unit_test(test_range_ignored_concurrent),
		cmocka_unit_test(test_rename_retried),
		cmocka_unit_test(test_list_odd_keys),
		cmocka_unit_test(test_lock_odd_key),
		cmocka_unit_test(test_get_unsized),
		cmocka_unit_test(test_list_repeated_key),
		cmocka_unit_test(test_head_without_length),
		cmocka_unit_test(test_other_region),
		cmocka_unit_test(test_unreachable_names_object),
		cmocka_unit_test(test_cache_per_endpoint),
		cmocka_unit_test(test_write_answer_lost),
	};
	return cmocka_run_group_tests_name("store_s3", tests, NULL, NULL);
}
