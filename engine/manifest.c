/** @file
 * Backup manifests and the checksummed-JSON convention (docs/format.md
 * "Checksummed JSON", "Manifests"), backup ids and UTC time strings.
 *
 * Integers in manifests are written as exact decimal text and must stay below
 * 2^53 so that cJSON's doubles read them back exactly; a manifest holding a
 * bigger, negative or fractional counter is corrupt.  Unknown keys are
 * ignored (a later version may add fields); a known key with the wrong type
 * or a missing required key is BKR_ECORRUPT naming the file and key path.
 */
#include "bkr/manifest.h"
#include "bkr/clock.h"
#include "bkr/error.h"
#include "bkr/hash.h"
#include "bkr/store.h"
#include "bkr_version.h"

#include <cjson/cJSON.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>


/** Largest integer a manifest may hold (exact in a double). */
#define MAX_EXACT ((uint64_t)1 << 53)

#define SHA_KEY "\"sha256\":\""
#define SHA_KEY_LEN (sizeof(SHA_KEY) - 1)

/* ---- backup types --------------------------------------------------------- */

static const char *const type_names[] = {
	[BKR_BACKUP_FULL] = "full",
	[BKR_BACKUP_INCREMENTAL] = "incremental",
	[BKR_BACKUP_DIFFERENTIAL] = "differential",
	[BKR_BACKUP_SNAPSHOT] = "snapshot",
	[BKR_BACKUP_RECOVERY] = "recovery",
};

const char *bkr_backup_type_name(bkr_backup_type t)
{
	if ((unsigned)t > BKR_BACKUP_RECOVERY)
		return "unknown";
	return type_names[t];
}

int bkr_backup_type_parse(const char *s, bkr_backup_type *out)
{
	for (unsigned i = 0; i <= BKR_BACKUP_RECOVERY; i++) {
		if (s && !strcmp(s, type_names[i])) {
			*out = (bkr_backup_type)i;
			return 0;
		}
	}
	return bkr_error_set(BKR_EINVAL,
			     "unknown backup type '%s' (expected full, incremental, differential, snapshot or recovery)",
			     s ? s : "(null)");
}

/* ---- time --------------------------------------------------------------- */

int64_t bkr_time_now_ns(void)
{
	struct timespec ts;
#if BKR_FAULT_INJECTION
	/* test builds only: BKR_TEST_NOW=<ISO 8601 time> fixes the wall clock, so a
	 * test can make backups "on" simulated days (docs/CONTRIBUTING.md) */
	const char *fake = getenv("BKR_TEST_NOW");
	int64_t t;
	if (fake && *fake) {
		if (bkr_time_parse(fake, &t) == 0)
			return t;
		/* a test that set it wrong would otherwise run on today's date */
		fprintf(stderr, "BKR_TEST_NOW: '%s' is not an ISO 8601 time (2026-03-01T12:00:00Z)\n", fake);
		_exit(2);
	}
#endif
	clock_gettime(CLOCK_REALTIME, &ts);
	return bkr_clock_ns(&ts);
}

static void split_ns(int64_t ns, time_t *sec, long *frac)
{
	struct timespec t = bkr_clock_timespec(ns);
	*sec = t.tv_sec;
	*frac = t.tv_nsec;
}

void bkr_time_format(char out[32], int64_t time_ns)
{
	time_t sec;
	long frac;
	struct tm tm;
	char buf[96];
	size_t n;

	split_ns(time_ns, &sec, &frac);
	if (!gmtime_r(&sec, &tm))
		memset(&tm, 0, sizeof(tm));
	/* int64 ns keep the year within 1677..2262, so 27 chars always fit */
	snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02d.%06ldZ", tm.tm_year + 1900,
		 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, frac / 1000);
	n = strnlen(buf, 31);
	memcpy(out, buf, n);
	out[n] = '\0';
}

/* Read exactly @p n digits at *p; -1 when they are not all digits. */
static int digits(const char **p, int n)
{
	int v = 0;
	for (int i = 0; i < n; i++) {
		char c = (*p)[i];
		if (c < '0' || c > '9')
			return -1;
		v = v * 10 + (c - '0');
	}
	*p += n;
	return v;
}

static int days_in_month(int year, int mon)
{
	static const int d[] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
	return mon == 2 && leap ? 29 : d[mon - 1];
}

int bkr_time_parse(const char *s, int64_t *time_ns)
{
	const char *p = s;
	int year, mon, day, hour = 0, min = 0, sec = 0;
	long frac = 0, offset = 0;
	struct tm tm;
	time_t t;

	if (!s)
		return bkr_error_set(BKR_EINVAL, "invalid time: (null)");
	if ((year = digits(&p, 4)) < 0 || *p++ != '-' || (mon = digits(&p, 2)) < 0 ||
	    *p++ != '-' || (day = digits(&p, 2)) < 0)
		goto bad;
	if (mon < 1 || mon > 12 || day < 1 || day > days_in_month(year, mon))
		goto bad;
	if (*p == '\0')
		goto convert;
	if (*p != 'T' && *p != 't' && *p != ' ')
		goto bad;
	p++;
	if ((hour = digits(&p, 2)) < 0 || *p++ != ':' || (min = digits(&p, 2)) < 0 ||
	    *p++ != ':' || (sec = digits(&p, 2)) < 0)
		goto bad;
	if (hour > 23 || min > 59 || sec > 59)
		goto bad;
	if (*p == '.' || *p == ',') {
		int n = 0;
		p++;
		while (*p >= '0' && *p <= '9') {
			if (++n > 9)
				goto bad;
			frac = frac * 10 + (*p++ - '0');
		}
		if (n == 0)
			goto bad;
		for (; n < 9; n++)
			frac *= 10;
	}
	if ((*p == 'Z' || *p == 'z') && p[1] == '\0') {
		p++;
	} else if ((*p == '+' || *p == '-') && p[1] && p[2] && p[3] == ':') {
		int sign = *p == '-' ? -1 : 1, oh, om;
		p++;
		if ((oh = digits(&p, 2)) < 0 || *p++ != ':' || (om = digits(&p, 2)) < 0 ||
		    *p != '\0' || oh > 23 || om > 59)
			goto bad;
		offset = sign * (oh * 3600L + om * 60L);
	} else {
		goto bad;
	}
convert:
	memset(&tm, 0, sizeof(tm));
	tm.tm_year = year - 1900;
	tm.tm_mon = mon - 1;
	tm.tm_mday = day;
	tm.tm_hour = hour;
	tm.tm_min = min;
	tm.tm_sec = sec;
	t = timegm(&tm);
	t -= offset;
	/* int64 nanoseconds cover 1677-09-21T00:12:43.145224192Z .. 2262-04-11T23:47:16.854775807Z:
	 * every time in between is accepted, to the nanosecond (2262-04-11T23:47:16Z too) */
	int64_t whole = (int64_t)t, part = frac, ns;
	if (whole < 0 && part > 0) { /* 1677-09-21T00:12:43.5Z is in range, its whole second is not */
		whole++;
		part -= 1000000000;
	}
	if (__builtin_mul_overflow(whole, 1000000000LL, &ns) || __builtin_add_overflow(ns, part, &ns))
		return bkr_error_set(BKR_EINVAL, "time out of range: '%s' (times go from 1677-09-21T00:12:44Z to "
				     "2262-04-11T23:47:16Z)", s);
	*time_ns = ns;
	return 0;
bad:
	return bkr_error_set(BKR_EINVAL,
			     "invalid time '%s' (expected YYYY-MM-DD or YYYY-MM-DDTHH:MM:SS[.fraction]Z)", s);
}

int bkr_backup_id_new(char *out, size_t cap, bkr_backup_type type, int64_t time_ns)
{
	uint8_t rnd[4];
	char hex[9];
	time_t sec;
	long frac;
	struct tm tm;
	int err, n;

	if ((unsigned)type > BKR_BACKUP_RECOVERY)
		return bkr_error_set(BKR_EINVAL, "invalid backup type %d", (int)type);
	if ((err = bkr_random_bytes(rnd, sizeof(rnd))) < 0)
		return err;
	bkr_hex_encode(rnd, sizeof(rnd), hex);
	split_ns(time_ns, &sec, &frac);
	if (!gmtime_r(&sec, &tm))
		return bkr_error_set(BKR_EINVAL, "time out of range for a backup id");
	n = snprintf(out, cap, "backup_%04d%02d%02d_%02d%02d%02d_%s_%s", tm.tm_year + 1900,
		     tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
		     type_names[type], hex);
	if (n < 0 || (size_t)n >= cap)
		return bkr_error_set(BKR_EINVAL, "buffer too small for a backup id");
	return 0;
}

/* ---- checksummed JSON ---------------------------------------------------- */

int bkr_json_seal(const char *obj, char **out, size_t *out_len)
{
	size_t len, n;
	char *buf = NULL, hex[BKR_ID_HEX];
	bkr_id id;
	int err = 0;

	*out = NULL;
	if (out_len)
		*out_len = 0;
	len = obj ? strlen(obj) : 0;
	if (len < 2 || obj[0] != '{' || obj[len - 1] != '}') {
		err = bkr_error_set(BKR_EINVAL, "cannot seal: not a compact JSON object");
		goto done;
	}
	/* obj without '}', [','], "sha256":"<64>"}, NUL */
	n = len - 1 + 1 + SHA_KEY_LEN + 64 + 2;
	if (!(buf = malloc(n + 1))) {
		err = bkr_error_oom();
		goto done;
	}
	memcpy(buf, obj, len - 1);
	n = len - 1;
	if (len > 2)
		buf[n++] = ',';
	memcpy(buf + n, SHA_KEY, SHA_KEY_LEN);
	n += SHA_KEY_LEN;
	memset(buf + n, '0', 64);
	n += 64;
	buf[n++] = '"';
	buf[n++] = '}';
	buf[n] = '\0';
	bkr_sha256(buf, n, &id);
	bkr_id_to_hex(&id, hex);
	memcpy(buf + n - 66, hex, 64);
	*out = buf;
	buf = NULL;
	if (out_len)
		*out_len = n;
done:
	free(buf);
	return err;
}

int bkr_json_put(bkr_store *s, const char *name, const cJSON *o)
{
	char *text = NULL, *sealed = NULL;
	size_t len;
	int err;

	if (!(text = cJSON_PrintUnformatted(o)))
		return bkr_error_oom();
	if ((err = bkr_json_seal(text, &sealed, &len)) == 0)
		err = bkr_store_put(s, name, sealed, len);
	free(text);
	free(sealed);
	return err;
}

static bool is_hex(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

int bkr_json_verify(const char *text, size_t len, const char *what)
{
	const char *key = NULL, *hexp;
	char *copy = NULL, hex[65];
	size_t end = len, pos;
	bkr_id want, got;
	int err = 0;

	/* trailing whitespace (a newline added by an editor) is tolerated */
	while (end > 0 && (text[end - 1] == '\n' || text[end - 1] == ' ' ||
			   text[end - 1] == '\r' || text[end - 1] == '\t'))
		end--;
	if (end < 2 || text[0] != '{') {
		err = bkr_error_set(BKR_ECORRUPT, "%s: not a JSON object", what);
		goto done;
	}
	if (text[end - 1] != '}') {
		err = bkr_error_set(BKR_ECORRUPT, "%s: truncated (does not end with '}')", what);
		goto done;
	}
	for (pos = 0; pos + SHA_KEY_LEN <= end; pos++) {
		if (!memcmp(text + pos, SHA_KEY, SHA_KEY_LEN))
			key = text + pos;
	}
	if (!key) {
		err = bkr_error_set(BKR_ECORRUPT, "%s: no \"sha256\" checksum member", what);
		goto done;
	}
	if (key == text || (key[-1] != ',' && key[-1] != '{')) {
		err = bkr_error_set(BKR_ECORRUPT, "%s: \"sha256\" is not a member of the top-level object", what);
		goto done;
	}
	hexp = key + SHA_KEY_LEN;
	for (pos = 0; pos < 64; pos++) {
		if (hexp + pos >= text + end || !is_hex(hexp[pos])) {
			err = bkr_error_set(BKR_ECORRUPT, "%s: \"sha256\" is not 64 hex characters", what);
			goto done;
		}
	}
	if (hexp + 64 + 2 != text + end || hexp[64] != '"') {
		err = bkr_error_set(BKR_ECORRUPT, "%s: \"sha256\" is not the last member", what);
		goto done;
	}
	memcpy(hex, hexp, 64);
	hex[64] = '\0';
	if (bkr_hex_decode(want.b, BKR_ID_SIZE, hex) < 0) {
		err = bkr_error_set(BKR_ECORRUPT, "%s: \"sha256\" is not hex", what);
		goto done;
	}
	if (!(copy = malloc(end))) {
		err = bkr_error_oom();
		goto done;
	}
	memcpy(copy, text, end);
	memset(copy + (hexp - text), '0', 64);
	bkr_sha256(copy, end, &got);
	if (bkr_id_cmp(&want, &got) != 0) {
		err = bkr_error_set(BKR_ECORRUPT, "%s: checksum mismatch (file modified or damaged)", what);
		goto done;
	}
done:
	free(copy);
	return err;
}

/* ---- manifest memory ---------------------------------------------------- */

bkr_manifest *bkr_manifest_new(void)
{
	return calloc(1, sizeof(bkr_manifest));
}

static void free_strv(char **v, size_t n)
{
	if (!v)
		return;
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

void bkr_manifest_free(bkr_manifest *m)
{
	if (!m)
		return;
	free(m->backup_id);
	free(m->timestamp);
	free(m->parent);
	free_strv(m->tags, m->ntags);
	for (size_t i = 0; i < m->nsources; i++) {
		free(m->sources[i].source);
		free(m->sources[i].path);
		free(m->sources[i].compression);
	}
	free(m->sources);
	free(m->hostname);
	free(m->workspace_root);
	free(m->integrity_check);
	free(m->restore_test);
	free(m->pinned_until);
	free_strv(m->warnings, m->nwarnings);
	free(m);
}

/* ---- encoding ------------------------------------------------------------ */

/* Small helpers that remember the first failure in *err. */
struct enc {
	int err;
};

static cJSON *add(struct enc *e, cJSON *obj, const char *key, cJSON *item)
{
	if (!item) {
		if (!e->err)
			e->err = bkr_error_oom();
		return NULL;
	}
	if (!cJSON_AddItemToObject(obj, key, item)) {
		cJSON_Delete(item);
		if (!e->err)
			e->err = bkr_error_oom();
		return NULL;
	}
	return item;
}

static void add_str(struct enc *e, cJSON *obj, const char *key, const char *s)
{
	add(e, obj, key, s ? cJSON_CreateString(s) : cJSON_CreateNull());
}

static void add_u64(struct enc *e, cJSON *obj, const char *key, uint64_t v)
{
	char buf[32];
	if (v >= MAX_EXACT) {
		if (!e->err)
			e->err = bkr_error_set(BKR_EINVAL, "manifest key '%s': %" PRIu64
					       " is too large (limit 2^53-1)", key, v);
		return;
	}
	snprintf(buf, sizeof(buf), "%" PRIu64, v);
	add(e, obj, key, cJSON_CreateRaw(buf));
}

/* Doubles as "%.17g" (exact round trip; cJSON would print 15 digits). */
static void add_double(struct enc *e, cJSON *obj, const char *key, double v)
{
	char buf[40];
	if (!isfinite(v))
		v = 0;
	snprintf(buf, sizeof(buf), "%.17g", v);
	add(e, obj, key, cJSON_CreateRaw(buf));
}

static void add_id(struct enc *e, cJSON *obj, const char *key, const bkr_id *id)
{
	char hex[BKR_ID_HEX];
	bkr_id_to_hex(id, hex);
	add(e, obj, key, cJSON_CreateString(hex));
}

static void add_strv(struct enc *e, cJSON *obj, const char *key, char **v, size_t n)
{
	cJSON *arr = add(e, obj, key, cJSON_CreateArray());
	for (size_t i = 0; arr && i < n; i++) {
		cJSON *s = cJSON_CreateString(v[i] ? v[i] : "");
		if (!s || !cJSON_AddItemToArray(arr, s)) {
			cJSON_Delete(s);
			if (!e->err)
				e->err = bkr_error_oom();
			return;
		}
	}
}

static cJSON *build(const bkr_manifest *m, int *errp)
{
	struct enc e = { 0 };
	cJSON *root = cJSON_CreateObject(), *arr, *o;
	char ts[32];

	if (!root) {
		*errp = bkr_error_oom();
		return NULL;
	}
	if (!m->backup_id || !*m->backup_id) {
		e.err = bkr_error_set(BKR_EINVAL, "manifest has no backup_id");
		goto done;
	}
	if ((unsigned)m->type > BKR_BACKUP_RECOVERY) {
		e.err = bkr_error_set(BKR_EINVAL, "manifest %s: invalid backup type %d",
				      m->backup_id, (int)m->type);
		goto done;
	}
	if (!m->timestamp)
		bkr_time_format(ts, m->time_ns);
	add_str(&e, root, "backup_id", m->backup_id);
	add_str(&e, root, "timestamp", m->timestamp ? m->timestamp : ts);
	add_str(&e, root, "backup_type", bkr_backup_type_name(m->type));
	add_str(&e, root, "parent", m->parent);
	add_id(&e, root, "tree", &m->tree);
	add_strv(&e, root, "tags", m->tags, m->ntags);
	if ((arr = add(&e, root, "sources", cJSON_CreateArray()))) {
		for (size_t i = 0; i < m->nsources && !e.err; i++) {
			const bkr_manifest_source *s = &m->sources[i];
			if (!(o = cJSON_CreateObject()) || !cJSON_AddItemToArray(arr, o)) {
				cJSON_Delete(o);
				e.err = bkr_error_oom();
				break;
			}
			add_str(&e, o, "source", s->source ? s->source : "");
			add_str(&e, o, "path", s->path ? s->path : "");
			add_u64(&e, o, "files_backed_up", s->files_backed_up);
			add_u64(&e, o, "total_size_bytes", s->total_size_bytes);
			add_id(&e, o, "checksum", &s->tree);
			add_str(&e, o, "compression", s->compression ? s->compression : "zlib");
		}
	}
	if ((o = add(&e, root, "metadata", cJSON_CreateObject()))) {
		add_str(&e, o, "hostname", m->hostname ? m->hostname : "");
		add_str(&e, o, "workspace_root", m->workspace_root ? m->workspace_root : "");
		add_double(&e, o, "backup_duration_seconds", m->duration_seconds);
		add_str(&e, o, "bkr_version", BKR_VERSION);
	}
	if ((o = add(&e, root, "validation", cJSON_CreateObject()))) {
		add_str(&e, o, "integrity_check", m->integrity_check ? m->integrity_check : "skipped");
		add_str(&e, o, "restore_test", m->restore_test ? m->restore_test : "skipped");
	}
	if ((o = add(&e, root, "stats", cJSON_CreateObject()))) {
		add_u64(&e, o, "files", m->stats.files);
		add_u64(&e, o, "dirs", m->stats.dirs);
		add_u64(&e, o, "bytes", m->stats.bytes);
		add_u64(&e, o, "new_bytes", m->stats.new_bytes);
		add_u64(&e, o, "reused_bytes", m->stats.reused_bytes);
		add_u64(&e, o, "stored_bytes", m->stats.stored_bytes);
		add_u64(&e, o, "new_blobs", m->stats.new_blobs);
		add_u64(&e, o, "reused_blobs", m->stats.reused_blobs);
		if (m->stats.security_xattrs != BKR_STATS_UNKNOWN)
			add_u64(&e, o, "security_xattrs", m->stats.security_xattrs);
		if (m->stats.acl_xattrs != BKR_STATS_UNKNOWN)
			add_u64(&e, o, "acl_xattrs", m->stats.acl_xattrs);
	}
	add_str(&e, root, "pinned_until", m->pinned_until);
	add_strv(&e, root, "warnings", m->warnings, m->nwarnings);
	if (!bkr_id_is_zero(&m->report))
		add_id(&e, root, "report", &m->report);
done:
	if (e.err) {
		cJSON_Delete(root);
		*errp = e.err;
		return NULL;
	}
	*errp = 0;
	return root;
}

int bkr_manifest_encode(const bkr_manifest *m, char **json, size_t *len)
{
	cJSON *root = NULL;
	char *text = NULL;
	int err;

	*json = NULL;
	if (len)
		*len = 0;
	if (!(root = build(m, &err)))
		goto done;
	if (!(text = cJSON_PrintUnformatted(root))) {
		err = bkr_error_oom();
		goto done;
	}
	err = bkr_json_seal(text, json, len);
done:
	cJSON_free(text);
	cJSON_Delete(root);
	return err;
}

char *bkr_manifest_to_json(const bkr_manifest *m, bool pretty)
{
	cJSON *root;
	char *text, *out = NULL;
	int err;

	if (!(root = build(m, &err)))
		return NULL;
	text = pretty ? cJSON_Print(root) : cJSON_PrintUnformatted(root);
	cJSON_Delete(root);
	if (text) {
		out = strdup(text); /* plain malloc for the caller's free() */
		cJSON_free(text);
	}
	return out;
}

/* ---- parsing ------------------------------------------------------------ */

struct dec {
	const char *what;
	int err;
};

static int bad_key(struct dec *d, const char *path, const char *key, const char *msg)
{
	if (!d->err)
		d->err = bkr_error_set(BKR_ECORRUPT, "%s: key '%s%s%s': %s", d->what,
				       path ? path : "", path && *path ? "." : "", key, msg);
	return d->err;
}

/* The member @p key of @p obj, or NULL (and an error when @p required). */
static const cJSON *member(struct dec *d, const cJSON *obj, const char *path, const char *key,
			   bool required)
{
	const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);
	if (!it && required)
		bad_key(d, path, key, "missing");
	return it;
}

static char *get_str(struct dec *d, const cJSON *obj, const char *path, const char *key,
		     bool required, bool nullable)
{
	const cJSON *it = member(d, obj, path, key, required);
	char *s;
	if (!it || (nullable && cJSON_IsNull(it)))
		return NULL;
	if (!cJSON_IsString(it) || !it->valuestring) {
		bad_key(d, path, key, nullable ? "expected a string or null" : "expected a string");
		return NULL;
	}
	if (!(s = strdup(it->valuestring)) && !d->err)
		d->err = bkr_error_oom();
	return s;
}

static void get_u64(struct dec *d, const cJSON *obj, const char *path, const char *key,
		    uint64_t *out)
{
	const cJSON *it = member(d, obj, path, key, true);
	double v;
	if (!it)
		return;
	if (!cJSON_IsNumber(it)) {
		bad_key(d, path, key, "expected a number");
		return;
	}
	v = it->valuedouble;
	if (!(v >= 0) || v >= (double)MAX_EXACT || v != (double)(uint64_t)v) {
		bad_key(d, path, key, "expected an integer between 0 and 2^53-1");
		return;
	}
	*out = (uint64_t)v;
}

static void get_id(struct dec *d, const cJSON *obj, const char *path, const char *key,
		   bool required, bkr_id *out)
{
	const cJSON *it = member(d, obj, path, key, required);
	if (!it)
		return;
	if (!cJSON_IsString(it) || !it->valuestring) {
		bad_key(d, path, key, "expected a string");
		return;
	}
	if (strlen(it->valuestring) != 64 || bkr_hex_decode(out->b, BKR_ID_SIZE, it->valuestring) < 0)
		bad_key(d, path, key, "expected a 64-character hex id");
}

static char **get_strv(struct dec *d, const cJSON *obj, const char *path, const char *key,
		       size_t *n)
{
	const cJSON *it = member(d, obj, path, key, false), *el;
	char **v = NULL;
	size_t i = 0, cnt;

	*n = 0;
	if (!it || cJSON_IsNull(it))
		return NULL;
	if (!cJSON_IsArray(it)) {
		bad_key(d, path, key, "expected an array of strings");
		return NULL;
	}
	cnt = (size_t)cJSON_GetArraySize(it);
	if (!(v = calloc(cnt + 1, sizeof(char *)))) {
		if (!d->err)
			d->err = bkr_error_oom();
		return NULL;
	}
	cJSON_ArrayForEach(el, it) {
		if (!cJSON_IsString(el) || !el->valuestring) {
			bad_key(d, path, key, "expected an array of strings");
			break;
		}
		if (!(v[i] = strdup(el->valuestring))) {
			if (!d->err)
				d->err = bkr_error_oom();
			break;
		}
		i++;
	}
	*n = i;
	return v;
}

static const cJSON *get_obj(struct dec *d, const cJSON *obj, const char *key)
{
	const cJSON *it = member(d, obj, NULL, key, true);
	if (it && !cJSON_IsObject(it)) {
		bad_key(d, NULL, key, "expected an object");
		return NULL;
	}
	return it;
}

/* An id used as a file or directory name: [A-Za-z0-9_.-], not starting with '.'. */
static bool id_safe(const char *s)
{
	if (!s || !*s || *s == '.' || strlen(s) > 200)
		return false;
	for (; *s; s++) {
		char c = *s;
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '_' || c == '-' || c == '.'))
			return false;
	}
	return true;
}

bool bkr_manifest_name_safe(const char *s)
{
	return s && *s && strcmp(s, ".") && strcmp(s, "..") && !strchr(s, '/');
}

struct named {
	const char *name;
	size_t pos;
};

static int cmp_named(const void *a, const void *b)
{
	const struct named *x = a, *y = b;
	int c = strcmp(x->name, y->name);
	if (c)
		return c;
	return x->pos < y->pos ? -1 : x->pos > y->pos;
}

int bkr_json_find_repeat(size_t *at, const char *const *names, size_t n)
{
	struct named *v;
	size_t best = n;
	if (n < 2)
		return 0;
	if (!(v = malloc(n * sizeof(*v))))
		return bkr_error_oom();
	for (size_t i = 0; i < n; i++)
		v[i] = (struct named){ names[i], i };
	qsort(v, n, sizeof(*v), cmp_named);
	/* in each run of equal names, the second is the first repeat of that name */
	for (size_t i = 1; i < n; i++)
		if (!strcmp(v[i].name, v[i - 1].name) && (i == 1 || strcmp(v[i - 1].name, v[i - 2].name)) &&
		    v[i].pos < best)
			best = v[i].pos;
	free(v);
	if (best == n)
		return 0;
	*at = best;
	return 1;
}

/* Reject duplicate member names anywhere (they would make readers disagree):
 * 1 and *dup set to the name, 0 when there are none, or BKR_ENOMEM. */
static int find_duplicate(const char **dup, const cJSON *item)
{
	const cJSON *a;
	const char **names = NULL;
	size_t n = 0, at;
	int r = 0;

	if (cJSON_IsObject(item) && item->child) {
		for (a = item->child; a; a = a->next)
			n++;
		if (!(names = malloc(n * sizeof(*names))))
			return bkr_error_oom();
		n = 0;
		for (a = item->child; a; a = a->next)
			names[n++] = a->string ? a->string : "";
		if ((r = bkr_json_find_repeat(&at, names, n)) > 0)
			*dup = names[at];
		free(names);
		if (r)
			return r;
	}
	for (a = item ? item->child : NULL; a; a = a->next)
		if ((cJSON_IsObject(a) || cJSON_IsArray(a)) && (r = find_duplicate(dup, a)))
			return r;
	return 0;
}

static void parse_sources(struct dec *d, const cJSON *arr, bkr_manifest *m)
{
	const cJSON *el;
	size_t cnt, i = 0;
	char path[64];

	if (!cJSON_IsArray(arr)) {
		bad_key(d, NULL, "sources", "expected an array of objects");
		return;
	}
	cnt = (size_t)cJSON_GetArraySize(arr);
	if (cnt && !(m->sources = calloc(cnt, sizeof(*m->sources)))) {
		d->err = bkr_error_oom();
		return;
	}
	cJSON_ArrayForEach(el, arr) {
		bkr_manifest_source *s = &m->sources[i];
		snprintf(path, sizeof(path), "sources[%zu]", i);
		if (!cJSON_IsObject(el)) {
			bad_key(d, NULL, path, "expected an object");
			return;
		}
		m->nsources = ++i;
		s->source = get_str(d, el, path, "source", true, false);
		s->path = get_str(d, el, path, "path", true, false);
		get_u64(d, el, path, "files_backed_up", &s->files_backed_up);
		get_u64(d, el, path, "total_size_bytes", &s->total_size_bytes);
		get_id(d, el, path, "checksum", true, &s->tree);
		s->compression = get_str(d, el, path, "compression", true, false);
		if (d->err)
			return;
		if (!bkr_manifest_name_safe(s->source)) {
			bad_key(d, path, "source", "not a valid directory name");
			return;
		}
	}
	if (cnt > 1) {
		const char **names = malloc(cnt * sizeof(*names));
		size_t at;
		int r;
		if (!names) {
			d->err = bkr_error_oom();
			return;
		}
		for (i = 0; i < cnt; i++)
			names[i] = m->sources[i].source;
		r = bkr_json_find_repeat(&at, names, cnt);
		free(names);
		if (r < 0) {
			d->err = r;
		} else if (r > 0) {
			snprintf(path, sizeof(path), "sources[%zu]", at);
			bad_key(d, path, "source", "repeats an earlier source name");
		}
	}
}

int bkr_manifest_parse(bkr_manifest **out, const char *json, size_t len, const char *what)
{
	struct dec d = { what ? what : "manifest", 0 };
	cJSON *root = NULL;
	const cJSON *o;
	bkr_manifest *m = NULL;
	const char *dup = NULL;
	char *type = NULL;

	*out = NULL;
	if ((d.err = bkr_json_verify(json, len, d.what)) < 0)
		goto done;
	if (!(root = cJSON_ParseWithLength(json, len)) || !cJSON_IsObject(root)) {
		d.err = bkr_error_set(BKR_ECORRUPT, "%s: not a valid JSON object", d.what);
		goto done;
	}
	if ((d.err = find_duplicate(&dup, root)) != 0) {
		if (d.err > 0)
			d.err = bkr_error_set(BKR_ECORRUPT, "%s: key '%s' appears twice", d.what, dup);
		goto done;
	}
	if (!(m = bkr_manifest_new())) {
		d.err = bkr_error_oom();
		goto done;
	}
	m->backup_id = get_str(&d, root, NULL, "backup_id", true, false);
	m->timestamp = get_str(&d, root, NULL, "timestamp", true, false);
	type = get_str(&d, root, NULL, "backup_type", true, false);
	m->parent = get_str(&d, root, NULL, "parent", false, true);
	get_id(&d, root, NULL, "tree", true, &m->tree);
	m->tags = get_strv(&d, root, NULL, "tags", &m->ntags);
	if ((o = member(&d, root, NULL, "sources", true)))
		parse_sources(&d, o, m);
	if ((o = get_obj(&d, root, "metadata"))) {
		const cJSON *dur;
		m->hostname = get_str(&d, o, "metadata", "hostname", true, false);
		m->workspace_root = get_str(&d, o, "metadata", "workspace_root", true, false);
		if ((dur = member(&d, o, "metadata", "backup_duration_seconds", true))) {
			if (!cJSON_IsNumber(dur))
				bad_key(&d, "metadata", "backup_duration_seconds", "expected a number");
			else
				m->duration_seconds = dur->valuedouble;
		}
		if ((dur = member(&d, o, "metadata", "bkr_version", false)) && !cJSON_IsString(dur))
			bad_key(&d, "metadata", "bkr_version", "expected a string");
	}
	if ((o = get_obj(&d, root, "validation"))) {
		m->integrity_check = get_str(&d, o, "validation", "integrity_check", true, false);
		m->restore_test = get_str(&d, o, "validation", "restore_test", true, false);
	}
	m->stats.security_xattrs = BKR_STATS_UNKNOWN; /* manifests before the fields */
	m->stats.acl_xattrs = BKR_STATS_UNKNOWN;
	if ((o = get_obj(&d, root, "stats"))) {
		get_u64(&d, o, "stats", "files", &m->stats.files);
		get_u64(&d, o, "stats", "dirs", &m->stats.dirs);
		get_u64(&d, o, "stats", "bytes", &m->stats.bytes);
		get_u64(&d, o, "stats", "new_bytes", &m->stats.new_bytes);
		get_u64(&d, o, "stats", "reused_bytes", &m->stats.reused_bytes);
		get_u64(&d, o, "stats", "stored_bytes", &m->stats.stored_bytes);
		get_u64(&d, o, "stats", "new_blobs", &m->stats.new_blobs);
		get_u64(&d, o, "stats", "reused_blobs", &m->stats.reused_blobs);
		if (member(&d, o, "stats", "security_xattrs", false))
			get_u64(&d, o, "stats", "security_xattrs", &m->stats.security_xattrs);
		if (member(&d, o, "stats", "acl_xattrs", false))
			get_u64(&d, o, "stats", "acl_xattrs", &m->stats.acl_xattrs);
	}
	m->pinned_until = get_str(&d, root, NULL, "pinned_until", false, true);
	m->warnings = get_strv(&d, root, NULL, "warnings", &m->nwarnings);
	get_id(&d, root, NULL, "report", false, &m->report);
	if (d.err)
		goto done;

	/* values */
	if (!id_safe(m->backup_id)) {
		bad_key(&d, NULL, "backup_id", "not a valid backup id");
		goto done;
	}
	if (m->parent && !id_safe(m->parent)) {
		bad_key(&d, NULL, "parent", "not a valid backup id");
		goto done;
	}
	if (bkr_backup_type_parse(type, &m->type) < 0) {
		bad_key(&d, NULL, "backup_type", "unknown backup type");
		goto done;
	}
	if (bkr_time_parse(m->timestamp, &m->time_ns) < 0) {
		bad_key(&d, NULL, "timestamp", "expected an ISO-8601 UTC time");
		goto done;
	}
	if (m->pinned_until && *m->pinned_until) {
		int64_t t;
		if (bkr_time_parse(m->pinned_until, &t) < 0) {
			bad_key(&d, NULL, "pinned_until", "expected null, \"\" or an ISO-8601 time");
			goto done;
		}
	}
	*out = m;
	m = NULL;
done:
	free(type);
	bkr_manifest_free(m);
	cJSON_Delete(root);
	return d.err;
}
