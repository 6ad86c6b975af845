/** @file
 * Extended attributes (xattr.h): the recorded ones of an entry (small
 * values inline in the tree, large ones in a blob), the two of bkrfs, and
 * the EOPNOTSUPP of a namespace a backup never recorded.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <inttypes.h>
#include <stdio.h>

#include "bkr/error.h"
#include "bkr/manifest.h"
#include "bkr/tree.h"
#include "bkr/verify_record.h"
#include "bkrfs.h"
#include "catalog.h"
#include "node.h"
#include "read.h"
#include "xattr.h"

/* the xattrs of an entry inode; *holder keeps *xs valid */
static int entry_xattrs(struct bkrfs *fs, bkrfs_inode *i, bkrfs_cache_entry **holder, bkr_xattr **xs, size_t *n)
{
	const bkr_tree *leaf;
	uint32_t li;
	bkr_entry e;
	void *v;
	int err;

	*holder = NULL;
	*xs = NULL;
	*n = 0;
	if (i->kind != BKRFS_NODE_ENTRY)
		return 0;
	if ((err = bkrfs_cache_get(fs->dirs, &i->parent_tree, holder, &v)) < 0 ||
	    (err = bkr_dir_get(v, i->parent_index, &e, &leaf, &li)) < 0 ||
	    (err = bkr_tree_xattrs(leaf, li, xs, n)) < 0) {
		bkrfs_cache_release(fs->dirs, *holder);
		*holder = NULL;
		return bkrfs_node_tree_errno(fs, i, err);
	}
	return 0;
}

/*
 * A backup whose manifest says no entry carried a security.* xattr (a POSIX
 * ACL) answers EOPNOTSUPP for that namespace, as a filesystem without
 * security labels (ACLs) would: `ls -l` asks security.selinux and
 * system.posix_acl_access of every file and remembers "not supported" per
 * device, so it stops asking (a round trip per file otherwise, cold or
 * warm).  Older manifests, recovery runs and backups with labels (ACLs)
 * answer ENODATA exactly.
 */
static bool namespace_absent(struct bkrfs *fs, bkrfs_inode *i, const char *name)
{
	const bkr_manifest *m;
	bool security = !strncmp(name, "security.", 9), acl = !strncmp(name, "system.posix_acl_", 17);

	if (!(security || acl))
		return false;
	if (!i->snap || i->snap->run || bkrfs_snap_manifest(fs, i->snap, &m) < 0) {
		bkr_error_clear();
		return false;
	}
	return security ? m->stats.security_xattrs == 0 : m->stats.acl_xattrs == 0;
}

/* a copy of @p len bytes at @p p */
static int dup_value(const void *p, size_t len, uint8_t **val, size_t *out_len)
{
	if (!(*val = malloc(len ? len : 1)))
		return ENOMEM;
	memcpy(*val, p, len);
	*out_len = len;
	return 0;
}

/* the newest verify record that covers backup @p id (NULL: any) finished at or after @p since_ns */
struct verify_find {
	const char *id;
	int64_t since_ns;
	char out[512];
	bool found;
};

static int verify_pick(void *ctx, const bkr_verify_record *rec)
{
	struct verify_find *v = ctx;
	char when[32];

	if (v->id && ((rec->backup_id && strcmp(rec->backup_id, v->id)) || rec->time_ns < v->since_ns))
		return 0;
	bkr_time_format(when, rec->time_ns);
	snprintf(v->out, sizeof(v->out),
		 "time=%s result=%s scope=%s read_data=%s errors=%" PRIu64 " damaged_blobs=%zu damaged_files=%" PRIu64 "%s%s",
		 when, bkr_verify_result_name(rec->result), rec->backup_id ? rec->backup_id : "all",
		 rec->read_data ? "yes" : "no", rec->stats.errors, rec->ndamaged + (size_t)rec->damaged_omitted,
		 rec->damaged_files, rec->message ? " message=" : "", rec->message ? rec->message : "");
	v->found = true;
	return 1;
}

/*
 * user.bkr.verify: the root's is the repository's last verify, a backup
 * root's the last one that checked that backup (all of them, or it alone)
 * after it was made; "result=never" when none did.  Read from records/ at
 * every call (the kernel does not cache xattrs), so a verify that has just
 * finished shows.
 */
static int verify_value(struct bkrfs *fs, bkrfs_inode *i, uint8_t **val, size_t *len)
{
	struct verify_find v = { .id = NULL };
	int err;

	if (i->kind == BKRFS_NODE_SNAP_ROOT) {
		const bkr_manifest *m;
		v.id = i->snap->id;
		/* the manifest's time is precise; the id's is to the second */
		if (bkrfs_snap_manifest(fs, i->snap, &m) < 0 || !m->timestamp ||
		    bkr_time_parse(m->timestamp, &v.since_ns) < 0) {
			bkr_error_clear();
			v.since_ns = i->snap->time * 1000000000LL;
		}
	}
	if ((err = bkr_verify_record_foreach(fs->repo, true, verify_pick, &v)) < 0) {
		bkrfs_log(fs, "user.bkr.verify: %s", bkr_error_message());
		bkr_error_clear();
		return EIO;
	}
	if (!v.found)
		snprintf(v.out, sizeof(v.out), "result=never");
	return dup_value(v.out, strlen(v.out), val, len);
}

/* user.bkr.damage: the chunks this mount answered EIO for, and the last one */
static int damage_value(struct bkrfs *fs, uint8_t **val, size_t *len)
{
	struct bkrfs_seen *s = &fs->seen;
	char out[640];

	pthread_mutex_lock(&s->lock);
	if (s->n)
		snprintf(out, sizeof(out), "eio_chunks=%u last=%s", s->n, s->last);
	else
		snprintf(out, sizeof(out), "eio_chunks=0");
	pthread_mutex_unlock(&s->lock);
	return dup_value(out, strlen(out), val, len);
}

/* report.json's SHA-256: its blob id is one only in a plain repository (an
 * encrypted one's is an HMAC, docs/format.md "Blob ids"), so its bytes are
 * hashed (read once, kept with the inode for reads) */
static int report_sha256(struct bkrfs *fs, bkrfs_inode *i, uint8_t **val, size_t *len)
{
	struct bkrfs_file *f;
	char hex[BKR_ID_HEX];
	bkr_id sum;
	int err;

	if ((err = bkrfs_file_of(fs, i, &f)))
		return err;
	bkr_sha256(f->report, f->report_len, &sum);
	bkr_id_to_hex(&sum, hex);
	return dup_value(hex, 64, val, len);
}

static bool has_verify(const bkrfs_inode *i)
{
	return i->kind == BKRFS_NODE_ROOT || (i->kind == BKRFS_NODE_SNAP_ROOT && !i->snap->run);
}

int bkrfs_xattr_get(struct bkrfs *fs, bkrfs_inode *i, const char *name, uint8_t **val, size_t *len)
{
	bkrfs_cache_entry *holder = NULL;
	bkr_xattr *xs = NULL;
	size_t n = 0, nl = strlen(name);
	int err;

	*val = NULL;
	*len = 0;
	if (!strcmp(name, BKRFS_XATTR_BACKUP_ID) && i->snap)
		return dup_value(i->snap->id, strlen(i->snap->id), val, len);
	if (!strcmp(name, BKRFS_XATTR_VERIFY) && has_verify(i))
		return verify_value(fs, i, val, len);
	if (!strcmp(name, BKRFS_XATTR_DAMAGE) && i->kind == BKRFS_NODE_ROOT)
		return damage_value(fs, val, len);
	if (!strcmp(name, BKRFS_XATTR_SHA256) && i->kind == BKRFS_NODE_REPORT)
		return report_sha256(fs, i, val, len);
	/* a file with holes has a sparse digest (docs/format.md), not a SHA-256 */
	if (!strcmp(name, BKRFS_XATTR_SHA256) && i->kind == BKRFS_NODE_ENTRY && i->ftype == BKR_FT_FILE &&
	    !i->sparse_digest) {
		char hex[BKR_ID_HEX];
		bkr_id_to_hex(&i->content, hex);
		return dup_value(hex, 64, val, len);
	}
	if ((err = entry_xattrs(fs, i, &holder, &xs, &n)))
		goto out;
	err = ENODATA;
	for (size_t k = 0; k < n; k++) {
		if (xs[k].name_len != nl || memcmp(xs[k].name, name, nl) != 0)
			continue;
		if (xs[k].in_blob) {
			int e = bkr_repo_read_blob(fs->repo, &xs[k].blob, BKR_BLOB_DATA, val, len);
			if (e < 0) {
				bkrfs_log(fs, "%s %s, file '%s': xattr %s: %s", i->snap->run ? "run" : "backup",
					  i->snap->id, i->path, name, bkr_error_message());
				err = EIO;
				break;
			}
			err = 0;
		} else {
			err = dup_value(xs[k].value, xs[k].value_len, val, len);
		}
		break;
	}
out:
	if (err == ENODATA && namespace_absent(fs, i, name))
		err = EOPNOTSUPP;
	free(xs);
	bkrfs_cache_release(fs->dirs, holder);
	return err;
}

int bkrfs_xattr_list(struct bkrfs *fs, bkrfs_inode *i, char **names, size_t *len)
{
	bkrfs_cache_entry *holder = NULL;
	bkr_xattr *xs = NULL;
	size_t n = 0, total = 0;
	char *p;
	int err;

	*names = NULL;
	*len = 0;
	if (has_verify(i)) {
		/* the ones bkrfs answers here, for getfattr -d */
		static const char at_root[] = BKRFS_XATTR_VERIFY "\0" BKRFS_XATTR_DAMAGE "\0";
		size_t k = i->kind == BKRFS_NODE_ROOT ? sizeof(at_root) - 1 : sizeof(BKRFS_XATTR_VERIFY);
		if (!(*names = malloc(k)))
			return ENOMEM;
		memcpy(*names, at_root, k);
		*len = k;
		return 0;
	}
	if ((err = entry_xattrs(fs, i, &holder, &xs, &n)))
		return err;
	for (size_t k = 0; k < n; k++)
		total += xs[k].name_len + 1;
	if (!(*names = p = malloc(total ? total : 1))) {
		err = ENOMEM;
		goto out;
	}
	for (size_t k = 0; k < n; k++) {
		memcpy(p, xs[k].name, xs[k].name_len);
		p += xs[k].name_len;
		*p++ = 0;
	}
	*len = total;
out:
	free(xs);
	bkrfs_cache_release(fs->dirs, holder);
	return err;
}
