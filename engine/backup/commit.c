/** @file
 * Phase 3 of a backup: the trees are built bottom-up (iteratively) with
 * bkr_tree_builder, the writer commits packs then the index, the root tree
 * and every new blob are checked, and the manifest is published.
 */
#include "backup_i.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bkr/catalog.h"
#include "bkr/clock.h"
#include "bkr/compress.h"
#include "bkr/error.h"
#include "bkr/log.h"

static int emit_tree(void *ctx, bkr_id *id, const uint8_t *blob, size_t len)
{
	bctx *c = ctx;
	bool is_new = false;
	uint32_t stored = 0;
	int err;
	bkr_writer_blob_id(c->w, blob, len, id);
	err = bkr_writer_put(c->w, BKR_BLOB_TREE, id, blob, len, &is_new, &stored);
	if (err < 0)
		return err;
	bkr_bk_note_blob(c, id, 0, is_new, stored);
	return 0;
}

/* Build the trees of @p root bottom-up; counts files/bytes into @p ms. */
static int build_trees(bctx *c, bkr_tree_builder *b, node *root, bkr_manifest_source *ms)
{
	typedef struct { node *n; size_t next; } frame;
	frame *stack = NULL;
	size_t depth = 0, cap = 64;
	int err = 0;

	if (!(stack = malloc(cap * sizeof(*stack))))
		return bkr_error_oom();
	stack[depth++] = (frame){ root, 0 };
	while (depth > 0) {
		frame *f = &stack[depth - 1];
		node *kid = NULL;
		while (f->next < f->n->nkids) {
			node *k = f->n->kids[f->next++];
			if (k->type == BKR_FT_DIR && !k->skip) {
				kid = k;
				break;
			}
		}
		if (kid) {
			if (depth == cap) {
				frame *s = realloc(stack, cap * 2 * sizeof(*s));
				if (!s) {
					err = bkr_error_oom();
					goto done;
				}
				stack = s;
				cap *= 2;
			}
			stack[depth++] = (frame){ kid, 0 };
			continue;
		}
		/* all subdirectories done: this directory's tree */
		node *d = f->n;
		for (size_t i = 0; i < d->nkids; i++) {
			node *k = d->kids[i];
			bkr_entry e;
			if (k->alias && k->alias->skip && !k->skip) {
				k->skip = true;
				bkr_bk_warn(c, k, "hardlink to a skipped file, skipped");
			}
			if (k->skip)
				continue;
			bkr_bk_node_entry(k, &e);
			bkr_bk_count_xattrs(c, k);
			if ((err = bkr_tree_builder_add(b, &e)) < 0) {
				char *p = bkr_bk_node_path(k);
				bkr_error_prefix("%s", p ? p : "?");
				free(p);
				goto done;
			}
			if (k->type == BKR_FT_DIR) {
				c->st.dirs++;
			} else {
				c->st.files++;
				ms->files_backed_up++;
				if (k->type == BKR_FT_FILE) {
					c->st.bytes += e.size;
					ms->total_size_bytes += e.size;
				}
			}
		}
		if ((err = bkr_tree_builder_finish(b, emit_tree, c, &d->subtree)) < 0)
			goto done;
		depth--;
	}
done:
	free(stack);
	return err;
}

static char *xstrdup(const char *s)
{
	return strdup(s ? s : "");
}

static int verify_result(bctx *c, const bkr_id *root)
{
	uint8_t *blob = NULL;
	size_t len = 0;
	bkr_tree *t = NULL;
	bkr_index_entry ie;
	char hex[BKR_ID_HEX];
	int err;

	if ((err = bkr_repo_read_blob(c->repo, root, BKR_BLOB_TREE, &blob, &len)) < 0)
		goto done;
	if ((err = bkr_tree_parse(&t, blob, len)) < 0)
		goto done;
	for (size_t i = 0; i < c->nnew; i++) {
		if ((err = bkr_repo_lookup(c->repo, &c->new_ids[i], &ie)) < 0) {
			bkr_id_to_hex(&c->new_ids[i], hex);
			err = bkr_error_set(BKR_ECORRUPT, "new blob %s is not in the index after commit", hex);
			goto done;
		}
	}
done:
	bkr_tree_free(t);
	return err;
}

/* The manifest's fields other than sources and trees; takes the warnings. */
static int fill_manifest(bctx *c, bkr_manifest *m, int64_t start_ns)
{
	const bkr_backup_options *o = c->o;
	char id[128], ts[32];
	int err;

	if ((err = bkr_backup_id_new(id, sizeof(id), o->type, start_ns)) < 0)
		return err;
	bkr_time_format(ts, start_ns);
	m->type = o->type;
	m->time_ns = start_ns;
	if (!(m->backup_id = strdup(id)) || !(m->timestamp = strdup(ts)) ||
	    !(m->hostname = xstrdup(c->hostname)) || !(m->workspace_root = xstrdup(o->workspace_root)) ||
	    !(m->integrity_check = strdup("passed")) || !(m->restore_test = strdup("skipped")) ||
	    (c->parent && !(m->parent = strdup(c->parent->backup_id))) ||
	    (o->type == BKR_BACKUP_SNAPSHOT && !(m->pinned_until = xstrdup(o->pinned_until))))
		return bkr_error_oom();
	if (o->ntags) {
		if (!(m->tags = calloc(o->ntags, sizeof(*m->tags))))
			return bkr_error_oom();
		for (size_t i = 0; i < o->ntags; i++) {
			if (!(m->tags[i] = xstrdup(o->tags[i])))
				return bkr_error_oom();
			m->ntags++;
		}
	}
	m->warnings = c->warnings;
	m->nwarnings = c->nwarn;
	c->warnings = NULL;
	c->nwarn = 0;
	m->stats = c->st;
	return 0;
}

int bkr_bk_commit(bctx *c, int64_t t0, bkr_manifest **out)
{
	const bkr_backup_options *o = c->o;
	const bkr_repo_config *cfg = bkr_repo_get_config(c->repo);
	const char *compression = cfg->codec == BKR_CODEC_ZSTD ? "zstd" : cfg->level > 0 ? "zlib" : "none";
	bkr_tree_builder *b = NULL;
	bkr_manifest *m = NULL;
	int err;

	c->phase = 3;
	bkr_bk_progress(c, NULL, true);
	if (!(m = bkr_manifest_new()) || !(m->sources = calloc(o->nsources, sizeof(*m->sources)))) {
		err = bkr_error_oom();
		goto done;
	}
	m->nsources = o->nsources;
	if ((err = bkr_tree_builder_new(&b)) < 0)
		goto done;
	for (size_t i = 0; i < o->nsources; i++) {
		bkr_manifest_source *ms = &m->sources[i];
		if (!(ms->source = xstrdup(o->sources[i].name)) || !(ms->path = xstrdup(o->sources[i].path)) ||
		    !(ms->compression = xstrdup(compression))) {
			err = bkr_error_oom();
			goto done;
		}
		if ((err = build_trees(c, b, c->roots[i], ms)) < 0)
			goto done;
		ms->tree = c->roots[i]->subtree;
		c->st.dirs++;
	}
	for (size_t i = 0; i < o->nsources; i++) {
		bkr_entry e;
		bkr_bk_node_entry(c->roots[i], &e);
		bkr_bk_count_xattrs(c, c->roots[i]);
		if ((err = bkr_tree_builder_add(b, &e)) < 0)
			goto done;
	}
	if ((err = bkr_tree_builder_finish(b, emit_tree, c, &m->tree)) < 0)
		goto done;
	if ((err = bkr_writer_commit(c->w)) < 0)
		goto done;
	if ((err = verify_result(c, &m->tree)) < 0)
		goto done;
	if ((err = fill_manifest(c, m, c->time_ns)) < 0)
		goto done;
	m->duration_seconds = (double)(bkr_clock_mono_ns() - t0) / 1e9;
	if ((err = bkr_repo_publish_manifest(c->repo, m)) < 0)
		goto done;
	{
		char files[24], bytes[24], added[24], warns[24];
		snprintf(files, sizeof(files), "%llu", (unsigned long long)m->stats.files);
		snprintf(bytes, sizeof(bytes), "%llu", (unsigned long long)m->stats.bytes);
		snprintf(added, sizeof(added), "%llu", (unsigned long long)m->stats.new_bytes);
		snprintf(warns, sizeof(warns), "%zu", m->nwarnings);
		bkr_log_event(BKR_LOG_INFO, "backup", "created",
			      (const char *[]){ "backup_id", m->backup_id, "type", bkr_backup_type_name(m->type),
						"files", files, "bytes", bytes, "new_bytes", added, "warnings", warns, NULL },
			      "backup %s done: %s files, %s bytes (%s new), %s warnings", m->backup_id, files, bytes,
			      added, warns);
	}
	if (out) {
		*out = m;
		m = NULL;
	}
done:
	bkr_tree_builder_free(b);
	bkr_manifest_free(m);
	return err;
}
