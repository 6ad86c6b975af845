/** @file
 * Prune (prune.h): mark what the manifests reach, repack, write one index,
 * move the rest into trash, expire the trash.
 */
#include "bkr/prune.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bkr/error.h"
#include "bkr/format.h"
#include "bkr/io.h"
#include "bkr/pack.h"
#include "bkr/tier.h"
#include "bkr/trash.h"
#include "bkr/verify_record.h"
#include "array.h"
#include "idset.h"
#include "reach.h"

/* A pack the index names, with what prune found out about it. */
struct pack {
	bkr_pack_id id;
	uint8_t type;
	size_t first, n;          /* its entries: ents[first .. first+n) */
	uint64_t bytes, used;     /* stored bytes (headers included) of all / used blobs (kept copies) */
	uint64_t file_size;       /* 0 when missing on disk */
	bool on_disk, drop, repack;
	bool damaged;             /* holds a used blob with no intact copy: left as it is */
	uint32_t where;           /* bit i: place i (0 = hot, then the tiers) holds a copy */
	char path[PATH_MAX];      /* of the first copy */
	char name[64];            /* its object name, the same in every place */
};

/* A file on disk the index does not name: a leftover of a killed writer. */
struct leftover {
	bkr_pack_id id;           /* a pack's (not for a temporary) */
	char path[PATH_MAX];
	char name[PATH_MAX];      /* in its place's store */
	size_t place;
	bool tmp;
	uint64_t size;
};

struct prune {
	bkr_repo *r;
	bkr_store *store;   /* the repository's (new packs are published through it) */
	const bkr_prune_options *o;
	bkr_prune_report *rep;
	int64_t now;
	bkr_idset used, trees;
	bkr_index_entry *ents;
	size_t nents;
	struct pack *packs;
	size_t npacks;
	bool *keep;         /* per entry: the one copy of a used blob the new index names */
	struct leftover *left;
	size_t nleft, capleft;
	const char *backup; /* whose trees are being marked, for messages */
	bkr_idset bad;      /* used blobs read with no copy intact */
	bkr_damaged_copy *dmg; /* damaged copies met, for the damage record */
	size_t ndmg, capdmg;
};

/* A damaged copy met (@p e): kept for the damage record that repair reads. */
static int note_copy(struct prune *p, const bkr_index_entry *e)
{
	int err = bkr_array_grow((void **)&p->dmg, &p->capdmg, p->ndmg, sizeof(*p->dmg));
	if (err == 0)
		p->dmg[p->ndmg++] = (bkr_damaged_copy){ e->id, e->pack };
	return err;
}

/* One line for o->damage: a used blob that no intact copy replaces. */
static void say_damage(struct prune *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void say_damage(struct prune *p, const char *fmt, ...)
{
	char *msg = NULL; /* whole: it names a message that may be long */
	va_list ap;
	va_start(ap, fmt);
	if (vasprintf(&msg, fmt, ap) < 0)
		msg = NULL;
	va_end(ap);
	if (p->o->damage)
		p->o->damage(p->o->damage_ctx, msg ? msg : "damage found (out of memory to say more)");
	free(msg);
}

/* What a message adds about the record of the damage. */
static const char *recorded(const struct prune *p)
{
	return p->o->dry_run ? "a real run records the damage for it" : "the damage is recorded for it";
}

/* ---- 1. mark ---------------------------------------------------------------- */

static int use(void *ctx, const bkr_id *id)
{
	struct prune *p = ctx;
	return bkr_idset_add(&p->used, id) < 0 ? bkr_error_oom() : 0;
}

static int mark_tree(struct prune *p, const bkr_id *id)
{
	int err = bkr_reach_tree(p->r, id, &p->trees, use, p);
	if (err == BKR_ECORRUPT || err == BKR_ENOTFOUND) {
		/* the message as an argument is formatted aside first (bkr/error.h): kept whole */
		return bkr_error_set(BKR_ECORRUPT,
				     "backup %s: a tree cannot be read (%s); prune stops before changing anything "
				     "(run 'bkr verify')", p->backup, bkr_error_message());
	}
	return err;
}

static bool id_zero(const bkr_id *id)
{
	for (size_t i = 0; i < BKR_ID_SIZE; i++)
		if (id->b[i])
			return false;
	return true;
}

/* Every blob reachable from backups/ and runs/; a damaged manifest stops prune. */
static int mark(struct prune *p)
{
	int err = 0;
	for (int runs = 0; runs < 2 && err == 0; runs++) {
		bkr_manifest_list l = { 0 };
		size_t bad = 0;
		/* no records: pins and tags do not change what a backup uses */
		if ((err = bkr_repo_list_in(p->r, NULL, runs, &l, &bad)) < 0)
			return err;
		if (bad) {
			err = bkr_error_set(BKR_ECORRUPT,
					    "%zu %s manifest(s) are damaged (last: %s); prune would lose what they "
					    "reference, so it stops before changing anything",
					    bad, runs ? "recovery-run" : "backup", bkr_error_message());
		}
		for (size_t i = 0; i < l.n && err == 0; i++) {
			p->backup = l.items[i]->backup_id;
			if (!id_zero(&l.items[i]->tree))
				err = mark_tree(p, &l.items[i]->tree);
			if (err == 0 && !id_zero(&l.items[i]->report))
				err = use(p, &l.items[i]->report);
			if (p->o->progress)
				p->o->progress(p->o->progress_ctx, "marking", runs ? "recovery runs" : "backups", i + 1, l.n,
					       0, 0);
		}
		bkr_manifest_list_free(&l);
	}
	return err;
}

/* ---- 2. the index and the packs on disk -------------------------------------- */

static int collect_entry(const bkr_index_entry *e, void *ctx)
{
	struct prune *p = ctx;
	p->ents[p->nents++] = *e;
	return 0;
}

static struct pack *find_pack(struct prune *p, const bkr_pack_id *id)
{
	size_t lo = 0, hi = p->npacks;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = bkr_pack_id_cmp(&p->packs[mid].id, id);
		if (c == 0)
			return &p->packs[mid];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

static int on_disk(void *ctx, const bkr_pack_id *id, bkr_blob_type type, size_t place, const char *name,
		   const char *path)
{
	struct prune *p = ctx;
	struct pack *pk = id ? find_pack(p, id) : NULL;
	bool recorded;
	bkr_store *s;
	uint64_t size;
	int64_t mtime;
	int err;

	(void)type;
	if (place >= 32)
		return 0;
	s = bkr_repo_tier(p->r, place, NULL, &recorded);
	err = bkr_store_stat_time(s, name, &size, &mtime);
	if (err < 0 && !id) { /* a temporary: published or removed since it was listed */
		bkr_error_clear();
		return 0;
	}
	/* a pack listed, then 'no such object': asked again as every reader asks
	 * (bkr_store_stat_listed), then an I/O error that stops prune before it changes anything —
	 * never taken for a pack gone, whose unused entries the index would lose */
	if (err == BKR_ENOTFOUND) {
		bkr_error_clear();
		if ((err = bkr_store_stat_listed(s, name, &size)) == 0)
			err = bkr_store_stat_time(s, name, &size, &mtime);
	}
	if (err < 0)
		return err;
	if (pk) {
		if (!pk->on_disk) {
			pk->file_size = size;
			snprintf(pk->path, sizeof(pk->path), "%s", path);
			snprintf(pk->name, sizeof(pk->name), "%s", name);
		}
		pk->on_disk = true;
		pk->where |= 1u << place;
		return 0;
	}
	if (place > 0 && !recorded)
		return 0; /* a configured tier the repository never used: perhaps not only its */
	/* a leftover: only once it is older than the grace period (a recovery run,
	 * which takes no lock, may be between its pack and its index) */
	if (mtime < 0 || mtime > p->now / 1000000000LL - p->o->grace_s)
		return 0; /* young, or of unknown age */
	if (p->nleft == p->capleft) {
		struct leftover *nl = realloc(p->left, (p->capleft = p->capleft ? 2 * p->capleft : 16) * sizeof(*nl));
		if (!nl)
			return bkr_error_oom();
		p->left = nl;
	}
	if (id)
		p->left[p->nleft].id = *id;
	snprintf(p->left[p->nleft].path, PATH_MAX, "%s", path);
	snprintf(p->left[p->nleft].name, PATH_MAX, "%s", name);
	p->left[p->nleft].place = place;
	p->left[p->nleft].tmp = id == NULL;
	p->left[p->nleft].size = size;
	p->nleft++;
	return 0;
}

static bool tended(struct prune *p, size_t i);

/* Temporaries in trash/ (an interrupted batch): foreach_pack does not look there. */
static int trash_tmp(void *ctx, bkr_store *s, size_t place, const char *name)
{
	struct prune *p = ctx;
	const char *base = strrchr(name, '/');
	char path[PATH_MAX];
	base = base ? base + 1 : name;
	if (!tended(p, place) || strncmp(base, ".tmp-", 5) || bkr_store_describe(s, name, path, sizeof(path)) < 0) {
		bkr_error_clear();
		return 0;
	}
	return on_disk(p, NULL, BKR_BLOB_DATA, place, name, path);
}

static int load_index(struct prune *p, bkr_index **idx)
{
	uint64_t n;
	int err;

	if ((err = bkr_index_load(idx, bkr_repo_store(p->r), "index/", 0)) < 0)
		return err;
	n = bkr_index_count(*idx);
	if (!(p->ents = malloc((n ? n : 1) * sizeof(*p->ents))))
		return bkr_error_oom();
	if ((err = bkr_index_foreach(*idx, collect_entry, p)) < 0)
		return err;
	qsort(p->ents, p->nents, sizeof(*p->ents), bkr_index_entry_cmp_pack);
	if (!(p->packs = calloc(p->nents ? p->nents : 1, sizeof(*p->packs))))
		return bkr_error_oom();
	for (size_t i = 0; i < p->nents; i++) {
		struct pack *pk;
		if (i == 0 || bkr_pack_id_cmp(&p->ents[i].pack, &p->ents[i - 1].pack)) {
			pk = &p->packs[p->npacks++];
			pk->id = p->ents[i].pack;
			pk->type = p->ents[i].type;
			pk->first = i;
		}
		pk = &p->packs[p->npacks - 1];
		pk->n++;
		pk->bytes += BKR_BLOB_HEADER_SIZE + (uint64_t)p->ents[i].stored_len;
		if (bkr_idset_has(&p->used, &p->ents[i].id))
			pk->used += BKR_BLOB_HEADER_SIZE + (uint64_t)p->ents[i].stored_len;
	}
	return bkr_repo_foreach_pack_in(p->r, on_disk, p);
}

/*
 * The packs the index names that no listing showed (the listing passes over
 * what is no regular file), looked for by name as verify and repair look.
 * A FIFO, a socket or a directory in a pack's place ("not a regular file")
 * is a damaged pack: named (o->damage), left as it is, every index entry
 * naming it kept, and the rest of prune goes on (counted in no_file_packs:
 * done, with problems).  Found nowhere (or in a trash): missing, as before
 * (verify reports it).  A place that cannot answer stops prune before it
 * changes anything.
 */
static int check_unlisted(struct prune *p)
{
	char path[PATH_MAX], phex[BKR_PACK_ID_HEX];

	for (size_t i = 0; i < p->npacks; i++) {
		struct pack *pk = &p->packs[i];
		int err;
		if (pk->on_disk)
			continue;
		err = bkr_repo_pack_path(p->r, &pk->id, (bkr_blob_type)pk->type, path, sizeof(path));
		if (err == 0 || err == BKR_ENOTFOUND) {
			bkr_error_clear();
			continue;
		}
		if (err != BKR_ECORRUPT) {
			bkr_error_prefix("prune changed nothing");
			return err;
		}
		bkr_pack_id_to_hex(&pk->id, phex);
		pk->damaged = true;
		p->rep->no_file_packs++;
		say_damage(p, "pack %s: %s; prune leaves it in place, its %zu index entr%s kept (move it away, and "
			   "'bkr repair' drops them)", phex, bkr_error_message(), pk->n, pk->n == 1 ? "y" : "ies");
		bkr_error_clear();
	}
	return 0;
}

/* Packs on disk first, then those with more used bytes (fewer copies to make), then in index order. */
static int copy_order(const void *a, const void *b)
{
	const struct pack *x = *(const struct pack *const *)a, *y = *(const struct pack *const *)b;
	if (x->on_disk != y->on_disk)
		return x->on_disk ? -1 : 1;
	if (x->used != y->used)
		return x->used > y->used ? -1 : 1;
	return x < y ? -1 : x > y;
}

/* A used entry of a blob stored more than once, in a pack on disk. */
struct copy {
	size_t k;                 /* in p->ents */
	size_t pack;              /* in p->packs */
	size_t rank;              /* its pack's place in copy_order */
};

/* By blob id, then in the order copies are preferred. */
static int dup_order(const void *a, const void *b, void *ctx)
{
	const struct copy *x = a, *y = b;
	const struct prune *p = ctx;
	int c = bkr_id_cmp(&p->ents[x->k].id, &p->ents[y->k].id);
	if (c)
		return c;
	if (x->rank != y->rank)
		return x->rank < y->rank ? -1 : 1;
	return x->k < y->k ? -1 : x->k > y->k;
}

/*
 * Each used blob stored more than once (in packs on disk): the copy kept is
 * one that reads intact (decoded and hashed), tried in the order they are
 * preferred; the others are dropped only then.  A copy that fails its checks
 * (BKR_ECORRUPT: damaged bytes, which a verify may have recorded, or which no
 * verify has read yet) is passed over (counted in damaged_copies) and noted
 * for the damage record, so that repair takes its entry out of the index
 * where prune does not rewrite it.  When no copy reads, every copy stays
 * indexed (prune does not choose among damaged copies), and the blob is
 * named and counted in damaged_blobs.  Any other error (a store that cannot
 * answer now, I/O, out of memory) says nothing about the data and stops
 * prune before it changes anything.  Cost: one read of each duplicated blob,
 * more only where a copy is damaged; blobs stored once are not read.
 */
static int check_copies(struct prune *p, const bkr_idset *dups, const size_t *rank)
{
	struct copy *dup = NULL;
	size_t ndup = 0, cap = 0;
	uint8_t *buf = NULL;
	char *why = NULL; /* the first copy's message, whole: named when none reads */
	int err = 0;

	for (size_t i = 0; i < p->npacks && err == 0; i++) {
		const struct pack *pk = &p->packs[i];
		for (size_t k = pk->first; pk->on_disk && k < pk->first + pk->n && err == 0; k++) {
			if (!bkr_idset_has(dups, &p->ents[k].id) || !bkr_idset_has(&p->used, &p->ents[k].id))
				continue;
			if ((err = bkr_array_grow((void **)&dup, &cap, ndup, sizeof(*dup))) == 0)
				dup[ndup++] = (struct copy){ k, i, rank[i] };
		}
	}
	if (ndup)
		qsort_r(dup, ndup, sizeof(*dup), dup_order, p);
	for (size_t lo = 0, hi; lo < ndup && err == 0; lo = hi) {
		size_t good = SIZE_MAX;
		for (hi = lo + 1; hi < ndup && !bkr_id_cmp(&p->ents[dup[hi].k].id, &p->ents[dup[lo].k].id); hi++)
			;
		if (hi - lo < 2)
			continue; /* one copy on disk (the other's pack is missing): nothing to choose */
		if (!buf && !(buf = malloc(BKR_BLOB_MAX))) {
			err = bkr_error_oom();
			break;
		}
		p->rep->duplicate_blobs++;
		free(why);
		why = NULL;
		for (size_t i = lo; i < hi && good == SIZE_MAX; i++) {
			const bkr_index_entry *e = &p->ents[dup[i].k];
			int rerr = bkr_repo_pack_blob(p->r, p->packs[dup[i].pack].path, e, buf);
			if (rerr == 0) {
				good = dup[i].k;
				break;
			}
			if (rerr != BKR_ECORRUPT) {
				char hex[BKR_ID_HEX];
				bkr_id_to_hex(&e->id, hex);
				err = bkr_error_set(rerr, "blob %s is stored more than once and a copy cannot be checked (%s); "
						    "prune drops no copy before one is known intact, so it stops before "
						    "changing anything", hex, bkr_error_message());
				break;
			}
			if (i == lo && !(why = strdup(bkr_error_message()))) { /* the first copy: named when none reads */
				err = bkr_error_oom();
				break;
			}
			bkr_error_clear();
			p->rep->damaged_copies++;
			if ((err = note_copy(p, e)) < 0)
				break;
		}
		if (err == 0 && good == SIZE_MAX) {
			const bkr_index_entry *e = &p->ents[dup[lo].k];
			char hex[BKR_ID_HEX], phex[BKR_PACK_ID_HEX];
			bkr_id_to_hex(&e->id, hex);
			bkr_pack_id_to_hex(&e->pack, phex);
			p->rep->damaged_blobs++;
			if (bkr_idset_add(&p->bad, &e->id) < 0)
				err = bkr_error_oom();
			say_damage(p, "blob %s cannot be read intact from any of its %zu copies (the first, in pack %s: %s): "
				   "prune keeps every copy and leaves their packs as they are; run 'bkr repair' (%s)",
				   hex, hi - lo, phex, why, recorded(p));
		}
		for (size_t i = lo; i < hi && err == 0; i++)
			p->keep[dup[i].k] = good == SIZE_MAX || dup[i].k == good;
	}
	free(why);
	free(buf);
	free(dup);
	return err;
}

/*
 * One copy of each used blob: two backups running at once may each store
 * the same new blob in a pack of their own, and a blob the index names in
 * two packs is used in one of them only.  The copy kept is in a pack on
 * disk, preferably one holding more used bytes; the other copies count as
 * unused, so that a pack holding only such copies is dropped (and one
 * wasting more than --max-unused repacked) by this prune, not left to a
 * second one to find as a leftover once the new index no longer names it.
 *
 * Dropping the other copies makes the kept one the only one, so it is read
 * first (check_copies): a damaged copy is never kept in place of an intact
 * one.
 */
static int choose_copies(struct prune *p)
{
	struct pack **order = malloc((p->npacks ? p->npacks : 1) * sizeof(*order));
	size_t *rank = malloc((p->npacks ? p->npacks : 1) * sizeof(*rank));
	bkr_idset chosen = BKR_IDSET_INIT, dups = BKR_IDSET_INIT;
	int err = 0;

	if (!order || !rank || !(p->keep = calloc(p->nents ? p->nents : 1, sizeof(*p->keep)))) {
		free(order);
		free(rank);
		return bkr_error_oom();
	}
	for (size_t i = 0; i < p->npacks; i++)
		order[i] = &p->packs[i];
	qsort(order, p->npacks, sizeof(*order), copy_order);
	for (size_t i = 0; i < p->npacks; i++) {
		order[i]->used = 0;
		rank[order[i] - p->packs] = i;
	}
	for (size_t i = 0; i < p->npacks && err == 0; i++) {
		struct pack *pk = order[i];
		for (size_t k = pk->first; k < pk->first + pk->n; k++) {
			int added;
			if (!bkr_idset_has(&p->used, &p->ents[k].id))
				continue;
			if ((added = bkr_idset_add(&chosen, &p->ents[k].id)) < 0) {
				err = bkr_error_oom();
				break;
			}
			if (added)
				p->keep[k] = true;
			else if (bkr_idset_add(&dups, &p->ents[k].id) < 0) {
				err = bkr_error_oom();
				break;
			}
		}
	}
	bkr_idset_free(&chosen);
	free(order);
	if (err == 0)
		err = check_copies(p, &dups, rank);
	bkr_idset_free(&dups);
	free(rank);
	for (size_t i = 0; i < p->npacks; i++)
		for (size_t k = p->packs[i].first; k < p->packs[i].first + p->packs[i].n; k++)
			if (p->keep[k])
				p->packs[i].used += BKR_BLOB_HEADER_SIZE + (uint64_t)p->ents[k].stored_len;
	return err;
}

/* The store of place @p i: the repository's own for moves (@p hot), else the tier's. */
static bkr_store *place_store(struct prune *p, bkr_store *hot, size_t i)
{
	return i == 0 ? hot : bkr_repo_tier(p->r, i, NULL, NULL);
}

/* Whether prune tends place @p i: the repository and the tiers it recorded. */
static bool tended(struct prune *p, size_t i)
{
	bool recorded;
	bkr_repo_tier(p->r, i, NULL, &recorded);
	return i == 0 || (i < 32 && recorded);
}

static int find_trash_tmp(struct prune *p, bkr_store *s)
{
	return bkr_trash_foreach(p->r, s, trash_tmp, p);
}

/*
 * A leftover pack is trash only when it holds nothing a backup needs.  A
 * killed writer's pack does not (its backup never got a manifest); but when
 * an index file was lost, a pack the backups use looks the same.  So prune
 * reads each leftover's footer, and a blob that a backup uses, that no index
 * file names, and that reads intact from the leftover stops prune before it
 * changes anything.  (A blob that fails its checks is damaged: 'bkr repair'
 * took it out of the index on purpose, and the pack may go.  Any other
 * error - I/O, permission, network - stops prune too: nothing is moved on a
 * guess.)
 */
static int check_leftovers(struct prune *p, const bkr_index *idx)
{
	uint8_t *buf = NULL;
	int err = 0;

	for (size_t i = 0; i < p->nleft && err == 0; i++) {
		const struct leftover *l = &p->left[i];
		bkr_pack_entry *fe = NULL;
		size_t nf = 0;
		if (l->tmp)
			continue;
		if ((err = bkr_repo_pack_footer(p->r, &l->id, l->path, &fe, &nf)) < 0) {
			if (err != BKR_ECORRUPT && err != BKR_ENOTFOUND)
				break; /* not readable now (I/O, permission, network): judge it another time */
			bkr_error_clear(); /* a damaged footer (nothing in it reads either), or gone */
			err = 0;
			continue;
		}
		for (size_t k = 0; k < nf && err == 0; k++) {
			bkr_index_entry e = bkr_pack_entry_index(&fe[k], &l->id);
			bkr_index_entry have;
			char hex[BKR_ID_HEX], phex[BKR_PACK_ID_HEX];
			if (!bkr_idset_has(&p->used, &e.id) || bkr_index_lookup(idx, &e.id, &have) == 0)
				continue;
			if (!buf && !(buf = malloc(BKR_BLOB_MAX))) {
				err = bkr_error_oom();
				break;
			}
			if ((err = bkr_repo_pack_blob(p->r, l->path, &e, buf)) < 0) {
				if (err != BKR_ECORRUPT)
					break; /* not readable now: never moved on a guess */
				bkr_error_clear(); /* damaged: repair took it out of the index */
				err = 0;
				continue;
			}
			bkr_id_to_hex(&e.id, hex);
			bkr_pack_id_to_hex(&l->id, phex);
			err = bkr_error_set(BKR_ECORRUPT,
					    "pack %s is in no index file, but holds blob %s that a backup uses and that "
					    "no index file names: the index is incomplete; prune stops before changing "
					    "anything (run 'bkr repair')", phex, hex);
		}
		free(fe);
	}
	free(buf);
	return err;
}

/* ---- 3. decide and repack ---------------------------------------------------- */

static void decide(struct prune *p)
{
	for (size_t i = 0; i < p->npacks; i++) {
		struct pack *pk = &p->packs[i];
		if (!pk->on_disk)
			continue; /* missing: its used entries stay (verify reports it) */
		p->rep->packs++;
		p->rep->pack_bytes += pk->file_size;
		if (pk->used == 0) {
			pk->drop = true;
			p->rep->unused_packs++;
			p->rep->unused_bytes += pk->file_size;
		} else if ((pk->bytes - pk->used) * 100 > (uint64_t)p->o->max_unused_pct * pk->bytes) {
			pk->repack = true;
			p->rep->repacked_packs++;
			p->rep->repacked_bytes += pk->file_size;
		}
	}
	for (size_t i = 0; i < p->nleft; i++) {
		p->rep->leftover_packs++;
		p->rep->leftover_bytes += p->left[i].size;
	}
}

struct repacker {
	bkr_pack_writer *w;
	uint8_t type;
	uint64_t written;
};

static int repack_flush(struct prune *p, struct repacker *rp, bkr_index_builder *b)
{
	const char *root = rp->type == BKR_BLOB_TREE ? "tree" : "data";
	const bkr_pack_entry *pe;
	bkr_pack_id id;
	size_t n;
	int err;

	if (!rp->w)
		return 0;
	if ((err = bkr_pack_writer_finish(rp->w, root, &id)) < 0)
		goto done;
	pe = bkr_pack_writer_entries(rp->w, &n);
	for (size_t i = 0; i < n && err == 0; i++) {
		bkr_index_entry e = bkr_pack_entry_index(&pe[i], &id);
		err = bkr_index_builder_add(b, &e);
	}
	p->rep->repack_written += bkr_pack_writer_size(rp->w);
done:
	bkr_pack_writer_free(rp->w);
	rp->w = NULL;
	return err;
}

/* A pack of the repository read through its store. */
struct pack_src {
	bkr_store *s;
	const char *name;
};

static int src_read(void *ctx, void *buf, size_t len, uint64_t off)
{
	const struct pack_src *ps = ctx;
	/* a listed pack: "no such object" is asked again, then "listed, but not readable" (exit 7), as verify reads */
	return bkr_store_get_range(ps->s, ps->name, off, len, buf, BKR_STORE_LISTED);
}

/* A blob's header and payload, read in one piece, as a pack reader. */
struct mem_src {
	const uint8_t *b;
	uint64_t off;
	size_t len;
};

static int mem_read(void *ctx, void *buf, size_t len, uint64_t off)
{
	const struct mem_src *m = ctx;
	if (off < m->off || off - m->off > m->len || len > m->len - (off - m->off))
		return bkr_error_set(BKR_ECORRUPT, "a blob read beyond the %zu bytes its index entry names", m->len);
	memcpy(buf, m->b + (off - m->off), len);
	return 0;
}

/*
 * Entry @p e of @p pk: its header and payload into @p stored (one ranged
 * get of the first copy: the lowest place holding it), decoded into @p raw
 * and checked (lengths, header, codec, GCM tag, hash).  BKR_ECORRUPT when
 * the bytes are damaged; any other error says nothing about them.
 */
static int read_checked(struct prune *p, const struct pack *pk, const bkr_index_entry *e, uint8_t *raw, uint8_t *stored)
{
	struct pack_src src = { bkr_repo_tier(p->r, (size_t)__builtin_ctz(pk->where), NULL, NULL), pk->name };
	struct mem_src m = { stored, e->offset, BKR_BLOB_HEADER_SIZE + (size_t)e->stored_len };
	char hex[BKR_ID_HEX];
	int err;

	if (e->stored_len > BKR_SEALED_BLOB_STORED_MAX || e->raw_len > BKR_BLOB_MAX) {
		bkr_id_to_hex(&e->id, hex);
		return bkr_error_set(BKR_ECORRUPT, "%s: blob %s: lengths %u/%u beyond the largest blob", pk->path, hex,
				     e->stored_len, e->raw_len);
	}
	if ((err = src_read(&src, stored, m.len, e->offset)) < 0)
		return err;
	return bkr_pack_read_blob_from(bkr_repo_crypto(p->r), mem_read, &m, pk->path, &e->id, e->offset,
				       e->stored_len, e->raw_len, e->type, raw, 0);
}

/*
 * Before anything is written, every used blob a repack would copy is read
 * and checked.  A pack holding one that cannot be read intact (bad bytes: a
 * checksum, a malformed or truncated blob), or a copy of a blob no copy of
 * which reads, is left as it is - not repacked, not moved, its index entries
 * kept - so that every intact blob in it stays where readers find it; the
 * blob is named (o->damage) and recorded for 'bkr repair', and the rest of
 * prune goes on.  Any other error (a store that cannot answer, I/O) stops
 * prune before it changes anything.  Cost: a blob to repack is read twice,
 * here and when copied (the copy read each one twice before this check).
 */
static int check_repacks(struct prune *p)
{
	uint8_t *raw = NULL, *stored = NULL;
	uint64_t n = p->rep->repacked_packs, done = 0;
	int err = 0;

	if (!n)
		return 0;
	if (!(raw = malloc(BKR_BLOB_MAX)) || !(stored = malloc(BKR_BLOB_HEADER_SIZE + BKR_SEALED_BLOB_STORED_MAX))) {
		err = bkr_error_oom();
		goto done;
	}
	for (size_t i = 0; i < p->npacks && err == 0; i++) {
		struct pack *pk = &p->packs[i];
		char hex[BKR_ID_HEX], phex[BKR_PACK_ID_HEX];
		if (!pk->repack)
			continue;
		bkr_pack_id_to_hex(&pk->id, phex);
		for (size_t k = pk->first; k < pk->first + pk->n && err == 0; k++) {
			const bkr_index_entry *e = &p->ents[k];
			char *why;
			int rerr;
			if (!p->keep[k])
				continue;
			if (bkr_idset_has(&p->bad, &e->id)) {
				pk->damaged = true; /* named already: no copy of it reads */
				continue;
			}
			if ((rerr = read_checked(p, pk, e, raw, stored)) == 0)
				continue;
			if (rerr != BKR_ECORRUPT) {
				err = bkr_error_set(rerr, "pack %s cannot be read to repack it (%s); prune stops before "
						    "changing anything", phex, bkr_error_message());
				break;
			}
			if (!(why = strdup(bkr_error_message()))) { /* whole: what follows may set the slot */
				err = bkr_error_oom();
				break;
			}
			bkr_error_clear();
			pk->damaged = true;
			p->rep->damaged_blobs++;
			if (bkr_idset_add(&p->bad, &e->id) < 0 || note_copy(p, e) < 0) {
				free(why);
				err = bkr_error_oom();
				break;
			}
			bkr_id_to_hex(&e->id, hex);
			say_damage(p, "blob %s in pack %s cannot be read intact (%s): prune leaves that pack as it is (not "
				   "repacked, not moved), so every intact blob in it stays; run 'bkr repair' (%s)",
				   hex, phex, why, recorded(p));
			free(why);
		}
		if (err == 0 && pk->damaged) {
			pk->repack = false;
			p->rep->repacked_packs--;
			p->rep->repacked_bytes -= pk->file_size;
			p->rep->damaged_packs++;
			p->rep->damaged_pack_bytes += pk->file_size;
		}
		if (p->o->progress)
			p->o->progress(p->o->progress_ctx, "checking", "packs to repack", ++done, n, 0, 0);
	}
done:
	free(raw);
	free(stored);
	return err;
}

/* Copy the used blobs of @p pk (checked: decoded and hashed) into new packs. */
static int repack_one(struct prune *p, struct pack *pk, struct repacker *rp, bkr_index_builder *b,
		      uint8_t *raw, uint8_t *stored)
{
	uint32_t pack_size = bkr_repo_get_config(p->r)->pack_size;
	const char *tmp = pk->type == BKR_BLOB_TREE ? "tree" : "data";
	int err = 0;

	if (rp->w && rp->type != pk->type && (err = repack_flush(p, rp, b)) < 0)
		goto done;
	rp->type = pk->type;
	for (size_t i = pk->first; i < pk->first + pk->n && err == 0; i++) {
		const bkr_index_entry *e = &p->ents[i];
		if (!p->keep[i])
			continue; /* unused, or a copy kept elsewhere */
		if ((err = read_checked(p, pk, e, raw, stored)) < 0)
			break;
		if (!rp->w && (err = bkr_pack_writer_new(&rp->w, p->store, tmp, (bkr_blob_type)pk->type,
							 bkr_repo_crypto(p->r))) < 0)
			break;
		if ((err = bkr_pack_writer_add(rp->w, &e->id, e->flags, stored + BKR_BLOB_HEADER_SIZE, e->stored_len,
					       e->raw_len)) < 0)
			break;
		if (bkr_pack_writer_size(rp->w) >= pack_size)
			err = repack_flush(p, rp, b);
	}
done:
	return err;
}

/* ---- 4. the new index, then the moves ---------------------------------------- */

static int write_index(struct prune *p, bkr_index *idx)
{
	bkr_index_builder *b = NULL;
	struct repacker rp = { 0 };
	uint8_t *raw = NULL, *stored = NULL;
	const bkr_id *files, *stale;
	size_t nfiles, nstale;
	bkr_id id;
	int err;

	files = bkr_index_files(idx, &nfiles);
	stale = bkr_index_stale_files(idx, &nstale);
	if ((err = bkr_index_builder_new(&b)) < 0)
		goto done;
	for (size_t i = 0; i < p->npacks && err == 0; i++) {
		const struct pack *pk = &p->packs[i];
		if (pk->drop || pk->repack)
			continue;
		/* a used blob by its one kept copy (not a duplicate, nor a missing
		 * pack's when another has it); an unused one while its pack is there;
		 * every entry of a pack whose place holds no regular file (check_unlisted) */
		for (size_t k = pk->first; k < pk->first + pk->n && err == 0; k++)
			if ((pk->damaged && !pk->on_disk) ||
			    (bkr_idset_has(&p->used, &p->ents[k].id) ? p->keep[k] : pk->on_disk))
				err = bkr_index_builder_add(b, &p->ents[k]);
	}
	if (p->rep->repacked_packs &&
	    (!(raw = malloc(BKR_BLOB_MAX)) || !(stored = malloc(BKR_BLOB_HEADER_SIZE + BKR_SEALED_BLOB_STORED_MAX))))
		err = bkr_error_oom();
	uint64_t nrepack = p->rep->repacked_packs, done = 0, bytes = 0;
	for (size_t i = 0; i < p->npacks && err == 0; i++) {
		if (!p->packs[i].repack)
			continue;
		err = repack_one(p, &p->packs[i], &rp, b, raw, stored);
		bytes += p->packs[i].file_size;
		if (p->o->progress)
			p->o->progress(p->o->progress_ctx, "repacking", "packs", ++done, nrepack, bytes,
				       p->rep->repacked_bytes);
	}
	if (err == 0)
		err = repack_flush(p, &rp, b);
	for (size_t i = 0; i < nfiles && err == 0; i++)
		err = bkr_index_builder_supersede(b, &files[i]);
	for (size_t i = 0; i < nstale && err == 0; i++)
		err = bkr_index_builder_supersede(b, &stale[i]);
	if (err == 0)
		err = bkr_index_builder_publish(b, p->store, "index/", &id); /* the same file there already is 0 */
done:
	bkr_pack_writer_free(rp.w);
	bkr_index_builder_free(b);
	free(raw);
	free(stored);
	return err;
}

/* Into each place's trash: the packs no index entry names any more, wherever they are. */
static int move_out(struct prune *p, bkr_store *s)
{
	const char **names = calloc(p->npacks + p->nleft + 1, sizeof(*names));
	size_t nt = bkr_repo_tier_count(p->r);
	int err = 0;

	if (!names)
		return bkr_error_oom();
	for (size_t place = 0; place <= nt && place < 32 && err == 0; place++) {
		size_t n = 0;
		if (!tended(p, place))
			continue;
		for (size_t i = 0; i < p->npacks; i++)
			if (p->packs[i].on_disk && (p->packs[i].drop || p->packs[i].repack) &&
			    (p->packs[i].where & (1u << place)))
				names[n++] = p->packs[i].name;
		for (size_t i = 0; i < p->nleft; i++)
			if (!p->left[i].tmp && p->left[i].place == place)
				names[n++] = p->left[i].name;
		err = bkr_trash_move(place_store(p, s, place), names, n, p->now);
	}
	for (size_t i = 0; i < p->nleft && err == 0; i++)
		if (p->left[i].tmp &&
		    (err = bkr_store_delete(place_store(p, s, p->left[i].place), p->left[i].name)) == BKR_ENOTFOUND) {
			bkr_error_clear();
			err = 0;
		}
	free(names);
	return err;
}

/* The pack folders left empty (their packs moved to the trash, a publish that failed) go, in every place. */
static int tidy(struct prune *p, bkr_store *s)
{
	size_t nt = bkr_repo_tier_count(p->r);
	int err = 0;
	for (size_t i = 0; i <= nt && err == 0; i++)
		if (tended(p, i))
			err = bkr_pack_folders_tidy(place_store(p, s, i));
	return err;
}

/* Expire the trash of every place. */
static int expire(struct prune *p, bkr_store *s, bkr_trash_stats *ts)
{
	size_t nt = bkr_repo_tier_count(p->r);
	int err = 0;
	memset(ts, 0, sizeof(*ts));
	for (size_t i = 0; i <= nt && err == 0; i++) {
		bkr_trash_stats one;
		if (!tended(p, i))
			continue;
		if ((err = bkr_trash_expire(place_store(p, s, i), p->now, p->o->grace_s, p->o->dry_run, &one)) < 0)
			break;
		ts->batches += one.batches;
		ts->objects += one.objects;
		ts->bytes += one.bytes;
		ts->kept_batches += one.kept_batches;
		ts->kept_bytes += one.kept_bytes;
		ts->future_batches += one.future_batches;
	}
	return err;
}

/*
 * The damaged copies prune met, in one damage record, where 'bkr repair'
 * reads damaged blobs as it reads a verify's: it takes the copies that still
 * fail out of the index.  A record that cannot be written is said (and
 * counted), and prune goes on: the bytes are no worse for it.
 */
static void record_damage(struct prune *p)
{
	if (!p->ndmg || p->o->dry_run)
		return;
	if (bkr_damage_record_add(p->r, "prune", p->dmg, p->ndmg) < 0) {
		p->rep->damage_unrecorded = true;
		say_damage(p, "the damage prune met could not be recorded (%s): run 'bkr verify --read-data', which "
			   "records it, before 'bkr repair'", bkr_error_message());
		bkr_error_clear();
	}
}

int bkr_prune_run(bkr_repo *r, const bkr_prune_options *o, bkr_prune_report *out)
{
	struct prune p = { .r = r, .o = o, .rep = out, .used = BKR_IDSET_INIT, .trees = BKR_IDSET_INIT,
			   .bad = BKR_IDSET_INIT };
	bkr_index *idx = NULL;
	bkr_store *s = NULL;
	bkr_idset counted = BKR_IDSET_INIT;
	bkr_trash_stats ts;
	size_t nfiles = 0, nstale = 0;
	bool rewrite;
	int err;

	memset(out, 0, sizeof(*out));
	p.now = o->now_ns ? o->now_ns : bkr_time_now_ns();
	/* every tier the repository recorded, now (a migration may have recorded
	 * one while this waited for the lock), must be there: packs in a missing
	 * one would look lost (and their index entries dropped) */
	if ((err = bkr_repo_reload_tiers(r)) < 0 || (err = bkr_tier_check(r)) < 0) {
		bkr_error_prefix("prune changed nothing");
		goto done;
	}
	if ((err = bkr_trash_repo_store(r, &s)) < 0 || (p.store = s, err = mark(&p)) < 0 ||
	    (err = load_index(&p, &idx)) < 0 || (err = check_unlisted(&p)) < 0 || (err = find_trash_tmp(&p, s)) < 0 ||
	    (err = check_leftovers(&p, idx)) < 0 || (err = choose_copies(&p)) < 0)
		goto done;
	for (size_t i = 0; i < p.nents; i++) {
		int added;
		if (!bkr_idset_has(&p.used, &p.ents[i].id))
			continue;
		if ((added = bkr_idset_add(&counted, &p.ents[i].id)) < 0) {
			err = bkr_error_oom();
			goto done;
		}
		if (added) {
			out->used_blobs++;
			out->used_bytes += BKR_BLOB_HEADER_SIZE + (uint64_t)p.ents[i].stored_len;
		}
	}
	decide(&p);
	/* a dry run reads them too: it reports the damage the real run would stop at */
	if ((err = check_repacks(&p)) < 0)
		goto done;
	record_damage(&p);
	bkr_index_files(idx, &nfiles);
	bkr_index_stale_files(idx, &nstale);
	/* stale files: a merge killed before it removed what it superseded */
	rewrite = nfiles > 1 || nstale || out->unused_packs || out->repacked_packs;
	if (rewrite)
		out->index_files = nfiles;
	if (!o->dry_run) {
		/* new packs, then the index naming them (and no longer the dropped
		 * packs), then the moves: each step leaves a repository a rerun completes */
		if ((rewrite && (err = write_index(&p, idx)) < 0) || (err = move_out(&p, s)) < 0 || (err = tidy(&p, s)) < 0)
			goto done;
	}
	if ((err = expire(&p, s, &ts)) < 0)
		goto done;
	out->trash_freed = ts.bytes;
	out->trash_waiting = ts.kept_bytes;
	out->trash_future_batches = ts.future_batches;
done:
	bkr_store_free(s);
	bkr_index_free(idx);
	bkr_idset_free(&p.used);
	bkr_idset_free(&p.trees);
	bkr_idset_free(&counted);
	bkr_idset_free(&p.bad);
	free(p.dmg);
	free(p.ents);
	free(p.packs);
	free(p.keep);
	free(p.left);
	return err;
}
