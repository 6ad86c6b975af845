/** @file
 * Copying backups between repositories (bkr/copy.h).  For each backup the
 * destination lacks: walk its trees in the source, read every blob the
 * destination does not have (each read checks the blob: hash, or GCM tag
 * and HMAC id), put it through the destination's writer — under the
 * destination's id when the id schemes differ, with trees re-encoded
 * bottom-up — then commit (packs, one index file) and publish the manifest
 * last, create-only.  Between two repositories with the same id scheme a
 * blob keeps its id; between a plain and an encrypted one, or two encrypted
 * ones (different MAC keys), every blob gets the destination's id of its
 * plaintext and every tree is rewritten with its children's new ids.  The id
 * map (an idset.h map: source id -> destination id) remembers every source
 * blob dealt with in this run, so a blob shared by many files or backups is
 * read once.  Across runs, ids differing, a backup is walked beside the
 * destination's copy of its parent (or of an earlier backup of its host):
 * a file with the same bytes there (size, content digest, holes, each
 * chunk's length) lends its chunks' destination ids to the map (map_entry),
 * so an unchanged file is neither read nor hashed again.  A tree of the destination that does not
 * read (compared, or walked as such a hint) is named once and passed over (dest_damaged): the
 * source's subtree is copied in full.  A blob the destination's index names is used only when its copy
 * there is intact (dest_has): a tree, or a blob the destination's verify and damage records name, is
 * read there first, and a damaged one is stored again (bkr_writer_put_anew).
 */
#include "bkr/copy.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bkr/catalog.h"
#include "bkr/error.h"
#include "bkr/io.h"
#include "bkr/host.h"
#include "bkr/log.h"
#include "bkr/tree.h"
#include "bkr/utf8.h"
#include "bkr/verify_record.h"

#include "idset.h"
#include "pathbuf.h"

struct copier {
	bkr_repo *from, *to;
	const bkr_copy_options *o;
	bkr_writer *w;          /* NULL with dry_run */
	bool same_ids;          /* both sides name blobs alike: copy verbatim */
	bkr_idset map;          /* source id -> destination id of each blob dealt with */
	bkr_idset same;         /* source tree id -> a destination tree id found to hold the same */
	bkr_idset damaged;      /* destination blobs found damaged in this run (each named once) */
	bkr_idset intact;       /* destination blobs read whole in this run (dest_has) */
	bkr_idset suspect;      /* blobs the destination's verify and damage records name */
	bkr_idset known;        /* pairs found the same before (the cache file: same_key) */
	bkr_idset confirmed;    /* pairs found the same, or copied, in this run */
	char *cache_dir;        /* the cache file's folder and name (cache_path), NULL for none */
	char *cache_name;
	bool cache_none;        /* cache_path found none (told once) */
	bool met_damage;        /* dest_damaged named a damaged tree (same_backup: nothing confirmed) */
	bkr_id bad_tree;        /* the destination tree load_dest_tree last failed to read */
	const char *dest_backup; /* the destination's backup whose trees are walked (same_dir, the hint) */
	bkr_pathbuf path;       /* the path compared (same_dir) */
	char *differs;          /* what differs, when same_dir found a difference (malloc'd) */
	bkr_copy_stats run;     /* the whole run so far */
	bkr_copy_stats one;     /* the backup being copied */
	size_t backup, nbackups;
};

static void stats_add(bkr_copy_stats *a, const bkr_copy_stats *b)
{
	a->backups_copied += b->backups_copied;
	a->backups_skipped += b->backups_skipped;
	a->backups_updated += b->backups_updated;
	a->backups_healed += b->backups_healed;
	a->blobs_sent += b->blobs_sent;
	a->bytes_sent += b->bytes_sent;
	a->stored_bytes += b->stored_bytes;
	a->blobs_read += b->blobs_read;
	a->bytes_read += b->bytes_read;
}

static void progress(struct copier *c)
{
	bkr_copy_stats now = c->run;
	if (!c->o->progress)
		return;
	stats_add(&now, &c->one);
	c->o->progress(c->o->ctx, &now, c->backup, c->nbackups);
}

/* Read blob @p id of the source, checked; counted. */
static int read_source(struct copier *c, const bkr_id *id, bkr_blob_type type, uint8_t **out, size_t *len)
{
	int err = bkr_repo_read_blob(c->from, id, type, out, len);
	if (err < 0)
		return err;
	c->one.blobs_read++;
	c->one.bytes_read += *len;
	progress(c);
	return 0;
}

/*
 * Whether the destination holds an intact copy of blob @p id (*has): indexed, not found damaged in
 * this run, and - a tree, or a blob its verify or damage records name - read whole through every
 * copy its index names, as a reader reads it (bkr_repo_read_blob).  A damaged copy (BKR_ECORRUPT, or
 * its pack gone) is named once in a warning and is no copy: the source's is stored again
 * (bkr_writer_put_anew).  A chunk the index has and no record names is taken on the index's word,
 * as a backup takes it (verify --read-data finds damage in data; docs/bkr.1.md "copy").
 */
static int dest_has(struct copier *c, const bkr_id *id, bkr_blob_type type, bool *has)
{
	bkr_index_entry e;
	char hex[BKR_ID_HEX], line[2048];
	uint8_t *buf = NULL;
	size_t len = 0;
	int err;

	*has = false;
	if (bkr_repo_lookup(c->to, id, &e) < 0) {
		bkr_error_clear(); /* not there (never, or repaired out): sent */
		return 0;
	}
	if (bkr_idset_has(&c->damaged, id))
		return 0;
	if ((type == BKR_BLOB_TREE || bkr_idset_has(&c->suspect, id)) && !bkr_idset_has(&c->intact, id)) {
		err = bkr_repo_read_blob(c->to, id, type, &buf, &len);
		free(buf);
		if (err == BKR_ECORRUPT || err == BKR_ENOTFOUND) {
			bkr_id_to_hex(id, hex);
			snprintf(line, sizeof(line), "%s blob %s in %s is damaged (%s): %s from %s",
				 type == BKR_BLOB_TREE ? "tree" : "data", hex, bkr_repo_path(c->to), bkr_error_message(),
				 c->w ? "stored again" : "would be stored again", bkr_repo_path(c->from));
			bkr_error_clear();
			if (bkr_idset_add(&c->damaged, id) < 0)
				return bkr_error_oom();
			bkr_log_event(BKR_LOG_WARN, "copy", "damaged-destination-blob",
				      (const char *[]){ "blob", hex, NULL }, "%s", line);
			if (c->o->warning)
				c->o->warning(c->o->ctx, line);
			return 0;
		}
		if (err < 0)
			return err;
		if (bkr_idset_add(&c->intact, id) < 0)
			return bkr_error_oom();
	}
	*has = true;
	return 0;
}

/* Put a blob into the destination as @p id unless it has an intact copy (dest_has; a dry run only
 * looks). */
static int send(struct copier *c, bkr_blob_type type, const bkr_id *id, const void *data, size_t len)
{
	uint32_t stored = 0;
	bool is_new = false, has;
	int err;

	if ((err = dest_has(c, id, type, &has)) < 0)
		return err;
	if (has)
		return 0;
	if (c->w) {
		if ((err = bkr_writer_put_anew(c->w, type, id, data, len, &is_new, &stored)) < 0)
			return err;
	} else {
		is_new = true;
	}
	if (is_new) {
		c->one.blobs_sent++;
		c->one.bytes_sent += len;
		c->one.stored_bytes += stored;
	}
	return 0;
}

/* A data blob (file chunk, xattr value): *dst gets its id in the destination. */
static int copy_data(struct copier *c, const bkr_id *src, bkr_id *dst)
{
	bkr_id from = *src, to = *src; /* @p dst may be @p src */
	uint8_t *buf = NULL;
	size_t len = 0;
	bool has = false;
	int err;

	if (bkr_idset_get(&c->map, &from, dst))
		return 0;
	if (c->same_ids && (err = dest_has(c, &from, BKR_BLOB_DATA, &has)) < 0)
		return err;
	if (has) {
		/* the destination has it: nothing to read */
		*dst = from;
		return bkr_idset_put(&c->map, &from, &from) < 0 ? BKR_ENOMEM : 0;
	}
	if ((err = read_source(c, &from, BKR_BLOB_DATA, &buf, &len)) < 0)
		return err;
	if (!c->same_ids)
		bkr_repo_blob_id(c->to, buf, len, &to);
	if ((err = send(c, BKR_BLOB_DATA, &to, buf, len)) == 0 && (err = bkr_idset_put(&c->map, &from, &to)) > 0)
		err = 0;
	if (err == 0)
		*dst = to;
	free(buf);
	return err;
}

/* ---- the destination's trees: read to compare or to take ids from ------------- */

/* bkr_dir loader of a destination tree: one that does not read is c->bad_tree. */
static int load_dest_tree(void *ctx, const bkr_id *id, bkr_tree **out)
{
	struct copier *c = ctx;
	int err = bkr_repo_load_tree(c->to, id, out);
	if (err == BKR_ECORRUPT)
		c->bad_tree = *id;
	if (err == 0 && bkr_idset_add(&c->intact, id) < 0) {
		bkr_tree_free(*out);
		*out = NULL;
		err = bkr_error_oom();
	}
	return err;
}

/*
 * @p err from a walk of c->dest_backup's trees in the destination: a damaged tree there
 * (BKR_ECORRUPT from load_dest_tree) is no failure of the copy - what is below it is taken from
 * the source (@p instead says how) - and is named once per run in a warning; 0 then.  Any other
 * error is returned.
 */
static int dest_damaged(struct copier *c, int err, const char *instead)
{
	char hex[BKR_ID_HEX], line[2048];
	int added;

	if (err != BKR_ECORRUPT)
		return err;
	c->met_damage = true;
	bkr_id_to_hex(&c->bad_tree, hex);
	snprintf(line, sizeof(line),
		 "backup %s in %s: tree %s there is damaged (%s): %s; 'bkr verify' there names what it holds",
		 c->dest_backup, bkr_repo_path(c->to), hex, bkr_error_message(), instead);
	bkr_error_clear();
	if ((added = bkr_idset_add(&c->damaged, &c->bad_tree)) < 0)
		return bkr_error_oom();
	if (added) {
		bkr_log_event(BKR_LOG_WARN, "copy", "damaged-destination-tree",
			      (const char *[]){ "backup_id", c->dest_backup, "tree", hex, NULL }, "%s", line);
		if (c->o->warning)
			c->o->warning(c->o->ctx, line);
	}
	return 0;
}

/* ---- the same ids on both sides: trees byte for byte, page by page ---------- */

static int copy_tree_same(void *ctx, const bkr_id *id);

/* The blobs of leaf record @p i of @p t. */
static int copy_entry_same(void *ctx, const bkr_tree *t, uint32_t i)
{
	struct copier *c = ctx;
	bkr_entry e;
	bkr_chunk_ref *ch = NULL;
	bkr_xattr *xa = NULL;
	size_t nch = 0, nxa = 0;
	bkr_id dst;
	int err;

	if ((err = bkr_tree_get(t, i, &e)) < 0 || (err = bkr_tree_chunks(t, i, &ch, &nch)) < 0 ||
	    (err = bkr_tree_xattrs(t, i, &xa, &nxa)) < 0)
		goto done;
	for (size_t k = 0; k < nch && err == 0; k++)
		err = copy_data(c, &ch[k].id, &dst);
	for (size_t k = 0; k < nxa && err == 0; k++)
		if (xa[k].in_blob)
			err = copy_data(c, &xa[k].blob, &dst);
	if (err == 0 && e.type == BKR_FT_DIR)
		err = copy_tree_same(c, &e.subtree);
done:
	free(ch);
	free(xa);
	return err;
}

/* Tree or page @p id and everything below it, unless dealt with in this run. */
static int copy_tree_same(void *ctx, const bkr_id *id)
{
	struct copier *c = ctx;
	bkr_tree *t = NULL;
	uint8_t *buf = NULL;
	size_t len = 0;
	int err;

	if (bkr_idset_get(&c->map, id, NULL))
		return 0;
	if ((err = read_source(c, id, BKR_BLOB_TREE, &buf, &len)) < 0)
		return err;
	if ((err = send(c, BKR_BLOB_TREE, id, buf, len)) < 0) {
		free(buf);
		return err;
	}
	if ((err = bkr_tree_parse(&t, buf, len)) < 0) /* takes buf */
		return err;
	if ((err = bkr_idset_put(&c->map, id, id)) >= 0)
		err = bkr_tree_each(t, copy_tree_same, copy_entry_same, c);
	bkr_tree_free(t);
	return err;
}

/* ---- different ids: directories re-encoded with the destination's ids ------- */

static bool str_differs(const char *a, const char *b)
{
	return (a == NULL) != (b == NULL) || (a && strcmp(a, b));
}

static int name_cmp(const uint8_t *a, size_t al, const uint8_t *b, size_t bl)
{
	int r = memcmp(a, b, al < bl ? al : bl);
	return r ? r : (al > bl) - (al < bl);
}

static int load_tree(void *ctx, const bkr_id *id, bkr_tree **out)
{
	struct copier *c = ctx;
	uint8_t *buf;
	size_t len;
	int err;
	*out = NULL;
	if ((err = read_source(c, id, BKR_BLOB_TREE, &buf, &len)) < 0)
		return err;
	return bkr_tree_parse(out, buf, len);
}

static int emit_tree(void *ctx, bkr_id *id, const uint8_t *blob, size_t len)
{
	struct copier *c = ctx;
	bkr_repo_blob_id(c->to, blob, len, id);
	return send(c, BKR_BLOB_TREE, id, blob, len);
}

static int copy_dir_mapped(struct copier *c, const bkr_id *src, bkr_id *dst, const bkr_id *hint);

/* What a damaged tree of the hint means (dest_damaged). */
#define HINT_LOST "its files are read from the source instead"

/*
 * Entry @p e (leaf @p leaf, record @p li) of the source and @p he (leaf @p hleaf, record @p hi)
 * of the destination's copy of an earlier backup, at the same path.  When both are files with the
 * same bytes - the same size, content digest (of the file's logical bytes: docs/format.md "Content
 * digests"), holes and chunk lengths, so chunk k holds the same bytes on both sides, whatever their
 * names, modes or times - and the destination's index has each of its chunks, the source's chunk
 * ids map to the destination's: copy_data reads none of them.  Xattr values in blobs are read.
 */
static int map_entry(struct copier *c, const bkr_entry *e, const bkr_tree *leaf, uint32_t li, const bkr_entry *he,
		     const bkr_tree *hleaf, uint32_t hi)
{
	bkr_chunk_ref *ch = NULL, *hch = NULL;
	bkr_hole *ho = NULL, *hho = NULL;
	size_t nch = 0, nhch = 0, nho = 0, nhho = 0;
	int err;

	if (e->type != BKR_FT_FILE || he->type != BKR_FT_FILE || e->size != he->size ||
	    bkr_id_cmp(&e->content, &he->content) != 0 || e->sparse_digest != he->sparse_digest)
		return 0;
	if ((err = bkr_tree_chunks(leaf, li, &ch, &nch)) < 0 || (err = bkr_tree_chunks(hleaf, hi, &hch, &nhch)) < 0 ||
	    (err = bkr_tree_holes(leaf, li, &ho, &nho)) < 0 || (err = bkr_tree_holes(hleaf, hi, &hho, &nhho)) < 0)
		goto done;
	if (nch != nhch || nho != nhho || (nho && memcmp(ho, hho, nho * sizeof(*ho))))
		goto done;
	for (size_t k = 0; k < nch; k++)
		if (ch[k].length != hch[k].length)
			goto done;
	for (size_t k = 0; k < nch; k++) {
		bkr_id v;
		bool has;
		if ((err = dest_has(c, &hch[k].id, BKR_BLOB_DATA, &has)) < 0)
			goto done;
		if (!has) /* not there (pruned, repaired out) or damaged: read and sent again */
			goto done;
		/* a chunk mapped already to another id: the file there does not hold
		 * what its entry says (a damaged destination), so no id of it is taken */
		if (bkr_idset_get(&c->map, &ch[k].id, &v) && bkr_id_cmp(&v, &hch[k].id) != 0)
			goto done;
	}
	/* BKR_ENOMEM, or BKR_EINVAL for a chunk repeated in the file with two ids
	 * there (the caller reads the file then) */
	for (size_t k = 0; k < nch && err >= 0; k++)
		err = bkr_idset_put(&c->map, &ch[k].id, &hch[k].id);
	if (err > 0)
		err = 0;
done:
	free(ch);
	free(hch);
	free(ho);
	free(hho);
	return err;
}

/* Entry @p i of @p d with its blobs copied and their ids mapped, into @p b; @p hd (or NULL) is the
 * same directory in the destination's copy of an earlier backup (tree @p hint_id), *hj the next entry of
 * it to look at. */
static int copy_entry_mapped(struct copier *c, bkr_dir *d, uint64_t i, bkr_dir *hd, const bkr_id *hint_id, uint64_t *hj,
			     bkr_tree_builder *b)
{
	const bkr_tree *leaf;
	uint32_t li;
	bkr_entry e;
	bkr_chunk_ref *ch = NULL;
	bkr_xattr *xa = NULL;
	bkr_hole *ho = NULL;
	size_t nch = 0, nxa = 0, nho = 0;
	bkr_entry he;
	const bkr_tree *hleaf = NULL;
	uint32_t hi = 0;
	bool hint = false;
	int err;

	if ((err = bkr_dir_get(d, i, &e, &leaf, &li)) < 0)
		goto done;
	/* the entry of the same name in the hint, both in name order */
	while (hd && *hj < bkr_dir_count(hd)) {
		int cmp;
		c->bad_tree = *hint_id; /* unless a page of it fails to load (load_dest_tree) */
		if ((err = bkr_dir_get(hd, *hj, &he, &hleaf, &hi)) < 0) {
			/* a page of the hint that does not read: no hint for the rest */
			if ((err = dest_damaged(c, err, HINT_LOST)) < 0 && err != BKR_ENOMEM) {
				bkr_error_clear();
				err = 0;
			}
			*hj = bkr_dir_count(hd);
			if (err < 0)
				goto done;
			break;
		}
		cmp = name_cmp(he.name, he.name_len, e.name, e.name_len);
		if (cmp >= 0) {
			hint = cmp == 0;
			break;
		}
		(*hj)++;
	}
	/* a hint is only a saving: what fails in it (other than memory) leaves the file to be read */
	if (hint && (err = map_entry(c, &e, leaf, li, &he, hleaf, hi)) < 0) {
		if (err == BKR_ENOMEM)
			goto done;
		bkr_error_clear();
	}
	if ((err = bkr_tree_chunks(leaf, li, &ch, &nch)) < 0 || (err = bkr_tree_xattrs(leaf, li, &xa, &nxa)) < 0 ||
	    (err = bkr_tree_holes(leaf, li, &ho, &nho)) < 0)
		goto done;
	for (size_t k = 0; k < nch && err == 0; k++)
		err = copy_data(c, &ch[k].id, &ch[k].id);
	for (size_t k = 0; k < nxa && err == 0; k++)
		if (xa[k].in_blob)
			err = copy_data(c, &xa[k].blob, &xa[k].blob);
	if (err == 0 && e.type == BKR_FT_DIR)
		err = copy_dir_mapped(c, &e.subtree, &e.subtree, hint && he.type == BKR_FT_DIR ? &he.subtree : NULL);
	if (err < 0)
		goto done;
	e.chunks = ch;
	e.nchunks = nch;
	e.xattrs = xa;
	e.nxattrs = nxa;
	e.holes = ho;
	e.nholes = nho;
	err = bkr_tree_builder_add(b, &e);
done:
	free(ch);
	free(xa);
	free(ho);
	return err;
}

/* Directory @p src of the source re-encoded with the destination's ids into *@p dst; @p hint (or
 * NULL) is the same directory in the destination's copy of an earlier backup: the files there that
 * hold the same as here lend their blob ids (map_entry), so an unchanged file is not read again. */
static int copy_dir_mapped(struct copier *c, const bkr_id *src, bkr_id *dst, const bkr_id *hint)
{
	bkr_tree_builder *b = NULL;
	bkr_dir *d = NULL, *hd = NULL;
	bkr_id from = *src; /* @p dst may be @p src */
	uint64_t hj = 0;
	int err;

	if (bkr_idset_get(&c->map, &from, dst))
		return 0;
	if ((err = bkr_dir_open(&d, &from, load_tree, c)) < 0 || (err = bkr_tree_builder_new(&b)) < 0)
		goto done;
	/* a hint that does not read is no hint: every file is read (a damaged one is named) */
	if (hint)
		c->bad_tree = *hint;
	if (hint && (err = bkr_dir_open(&hd, hint, load_dest_tree, c)) < 0 &&
	    (err = dest_damaged(c, err, HINT_LOST)) < 0 && err != BKR_ENOMEM) {
		bkr_error_clear();
		err = 0;
	}
	if (err < 0)
		goto done;
	for (uint64_t i = 0; i < bkr_dir_count(d) && err == 0; i++)
		err = copy_entry_mapped(c, d, i, hd, hint, &hj, b);
	if (err == 0 && (err = bkr_tree_builder_finish(b, emit_tree, c, dst)) == 0 &&
	    (err = bkr_idset_put(&c->map, &from, dst)) > 0)
		err = 0;
done:
	bkr_tree_builder_free(b);
	bkr_dir_free(d);
	bkr_dir_free(hd);
	return err;
}

/* ---- one backup ----------------------------------------------------------------- */

static int copy_tree(struct copier *c, const bkr_id *src, bkr_id *dst, const bkr_id *hint)
{
	if (c->same_ids) {
		*dst = *src;
		return copy_tree_same(c, src);
	}
	return copy_dir_mapped(c, src, dst, hint);
}

/* The source of @p hm named like source @p i of @p m, or NULL. */
static const bkr_manifest_source *hint_source(const bkr_manifest *m, size_t i, const bkr_manifest *hm)
{
	for (size_t k = 0; hm && k < hm->nsources; k++)
		if (!str_differs(hm->sources[k].source, m->sources[i].source))
			return &hm->sources[k];
	return NULL;
}

/* Copy the blobs of @p m, commit them, publish @p m (its tree ids rewritten);
 * *exists when the destination got that manifest meanwhile.  @p hm (or NULL) is an earlier
 * backup of the same host as the destination has it (ids differing: its files lend their ids). */
static int copy_backup(struct copier *c, bkr_manifest *m, const bkr_manifest *hm, bool *exists)
{
	bkr_index_entry e;
	int err;

	*exists = false;
	c->dest_backup = hm ? hm->backup_id : NULL;
	if ((err = copy_tree(c, &m->tree, &m->tree, hm ? &hm->tree : NULL)) < 0)
		return err;
	for (size_t i = 0; i < m->nsources; i++) {
		const bkr_manifest_source *hs = hint_source(m, i, hm);
		if ((err = copy_tree(c, &m->sources[i].tree, &m->sources[i].tree, hs ? &hs->tree : NULL)) < 0)
			return err;
	}
	if (!c->w)
		return 0;
	if ((err = bkr_writer_commit(c->w)) < 0)
		return err;
	if (bkr_repo_lookup(c->to, &m->tree, &e) < 0) {
		char hex[BKR_ID_HEX];
		bkr_id_to_hex(&m->tree, hex);
		return bkr_error_set(BKR_ECORRUPT, "root tree %s is not in the destination's index after commit", hex);
	}
	if ((err = bkr_repo_publish_manifest(c->to, m)) == BKR_EEXISTS) {
		bkr_error_clear();
		*exists = true;
		return 0;
	}
	return err;
}

/*
 * Backup @p m of the source is @p dm of the destination (same_backup): walk it as copy_backup walks
 * a new one, beside the destination's own copy (ids differing: its files lend their ids where they
 * read whole), and store every blob it uses that the destination lacks or holds damaged
 * (dest_has); commit them.  Nothing else changes there: the manifest is the one it has.
 */
static int heal_backup(struct copier *c, const bkr_manifest *m, const bkr_manifest *dm)
{
	bkr_id tree;
	int err;

	c->dest_backup = dm->backup_id;
	if ((err = copy_tree(c, &m->tree, &tree, &dm->tree)) < 0)
		return err;
	for (size_t i = 0; i < m->nsources; i++) {
		const bkr_manifest_source *hs = hint_source(m, i, dm);
		if ((err = copy_tree(c, &m->sources[i].tree, &tree, hs ? &hs->tree : NULL)) < 0)
			return err;
	}
	if (c->one.blobs_sent)
		c->one.backups_healed = 1;
	return c->w ? bkr_writer_commit(c->w) : 0;
}

/* ---- whether the destination's backup under an id is this one -------------- */

/*
 * Two repositories that name blobs differently (plain and encrypted, or two
 * sets of keys) give one backup different tree ids, so "the same backup" is
 * told by what the ids name: the manifest's fields that a copy keeps (its
 * tags and pin are later facts), and the trees entry by entry - every field
 * but the blob ids (names, types, modes, owners, times, sizes, hardlinks,
 * link targets, holes, chunk lengths, xattrs, and each file's content
 * digest: SHA-256 of its bytes on both sides).  A copy keeps every one of
 * them, so a backup copied before, from any repository holding it, is the
 * same, and anything else is another backup.  Only trees are read (and an
 * xattr value kept in a blob), never file data; a subtree found the same
 * once is not compared again in this run.
 */

/*
 * Between repositories that name blobs differently, the comparison reads every tree of both
 * copies of each backup, on every run.  Tree ids name their content (a hash, or an HMAC under the
 * repository's key), so a backup whose root trees are the ids of an earlier run's finding is the
 * same again: a small cache file remembers each finding (and each backup copied), and the next run
 * compares only what is new.  The file is "$XDG_CACHE_HOME/bkr/copy/SRCID-DSTID" (the
 * repositories' ids; else ~/.cache), a line "bkr-copy-cache 1" then one SHA-256 per line of
 * backup id, source root and destination root (same_key): knowing a key says nothing of any other.
 * A file that does not read or parse is no cache (the backups are compared, the file rewritten);
 * one that names what was never found costs at most the warning of another backup under a copied
 * id.  A run writes the keys it confirmed (and, copying named backups only, the others it read).
 */
#define COPY_CACHE_MAGIC "bkr-copy-cache 1\n"
#define COPY_CACHE_MAX (64u << 20)

static void same_key(const char *backup_id, const bkr_id *src, const bkr_id *dst, bkr_id *key)
{
	bkr_hash_ctx *h = bkr_hash_new();
	if (!h) {
		memset(key, 0, sizeof(*key)); /* matches nothing written (the zero id is never added) */
		return;
	}
	bkr_hash_update(h, backup_id, strlen(backup_id) + 1);
	bkr_hash_update(h, src, sizeof(*src));
	bkr_hash_update(h, dst, sizeof(*dst));
	bkr_hash_final(h, key);
	bkr_hash_free(h);
}

/* The cache's folder and file name for this pair of repositories, found once per run (the
 * no-cache event is told once); false when there is none. */
static bool cache_path(struct copier *c)
{
	const char *a = bkr_repo_get_config(c->from)->id, *b = bkr_repo_get_config(c->to)->id;
	static const char hex[] = "0123456789abcdefABCDEF";

	if (c->cache_dir || c->cache_none)
		return c->cache_dir != NULL;
	c->cache_none = true;
	if (strspn(a, hex) != strlen(a) || strspn(b, hex) != strlen(b))
		return false;
	if (!(c->cache_dir = bkr_host_cache_dir("bkr/copy"))) { /* no cache: every backup is compared */
		bkr_log_event(BKR_LOG_DEBUG, "copy", "no-cache", NULL, "%s: every backup is compared",
			      bkr_error_message());
		bkr_error_clear();
		return false;
	}
	if (asprintf(&c->cache_name, "%s-%s", a, b) < 0) {
		c->cache_name = NULL;
		free(c->cache_dir);
		c->cache_dir = NULL;
		return false;
	}
	c->cache_none = false;
	return true;
}

/* c->known from the cache file: what does not read or parse is no cache (nothing known). */
static void cache_read(struct copier *c)
{
	char *path;
	uint8_t *buf = NULL;
	size_t len = 0, ml = strlen(COPY_CACHE_MAGIC);
	bool ok, oom = false;

	if (!cache_path(c) || asprintf(&path, "%s/%s", c->cache_dir, c->cache_name) < 0)
		return;
	if (bkr_io_read_file(path, COPY_CACHE_MAX, &buf, &len) < 0) {
		bkr_error_clear();
		free(path);
		return;
	}
	ok = len >= ml && !memcmp(buf, COPY_CACHE_MAGIC, ml) && (len - ml) % (BKR_ID_HEX) == 0;
	for (size_t off = ml; ok && off < len; off += BKR_ID_HEX) {
		char hex[BKR_ID_HEX];
		bkr_id key;
		memcpy(hex, buf + off, BKR_ID_HEX - 1);
		hex[BKR_ID_HEX - 1] = '\0';
		ok = buf[off + BKR_ID_HEX - 1] == '\n' && bkr_id_from_hex(&key, hex) == 0 && !bkr_id_is_zero(&key);
		if (ok && bkr_idset_add(&c->known, &key) < 0) {
			ok = false;
			oom = true;
		}
	}
	if (!ok) {
		bkr_error_clear();
		bkr_idset_free(&c->known);
		if (oom) /* the file may be a good cache: not said to be none */
			bkr_log_event(BKR_LOG_DEBUG, "copy", "cache-ignored", (const char *[]){ "file", path, NULL },
				      "%s: out of memory reading the copy cache: every backup is compared", path);
		else
			bkr_log_event(BKR_LOG_DEBUG, "copy", "cache-ignored", (const char *[]){ "file", path, NULL },
				      "%s: not a copy cache: every backup is compared", path);
	}
	free(buf);
	free(path);
}

/* The cache file: the keys confirmed in this run (and, @p keep_known, those read); a failure is
 * logged, never the copy's (the next run compares again). */
static void cache_write(struct copier *c, bool keep_known)
{
	char *buf;
	size_t ml = strlen(COPY_CACHE_MAGIC), len = ml;
	size_t n = c->confirmed.n + (keep_known ? c->known.n : 0);
	int err = 0;

	if (!cache_path(c))
		return;
	if (!(buf = malloc(ml + n * BKR_ID_HEX))) {
		err = bkr_error_oom();
		goto done;
	}
	memcpy(buf, COPY_CACHE_MAGIC, ml);
	for (int k = 0; k < (keep_known ? 2 : 1); k++) {
		const bkr_idset *set = k ? &c->known : &c->confirmed;
		for (size_t i = 0; i < set->cap; i++)
			if (set->used[i] && (k == 0 || !bkr_idset_has(&c->confirmed, &set->slots[i]))) {
				bkr_id_to_hex(&set->slots[i], buf + len); /* its NUL where the newline goes */
				buf[len + BKR_ID_HEX - 1] = '\n';
				len += BKR_ID_HEX;
			}
	}
	if ((err = bkr_io_mkdir_p(c->cache_dir, 0700)) == 0)
		err = bkr_io_publish(c->cache_dir, c->cache_name, buf, len, BKR_IO_REPLACE);
done:
	if (err < 0) {
		bkr_log_event(BKR_LOG_WARN, "copy", "cache-not-written", (const char *[]){ "dir", c->cache_dir, NULL },
			      "%s/%s: not written (%s): the next copy compares every backup again", c->cache_dir,
			      c->cache_name, bkr_error_message());
		bkr_error_clear();
	}
	free(buf);
}

/* A manifest field a copy keeps that differs between @p m (source) and @p dm: *what (malloc'd) names it
 * and both values (there, here), whole; false when none does.  Out of memory, true with *what NULL. */
static bool manifest_differs(const bkr_manifest *m, const bkr_manifest *dm, char **what)
{
	char a[64], b[64];

	if (m->time_ns != dm->time_ns) {
		bkr_text_setf(what, "timestamp %s there, %s", dm->timestamp, m->timestamp);
		return true;
	}
	if (m->type != dm->type) {
		bkr_text_setf(what, "backup_type %s there, %s", bkr_backup_type_name(dm->type),
			      bkr_backup_type_name(m->type));
		return true;
	}
	if (str_differs(m->parent, dm->parent)) {
		bkr_text_setf(what, "parent %s there, %s", dm->parent ? dm->parent : "none",
			      m->parent ? m->parent : "none");
		return true;
	}
	if (str_differs(m->hostname, dm->hostname) || str_differs(m->workspace_root, dm->workspace_root)) {
		bool host = str_differs(m->hostname, dm->hostname);
		const char *x = host ? dm->hostname : dm->workspace_root, *y = host ? m->hostname : m->workspace_root;
		bkr_text_setf(what, "%s '%s' there, '%s'", host ? "hostname" : "workspace_root", x ? x : "", y ? y : "");
		return true;
	}
	if (m->nsources != dm->nsources) {
		bkr_text_setf(what, "%zu sources there, %zu", dm->nsources, m->nsources);
		return true;
	}
	for (size_t i = 0; i < m->nsources; i++) {
		const bkr_manifest_source *x = &dm->sources[i], *y = &m->sources[i];
		if (str_differs(x->source, y->source) || str_differs(x->path, y->path)) {
			bkr_text_setf(what, "source %s (%s) there, %s (%s)", x->source, x->path, y->source, y->path);
			return true;
		}
		if (x->files_backed_up != y->files_backed_up || x->total_size_bytes != y->total_size_bytes) {
			bool files = x->files_backed_up != y->files_backed_up;
			bkr_text_setf(what, "source %s: %s %llu there, %llu", y->source,
				      files ? "files_backed_up" : "total_size_bytes",
				      (unsigned long long)(files ? x->files_backed_up : x->total_size_bytes),
				      (unsigned long long)(files ? y->files_backed_up : y->total_size_bytes));
			return true;
		}
	}
	if (m->stats.files != dm->stats.files || m->stats.dirs != dm->stats.dirs || m->stats.bytes != dm->stats.bytes) {
		snprintf(a, sizeof(a), "%llu/%llu/%llu", (unsigned long long)dm->stats.files,
			 (unsigned long long)dm->stats.dirs, (unsigned long long)dm->stats.bytes);
		snprintf(b, sizeof(b), "%llu/%llu/%llu", (unsigned long long)m->stats.files,
			 (unsigned long long)m->stats.dirs, (unsigned long long)m->stats.bytes);
		bkr_text_setf(what, "files/dirs/bytes %s there, %s", a, b);
		return true;
	}
	return false;
}

/* The difference at c->path: the entry has other @p what there (or, with @p what NULL, it is on one
 * side only: in the source when @p here); into c->differs; 1. */
static int differs_at(struct copier *c, const char *what, bool here)
{
	char *path = bkr_text_escape_dup(c->path.p, strlen(c->path.p));
	const char *from = bkr_repo_path(c->from);

	if (!path)
		return bkr_error_oom();
	if (what)
		bkr_text_setf(&c->differs, "%s: other %s there than in %s", path, what, from);
	else if (here)
		bkr_text_setf(&c->differs, "%s: in %s only", path, from);
	else
		bkr_text_setf(&c->differs, "%s: there only, not in %s", path, from);
	free(path);
	return c->differs ? 1 : bkr_error_oom();
}

static bool bytes_differ(const uint8_t *a, size_t al, const uint8_t *b, size_t bl)
{
	return al != bl || (al && memcmp(a, b, al));
}

/* Whether the xattr values kept in blobs @p src (source) and @p dst (destination) differ (*d). */
static int xattr_blob_differs(struct copier *c, const bkr_id *src, const bkr_id *dst, bool *d)
{
	uint8_t *buf = NULL;
	size_t len = 0;
	bkr_id id;
	int err;

	if (c->same_ids) {
		*d = bkr_id_cmp(src, dst) != 0;
		return 0;
	}
	if ((err = bkr_repo_read_blob(c->from, src, BKR_BLOB_DATA, &buf, &len)) < 0)
		return err;
	bkr_repo_blob_id(c->to, buf, len, &id);
	free(buf);
	*d = bkr_id_cmp(&id, dst) != 0;
	return 0;
}

/* Whether entry @p a of the source (leaf @p la, record @p ia) and @p b of the destination hold the
 * same (0) or not (1: c->differs says what); directories' contents are compared by the caller. */
static int same_entry(struct copier *c, const bkr_entry *a, const bkr_tree *la, uint32_t ia, const bkr_entry *b,
		      const bkr_tree *lb, uint32_t ib)
{
	bkr_chunk_ref *ca = NULL, *cb = NULL;
	bkr_hole *ha = NULL, *hb = NULL;
	bkr_xattr *xa = NULL, *xb = NULL;
	size_t nca = 0, ncb = 0, nha = 0, nhb = 0, nxa = 0, nxb = 0;
	const char *what = NULL;
	int err;

	if (a->type != b->type)
		what = "type";
	else if (a->mode != b->mode)
		what = "mode";
	else if (a->uid != b->uid || a->gid != b->gid || bytes_differ(a->user, a->user_len, b->user, b->user_len) ||
		 bytes_differ(a->group, a->group_len, b->group, b->group_len))
		what = "owner";
	else if (a->mtime_ns != b->mtime_ns || a->ctime_ns != b->ctime_ns)
		what = "times";
	else if (a->size != b->size || a->blocks != b->blocks)
		what = "size";
	else if (a->type == BKR_FT_FILE &&
		 (bkr_id_cmp(&a->content, &b->content) != 0 || a->sparse_digest != b->sparse_digest))
		what = "content";
	else if (bytes_differ(a->target, a->target_len, b->target, b->target_len))
		what = "link target";
	else if (a->rdev != b->rdev || a->inode != b->inode || a->nlink != b->nlink || a->link_group != b->link_group)
		what = "device, inode or hardlink group";
	if (what)
		return differs_at(c, what, false);
	if ((err = bkr_tree_chunks(la, ia, &ca, &nca)) < 0 || (err = bkr_tree_chunks(lb, ib, &cb, &ncb)) < 0 ||
	    (err = bkr_tree_holes(la, ia, &ha, &nha)) < 0 || (err = bkr_tree_holes(lb, ib, &hb, &nhb)) < 0 ||
	    (err = bkr_tree_xattrs(la, ia, &xa, &nxa)) < 0 || (err = bkr_tree_xattrs(lb, ib, &xb, &nxb)) < 0)
		goto done;
	if (nca != ncb)
		what = "chunks";
	for (size_t k = 0; !what && k < nca; k++)
		if (ca[k].length != cb[k].length)
			what = "chunks";
	if (!what && (nha != nhb || (nha && memcmp(ha, hb, nha * sizeof(*ha)))))
		what = "holes";
	if (!what && nxa != nxb)
		what = "xattrs";
	for (size_t k = 0; !what && k < nxa; k++) {
		bool d = bytes_differ(xa[k].name, xa[k].name_len, xb[k].name, xb[k].name_len) ||
			xa[k].in_blob != xb[k].in_blob || xa[k].value_len != xb[k].value_len ||
			(!xa[k].in_blob && bytes_differ(xa[k].value, xa[k].value_len, xb[k].value, xb[k].value_len));
		if (!d && xa[k].in_blob && (err = xattr_blob_differs(c, &xa[k].blob, &xb[k].blob, &d)) < 0)
			goto done;
		if (d)
			what = "xattrs";
	}
	err = what ? differs_at(c, what, false) : 0;
done:
	free(ca);
	free(cb);
	free(ha);
	free(hb);
	free(xa);
	free(xb);
	return err;
}

/* What a damaged tree of a backup compared means (dest_damaged): it is taken for the source's. */
#define SAME_UNTOLD "what is below it is not compared, and taken for the source's"

/* Whether directory @p src of the source and @p dst of the destination (at c->path, @p plen bytes of
 * it) hold the same (0) or not (1: c->differs says where and what).  A damaged tree there is taken
 * for the same, named (dest_damaged): what it held cannot be told, and a copy never replaces it. */
static int same_dir(struct copier *c, const bkr_id *src, const bkr_id *dst, size_t plen)
{
	bkr_dir *a = NULL, *b = NULL;
	bkr_id known;
	uint64_t na, nb;
	int err;

	if (bkr_idset_get(&c->same, src, &known) && bkr_id_cmp(&known, dst) == 0)
		return 0;
	if ((err = bkr_dir_open(&a, src, bkr_repo_load_tree, c->from)) < 0)
		goto done;
	c->bad_tree = *dst;
	if ((err = bkr_dir_open(&b, dst, load_dest_tree, c)) < 0) {
		err = dest_damaged(c, err, SAME_UNTOLD);
		goto done;
	}
	na = bkr_dir_count(a);
	nb = bkr_dir_count(b);
	for (uint64_t i = 0; err == 0 && (i < na || i < nb); i++) {
		bkr_entry ea, eb;
		const bkr_tree *la = NULL, *lb = NULL;
		uint32_t lia = 0, lib = 0;
		size_t len;
		int cmp;
		if (i < na && (err = bkr_dir_get(a, i, &ea, &la, &lia)) < 0)
			break;
		c->bad_tree = *dst; /* unless a page of it fails to load (load_dest_tree) */
		if (i < nb && (err = bkr_dir_get(b, i, &eb, &lb, &lib)) < 0) {
			err = dest_damaged(c, err, SAME_UNTOLD);
			goto done;
		}
		cmp = i >= na ? 1 : i >= nb ? -1 : name_cmp(ea.name, ea.name_len, eb.name, eb.name_len);
		if ((err = bkr_pathbuf_set(&c->path, plen, cmp <= 0 ? ea.name : eb.name,
					   cmp <= 0 ? ea.name_len : eb.name_len, &len)) < 0)
			break;
		if (cmp) {
			err = differs_at(c, NULL, cmp < 0);
			break;
		}
		if ((err = same_entry(c, &ea, la, lia, &eb, lb, lib)) == 0 && ea.type == BKR_FT_DIR)
			err = same_dir(c, &ea.subtree, &eb.subtree, len);
	}
	if (err == 0 && !bkr_idset_get(&c->same, src, NULL) && bkr_idset_put(&c->same, src, dst) < 0)
		err = BKR_ENOMEM;
done:
	bkr_dir_free(a);
	bkr_dir_free(b);
	return err;
}

/*
 * Whether backup @p dm of the destination is @p m of the source (0), or
 * another backup under its id (1: *@p line, malloc'd, says so, naming what
 * differs, whole).
 */
static int same_backup(struct copier *c, const bkr_manifest *m, const bkr_manifest *dm, char **line)
{
	const char *in = " in ", *src = bkr_repo_path(c->from);
	char *what = NULL;
	int err;

	if (c->same_ids && bkr_id_cmp(&dm->tree, &m->tree)) {
		char here[BKR_ID_HEX], there[BKR_ID_HEX];
		bkr_id_to_hex(&m->tree, here);
		bkr_id_to_hex(&dm->tree, there);
		bkr_text_setf(&what, "root tree %s there, %s", there, here);
	} else if (!manifest_differs(m, dm, &what)) {
		if (c->same_ids)
			return 0;
		size_t len;
		bkr_id key;
		same_key(m->backup_id, &m->tree, &dm->tree, &key);
		if (bkr_idset_has(&c->known, &key))
			return bkr_idset_add(&c->confirmed, &key) < 0 ? bkr_error_oom() : 0;
		c->dest_backup = dm->backup_id;
		c->met_damage = false;
		if ((err = bkr_pathbuf_set(&c->path, 0, "", 0, &len)) < 0 || (err = same_dir(c, &m->tree, &dm->tree, 0)) < 0)
			return err;
		if (err == 0 && !c->met_damage && bkr_idset_add(&c->confirmed, &key) < 0)
			return bkr_error_oom();
		if (err == 0)
			return 0;
		what = c->differs; /* it names the source */
		c->differs = NULL;
		in = src = "";
	}
	if (what)
		bkr_text_setf(line, "backup %s: not copied: %s has another backup under that id (%s%s%s)", m->backup_id,
			      bkr_repo_path(c->to), what, in, src);
	free(what);
	return *line ? 1 : bkr_error_oom();
}

/* ---- the run -------------------------------------------------------------------- */

/* Which backups of @p l to copy (want[i]); BKR_ENOTFOUND/BKR_EAMBIGUOUS for a spec, BKR_ECORRUPT for
 * 'latest' when the newest-named manifest (@p bad) is damaged: 'latest' as every command means it (the newest made
 * by now, one dated in the future passed over), chosen in this listing. */
static int select_backups(bkr_repo *from, const bkr_copy_options *o, const bkr_manifest_list *l,
			  const bkr_latest_bad *bad, bool *want, size_t *n)
{
	int err = 0;

	*n = 0;
	if (!o->nspecs) {
		for (size_t i = 0; i < l->n; i++)
			want[i] = true;
		*n = l->n;
		return 0;
	}
	for (size_t k = 0; k < o->nspecs && err == 0; k++) {
		size_t hit;
		err = bkr_repo_resolve_listed(from, false, l, bad, o->specs[k], o->passed, o->ctx, &hit);
		if (err == 0 && !want[hit]) {
			want[hit] = true;
			(*n)++;
		}
	}
	return err;
}

static bool has_id(char **ids, size_t n, const char *id)
{
	size_t lo = 0, hi = n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int cmp = strcmp(ids[mid], id);
		if (cmp == 0)
			return true;
		if (cmp < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return false;
}

/* Whether both sides name blobs alike: both plain, or encrypted under the same MAC key. */
static bool same_ids(bkr_repo *from, bkr_repo *to)
{
	const bkr_crypto *a = bkr_repo_crypto(from), *b = bkr_repo_crypto(to);
	if (!a || !b)
		return !a && !b;
	return !memcmp(bkr_crypto_mac_key(a), bkr_crypto_mac_key(b), BKR_CRYPTO_KEY_SIZE);
}

struct bad_ctx {
	const bkr_copy_options *o;
	size_t n;
	bkr_latest_bad latest; /* for 'latest' */
};

static void on_bad(void *ctx, const char *file, const char *message)
{
	struct bad_ctx *b = ctx;
	b->n++;
	bkr_latest_bad_note(&b->latest, file);
	bkr_log_event(BKR_LOG_WARN, "copy", "damaged-manifest", (const char *[]){ "file", file, NULL },
		      "%s: not copied: %s", file, message);
	if (b->o->warning) {
		char *line = NULL;
		bkr_text_setf(&line, "%s: not copied: %s", file, message);
		b->o->warning(b->o->ctx, line ? line : "a damaged manifest not copied (out of memory naming it)");
		free(line);
	}
}

static void log_copied(struct copier *c, const bkr_manifest *m)
{
	char blobs[24], bytes[24];
	snprintf(blobs, sizeof(blobs), "%llu", (unsigned long long)c->one.blobs_sent);
	snprintf(bytes, sizeof(bytes), "%llu", (unsigned long long)c->one.bytes_sent);
	bkr_log_event(BKR_LOG_INFO, "copy", "copied",
		      (const char *[]){ "backup_id", m->backup_id, "from", bkr_repo_path(c->from), "to",
					bkr_repo_path(c->to), "blobs_sent", blobs, "bytes_sent", bytes, NULL },
		      "backup %s copied from %s to %s: %s blobs, %s bytes sent", m->backup_id, bkr_repo_path(c->from),
		      bkr_repo_path(c->to), blobs, bytes);
}

/* Backup @p id is not copied: @p line, a warning; *n counts it. */
static void not_copied(struct copier *c, const char *id, const char *event, const char *line, size_t *n)
{
	(*n)++;
	bkr_log_event(BKR_LOG_WARN, "copy", event, (const char *[]){ "backup_id", id, NULL }, "%s", line);
	if (c->o->warning)
		c->o->warning(c->o->ctx, line);
}

static bool has_tag(const bkr_manifest *m, const char *tag)
{
	for (size_t i = 0; i < m->ntags; i++)
		if (!strcmp(m->tags[i], tag))
			return true;
	return false;
}

/* Append ", " (unless first) and @p what and @p text (escaped) to @p buf. */
static void change_add(char *buf, size_t cap, const char *what, const char *text)
{
	size_t len = strlen(buf);
	char safe[300];
	if (len + 1 < cap)
		snprintf(buf + len, cap - len, "%s%s%s", len ? ", " : "", what,
			 text ? bkr_text_escape(safe, sizeof(safe), text, strlen(text)) : "");
}

static const char *pin_name(const char *until)
{
	return !until ? "none" : !*until ? "forever" : until;
}

/*
 * Backup @p m is @p dm in the destination (its records @p drs there not yet
 * applied): make its tags and pin there the source's, writing the records
 * 'bkr tag' and 'bkr pin' write (none with dry_run), unless o->no_sync_tags.
 * Tags are compared as sets: an order alone changes nothing.
 */
static int sync_tags(struct copier *c, const bkr_manifest *m, bkr_manifest *dm, const bkr_records *drs)
{
	char change[2048] = "", pin[200];
	bkr_repo *w = c->o->dry_run ? NULL : c->to;
	int err = 0;

	if (c->o->no_sync_tags)
		return 0;
	if ((err = bkr_records_apply(drs, dm)) < 0)
		return err;
	for (size_t i = 0; i < m->ntags && err == 0; i++)
		if (!has_tag(dm, m->tags[i])) {
			change_add(change, sizeof(change), "+tag ", m->tags[i]);
			if (w)
				err = bkr_repo_add_backup_record(w, "tag", m->backup_id, "tag", m->tags[i]);
		}
	for (size_t i = 0; i < dm->ntags && err == 0; i++)
		if (!has_tag(m, dm->tags[i])) {
			change_add(change, sizeof(change), "-tag ", dm->tags[i]);
			if (w)
				err = bkr_repo_add_backup_record(w, "untag", m->backup_id, "tag", dm->tags[i]);
		}
	if (err == 0 && str_differs(m->pinned_until, dm->pinned_until)) {
		snprintf(pin, sizeof(pin), "%s -> %s", pin_name(dm->pinned_until), pin_name(m->pinned_until));
		change_add(change, sizeof(change), "pin ", pin);
		if (w && m->pinned_until)
			err = bkr_repo_add_backup_record(w, "pin", m->backup_id, "until",
							 *m->pinned_until ? m->pinned_until : NULL);
		else if (w)
			err = bkr_repo_add_backup_record(w, "unpin", m->backup_id, NULL, NULL);
	}
	if (err < 0) {
		bkr_error_prefix("backup %s: its tags and pin in %s", m->backup_id, bkr_repo_path(c->to));
		return err;
	}
	if (change[0]) {
		c->one.backups_updated = 1;
		if (c->o->on_update)
			c->o->on_update(c->o->ctx, m, change);
	}
	return 0;
}

/* sync_tags for backup @p m just published in the destination. */
static int sync_copied(struct copier *c, const bkr_manifest *m, const bkr_records *drs)
{
	bkr_manifest *dm = NULL;
	int err = bkr_repo_load_manifest(c->to, false, m->backup_id, &dm);
	if (err == 0)
		err = sync_tags(c, m, dm, drs);
	bkr_manifest_free(dm);
	return err;
}

/*
 * Backup @p m is in the destination: whether its manifest there reads and
 * is this backup (0: *@p out gets it, records not applied), or is damaged
 * (1: named in a warning, counted in *ndamaged), or is another backup under
 * that id (1: named with what differs, counted in *nother; same_backup).  A
 * backup counts as present only when it reads: a damaged copy is never
 * taken for a good one, and never replaced (a manifest is published last
 * and never replacing).  Any other failure (the server, a tree that does
 * not read) is the copy's.
 */
static int dest_readable(struct copier *c, const bkr_manifest *m, bkr_manifest **out, size_t *ndamaged, size_t *nother)
{
	bkr_manifest *dm = NULL;
	char *line = NULL;
	int err = bkr_repo_load_manifest(c->to, false, m->backup_id, &dm);

	*out = NULL;
	if (err == BKR_ECORRUPT) {
		if (!bkr_text_setf(&line, "backup %s: not copied: it is in %s, but its manifest there is damaged (%s)",
				   m->backup_id, bkr_repo_path(c->to), bkr_error_message()))
			return bkr_error_oom();
		bkr_error_clear();
		not_copied(c, m->backup_id, "damaged-destination", line, ndamaged);
		free(line);
		return 1;
	}
	if (err == 0 && (err = same_backup(c, m, dm, &line)) < 0)
		bkr_error_prefix("backup %s: comparing it with the one in %s", m->backup_id, bkr_repo_path(c->to));
	if (err == 1)
		not_copied(c, m->backup_id, "other-destination", line, nother);
	free(line);
	if (err == 0)
		*out = dm;
	else
		bkr_manifest_free(dm);
	return err;
}

/*
 * Between repositories that name blobs differently: the destination's manifest of an earlier
 * backup to take blob ids from for backup @p i of @p l (its parent, else the newest earlier one
 * of the same host), when the destination had it before this run (@p have), or NULL.  A hint
 * only: map_entry takes a file's ids from it only when the file there holds the same.
 */
static bkr_manifest *hint_backup(struct copier *c, const bkr_manifest_list *l, size_t i, char **have, size_t nhave)
{
	const bkr_manifest *m = l->items[i];
	const char *id = NULL;
	bkr_manifest *hm = NULL;

	if (m->parent && has_id(have, nhave, m->parent))
		id = m->parent;
	for (size_t k = i; !id && k-- > 0;)
		if (!str_differs(l->items[k]->hostname, m->hostname) && has_id(have, nhave, l->items[k]->backup_id))
			id = l->items[k]->backup_id;
	if (id && bkr_repo_load_manifest(c->to, false, id, &hm) < 0) {
		bkr_error_clear(); /* damaged there: no hint, every file is read */
		hm = NULL;
	}
	return hm;
}

/* The blobs a verify or damage record of the destination names: read there before they are used. */
static int note_suspect(void *ctx, const bkr_id *ids, size_t n, uint64_t omitted)
{
	(void)omitted;
	for (size_t i = 0; i < n; i++)
		if (bkr_idset_add(ctx, &ids[i]) < 0)
			return bkr_error_oom();
	return 0;
}

int bkr_copy_run(bkr_repo *from, bkr_repo *to, const bkr_copy_options *o, bkr_copy_stats *stats)
{
	struct copier c = {
		.from = from, .to = to, .o = o, .map = BKR_IDSET_INIT, .same = BKR_IDSET_INIT, .path = BKR_PATHBUF_INIT
	};
	bkr_manifest_list l = { 0 };
	bkr_records *drs = NULL;
	bkr_lock *lock = NULL;
	char **have = NULL;
	struct bad_ctx bad = { o, 0, BKR_LATEST_BAD_INIT(bkr_time_now_ns()) };
	size_t nhave = 0, ndamaged = 0, nother = 0;
	bool *want = NULL;
	int err;

	if (stats)
		memset(stats, 0, sizeof(*stats));
	if (!strcmp(bkr_repo_get_config(from)->id, bkr_repo_get_config(to)->id)) {
		err = bkr_error_set(BKR_EINVAL, "%s and %s are the same repository (id %s): refusing to copy into itself",
				    bkr_repo_path(from), bkr_repo_path(to), bkr_repo_get_config(to)->id);
		goto done;
	}
	c.same_ids = same_ids(from, to);
	if (!c.same_ids)
		cache_read(&c);
	if ((err = bkr_repo_list_cb(from, false, &l, on_bad, &bad)) < 0)
		goto done;
	if (!(want = calloc(l.n ? l.n : 1, sizeof(*want)))) {
		err = bkr_error_oom();
		goto done;
	}
	if ((err = select_backups(from, o, &l, &bad.latest, want, &c.nbackups)) < 0)
		goto done;
	if (!o->dry_run) {
		/* as a backup: the shared lock, then the index as it is now, then the writer (its mark) */
		if ((err = bkr_repo_lock_or_wait(to, BKR_LOCK_SHARED, o->no_wait, o->waiting, o->ctx, &lock)) < 0 ||
		    (err = bkr_repo_reload_index(to)) < 0 ||
		    (err = bkr_writer_new(&c.w, to)) < 0)
			goto done;
	}
	/* the destination's catalog as it is now (under the shared lock): its records, then its backups */
	if ((err = bkr_repo_records_read(to, &drs)) < 0 || (err = bkr_repo_list_ids(to, false, &have, &nhave)) < 0 ||
	    (err = bkr_damaged_blobs_foreach_in(drs, note_suspect, &c.suspect)) < 0)
		goto done;
	for (size_t i = 0; i < l.n; i++) {
		bkr_manifest *m = l.items[i];
		bool exists = false;
		if (!want[i])
			continue;
		c.backup++;
		memset(&c.one, 0, sizeof(c.one));
		bkr_manifest *dm = NULL;
		if (has_id(have, nhave, m->backup_id) && (err = dest_readable(&c, m, &dm, &ndamaged, &nother)) < 0)
			goto done;
		if (dm && (err = sync_tags(&c, m, dm, drs)) == 0 && o->heal && (err = heal_backup(&c, m, dm)) < 0)
			bkr_error_prefix("backup %s: healing it in %s", m->backup_id, bkr_repo_path(to));
		if (dm && err < 0) {
			bkr_manifest_free(dm);
			stats_add(&c.run, &c.one);
			goto done;
		}
		bkr_manifest_free(dm);
		if (has_id(have, nhave, m->backup_id) && err == 1)
			continue; /* damaged there or another backup: named, counted, never copied over */
		if (!has_id(have, nhave, m->backup_id)) {
			bkr_manifest *hm = c.same_ids ? NULL : hint_backup(&c, &l, i, have, nhave);
			bkr_id src_root = m->tree, key;
			progress(&c);
			err = copy_backup(&c, m, hm, &exists);
			if (err == 0 && !exists && c.w && !c.same_ids) {
				same_key(m->backup_id, &src_root, &m->tree, &key);
				if (bkr_idset_add(&c.confirmed, &key) < 0)
					err = bkr_error_oom();
			}
			bkr_manifest_free(hm);
			if (err < 0) {
				bkr_error_prefix("backup %s", m->backup_id);
				stats_add(&c.run, &c.one);
				goto done;
			}
		}
		/* records of an earlier backup of this id there (deleted since) apply to the new manifest too */
		if (!has_id(have, nhave, m->backup_id) && !exists && c.w && (err = sync_copied(&c, m, drs)) < 0)
			goto done;
		if (exists || has_id(have, nhave, m->backup_id))
			c.one.backups_skipped = 1;
		else
			c.one.backups_copied = 1;
		if (c.one.backups_copied && !o->dry_run)
			log_copied(&c, m);
		if (o->on_backup)
			o->on_backup(o->ctx, m, c.one.backups_copied, &c.one);
		stats_add(&c.run, &c.one);
	}
	memset(&c.one, 0, sizeof(c.one));
	err = 0;
	if (!c.same_ids && !o->dry_run)
		cache_write(&c, o->nspecs > 0);
	if (ndamaged)
		err = bkr_error_set(BKR_ECORRUPT, "%s: %zu backup%s to copy %s there with a damaged manifest (named above): "
				    "not copied over; delete %s there (bkr delete --force ID) and copy again",
				    bkr_repo_path(to), ndamaged, ndamaged == 1 ? "" : "s", ndamaged == 1 ? "is" : "are",
				    ndamaged == 1 ? "it" : "them");
	else if (nother)
		err = bkr_error_set(BKR_EEXISTS, "%s: %zu backup%s to copy %s there with other content under the same id "
				    "(named above): not copied over", bkr_repo_path(to), nother, nother == 1 ? "" : "s",
				    nother == 1 ? "is" : "are");
	else if (bad.n && !o->nspecs)
		/* every backup was asked for: one left out is no success (as for list) */
		err = bkr_error_set(BKR_ECORRUPT, "%s: %zu backup%s not copied: %s manifest%s there %s damaged (named "
				    "above); every other backup is in %s", bkr_repo_path(from), bad.n, bad.n == 1 ? "" : "s",
				    bad.n == 1 ? "its" : "their", bad.n == 1 ? "" : "s", bad.n == 1 ? "is" : "are",
				    bkr_repo_path(to));
done:
	if (stats)
		*stats = c.run;
	bkr_writer_free(c.w);
	bkr_lock_release(lock);
	bkr_repo_ids_free(have, nhave);
	bkr_idset_free(&c.map);
	bkr_idset_free(&c.same);
	bkr_idset_free(&c.damaged);
	bkr_idset_free(&c.intact);
	bkr_idset_free(&c.suspect);
	bkr_idset_free(&c.known);
	bkr_idset_free(&c.confirmed);
	free(c.cache_dir);
	free(c.cache_name);
	free(c.differs);
	bkr_records_free(drs);
	bkr_pathbuf_free(&c.path);
	bkr_manifest_list_free(&l);
	bkr_latest_bad_free(&bad.latest);
	free(want);
	return err;
}
