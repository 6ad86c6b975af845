/** @file
 * A store in an S3 bucket (bkr_store_s3_open, "s3://BUCKET[/PREFIX]"): every
 * object of the repository is the key PREFIX/NAME, spoken to with libcurl,
 * which signs each request with AWS Signature Version 4 (CURLOPT_AWS_SIGV4);
 * the body's SHA-256 is signed too, so a body cut short on the way is
 * refused by the server, never stored.
 *
 * The contract of bkr/store.h on S3 (docs/s3.md):
 * - written once: put and upload_publish are one PUT with "If-None-Match: *"
 *   (412 -> BKR_EEXISTS); an upload is kept in memory until it is
 *   published (S3 has no rename: an object appears whole or not at all);
 * - retries: a timeout, a reset or refused connection, a 5xx or 429 answer
 *   is tried up to s3.attempts times with a growing, jittered pause, then
 *   one error naming the endpoint.  A retried create-only PUT that meets 412
 *   reads the object back: when it is what we sent, the earlier attempt won;
 * - rename_new (into trash/) is a check that the target is absent, a
 *   server-side copy (retried also when its 200 carries an error; a retry
 *   meeting 412 takes a target with the source's size and ETag for its own
 *   earlier copy), then a delete of the source;
 * - locks are objects "<name>-<x|s>-<random>" holding the owner, host and
 *   pid, refreshed (rewritten) by a thread every stale/5 seconds; one whose
 *   last write is older than the stale timeout (by the server's own clock)
 *   is named, ignored and removed.  Exclusive waits for every other lock,
 *   shared for exclusive ones; a mark (bkr_store_mark) is a shared lock's
 *   object written without looking at the others;
 * - every request is logged at debug level (`bkr -vv`), for counting;
 * - a small read of a pack (under S3_WIN_SMALL bytes: a tree blob, a small
 *   file's chunk, a footer) brings the whole window of S3_WIN bytes around
 *   it in one ranged GET, kept in memory (S3_NWIN windows, least recently
 *   used first): packs never change once published, so the next blobs of
 *   the same pack — read in order by a backup walking its parent's trees,
 *   a restore, verify or repair — cost no request;
 * - a server that ignores Range (a 200 with the whole pack) is asked for
 *   each pack once: the whole answer is kept in an unlinked temporary file
 *   (s3.keep_packs of them, s3.keep_mib between them, least recently
 *   used first), and every read of that pack — concurrent ones wait for the
 *   download in flight instead of starting their own, and a request already
 *   sent drops its answer after the headers when another one brings the
 *   same object — is served from it.  A read more than s3.keep_check_ms
 *   after the copy was downloaded or last confirmed first asks a HEAD
 *   whether the object still has the kept copy's size, ETag and
 *   Last-Modified: one replaced in the bucket (by hand: bkr never rewrites
 *   a pack under its name) is downloaded again, never served stale after
 *   that interval.  (At most one request per interval and pack, none of
 *   the object's bytes.)
 */
#include "bkr/store.h"
#include "bkr/clock.h"
#include "bkr/config.h"
#include "bkr/error.h"
#include "bkr/hash.h"
#include "bkr/host.h"
#include "bkr/io.h"
#include "bkr/log.h"
#include "bkr/utf8.h"
#include "array.h"
#include "idset.h"
#include "store_s3_parse.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <curl/curl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define S3_BACKOFF_MS 200       /* first pause (s3.retry_pause_ms); doubled each time ... */
#define S3_BACKOFF_MAX 15       /* ... up to this many times it */
#define S3_POOL 16              /* idle curl handles kept (their connections with them) */
#define S3_ANSWER_MAX (16u << 20) /* the largest XML answer read */
#define S3_LOCK_STALE_DEFAULT 300
#define S3_KEY_MAX 1600
#define S3_WIN ((size_t)1 << 20)  /* bytes of a pack one window holds */
#define S3_WIN_SMALL (S3_WIN / 4) /* reads shorter than this go through a window */
#define S3_NWIN 32                /* windows kept per store */
#define S3_DOWN_NS (10 * 1000000000LL) /* after a request gave up unanswered: one try each for this long */

/* ---- settings ---------------------------------------------------------------- */

static pthread_mutex_t settings_mu = PTHREAD_MUTEX_INITIALIZER;
static struct {
	char *access_key_id, *secret_access_key, *session_token, *region, *endpoint_url;
	int path_style;
	int lock_stale_seconds;
	int retry_pause_ms;
	int tune[BKR_S3_NTUNE]; /* 0: unset */
} settings = { .path_style = -1 };

static void set_str(char **dst, const char *v)
{
	free(*dst);
	*dst = v && *v ? strdup(v) : NULL;
}

int bkr_store_s3_configure(const bkr_store_s3_settings *cfg)
{
	pthread_mutex_lock(&settings_mu);
	set_str(&settings.access_key_id, cfg ? cfg->access_key_id : NULL);
	set_str(&settings.secret_access_key, cfg ? cfg->secret_access_key : NULL);
	set_str(&settings.session_token, cfg ? cfg->session_token : NULL);
	set_str(&settings.region, cfg ? cfg->region : NULL);
	set_str(&settings.endpoint_url, cfg ? cfg->endpoint_url : NULL);
	settings.path_style = cfg ? cfg->path_style : -1;
	settings.lock_stale_seconds = cfg ? cfg->lock_stale_seconds : 0;
	settings.retry_pause_ms = cfg ? cfg->retry_pause_ms : 0;
	for (int i = 0; i < BKR_S3_NTUNE; i++)
		settings.tune[i] = cfg ? cfg->tune[i] : 0;
	pthread_mutex_unlock(&settings_mu);
	return 0;
}

/* The environment's value of @p env, else the configuration's @p cfg (both may be NULL). */
static const char *pick(const char *env, const char *cfg)
{
	const char *v = env ? getenv(env) : NULL;
	return v && *v ? v : cfg && *cfg ? cfg : NULL;
}

/* ---- the store ------------------------------------------------------------------- */

typedef struct s3_held s3_held;

/* A whole pack a server sent for a range (it ignores Range), kept for the next reads of it. */
struct s3_slot {
	char *name;       /* the pack (NULL: a free slot) */
	int fd;           /* an unlinked temporary file holding its body */
	bool sized;       /* the answer's headers came: */
	uint64_t size;    /* its Content-Length, */
	char etag[100];   /* ETag (as sent) */
	int64_t modified; /* and Last-Modified: what a HEAD must still say for the copy to be used */
	bool done;        /* all of it is in the file */
	bool dead;        /* dropped (its download failed, the object changed): no new reader */
	int pins;         /* the request filling it, the reads from it and the ones waiting for it */
	uint64_t used;    /* wclock at the last read */
	int64_t checked;  /* CLOCK_MONOTONIC ns when the object was last known to be this copy's
			     (its download, or a HEAD): served without asking again until keep_check_ns later */
};

typedef struct {
	bkr_store base;
	bkr_s3_url url;
	bkr_s3_endpoint ep;
	char *endpoint;        /* as given, for messages */
	char *base_url;        /* "http://127.0.0.1:8080/bucket" or "https://bucket.s3.amazonaws.com" */
	char *userpwd;         /* "KEY:SECRET" */
	char *token_header;    /* "x-amz-security-token: ..." or NULL */
	char sigv4[160];       /* "aws:amz:REGION:s3" */
	char region[64];       /* REGION */
	int lock_stale;
	unsigned pause_ms;     /* the first pause before a retry */
	int attempts;          /* tries of one request (s3.attempts) */
	long connect_timeout;  /* seconds (s3.connect_timeout_seconds) */
	long stall_timeout;    /* seconds with nothing moving (s3.stall_timeout_seconds) */
	int keep_slots;        /* whole packs kept at once (s3.keep_packs) */
	uint64_t keep_bytes;   /* ... in at most this many bytes (s3.keep_mib) */
	int64_t keep_check_ns; /* a kept pack is used this long after it was confirmed (s3.keep_check_ms) */
	pthread_mutex_t mu;
	CURL *pool[S3_POOL];
	int npool;
	pthread_mutex_t wmu;   /* guards the windows */
	struct s3_win {
		char *name;    /* NULL: free */
		uint64_t start;
		size_t len;    /* bytes held: less than S3_WIN at the object's end */
		uint8_t *data;
		uint64_t used; /* wclock at the last hit */
	} win[S3_NWIN];
	uint64_t wclock;
	int64_t down_until;    /* CLOCK_MONOTONIC ns: the endpoint did not answer; one try each until then */
	volatile bool no_bucket; /* a request met NoSuchBucket */
	bool range_ignored;    /* a ranged GET was answered with the whole object (said once) */
	struct s3_slot slot[BKR_S3_KEEP_PACKS_MAX]; /* whole packs kept (under wmu), keep_slots of them used */
	pthread_cond_t slot_cond;           /* a slot is done or dead */
} s3_store;

struct s3_req {
	/* what to send */
	const char *method;       /* GET HEAD PUT POST DELETE */
	const char *name;         /* the object (relative to the store), NULL for the bucket */
	const char *listing;      /* a listing of the bucket: the folder listed, for messages */
	const char *query;        /* percent-encoded, sorted; NULL */
	const uint8_t *body;
	size_t body_len;
	const char *headers[4];   /* extra ones */
	bool copy;                /* a server-side copy: its 200 may carry an error */
	bool ranged;
	uint64_t off;
	size_t len;
	uint8_t *fixed;           /* a ranged answer goes here (len bytes) */
	size_t max;               /* the largest other answer kept */
	/* what came back */
	long status;
	uint8_t *data;            /* the answer (or an error's XML) */
	size_t dlen, dcap;
	bool too_large;
	size_t fixed_len;
	uint64_t skip;            /* a 200 to a ranged GET: bytes before off still to drop */
	uint64_t pos;             /* a 200 to a ranged GET: bytes of the whole object's body seen */
	s3_store *slots;          /* a read of a pack: a 200 to it may fill or join a kept copy of this store */
	struct s3_slot *slot;     /* the copy this request's answer fills (pinned) */
	struct s3_slot *joined;   /* the copy another request brings, this one's answer dropped (pinned) */
	bool slot_bad;            /* writing the copy failed: it is dropped */
	int64_t length;           /* Content-Length (-1: none) */
	bool sized;               /* the answer said where its body ends: Content-Length, or chunks */
	bool unsized;             /* an object's body without either, over HTTP/1: ended by the close */
	int64_t range_start;      /* a 206's Content-Range: the first byte it holds (-1: none said) */
	int64_t date;             /* the server's Date */
	int64_t modified;         /* Last-Modified */
	char etag[100];           /* ETag, as sent */
	char bucket_region[64];   /* x-amz-bucket-region: where the bucket is ("" when not said) */
	int attempts;
	size_t sent;
	bool half_sent;           /* the fault point "s3-send" was passed */
	bool unanswered;          /* a write was sent whole and its answer lost: it may have been done */
	bool amz, html;           /* an x-amz-* header came; Content-Type text/html */
};

static void req_reset(struct s3_req *r)
{
	r->status = 0;
	r->dlen = 0;
	r->too_large = false;
	r->fixed_len = 0;
	r->skip = 0;
	r->pos = 0;
	r->length = -1;
	r->sized = r->unsized = false;
	r->range_start = -1;
	r->date = 0;
	r->modified = -1;
	r->etag[0] = '\0';
	r->bucket_region[0] = '\0';
	r->sent = 0;
	r->half_sent = false;
	r->amz = r->html = false;
}

static void req_free(struct s3_req *r)
{
	free(r->data);
	r->data = NULL;
	r->dlen = r->dcap = 0;
}

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static void curl_init_once(void)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* "PREFIX/NAME" (or NAME) percent-encoded into @p out. */
static int key_path(const s3_store *s, const char *name, char *out, size_t cap)
{
	int err;
	out[0] = '\0';
	if (!name)
		return 0; /* the bucket itself */
	if (s->url.prefix[0]) {
		if ((err = bkr_s3_encode(out, cap, s->url.prefix, true)) < 0)
			return err;
		if (strlen(out) + 2 < cap)
			strcat(out, "/");
	}
	return bkr_s3_encode(out, cap, name, true);
}

/* Append @p len bytes to r->data (NUL-terminated); false when out of memory. */
static bool data_append(struct s3_req *r, const char *ptr, size_t len)
{
	if (r->dlen + len + 1 > r->dcap) {
		size_t cap = r->dcap ? r->dcap : 4096;
		uint8_t *nd;
		while (cap < r->dlen + len + 1)
			cap *= 2;
		if (!(nd = realloc(r->data, cap)))
			return false;
		r->data = nd;
		r->dcap = cap;
	}
	memcpy(r->data + r->dlen, ptr, len);
	r->dlen += len;
	r->data[r->dlen] = '\0';
	return true;
}

/* A 200 to a ranged GET of a pack filling a kept copy: @p len more bytes of its body into the copy's file. */
static void slot_write(struct s3_req *r, const char *ptr, size_t len)
{
	uint64_t at = r->pos;
	while (len > 0 && !r->slot_bad) {
		ssize_t n = pwrite(r->slot->fd, ptr, len, (off_t)at);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			r->slot_bad = true; /* a full disk: the copy is only a saving (slot_filled drops it) */
			break;
		}
		ptr += n;
		len -= (size_t)n;
		at += (uint64_t)n;
	}
}

static bool slot_answer(struct s3_req *r);

static size_t on_body(char *ptr, size_t size, size_t n, void *ctx)
{
	struct s3_req *r = ctx;
	size_t len = size * n;
	long status = r->status;
	if (r->fixed && status == 206 && r->range_start != (int64_t)r->off)
		return size * n; /* another range than the one asked: no data of it (s3_perform says so) */
	if (r->fixed && status == 200) {
		if (r->slot)
			slot_write(r, ptr, len);
		r->pos += len;
	}
	if (r->fixed && (status == 206 || status == 200)) {
		if (r->skip) {
			size_t drop = r->skip < len ? (size_t)r->skip : len;
			r->skip -= drop;
			ptr += drop;
			len -= drop;
		}
		size_t room = r->len - r->fixed_len, take = len < room ? len : room;
		memcpy(r->fixed + r->fixed_len, ptr, take);
		r->fixed_len += take;
		return size * n; /* a 200 may carry more than asked: the rest is dropped */
	}
	if (r->dlen + len > r->max) {
		r->too_large = true;
		return 0; /* stop the transfer */
	}
	return data_append(r, ptr, len) ? size * n : 0;
}

static size_t on_header(char *buf, size_t size, size_t n, void *ctx)
{
	struct s3_req *r = ctx;
	size_t len = size * n;
	char line[256];
	if (len >= 5 && !strncmp(buf, "HTTP/", 5)) {
		const char *sp = memchr(buf, ' ', len);
		r->status = sp ? strtol(sp + 1, NULL, 10) : 0;
		r->length = -1;
		r->sized = false;
		r->skip = r->ranged && r->status == 200 ? r->off : 0;
		r->pos = 0;
		r->dlen = 0;
		return len;
	}
	/* the end of the headers of a 200 to a ranged GET of a pack: kept whole, or dropped here
	 * when another request brings the same object (a length other than len aborts the transfer) */
	if ((len == 2 && buf[0] == '\r') || (len == 1 && buf[0] == '\n'))
		return r->slots && r->ranged && r->status == 200 && r->amz && !r->html && !slot_answer(r) ? 0 : len;
	if (len >= sizeof(line))
		return len;
	memcpy(line, buf, len);
	line[len] = '\0';
	line[strcspn(line, "\r\n")] = '\0';
	if (!strncasecmp(line, "content-length:", 15)) {
		char *end;
		unsigned long long v = strtoull(line + 15, &end, 10);
		r->length = end > line + 15 && v <= INT64_MAX ? (int64_t)v : -1;
		r->sized = true;
	} else if (!strncasecmp(line, "transfer-encoding:", 18) && strcasestr(line + 18, "chunked"))
		r->sized = true;
	else if (!strncasecmp(line, "date:", 5))
		r->date = bkr_s3_parse_time(line + 5 + strspn(line + 5, " "));
	else if (!strncasecmp(line, "last-modified:", 14))
		r->modified = bkr_s3_parse_time(line + 14 + strspn(line + 14, " "));
	else if (!strncasecmp(line, "content-range:", 14)) {
		/* "bytes FIRST-LAST/SIZE" */
		const char *v = line + 14 + strspn(line + 14, " ");
		char *end;
		unsigned long long first;
		if (!strncasecmp(v, "bytes ", 6) && isdigit((unsigned char)v[6]) &&
		    (first = strtoull(v + 6, &end, 10), *end == '-'))
			r->range_start = (int64_t)first;
	} else if (!strncasecmp(line, "etag:", 5))
		snprintf(r->etag, sizeof(r->etag), "%s", line + 5 + strspn(line + 5, " "));
	else if (!strncasecmp(line, "x-amz-bucket-region:", 20)) {
		const char *v = line + 20 + strspn(line + 20, " ");
		size_t k = strspn(v, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_");
		snprintf(r->bucket_region, sizeof(r->bucket_region), "%.*s", (int)k, v);
		r->amz = true;
	} else if (!strncasecmp(line, "x-amz-", 6))
		r->amz = true;
	else if (!strncasecmp(line, "content-type:", 13) && strcasestr(line + 13, "text/html"))
		r->html = true;
	return len;
}

static size_t on_read(char *buf, size_t size, size_t n, void *ctx)
{
	struct s3_req *r = ctx;
	size_t left = r->body_len - r->sent, take = size * n < left ? size * n : left, half = r->body_len / 2;
	/* tests: BKR_FAULT="s3-send:N:stop|crash|eio" halfway through the body of the N-th PUT
	 * of more than 64 KiB (a pack), the first half sent */
	bool watch = !r->half_sent && r->body_len > (64u << 10);
	if (watch && r->sent < half && r->sent + take > half)
		take = half - r->sent;
	if (watch && r->sent >= half) {
		r->half_sent = true;
		if (bkr_io_fault("s3-send") < 0)
			return CURL_READFUNC_ABORT;
	}
	memcpy(buf, r->body + r->sent, take);
	r->sent += take;
	return take;
}

static int on_seek(void *ctx, curl_off_t off, int origin)
{
	struct s3_req *r = ctx;
	if (origin != SEEK_SET || off < 0 || (uint64_t)off > r->body_len)
		return CURL_SEEKFUNC_CANTSEEK;
	r->sent = (size_t)off;
	return CURL_SEEKFUNC_OK;
}

static CURL *handle_get(s3_store *s)
{
	CURL *h = NULL;
	pthread_mutex_lock(&s->mu);
	if (s->npool > 0)
		h = s->pool[--s->npool];
	pthread_mutex_unlock(&s->mu);
	if (h)
		curl_easy_reset(h);
	else
		h = curl_easy_init();
	return h;
}

static void handle_put(s3_store *s, CURL *h)
{
	pthread_mutex_lock(&s->mu);
	if (s->npool < S3_POOL) {
		s->pool[s->npool++] = h;
		h = NULL;
	}
	pthread_mutex_unlock(&s->mu);
	if (h)
		curl_easy_cleanup(h);
}

static bool retry_curl(CURLcode rc)
{
	switch (rc) {
	case CURLE_COULDNT_CONNECT:
	case CURLE_OPERATION_TIMEDOUT:
	case CURLE_SEND_ERROR:
	case CURLE_RECV_ERROR:
	case CURLE_GOT_NOTHING:
	case CURLE_PARTIAL_FILE:
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_HTTP2:
	case CURLE_HTTP2_STREAM:
		return true;
	default:
		return false;
	}
}

static bool retry_status(const struct s3_req *r)
{
	char code[64];
	if (r->status >= 500 || r->status == 429)
		return true;
	if (r->copy && r->status == 200 && r->dlen && memmem(r->data, r->dlen, "<Error>", 7))
		return true; /* a copy that failed after its 200 was sent: as a 500 */
	if (r->status == 409) { /* a conditional write racing another one: ask again */
		bkr_s3_error_code((const char *)r->data, r->dlen, code, sizeof(code));
		return !strcmp(code, "ConditionalRequestConflict") || !strcmp(code, "OperationAborted");
	}
	return false;
}

static void pause_before(const s3_store *s, int attempt)
{
	unsigned ms = s->pause_ms << (attempt < 8 ? attempt : 8), jitter;
	struct timespec ts;
	if (ms > s->pause_ms * S3_BACKOFF_MAX)
		ms = s->pause_ms * S3_BACKOFF_MAX;
	if (bkr_random_bytes(&jitter, sizeof(jitter)) < 0)
		jitter = 0;
	ms += jitter % (ms / 2 + 1);
	ts.tv_sec = ms / 1000;
	ts.tv_nsec = (long)(ms % 1000) * 1000000L;
	while (nanosleep(&ts, &ts) < 0)
		;
}

static const char empty_sha256[] = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/* What @p r was for, in messages: "LOCATION/KEY" (the key only: no URL, no credentials),
 * "LOCATION: listing FOLDER", or the repository's location. */
static void req_what(const s3_store *s, const struct s3_req *r, char *out, size_t cap)
{
	if (r->name)
		snprintf(out, cap, "%s/%s", s->base.location, r->name);
	else if (r->listing)
		snprintf(out, cap, "%s: listing %s", s->base.location, r->listing[0] ? r->listing : "everything");
	else
		snprintf(out, cap, "%s", s->base.location);
}

/*
 * Send @p r, retrying what may be retried.  0 with r->status set (the caller
 * judges it), or BKR_EUNAVAILABLE / BKR_ETIMEOUT when the endpoint could not
 * be reached.
 */
static int s3_perform(s3_store *s, struct s3_req *r)
{
	char url[S3_KEY_MAX * 3 + 512], key[S3_KEY_MAX * 3], sha_hdr[100], range[80], errbuf[CURL_ERROR_SIZE];
	struct curl_slist *hl = NULL;
	CURLcode rc = CURLE_OK;
	long version = 0;
	bkr_id sha;
	CURL *h;
	int err;

	pthread_once(&curl_once, curl_init_once);
	if ((err = key_path(s, r->name, key, sizeof(key))) < 0)
		return err;
	snprintf(url, sizeof(url), "%s/%s%s%s", s->base_url, key, r->query ? "?" : "", r->query ? r->query : "");
	if (r->body_len) {
		char hex[BKR_ID_HEX];
		bkr_sha256(r->body, r->body_len, &sha);
		bkr_id_to_hex(&sha, hex);
		snprintf(sha_hdr, sizeof(sha_hdr), "x-amz-content-sha256: %s", hex);
	} else {
		snprintf(sha_hdr, sizeof(sha_hdr), "x-amz-content-sha256: %s", empty_sha256);
	}
	hl = curl_slist_append(hl, sha_hdr);
	if (s->token_header)
		hl = curl_slist_append(hl, s->token_header);
	if (r->ranged) {
		snprintf(range, sizeof(range), "Range: bytes=%llu-%llu", (unsigned long long)r->off,
			 (unsigned long long)(r->off + r->len - 1));
		hl = curl_slist_append(hl, range);
	}
	for (size_t i = 0; i < sizeof(r->headers) / sizeof(*r->headers) && r->headers[i]; i++)
		hl = curl_slist_append(hl, r->headers[i]);
	if (!hl)
		return bkr_error_oom();
	if (!r->max)
		r->max = S3_ANSWER_MAX;
	if (!(h = handle_get(s))) {
		curl_slist_free_all(hl);
		return bkr_error_oom();
	}
	/* An endpoint that just left a request unanswered through every retry is
	 * read once per request for a while: a mount or a restore reading file
	 * after file fails each at once instead of pausing through the retries
	 * again.  Writes keep every retry (a backup rides out what it can). */
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	int64_t now_ns = (int64_t)now.tv_sec * 1000000000LL + now.tv_nsec;
	bool down = (!strcmp(r->method, "GET") || !strcmp(r->method, "HEAD")) &&
		    now_ns < __atomic_load_n(&s->down_until, __ATOMIC_RELAXED);
	int tries = down ? 1 : s->attempts;
	r->unanswered = false;
	for (r->attempts = 0; r->attempts < tries; r->attempts++) {
		if (r->attempts)
			pause_before(s, r->attempts - 1);
		req_reset(r);
		if (r->attempts)
			curl_easy_reset(h);
		errbuf[0] = '\0';
		curl_easy_setopt(h, CURLOPT_URL, url);
		curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
		curl_easy_setopt(h, CURLOPT_MAXCONNECTS, 1L); /* BKR_STORE_S3_HANDLE_FDS */
		curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
		curl_easy_setopt(h, CURLOPT_AWS_SIGV4, s->sigv4);
		curl_easy_setopt(h, CURLOPT_USERPWD, s->userpwd);
		curl_easy_setopt(h, CURLOPT_HTTPHEADER, hl);
		curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, s->connect_timeout);
		curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);              /* nothing moving for */
		curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, s->stall_timeout); /* this long: a timeout, retried */
		curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
		curl_easy_setopt(h, CURLOPT_WRITEDATA, r);
		curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
		curl_easy_setopt(h, CURLOPT_HEADERDATA, r);
		if (!strcmp(r->method, "HEAD")) {
			curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
		} else if (!strcmp(r->method, "PUT")) {
			curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
			curl_easy_setopt(h, CURLOPT_READFUNCTION, on_read);
			curl_easy_setopt(h, CURLOPT_READDATA, r);
			curl_easy_setopt(h, CURLOPT_SEEKFUNCTION, on_seek);
			curl_easy_setopt(h, CURLOPT_SEEKDATA, r);
			curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, (curl_off_t)r->body_len);
		} else if (!strcmp(r->method, "POST")) {
			curl_easy_setopt(h, CURLOPT_POST, 1L);
			curl_easy_setopt(h, CURLOPT_POSTFIELDS, r->body ? (const char *)r->body : "");
			curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)r->body_len);
		} else if (strcmp(r->method, "GET")) {
			curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, r->method);
		}
		rc = curl_easy_perform(h);
		if (rc == CURLE_WRITE_ERROR && (r->too_large || r->joined))
			break;
		if (rc != CURLE_OK && strcmp(r->method, "GET") && strcmp(r->method, "HEAD")) {
			/* a write the server got whole (headers, and the body) and never answered
			 * may have been done: the error says so */
			long req_size = 0;
			curl_easy_getinfo(h, CURLINFO_REQUEST_SIZE, &req_size);
			if (req_size > 0 && r->sent == r->body_len)
				r->unanswered = true;
		}
		if (rc != CURLE_OK) {
			if (retry_curl(rc))
				continue;
			break;
		}
		curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &r->status);
		/* An object's body over HTTP/1 with neither Content-Length nor chunks (S3 always
		 * gives the length; a proxy may not) ends where the connection closed: one cut
		 * short on the way would look whole.  Asked again; in the end refused. */
		curl_easy_getinfo(h, CURLINFO_HTTP_VERSION, &version);
		r->unsized = r->name && !strcmp(r->method, "GET") && (r->status == 200 || r->status == 206) &&
			     !r->sized && version < CURL_HTTP_VERSION_2_0;
		if (!r->unsized && !retry_status(r))
			break;
	}
	if (r->attempts == tries)
		r->attempts--;
	r->attempts++;
	if (rc == CURLE_OK) {
		__atomic_store_n(&s->down_until, 0, __ATOMIC_RELAXED);
	} else if (retry_curl(rc)) {
		clock_gettime(CLOCK_MONOTONIC, &now);
		__atomic_store_n(&s->down_until, (int64_t)now.tv_sec * 1000000000LL + now.tv_nsec + S3_DOWN_NS,
				 __ATOMIC_RELAXED);
	}
	/* every request, for `bkr -vv` (docs/s3.md "Requests per backup") */
	if (r->ranged)
		snprintf(range, sizeof(range), " bytes=%llu+%zu", (unsigned long long)r->off, r->len);
	else
		range[0] = '\0';
	bkr_log_debug("s3", "request %s %s%s%s%s: %ld (%zu bytes sent, %llu received, %d attempt%s)", r->method,
		      r->name ? r->name : "(bucket)", r->query ? "?" : "", r->query ? r->query : "", range, r->status,
		      r->body_len,
		      (unsigned long long)(r->fixed && r->status == 200 ? r->pos : r->fixed ? r->fixed_len : r->dlen),
		      r->attempts,
		      r->attempts == 1 ? "" : "s");
	handle_put(s, h);
	curl_slist_free_all(hl);
	/* A web server that is not S3 (a wrong endpoint, a captive portal): no
	 * x-amz-* header, and an HTML page or an error that is not S3's XML.
	 * Its 404 is no missing object, its 200 no repository data, also when
	 * the page is larger than the object asked for (the transfer stopped:
	 * not "too large", which says the object is damaged).  A 5xx or 429 (a
	 * proxy in front of a failing server) stays "keeps failing". */
	bool stopped = rc == CURLE_WRITE_ERROR && (r->too_large || r->joined); /* by us, on purpose */
	if ((rc == CURLE_OK || stopped) && !r->amz && r->status < 500 && r->status != 429 &&
	    (r->html || (r->status >= 400 && r->dlen && !memmem(r->data, r->dlen, "<Error", 6))))
		return bkr_error_set(BKR_EUNAVAILABLE, "%s: the endpoint %s does not answer like an S3 server (HTTP %ld%s, "
				     "no x-amz-request-id): check the endpoint (AWS_ENDPOINT_URL, or s3.endpoint_url)",
				     s->base.location, s->endpoint, r->status, r->html ? " with an HTML page" : "");
	if (rc == CURLE_OK && r->unsized)
		return bkr_error_set(BKR_EUNAVAILABLE, "%s/%s: %s answered without saying the length (no Content-Length, "
				     "not chunked): a body cut short could not be told from a whole one (gave up after "
				     "%d attempts)", s->base.location, r->name, s->endpoint, r->attempts);
	/* a proxy or a server that answers another range than the one asked (or does not say
	 * which): its bytes are not those of the object at r->off */
	if (rc == CURLE_OK && r->ranged && r->status == 206 && r->range_start != (int64_t)r->off) {
		char got[64] = "no Content-Range";
		if (r->range_start >= 0)
			snprintf(got, sizeof(got), "bytes from %lld", (long long)r->range_start);
		return bkr_error_set(BKR_EUNAVAILABLE, "%s/%s: %s answered another range than bytes %llu-%llu asked "
				     "(%s)", s->base.location, r->name, s->endpoint, (unsigned long long)r->off,
				     (unsigned long long)(r->off + r->len - 1), got);
	}
	if (rc == CURLE_OK || stopped)
		return 0;
	/* the object the request was for, as status_error names it */
	char what[S3_KEY_MAX + 600];
	req_what(s, r, what, sizeof(what));
	/* like a local store's fsync failing after the work (5227c1f): the operator learns
	 * that a rerun may find it done */
	if (r->unanswered && r->name)
		snprintf(what + strlen(what), sizeof(what) - strlen(what), " %s",
			 !strcmp(r->method, "DELETE") ? "may be deleted (the request was sent whole, its answer lost)"
						      : "may be in place (the request was sent whole, its answer lost)");
	if (rc == CURLE_OPERATION_TIMEDOUT)
		return bkr_error_set(BKR_ETIMEOUT, "%s: the S3 endpoint %s timed out: %s (gave up after %d attempts)",
				     what, s->endpoint, errbuf[0] ? errbuf : curl_easy_strerror(rc), r->attempts);
	return bkr_error_set(BKR_EUNAVAILABLE, "%s: cannot reach the S3 endpoint %s: %s%s", what,
			     s->endpoint, errbuf[0] ? errbuf : curl_easy_strerror(rc),
			     r->attempts > 1 ? " (gave up after several attempts)"
			     : down	     ? " (it did not answer a moment ago: tried once)"
					     : "");
}

/* The error for an answer the caller did not expect, naming the object (or the folder listed). */
static int status_error(s3_store *s, const struct s3_req *r)
{
	char code[64], what[S3_KEY_MAX + 600];
	bkr_s3_error_code((const char *)r->data, r->dlen, code, sizeof(code));
	req_what(s, r, what, sizeof(what));
	if (r->too_large)
		return bkr_error_set(BKR_ECORRUPT, "%s: larger than %zu bytes", what, r->max);
	if (!strcmp(code, "NoSuchBucket") && (s->no_bucket = true))
		return bkr_error_set(BKR_ENOTFOUND, "%s: bucket '%s' does not exist at %s (create it first)", what,
				     s->url.bucket, s->endpoint);
	/* AWS answers a request signed for another region than the bucket's with a redirect
	 * (or a refusal) saying where the bucket is: a setting to change, not an I/O error */
	if (r->bucket_region[0] && strcmp(r->bucket_region, s->region) &&
	    (r->status == 301 || r->status == 307 || r->status == 400 || r->status == 403))
		return bkr_error_set(BKR_EINVAL, "%s: bucket '%s' is in region %s, not %s: set AWS_REGION=%s (or "
				     "s3.region in the configuration)", what, s->url.bucket, r->bucket_region, s->region,
				     r->bucket_region);
	if (!strcmp(code, "InvalidAccessKeyId"))
		return bkr_error_set(BKR_EUNAVAILABLE, "%s: %s does not know the access key (AWS_ACCESS_KEY_ID)", what,
				     s->endpoint);
	if (!strcmp(code, "SignatureDoesNotMatch"))
		return bkr_error_set(BKR_EUNAVAILABLE, "%s: %s refused the signature: wrong secret key "
				     "(AWS_SECRET_ACCESS_KEY) or region", what, s->endpoint);
	if (r->status == 403)
		return bkr_error_set(BKR_EUNAVAILABLE, "%s: access denied by %s (%s)", what, s->endpoint,
				     code[0] ? code : "403");
	if (r->status == 404)
		return bkr_error_set(BKR_ENOTFOUND, "%s: no such object", what);
	if (r->status >= 500 || r->status == 429)
		return bkr_error_set(BKR_EUNAVAILABLE, "%s: %s keeps failing: HTTP %ld%s%s (gave up after %d attempts)",
				     what, s->endpoint, r->status, code[0] ? " " : "", code, r->attempts);
	return bkr_error_set(BKR_EIO, "%s: %s answered HTTP %ld%s%s", what, s->endpoint, r->status, code[0] ? " " : "",
			     code);
}

/* ---- objects ----------------------------------------------------------------------- */

static int s3_head_time(s3_store *s, const char *name, uint64_t *size, int64_t *mtime, char *tag)
{
	struct s3_req r = { .method = "HEAD", .name = name };
	int err = s3_perform(s, &r);
	if (err == 0 && r.status == 200 && r.length < 0) {
		/* size 0 would make every read of it "truncated": damage, where the server is at fault */
		err = bkr_error_set(BKR_EUNAVAILABLE, "%s/%s: %s answered HEAD without a Content-Length: the size of the "
				    "object is unknown", s->base.location, name, s->endpoint);
	} else if (err == 0 && r.status == 200) {
		*size = (uint64_t)r.length;
		*mtime = r.modified;
		if (tag)
			snprintf(tag, BKR_STORE_TAG_MAX, "%s", r.etag);
	}
	else if (err == 0 && r.status == 404)
		err = bkr_error_set(BKR_ENOTFOUND, "%s/%s: no such object", s->base.location, name);
	else if (err == 0)
		err = status_error(s, &r);
	req_free(&r);
	return err;
}

static int s3_head(s3_store *s, const char *name, uint64_t *size)
{
	int64_t mtime;
	return s3_head_time(s, name, size, &mtime, NULL);
}

static int s3_stat(bkr_store *base, const char *name, uint64_t *size)
{
	return s3_head((s3_store *)base, name, size);
}

static int s3_stat_time(bkr_store *base, const char *name, uint64_t *size, int64_t *mtime, char *tag)
{
	return s3_head_time((s3_store *)base, name, size, mtime, tag);
}

static int s3_get(bkr_store *base, const char *name, size_t max, uint8_t **out, size_t *len)
{
	s3_store *s = (s3_store *)base;
	struct s3_req r = { .method = "GET", .name = name, .max = max };
	int err = s3_perform(s, &r);
	if (err == 0 && r.status == 200 && !r.too_large) {
		if (!r.data && !(r.data = calloc(1, 1))) {
			err = bkr_error_oom();
		} else {
			*out = r.data;
			*len = r.dlen;
			r.data = NULL;
		}
	} else if (err == 0 && r.status == 200) {
		err = bkr_error_set(BKR_ECORRUPT, "%s/%s: too large (more than %zu bytes)", s->base.location, name, max);
	} else if (err == 0) {
		err = status_error(s, &r);
	}
	req_free(&r);
	return err;
}

/* Packs, and only they, are kept in windows: nothing else is immutable. */
static bool is_pack(const char *name)
{
	return !strncmp(name, "data/", 5) || !strncmp(name, "tree/", 5);
}

/* A small read of a pack goes through a window. */
static bool windowed(const char *name, size_t len)
{
	return len < S3_WIN_SMALL && is_pack(name);
}

/* Copy [off, off+len) of @p name from the windows holding it (one, or several in a row): true on a hit. */
static bool win_hit(s3_store *s, const char *name, uint64_t off, size_t len, void *buf)
{
	uint8_t *to = buf;
	pthread_mutex_lock(&s->wmu);
	while (len > 0) {
		struct s3_win *w = NULL;
		for (int i = 0; i < S3_NWIN && !w; i++)
			if (s->win[i].name && s->win[i].start <= off && off < s->win[i].start + s->win[i].len &&
			    !strcmp(s->win[i].name, name))
				w = &s->win[i];
		if (!w)
			break;
		size_t take = w->start + w->len - off < len ? (size_t)(w->start + w->len - off) : len;
		memcpy(to, w->data + (off - w->start), take);
		w->used = ++s->wclock;
		to += take;
		off += take;
		len -= take;
	}
	pthread_mutex_unlock(&s->wmu);
	return len == 0;
}

static void slot_drop(s3_store *s, struct s3_slot *k);

/* Drop the windows and the kept copy of @p name (deleted or moved). */
static void win_forget(s3_store *s, const char *name)
{
	pthread_mutex_lock(&s->wmu);
	for (int i = 0; i < S3_NWIN; i++)
		if (s->win[i].name && !strcmp(s->win[i].name, name)) {
			free(s->win[i].name);
			free(s->win[i].data);
			memset(&s->win[i], 0, sizeof(s->win[i]));
		}
	for (int i = 0; i < s->keep_slots; i++)
		if (s->slot[i].name && !s->slot[i].dead && !strcmp(s->slot[i].name, name))
			slot_drop(s, &s->slot[i]);
	pthread_mutex_unlock(&s->wmu);
}

/* Keep @p data (@p n bytes of @p name from @p start) in the least recently used window; takes it. */
static void win_keep(s3_store *s, const char *name, uint64_t start, uint8_t *data, size_t n)
{
	char *copy = strdup(name);
	struct s3_win *w;
	if (!copy) {
		free(data);
		return; /* a window is only a saving */
	}
	pthread_mutex_lock(&s->wmu);
	w = &s->win[0];
	for (int i = 1; i < S3_NWIN && w->name; i++)
		if (!s->win[i].name || s->win[i].used < w->used)
			w = &s->win[i];
	free(w->name);
	free(w->data);
	*w = (struct s3_win){ copy, start, n, data, ++s->wclock };
	pthread_mutex_unlock(&s->wmu);
}

/* ---- whole packs kept (a server that ignores Range) ------------------------------------
 * Under s->wmu.  A slot is free (name NULL), being filled (!done), done, or dead (no new
 * reader finds it; freed with its file when its last pin goes). */

static void slot_clear(struct s3_slot *k)
{
	close(k->fd);
	free(k->name);
	memset(k, 0, sizeof(*k));
}

static void slot_unpin(struct s3_slot *k)
{
	if (--k->pins == 0 && k->dead)
		slot_clear(k);
}

/* No new reader for @p k; the ones waiting for it wake (and ask the server themselves). */
static void slot_drop(s3_store *s, struct s3_slot *k)
{
	k->dead = true;
	if (k->pins == 0)
		slot_clear(k);
	pthread_cond_broadcast(&s->slot_cond);
}

/* The live copy of @p name (being filled or done), or NULL. */
static struct s3_slot *slot_find(s3_store *s, const char *name)
{
	for (int i = 0; i < s->keep_slots; i++)
		if (s->slot[i].name && !s->slot[i].dead && !strcmp(s->slot[i].name, name))
			return &s->slot[i];
	return NULL;
}

/* Free the least recently read copy nobody uses (not @p keep): false when there is none. */
static bool slot_evict(s3_store *s, const struct s3_slot *keep)
{
	struct s3_slot *v = NULL;
	for (int i = 0; i < s->keep_slots; i++) {
		struct s3_slot *k = &s->slot[i];
		if (k != keep && k->name && k->done && !k->dead && !k->pins && (!v || k->used < v->used))
			v = k;
	}
	if (v)
		slot_clear(v);
	return v != NULL;
}

/* An unlinked temporary file in $TMPDIR (else /tmp); -1 when none can be made. */
static int slot_tmpfile(void)
{
	const char *dir = getenv("TMPDIR");
	char path[4096];
	int fd;
	if (!dir || dir[0] != '/')
		dir = "/tmp";
	if ((fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600)) >= 0 || (errno != EOPNOTSUPP && errno != EISDIR))
		return fd;
	/* a filesystem (EOPNOTSUPP) or a kernel (EISDIR) without O_TMPFILE */
	if ((size_t)snprintf(path, sizeof(path), "%s/bkr-s3-XXXXXX", dir) >= sizeof(path) ||
	    (fd = mkostemp(path, O_CLOEXEC)) < 0)
		return -1;
	unlink(path);
	return fd;
}

/* A new copy of @p name to be filled by the caller (pinned once), or NULL: no free slot, no file. */
static struct s3_slot *slot_claim(s3_store *s, const char *name)
{
	struct s3_slot *k = NULL;
	for (int i = 0; i < s->keep_slots && !k; i++)
		if (!s->slot[i].name)
			k = &s->slot[i];
	if (!k && slot_evict(s, NULL))
		for (int i = 0; i < s->keep_slots && !k; i++)
			if (!s->slot[i].name)
				k = &s->slot[i];
	if (!k || !(k->name = strdup(name)))
		return NULL;
	if ((k->fd = slot_tmpfile()) < 0) {
		bkr_log_debug("s3", "%s/%s: no temporary file for the whole object (%s): not kept", s->base.location,
			      name, strerror(errno));
		free(k->name);
		k->name = NULL;
		return NULL;
	}
	k->pins = 1;
	k->used = ++s->wclock;
	return k;
}

/* The headers of @p r's answer came: @p k (r's own) is for an object of this size and version,
 * when it fits in S3_KEEP_BYTES with the other copies (the idle ones making room). */
static bool slot_size(s3_store *s, struct s3_slot *k, const struct s3_req *r)
{
	uint64_t held = 0;
	if (r->length < 0 || (uint64_t)r->length > s->keep_bytes)
		return false;
	for (;;) {
		held = 0;
		for (int i = 0; i < s->keep_slots; i++)
			if (s->slot[i].name && &s->slot[i] != k)
				held += s->slot[i].size;
		if (held + (uint64_t)r->length <= s->keep_bytes)
			break;
		if (!slot_evict(s, k))
			return false;
	}
	k->sized = true;
	k->size = (uint64_t)r->length;
	snprintf(k->etag, sizeof(k->etag), "%s", r->etag);
	k->modified = r->modified;
	return true;
}

/*
 * The end of the headers of a 200 to @p r, a ranged GET of a pack (the server ignores
 * Range): the whole object comes.  When another request brings the same object (its copy
 * is being filled, or is done with this answer's size and ETag), @p r joins it and its
 * answer is dropped (false: the transfer stops here); otherwise r's answer fills a copy of
 * its own, when one can be had (else r takes its range and drops the rest, as before).
 */
static bool slot_answer(struct s3_req *r)
{
	s3_store *s = r->slots;
	struct s3_slot *k;
	bool go = true;
	if (r->length < 0)
		return true; /* its size unknown: neither kept nor compared with a copy */
	if (!__atomic_exchange_n(&s->range_ignored, true, __ATOMIC_RELAXED))
		bkr_log_warn("s3", "%s/%s: %s answered a ranged GET with the whole object (it ignores Range): each pack "
			     "is downloaded whole once and kept in a temporary file (at most %d of them, %llu MiB)",
			     s->base.location, r->name, s->endpoint, s->keep_slots,
			     (unsigned long long)(s->keep_bytes >> 20));
	pthread_mutex_lock(&s->wmu);
	k = slot_find(s, r->name);
	if (k && k != r->slot &&
	    (!k->sized || (k->size == (uint64_t)r->length && !strcmp(k->etag, r->etag) && k->modified == r->modified))) {
		k->pins++;
		r->joined = k;
		go = false;
	} else {
		if (k && k != r->slot)
			slot_drop(s, k); /* another version of the object: this answer is the one now */
		if (!r->slot)
			r->slot = slot_claim(s, r->name);
		if (r->slot && !slot_size(s, r->slot, r)) {
			slot_drop(s, r->slot);
			slot_unpin(r->slot);
			r->slot = NULL;
		}
		r->slot_bad = false;
	}
	pthread_mutex_unlock(&s->wmu);
	return go;
}

/* @p r is answered (@p err): the copy it filled is done, when it holds the whole body, or dropped. */
static void slot_filled(s3_store *s, struct s3_req *r, int err)
{
	struct s3_slot *k = r->slot;
	if (!k)
		return;
	pthread_mutex_lock(&s->wmu);
	if (err == 0 && r->status == 200 && !r->slot_bad && k->sized && r->pos == k->size && !k->dead) {
		k->done = true;
		k->checked = bkr_clock_mono_ns();
		pthread_cond_broadcast(&s->slot_cond);
	} else if (!k->dead) {
		slot_drop(s, k);
	}
	slot_unpin(k);
	pthread_mutex_unlock(&s->wmu);
	r->slot = NULL;
}

/* Whether the object @p name still is the one kept in @p k (a HEAD: size, ETag, Last-Modified):
 * 1 yes, 0 no (replaced in the bucket), or the HEAD's error. */
static int slot_current(s3_store *s, const struct s3_slot *k, const char *name)
{
	char tag[BKR_STORE_TAG_MAX];
	uint64_t size;
	int64_t mtime;
	int err = s3_head_time(s, name, &size, &mtime, tag);
	if (err < 0)
		return err;
	if (size == k->size && !strcmp(tag, k->etag) && mtime == k->modified)
		return 1;
	bkr_log_info("s3", "%s/%s: changed in the bucket since it was downloaded whole (%llu bytes, ETag %s; now %llu, "
		     "%s): downloaded again", s->base.location, name, (unsigned long long)k->size,
		     k->etag[0] ? k->etag : "none", (unsigned long long)size, tag[0] ? tag : "none");
	return 0;
}

/*
 * @p r's range of its pack from a whole copy kept (1: r->fixed holds it, r->status says
 * 206, or 416 past the end, as an answer would), waiting for one being downloaded; 0 when
 * there is none to serve it (a copy claimed for r's answer to fill may then be r->slot);
 * or an error (the HEAD's).  A copy found done is used as it is within keep_check_ns of
 * its download or last HEAD, after that only when a HEAD says the object is still the one
 * kept; one waited for (being downloaded when r was asked) is used as it is.
 */
static int slot_serve(s3_store *s, struct s3_req *r)
{
	struct s3_slot *k = r->joined;
	bool fresh = k != NULL;
	int err = 0;

	r->joined = NULL;
	pthread_mutex_lock(&s->wmu);
	if (!k && (k = slot_find(s, r->name))) {
		k->pins++;
		fresh = !k->done;
	}
	if (k && !k->done && !k->dead) {
		bkr_log_debug("s3", "%s/%s: waits for the whole object being downloaded (the server ignores Range)",
			      s->base.location, r->name);
		while (!k->done && !k->dead)
			pthread_cond_wait(&s->slot_cond, &s->wmu);
	}
	if (k && k->dead) {
		slot_unpin(k);
		k = NULL;
	}
	/* a copy confirmed within keep_check_ns is used as it is: packs are never rewritten
	 * under their name (fresh random names, create-only PUTs), so only a hand-made
	 * replacement can make it stale, and it is seen within that interval */
	if (k && !fresh && bkr_clock_mono_ns() - k->checked < s->keep_check_ns)
		fresh = true;
	pthread_mutex_unlock(&s->wmu);
	if (k && !fresh && (err = slot_current(s, k, r->name)) <= 0) {
		pthread_mutex_lock(&s->wmu);
		if (!k->dead)
			slot_drop(s, k);
		slot_unpin(k);
		pthread_mutex_unlock(&s->wmu);
		if (err < 0)
			return err;
		k = NULL;
	} else if (k && !fresh) {
		int64_t now = bkr_clock_mono_ns();
		pthread_mutex_lock(&s->wmu);
		if (now > k->checked)
			k->checked = now;
		pthread_mutex_unlock(&s->wmu);
	}
	if (k) {
		uint64_t size = k->size;
		size_t n = r->off >= size ? 0 : size - r->off < r->len ? (size_t)(size - r->off) : r->len;
		if (n && bkr_io_pread_full(k->fd, r->fixed, n, r->off, r->name) < 0) {
			bkr_error_clear(); /* the copy is only a saving: the server is asked */
			n = SIZE_MAX;
		}
		pthread_mutex_lock(&s->wmu);
		if (n == SIZE_MAX && !k->dead)
			slot_drop(s, k);
		k->used = ++s->wclock;
		slot_unpin(k);
		pthread_mutex_unlock(&s->wmu);
		if (n != SIZE_MAX) {
			r->status = r->off >= size ? 416 : 206;
			r->fixed_len = n;
			return 1;
		}
	}
	/* none: when the server is known to ignore Range, this request's answer fills a copy
	 * the next readers of the pack wait for, instead of each downloading it */
	pthread_mutex_lock(&s->wmu);
	if (r->slots && __atomic_load_n(&s->range_ignored, __ATOMIC_RELAXED) && !slot_find(s, r->name))
		r->slot = slot_claim(s, r->name);
	pthread_mutex_unlock(&s->wmu);
	return 0;
}

/*
 * A ranged GET of pack r->name (r->off, r->len into r->fixed) on @p s: from the whole copy
 * kept when the server ignores Range, else asked (s3_perform; r->status says how it went).
 * A request that joined another one's download reads the copy that one brings; when that
 * failed, it asks again for its own range, alone.
 */
static int pack_get(s3_store *s, struct s3_req *r)
{
	int err = 0;
	r->slots = s;
	for (int round = 0; round < 2; round++) {
		if ((err = slot_serve(s, r)) != 0)
			return err < 0 ? err : 0;
		err = s3_perform(s, r);
		slot_filled(s, r, err);
		if (err < 0 || !r->joined)
			return err;
		r->slots = NULL; /* the second round: no copy to join or fill */
	}
	return err;
}

/* A small read of a pack through a window of S3_WIN bytes (aligned, or from @p off when it would straddle). */
static int win_read(s3_store *s, const char *name, uint64_t off, size_t len, void *buf)
{
	uint64_t start = off & ~(uint64_t)(S3_WIN - 1);
	struct s3_req r = { .method = "GET", .name = name, .ranged = true, .len = S3_WIN, .max = 1 << 16 };
	int err;

	if (win_hit(s, name, off, len, buf))
		return 0;
	if (off + len > start + S3_WIN)
		start = off;
	if (!(r.fixed = malloc(S3_WIN)))
		return bkr_error_oom();
	r.off = start;
	err = pack_get(s, &r);
	if (err == 0 && (r.status == 206 || r.status == 200)) {
		if (r.fixed_len < off - start + len) {
			err = bkr_error_set(BKR_ECORRUPT, "%s/%s: truncated (%zu of %zu bytes at %llu)", s->base.location,
					    name, r.fixed_len > off - start ? r.fixed_len - (size_t)(off - start) : 0, len,
					    (unsigned long long)off);
		} else {
			memcpy(buf, r.fixed + (off - start), len);
			win_keep(s, name, start, r.fixed, r.fixed_len);
			r.fixed = NULL;
		}
	} else if (err == 0 && r.status == 416) {
		err = bkr_error_set(BKR_ECORRUPT, "%s/%s: truncated (nothing at %llu)", s->base.location, name,
				    (unsigned long long)off);
	} else if (err == 0) {
		err = status_error(s, &r);
	}
	free(r.fixed);
	req_free(&r);
	return err;
}

static int s3_get_range(bkr_store *base, const char *name, uint64_t off, size_t len, void *buf, unsigned flags)
{
	s3_store *s = (s3_store *)base;
	struct s3_req r = { .method = "GET", .name = name, .ranged = true, .off = off, .len = len, .fixed = buf,
			    .max = 1 << 16 };
	uint64_t size;
	int err;
	(void)flags;
	if (len == 0) {
		if ((err = s3_head(s, name, &size)) < 0)
			return err;
		return off > size ? bkr_error_set(BKR_ECORRUPT, "%s/%s: truncated (%llu bytes, wanted from %llu)",
						  s->base.location, name, (unsigned long long)size,
						  (unsigned long long)off)
				  : 0;
	}
	if (windowed(name, len))
		return win_read(s, name, off, len, buf);
	if (is_pack(name) && win_hit(s, name, off, len, buf))
		return 0; /* in the windows of earlier small reads */
	err = is_pack(name) ? pack_get(s, &r) : s3_perform(s, &r);
	if (err == 0 && (r.status == 206 || r.status == 200)) {
		if (r.fixed_len != len)
			err = bkr_error_set(BKR_ECORRUPT, "%s/%s: truncated (%zu of %zu bytes at %llu)", s->base.location,
					    name, r.fixed_len, len, (unsigned long long)off);
	} else if (err == 0 && r.status == 416) {
		err = bkr_error_set(BKR_ECORRUPT, "%s/%s: truncated (nothing at %llu)", s->base.location, name,
				    (unsigned long long)off);
	} else if (err == 0) {
		err = status_error(s, &r);
	}
	req_free(&r);
	return err;
}

/*
 * A create-only PUT of @p data as @p name.  A retried attempt that meets
 * 412 may be meeting its own earlier attempt (its answer lost on the way):
 * the object is read back, and when it holds exactly @p data it is ours.
 */
static int s3_put_new(s3_store *s, const char *name, const void *data, size_t len, char *etag, size_t etag_cap)
{
	struct s3_req r = { .method = "PUT", .name = name, .body = data, .body_len = len,
			    .headers = { "If-None-Match: *", "Content-Type: application/octet-stream" } };
	int err = s3_perform(s, &r);
	if (err == 0 && r.status == 412 && r.attempts > 1) {
		uint8_t *back = NULL;
		size_t blen = 0;
		if (s3_get(&s->base, name, len, &back, &blen) == 0 && blen == len && !memcmp(back, data, len))
			r.status = 200;
		bkr_error_clear();
		free(back);
	}
	if (err == 0 && r.status == 412)
		err = bkr_error_set(BKR_EEXISTS, "%s/%s: already exists", s->base.location, name);
	else if (err == 0 && r.status != 200)
		err = status_error(s, &r);
	if (err == 0 && etag)
		snprintf(etag, etag_cap, "%s", r.etag);
	req_free(&r);
	return err;
}

static int locks_confirm(const char *name, bool destroy);

static int s3_put(bkr_store *base, const char *name, const void *data, size_t len)
{
	s3_store *s = (s3_store *)base;
	int err = locks_confirm(name, false);
	return err < 0 ? err : s3_put_new(s, name, data, len, NULL, 0);
}

typedef struct {
	bkr_store_upload base;
	uint8_t *buf;
	size_t len, cap;
	bool published;
} s3_upload;

static int s3_upload_new(bkr_store *base, const char *prefix, bkr_store_upload **out)
{
	s3_upload *u = calloc(1, sizeof(*u));
	(void)prefix;
	if (!u)
		return bkr_error_oom();
	u->base.store = base;
	*out = &u->base;
	return 0;
}

static int s3_upload_write(bkr_store_upload *base, const void *data, size_t len)
{
	s3_upload *u = (s3_upload *)base;
	if (u->published)
		return bkr_error_set(BKR_EINVAL, "upload already published");
	if (u->len + len > u->cap) {
		size_t cap = u->cap ? u->cap : 1 << 20;
		uint8_t *nb;
		while (cap < u->len + len)
			cap *= 2;
		if (!(nb = realloc(u->buf, cap)))
			return bkr_error_oom();
		u->buf = nb;
		u->cap = cap;
	}
	memcpy(u->buf + u->len, data, len);
	u->len += len;
	return 0;
}

static int s3_upload_publish(bkr_store_upload *base, const char *name)
{
	s3_upload *u = (s3_upload *)base;
	int err;
	if (u->published)
		return bkr_error_set(BKR_EINVAL, "upload already published");
	if ((err = locks_confirm(name, false)) == 0 &&
	    (err = s3_put_new((s3_store *)u->base.store, name, u->buf, u->len, NULL, 0)) == 0) {
		u->published = true;
		free(u->buf);
		u->buf = NULL;
		u->len = u->cap = 0;
	}
	return err;
}

static void s3_upload_free(bkr_store_upload *base)
{
	s3_upload *u = (s3_upload *)base;
	free(u->buf);
	free(u);
}

struct list_ctx {
	s3_store *s;
	const char *full;           /* the prefix asked: the root prefix, its '/', the folder */
	size_t strip;               /* the root prefix and its '/' */
	int (*cb)(void *ctx, const char *name);
	void *ctx;
	int (*cb_time)(void *ctx, const char *name, int64_t modified);
	int (*cb_stamped)(void *ctx, const char *name, const char *stamp);
	bkr_idset seen;             /* SHA-256 of every key handed over (s3_list_pages frees it) */
};

/*
 * Whether listed @p key goes to the caller (1) or is passed over (0: the root
 * itself, or a key handed over before: a server repeating the last key of a
 * page at the top of the next, or listing again from an earlier key — each
 * name reaches the caller once, as from a directory); BKR_ECORRUPT for a key
 * outside the prefix asked.
 */
static int listed_key(struct list_ctx *l, const char *key)
{
	char safe[S3_KEY_MAX * 4];
	bkr_id h;
	if (strncmp(key, l->full, strlen(l->full)))
		return bkr_error_set(BKR_ECORRUPT, "%s: the listing of '%s' gave the key '%s', outside it",
				     l->s->base.location, l->full, bkr_text_escape(safe, sizeof(safe), key, strlen(key)));
	if (strlen(key) <= l->strip)
		return 0;
	bkr_sha256(key, strlen(key), &h);
	return bkr_idset_add(&l->seen, &h);
}

/* bkr_store_list_stamped's stamp: what the listing says of the object (a PUT changes the
 * ETag of other bytes, and LastModified) */
static int on_listed_object(void *ctx, const char *key, int64_t modified, const char *etag, uint64_t size)
{
	struct list_ctx *l = ctx;
	char stamp[BKR_STORE_STAMP_MAX];
	int take = listed_key(l, key);
	if (take <= 0)
		return take;
	snprintf(stamp, sizeof(stamp), "%s:%" PRIu64 ":%" PRId64, etag, size, modified);
	return l->cb_stamped(l->ctx, key + l->strip, stamp);
}

static int on_listed(void *ctx, const char *key, int64_t modified)
{
	struct list_ctx *l = ctx;
	int take = listed_key(l, key);
	if (take <= 0)
		return take;
	if (l->cb_time)
		return l->cb_time(l->ctx, key + l->strip, modified);
	return l->cb(l->ctx, key + l->strip);
}

/* ListObjectsV2 of @p prefix, page after page; *date gets the server's clock. */
static int s3_list_pages(s3_store *s, const char *prefix, struct list_ctx *l, int64_t *date)
{
	char full[S3_KEY_MAX], q[S3_KEY_MAX * 3 + 1200];
	bkr_s3_list_page pg = { .on_key = on_listed, .on_object = l->cb_stamped ? on_listed_object : NULL, .ctx = l };
	bkr_id *given = NULL; /* SHA-256 of each continuation token followed: one given again is a loop */
	size_t ngiven = 0, cap = 0;
	int err = 0;

	snprintf(full, sizeof(full), "%s%s%s", s->url.prefix, s->url.prefix[0] ? "/" : "", prefix);
	l->s = s;
	l->full = full;
	l->strip = strlen(s->url.prefix) + (s->url.prefix[0] ? 1 : 0);
	do {
		struct s3_req r = { .method = "GET", .name = NULL, .listing = prefix };
		q[0] = '\0';
		if (pg.token[0]) {
			strcpy(q, "continuation-token=");
			if ((err = bkr_s3_encode(q, sizeof(q), pg.token, false)) < 0)
				break;
			strcat(q, "&");
		}
		strcat(q, "list-type=2&prefix=");
		if ((err = bkr_s3_encode(q, sizeof(q), full, false)) < 0)
			break;
		r.query = q;
		err = s3_perform(s, &r);
		if (err == 0 && r.status != 200)
			err = status_error(s, &r);
		if (err == 0) {
			if (date)
				*date = r.date;
			err = bkr_s3_list_parse((const char *)r.data, r.dlen, &pg);
			if (err < 0 && bkr_error_last_code() == BKR_ECORRUPT)
				bkr_error_prefix("%s: listing %s", s->base.location, prefix[0] ? prefix : "everything");
		}
		req_free(&r);
		if (err == 0 && pg.truncated && !pg.token[0])
			err = bkr_error_set(BKR_ECORRUPT, "%s: a truncated listing without a continuation token",
					    s->base.location);
		if (err == 0 && pg.truncated) {
			/* a server going round in circles would be listed for ever */
			bkr_id h;
			bkr_sha256(pg.token, strlen(pg.token), &h);
			for (size_t i = 0; i < ngiven && err == 0; i++)
				if (!bkr_id_cmp(&given[i], &h))
					err = bkr_error_set(BKR_ECORRUPT, "%s: listing %s: the server gave the same "
							    "continuation token again (a listing that never ends)",
							    s->base.location, prefix[0] ? prefix : "everything");
			if (err == 0 && (err = bkr_array_grow((void **)&given, &cap, ngiven, sizeof(*given))) == 0)
				given[ngiven++] = h;
		}
	} while (err == 0 && pg.truncated);
	free(given);
	bkr_idset_free(&l->seen);
	return err;
}

static int s3_list(bkr_store *base, const char *prefix, int (*cb)(void *ctx, const char *name), void *ctx)
{
	struct list_ctx l = { .cb = cb, .ctx = ctx };
	return s3_list_pages((s3_store *)base, prefix, &l, NULL);
}

static int s3_list_stamped(bkr_store *base, const char *prefix,
			   int (*cb)(void *ctx, const char *name, const char *stamp), void *ctx)
{
	struct list_ctx l = { .cb_stamped = cb, .ctx = ctx };
	return s3_list_pages((s3_store *)base, prefix, &l, NULL);
}

static int s3_delete_object(s3_store *s, const char *name)
{
	struct s3_req r = { .method = "DELETE", .name = name };
	int err = s3_perform(s, &r);
	if (err == 0 && r.status != 204 && r.status != 200)
		err = r.status == 404 ? bkr_error_set(BKR_ENOTFOUND, "%s/%s: no such object", s->base.location, name)
				      : status_error(s, &r);
	req_free(&r);
	return err;
}

static int s3_remove(bkr_store *base, const char *name)
{
	s3_store *s = (s3_store *)base;
	uint64_t size;
	int err;
	win_forget(s, name);
	/* S3 deletes an absent key without a word; the contract says BKR_ENOTFOUND */
	if ((err = s3_head(s, name, &size)) < 0)
		return err;
	return s3_delete_object(s, name);
}

static int s3_rename(bkr_store *base, const char *from, const char *to)
{
	s3_store *s = (s3_store *)base;
	char src[S3_KEY_MAX * 3 + 200], key[S3_KEY_MAX * 3], tag[BKR_STORE_TAG_MAX], tag_to[BKR_STORE_TAG_MAX];
	uint64_t size, size_to;
	int64_t mtime;
	int err;
	win_forget(s, from);
	if ((err = s3_head(s, to, &size)) == 0)
		return bkr_error_set(BKR_EEXISTS, "%s/%s: already exists", s->base.location, to);
	if (err != BKR_ENOTFOUND)
		return err;
	bkr_error_clear();
	if ((err = s3_head_time(s, from, &size, &mtime, tag)) < 0 || (err = key_path(s, from, key, sizeof(key))) < 0)
		return err;
	snprintf(src, sizeof(src), "x-amz-copy-source: /%s/%s", s->url.bucket, key);
	{
		struct s3_req r = { .method = "PUT", .name = to, .headers = { src, "If-None-Match: *" }, .copy = true };
		err = s3_perform(s, &r);
		/* A retried copy that meets 412 may be meeting its own earlier attempt (its
		 * answer lost on the way): the target with the size and ETag of the source
		 * (a copy keeps the ETag of an object PUT whole) is it. */
		if (err == 0 && r.status == 412 && r.attempts > 1 && tag[0]) {
			if (s3_head_time(s, to, &size_to, &mtime, tag_to) == 0 && size_to == size && !strcmp(tag_to, tag)) {
				r.status = 200;
				r.dlen = 0;
			}
			bkr_error_clear();
		}
		/* a copy can fail after its 200 has been sent: the error is in the body */
		if (err == 0 && (r.status != 200 || (r.data && r.dlen && memmem(r.data, r.dlen, "<Error>", 7))))
			err = r.status == 412 ? bkr_error_set(BKR_EEXISTS, "%s/%s: already exists", s->base.location, to)
					      : status_error(s, &r);
		req_free(&r);
	}
	if (err == 0 && (err = s3_delete_object(s, from)) == BKR_ENOTFOUND) {
		bkr_error_clear(); /* someone else moved it meanwhile: it is where it should be */
		err = 0;
	}
	return err;
}

static int s3_prepare(bkr_store *base, const char *prefix)
{
	(void)base;
	(void)prefix;
	return 0; /* a bucket has no folders */
}

/* ---- locks -------------------------------------------------------------------------- */

struct s3_held {
	bkr_store_held base;
	s3_held *next;              /* in held_all */
	char name[S3_KEY_MAX];      /* our lock object */
	char *body;
	bool mark;                  /* a writers' mark: rewritten as it is, never checked */
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool stop, running;
	pthread_mutex_t cmu;        /* one confirmation at a time; guards what follows */
	char etag[100];             /* our object's ETag, as the server gave it */
	bool etag_bare;             /* the server wants If-Match without the quotes (Ceph RGW) */
	bool lost;                  /* removed or replaced behind our back */
	int64_t confirmed;          /* CLOCK_BOOTTIME seconds when the last good write was sent */
	int64_t silent;             /* when lost: seconds from that write to finding it gone */
};

/*
 * Every lock (not mark) this process holds, on any store: a command may
 * reach the objects its lock guards through another store than the one that
 * took it (prune and delete move through a store of their own, a tier is a
 * store of its own), so each is checked before anything is published,
 * moved or removed, whichever store does it.
 */
static pthread_mutex_t held_mu = PTHREAD_MUTEX_INITIALIZER;
static s3_held *held_all;

/* Seconds on a clock that runs while the process is stopped or the machine sleeps. */
static int64_t boot_seconds(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_BOOTTIME, &ts);
	return (int64_t)ts.tv_sec;
}

static int lost_error(s3_store *s, s3_held *l)
{
	return bkr_error_set(BKR_ELOCKED, "%s/%s: repository lock lost: this command's lock object was removed "
			     "(as stale, by another host) while it ran (paused or cut off for %lld s; a lock not "
			     "refreshed for %d s is stale); nothing was published, moved or removed after that",
			     s->base.location, l->name, (long long)l->silent, s->lock_stale);
}

/*
 * Rewrite our lock object only if it is still there and ours (If-Match: its
 * ETag): its Last-Modified says we are alive.  BKR_ELOCKED "lock lost" when
 * it was removed (a host that judged it stale) or replaced, after which it
 * is never written again; BKR_EUNAVAILABLE and the like when the server
 * could not say (the lock may still be ours).  Nothing is sent when the
 * last good write was sent less than @p fresh seconds ago.
 */
static int lock_confirm(s3_store *s, s3_held *l, int64_t fresh)
{
	int err = 0;
	pthread_mutex_lock(&l->cmu);
	if (l->lost) {
		err = lost_error(s, l);
		goto done;
	}
	if (boot_seconds() - l->confirmed < fresh)
		goto done;
	for (int tries = 0;; tries++) {
		char cond[140];
		const char *tag = l->etag;
		size_t tlen = strlen(tag);
		int64_t sent = boot_seconds();
		if (l->etag_bare && tlen >= 2 && tag[0] == '"') {
			tag++;
			tlen -= 2;
		}
		snprintf(cond, sizeof(cond), "If-Match: %.*s", (int)tlen, tag);
		struct s3_req r = { .method = "PUT", .name = l->name, .body = (const uint8_t *)l->body,
				    .body_len = strlen(l->body),
				    .headers = { cond, "Content-Type: application/octet-stream" } };
		err = s3_perform(s, &r);
		if (err == 0 && r.status == 200) {
			l->confirmed = sent;
			if (r.etag[0])
				snprintf(l->etag, sizeof(l->etag), "%s", r.etag);
		} else if (err == 0 && (r.status == 412 || r.status == 404)) {
			/* a server that compares If-Match without the quotes (Ceph RGW) refuses
			 * the quoted ETag of an object that is there: ask it plainly, once */
			struct s3_req h = { .method = "HEAD", .name = l->name };
			bool there = false;
			if (!tries && !l->etag_bare && l->etag[0] == '"' && s3_perform(s, &h) == 0 && h.status == 200 &&
			    !strcmp(h.etag, l->etag))
				there = true;
			bkr_error_clear();
			req_free(&h);
			if (there) {
				l->etag_bare = true;
				req_free(&r);
				continue;
			}
			l->lost = true;
			l->silent = sent - l->confirmed;
			err = lost_error(s, l);
		} else if (err == 0) {
			err = status_error(s, &r);
		}
		req_free(&r);
		break;
	}
done:
	pthread_mutex_unlock(&l->cmu);
	return err;
}

/*
 * Before publishing @p name (an index file, a manifest, a record: what the
 * locks held guard), or with @p destroy before moving or removing it (a pack
 * too: another command may rely on it), make sure every lock this process
 * holds is still ours.  A lock written less than stale/5 seconds ago (one
 * refresh period, by a clock that runs while we are stopped) cannot have
 * been judged stale by any host, which waits for the larger of its period
 * and ours: no request.
 */
static int locks_confirm(const char *name, bool destroy)
{
	int err = 0;
	if (!strncmp(name, "locks/", 6))
		return 0; /* the locks themselves: taking one removes stale ones */
	if (!destroy && (!strncmp(name, "data/", 5) || !strncmp(name, "tree/", 5)))
		return 0; /* a new pack no index names is a leftover, whatever happens to the lock */
	pthread_mutex_lock(&held_mu);
	for (s3_held *l = held_all; l && err == 0; l = l->next) {
		s3_store *ls = (s3_store *)l->base.store;
		err = lock_confirm(ls, l, ls->lock_stale / 5);
	}
	pthread_mutex_unlock(&held_mu);
	return err;
}

int bkr_store_s3_locks_confirm(const char *name)
{
	return locks_confirm(name, true);
}

/* Rewrite our lock object every stale/5 seconds: its Last-Modified says we are alive. */
static void *refresh_main(void *arg)
{
	s3_held *l = arg;
	s3_store *s = (s3_store *)l->base.store;
	int period = s->lock_stale / 5 > 0 ? s->lock_stale / 5 : 1;
	pthread_mutex_lock(&l->mu);
	while (!l->stop) {
		struct timespec until;
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_sec += period;
		if (pthread_cond_timedwait(&l->cv, &l->mu, &until) == 0 || l->stop)
			continue;
		pthread_mutex_unlock(&l->mu);
		if (l->mark) {
			/* a mark is only a sign of work in progress: rewritten as it is */
			struct s3_req r = { .method = "PUT", .name = l->name, .body = (const uint8_t *)l->body,
					    .body_len = strlen(l->body) };
			if (s3_perform(s, &r) < 0)
				bkr_error_clear(); /* tried again next period; stale only after five misses */
			req_free(&r);
		} else if (lock_confirm(s, l, 0) < 0) {
			bool lost = l->lost;
			if (lost)
				bkr_log_warn("s3", "%s", bkr_error_message());
			bkr_error_clear(); /* unreachable: tried again next period; stale only after five misses */
			if (lost) {
				pthread_mutex_lock(&l->mu);
				break; /* never written again: the command fails before it publishes */
			}
		}
		pthread_mutex_lock(&l->mu);
	}
	pthread_mutex_unlock(&l->mu);
	return NULL;
}

struct lock_scan {
	const char *self;          /* our object's name after the common prefix */
	size_t plen;               /* length of "<name>-" */
	bool exclusive;
	char holder[S3_KEY_MAX];   /* the first live conflicting lock */
	int64_t holder_time;
	char stale[8][S3_KEY_MAX]; /* possibly stale ones: to remove unless their holder says otherwise */
	int64_t stale_time[8];
	int nstale;
	int64_t now;
	int stale_after;
};

static int on_lock(void *ctx, const char *name, int64_t modified)
{
	struct lock_scan *ls = ctx;
	const char *mode = name + ls->plen;
	if (strlen(name) <= ls->plen || !strcmp(name, ls->self) || (mode[0] != 'x' && mode[0] != 's') || mode[1] != '-')
		return 0;
	/* "<name>-<x|s>-<random hex>": another key (written by hand: "...-x-/../../data/...") is
	 * no lock, and its GET and DELETE would reach another object (curl drops "/../") */
	if (strchr(mode, '/') || strchr(mode, '.'))
		return 0;
	if (!ls->exclusive && mode[0] != 'x')
		return 0;
	if (ls->now && modified && ls->now - modified > ls->stale_after) {
		if (ls->nstale < 8) {
			snprintf(ls->stale[ls->nstale], S3_KEY_MAX, "%s", name);
			ls->stale_time[ls->nstale++] = modified;
			return 0;
		}
		/* more than we look at: taken for a live holder (we wait) */
	}
	if (!ls->holder[0]) {
		snprintf(ls->holder, sizeof(ls->holder), "%s", name);
		ls->holder_time = modified;
	}
	return 0;
}

/*
 * "pid P on host H" of the lock object @p name, for messages, and in
 * *@p stale the period after which it is stale: the larger of ours and the
 * one its holder wrote in it (a holder refreshes by its own setting).
 */
static void describe_holder(s3_store *s, const char *name, char *out, size_t cap, int *stale)
{
	uint8_t *text = NULL;
	size_t len;
	char host[128] = "?", pid[32] = "?", safe[4 * sizeof(host)];
	*stale = s->lock_stale;
	if (s3_get(&s->base, name, 4096, &text, &len) == 0) {
		const char *h = strstr((char *)text, "\"host\":\""), *p = strstr((char *)text, "\"pid\":"),
			   *st = strstr((char *)text, "\"stale_seconds\":");
		long v;
		if (h)
			sscanf(h + 8, "%127[^\"]", host);
		if (p)
			sscanf(p + 6, "%31[0-9]", pid);
		if (st && sscanf(st + 16, "%ld", &v) == 1 && v > *stale && v < 10L * 365 * 86400)
			*stale = (int)v;
	}
	bkr_error_clear();
	free(text);
	/* the bucket's text: a newline or an escape sequence in it must not reach a terminal */
	snprintf(out, cap, "pid %s on host %s", pid, bkr_text_escape(safe, sizeof(safe), host, strlen(host)));
}

/* a lock, or with @p mark a shared hold written without looking at the others */
static int s3_hold(bkr_store *base, const char *name, bool exclusive, bool wait, bool mark, bkr_store_held **out)
{
	s3_store *s = (s3_store *)base;
	char hex[33], host[128], who[256], prefix[S3_KEY_MAX];
	struct lock_scan *ls = calloc(1, sizeof(*ls));
	s3_held *l = calloc(1, sizeof(*l));
	uint8_t rnd[16];
	int err = 0, attempt = 0, holder_stale = 0;

	if (!ls || !l) {
		err = bkr_error_oom();
		goto done;
	}
	if ((err = bkr_random_bytes(rnd, sizeof(rnd))) < 0)
		goto done;
	bkr_hex_encode(rnd, sizeof(rnd), hex);
	bkr_host_name(host, sizeof(host), NULL);
	snprintf(prefix, sizeof(prefix), "%s-", name);
	snprintf(l->name, sizeof(l->name), "%s%c-%s", prefix, exclusive ? 'x' : 's', hex);
	/* stale_seconds: our own period, so that a host configured with a shorter one
	 * never calls this lock stale before we would have refreshed it */
	if (asprintf(&l->body, "{\"mode\":\"%s\",\"host\":\"%s\",\"pid\":%ld,\"uid\":%ld,\"stale_seconds\":%d}\n",
		     exclusive ? "exclusive" : "shared", host, (long)getpid(), (long)getuid(), s->lock_stale) < 0) {
		l->body = NULL;
		err = bkr_error_oom();
		goto done;
	}
	l->base.store = base;
	l->mark = mark;
	for (;; attempt++) {
		struct list_ctx lc = { .cb_time = on_lock, .ctx = ls };
		memset(ls, 0, sizeof(*ls));
		ls->self = l->name;
		ls->plen = strlen(prefix);
		ls->exclusive = exclusive;
		ls->stale_after = s->lock_stale;
		l->confirmed = boot_seconds();
		if ((err = s3_put_new(s, l->name, l->body, strlen(l->body), l->etag, sizeof(l->etag))) < 0)
			goto done;
		if (!l->etag[0] && !mark) { /* a retried PUT's answer was lost: ask for the ETag */
			struct s3_req h = { .method = "HEAD", .name = l->name };
			if (s3_perform(s, &h) == 0 && h.status == 200)
				snprintf(l->etag, sizeof(l->etag), "%s", h.etag);
			bkr_error_clear();
			req_free(&h);
		}
		if (mark)
			break;
		if ((err = s3_list_pages(s, prefix, &lc, &ls->now)) < 0) {
			s3_delete_object(s, l->name);
			goto done;
		}
		for (int i = 0; i < ls->nstale; i++) {
			int stale;
			long long age = (long long)(ls->now - ls->stale_time[i]);
			char safe[S3_KEY_MAX * 4];
			describe_holder(s, ls->stale[i], who, sizeof(who), &stale);
			if (age <= stale) {
				/* its holder refreshes less often than we would: not stale for it */
				if (!ls->holder[0]) {
					snprintf(ls->holder, sizeof(ls->holder), "%s", ls->stale[i]);
					ls->holder_time = ls->stale_time[i];
				}
				continue;
			}
			/* its holder is gone: say so (the message stays if we fail) and remove it */
			bkr_log_warn("s3", "%s/%s: stale lock of %s removed (not refreshed for %lld s; stale after %d s)",
				     s->base.location, bkr_text_escape(safe, sizeof(safe), ls->stale[i], strlen(ls->stale[i])),
				     who, age, stale);
			if (s3_delete_object(s, ls->stale[i]) < 0)
				bkr_error_clear();
		}
		if (!ls->holder[0])
			break;
		if ((err = s3_delete_object(s, l->name)) < 0)
			goto done;
		if (!wait) {
			describe_holder(s, ls->holder, who, sizeof(who), &holder_stale);
			err = bkr_error_set(BKR_ELOCKED, "%s/%s: held %s by %s (refreshed %lld s ago; a lock not "
					    "refreshed for %d s is stale)", s->base.location, name,
					    ls->holder[ls->plen] == 'x' ? "exclusively" : "shared", who,
					    (long long)(ls->now && ls->holder_time ? ls->now - ls->holder_time : 0),
					    holder_stale);
			goto done;
		}
		pause_before(s, attempt < 3 ? attempt + 1 : 3);
	}
	pthread_mutex_init(&l->mu, NULL);
	pthread_cond_init(&l->cv, NULL);
	pthread_mutex_init(&l->cmu, NULL);
	if (!mark) {
		pthread_mutex_lock(&held_mu);
		l->next = held_all;
		held_all = l;
		pthread_mutex_unlock(&held_mu);
	}
	if (pthread_create(&l->thread, NULL, refresh_main, l) == 0)
		l->running = true;
	*out = &l->base;
	l = NULL;
done:
	if (l)
		free(l->body);
	free(l);
	free(ls);
	return err;
}

static int s3_lock(bkr_store *base, const char *name, bool exclusive, bool wait, bkr_store_held **out)
{
	return s3_hold(base, name, exclusive, wait, false, out);
}

static int s3_mark(bkr_store *base, const char *name, bkr_store_held **out)
{
	return s3_hold(base, name, false, false, true, out);
}

static void s3_unlock(bkr_store_held *base)
{
	s3_held *l = (s3_held *)base;
	pthread_mutex_lock(&held_mu);
	for (s3_held **p = &held_all; *p; p = &(*p)->next)
		if (*p == l) {
			*p = l->next;
			break;
		}
	pthread_mutex_unlock(&held_mu);
	if (l->running) {
		pthread_mutex_lock(&l->mu);
		l->stop = true;
		pthread_cond_signal(&l->cv);
		pthread_mutex_unlock(&l->mu);
		pthread_join(l->thread, NULL);
	}
	{
		/* unlocking runs on the way out of a failed command: keep its message */
		int code = bkr_error_last_code();
		char saved[1024];
		snprintf(saved, sizeof(saved), "%s", bkr_error_message());
		if (s3_delete_object((s3_store *)l->base.store, l->name) < 0) {
			if (code < 0)
				bkr_error_set(code, "%s", saved);
			else
				bkr_error_clear(); /* left behind: stale after the timeout */
		}
	}
	pthread_mutex_destroy(&l->mu);
	pthread_cond_destroy(&l->cv);
	pthread_mutex_destroy(&l->cmu);
	free(l->body);
	free(l);
}

static int s3_root_missing(bkr_store *base)
{
	s3_store *s = (s3_store *)base;
	if (!s->no_bucket)
		return 0;
	return bkr_error_set(BKR_ENOTFOUND, "%s: bucket '%s' does not exist at %s (create it first)", s->base.location,
			     s->url.bucket, s->endpoint);
}

static void s3_free(bkr_store *base)
{
	s3_store *s = (s3_store *)base;
	for (int i = 0; i < s->npool; i++)
		curl_easy_cleanup(s->pool[i]);
	for (int i = 0; i < S3_NWIN; i++) {
		free(s->win[i].name);
		free(s->win[i].data);
	}
	for (int i = 0; i < BKR_S3_KEEP_PACKS_MAX; i++)
		if (s->slot[i].name)
			slot_clear(&s->slot[i]);
	pthread_cond_destroy(&s->slot_cond);
	pthread_mutex_destroy(&s->wmu);
	pthread_mutex_destroy(&s->mu);
	free(s->endpoint);
	free(s->base_url);
	if (s->userpwd)
		memset(s->userpwd, 0, strlen(s->userpwd));
	free(s->userpwd);
	free(s->token_header);
	free(s->base.location);
	free(s->base.identity);
	free(s);
}

static const bkr_store_ops s3_ops = {
	.stat = s3_stat,
	.stat_time = s3_stat_time,
	.get = s3_get,
	.get_range = s3_get_range,
	.put = s3_put,
	.upload_new = s3_upload_new,
	.upload_write = s3_upload_write,
	.upload_publish = s3_upload_publish,
	.upload_free = s3_upload_free,
	.list = s3_list,
	.list_stamped = s3_list_stamped,
	.remove = s3_remove,
	.rename_new = s3_rename,
	.prepare = s3_prepare,
	.lock = s3_lock,
	.mark = s3_mark,
	.unlock = s3_unlock,
	.free = s3_free,
	.root_missing = s3_root_missing,
};

/* A region as AWS names them ("us-east-1", "eu-central-2"; "default" for some servers). */
static bool region_ok(const char *r)
{
	size_t n = strlen(r);
	if (n == 0 || n > 60)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((r[i] >= 'a' && r[i] <= 'z') || (r[i] >= 'A' && r[i] <= 'Z') || (r[i] >= '0' && r[i] <= '9') ||
		      r[i] == '-' || r[i] == '_'))
			return false;
	return true;
}

/* The tunables into @p tune (under settings_mu): each from the environment's BKR_S3_*, else the
 * configuration's s3.*, else its default; a bad variable is BKR_EINVAL naming it. */
static int tunables_pick(const char *location, int *tune)
{
	for (int i = 0; i < BKR_S3_NTUNE; i++) {
		const bkr_s3_tunable *t = &bkr_s3_tunables[i];
		const char *v = getenv(t->env);
		uint64_t u;
		tune[i] = settings.tune[i] > 0 ? settings.tune[i] : t->def;
		if (!v || !*v)
			continue;
		if (bkr_config_parse_uint(v, 10, (uint64_t)t->max, &u) < 0 || u < (uint64_t)t->min) {
			char safe[128];
			bkr_error_clear();
			return bkr_error_set(BKR_EINVAL, "%s: bad %s '%s': expected a whole number from %d to %d "
					     "(docs/s3.md \"Tuning\")", location, t->env,
					     bkr_text_escape(safe, sizeof(safe), v, strlen(v)), t->min, t->max);
		}
		tune[i] = (int)u;
	}
	return 0;
}

int bkr_store_s3_open(bkr_store **out, const char *location, unsigned flags)
{
	const char *ak, *sk, *token, *region, *region_from, *endpoint;
	char *def_endpoint = NULL;
	s3_store *s = NULL;
	int path_style, err = 0, tune[BKR_S3_NTUNE];

	*out = NULL;
	(void)flags; /* a bucket is neither created nor mounted: it exists or every request says so */
	if (!(s = calloc(1, sizeof(*s))))
		return bkr_error_oom();
	pthread_mutex_init(&s->mu, NULL);
	pthread_mutex_init(&s->wmu, NULL);
	pthread_cond_init(&s->slot_cond, NULL);
	s->base.ops = &s3_ops;
	if ((err = bkr_s3_url_parse(&s->url, location)) < 0) {
		pthread_cond_destroy(&s->slot_cond);
		pthread_mutex_destroy(&s->wmu);
		pthread_mutex_destroy(&s->mu);
		free(s);
		return err;
	}
	pthread_mutex_lock(&settings_mu);
	ak = pick("AWS_ACCESS_KEY_ID", settings.access_key_id);
	sk = pick("AWS_SECRET_ACCESS_KEY", settings.secret_access_key);
	token = pick("AWS_SESSION_TOKEN", settings.session_token);
	region = pick("AWS_REGION", NULL);
	region_from = "AWS_REGION";
	if (!region) {
		region = pick("AWS_DEFAULT_REGION", NULL);
		region_from = "AWS_DEFAULT_REGION";
	}
	if (!region) {
		region = settings.region && *settings.region ? settings.region : NULL;
		region_from = "s3.region in the configuration";
	}
	region = region ? region : "us-east-1";
	endpoint = pick("AWS_ENDPOINT_URL_S3", NULL);
	endpoint = endpoint ? endpoint : pick("AWS_ENDPOINT_URL", settings.endpoint_url);
	path_style = settings.path_style;
	s->lock_stale = settings.lock_stale_seconds > 0 ? settings.lock_stale_seconds : S3_LOCK_STALE_DEFAULT;
	s->pause_ms = settings.retry_pause_ms > 0 ? (unsigned)settings.retry_pause_ms : S3_BACKOFF_MS;
	if ((err = tunables_pick(location, tune)) < 0) {
		/* named */
	} else if (!ak || !sk) {
		err = bkr_error_set(BKR_EINVAL, "%s: no S3 credentials: %s is not set (nor s3.%s in the configuration)",
				    location, !ak ? "AWS_ACCESS_KEY_ID" : "AWS_SECRET_ACCESS_KEY",
				    !ak ? "access_key_id" : "secret_access_key");
	} else if (!endpoint && asprintf(&def_endpoint, "https://s3.%s.amazonaws.com", region) < 0) {
		def_endpoint = NULL;
		err = bkr_error_oom();
	} else if (!region_ok(region)) {
		char safe[256];
		err = bkr_error_set(BKR_EINVAL, "%s: bad region '%s' in %s (expected letters, digits and '-', such as "
				    "us-east-1)", location, bkr_text_escape(safe, sizeof(safe), region, strlen(region)),
				    region_from);
	} else {
		snprintf(s->sigv4, sizeof(s->sigv4), "aws:amz:%s:s3", region);
		snprintf(s->region, sizeof(s->region), "%s", region);
		if (!(s->endpoint = strdup(endpoint ? endpoint : def_endpoint)) || asprintf(&s->userpwd, "%s:%s", ak, sk) < 0 ||
		    (token && asprintf(&s->token_header, "x-amz-security-token: %s", token) < 0))
			err = bkr_error_oom();
	}
	pthread_mutex_unlock(&settings_mu);
	free(def_endpoint);
	if (err < 0)
		goto done;
	s->keep_slots = tune[BKR_S3_KEEP_PACKS];
	s->keep_bytes = (uint64_t)tune[BKR_S3_KEEP_MIB] << 20;
	s->keep_check_ns = (int64_t)tune[BKR_S3_KEEP_CHECK_MS] * 1000000;
	s->attempts = tune[BKR_S3_ATTEMPTS];
	s->connect_timeout = tune[BKR_S3_CONNECT_TIMEOUT];
	s->stall_timeout = tune[BKR_S3_STALL_TIMEOUT];
	if ((err = bkr_s3_endpoint_parse(&s->ep, s->endpoint)) < 0) {
		bkr_error_prefix("%s", location);
		goto done;
	}
	if (path_style < 0)
		path_style = bkr_s3_endpoint_path_style(&s->ep);
	char port[16] = "";
	if (s->ep.port)
		snprintf(port, sizeof(port), ":%u", s->ep.port);
	const char *scheme = s->ep.https ? "https" : "http";
	if ((path_style ? asprintf(&s->base_url, "%s://%s%s/%s", scheme, s->ep.host, port, s->url.bucket)
			: asprintf(&s->base_url, "%s://%s.%s%s", scheme, s->url.bucket, s->ep.host, port)) < 0) {
		s->base_url = NULL;
		err = bkr_error_oom();
		goto done;
	}
	if (asprintf(&s->base.location, "s3://%s%s%s", s->url.bucket, s->url.prefix[0] ? "/" : "", s->url.prefix) < 0) {
		s->base.location = NULL;
		err = bkr_error_oom();
		goto done;
	}
	/* the disk cache's key: the same bucket and prefix on another server is another repository */
	if (asprintf(&s->base.identity, "%s at %s://%s%s", s->base.location, scheme, s->ep.host, port) < 0) {
		s->base.identity = NULL;
		err = bkr_error_oom();
		goto done;
	}
	*out = &s->base;
	s = NULL;
done:
	if (s)
		s3_free(&s->base);
	return err;
}
