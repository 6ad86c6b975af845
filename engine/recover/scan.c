/** @file
 * Scan: find missing, required-but-absent, invalid, truncated and (deep)
 * silently corrupted files in the live workspace.  The workspace is walked
 * with directory fds and O_NOFOLLOW, never following a symlink; only files
 * matched by the protected patterns are considered; the newest backup's
 * files are indexed once and compared by path.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "bkr/digest.h"
#include "bkr/clock.h"
#include "bkr/error.h"
#include "bkr/hash.h"
#include "recover_i.h"

static const char *const damage_names[] = { "missing", "required", "invalid", "truncated", "silent" };

const char *bkr_damage_name(bkr_damage_kind k)
{
	return (unsigned)k < sizeof(damage_names) / sizeof(*damage_names) ? damage_names[k] : "unknown";
}

static void damage_clear(bkr_damage *d)
{
	free(d->path);
	free(d->reason);
	memset(d, 0, sizeof(*d));
}

void bkr_scan_result_free(bkr_scan_result *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->n; i++)
		damage_clear(&r->items[i]);
	free(r->items);
	free(r->backup_id);
	for (size_t i = 0; i < r->nskipped; i++) {
		free(r->skipped[i].path);
		free(r->skipped[i].reason);
	}
	free(r->skipped);
	memset(r, 0, sizeof(*r));
}

static int set_damage(bkr_damage *d, const char *rel, bkr_damage_kind kind, int prio, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));
static int set_damage(bkr_damage *d, const char *rel, bkr_damage_kind kind, int prio, const char *fmt, ...)
{
	va_list ap;
	int n;

	d->kind = kind;
	d->priority = prio;
	d->path = strdup(rel);
	va_start(ap, fmt);
	n = vasprintf(&d->reason, fmt, ap);
	va_end(ap);
	if (n < 0)
		d->reason = NULL;
	if (!d->path || !d->reason) {
		damage_clear(d);
		return bkr_error_oom();
	}
	return 1;
}

const char *bkr_rec_type_name(mode_t mode)
{
	return S_ISREG(mode)    ? "a regular file"
	       : S_ISDIR(mode)  ? "a directory"
	       : S_ISLNK(mode)  ? "a symlink"
	       : S_ISFIFO(mode) ? "a FIFO"
	       : S_ISSOCK(mode) ? "a socket"
				: "a device";
}

static bool is_required(const bkr_recover *rc, const char *rel)
{
	for (size_t i = 0; i < rc->nrequired; i++)
		if (strcmp(rc->required[i], rel) == 0)
			return true;
	return false;
}

int bkr_rec_check_one(bkr_recover *rc, const bkr_rec_bindex *bi, const char *rel, bool deep, bkr_damage *out)
{
	int root = -1, dir = -1, fd = -1, err = 0;
	const char *base;
	struct stat st, vst;
	bkr_rec_bfile *bf = bkr_rec_bindex_find(bi, rel);
	int prio = bkr_rec_priority(rc, rel);
	bkr_digest *dg = NULL; /* --deep: the digest of the copy a validator reads */
	bool hashed = false;   /* dg holds the digest of a valid copy whose stat is vst */
	bkr_id h;

	memset(out, 0, sizeof(*out));
	if ((err = bkr_rec_root_open(rc, &root)) < 0)
		goto done;
	err = bkr_rec_open_parent(root, rel, false, &dir, &base, rel);
	if (err == BKR_EINVAL) {
		/* a parent is a symlink or a file: the file cannot be reached safely */
		err = set_damage(out, rel, is_required(rc, rel) ? BKR_DAMAGE_REQUIRED : BKR_DAMAGE_MISSING, prio,
				 "unreachable: %s", bkr_error_message());
		goto done;
	}
	if (err == 0 && fstatat(dir, base, &st, AT_SYMLINK_NOFOLLOW) < 0)
		err = bkr_error_set_errno(errno, "%s", rel);
	if (err == BKR_ENOTFOUND) {
		if (is_required(rc, rel))
			err = set_damage(out, rel, BKR_DAMAGE_REQUIRED, prio, "required file does not exist%s",
					 bf ? " (it is in the newest backup)" : "");
		else if (bf)
			err = set_damage(out, rel, BKR_DAMAGE_MISSING, prio,
					 "missing (in backup %s, %llu bytes)", bf->backup_id,
					 (unsigned long long)bf->size);
		else
			err = set_damage(out, rel, BKR_DAMAGE_MISSING, prio, "does not exist");
		goto done;
	}
	if (err < 0)
		goto done;
	if (!S_ISREG(st.st_mode)) {
		/* something else where the newest backup has a regular file (or a
		 * symlink), or where a file is required: the file is not there.  A
		 * symlink where the backup has one, or where a required file has no
		 * copy yet, is what is expected; anything else is not ours to judge */
		bool want_link = bf && bf->link, required = is_required(rc, rel);
		if ((bf || required) && !(S_ISLNK(st.st_mode) && (want_link || !bf)))
			err = set_damage(out, rel, required ? BKR_DAMAGE_REQUIRED : BKR_DAMAGE_MISSING, prio,
					 "is %s, expected %s%s%s%s", bkr_rec_type_name(st.st_mode),
					 want_link ? "a symlink" : "a regular file", bf ? " (as in backup " : "",
					 bf ? bf->backup_id : "", bf ? ")" : "");
		goto done;
	}
	if (bf && bf->link)
		bf = NULL; /* a regular file where the backup had a symlink: nothing to compare */
	if (st.st_size == 0 && bf && bf->size > 0) {
		err = set_damage(out, rel, BKR_DAMAGE_TRUNCATED, prio,
				 "truncated to 0 bytes (the copy in backup %s has %llu bytes)", bf->backup_id,
				 (unsigned long long)bf->size);
		if (err == 1)
			bkr_rec_scanned_set(out, &st);
		goto done;
	}
	if (bkr_rec_has_validator(rc, rel)) {
		uint8_t *data = NULL;
		size_t len = 0;
		bool mapped = false;
		char *why = NULL;
		struct stat rst;
		/* --deep hashes the copy while it is read, so the file is read once */
		if (deep && bf && (uint64_t)st.st_size == bf->size && bkr_clock_ns(&st.st_mtim) == bf->mtime_ns &&
		    !(dg = bkr_digest_new(bf->sparse_digest ? BKR_DIGEST_SPARSE : BKR_DIGEST_PLAIN))) {
			err = bkr_error_oom();
			goto done;
		}
		/* a file rewritten while it is read is read again; one that keeps changing is reported */
		for (int tries = 0;; tries++) {
			if (dg)
				bkr_digest_reset(dg, bf->sparse_digest ? BKR_DIGEST_SPARSE : BKR_DIGEST_PLAIN);
			err = bkr_rec_read_at_digest(rc, dir, base, rel, &data, &len, &mapped, &rst, dg);
			if (err != BKR_REC_CHANGED || tries == 2)
				break;
		}
		if (err == BKR_REC_CHANGED) {
			err = set_damage(out, rel, BKR_DAMAGE_INVALID, prio, "could not be checked: %s (3 tries)",
					 bkr_error_message());
			if (err == 1)
				bkr_rec_scanned_set(out, &rst);
			goto done;
		}
		if (err < 0)
			goto done;
		err = bkr_rec_validate(rc, rel, data, len, false, &why);
		bkr_rec_data_free(data, len, mapped);
		if (err == 1 && dg) {
			/* unchanged while it was read (same size, mtime and ctime before
			 * and after): the digest of these bytes is the file's */
			bkr_digest_final(dg, &h);
			vst = rst;
			hashed = true;
		}
		if (err == BKR_ETIMEOUT) {
			/* a validator that timed out: reported, but apply checks it again and
			 * overwrites nothing unless the check says invalid */
			if ((err = set_damage(out, rel, BKR_DAMAGE_INVALID, prio, "could not be checked: %s",
					      bkr_error_message())) == 1)
				bkr_rec_scanned_set(out, &rst);
		}
		if (err == 0 && (err = set_damage(out, rel, BKR_DAMAGE_INVALID, prio, "%s", why)) == 1)
			bkr_rec_scanned_set(out, &rst); /* the file as validated */
		free(why);
		if (err != 1 && err < 0)
			goto done;
		if (err == 1 && out->path)
			goto done;
		err = 0;
	}
	if (deep && bf && (uint64_t)st.st_size == bf->size &&
	    bkr_clock_ns(&st.st_mtim) == bf->mtime_ns) {
		struct stat fst;
		if (hashed && (uint64_t)vst.st_size == bf->size && bkr_clock_ns(&vst.st_mtim) == bf->mtime_ns) {
			fst = vst; /* the copy validated and hashed above */
		} else {
			/* no validator (or the file changed between the stat and the copy): read it */
			if ((fd = openat(dir, base, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC)) < 0) {
				err = bkr_error_set_errno(errno, "%s", rel);
				goto done;
			}
			if (fstat(fd, &fst) < 0) {
				err = bkr_error_set_errno(errno, "%s: stat", rel);
				goto done;
			}
			if ((err = bkr_digest_fd(fd, bf->sparse_digest ? BKR_DIGEST_SPARSE : BKR_DIGEST_PLAIN, &h,
						 NULL)) < 0) {
				bkr_error_prefix("%s", rel);
				goto done;
			}
		}
		if (bkr_id_cmp(&h, &bf->content) != 0) {
			char a[BKR_ID_HEX], b[BKR_ID_HEX];
			bkr_id_to_hex(&h, a);
			bkr_id_to_hex(&bf->content, b);
			err = set_damage(out, rel, BKR_DAMAGE_SILENT, prio,
					 "silent corruption: size and mtime match backup %s but the content digest %.12s differs from %.12s",
					 bf->backup_id, a, b);
			if (err == 1)
				bkr_rec_scanned_set(out, &fst); /* the file as hashed */
			goto done;
		}
	}
done:
	if (err == 1 && bf && !bf->link) {
		snprintf(out->backup_id, sizeof(out->backup_id), "%s", bf->backup_id);
		out->backup_size = bf->size;
	}
	if (err == 1) {
		/* apply writes only into this directory (a later engine object too: routine) */
		out->scanned.root = true;
		out->scanned.root_dev = rc->root_dev;
		out->scanned.root_ino = rc->root_ino;
	}
	bkr_digest_free(dg);
	if (fd >= 0)
		close(fd);
	if (dir >= 0)
		close(dir);
	if (root >= 0)
		close(root);
	return err;
}

typedef struct {
	bkr_recover *rc;
	bkr_rec_bindex *bi;
	bool deep;
	bkr_scan_result *res;
	size_t cap;
	uint64_t bytes;        /* deep: the bytes of the files hashed (for the progress line) */
	int64_t last_progress; /* bkr_clock_mono_ns of the last progress call */
} scan_ctx;

/* The files checked (and, deep, bytes hashed) so far: at most ten calls a
 * second, and the walk's @p end. */
static void scan_progress(scan_ctx *c, bool end)
{
	int64_t now;

	if (!c->rc->progress)
		return;
	now = bkr_clock_mono_ns();
	if (!end && c->last_progress && now - c->last_progress < 100000000LL)
		return;
	c->last_progress = now;
	c->rc->progress(c->rc->progress_ctx, "scanning", "files", c->res->files_checked, 0, c->bytes, 0);
}

static int add(scan_ctx *c, bkr_damage *d)
{
	if (c->res->n == c->cap) {
		size_t nc = c->cap ? c->cap * 2 : 32;
		bkr_damage *ni = realloc(c->res->items, nc * sizeof(*ni));
		if (!ni) {
			damage_clear(d);
			return bkr_error_oom();
		}
		c->res->items = ni;
		c->cap = nc;
	}
	c->res->items[c->res->n++] = *d;
	return 0;
}

/* Directory @p rel (workspace-relative; "" the root) was not looked into:
 * named in the result, never silent, so a scan that found nothing there does
 * not pass for one that checked everything. */
static int skip_dir(scan_ctx *c, const char *rel, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int skip_dir(scan_ctx *c, const char *rel, const char *fmt, ...)
{
	bkr_scan_result *r = c->res;
	bkr_scan_skipped *n;
	char *path = strdup(*rel ? rel : "."), *why = NULL;
	va_list ap;
	int len;

	va_start(ap, fmt);
	len = vasprintf(&why, fmt, ap);
	va_end(ap);
	if (len < 0)
		why = NULL;
	if (!path || !why || !(n = realloc(r->skipped, (r->nskipped + 1) * sizeof(*n)))) {
		free(path);
		free(why);
		return bkr_error_oom();
	}
	r->skipped = n;
	r->skipped[r->nskipped++] = (bkr_scan_skipped){ path, why };
	return 0;
}

static int walk_dir(scan_ctx *c, int dfd, char *rel, size_t rlen, size_t depth)
{
	DIR *d = NULL;
	struct dirent *de;
	bool too_long = false;
	int err = 0;

	if (!(d = fdopendir(dfd))) {
		close(dfd);
		return bkr_error_set_errno(errno, "%s", rlen ? rel : c->rc->workspace);
	}
	while ((errno = 0, de = readdir(d))) {
		size_t nl = strlen(de->d_name);
		struct stat st;

		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (strncmp(de->d_name, BKR_REC_TMP_PREFIX, strlen(BKR_REC_TMP_PREFIX)) == 0)
			continue;
		if (rlen + nl + 2 > 4096) {
			if (!too_long && (err = skip_dir(c, rel, "holds entries whose paths are longer than 4095 bytes: "
							 "they were not scanned")) < 0)
				goto done;
			too_long = true;
			continue;
		}
		if (rlen)
			rel[rlen] = '/';
		memcpy(rel + rlen + (rlen ? 1 : 0), de->d_name, nl + 1);
		if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
			goto next;
		if (S_ISDIR(st.st_mode)) {
			int nfd;
			if (depth + 1 > BKR_SCAN_MAX_DEPTH) {
				/* each level holds a directory open: the walk stops here, saying so */
				if ((err = skip_dir(c, rel, "more than %d levels deep: not scanned",
						    BKR_SCAN_MAX_DEPTH)) < 0)
					goto done;
				goto next;
			}
			nfd = openat(dirfd(d), de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			if (nfd < 0 && errno != ENOENT && errno != ENOTDIR && errno != ELOOP) {
				/* gone or replaced since the stat: nothing to say; else name it */
				if ((err = skip_dir(c, rel, "cannot be opened: %s: not scanned", strerror(errno))) < 0)
					goto done;
				goto next;
			}
			if (nfd >= 0 && (err = walk_dir(c, nfd, rel, rlen + nl + (rlen ? 1 : 0), depth + 1)) < 0)
				goto done;
		} else if (S_ISREG(st.st_mode) && bkr_rec_glob_any(c->rc->protected_patterns, c->rc->nprotected, rel)) {
			bkr_damage dmg;
			bkr_rec_bfile *bf = bkr_rec_bindex_find(c->bi, rel);
			if (bf)
				bf->seen = true;
			c->res->files_checked++;
			err = bkr_rec_check_one(c->rc, c->bi, rel, c->deep, &dmg);
			if (err < 0)
				goto done;
			/* the files bkr_rec_check_one hashes: as the backup's by size and mtime */
			if (c->deep && bf && !bf->link && (uint64_t)st.st_size == bf->size &&
			    bkr_clock_ns(&st.st_mtim) == bf->mtime_ns)
				c->bytes += bf->size;
			scan_progress(c, false);
			if (err == 1 && (err = add(c, &dmg)) < 0)
				goto done;
			err = 0;
		} else {
			/* a symlink where the backup has one; anything else (a symlink,
			 * FIFO, ... in the place of a file) is judged by path, below */
			bkr_rec_bfile *bf = bkr_rec_bindex_find(c->bi, rel);
			if (bf && bf->link && S_ISLNK(st.st_mode))
				bf->seen = true;
		}
	next:
		rel[rlen] = '\0';
	}
done:
	rel[rlen] = '\0';
	closedir(d);
	return err;
}

static int kind_rank(bkr_damage_kind k)
{
	switch (k) {
	case BKR_DAMAGE_REQUIRED: return 0;
	case BKR_DAMAGE_MISSING: return 1;
	case BKR_DAMAGE_TRUNCATED: return 2;
	case BKR_DAMAGE_INVALID: return 3;
	default: return 4;
	}
}

static int damage_cmp(const void *a, const void *b)
{
	const bkr_damage *x = a, *y = b;

	if (x->priority != y->priority)
		return x->priority > y->priority ? -1 : 1;
	if (kind_rank(x->kind) != kind_rank(y->kind))
		return kind_rank(x->kind) - kind_rank(y->kind);
	return strcmp(x->path, y->path);
}

int bkr_recover_scan(bkr_recover *rc, unsigned flags, bkr_scan_result *out)
{
	bkr_rec_bindex bi = { 0 };
	scan_ctx c = { rc, &bi, (flags & BKR_SCAN_DEEP) != 0, out, 0, 0, 0 };
	char rel[4096] = "";
	int root = -1, err = 0;

	memset(out, 0, sizeof(*out));
	out->deep = c.deep;
	bkr_rec_backups_hold(rc);
	if ((err = bkr_rec_bindex_load(rc, &bi)) < 0)
		goto done;
	if (bi.backup_id && !(out->backup_id = strdup(bi.backup_id))) {
		err = bkr_error_oom();
		goto done;
	}
	bkr_rec_root_forget(rc); /* this scan's workspace directory is the one apply writes into */
	if ((err = bkr_rec_root_open(rc, &root)) < 0)
		goto done;
	err = walk_dir(&c, root, rel, 0, 0);
	root = -1;
	if (err < 0)
		goto done;
	scan_progress(&c, true);
	/* missing: protected files of the newest backup that are gone */
	for (size_t i = 0; i < bi.n; i++) {
		bkr_damage dmg;
		if (bi.items[i].seen || !bkr_rec_glob_any(rc->protected_patterns, rc->nprotected, bi.items[i].rel))
			continue;
		out->files_checked++;
		if ((err = bkr_rec_check_one(rc, &bi, bi.items[i].rel, false, &dmg)) < 0)
			goto done;
		if (err == 1 && (err = add(&c, &dmg)) < 0)
			goto done;
		err = 0;
	}
	/* required files that do not exist (and were not reported above) */
	for (size_t i = 0; i < rc->nrequired; i++) {
		bkr_damage dmg;
		bool dup = false;
		for (size_t k = 0; k < out->n; k++)
			dup = dup || strcmp(out->items[k].path, rc->required[i]) == 0;
		if (dup)
			continue;
		if ((err = bkr_rec_check_one(rc, &bi, rc->required[i], false, &dmg)) < 0)
			goto done;
		/* a protected file that is there was counted by the walk */
		if (err == 1 || !bkr_rec_glob_any(rc->protected_patterns, rc->nprotected, rc->required[i]))
			out->files_checked++;
		if (err == 1 && (err = add(&c, &dmg)) < 0)
			goto done;
		err = 0;
	}
	if (out->n)
		qsort(out->items, out->n, sizeof(*out->items), damage_cmp);
done:
	if (root >= 0)
		close(root);
	bkr_rec_bindex_free(&bi);
	bkr_rec_backups_release(rc);
	if (err < 0)
		bkr_scan_result_free(out);
	return err;
}

char *bkr_scan_result_to_json(const bkr_scan_result *r, bool pretty)
{
	cJSON *o = cJSON_CreateObject(), *files;
	char *s = NULL;

	if (!o)
		return NULL;
	if (r->backup_id)
		cJSON_AddStringToObject(o, "backup_id", r->backup_id);
	else
		cJSON_AddNullToObject(o, "backup_id");
	cJSON_AddBoolToObject(o, "deep", r->deep);
	cJSON_AddNumberToObject(o, "files_checked", (double)r->files_checked);
	cJSON_AddNumberToObject(o, "found", (double)r->n);
	files = cJSON_AddArrayToObject(o, "files");
	for (size_t i = 0; files && i < r->n; i++) {
		cJSON *f = cJSON_CreateObject();
		if (!f)
			break;
		cJSON_AddStringToObject(f, "path", r->items[i].path);
		cJSON_AddStringToObject(f, "kind", bkr_damage_name(r->items[i].kind));
		cJSON_AddStringToObject(f, "reason", r->items[i].reason);
		cJSON_AddNumberToObject(f, "priority", r->items[i].priority);
		cJSON_AddItemToArray(files, f);
	}
	cJSON *skipped = cJSON_AddArrayToObject(o, "skipped");
	for (size_t i = 0; skipped && i < r->nskipped; i++) {
		cJSON *f = cJSON_CreateObject();
		if (!f)
			break;
		cJSON_AddStringToObject(f, "path", r->skipped[i].path);
		cJSON_AddStringToObject(f, "reason", r->skipped[i].reason);
		cJSON_AddItemToArray(skipped, f);
	}
	s = bkr_rec_json_print(o, pretty);
	cJSON_Delete(o);
	return s;
}
