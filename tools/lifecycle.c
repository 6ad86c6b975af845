/** @file
 * Shared parts of bkr delete, cleanup and prune (lifecycle.h).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lifecycle.h"
#include "bkr/clock.h"
#include "bkr/error.h"
#include "bkr/hold.h"
#include "bkr/trash.h"
#include "bkr/log.h"

int lc_lock(cli *c, bkr_repo *repo, const lc_lock_opts *o, bkr_lock **out)
{
	int err = bkr_repo_lock(repo, BKR_LOCK_EXCLUSIVE, false, out);

	if (err == BKR_ELOCKED) {
		if (o->no_wait) {
			/* bkr_repo_lock's word on the holder (any command: a backup, a
			 * delete, a prune...; an S3 lock: who, and when it is stale),
			 * not a guess that it is a backup or a cleanup */
			return bkr_error_set(BKR_ELOCKED, "%s; not waiting (--no-wait)", bkr_error_message());
		}
		if (!c->quiet)
			fprintf(stderr, "bkr %s: waiting for running backups to finish...\n", c->cmd);
		err = bkr_repo_lock(repo, BKR_LOCK_EXCLUSIVE, true, out);
	}
	/* the index loaded at open misses what backups published since (the
	 * one just waited for): their trees would look unreadable */
	if (err == 0 && (err = bkr_repo_reload_index(repo)) < 0) {
		bkr_lock_release(*out);
		*out = NULL;
	}
	return err;
}

int lc_plan_make(lc_plan *out, bkr_repo *repo, const bkr_retention_policy *const *pol,
		 const bkr_backup_type *only_type, int64_t as_of)
{
	bkr_records *rs = NULL;
	bkr_holds *holds = &out->holds;
	size_t n, nnames = 0;
	int err;

	memset(out, 0, sizeof(*out));
	/* records/ read once: the backups' pins and the holds (bkr/hold.h: the
	 * backups holding the last good copies of damaged or missing workspace
	 * files nobody recovered yet) from one listing */
	if ((err = bkr_repo_records_read(repo, &rs)) < 0)
		return err;
	/* the holds first: the listing leaves the last damaged manifest's message
	 * in the error slot, for cleanup's warning */
	if ((err = bkr_holds_from_records(rs, holds)) == 0)
		err = bkr_repo_list_in(repo, rs, false, &out->l, &out->bad);
	bkr_records_free(rs);
	if (err < 0)
		return err;
	n = out->l.n ? out->l.n : 1;
	if (!(out->ms = calloc(n, sizeof(*out->ms))) || !(out->items = calloc(n, sizeof(*out->items))) ||
	    !(out->d = calloc(n, sizeof(*out->d))) || !(out->gone = calloc(n, sizeof(*out->gone))))
		return bkr_error_oom();
	for (size_t i = 0; i < out->l.n; i++)
		if (!only_type || out->l.items[i]->type == *only_type) {
			out->ms[out->n++] = out->l.items[i];
			nnames += out->l.items[i]->nsources;
		}
	if (!(out->names = calloc(nnames ? nnames : 1, sizeof(*out->names))))
		return bkr_error_oom();
	nnames = 0;
	for (size_t i = 0; i < out->n; i++) {
		bkr_retention_item_from(&out->items[i], out->ms[i], out->names + nnames);
		nnames += out->ms[i]->nsources;
	}
	out->held_files = bkr_holds_files(holds);
	for (size_t i = 0; i < out->n; i++)
		for (size_t k = 0; k < holds->n && !out->items[i].held; k++)
			if (!strcmp(holds->v[k].backup_id, out->ms[i]->backup_id)) {
				out->items[i].held = true;
				out->held++;
			}
	if ((err = bkr_retention_apply(out->d, out->items, out->n, pol, as_of)) < 0)
		return err;
	for (size_t i = 0; i < out->n; i++)
		if (!out->d[i].keep)
			out->gone[out->ngone++] = out->ms[i]->backup_id;
	return 0;
}

void lc_plan_warn_future(cli *c, const lc_plan *p)
{
	for (size_t i = 0; i < p->n; i++)
		if (p->d[i].rules & BKR_RETAIN_FUTURE)
			cli_warn_future(c, p->ms[i]->backup_id, p->ms[i]->time_ns);
}

void lc_plan_free(lc_plan *p)
{
	if (!p)
		return;
	free(p->names);
	free(p->gone);
	free(p->d);
	free(p->items);
	free(p->ms);
	bkr_manifest_list_free(&p->l);
	bkr_holds_free(&p->holds);
	memset(p, 0, sizeof(*p));
}

int lc_plan_apply(bkr_repo *repo, const lc_plan *p, int64_t now, const bkr_prune_options *po,
		  bkr_prune_report *out)
{
	bkr_store *store = NULL;
	int err = 0;

	if (p->ngone && ((err = bkr_trash_repo_store(repo, &store)) < 0 ||
			 (err = bkr_trash_backups(store, p->gone, p->ngone, now)) < 0))
		goto done;
	lc_log_deleted(p->gone, p->ngone, "retention");
	if (po && (err = bkr_prune_run(repo, po, out)) == 0)
		lc_log_prune(out);
done:
	bkr_store_free(store);
	return err;
}

int lc_as_of(cli *c, const char *arg, int64_t *out)
{
	return cli_as_of(c, arg, out);
}

int lc_as_of_allowed(cli *c, int64_t as_of, int64_t now, bool dry_run)
{
	char t[32];
	if (dry_run || !bkr_time_in_future(as_of, now))
		return 0;
	bkr_time_format(t, as_of);
	return cli_usage_error(c, "--as-of %s is after now: a run that changes the repository as of a later time "
			       "would remove backups, or move data to a colder tier, that the policy keeps today; "
			       "give --dry-run to see what it would do", t);
}

void lc_print_prune(cli *c, json_out *j, const bkr_prune_report *p, bool dry_run)
{
	char a[32], b[32], d[32], e[32], f[32];
	uint64_t moved = p->unused_bytes + p->repacked_bytes + p->leftover_bytes;
	uint64_t freed = moved - p->repack_written; /* once the trash expires */

	cli_progress_done(c);
	if (c->json) {
		json_out_begin_object(j);
		json_out_key(j, "dry_run");
		json_out_bool(j, dry_run);
		json_out_key(j, "packs");
		json_out_uint(j, p->packs);
		json_out_key(j, "pack_bytes");
		json_out_uint(j, p->pack_bytes);
		json_out_key(j, "used_blobs");
		json_out_uint(j, p->used_blobs);
		json_out_key(j, "used_bytes");
		json_out_uint(j, p->used_bytes);
		json_out_key(j, "unused_packs");
		json_out_uint(j, p->unused_packs);
		json_out_key(j, "unused_bytes");
		json_out_uint(j, p->unused_bytes);
		json_out_key(j, "repacked_packs");
		json_out_uint(j, p->repacked_packs);
		json_out_key(j, "repacked_bytes");
		json_out_uint(j, p->repacked_bytes);
		json_out_key(j, "repack_written");
		json_out_uint(j, p->repack_written);
		json_out_key(j, "leftover_packs");
		json_out_uint(j, p->leftover_packs);
		json_out_key(j, "leftover_bytes");
		json_out_uint(j, p->leftover_bytes);
		json_out_key(j, "index_files_merged");
		json_out_uint(j, p->index_files);
		json_out_key(j, "moved_to_trash_bytes");
		json_out_uint(j, moved);
		json_out_key(j, "freed_bytes");
		json_out_uint(j, freed);
		json_out_key(j, "trash_freed_bytes");
		json_out_uint(j, p->trash_freed);
		json_out_key(j, "trash_waiting_bytes");
		json_out_uint(j, p->trash_waiting);
		json_out_key(j, "trash_future_batches");
		json_out_uint(j, p->trash_future_batches);
		json_out_key(j, "duplicate_blobs");
		json_out_uint(j, p->duplicate_blobs);
		json_out_key(j, "damaged_copies");
		json_out_uint(j, p->damaged_copies);
		json_out_key(j, "damaged_blobs");
		json_out_uint(j, p->damaged_blobs);
		json_out_key(j, "damaged_packs");
		json_out_uint(j, p->damaged_packs);
		json_out_key(j, "no_file_packs");
		json_out_uint(j, p->no_file_packs);
		json_out_key(j, "damage_recorded");
		json_out_bool(j, !dry_run && (p->damaged_copies || p->damaged_blobs) && !p->damage_unrecorded);
		json_out_end_object(j);
		return;
	}
	if (c->quiet)
		return;
	cli_human_bytes(a, p->pack_bytes);
	cli_human_bytes(b, p->used_bytes);
	printf("%s%" PRIu64 " packs (%s), %" PRIu64 " blobs in use (%s)\n", dry_run ? "dry run: " : "", p->packs, a,
	       p->used_blobs, b);
	cli_human_bytes(a, p->unused_bytes);
	cli_human_bytes(b, p->repacked_bytes);
	cli_human_bytes(d, p->repack_written);
	cli_human_bytes(e, p->leftover_bytes);
	printf("%s %" PRIu64 " unused packs (%s); repack%s %" PRIu64 " (%s into %s); %" PRIu64
	       " leftovers (%s); %" PRIu64 " index files rewritten as one\n",
	       dry_run ? "would remove" : "removed", p->unused_packs, a, dry_run ? " would" : "ed",
	       p->repacked_packs, b, d, p->leftover_packs, e, p->index_files);
	cli_human_bytes(a, moved);
	cli_human_bytes(d, freed);
	cli_human_bytes(f, p->trash_freed);
	cli_human_bytes(b, p->trash_waiting);
	printf("%s %s to trash (%s net once it expires); trash: %s deleted now, %s waiting for the grace period\n",
	       dry_run ? "would move" : "moved", a, d, f, b);
	if (p->trash_future_batches)
		printf("%zu trash batch%s dated in the future (made while the clock was ahead): the grace period "
		       "runs from the first prune that saw %s\n", p->trash_future_batches,
		       p->trash_future_batches == 1 ? " is" : "es are", p->trash_future_batches == 1 ? "it" : "them");
	if (p->damaged_copies)
		printf("%" PRIu64 " damaged cop%s of blobs stored more than once passed over: an intact copy %s "
		       "(run 'bkr verify --read-data')\n", p->damaged_copies, p->damaged_copies == 1 ? "y" : "ies",
		       dry_run ? "would be kept" : "kept");
	if (p->damaged_packs) {
		cli_human_bytes(a, p->damaged_pack_bytes);
		printf("%" PRIu64 " pack%s (%s) left as %s, not repacked: %s a damaged blob (named in a warning); run 'bkr "
		       "repair'\n", p->damaged_packs, p->damaged_packs == 1 ? "" : "s", a,
		       p->damaged_packs == 1 ? "it was" : "they were", p->damaged_packs == 1 ? "it holds" : "each holds");
	}
	if (p->no_file_packs)
		printf("%" PRIu64 " pack%s left in place, %s entries kept: no regular file in %s place (named in a "
		       "warning); move %s away and run 'bkr repair'\n", p->no_file_packs, p->no_file_packs == 1 ? "" : "s",
		       p->no_file_packs == 1 ? "its" : "their", p->no_file_packs == 1 ? "its" : "each one's",
		       p->no_file_packs == 1 ? "it" : "them");
}

void lc_prune_damage(void *ctx, const char *message)
{
	cli_problem(ctx, "%s", message);
	bkr_log_event(BKR_LOG_WARN, "prune", "damage", NULL, "%s", message);
}

int lc_prune_exit(const bkr_prune_report *p)
{
	return p->damaged_blobs || p->no_file_packs || p->damage_unrecorded ? BKR_EXIT_PARTIAL : 0;
}

void lc_log_deleted(const char *const *ids, size_t n, const char *why)
{
	for (size_t i = 0; i < n; i++)
		bkr_log_event(BKR_LOG_INFO, "trash", "deleted", (const char *[]){ "backup_id", ids[i], "by", why, NULL },
			      "backup %s moved to the trash (%s)", ids[i], why);
}

void lc_log_prune(const bkr_prune_report *p)
{
	uint64_t moved = p->unused_bytes + p->repacked_bytes + p->leftover_bytes;
	const struct {
		const char *key;
		uint64_t v;
	} f[] = {
		{ "packs", p->packs }, { "unused_packs", p->unused_packs }, { "repacked_packs", p->repacked_packs },
		{ "leftover_packs", p->leftover_packs }, { "moved_to_trash_bytes", moved },
		{ "freed_bytes", moved - p->repack_written }, { "trash_freed_bytes", p->trash_freed },
		{ "trash_waiting_bytes", p->trash_waiting }, { "duplicate_blobs", p->duplicate_blobs },
		{ "damaged_copies", p->damaged_copies }, { "damaged_blobs", p->damaged_blobs },
		{ "damaged_packs", p->damaged_packs }, { "no_file_packs", p->no_file_packs },
	};
	enum { N = sizeof(f) / sizeof(*f) };
	char num[N][24];
	const char *kv[2 * N + 1];

	for (size_t i = 0; i < N; i++) {
		snprintf(num[i], sizeof(num[i]), "%" PRIu64, f[i].v);
		kv[2 * i] = f[i].key;
		kv[2 * i + 1] = num[i];
	}
	kv[2 * N] = NULL;
	bkr_log_event(BKR_LOG_INFO, "prune", "pruned", kv,
		      "pruned: %" PRIu64 " unused and %" PRIu64 " repacked of %" PRIu64 " packs, %" PRIu64
		      " bytes moved to the trash, %" PRIu64 " deleted from it",
		      p->unused_packs, p->repacked_packs, p->packs, moved, p->trash_freed);
}

int lc_max_unused(cli *c, const char *arg, int *out)
{
	uint64_t v;
	if (cli_uint_arg(c, "--max-unused", arg, "a percentage ", 0, 100, &v))
		return BKR_EXIT_USAGE;
	*out = (int)v;
	return 0;
}
