/** @file
 * `bkr verify`: manifests, index and packs, every tree of every backup, and
 * with read_data every blob's bytes; damage is mapped to backups and paths.
 *
 * Order: (1) manifests; (2) packs on disk vs packs the index names — missing
 * packs are errors, unreferenced packs and temporaries are leftovers; with
 * read_data each indexed blob is read from its pack and re-hashed; (3) every
 * selected backup's trees are walked: each tree is hash-checked when loaded,
 * each file chunk must be indexed and not damaged.  A file touching damage is
 * reported with its backup and path.
 */
#include "bkr/verify.h"
#include "bkr/error.h"
#include "bkr/pack.h"
#include "bkr/walk.h"
#include "idset.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct verify {
	bkr_repo *r;
	const bkr_verify_options *o;
	bkr_verify_stats *st;
	bkr_idset damaged;      /* blob ids */
	bkr_idset index_packs;  /* pack ids (zero-extended) named by the index */
	bkr_idset disk_packs;   /* pack ids found on disk */
	bkr_pack_id bad_pack;   /* for mark_pack */
	uint8_t *buf;           /* BKR_BLOB_MAX scratch */
};

static void report(struct verify *v, bkr_verify_kind kind, const char *object, const char *backup,
		   const char *path, const char *fmt, ...) __attribute__((format(printf, 6, 7)));

static void report(struct verify *v, bkr_verify_kind kind, const char *object, const char *backup,
		   const char *path, const char *fmt, ...)
{
	char msg[1200];
	va_list ap;
	bkr_verify_problem p = { kind, kind != BKR_VERIFY_LEFTOVER, object, backup, path, msg };
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (p.error)
		v->st->errors++;
	else
		v->st->leftovers++;
	if (v->o->report)
		v->o->report(v->o->report_ctx, &p);
}

static bkr_id pack_key(const bkr_pack_id *p)
{
	bkr_id k = { { 0 } };
	memcpy(k.b, p->b, BKR_PACK_ID_SIZE);
	/* spread the key: idset hashes the first 8 bytes, which are random already */
	return k;
}

static void on_bad_manifest(void *ctx, const char *file, const char *message)
{
	report(ctx, BKR_VERIFY_MANIFEST, file, NULL, NULL, "%s", message);
}

static int note_index_pack(const bkr_index_entry *e, void *ctx)
{
	struct verify *v = ctx;
	bkr_id k = pack_key(&e->pack);
	return bkr_idset_add(&v->index_packs, &k) < 0 ? BKR_ENOMEM : 0;
}

static int mark_pack(const bkr_index_entry *e, void *ctx)
{
	struct verify *v = ctx;
	if (bkr_pack_id_cmp(&e->pack, &v->bad_pack))
		return 0;
	return bkr_idset_add(&v->damaged, &e->id) < 0 ? BKR_ENOMEM : 0;
}

static int mark_pack_damaged(struct verify *v, const bkr_pack_id *id)
{
	v->bad_pack = *id;
	return bkr_repo_foreach_blob(v->r, mark_pack, v);
}

/* read_data: every blob of the pack that the index points at here. */
static int read_pack(struct verify *v, const bkr_pack_id *id, const char *path)
{
	bkr_pack_entry *ents = NULL;
	size_t n = 0;
	struct stat st;
	int fd, err = 0;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0 || fstat(fd, &st) < 0) {
		bkr_error_set_errno(errno, "%s", path);
		goto damaged;
	}
	posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
	if (bkr_pack_read_footer(fd, (uint64_t)st.st_size, path, &ents, &n) < 0)
		goto damaged;
	for (size_t i = 0; i < n; i++) {
		bkr_index_entry e;
		char hex[BKR_ID_HEX];
		if (bkr_repo_lookup(v->r, &ents[i].id, &e) < 0 || bkr_pack_id_cmp(&e.pack, id) ||
		    e.offset != ents[i].offset) {
			bkr_error_clear();
			continue; /* not the indexed copy: unreferenced */
		}
		v->st->blobs_read++;
		v->st->bytes_read += ents[i].stored_len + BKR_BLOB_HEADER_SIZE;
		if (bkr_pack_read_blob(fd, path, &ents[i].id, ents[i].offset, ents[i].stored_len,
				       ents[i].raw_len, ents[i].type, v->buf) == 0)
			continue;
		bkr_id_to_hex(&ents[i].id, hex);
		report(v, BKR_VERIFY_BLOB, hex, NULL, NULL, "%s", bkr_error_message());
		if ((err = bkr_idset_add(&v->damaged, &ents[i].id)) < 0)
			break;
		err = 0;
	}
	free(ents);
	close(fd);
	return err;
damaged:
	report(v, BKR_VERIFY_PACK, path, NULL, NULL, "%s", bkr_error_message());
	free(ents);
	if (fd >= 0)
		close(fd);
	return mark_pack_damaged(v, id);
}

struct pack_pass {
	struct verify *v;
	uint64_t done, total;
};

static int on_pack(void *ctx, const bkr_pack_id *id, bkr_blob_type type, const char *path)
{
	struct pack_pass *pp = ctx;
	struct verify *v = pp->v;
	bkr_id k;
	if (!id) {
		report(v, BKR_VERIFY_LEFTOVER, path, NULL, NULL, "%s: unfinished write left by an interrupted command ('bkr cleanup' removes it)", path);
		return 0;
	}
	k = pack_key(id);
	v->st->packs++;
	if (bkr_idset_add(&v->disk_packs, &k) < 0)
		return BKR_ENOMEM;
	if (!bkr_idset_has(&v->index_packs, &k)) {
		report(v, BKR_VERIFY_LEFTOVER, path, NULL, NULL, "%s: pack not referenced by the index (left by an interrupted backup; 'bkr cleanup' removes it)", path);
		return 0;
	}
	if (v->o->progress)
		v->o->progress(v->o->progress_ctx, "packs", ++pp->done, pp->total);
	(void)type;
	return v->o->read_data ? read_pack(v, id, path) : 0;
}

struct missing_pass {
	struct verify *v;
	bkr_idset reported;
};

static int check_present(const bkr_index_entry *e, void *ctx)
{
	struct missing_pass *mp = ctx;
	struct verify *v = mp->v;
	bkr_id k = pack_key(&e->pack);
	char path[PATH_MAX], hex[BKR_PACK_ID_HEX];
	if (bkr_idset_has(&mp->reported, &k)) /* a missing pack: every blob in it is lost */
		return bkr_idset_add(&v->damaged, &e->id) < 0 ? BKR_ENOMEM : 0;
	if (bkr_idset_has(&v->disk_packs, &k))
		return 0;
	/* not in hot or the tiers: perhaps in trash (still readable) */
	if (bkr_repo_pack_path(v->r, &e->pack, (bkr_blob_type)e->type, path, sizeof(path)) == 0)
		return bkr_idset_add(&v->disk_packs, &k) < 0 ? BKR_ENOMEM : 0;
	bkr_pack_id_to_hex(&e->pack, hex);
	report(v, BKR_VERIFY_PACK, hex, NULL, NULL, "pack %s is named by the index but missing from every tier and trash", hex);
	if (bkr_idset_add(&mp->reported, &k) < 0)
		return BKR_ENOMEM;
	return bkr_idset_add(&v->damaged, &e->id) < 0 ? BKR_ENOMEM : 0;
}

/* A blob id is usable: indexed and not damaged. */
static int blob_problem(struct verify *v, const bkr_id *id, const char **why)
{
	bkr_index_entry e;
	if (bkr_idset_has(&v->damaged, id)) {
		*why = "damaged";
		return 1;
	}
	if (bkr_repo_lookup(v->r, id, &e) < 0) {
		bkr_error_clear();
		*why = "missing from the index";
		return 1;
	}
	return 0;
}

static int walk_backup(struct verify *v, const bkr_manifest *m)
{
	bkr_walk *w = NULL;
	const bkr_walk_item *it;
	char hex[BKR_ID_HEX];
	int err;

	v->st->backups++;
	if ((err = bkr_walk_new(&w, v->r, &m->tree, NULL, 0)) < 0) {
		bkr_id_to_hex(&m->tree, hex);
		report(v, BKR_VERIFY_TREE, hex, m->backup_id, "/", "root tree: %s", bkr_error_message());
		return err == BKR_ENOMEM ? err : 0;
	}
	while ((err = bkr_walk_next(w, &it)) > 0) {
		if (it->entry.type == BKR_FT_DIR) {
			v->st->trees++;
			if (it->error < 0) {
				bkr_id_to_hex(&it->entry.subtree, hex);
				report(v, BKR_VERIFY_TREE, hex, m->backup_id, it->path, "%s", bkr_walk_error_message(w));
			}
			continue;
		}
		if (it->entry.type != BKR_FT_FILE)
			continue;
		v->st->files++;
		bkr_chunk_ref *chunks = NULL;
		bkr_xattr *xs = NULL;
		size_t nc = 0, nx = 0;
		const char *why = NULL;
		const bkr_id *bad = NULL;
		if ((err = bkr_tree_chunks(it->leaf, it->li, &chunks, &nc)) < 0 ||
		    (err = bkr_tree_xattrs(it->leaf, it->li, &xs, &nx)) < 0) {
			free(chunks);
			break;
		}
		for (size_t i = 0; i < nc && !bad; i++)
			if (blob_problem(v, &chunks[i].id, &why))
				bad = &chunks[i].id;
		for (size_t i = 0; i < nx && !bad; i++)
			if (xs[i].in_blob && blob_problem(v, &xs[i].blob, &why))
				bad = &xs[i].blob;
		if (bad) {
			bkr_id_to_hex(bad, hex);
			report(v, !strcmp(why, "damaged") ? BKR_VERIFY_DAMAGED_FILE : BKR_VERIFY_MISSING, hex,
			       m->backup_id, it->path, "chunk %s is %s", hex, why);
		}
		free(chunks);
		free(xs);
	}
	bkr_walk_free(w);
	return err < 0 ? err : 0;
}

int bkr_verify_run(bkr_repo *r, const bkr_verify_options *o, bkr_verify_stats *stats)
{
	struct verify v = { .r = r, .o = o, .st = stats };
	struct pack_pass pp = { .v = &v };
	struct missing_pass mp = { .v = &v };
	bkr_manifest_list l = { 0 };
	bkr_manifest *one = NULL;
	int err;

	memset(stats, 0, sizeof(*stats));
	if (o->read_data && !(v.buf = malloc(BKR_BLOB_MAX)))
		return bkr_error_oom();
	if ((err = bkr_repo_list_cb(r, false, &l, on_bad_manifest, &v)) < 0)
		goto done;
	if (o->backup && (err = bkr_repo_find_backup(r, o->backup, &one)) < 0)
		goto done;
	if ((err = bkr_repo_foreach_blob(r, note_index_pack, &v)) < 0)
		goto done;
	pp.total = v.index_packs.n;
	if ((err = bkr_repo_foreach_pack(r, on_pack, &pp)) < 0)
		goto done;
	if ((err = bkr_repo_foreach_blob(r, check_present, &mp)) < 0)
		goto done;
	if (one) {
		err = walk_backup(&v, one);
	} else {
		for (size_t i = 0; i < l.n && err == 0; i++) {
			if (o->progress)
				o->progress(o->progress_ctx, "backups", i, l.n);
			err = walk_backup(&v, l.items[i]);
		}
	}
	if (err == 0 && stats->errors)
		err = bkr_error_set(BKR_ECORRUPT, "verify found %llu problem%s", (unsigned long long)stats->errors,
				    stats->errors == 1 ? "" : "s");
done:
	bkr_idset_free(&mp.reported);
	bkr_idset_free(&v.damaged);
	bkr_idset_free(&v.index_packs);
	bkr_idset_free(&v.disk_packs);
	bkr_manifest_free(one);
	bkr_manifest_list_free(&l);
	free(v.buf);
	return err;
}
