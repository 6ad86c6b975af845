/** @file
 * Where a recovery run is kept.  In the repository: the recovered files
 * chunked into data blobs (bkr_content, as a backup stores them), a tree
 * mirroring their workspace paths, the report as a data blob referenced by
 * the run manifest's "report".  When the repository cannot be written: staged
 * in <staging_dir>/<run_id>/ (files/ and report.json), each file committed
 * through io.c.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bkr/content.h"
#include "bkr/clock.h"
#include "bkr/lock.h"
#include "bkr/log.h"
#include "bkr/error.h"
#include "bkr/io.h"
#include "bkr/manifest.h"
#include "bkr/repo.h"
#include "bkr/tree.h"
#include "recover_i.h"

/* ---- in the repository ---------------------------------------------------- */

typedef struct {
	bkr_recover *rc;
	bkr_writer *w;
	bkr_content *content;
	int64_t now;
	uint64_t files, dirs, bytes;
} store_ctx;

static int put_file(store_ctx *c, const bkr_rec_file *f, bkr_entry *e, bkr_chunk_ref **refs)
{
	uint64_t size = 0;
	bkr_id content;
	int err;

	*refs = NULL;
	e->uid = f->uid;
	e->gid = f->gid;
	if (f->link) {
		e->type = BKR_FT_SYMLINK;
		e->mode = S_IFLNK | 0777;
		e->target = (const uint8_t *)f->link;
		e->target_len = f->len;
		e->mtime_ns = f->mtime_ns ? f->mtime_ns : c->now;
		e->ctime_ns = c->now;
		e->size = f->len;
		e->nlink = 1;
		c->files++;
		return 0;
	}
	if ((err = bkr_content_write(c->content, f->data, f->len)) < 0 ||
	    (err = bkr_content_finish(c->content, refs, &e->nchunks, &content, &size)) < 0)
		return err;
	e->type = BKR_FT_FILE;
	e->mode = S_IFREG | (f->mode ? (f->mode & 07777) : 0644);
	e->mtime_ns = f->mtime_ns ? f->mtime_ns : c->now;
	e->ctime_ns = c->now;
	e->size = size;
	e->blocks = (size + 511) / 512;
	e->nlink = 1;
	e->chunks = *refs;
	e->content = content;
	c->files++;
	c->bytes += size;
	return 0;
}

/*
 * A directory of the run carries the mode and owner of the workspace's
 * directory (else the backup's copy of it), so the mount and a restore of
 * the run protect what the source protected; unknown: 0700, ours.
 */
static void dir_entry_attrs(store_ctx *c, const char *path, size_t len, bkr_entry *e)
{
	char rel[PATH_MAX];
	uint32_t mode = 0700, uid = getuid(), gid = getgid();

	if (len < sizeof(rel)) {
		memcpy(rel, path, len);
		rel[len] = '\0';
		if (bkr_rec_dir_attrs(c->rc, rel, false, &mode, &uid, &gid) < 0) {
			mode = 0700;
			uid = getuid();
			gid = getgid();
		}
	}
	e->mode = S_IFDIR | (mode & 07777);
	e->uid = uid;
	e->gid = gid;
}

/* Build the directory holding files[lo..hi) whose paths start with @p skip bytes of prefix. */
static int build_dir(store_ctx *c, bkr_rec_file **files, size_t lo, size_t hi, size_t skip, bkr_id *out)
{
	bkr_tree_builder *b = NULL;
	int err;
	size_t i = lo;

	if ((err = bkr_tree_builder_new(&b)) < 0)
		return err;
	while (i < hi) {
		const char *name = files[i]->d.path + skip;
		const char *slash = strchr(name, '/');
		size_t nl = slash ? (size_t)(slash - name) : strlen(name);
		bkr_entry e;
		bkr_chunk_ref *refs = NULL;

		memset(&e, 0, sizeof(e));
		e.name = (const uint8_t *)name;
		e.name_len = nl;
		if (!slash) {
			err = put_file(c, files[i], &e, &refs);
			if (err == 0)
				err = bkr_tree_builder_add(b, &e);
			free(refs);
			i++;
		} else {
			size_t j = i;
			while (j < hi && strncmp(files[j]->d.path + skip, name, nl) == 0 &&
			       files[j]->d.path[skip + nl] == '/')
				j++;
			err = build_dir(c, files, i, j, skip + nl + 1, &e.subtree);
			e.type = BKR_FT_DIR;
			dir_entry_attrs(c, files[i]->d.path, skip + nl, &e);
			e.mtime_ns = e.ctime_ns = c->now;
			e.nlink = 2;
			c->dirs++;
			if (err == 0)
				err = bkr_tree_builder_add(b, &e);
			i = j;
		}
		if (err < 0)
			goto done;
	}
	err = bkr_tree_builder_finish(b, bkr_writer_emit_tree, c->w, out);
done:
	bkr_tree_builder_free(b);
	return err;
}

static void on_waiting(void *ctx)
{
	(void)ctx;
	bkr_log(BKR_LOG_INFO, "recover", "waiting for a running prune, cleanup, delete or repair to finish before storing the run");
}

int bkr_rec_store_repo(bkr_recover *rc, const bkr_recover_report *rep, bkr_rec_file **files, size_t n,
		       const char *report_json, double duration_s)
{
	store_ctx c = { 0 };
	bkr_manifest *m = NULL;
	bkr_lock *lock = NULL;
	const bkr_repo_config *cfg;
	bkr_id root, report;
	char ts[32];
	int err;

	if (!rc->repo)
		return bkr_error_set(BKR_EUNAVAILABLE, "no repository is open");
	cfg = bkr_repo_get_config(rc->repo);
	if (cfg && cfg->read_only) {
		err = bkr_error_set(BKR_EUNSUPPORTED, "repository is read-only for this version");
		goto done;
	}
	c.rc = rc;
	c.now = rep->time_ns;
	/* like a backup: the shared lock keeps a prune from freeing the blobs the
	 * run dedups against, and the index is reloaded under it (a prune may
	 * have run since it was loaded) */
	if ((err = bkr_repo_lock_or_wait(rc->repo, BKR_LOCK_SHARED, false, on_waiting, NULL, &lock)) < 0 ||
	    (err = bkr_repo_reload_index(rc->repo)) < 0)
		goto done;
	if ((err = bkr_writer_new(&c.w, rc->repo)) < 0 || (err = bkr_content_new(&c.content, c.w, rc->repo)) < 0)
		goto done;
	if ((err = build_dir(&c, files, 0, n, 0, &root)) < 0)
		goto done;
	if ((err = bkr_writer_put_hash(c.w, BKR_BLOB_DATA, report_json, strlen(report_json), &report, NULL)) < 0)
		goto done;
	if ((err = bkr_writer_commit(c.w)) < 0)
		goto done;
	if (!(m = bkr_manifest_new())) {
		err = bkr_error_oom();
		goto done;
	}
	bkr_time_format(ts, rep->time_ns);
	m->backup_id = strdup(rep->run_id);
	m->timestamp = strdup(ts);
	m->time_ns = rep->time_ns;
	m->type = BKR_BACKUP_RECOVERY;
	m->tree = root;
	m->hostname = strdup(rc->hostname);
	m->workspace_root = strdup(rc->workspace);
	m->duration_seconds = duration_s;
	m->integrity_check = strdup("skipped");
	m->restore_test = strdup("skipped");
	m->stats.files = c.files;
	m->stats.dirs = c.dirs;
	m->stats.bytes = c.bytes;
	m->stats.security_xattrs = BKR_STATS_UNKNOWN; /* recovered files keep what their source had */
	m->stats.acl_xattrs = BKR_STATS_UNKNOWN;
	m->report = report;
	if (!m->backup_id || !m->timestamp || !m->hostname || !m->workspace_root || !m->integrity_check ||
	    !m->restore_test) {
		err = bkr_error_oom();
		goto done;
	}
	err = bkr_repo_publish_manifest(rc->repo, m);
done:
	bkr_manifest_free(m);
	bkr_content_free(c.content);
	bkr_writer_free(c.w);
	bkr_lock_release(lock);
	return err;
}

/* ---- staged locally ------------------------------------------------------- */

/* A warning about @p f's staged copy, in its report entry's "stage_warnings". */
static void stage_warn(bkr_rec_file *f, const char *what, const char *why)
{
	cJSON *ws = cJSON_GetObjectItemCaseSensitive(f->entry, "stage_warnings");
	char *msg = NULL;

	if (!ws)
		ws = cJSON_AddArrayToObject(f->entry, "stage_warnings");
	if (ws && asprintf(&msg, "%s: %s", what, why) >= 0)
		cJSON_AddItemToArray(ws, cJSON_CreateString(msg));
	free(msg);
}

/*
 * Give the staged copy of @p f open as @p fd (O_PATH for a symlink, @p link)
 * its owner, mode and times as the applied copy gets them: a refused chown
 * and the set-ID bits it drops are said in the report entry
 * (bkr_rec_note_attrs), and so are times that cannot be set
 * ("stage_warnings"; the staged run is kept, where the apply fails).
 */
static int stage_attrs(bkr_rec_file *f, int fd, bool link, const char *rel)
{
	bool dropped = false;
	int owner_errno = 0, err;
	struct timespec ts[2];
	const char *why = NULL;

	if ((err = bkr_rec_set_attrs(fd, link, f->uid, f->gid, f->mode, rel, &dropped, &owner_errno)) < 0)
		return err;
	bkr_rec_note_attrs(f, dropped, owner_errno);
	if (f->mtime_ns <= 0)
		return 0;
	ts[0] = ts[1] = bkr_clock_timespec(f->mtime_ns);
	if (bkr_io_fault("recover-times") < 0)
		why = bkr_error_message();
	else if ((link ? utimensat(fd, "", ts, AT_EMPTY_PATH) : futimens(fd, ts)) < 0)
		why = strerror(errno);
	if (why)
		stage_warn(f, "setting times", why);
	return 0;
}

/*
 * Commit @p f (its content or symlink, mode, owner and times: stage_attrs),
 * or @p data with mode 0600 when @p f is NULL, as @p rel under @p rootfd
 * (missing directories created, none followed).
 */
static int stage_file(int rootfd, bkr_rec_file *f, const char *rel, const void *data, size_t len)
{
	int dir = -1, fd = -1, err = 0;
	const char *base;
	char tmp[NAME_MAX + 1];

	if ((err = bkr_rec_open_parent(rootfd, rel, true, &dir, &base, rel)) < 0)
		return err;
	if (f && f->link) {
		/* the staging directory is ours (0700): made at its name, then given its attributes */
		if (symlinkat(f->link, dir, base) < 0)
			err = bkr_error_set_errno(errno, "staging %s", rel);
		else if ((fd = openat(dir, base, O_PATH | O_NOFOLLOW | O_CLOEXEC)) < 0)
			err = bkr_error_set_errno(errno, "staging %s: opening the symlink", rel);
		else if ((err = stage_attrs(f, fd, true, rel)) < 0)
			bkr_error_prefix("staging");
		if (fd >= 0)
			close(fd);
		goto done;
	}
	if ((err = bkr_io_tmpfile_at(dir, ".tmp-", tmp, sizeof(tmp), &fd)) < 0) {
		bkr_error_prefix("staging %s", rel);
		goto done;
	}
	if ((err = bkr_io_write_full(fd, f ? f->data : data, f ? f->len : len, rel)) < 0)
		goto fail;
	if (f)
		err = stage_attrs(f, fd, false, rel);
	else if (fchmod(fd, 0600) < 0)
		err = bkr_error_set_errno(errno, "%s: chmod", rel);
	if (err < 0) {
		bkr_error_prefix("staging");
		goto fail;
	}
	err = bkr_io_commit_at(fd, dir, tmp, base, BKR_IO_NOREPLACE, rel);
	goto done;
fail:
	close(fd);
	unlinkat(dir, tmp, 0);
done:
	close(dir);
	return err;
}

int bkr_rec_store_staged(bkr_recover *rc, bkr_recover_report *rep, bkr_rec_file **files, size_t n,
			 char **json_io)
{
	char dir[PATH_MAX], fdir[PATH_MAX];
	int dfd = -1, ffd = -1, err = 0;

	if ((size_t)snprintf(dir, sizeof(dir), "%s/%s", rc->staging_dir, rep->run_id) >= sizeof(dir) ||
	    (size_t)snprintf(fdir, sizeof(fdir), "%s/files", dir) >= sizeof(fdir))
		return bkr_error_set(BKR_EINVAL, "staging directory path too long");
	if ((err = bkr_io_mkdir_p(fdir, 0700)) < 0)
		goto done;
	if (!(rep->staged = strdup(dir))) {
		err = bkr_error_oom();
		goto done;
	}
	rep->sum.staged_dir = rep->staged;
	/* the report says where it lives */
	if ((err = bkr_rec_report_restate(rep, "staged", dir, json_io)) < 0)
		goto done;
	if ((ffd = open(fdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0 ||
	    (dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
		err = bkr_error_set_errno(errno, "%s", dir);
		goto done;
	}
	for (size_t i = 0; i < n; i++)
		if ((err = stage_file(ffd, files[i], files[i]->d.path, NULL, 0)) < 0)
			goto done;
	/* with what the staged copies could not be given */
	if ((err = bkr_rec_report_restate(rep, "staged", dir, json_io)) < 0)
		goto done;
	/* the report names files and hashes of files others may not read: owner only */
	err = stage_file(dfd, NULL, "report.json", *json_io, strlen(*json_io));
done:
	if (dfd >= 0)
		close(dfd);
	if (ffd >= 0)
		close(ffd);
	return err;
}
