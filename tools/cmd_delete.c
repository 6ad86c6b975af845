/** @file
 * bkr delete: remove backups.  Their manifests move into trash/ (bkr/trash.h)
 * under the exclusive lock; their data is freed by prune.
 */
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "lifecycle.h"
#include "bkr/error.h"
#include "bkr/hold.h"
#include "bkr/retention.h"
#include "bkr/trash.h"

static const char usage[] =
	"usage: bkr delete -r REPO ID... [--dry-run] [--force] [--no-wait] [--json]\n\n"
	"Delete backups (an id or a unique prefix each).  Their manifests move into\n"
	"the repository's trash for the grace period (docs/operations.md); the data\n"
	"only they use is freed by 'bkr prune'.  A pinned backup, or one a hold\n"
	"keeps (the last good copy of a damaged or missing file: 'bkr hold'), is\n"
	"refused unless --force; nothing is deleted when one ID is refused or\n"
	"unknown.  A backup whose manifest is damaged (it stops prune) is deleted\n"
	"by its whole ID with --force.\n\n"
	"  -n, --dry-run   say what would be deleted, delete nothing\n"
	"  -f, --force     delete pinned and held backups too\n"
	"      --no-wait   fail at once when a backup is running (default: wait)\n";

struct opts {
	bool dry_run, force;
	lc_lock_opts lock;
};

/* BKR_EINVAL naming the first of @p ids a hold keeps, else 0 */
static int refuse_held(cli *c, bkr_repo *repo, const char *const *ids, size_t n)
{
	bkr_holds h;
	int err = bkr_holds_read(repo, &h);
	if (err == 0)
		cli_warn_holds(c, &h);
	for (size_t k = 0; k < h.n && err == 0; k++)
		for (size_t i = 0; i < n && err == 0; i++)
			if (!strcmp(h.v[k].backup_id, ids[i]))
				err = bkr_error_set(BKR_EINVAL, "backup %s has the last good copy of %s (%s, held): not deleted "
						    "(recover the file, or 'bkr hold release' it; or --force)",
						    ids[i], h.v[k].path, h.v[k].damage);
	bkr_holds_free(&h);
	return err;
}

static int opt(cli *c, int o, const char *arg, void *st)
{
	struct opts *s = st;
	(void)arg;
	switch (o) {
	case 'n':
		s->dry_run = true;
		return 0;
	case 'f':
		s->force = true;
		return 0;
	case LC_OPT_NO_WAIT:
		s->lock.no_wait = true;
		return 0;
	}
	return cli_usage_error(c, "unknown option");
}

/* Whether @p id names, in full, an object "@p dir/ID.json" of the repository;
 * the error of the lookup before (naming the ID) is kept, whole, when not. */
static bool id_object_exists(bkr_repo *repo, const char *dir, const char *id)
{
	char name[300], *msg;
	uint64_t size;
	int code = bkr_error_last_code();
	if (!*id || strchr(id, '/') || id[0] == '.' || snprintf(name, sizeof(name), "%s/%s.json", dir, id) >= (int)sizeof(name))
		return false;
	msg = strdup(bkr_error_message());
	if (bkr_store_stat(bkr_repo_store(repo), name, &size) < 0) {
		bkr_error_set(code, "%s", msg ? msg : "out of memory (the backup lookup's error could not be kept)");
		free(msg);
		return false;
	}
	free(msg);
	return true;
}

/* Whether @p id names, in full, a manifest in backups/ that does not read.
 * The error of the lookup before (naming the ID) is kept when it does not. */
static bool damaged_manifest(bkr_repo *repo, const char *id)
{
	return id_object_exists(repo, "backups", id);
}

/* Whether @p id names, in full, a backup already moved into the trash (by an
 * earlier delete, perhaps one that failed after the move): then the lookup's
 * error says so. */
static bool already_deleted(bkr_repo *repo, const char *id)
{
	int code = bkr_error_last_code();
	if (!id_object_exists(repo, "trash", id))
		return false;
	bkr_error_set(code, "backup %s: already deleted (its manifest is in the trash until prune removes it)", id);
	return true;
}

int cmd_delete(cli *c, int argc, char **argv)
{
	static const struct option lo[] = {
		{ "dry-run", no_argument, NULL, 'n' },
		{ "force", no_argument, NULL, 'f' },
		{ "no-wait", no_argument, NULL, LC_OPT_NO_WAIT },
		{ NULL, 0, NULL, 0 },
	};
	struct opts s = { 0 };
	bkr_repo *repo = NULL;
	bkr_lock *lock = NULL;
	bkr_store *store = NULL;
	bkr_manifest **found = NULL;
	const char **ids = NULL;
	size_t n = 0;
	int64_t now = bkr_time_now_ns();
	int first, err = 0;

	CLI_PARSE(c, argc, argv, usage, "nf", lo, opt, &s, &first);
	if (first >= argc)
		return cli_usage_error(c, "expected at least one backup ID");
	n = (size_t)(argc - first);
	if (!(found = calloc(n, sizeof(*found))) || !(ids = calloc(n, sizeof(*ids)))) {
		free(found);
		return cli_fail(c, bkr_error_oom());
	}
	if ((err = cli_open_repo(c, &repo, 0)) < 0)
		goto done;
	if (!s.dry_run && (err = lc_lock(c, repo, &s.lock, &lock)) < 0)
		goto done;
	/* resolve every ID first: all or nothing */
	for (size_t i = 0; i < n; i++) {
		if ((err = cli_find_backup(c, repo, argv[first + i], &found[i])) < 0) {
			if (err != BKR_ENOTFOUND || !damaged_manifest(repo, argv[first + i])) {
				if (err == BKR_ENOTFOUND)
					already_deleted(repo, argv[first + i]);
				goto done;
			}
			/* named in full: a manifest that does not read (it stops prune) */
			if (!s.force) {
				err = bkr_error_set(BKR_EINVAL, "backup %s: its manifest is damaged, so its pins cannot be "
						    "read: not deleted (delete it with --force)", argv[first + i]);
				goto done;
			}
			bkr_error_clear();
			err = 0;
			ids[i] = argv[first + i];
		} else {
			ids[i] = found[i]->backup_id;
		}
		if (found[i] && bkr_retention_pinned(found[i], now) && !s.force) {
			err = bkr_error_set(BKR_EINVAL, "backup %s is pinned%s%s: not deleted (unpin it, or --force)",
					    ids[i], *found[i]->pinned_until ? " until " : "", found[i]->pinned_until);
			goto done;
		}
		for (size_t j = 0; j < i; j++)
			if (!strcmp(ids[j], ids[i])) {
				err = bkr_error_set(BKR_EINVAL, "backup %s is named twice", ids[i]);
				goto done;
			}
	}
	/* a held backup has the last good copy of a file nobody recovered yet (bkr/hold.h) */
	if (!s.force && (err = refuse_held(c, repo, ids, n)) < 0)
		goto done;
	if (!s.dry_run) {
		if ((err = bkr_trash_repo_store(repo, &store)) < 0 || (err = bkr_trash_backups(store, ids, n, now)) < 0)
			goto done;
		lc_log_deleted(ids, n, "delete");
	}
	if (c->json) {
		json_out j;
		json_out_init(&j, stdout);
		json_out_begin_object(&j);
		json_out_key(&j, "dry_run");
		json_out_bool(&j, s.dry_run);
		/* array elements have no key for a _hex twin: U+FFFD for bytes that are not UTF-8 */
		json_out_key(&j, "deleted");
		json_out_begin_array(&j);
		for (size_t i = 0; i < n; i++)
			json_out_string(&j, ids[i]);
		json_out_end_array(&j);
		json_out_end_object(&j);
	} else if (!c->quiet) {
		for (size_t i = 0; i < n; i++)
			printf("%s %s\n", s.dry_run ? "would delete" : "deleted", ids[i]);
		if (!s.dry_run)
			printf("data only these backups used is freed by 'bkr prune'\n");
	}
done:
	for (size_t i = 0; i < n; i++)
		bkr_manifest_free(found[i]);
	free(found);
	free(ids);
	bkr_store_free(store);
	bkr_lock_release(lock);
	bkr_repo_free(repo);
	return err < 0 ? cli_fail(c, err) : 0;
}
