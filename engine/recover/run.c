/** @file
 * Recovery runs: trying each file's strategies in order, the report
 * (report.json), storing the run in the repository (recovered files chunked
 * into data blobs, a tree mirroring workspace paths, the report as a data
 * blob referenced by the run manifest's "report"), staging the run in a local
 * directory when the repository cannot be written, and applying recovered
 * files to the workspace atomically and without following symlinks.
 *
 * Order of a run: recover every file (nothing written yet), apply (with
 * apply), then store the run with the final report.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bkr/chunker.h"
#include "bkr/clock.h"
#include "bkr/error.h"
#include "bkr/io.h"
#include "bkr/manifest.h"
#include "bkr/repo.h"
#include "bkr/tree.h"
#include "recover_i.h"

/* ---- outcomes ------------------------------------------------------------ */

void bkr_rec_outcome_clear(bkr_rec_outcome *o)
{
	free(o->data);
	cJSON_Delete(o->source);
	free(o->error);
	memset(o, 0, sizeof(*o));
}

int bkr_rec_fail(bkr_rec_outcome *o, int code, const char *fmt, ...)
{
	va_list ap;

	free(o->error);
	va_start(ap, fmt);
	if (vasprintf(&o->error, fmt, ap) < 0)
		o->error = NULL;
	va_end(ap);
	return code < 0 ? code : BKR_ERROR;
}

/* ---- the report and the run ------------------------------------------------ */

typedef struct {
	bkr_damage d;       /**< copy of the damage (owned) */
	bool healthy;       /**< recover --file on a healthy file: never applied */
	uint8_t *data;      /**< recovered content or NULL */
	size_t len;
	uint32_t mode;
	int64_t mtime_ns;
	bkr_id sha;
	cJSON *entry;       /**< the file's report entry (owned by the report) */
	bool applied;
} rec_file;

struct bkr_recover_report {
	char run_id[96];
	int64_t time_ns;
	cJSON *root;
	cJSON *files;
	char *json;
	char *staged;
	char *store_error;
	bkr_recover_summary sum;
};

const bkr_recover_summary *bkr_recover_report_summary(const bkr_recover_report *rep)
{
	return &rep->sum;
}

const char *bkr_recover_report_json(const bkr_recover_report *rep)
{
	return rep->json ? rep->json : "{}";
}

void bkr_recover_report_free(bkr_recover_report *rep)
{
	if (!rep)
		return;
	cJSON_Delete(rep->root);
	free(rep->json);
	free(rep->staged);
	free(rep->store_error);
	free(rep);
}

static const bkr_rec_strategy *forced_strategy(const bkr_rec_rule *rule, const bkr_recover_rules *rules,
					       bkr_strategy_type t, bkr_rec_strategy *tmp)
{
	for (size_t i = 0; i < rule->n; i++)
		if (rule->strategies[i].type == t)
			return &rule->strategies[i];
	for (size_t i = 0; i < rules->fallback.n; i++)
		if (rules->fallback.strategies[i].type == t)
			return &rules->fallback.strategies[i];
	memset(tmp, 0, sizeof(*tmp));
	tmp->type = t;
	tmp->key = (char *)"--strategy";
	tmp->timeout_ms = BKR_REC_DEFAULT_TIMEOUT_MS;
	tmp->git_ref = (char *)"HEAD";
	tmp->git_max_commits = 10000;
	return tmp;
}

static int try_strategy(const bkr_rec_job *j, bkr_rec_outcome *o)
{
	switch (j->s->type) {
	case BKR_STRATEGY_BACKUP: return bkr_rec_try_backup(j, o);
	case BKR_STRATEGY_GIT: return bkr_rec_try_git(j, o);
	case BKR_STRATEGY_MONGODB:
		if (!j->s->uri)
			return bkr_rec_fail(o, BKR_EINVAL, "mongodb is not configured for this path (no rule sets uri)");
		return bkr_rec_try_mongodb(j, o);
	case BKR_STRATEGY_REGENERATE:
		if (!j->s->argv)
			return bkr_rec_fail(o, BKR_EINVAL, "regenerate is not configured for this path (no command)");
		return bkr_rec_try_regenerate(j, o);
	default: return bkr_rec_try_manual(j, o);
	}
}

static int recover_one(bkr_recover *rc, const bkr_recover_options *opts, const char *run_id, rec_file *f)
{
	bkr_rec_captures caps;
	const bkr_rec_rule *rule;
	cJSON *e = f->entry, *attempts;
	bkr_rec_strategy tmp;
	size_t n;
	char abs[PATH_MAX];
	bool manual = false;

	cJSON_AddStringToObject(e, "path", f->d.path);
	cJSON_AddStringToObject(e, "kind", f->healthy ? "healthy" : bkr_damage_name(f->d.kind));
	cJSON_AddStringToObject(e, "reason", f->d.reason ? f->d.reason : "");
	cJSON_AddNumberToObject(e, "priority", f->d.priority);
	attempts = cJSON_AddArrayToObject(e, "attempts");
	if (!attempts)
		return bkr_error_oom();
	if (!bkr_rec_rel_ok(f->d.path) || (size_t)snprintf(abs, sizeof(abs), "%s/%s", rc->workspace, f->d.path) >= sizeof(abs)) {
		cJSON_AddStringToObject(e, "status", "failed");
		cJSON_AddStringToObject(e, "error", "path is not a clean path inside the workspace");
		return 0;
	}
	rule = bkr_rec_rule_for(rc->rules, f->d.path, &caps);
	cJSON_AddStringToObject(e, "rule", rule == &rc->rules->fallback ? "default_strategies" : rule->pattern);
	n = opts->force_strategy ? 1 : rule->n;
	for (size_t i = 0; i < n; i++) {
		const bkr_rec_strategy *s = opts->force_strategy
			? forced_strategy(rule, rc->rules, opts->strategy, &tmp) : &rule->strategies[i];
		bkr_rec_job j = { rc, f->d.path, abs, s, &caps,
				  f->d.kind == BKR_DAMAGE_TRUNCATED, f->d.reason,
				  f->healthy ? "healthy" : bkr_damage_name(f->d.kind), attempts, run_id };
		bkr_rec_outcome o = { 0 };
		int64_t t0 = bkr_rec_now_ms();
		int r;
		cJSON *a = cJSON_CreateObject();

		if (!a)
			return bkr_error_oom();
		bkr_error_clear();
		r = try_strategy(&j, &o);
		cJSON_AddStringToObject(a, "strategy", bkr_strategy_name(s->type));
		if (s->type == BKR_STRATEGY_MANUAL) {
			cJSON_AddStringToObject(a, "result", r < 0 ? "alert_failed" : "manual");
			manual = true;
		} else {
			cJSON_AddStringToObject(a, "result", r < 0 ? (r == BKR_EUNAVAILABLE ? "unavailable"
								      : r == BKR_ETIMEOUT ? "timeout"
								      : r == BKR_ENOTFOUND ? "not_found"
								      : r == BKR_ECORRUPT ? "invalid" : "failed")
							    : "recovered");
		}
		if (r < 0 || o.error)
			cJSON_AddStringToObject(a, "error", o.error ? o.error : bkr_error_message());
		else
			cJSON_AddNullToObject(a, "error");
		cJSON_AddNumberToObject(a, "duration_ms", (double)(bkr_rec_now_ms() - t0));
		if (o.source) {
			cJSON_AddItemToObject(a, "source", o.source);
			o.source = NULL;
		} else {
			cJSON_AddNullToObject(a, "source");
		}
		cJSON_AddItemToArray(attempts, a);
		if (r == 0 && o.data && s->type != BKR_STRATEGY_MANUAL) {
			char hex[BKR_ID_HEX];
			f->data = o.data;
			f->len = o.len;
			f->mode = o.mode;
			f->mtime_ns = o.mtime_ns;
			o.data = NULL;
			bkr_sha256(f->data, f->len, &f->sha);
			bkr_id_to_hex(&f->sha, hex);
			cJSON_AddStringToObject(e, "status", "recovered");
			cJSON_AddStringToObject(e, "strategy", bkr_strategy_name(s->type));
			cJSON_AddStringToObject(e, "sha256", hex);
			cJSON_AddNumberToObject(e, "size", (double)f->len);
			bkr_rec_outcome_clear(&o);
			return 0;
		}
		bkr_rec_outcome_clear(&o);
		if (manual)
			break;
	}
	cJSON_AddStringToObject(e, "status", manual ? "manual" : "failed");
	cJSON_AddNullToObject(e, "strategy");
	cJSON_AddNullToObject(e, "sha256");
	return 0;
}

/* ---- apply ----------------------------------------------------------------- */

static int apply_one(bkr_recover *rc, rec_file *f, char **why)
{
	int root = -1, dir = -1, fd = -1, err = 0;
	const char *base;
	char tmp[NAME_MAX + 1];
	uint8_t rnd[8];
	struct stat st;
	bool exists = false, made_tmp = false;
	mode_t mode = f->mode ? (mode_t)(f->mode & 07777) : 0644;

	*why = NULL;
	if (f->healthy) {
		*why = strdup("the file was healthy when checked; never overwritten");
		return 0;
	}
	if ((root = open(rc->workspace, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
		err = bkr_error_set_errno(errno, "workspace %s", rc->workspace);
		goto done;
	}
	if ((err = bkr_rec_open_parent(root, f->d.path, true, &dir, &base, f->d.path)) < 0)
		goto done;
	/* re-check the target just before writing */
	if (fstatat(dir, base, &st, AT_SYMLINK_NOFOLLOW) == 0) {
		exists = true;
		if (S_ISLNK(st.st_mode)) {
			err = bkr_error_set(BKR_EINVAL, "%s: is a symlink now; not replaced", f->d.path);
			goto done;
		}
		if (!S_ISREG(st.st_mode)) {
			err = bkr_error_set(BKR_EEXISTS, "%s: exists and is not a regular file; not replaced", f->d.path);
			goto done;
		}
		if (!f->mode)
			mode = st.st_mode & 07777;
		switch (f->d.kind) {
		case BKR_DAMAGE_MISSING:
		case BKR_DAMAGE_REQUIRED:
			err = bkr_error_set(BKR_EEXISTS, "%s: exists again since the scan; not overwritten", f->d.path);
			goto done;
		case BKR_DAMAGE_TRUNCATED:
			if (st.st_size != 0) {
				err = bkr_error_set(BKR_EEXISTS, "%s: no longer empty; not overwritten", f->d.path);
				goto done;
			}
			break;
		default: {
			uint8_t *cur = NULL;
			size_t clen = 0;
			char *vwhy = NULL;
			bkr_id h;
			int v;
			if ((err = bkr_rec_read_ws(rc, f->d.path, &cur, &clen)) < 0)
				goto done;
			bkr_sha256(cur, clen, &h);
			if (f->d.kind == BKR_DAMAGE_INVALID) {
				v = bkr_rec_validate(rc, f->d.path, cur, clen, false, &vwhy);
				free(vwhy);
			} else {
				v = 0; /* silent corruption: validators cannot see it */
			}
			free(cur);
			if (v < 0) {
				err = v;
				goto done;
			}
			if (bkr_id_cmp(&h, &f->sha) == 0) {
				*why = strdup("already identical to the recovered copy");
				err = 0;
				goto done;
			}
			if (v == 1) {
				err = bkr_error_set(BKR_EEXISTS, "%s: valid now (changed since the scan); not overwritten",
						    f->d.path);
				goto done;
			}
		}
		}
	} else if (errno != ENOENT) {
		err = bkr_error_set_errno(errno, "%s", f->d.path);
		goto done;
	}
	if ((err = bkr_random_bytes(rnd, sizeof(rnd))) < 0)
		goto done;
	{
		char hex[17];
		bkr_hex_encode(rnd, sizeof(rnd), hex);
		snprintf(tmp, sizeof(tmp), "%s%s", BKR_REC_TMP_PREFIX, hex);
	}
	if ((fd = openat(dir, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600)) < 0) {
		err = bkr_error_set_errno(errno, "%s: creating temporary %s", f->d.path, tmp);
		goto done;
	}
	made_tmp = true;
	if ((err = bkr_io_write_full(fd, f->data, f->len, f->d.path)) < 0)
		goto done;
	if (fchmod(fd, mode) < 0) {
		err = bkr_error_set_errno(errno, "%s: chmod", f->d.path);
		goto done;
	}
	if (f->mtime_ns > 0) {
		struct timespec ts[2];
		ts[0] = ts[1] = bkr_clock_timespec(f->mtime_ns);
		if (futimens(fd, ts) < 0) {
			err = bkr_error_set_errno(errno, "%s: setting times", f->d.path);
			goto done;
		}
	}
	if ((err = bkr_io_fsync(fd, f->d.path)) < 0)
		goto done;
	close(fd);
	fd = -1;
	if (exists ? renameat(dir, tmp, dir, base) < 0
		   : renameat2(dir, tmp, dir, base, RENAME_NOREPLACE) < 0) {
		err = errno == EEXIST ? bkr_error_set(BKR_EEXISTS, "%s: appeared while writing; not overwritten", f->d.path)
				      : bkr_error_set_errno(errno, "%s: rename", f->d.path);
		goto done;
	}
	made_tmp = false;
	if (fsync(dir) < 0) {
		err = bkr_error_set_errno(errno, "%s: fsync of its directory", f->d.path);
		goto done;
	}
	f->applied = true;
done:
	if (fd >= 0)
		close(fd);
	if (made_tmp)
		unlinkat(dir, tmp, 0);
	if (dir >= 0)
		close(dir);
	if (root >= 0)
		close(root);
	if (err < 0 && !*why)
		*why = strdup(bkr_error_message());
	return err;
}

/* ---- storing in the repository ------------------------------------------- */

/* Component-wise order ('/' sorts before every other byte). */
static int path_cmp(const char *a, const char *b)
{
	for (;; a++, b++) {
		unsigned ca = (unsigned char)*a, cb = (unsigned char)*b;
		if (ca == '/')
			ca = 1;
		if (cb == '/')
			cb = 1;
		if (ca != cb || !ca)
			return (int)ca - (int)cb;
	}
}

static int file_ptr_cmp(const void *a, const void *b)
{
	return path_cmp((*(rec_file *const *)a)->d.path, (*(rec_file *const *)b)->d.path);
}

typedef struct {
	bkr_writer *w;
	bkr_chunker *ch;
	int64_t now;
	uint64_t files, dirs, bytes;
} store_ctx;

static int put_file(store_ctx *c, rec_file *f, bkr_entry *e, bkr_chunk_ref **refs)
{
	size_t cap = 0, n = 0, off = 0;
	int err = 0;

	*refs = NULL;
	bkr_chunker_reset(c->ch);
	while (off < f->len) {
		size_t cut = bkr_chunker_scan(c->ch, f->data + off, f->len - off);
		size_t take = cut == (size_t)-1 ? f->len - off : cut;
		if (n == cap) {
			size_t nc = cap ? cap * 2 : 8;
			bkr_chunk_ref *nr = realloc(*refs, nc * sizeof(*nr));
			if (!nr)
				return bkr_error_oom();
			*refs = nr;
			cap = nc;
		}
		if ((err = bkr_writer_put_hash(c->w, BKR_BLOB_DATA, f->data + off, take, &(*refs)[n].id, NULL)) < 0)
			return err;
		(*refs)[n].length = (uint32_t)take;
		n++;
		off += take;
	}
	e->type = BKR_FT_FILE;
	e->mode = S_IFREG | (f->mode ? (f->mode & 07777) : 0644);
	e->uid = getuid();
	e->gid = getgid();
	e->mtime_ns = f->mtime_ns ? f->mtime_ns : c->now;
	e->ctime_ns = c->now;
	e->size = f->len;
	e->blocks = (f->len + 511) / 512;
	e->nlink = 1;
	e->chunks = *refs;
	e->nchunks = n;
	e->content = f->sha;
	c->files++;
	c->bytes += f->len;
	return 0;
}

/* Build the directory holding files[lo..hi) whose paths start with @p skip bytes of prefix. */
static int build_dir(store_ctx *c, rec_file **files, size_t lo, size_t hi, size_t skip, bkr_id *out)
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
			e.mode = S_IFDIR | 0755;
			e.uid = getuid();
			e.gid = getgid();
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

static int store_repo(bkr_recover *rc, bkr_recover_report *rep, rec_file **sorted, size_t n,
		      const char *report_json, double duration)
{
	store_ctx c = { 0 };
	bkr_manifest *m = NULL;
	const bkr_repo_config *cfg;
	bkr_chunker_params p = BKR_CHUNKER_PARAMS_INIT;
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
	if (cfg && cfg->chunk_avg) {
		p.min = cfg->chunk_min;
		p.avg = cfg->chunk_avg;
		p.max = cfg->chunk_max;
		p.seed = cfg->chunk_seed;
	}
	c.now = rep->time_ns;
	if ((err = bkr_chunker_new(&c.ch, &p)) < 0 || (err = bkr_writer_new(&c.w, rc->repo)) < 0)
		goto done;
	if ((err = build_dir(&c, sorted, 0, n, 0, &root)) < 0)
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
	m->duration_seconds = duration;
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
	bkr_writer_free(c.w);
	bkr_chunker_free(c.ch);
	return err;
}

static int write_at(int rootfd, const char *rel, const void *data, size_t len, mode_t mode, int64_t mtime_ns)
{
	int dir = -1, fd = -1, err = 0;
	const char *base;

	if ((err = bkr_rec_open_parent(rootfd, rel, true, &dir, &base, rel)) < 0)
		return err;
	if ((fd = openat(dir, base, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode)) < 0) {
		err = bkr_error_set_errno(errno, "staging %s", rel);
		goto done;
	}
	if ((err = bkr_io_write_full(fd, data, len, rel)) < 0 || (err = bkr_io_fsync(fd, rel)) < 0)
		goto done;
	if (mtime_ns > 0) {
		struct timespec ts[2];
		ts[0] = ts[1] = bkr_clock_timespec(mtime_ns);
		futimens(fd, ts);
	}
done:
	if (fd >= 0)
		close(fd);
	if (dir >= 0)
		close(dir);
	return err;
}

static int store_staged(bkr_recover *rc, bkr_recover_report *rep, rec_file **files, size_t n, char **json_io)
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
	{
		cJSON *st = cJSON_GetObjectItemCaseSensitive(rep->root, "storage");
		char *txt;
		if (st) {
			cJSON_ReplaceItemInObjectCaseSensitive(st, "kind", cJSON_CreateString("staged"));
			cJSON_ReplaceItemInObjectCaseSensitive(st, "path", cJSON_CreateString(dir));
		}
		if (!(txt = cJSON_Print(rep->root))) {
			err = bkr_error_oom();
			goto done;
		}
		free(*json_io);
		*json_io = txt;
	}
	if ((ffd = open(fdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0 ||
	    (dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
		err = bkr_error_set_errno(errno, "%s", dir);
		goto done;
	}
	for (size_t i = 0; i < n; i++)
		if ((err = write_at(ffd, files[i]->d.path, files[i]->data, files[i]->len,
				    files[i]->mode ? (mode_t)(files[i]->mode & 07777) : 0644, files[i]->mtime_ns)) < 0)
			goto done;
	err = bkr_io_publish(dir, "report.json", *json_io, strlen(*json_io), BKR_IO_NOREPLACE);
done:
	if (dfd >= 0)
		close(dfd);
	if (ffd >= 0)
		close(ffd);
	return err;
}

/* ---- the run ------------------------------------------------------------- */

static int run(bkr_recover *rc, const bkr_damage *items, const bool *healthy, size_t n,
	       const bkr_recover_options *opts, bkr_recover_report **out)
{
	bkr_recover_options defaults = BKR_RECOVER_OPTIONS_INIT;
	bkr_recover_report *rep = NULL;
	rec_file *files = NULL, **sorted = NULL;
	size_t nf = 0, nrec = 0;
	int64_t t0 = bkr_rec_now_ms();
	char ts[32], *json = NULL;
	cJSON *storage, *summary;
	int err = 0;

	*out = NULL;
	if (!opts)
		opts = &defaults;
	if (!(rep = calloc(1, sizeof(*rep))) || (n && !(files = calloc(n, sizeof(*files)))) ||
	    (n && !(sorted = calloc(n, sizeof(*sorted))))) {
		err = bkr_error_oom();
		goto done;
	}
	rep->time_ns = bkr_time_now_ns();
	if ((err = bkr_backup_id_new(rep->run_id, sizeof(rep->run_id), BKR_BACKUP_RECOVERY, rep->time_ns)) < 0)
		goto done;
	rep->sum.run_id = rep->run_id;
	bkr_time_format(ts, rep->time_ns);
	if (!(rep->root = cJSON_CreateObject())) {
		err = bkr_error_oom();
		goto done;
	}
	cJSON_AddStringToObject(rep->root, "run_id", rep->run_id);
	cJSON_AddStringToObject(rep->root, "timestamp", ts);
	cJSON_AddStringToObject(rep->root, "hostname", rc->hostname);
	cJSON_AddStringToObject(rep->root, "workspace", rc->workspace);
	cJSON_AddStringToObject(rep->root, "mode", opts->apply ? "apply" : "dry-run");
	if (opts->force_strategy)
		cJSON_AddStringToObject(rep->root, "forced_strategy", bkr_strategy_name(opts->strategy));
	else
		cJSON_AddNullToObject(rep->root, "forced_strategy");
	storage = cJSON_AddObjectToObject(rep->root, "storage");
	summary = cJSON_AddObjectToObject(rep->root, "summary");
	rep->files = cJSON_AddArrayToObject(rep->root, "files");
	if (!storage || !summary || !rep->files) {
		err = bkr_error_oom();
		goto done;
	}
	/* copy, dropping duplicates; sort by priority as scan does */
	for (size_t i = 0; i < n; i++) {
		bool dup = false;
		for (size_t k = 0; k < nf; k++)
			dup = dup || strcmp(files[k].d.path, items[i].path) == 0;
		if (dup || !items[i].path)
			continue;
		files[nf].d = items[i];
		files[nf].d.path = strdup(items[i].path);
		files[nf].d.reason = strdup(items[i].reason ? items[i].reason : "");
		files[nf].healthy = healthy ? healthy[i] : false;
		nf++;
		if (!files[nf - 1].d.path || !files[nf - 1].d.reason) {
			err = bkr_error_oom();
			goto done;
		}
	}
	for (size_t i = 1; i < nf; i++) {
		/* stable insertion sort by priority (descending) */
		rec_file t = files[i];
		size_t k = i;
		while (k > 0 && files[k - 1].d.priority < t.d.priority) {
			files[k] = files[k - 1];
			k--;
		}
		files[k] = t;
	}
	for (size_t i = 0; i < nf; i++) {
		rec_file *f = &files[i];
		if (!(f->entry = cJSON_CreateObject())) {
			err = bkr_error_oom();
			goto done;
		}
		cJSON_AddItemToArray(rep->files, f->entry);
		if ((err = recover_one(rc, opts, rep->run_id, f)) < 0)
			goto done;
		rep->sum.files++;
		if (f->data) {
			rep->sum.recovered++;
			sorted[nrec++] = f;
		} else {
			cJSON *st = cJSON_GetObjectItemCaseSensitive(f->entry, "status");
			if (st && cJSON_IsString(st) && strcmp(st->valuestring, "manual") == 0)
				rep->sum.manual++;
			rep->sum.failed++;
		}
	}
	/* apply */
	for (size_t i = 0; i < nf; i++) {
		rec_file *f = &files[i];
		char *why = NULL;
		int r;
		if (!f->data) {
			cJSON_AddBoolToObject(f->entry, "applied", false);
			continue;
		}
		if (!opts->apply) {
			cJSON_AddBoolToObject(f->entry, "applied", false);
			cJSON_AddStringToObject(f->entry, "apply_result", "dry-run: workspace untouched");
			continue;
		}
		r = apply_one(rc, f, &why);
		cJSON_AddBoolToObject(f->entry, "applied", f->applied);
		cJSON_AddStringToObject(f->entry, "apply_result", f->applied ? "written" : why ? why : "not written");
		if (f->applied)
			rep->sum.applied++;
		else if (r < 0)
			rep->sum.failed++;
		free(why);
	}
	cJSON_AddNumberToObject(summary, "files", (double)rep->sum.files);
	cJSON_AddNumberToObject(summary, "recovered", (double)rep->sum.recovered);
	cJSON_AddNumberToObject(summary, "applied", (double)rep->sum.applied);
	cJSON_AddNumberToObject(summary, "manual", (double)rep->sum.manual);
	cJSON_AddNumberToObject(summary, "failed", (double)rep->sum.failed);
	cJSON_AddNumberToObject(summary, "duration_ms", (double)(bkr_rec_now_ms() - t0));
	cJSON_AddStringToObject(storage, "kind", "repository");
	if (rc->repo)
		cJSON_AddStringToObject(storage, "path", bkr_repo_path(rc->repo));
	else
		cJSON_AddNullToObject(storage, "path");
	cJSON_AddStringToObject(storage, "report", "blob referenced by the run manifest (runs/<run_id>.json \"report\")");
	if (!(json = cJSON_Print(rep->root))) {
		err = bkr_error_oom();
		goto done;
	}
	if (nrec > 1)
		qsort(sorted, nrec, sizeof(*sorted), file_ptr_cmp);
	if (!opts->no_store) {
		err = store_repo(rc, rep, sorted, nrec, json, (double)(bkr_rec_now_ms() - t0) / 1000.0);
		if (err == 0) {
			rep->sum.stored = true;
		} else {
			if (!(rep->store_error = strdup(bkr_error_message()))) {
				err = bkr_error_oom();
				goto done;
			}
			rep->sum.store_error = rep->store_error;
			cJSON_AddStringToObject(storage, "repository_error", rep->store_error);
			if ((err = store_staged(rc, rep, sorted, nrec, &json)) < 0) {
				bkr_error_prefix("recovery run %s: the repository could not be written (%s) and staging failed",
						 rep->run_id, rep->store_error);
				goto done;
			}
		}
	} else {
		cJSON_ReplaceItemInObjectCaseSensitive(storage, "kind", cJSON_CreateString("none"));
		free(json);
		if (!(json = cJSON_Print(rep->root))) {
			err = bkr_error_oom();
			goto done;
		}
	}
	rep->json = json;
	json = NULL;
	*out = rep;
	rep = NULL;
done:
	free(json);
	for (size_t i = 0; i < nf; i++) {
		free(files[i].d.path);
		free(files[i].d.reason);
		free(files[i].data);
	}
	free(files);
	free(sorted);
	bkr_recover_report_free(rep);
	return err;
}

int bkr_recover_items(bkr_recover *rc, const bkr_damage *items, size_t n, const bkr_recover_options *opts,
		      bkr_recover_report **out)
{
	return run(rc, items, NULL, n, opts, out);
}

int bkr_recover_file(bkr_recover *rc, const char *path, const bkr_recover_options *opts,
		     bkr_recover_report **out)
{
	bkr_rec_bindex bi = { 0 };
	bkr_damage d = { 0 };
	char *rel = NULL;
	bool healthy = false;
	int err;

	*out = NULL;
	if ((err = bkr_rec_relpath(rc, path, &rel)) < 0)
		goto done;
	if ((err = bkr_rec_bindex_load(rc, &bi)) < 0)
		goto done;
	if ((err = bkr_rec_check_one(rc, &bi, rel, opts && opts->deep, &d)) < 0)
		goto done;
	if (err == 0) {
		healthy = true;
		d.path = rel;
		d.kind = BKR_DAMAGE_INVALID;
		d.reason = (char *)"healthy: recovered into the run only, never applied";
		d.priority = bkr_rec_priority(rc, rel);
		err = run(rc, &d, &healthy, 1, opts, out);
		d.path = NULL;
		d.reason = NULL;
	} else {
		err = run(rc, &d, &healthy, 1, opts, out);
	}
done:
	free(d.path);
	free(d.reason);
	free(rel);
	bkr_rec_bindex_free(&bi);
	return err;
}

int bkr_recover_batch(bkr_recover *rc, const bkr_recover_options *opts, bkr_recover_report **out)
{
	bkr_scan_result s = BKR_SCAN_RESULT_INIT;
	int err;

	*out = NULL;
	if ((err = bkr_recover_scan(rc, opts && opts->deep ? BKR_SCAN_DEEP : 0, &s)) < 0)
		return err;
	err = run(rc, s.items, NULL, s.n, opts, out);
	bkr_scan_result_free(&s);
	return err;
}

/* ---- listing ------------------------------------------------------------- */

int bkr_recover_read_report(bkr_repo *repo, const char *spec, char **out, size_t *len)
{
	bkr_manifest *m = NULL;
	uint8_t *data = NULL;
	size_t n = 0;
	int err;

	*out = NULL;
	if (len)
		*len = 0;
	if ((err = bkr_repo_find_run(repo, spec, &m)) < 0)
		return err;
	if (bkr_id_is_zero(&m->report)) {
		err = bkr_error_set(BKR_ENOTFOUND, "run %s has no report", m->backup_id);
		goto done;
	}
	if ((err = bkr_repo_read_blob(repo, &m->report, BKR_BLOB_DATA, &data, &n)) < 0) {
		bkr_error_prefix("run %s: report", m->backup_id);
		goto done;
	}
	{
		char *s = realloc(data, n + 1);
		if (!s) {
			err = bkr_error_oom();
			goto done;
		}
		s[n] = '\0';
		data = NULL;
		*out = s;
		if (len)
			*len = n;
	}
done:
	free(data);
	bkr_manifest_free(m);
	return err;
}

int bkr_recover_list_runs(bkr_repo *repo, char **out)
{
	bkr_manifest_list l = { 0 };
	cJSON *arr = NULL;
	int err;

	*out = NULL;
	if ((err = bkr_repo_list(repo, true, &l, NULL)) < 0)
		return err;
	if (!(arr = cJSON_CreateArray())) {
		err = bkr_error_oom();
		goto done;
	}
	for (size_t i = 0; i < l.n; i++) {
		const bkr_manifest *m = l.items[i];
		cJSON *o = cJSON_CreateObject(), *rep = NULL;
		uint8_t *data = NULL;
		size_t n = 0;
		if (!o) {
			err = bkr_error_oom();
			goto done;
		}
		cJSON_AddItemToArray(arr, o);
		cJSON_AddStringToObject(o, "run_id", m->backup_id);
		cJSON_AddStringToObject(o, "timestamp", m->timestamp ? m->timestamp : "");
		cJSON_AddStringToObject(o, "hostname", m->hostname ? m->hostname : "");
		cJSON_AddNumberToObject(o, "files_stored", (double)m->stats.files);
		if (!bkr_id_is_zero(&m->report) &&
		    bkr_repo_read_blob(repo, &m->report, BKR_BLOB_DATA, &data, &n) == 0) {
			rep = cJSON_ParseWithLength((const char *)data, n);
			free(data);
		}
		if (rep && cJSON_GetObjectItemCaseSensitive(rep, "summary")) {
			const cJSON *sm = cJSON_GetObjectItemCaseSensitive(rep, "summary");
			const char *keys[] = { "files", "recovered", "applied", "manual", "failed" };
			for (size_t k = 0; k < 5; k++) {
				const cJSON *v = cJSON_GetObjectItemCaseSensitive(sm, keys[k]);
				cJSON_AddNumberToObject(o, keys[k], cJSON_IsNumber(v) ? v->valuedouble : 0);
			}
			cJSON_AddItemToObject(o, "summary",
					      cJSON_DetachItemFromObjectCaseSensitive(rep, "summary"));
			cJSON *mode = cJSON_GetObjectItemCaseSensitive(rep, "mode");
			if (cJSON_IsString(mode))
				cJSON_AddStringToObject(o, "mode", mode->valuestring);
		} else {
			cJSON_AddNullToObject(o, "summary");
		}
		cJSON_Delete(rep);
	}
	if (!(*out = cJSON_Print(arr)))
		err = bkr_error_oom();
done:
	cJSON_Delete(arr);
	bkr_manifest_list_free(&l);
	return err;
}
