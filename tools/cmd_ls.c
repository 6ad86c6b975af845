/** @file
 * bkr ls and bkr cat: browse a backup without mounting it.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "bkr/error.h"
#include "bkr/walk.h"

static const char ls_usage[] =
	"usage: bkr ls -r REPO ID [PATH] [-l] [-R] [--json]\n\n"
	"List the entries of PATH (default: the backup root, one directory per\n"
	"source) in backup ID (an id, a unique prefix of it or of its random\n"
	"suffix, or 'latest').\n\n"
	"  -l, --long        mode, owner, size and time\n"
	"  -R, --recursive   everything below PATH\n"
	"      --json        an array of entries with every recorded field\n";

static const char cat_usage[] =
	"usage: bkr cat -r REPO ID PATH\n\n"
	"Write the content of file PATH of backup ID to standard output, every chunk\n"
	"and the whole-file hash verified.  Exit status 4 when the data is damaged.\n"
	"--json is refused: the output is the file's bytes.\n";

struct ls_opts {
	bool lng, rec;
};

static int ls_opt(cli *c, int o, const char *arg, void *st)
{
	struct ls_opts *s = st;
	if (o == 'l')
		s->lng = true;
	else if (o == 'R')
		s->rec = true;
	else
		return cli_usage_error(c, "unknown option");
	return 0;
}

static const char *type_name(uint8_t t)
{
	static const char *const names[] = { "?", "file", "dir", "symlink", "fifo", "chardev", "blockdev", "socket" };
	return t < 8 ? names[t] : "?";
}

static void mode_string(const bkr_entry *e, char out[11])
{
	static const char types[] = "?-dlpcbs";
	uint32_t m = e->mode;
	out[0] = e->type < 8 ? types[e->type] : '?';
	const char *rwx = "rwxrwxrwx";
	for (int i = 0; i < 9; i++)
		out[1 + i] = (m & (1u << (8 - i))) ? rwx[i] : '-';
	if (m & S_ISUID)
		out[3] = (m & S_IXUSR) ? 's' : 'S';
	if (m & S_ISGID)
		out[6] = (m & S_IXGRP) ? 's' : 'S';
	if (m & S_ISVTX)
		out[9] = (m & S_IXOTH) ? 't' : 'T';
	out[10] = '\0';
}

static void time_string(int64_t ns, char out[32])
{
	bkr_time_format(out, ns);
}

static void print_json_entry(json_out *j, const char *path, const bkr_entry *e)
{
	char t[32], hex[BKR_ID_HEX];
	json_out_begin_object(j);
	json_out_path(j, "path", path, strlen(path));
	json_out_member(j, "type", type_name(e->type));
	json_out_key(j, "mode");
	json_out_uint(j, e->mode & 07777);
	json_out_key(j, "uid");
	json_out_uint(j, e->uid);
	json_out_key(j, "gid");
	json_out_uint(j, e->gid);
	json_out_key(j, "user");
	json_out_bytes(j, (const char *)e->user, e->user_len);
	json_out_key(j, "group");
	json_out_bytes(j, (const char *)e->group, e->group_len);
	time_string(e->mtime_ns, t);
	json_out_key(j, "size");
	json_out_uint(j, e->size);
	json_out_member(j, "mtime", t);
	json_out_key(j, "mtime_ns");
	json_out_int(j, e->mtime_ns);
	if (e->type == BKR_FT_SYMLINK)
		json_out_path(j, "target", (const char *)e->target, e->target_len);
	if (e->type == BKR_FT_FILE) {
		bkr_id_to_hex(&e->content, hex);
		/* a file with holes: the sparse digest (docs/format.md), not a SHA-256 */
		json_out_member(j, e->sparse_digest ? "sparse_digest" : "sha256", hex);
	}
	if (e->link_group) {
		json_out_key(j, "hardlink_group");
		json_out_uint(j, e->link_group);
		json_out_key(j, "nlink");
		json_out_uint(j, e->nlink);
	}
	json_out_end_object(j);
}

static void print_entry(cli *c, const char *path, const bkr_entry *e, bool lng)
{
	if (lng) {
		char mode[11], t[32];
		mode_string(e, mode);
		time_string(e->mtime_ns, t);
		printf("%s %-8.*s %-8.*s %12llu %.19s ", mode, (int)(e->user_len ? e->user_len : 1),
		       e->user_len ? (const char *)e->user : "-", (int)(e->group_len ? e->group_len : 1),
		       e->group_len ? (const char *)e->group : "-", (unsigned long long)e->size, t);
	}
	cli_print_name(stdout, path, strlen(path));
	if (e->type == BKR_FT_DIR)
		putchar('/');
	if (lng && e->type == BKR_FT_SYMLINK) {
		fputs(" -> ", stdout);
		cli_print_name(stdout, (const char *)e->target, e->target_len);
	}
	putchar('\n');
	(void)c;
}

int cmd_ls(cli *c, int argc, char **argv)
{
	static const struct option lo[] = {
		{ "long", no_argument, NULL, 'l' },
		{ "recursive", no_argument, NULL, 'R' },
		{ NULL, 0, NULL, 0 },
	};
	struct ls_opts s = { 0 };
	bkr_repo *repo = NULL;
	bkr_manifest *m = NULL;
	bkr_walk *w = NULL;
	const bkr_walk_item *it;
	const char *path;
	json_out j;
	size_t bad = 0;
	int first, err, rc = 0;

	json_out_init(&j, stdout);
	CLI_PARSE(c, argc, argv, ls_usage, "lR", lo, ls_opt, &s, &first);
	if (first >= argc || argc - first > 2)
		return cli_usage_error(c, "expected a backup ID and at most one PATH");
	path = first + 1 < argc ? argv[first + 1] : "";
	while (*path == '/')
		path++;
	if ((err = cli_open_repo(c, &repo, BKR_REPO_RDONLY)) < 0)
		return cli_fail(c, err);
	if ((err = cli_find_backup(c, repo, argv[first], &m)) < 0 ||
	    (err = bkr_walk_new(&w, repo, &m->tree, path, s.rec ? 0 : BKR_WALK_NO_RECURSE)) < 0) {
		/* PATH may name a single file: show just that entry. */
		if (m && err == BKR_EINVAL) {
			bkr_entry e;
			bkr_dir *holder = NULL;
			if ((err = bkr_walk_resolve(repo, &m->tree, path, &e, &holder, NULL, NULL)) == 0) {
				if (c->json) {
					json_out_begin_array(&j);
					print_json_entry(&j, path, &e);
					json_out_end_array(&j);
				} else {
					print_entry(c, path, &e, s.lng);
				}
			}
			bkr_dir_free(holder);
		}
		if (m && err == BKR_ECORRUPT)
			bkr_error_prefix("backup %s", m->backup_id);
		rc = err < 0 ? cli_fail(c, err) : 0;
		goto done;
	}
	if (c->json)
		json_out_begin_array(&j);
	while ((err = bkr_walk_next(w, &it)) > 0) {
		if (it->error < 0) {
			bad++;
			cli_problem(c, "%s: %s", it->path, bkr_walk_error_message(w));
		}
		if (c->json)
			print_json_entry(&j, it->path, &it->entry);
		else
			print_entry(c, it->path, &it->entry, s.lng);
	}
	if (c->json)
		json_out_end_array(&j);
	if (err < 0)
		rc = cli_fail(c, err);
	else if (bad)
		rc = BKR_EXIT_CORRUPT;
done:
	bkr_walk_free(w);
	bkr_manifest_free(m);
	bkr_repo_free(repo);
	return rc;
}

static int write_out(void *ctx, uint64_t offset, const uint8_t *data, size_t len)
{
	uint64_t *pos = ctx;
	static const uint8_t zeros[65536];
	while (*pos < offset) { /* a hole: zeros on a pipe */
		size_t n = offset - *pos > sizeof(zeros) ? sizeof(zeros) : (size_t)(offset - *pos);
		if (fwrite(zeros, 1, n, stdout) != n)
			return bkr_error_set(BKR_EIO, "cannot write to standard output");
		*pos += n;
	}
	if (fwrite(data, 1, len, stdout) != len)
		return bkr_error_set(BKR_EIO, "cannot write to standard output");
	*pos += len;
	return 0;
}

int cmd_cat(cli *c, int argc, char **argv)
{
	bkr_repo *repo = NULL;
	bkr_manifest *m = NULL;
	bkr_dir *holder = NULL;
	const bkr_tree *leaf = NULL;
	uint32_t li = 0;
	bkr_entry e;
	uint64_t pos = 0;
	char what[1024];
	const char *path;
	int first, err, rc = 0;

	CLI_PARSE(c, argc, argv, cat_usage, "", NULL, NULL, NULL, &first);
	/* --json promises JSON on stdout, and cat's is the file's bytes (a failure
	 * half-way would put the error object after some of them) */
	if (c->json)
		return cli_usage_error(c, "--json: cat writes the file's bytes, which are not JSON ('bkr ls --json ID PATH' gives its metadata)");
	if (argc - first != 2)
		return cli_usage_error(c, "expected a backup ID and a PATH");
	path = argv[first + 1];
	while (*path == '/')
		path++;
	if ((err = cli_open_repo(c, &repo, BKR_REPO_RDONLY)) < 0)
		return cli_fail(c, err);
	if ((err = cli_find_backup(c, repo, argv[first], &m)) < 0 ||
	    (err = bkr_walk_resolve(repo, &m->tree, path, &e, &holder, &leaf, &li)) < 0) {
		if (m && err == BKR_ECORRUPT) /* a tree on the way is damaged */
			bkr_error_prefix("backup %s", m->backup_id);
		rc = cli_fail(c, err);
		goto done;
	}
	if (e.type != BKR_FT_FILE || !leaf) {
		rc = cli_failf(c, BKR_EINVAL, "%s: not a regular file", path);
		goto done;
	}
	snprintf(what, sizeof(what), "backup %s: %s", m->backup_id, path);
	if ((err = bkr_walk_read_file(repo, leaf, li, what, write_out, &pos)) < 0) {
		rc = cli_fail(c, err);
		goto done;
	}
	/* trailing hole */
	if (pos < e.size && (err = write_out(&pos, e.size, (const uint8_t *)"", 0)) < 0)
		rc = cli_fail(c, err);
done:
	bkr_dir_free(holder);
	bkr_manifest_free(m);
	bkr_repo_free(repo);
	return rc;
}
