/** @file
 * The recovery engine object: construction from a setup or a configuration,
 * and the path-safety helpers every other file uses (workspace-relative
 * paths, parent directories opened with O_NOFOLLOW from the workspace root,
 * reading workspace files without following symlinks, a private scratch
 * directory).
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "bkr/clock.h"
#include "bkr/digest.h"
#include "bkr/error.h"
#include "bkr/host.h"
#include "bkr/io.h"
#include "bkr/store.h"
#include "recover_i.h"

int64_t bkr_rec_now_ms(void)
{
	return bkr_clock_mono_ns() / 1000000;
}

bool bkr_rec_rel_ok(const char *rel)
{
	const char *p = rel;

	if (!rel || !*rel || *rel == '/')
		return false;
	while (*p) {
		const char *slash = strchr(p, '/');
		size_t n = slash ? (size_t)(slash - p) : strlen(p);
		if (n == 0 || (n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.'))
			return false;
		if (!slash)
			break;
		p = slash + 1;
		if (!*p)
			return false;
	}
	return true;
}

/* Normalise "a//b/./c" into "a/b/c"; ".." is refused. */
static int normalise(const char *in, char **out, const char *orig)
{
	size_t len = strlen(in);
	char *buf = malloc(len + 1);
	size_t o = 0;
	const char *p = in;

	*out = NULL;
	if (!buf)
		return bkr_error_oom();
	while (*p) {
		const char *slash = strchr(p, '/');
		size_t n = slash ? (size_t)(slash - p) : strlen(p);
		if (n == 2 && p[0] == '.' && p[1] == '.') {
			free(buf);
			return bkr_error_set(BKR_EINVAL, "%s: '..' is not allowed (paths stay inside the workspace)", orig);
		}
		if (n > 0 && !(n == 1 && p[0] == '.')) {
			if (o)
				buf[o++] = '/';
			memcpy(buf + o, p, n);
			o += n;
		}
		p += n;
		if (*p == '/')
			p++;
	}
	buf[o] = '\0';
	if (!o) {
		free(buf);
		return bkr_error_set(BKR_EINVAL, "%s: names the workspace itself, not a file", orig);
	}
	*out = buf;
	return 0;
}


int bkr_rec_relpath(const bkr_recover *rc, const char *path, char **out)
{
	const char *rest = path;

	*out = NULL;
	if (!path || !*path)
		return bkr_error_set(BKR_EINVAL, "empty path");
	if (path[0] == '/') {
		rest = bkr_path_under(path, rc->workspace);
		if (!rest && rc->workspace_real)
			rest = bkr_path_under(path, rc->workspace_real);
		if (!rest)
			return bkr_error_set(BKR_EINVAL, "%s: outside the workspace %s", path, rc->workspace);
	}
	return normalise(rest, out, path);
}

int bkr_rec_open_parent(int rootfd, const char *rel, bool create, int *dirfd, const char **base,
			const char *what)
{
	int fd = -1, err = 0;
	const char *p = rel;
	char comp[NAME_MAX + 1];

	*dirfd = -1;
	if (!bkr_rec_rel_ok(rel))
		return bkr_error_set(BKR_EINVAL, "%s: not a clean relative path", what);
	/* out of descriptors: the stores' idle ones closed, once more (each open below too) */
	if ((fd = fcntl(rootfd, F_DUPFD_CLOEXEC, 3)) < 0 && bkr_store_local_shed_for(errno))
		fd = fcntl(rootfd, F_DUPFD_CLOEXEC, 3);
	if (fd < 0)
		return bkr_error_set_errno(errno, "%s: dup", what);
	for (;;) {
		const char *slash = strchr(p, '/');
		size_t n;
		int nfd;

		if (!slash)
			break;
		n = (size_t)(slash - p);
		if (n > NAME_MAX) {
			err = bkr_error_set(BKR_EINVAL, "%s: name too long", what);
			goto done;
		}
		memcpy(comp, p, n);
		comp[n] = '\0';
		nfd = openat(fd, comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (nfd < 0 && bkr_store_local_shed_for(errno))
			nfd = openat(fd, comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (nfd < 0 && errno == ENOENT && create) {
			if (mkdirat(fd, comp, 0755) < 0 && errno != EEXIST) {
				err = bkr_error_set_errno(errno, "%s: creating directory %.*s", what,
							  (int)(slash - rel), rel);
				goto done;
			}
			if ((nfd = openat(fd, comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) < 0 &&
			    bkr_store_local_shed_for(errno))
				nfd = openat(fd, comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		}
		if (nfd < 0) {
			if (errno == ELOOP || errno == ENOTDIR)
				err = bkr_error_set(BKR_EINVAL,
						    "%s: %.*s is a symlink or not a directory; refusing to follow it",
						    what, (int)(slash - rel), rel);
			else
				err = bkr_error_set_errno(errno, "%s: opening %.*s", what, (int)(slash - rel), rel);
			goto done;
		}
		close(fd);
		fd = nfd;
		p = slash + 1;
	}
	*dirfd = fd;
	*base = p;
	fd = -1;
done:
	if (fd >= 0)
		close(fd);
	return err;
}

int bkr_rec_root_open(bkr_recover *rc, int *fd)
{
	struct stat st;

	if ((*fd = open(rc->workspace, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		return bkr_error_set_errno(errno, "workspace %s", rc->workspace);
	if (fstat(*fd, &st) < 0) {
		int err = bkr_error_set_errno(errno, "workspace %s", rc->workspace);
		close(*fd);
		*fd = -1;
		return err;
	}
	if (!rc->root_known) {
		rc->root_known = true;
		rc->root_dev = (uint64_t)st.st_dev;
		rc->root_ino = (uint64_t)st.st_ino;
	} else if ((uint64_t)st.st_dev != rc->root_dev || (uint64_t)st.st_ino != rc->root_ino) {
		close(*fd);
		*fd = -1;
		return bkr_error_set(BKR_EINVAL,
				     "workspace %s is no longer the directory the scan looked at (it or a parent "
				     "was replaced or moved); nothing written there",
				     rc->workspace);
	}
	return 0;
}

void bkr_rec_root_forget(bkr_recover *rc)
{
	rc->root_known = false;
}

void bkr_rec_scanned_set(bkr_damage *d, const struct stat *st)
{
	d->scanned.seen = true;
	d->scanned.dev = (uint64_t)st->st_dev;
	d->scanned.ino = (uint64_t)st->st_ino;
	d->scanned.size = (uint64_t)st->st_size;
	d->scanned.mtime_ns = bkr_clock_ns(&st->st_mtim);
	d->scanned.ctime_ns = bkr_clock_ns(&st->st_ctim);
}

bool bkr_rec_scanned_same(const bkr_damage *d, const struct stat *st)
{
	return d->scanned.seen && d->scanned.dev == (uint64_t)st->st_dev && d->scanned.ino == (uint64_t)st->st_ino &&
	       d->scanned.size == (uint64_t)st->st_size && d->scanned.mtime_ns == bkr_clock_ns(&st->st_mtim) &&
	       d->scanned.ctime_ns == bkr_clock_ns(&st->st_ctim);
}

int bkr_rec_lstat_ws(bkr_recover *rc, const char *rel, struct stat *st)
{
	int root = -1, dir = -1, err = 0;
	const char *base;

	if ((err = bkr_rec_root_open(rc, &root)) < 0)
		return err;
	if ((err = bkr_rec_open_parent(root, rel, false, &dir, &base, rel)) < 0)
		goto done;
	if (fstatat(dir, base, st, AT_SYMLINK_NOFOLLOW) < 0)
		err = bkr_error_set_errno(errno, "%s", rel);
done:
	if (dir >= 0)
		close(dir);
	close(root);
	return err;
}

void bkr_rec_data_free(uint8_t *data, size_t len, bool mapped)
{
	if (mapped && data)
		munmap(data, len ? len : 1);
	else
		free(data);
}

int bkr_rec_map(int fd, size_t len, const char *what, uint8_t **out)
{
	void *p = mmap(NULL, len ? len : 1, PROT_READ, MAP_PRIVATE, fd, 0);

	*out = NULL;
	if (p == MAP_FAILED)
		return bkr_error_set_errno(errno, "%s: mapping %zu bytes", what, len);
	*out = p;
	return 0;
}

int bkr_rec_scratch_file(bkr_recover *rc, uint64_t len, int *fd)
{
	const char *dir;
	char path[PATH_MAX];
	int err;

	*fd = -1;
	if ((err = bkr_rec_scratch(rc, &dir)) < 0)
		return err;
	snprintf(path, sizeof(path), "%s/copy-XXXXXX", dir);
	if ((*fd = mkostemp(path, O_CLOEXEC)) < 0)
		return bkr_error_set_errno(errno, "creating a scratch file in %s", dir);
	unlink(path);
	if (ftruncate(*fd, (off_t)len) < 0) {
		err = bkr_error_set_errno(errno, "scratch file of %llu bytes in %s", (unsigned long long)len, dir);
		close(*fd);
		*fd = -1;
		return err;
	}
	return 0;
}

static bool same_stat(const struct stat *a, const struct stat *b)
{
	return a->st_size == b->st_size && a->st_ino == b->st_ino &&
	       bkr_clock_ns(&a->st_mtim) == bkr_clock_ns(&b->st_mtim) &&
	       bkr_clock_ns(&a->st_ctim) == bkr_clock_ns(&b->st_ctim);
}

/*
 * Copy the live file open as @p fd (whose fstat is @p st) with read(2): into
 * memory, or a large one into a private scratch file that is then mapped (a
 * mapping of the live file would fault when it shrinks).  BKR_REC_CHANGED
 * when it is not the size it had, or its stat changed, by the end.  @p dg
 * (optional) gets the bytes as they are read, while they are in the cache.
 */
static int copy_live(bkr_recover *rc, int fd, const struct stat *st, const char *rel, uint8_t **data,
		     size_t *len, bool *mapped, bkr_digest *dg)
{
	enum { CHUNK = 1 << 20 };
	uint64_t size = (uint64_t)st->st_size;
	bool big = size > BKR_REC_MAP_MIN;
	uint8_t *buf = NULL;
	size_t got = 0, cap;
	int sfd = -1, err = 0;
	struct stat after;

	if (size >= SIZE_MAX)
		return bkr_error_set(BKR_EINVAL, "%s: too large", rel);
	if (big && (err = bkr_rec_scratch_file(rc, size, &sfd)) < 0)
		return err;
	cap = big ? CHUNK : (size_t)size + 1;
	if (!(buf = malloc(cap))) {
		err = bkr_error_oom();
		goto done;
	}
	/* one byte more than expected: a file that grew is seen */
	while (got <= (size_t)size) {
		size_t want = (size_t)size + 1 - got;
		uint8_t *at = big ? buf : buf + got;
		ssize_t r;

		if (big && want > CHUNK)
			want = CHUNK;
		r = read(fd, at, want);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			err = bkr_error_set_errno(errno, "%s: read", rel);
			goto done;
		}
		if (r == 0)
			break;
		if (big && got + (size_t)r <= (size_t)size && (err = bkr_io_pwrite_full(sfd, buf, (size_t)r, got, "a scratch copy")) < 0)
			goto done;
		if (dg && got < (size_t)size)
			bkr_digest_update(dg, at, (size_t)r < (size_t)size - got ? (size_t)r : (size_t)size - got);
		got += (size_t)r;
	}
	if (fstat(fd, &after) < 0) {
		err = bkr_error_set_errno(errno, "%s: stat", rel);
		goto done;
	}
	if (got != (size_t)size || !same_stat(st, &after)) {
		err = bkr_error_set(BKR_REC_CHANGED, "%s: changed while it was read (%llu bytes expected, %zu%s read)",
				    rel, (unsigned long long)size, got > (size_t)size ? (size_t)size : got,
				    got > (size_t)size ? "+" : "");
		goto done;
	}
	if (big) {
		if ((err = bkr_rec_map(sfd, (size_t)size, rel, data)) == 0) {
			*len = (size_t)size;
			*mapped = true;
		}
		goto done;
	}
	buf[got] = '\0';
	*data = buf;
	*len = got;
	buf = NULL;
done:
	free(buf);
	if (sfd >= 0)
		close(sfd);
	return err;
}

int bkr_rec_read_at(bkr_recover *rc, int dir, const char *base, const char *rel, uint8_t **data, size_t *len,
		    bool *mapped, struct stat *stp)
{
	return bkr_rec_read_at_digest(rc, dir, base, rel, data, len, mapped, stp, NULL);
}

int bkr_rec_read_at_digest(bkr_recover *rc, int dir, const char *base, const char *rel, uint8_t **data,
			   size_t *len, bool *mapped, struct stat *stp, bkr_digest *dg)
{
	int fd = -1, err = 0;
	struct stat st;

	*data = NULL;
	*len = 0;
	*mapped = false;
	if ((fd = openat(dir, base, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC)) < 0) {
		if (errno == ELOOP)
			err = bkr_error_set(BKR_EINVAL, "%s: is a symlink", rel);
		else
			err = bkr_error_set_errno(errno, "%s", rel);
		goto done;
	}
	if (fstat(fd, &st) < 0) {
		err = bkr_error_set_errno(errno, "%s: stat", rel);
		goto done;
	}
	if (stp)
		*stp = st;
	if (!S_ISREG(st.st_mode)) {
		err = bkr_error_set(BKR_EINVAL, "%s: not a regular file", rel);
		goto done;
	}
	/* tests: BKR_FAULT="recover-read:N:stop" pauses between the stat and the read of a live file */
	if ((err = bkr_io_fault("recover-read")) < 0)
		goto done;
	err = copy_live(rc, fd, &st, rel, data, len, mapped, dg);
done:
	if (fd >= 0)
		close(fd);
	return err;
}

int bkr_rec_read_ws(bkr_recover *rc, const char *rel, uint8_t **data, size_t *len, bool *mapped, struct stat *st)
{
	int root = -1, dir = -1, err = 0;
	const char *base;

	*data = NULL;
	*len = 0;
	*mapped = false;
	if ((err = bkr_rec_root_open(rc, &root)) < 0)
		goto done;
	if ((err = bkr_rec_open_parent(root, rel, false, &dir, &base, rel)) < 0)
		goto done;
	err = bkr_rec_read_at(rc, dir, base, rel, data, len, mapped, st);
done:
	if (dir >= 0)
		close(dir);
	if (root >= 0)
		close(root);
	return err;
}

int bkr_rec_scratch(bkr_recover *rc, const char **dir)
{
	char tmpl[PATH_MAX];
	const char *tmp = getenv("TMPDIR");

	if (!rc->scratch) {
		snprintf(tmpl, sizeof(tmpl), "%s/bkr-recover-XXXXXX", tmp && *tmp ? tmp : "/tmp");
		if (!mkdtemp(tmpl))
			return bkr_error_set_errno(errno, "creating scratch directory %s", tmpl);
		if (!(rc->scratch = strdup(tmpl)))
			return bkr_error_oom();
	}
	*dir = rc->scratch;
	return 0;
}

int bkr_rec_priority(const bkr_recover *rc, const char *rel)
{
	size_t best = 0;
	int prio = 0;
	char abs[PATH_MAX];

	snprintf(abs, sizeof(abs), "%s/%s", rc->workspace, rel);
	for (size_t i = 0; i < rc->nsources; i++) {
		size_t n = strlen(rc->sources[i].path);
		if (bkr_path_under(abs, rc->sources[i].path) && n >= best) {
			best = n;
			prio = rc->sources[i].priority;
		}
	}
	return prio;
}

static int rm_cb(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	remove(path);
	return 0;
}

static void free_list(char **l, size_t n)
{
	if (!l)
		return;
	for (size_t i = 0; i < n; i++)
		free(l[i]);
	free(l);
}

void bkr_recover_free(bkr_recover *rc)
{
	if (!rc)
		return;
	if (rc->scratch) {
		nftw(rc->scratch, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
		free(rc->scratch);
	}
	free(rc->workspace);
	free(rc->workspace_real);
	free(rc->config_name);
	bkr_recover_rules_free(rc->rules);
	for (size_t i = 0; i < rc->nsources; i++) {
		free(rc->sources[i].name);
		free(rc->sources[i].path);
	}
	free(rc->sources);
	free_list(rc->required, rc->nrequired);
	free_list(rc->protected_patterns, rc->nprotected);
	if (rc->alert)
		for (char **a = rc->alert; *a; a++)
			free(*a);
	free(rc->alert);
	free(rc->staging_dir);
	free(rc->hostname);
	rc->backups_held = 0;
	bkr_rec_backups_release(rc);
	free(rc);
}

static int push(char ***list, size_t *n, const char *s)
{
	char **nl = realloc(*list, (*n + 2) * sizeof(**list));

	if (!nl)
		return bkr_error_oom();
	*list = nl;
	if (!(nl[*n] = strdup(s)))
		return bkr_error_oom();
	(*n)++;
	nl[*n] = NULL;
	return 0;
}

int bkr_recover_new(bkr_recover **out, const bkr_recover_setup *setup, bkr_repo *repo)
{
	bkr_recover *rc = NULL;
	char real[PATH_MAX], host[256];
	int err = 0;
	size_t wl;

	*out = NULL;
	if (!setup || !setup->workspace || setup->workspace[0] != '/')
		return bkr_error_set(BKR_EINVAL, "recovery: the workspace root must be an absolute path");
	if (!(rc = calloc(1, sizeof(*rc))))
		return bkr_error_oom();
	rc->repo = repo;
	if (!(rc->workspace = strdup(setup->workspace)) ||
	    !(rc->config_name = strdup(setup->config_name ? setup->config_name : "config"))) {
		err = bkr_error_oom();
		goto done;
	}
	wl = strlen(rc->workspace);
	while (wl > 1 && rc->workspace[wl - 1] == '/')
		rc->workspace[--wl] = '\0';
	if (realpath(rc->workspace, real) && !(rc->workspace_real = strdup(real))) {
		err = bkr_error_oom();
		goto done;
	}
	if ((err = bkr_recover_rules_parse(&rc->rules, setup->recovery_json, rc->config_name)) < 0)
		goto done;
	/* sources */
	if (setup->nsources) {
		if (!(rc->sources = calloc(setup->nsources, sizeof(*rc->sources)))) {
			err = bkr_error_oom();
			goto done;
		}
		for (size_t i = 0; i < setup->nsources; i++) {
			rc->nsources = i + 1;
			rc->sources[i].priority = setup->sources[i].priority;
			if (!(rc->sources[i].name = bkr_rec_strdup(setup->sources[i].name ? setup->sources[i].name : "")) ||
			    !(rc->sources[i].path = bkr_rec_strdup(setup->sources[i].path ? setup->sources[i].path
											  : rc->workspace))) {
				err = bkr_error_oom();
				goto done;
			}
		}
	}
	/* required files: the setup's (absolute or relative) and the section's */
	for (size_t pass = 0; pass < 2; pass++) {
		char *const *l = pass ? rc->rules->required : setup->required_files;
		size_t n = pass ? rc->rules->nrequired : setup->nrequired_files;
		for (size_t i = 0; i < n; i++) {
			char *rel = NULL;
			bool dup = false;
			if ((err = bkr_rec_relpath(rc, l[i], &rel)) < 0) {
				bkr_error_prefix("%s: required_files[%zu]", rc->config_name, i);
				goto done;
			}
			for (size_t j = 0; j < rc->nrequired; j++)
				dup = dup || strcmp(rc->required[j], rel) == 0;
			if (!dup)
				err = push(&rc->required, &rc->nrequired, rel);
			free(rel);
			if (err < 0)
				goto done;
		}
	}
	/* protected patterns: the section's refine a default "*" */
	{
		bool setup_default = setup->nprotected_patterns == 0 ||
				     (setup->nprotected_patterns == 1 && strcmp(setup->protected_patterns[0], "*") == 0);
		if (!(setup_default && rc->rules->nprotected))
			for (size_t i = 0; i < setup->nprotected_patterns; i++)
				if ((err = push(&rc->protected_patterns, &rc->nprotected, setup->protected_patterns[i])) < 0)
					goto done;
		for (size_t i = 0; i < rc->rules->nprotected; i++)
			if ((err = push(&rc->protected_patterns, &rc->nprotected, rc->rules->protected_patterns[i])) < 0)
				goto done;
		if (!rc->nprotected && (err = push(&rc->protected_patterns, &rc->nprotected, "*")) < 0)
			goto done;
	}
	/* alert command */
	{
		char *const *a = rc->rules->alert ? rc->rules->alert : setup->alert_command;
		size_t n = 0;
		for (size_t i = 0; a && a[i]; i++)
			if ((err = push(&rc->alert, &n, a[i])) < 0)
				goto done;
	}
	/* staging directory */
	{
		const char *s = setup->staging_dir ? setup->staging_dir : rc->rules->staging_dir;
		char *state = NULL;
		if (s)
			rc->staging_dir = strdup(s);
		else if (!(state = bkr_host_state_dir()))
			err = bkr_error_last_code();
		else if (asprintf(&rc->staging_dir, "%s/staged-runs", state) < 0)
			rc->staging_dir = NULL;
		free(state);
		if (!rc->staging_dir) {
			err = err < 0 ? err : bkr_error_oom();
			goto done;
		}
	}
	bkr_host_name(host, sizeof(host), setup->hostname);
	if (!(rc->hostname = strdup(host))) {
		err = bkr_error_oom();
		goto done;
	}
	*out = rc;
	rc = NULL;
done:
	bkr_recover_free(rc);
	return err;
}

void bkr_recover_set_progress(bkr_recover *rc, bkr_progress_fn fn, void *ctx)
{
	rc->progress = fn;
	rc->progress_ctx = ctx;
}

int bkr_recover_set_host(bkr_recover *rc, const char *hostname)
{
	char host[256], *h;

	bkr_host_name(host, sizeof(host), hostname);
	if (!(h = strdup(host)))
		return bkr_error_oom();
	free(rc->hostname);
	rc->hostname = h;
	/* another host: another choice of backups (from the same listing while held) */
	bkr_rec_backups_refilter(rc);
	if (!rc->backups_held)
		bkr_rec_backups_release(rc);
	return 0;
}

const char *bkr_recover_host(const bkr_recover *rc)
{
	return rc->hostname;
}

int bkr_recover_from_config(bkr_recover **out, const bkr_config *cfg, bkr_repo *repo)
{
	bkr_recover_setup s = BKR_RECOVER_SETUP_INIT;
	bkr_recover_source *src = NULL;
	size_t n = 0;
	int err;

	*out = NULL;
	for (size_t i = 0; i < cfg->nsources; i++)
		n += cfg->sources[i].npaths;
	if (n && !(src = calloc(n, sizeof(*src))))
		return bkr_error_oom();
	n = 0;
	for (size_t i = 0; i < cfg->nsources; i++) {
		for (size_t j = 0; j < cfg->sources[i].npaths; j++) {
			src[n].name = cfg->sources[i].name;
			src[n].path = cfg->sources[i].paths[j];
			src[n].priority = cfg->sources[i].priority;
			n++;
		}
	}
	s.workspace = cfg->workspace_root;
	s.recovery_json = cfg->recovery_json;
	s.config_name = cfg->file;
	s.sources = src;
	s.nsources = n;
	s.required_files = cfg->required_files;
	s.nrequired_files = cfg->nrequired_files;
	s.protected_patterns = cfg->protected_patterns;
	s.nprotected_patterns = cfg->nprotected_patterns;
	s.alert_command = cfg->alert_command;
	err = bkr_recover_new(out, &s, repo);
	free(src);
	return err;
}
