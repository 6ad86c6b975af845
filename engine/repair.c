/** @file
 * Repair (repair.h): the index the packs' footers say, damaged blobs taken
 * out of it, and the files that stay damaged.
 */
#include "bkr/digest.h"
#include "bkr/repair.h"

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
#include "bkr/host.h"
#include "bkr/pack.h"
#include "bkr/tier.h"
#include "bkr/trash.h"
#include "bkr/verify_record.h"
#include "array.h"
#include "idset.h"

/* A pack in a place's trash/ (prune moved it there): moved back when a backup needs it. */
struct tpack {
	bkr_pack_id id;
	size_t place;            /* 0 = the repository, then the tiers */
	bkr_blob_type type;
	char name[64];           /* trash/<hex>.pack in its place's store */
	char *path;
	bool needed;
};

/* A pack on disk. */
struct pack {
	bkr_pack_id id;
	bool ok;                 /* its footer was read */
	char *path;
	size_t first, n;         /* its footer entries: foot[first .. first+n) */
};

struct repair {
	bkr_repo *r;
	const bkr_repair_options *o;
	bkr_repair_report *rep;
	bkr_store *store;
	int64_t now;
	char **listed;           /* index/ names present before the load */
	size_t nlisted, caplisted;
	bkr_index_entry *old;    /* the index's entries, by pack and offset */
	size_t nold, capold;
	bkr_index_entry *foot;   /* footer entries of the readable packs */
	size_t nfoot, capfoot;
	struct pack *packs;      /* sorted by id once scanned */
	size_t npacks, cappacks;
	bkr_index_entry *final;  /* the new index */
	size_t nfinal, capfinal;
	bkr_index_entry *have;   /* final, sorted by id */
	struct tpack *tpacks;    /* packs in trash/, sorted by id */
	size_t ntpacks, captpacks;
	bkr_index_entry *tfoot;  /* their footer entries, sorted by id */
	size_t ntfoot, captfoot;
	bkr_idset clean;         /* trees with nothing damaged below */
	bkr_idset seen;          /* pack ids (zero-extended) already scanned */
	bkr_idset damaged;       /* blob ids verify recorded as damaged */
	bkr_idset failing;       /* of them, those with a copy in a pack that still fails */
	char host[256];
	bool backup_damaged;
};

/* A problem's message when there was no memory to format it. */
#define OOM_MESSAGE "out of memory (this problem's message could not be formatted)"

static void report(struct repair *p, bkr_repair_kind kind, const char *object, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static void report(struct repair *p, bkr_repair_kind kind, const char *object, const char *fmt, ...)
{
	char *msg = NULL;
	va_list ap;
	bkr_repair_problem pr = { .kind = kind, .object = object };
	va_start(ap, fmt);
	if (vasprintf(&msg, fmt, ap) < 0) /* whole, however long the paths and reasons in it */
		msg = NULL;
	va_end(ap);
	pr.message = msg ? msg : OOM_MESSAGE;
	if (p->o->report)
		p->o->report(p->o->report_ctx, &pr);
	free(msg);
}

static int push_entry(bkr_index_entry **v, size_t *n, size_t *cap, const bkr_index_entry *e)
{
	int err = bkr_array_grow((void **)v, cap, *n, sizeof(**v));
	if (err == 0)
		(*v)[(*n)++] = *e;
	return err;
}

static bool same_entry(const bkr_index_entry *a, const bkr_index_entry *b)
{
	return !bkr_id_cmp(&a->id, &b->id) && !bkr_pack_id_cmp(&a->pack, &b->pack) && a->offset == b->offset &&
	       a->stored_len == b->stored_len && a->raw_len == b->raw_len && a->type == b->type &&
	       a->flags == b->flags;
}

/* ---- 1. what is there -------------------------------------------------------- */

static int list_index(void *ctx, const char *name)
{
	struct repair *p = ctx;
	const char *base = name + strlen("index/");
	size_t len = strlen(base);
	if (base[0] == '.' || strchr(base, '/') || len < 5 || strcmp(base + len - 4, ".idx"))
		return 0;
	return bkr_array_push_str(&p->listed, &p->caplisted, &p->nlisted, name);
}

/* An index file's name that holds no object (a FIFO, a symbolic link: bkr_store_list_other): the index
 * load names it damaged, and it goes into the trash as a damaged index file does */
static int list_index_other(void *ctx, const char *name, const char *what)
{
	(void)what;
	return list_index(ctx, name);
}

static int collect_old(const bkr_index_entry *e, void *ctx)
{
	struct repair *p = ctx;
	return push_entry(&p->old, &p->nold, &p->capold, e);
}

static bool id_listed(const bkr_id *ids, size_t n, const bkr_id *id)
{
	for (size_t i = 0; i < n; i++)
		if (!bkr_id_cmp(&ids[i], id))
			return true;
	return false;
}

/* The listed index files that were neither loaded nor superseded: damaged. */
static bool index_damaged(const bkr_index *idx, const char *name)
{
	const char *base = name + strlen("index/");
	const bkr_id *files, *stale;
	size_t nfiles, nstale;
	char hex[BKR_ID_HEX];
	bkr_id id;

	files = bkr_index_files(idx, &nfiles);
	stale = bkr_index_stale_files(idx, &nstale);
	if (strlen(base) != 2 * BKR_ID_SIZE + 4)
		return true;
	memcpy(hex, base, 2 * BKR_ID_SIZE);
	hex[2 * BKR_ID_SIZE] = '\0';
	if (bkr_id_from_hex(&id, hex) < 0)
		return true;
	return !id_listed(files, nfiles, &id) && !id_listed(stale, nstale, &id);
}

static int on_pack(void *ctx, const bkr_pack_id *id, bkr_blob_type type, const char *path)
{
	struct repair *p = ctx;
	bkr_pack_entry *fe = NULL;
	struct pack *pk;
	size_t nf = 0;
	bkr_id key = { { 0 } };
	int err, added;

	if (!id)
		return 0; /* a temporary: prune's business */
	memcpy(key.b, id->b, BKR_PACK_ID_SIZE);
	if ((added = bkr_idset_add(&p->seen, &key)) <= 0)
		return added < 0 ? bkr_error_oom() : 0; /* a second copy in a later tier: readers use the first */
	if ((err = bkr_array_grow((void **)&p->packs, &p->cappacks, p->npacks, sizeof(*p->packs))) < 0)
		return err;
	pk = &p->packs[p->npacks];
	memset(pk, 0, sizeof(*pk));
	pk->id = *id;
	if (!(pk->path = strdup(path)))
		return bkr_error_oom();
	p->npacks++;
	p->rep->packs++;
	if (p->o->progress)
		p->o->progress(p->o->progress_ctx, "reading", "pack footers", p->npacks, 0, 0, 0);
	if ((err = bkr_repo_pack_footer(p->r, id, path, &fe, &nf)) == 0) {
		for (size_t i = 0; i < nf && err == 0; i++)
			if (fe[i].type != type)
				err = bkr_error_set(BKR_ECORRUPT, "%s: holds %s blobs but lies with the %s packs", path,
						    fe[i].type == BKR_BLOB_TREE ? "tree" : "data",
						    type == BKR_BLOB_TREE ? "tree" : "data");
	}
	if (bkr_error_not_damage(err))
		goto done;
	if (err < 0) {
		p->rep->bad_packs++;
		report(p, BKR_REPAIR_PACK, path, "%s; left in place, its blobs are not indexed from it", bkr_error_message());
		bkr_error_clear();
		err = 0;
		goto done;
	}
	pk->ok = true;
	pk->first = p->nfoot;
	pk->n = nf;
	for (size_t i = 0; i < nf && err == 0; i++) {
		bkr_index_entry e = bkr_pack_entry_index(&fe[i], id);
		err = push_entry(&p->foot, &p->nfoot, &p->capfoot, &e);
	}
done:
	free(fe);
	return err;
}

static int cmp_pack(const void *a, const void *b)
{
	return bkr_pack_id_cmp(&((const struct pack *)a)->id, &((const struct pack *)b)->id);
}

static struct pack *find_pack(struct repair *p, const bkr_pack_id *id)
{
	struct pack key;
	key.id = *id;
	return p->npacks ? bsearch(&key, p->packs, p->npacks, sizeof(*p->packs), cmp_pack) : NULL;
}

/* The footer entry of @p pk at @p e's offset, or NULL. */
static const bkr_index_entry *footer_at(const struct repair *p, const struct pack *pk, const bkr_index_entry *e)
{
	size_t a = pk->first, b = pk->first + pk->n;
	while (a < b) {
		size_t m = a + (b - a) / 2;
		if (p->foot[m].offset < e->offset)
			a = m + 1;
		else
			b = m;
	}
	return a < pk->first + pk->n && p->foot[a].offset == e->offset ? &p->foot[a] : NULL;
}

/* A pack in the trash of place @p place: its footer, for a backup that may still need it. */
static int on_trash(void *ctx, bkr_store *s, size_t place, const char *name)
{
	struct repair *p = ctx;
	const char *base = name + strlen("trash/");
	char hex[BKR_PACK_ID_HEX], path[PATH_MAX];
	bkr_pack_entry *fe = NULL;
	bkr_pack_id id;
	bkr_id key = { { 0 } };
	size_t nf = 0;
	int err;

	if (strchr(base, '/') || strlen(base) != 2 * BKR_PACK_ID_SIZE + 5 || strcmp(base + 2 * BKR_PACK_ID_SIZE, ".pack"))
		return 0;
	memcpy(hex, base, 2 * BKR_PACK_ID_SIZE);
	hex[2 * BKR_PACK_ID_SIZE] = '\0';
	if (bkr_pack_id_from_hex(&id, hex) < 0)
		return 0;
	memcpy(key.b, id.b, BKR_PACK_ID_SIZE);
	if (bkr_idset_has(&p->seen, &key))
		return 0; /* also in place (an interrupted move): indexed from there */
	if ((err = bkr_store_describe(s, name, path, sizeof(path))) < 0 ||
	    (err = bkr_repo_pack_footer(p->r, &id, path, &fe, &nf)) < 0 || nf == 0) {
		free(fe);
		if (bkr_error_not_damage(err))
			return err;
		bkr_error_clear(); /* unreadable: it stays in the trash */
		return 0;
	}
	if ((err = bkr_array_grow((void **)&p->tpacks, &p->captpacks, p->ntpacks, sizeof(*p->tpacks))) < 0)
		goto done;
	struct tpack *tp = &p->tpacks[p->ntpacks];
	memset(tp, 0, sizeof(*tp));
	tp->id = id;
	tp->place = place;
	tp->type = (bkr_blob_type)fe[0].type;
	snprintf(tp->name, sizeof(tp->name), "%s", name);
	if (!(tp->path = strdup(path))) {
		err = bkr_error_oom();
		goto done;
	}
	p->ntpacks++;
	for (size_t i = 0; i < nf && err == 0; i++) {
		bkr_index_entry e = bkr_pack_entry_index(&fe[i], &id);
		err = push_entry(&p->tfoot, &p->ntfoot, &p->captfoot, &e);
	}
done:
	free(fe);
	return err;
}

static int cmp_tpack(const void *a, const void *b)
{
	return bkr_pack_id_cmp(&((const struct tpack *)a)->id, &((const struct tpack *)b)->id);
}

static int cmp_entry_id(const void *a, const void *b);

/* Every pack in the trash of the repository and of each tier. */
static int scan_trash(struct repair *p)
{
	int err = bkr_trash_foreach(p->r, p->store, on_trash, p);

	if (p->ntpacks)
		qsort(p->tpacks, p->ntpacks, sizeof(*p->tpacks), cmp_tpack);
	if (p->ntfoot)
		qsort(p->tfoot, p->ntfoot, sizeof(*p->tfoot), cmp_entry_id);
	return err;
}

/* ---- 2. the index the packs say ---------------------------------------------- */

/* An old entry matching @p e exactly? (p->old sorted by pack, offset, id) */
static bool old_has(const struct repair *p, const bkr_index_entry *e)
{
	const bkr_index_entry *hit =
		p->nold ? bsearch(e, p->old, p->nold, sizeof(*p->old), bkr_index_entry_cmp_pack) : NULL;
	return hit && same_entry(hit, e);
}

/*
 * Before the entries of packs missing everywhere are dropped: when the
 * repository has tiers, one line saying how many and where they were searched
 * (a tier disk that is an old copy, or the wrong one, holds its tier.json but
 * not the packs moved there since).  Dropping is undone by a repair run once
 * the right disk is there: it indexes every pack it finds.
 */
static void warn_missing(struct repair *p)
{
	size_t nt = bkr_repo_tier_count(p->r), n = 0, hi;
	char *places;

	for (size_t lo = 0; lo < p->nold && nt; lo = hi) {
		const bkr_index_entry *e = &p->old[lo];
		char path[PATH_MAX];
		for (hi = lo + 1; hi < p->nold && !bkr_pack_id_cmp(&p->old[hi].pack, &e->pack); hi++)
			;
		if (!find_pack(p, &e->pack) &&
		    bkr_repo_pack_path(p->r, &e->pack, (bkr_blob_type)e->type, path, sizeof(path)) == BKR_ENOTFOUND)
			n++;
		bkr_error_clear();
	}
	if (!n)
		return;
	places = bkr_repo_places(p->r); /* whole, however long the locations */
	report(p, BKR_REPAIR_MISSING_PACK, "tiers",
	       "%zu pack%s named by the index %s in none of %s: is the right disk mounted at each tier? Their "
	       "index entries %s dropped; a repair run once the right disk is mounted indexes them again",
	       n, n == 1 ? "" : "s", n == 1 ? "is" : "are",
	       places ? places : "the repository and each tier (out of memory naming them)",
	       p->o->dry_run ? "would be" : "are");
	free(places);
}

static int build(struct repair *p)
{
	int err = 0;
	size_t lo, hi;

	warn_missing(p);

	for (size_t i = 0; i < p->npacks && err == 0; i++) {
		const struct pack *pk = &p->packs[i];
		for (size_t k = pk->first; pk->ok && k < pk->first + pk->n && err == 0; k++) {
			if (!old_has(p, &p->foot[k]))
				p->rep->added++;
			err = push_entry(&p->final, &p->nfinal, &p->capfinal, &p->foot[k]);
		}
	}
	for (lo = 0; lo < p->nold && err == 0; lo = hi) {
		const bkr_index_entry *e = &p->old[lo];
		struct pack *pk = find_pack(p, &e->pack);
		char phex[BKR_PACK_ID_HEX], path[PATH_MAX];
		for (hi = lo + 1; hi < p->nold && !bkr_pack_id_cmp(&p->old[hi].pack, &e->pack); hi++)
			;
		bkr_pack_id_to_hex(&e->pack, phex);
		/* a place that could not answer (an I/O error) stops repair: dropped on a guess is lost */
		int found = pk ? 0 : bkr_repo_pack_path(p->r, &e->pack, (bkr_blob_type)e->type, path, sizeof(path));
		if (found == BKR_ECORRUPT) {
			/* no pack in its place (a FIFO, a directory: "not a regular file"): as a pack
			 * whose footer cannot be read, named and its entries kept, never repair's end */
			report(p, BKR_REPAIR_PACK, phex,
			       "%s; left in place, its %zu index entr%s kept (move it away, and a repair drops them)",
			       bkr_error_message(), hi - lo, hi - lo == 1 ? "y" : "ies");
			bkr_error_clear();
			found = 0;
		}
		if (found < 0 && found != BKR_ENOTFOUND) {
			err = found;
			break;
		}
		if (found < 0) {
			bkr_error_clear();
			p->rep->dropped_missing += hi - lo;
			report(p, BKR_REPAIR_MISSING_PACK, phex,
			       "pack %s is missing from every tier and trash: its %zu index entr%s dropped "
			       "(a backup of a source that still has the data stores it again)",
			       phex, hi - lo, hi - lo == 1 ? "y is" : "ies are");
			continue;
		}
		for (size_t i = lo; i < hi && err == 0; i++) {
			const bkr_index_entry *f;
			char hex[BKR_ID_HEX];
			if (!pk || !pk->ok) {
				/* in trash, or a footer that cannot be read: the entry may
				 * still be right (verify --read-data judges its blob) */
				err = push_entry(&p->final, &p->nfinal, &p->capfinal, &p->old[i]);
				continue;
			}
			if ((f = footer_at(p, pk, &p->old[i])) && same_entry(f, &p->old[i]))
				continue; /* already in, from the footer */
			p->rep->dropped_bogus++;
			bkr_id_to_hex(&p->old[i].id, hex);
			report(p, BKR_REPAIR_ENTRY, hex, "index entry of blob %s (pack %s, offset %u) disagrees with the pack's footer: dropped",
			       hex, phex, p->old[i].offset);
		}
	}
	return err;
}

/* ---- 3. heal: the blobs verify (or prune) recorded as damaged ---------------------- */

/* The damaged blobs of a verify record, or of a damage record prune left. */
static int note_damaged(void *ctx, const bkr_id *ids, size_t n, uint64_t omitted)
{
	struct repair *p = ctx;
	int added;
	for (size_t i = 0; i < n; i++) {
		if ((added = bkr_idset_add(&p->damaged, &ids[i])) < 0)
			return bkr_error_oom();
		p->rep->damaged_recorded += (uint64_t)added;
	}
	if (omitted)
		p->rep->damaged_incomplete = true;
	return 0;
}

/* Read entry @p e again: 0 when it reads fine, else the error (message set). */
static int reread(struct repair *p, const bkr_index_entry *e, uint8_t *buf)
{
	const struct pack *pk = find_pack(p, &e->pack);
	char path[PATH_MAX];
	int err;

	if (pk)
		snprintf(path, sizeof(path), "%s", pk->path);
	else if ((err = bkr_repo_pack_path(p->r, &e->pack, (bkr_blob_type)e->type, path, sizeof(path))) < 0)
		return err;
	return bkr_repo_pack_blob(p->r, path, e, buf);
}

/* Every entry of a recorded damaged blob that still fails leaves the index. */
static int heal(struct repair *p)
{
	uint8_t *buf = NULL;
	size_t n = 0;
	int err;
	bkr_idset fine = BKR_IDSET_INIT;

	if ((err = bkr_damaged_blobs_foreach(p->r, note_damaged, p)) < 0)
		return err;
	if (!p->rep->damaged_recorded)
		return 0;
	if (!(buf = malloc(BKR_BLOB_MAX)))
		return bkr_error_oom();
	for (size_t i = 0; i < p->nfinal && err == 0; i++) {
		const bkr_index_entry *e = &p->final[i];
		char hex[BKR_ID_HEX], phex[BKR_PACK_ID_HEX];
		int rerr;
		if (!bkr_idset_has(&p->damaged, &e->id)) {
			p->final[n++] = *e;
			continue;
		}
		if ((rerr = reread(p, e, buf)) == 0) {
			p->final[n++] = *e;
			if (bkr_idset_add(&fine, &e->id) > 0)
				p->rep->damaged_healed++;
			continue;
		}
		if (bkr_error_not_damage(rerr)) {
			err = rerr;
			break;
		}
		bkr_error_clear();
		if (bkr_idset_add(&p->failing, &e->id) < 0) {
			err = bkr_error_oom();
			break;
		}
		if (!old_has(p, e)) {
			p->rep->added--; /* its pack's footer names it, but an earlier repair took it out */
			continue;
		}
		p->rep->damaged_dropped++;
		bkr_id_to_hex(&e->id, hex);
		bkr_pack_id_to_hex(&e->pack, phex);
		report(p, BKR_REPAIR_DAMAGED_BLOB, hex, "blob %s (pack %s, offset %u) is still damaged: %s out of the index",
		       hex, phex, e->offset, p->o->dry_run ? "would take it" : "taken");
	}
	if (err == 0)
		p->nfinal = n;
	bkr_idset_free(&fine);
	free(buf);
	return err;
}

/* ---- 4. the files that stay damaged ------------------------------------------- */

/* bsearch key: a bare id against entries sorted by id (the id comes first) */
static int cmp_id(const void *key, const void *ent)
{
	return bkr_id_cmp(key, &((const bkr_index_entry *)ent)->id);
}

/* The entry of @p id in a pack in the trash, whose pack is then needed (moved back). */
static const bkr_index_entry *in_trash(struct repair *p, const bkr_id *id, struct tpack **tp)
{
	const bkr_index_entry *e = p->ntfoot ? bsearch(id, p->tfoot, p->ntfoot, sizeof(*p->tfoot), cmp_id) : NULL;
	struct tpack key;

	*tp = NULL;
	if (!e)
		return NULL;
	key.id = e->pack;
	*tp = bsearch(&key, p->tpacks, p->ntpacks, sizeof(*p->tpacks), cmp_tpack);
	if (*tp)
		(*tp)->needed = true;
	return *tp ? e : NULL;
}

/*
 * Whether the new index has @p id, or a pack in the trash does; a pack in the
 * trash that holds it is needed either way (an index entry may name a pack
 * that lies in the trash: the trash's expiry would delete it).
 */
static bool have(struct repair *p, const bkr_id *id)
{
	const bkr_index_entry *e = p->nfinal ? bsearch(id, p->have, p->nfinal, sizeof(*p->have), cmp_id) : NULL;
	struct tpack key, *tp;

	if (e && p->ntpacks) {
		key.id = e->pack;
		if ((tp = bsearch(&key, p->tpacks, p->ntpacks, sizeof(*p->tpacks), cmp_tpack)))
			tp->needed = true;
	}
	return e || in_trash(p, id, &tp);
}

/* Whether the live file for @p path of @p m (on this host) has content @p content. */
static bkr_repair_live live_copy(struct repair *p, const bkr_manifest *m, const char *path,
				 const bkr_entry *e, char *live, size_t cap)
{
	const char *slash = strchr(path, '/');
	size_t srclen = slash ? (size_t)(slash - path) : strlen(path);
	const bkr_manifest_source *src = NULL;
	struct stat st;
	bkr_id sum;
	int fd = -1;
	bkr_repair_live res = BKR_REPAIR_LIVE_NONE;

	live[0] = '\0';
	if (!m->hostname || strcmp(m->hostname, p->host) || !slash)
		return res;
	for (size_t i = 0; i < m->nsources && !src; i++)
		if (m->sources[i].source && m->sources[i].path && strlen(m->sources[i].source) == srclen &&
		    !strncmp(m->sources[i].source, path, srclen))
			src = &m->sources[i];
	if (!src)
		return res;
	if (stat(src->path, &st) == 0 && S_ISDIR(st.st_mode)) {
		snprintf(live, cap, "%s%s", src->path, slash);
	} else {
		const char *ls = strrchr(src->path, '/'); /* a single-file source: its directory */
		snprintf(live, cap, "%.*s%s", ls ? (int)(ls - src->path) : 0, src->path, slash);
	}
	if ((fd = open(live, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK)) < 0 || fstat(fd, &st) < 0 ||
	    !S_ISREG(st.st_mode))
		goto done;
	if (bkr_digest_fd(fd, e->sparse_digest ? BKR_DIGEST_SPARSE : BKR_DIGEST_PLAIN, &sum, NULL) < 0) {
		bkr_error_clear();
		goto done;
	}
	if (!bkr_id_cmp(&sum, &e->content))
		res = BKR_REPAIR_LIVE_SAME;
done:
	if (fd >= 0)
		close(fd);
	return res;
}

/* @p why: the error that kept @p blob from being read, NULL when the new index lacks it. */
static void damaged_file(struct repair *p, const bkr_manifest *m, const char *path, const bkr_entry *e,
			 const bkr_id *blob, const char *what, const char *why)
{
	char hex[BKR_ID_HEX], live[PATH_MAX] = "", *msg = NULL, *state = NULL;
	bkr_repair_live lv = e ? live_copy(p, m, path, e, live, sizeof(live)) : BKR_REPAIR_LIVE_NONE;
	bkr_repair_problem pr = { .kind = BKR_REPAIR_DAMAGED_FILE, .object = hex, .backup_id = m->backup_id,
				  .path = path, .live_path = live[0] ? live : NULL, .live = lv };
	int n;

	bkr_id_to_hex(blob, hex);
	if (why ? asprintf(&state, "could not be read (%s)", why) < 0 : !(state = strdup("is not in the repository")))
		state = NULL;
	p->rep->damaged_files++;
	p->backup_damaged = true;
	if (lv == BKR_REPAIR_LIVE_SAME)
		p->rep->healable_files++;
	if (!state) {
		n = -1;
	} else if (lv == BKR_REPAIR_LIVE_SAME) {
		n = asprintf(&msg, "%s %s %s; the live file %s has the same content: "
			     "the next backup stores it again", what, hex, state, live);
	} else if (live[0]) {
		n = asprintf(&msg, "%s %s %s, and the live file %s differs or is gone: "
			     "no intact copy exists", what, hex, state, live);
	} else {
		n = asprintf(&msg, "%s %s %s and no live copy was found: no intact copy exists", what, hex, state);
	}
	if (n < 0)
		msg = NULL;
	pr.message = msg ? msg : OOM_MESSAGE;
	if (p->o->report)
		p->o->report(p->o->report_ctx, &pr);
	free(msg);
	free(state);
}

/* Tree @p id through the new index (a dry run reads what the rebuilt index would name). */
static int load_tree(struct repair *p, const bkr_id *id, bkr_tree **out)
{
	const bkr_index_entry *e = p->nfinal ? bsearch(id, p->have, p->nfinal, sizeof(*p->have), cmp_id) : NULL;
	char path[PATH_MAX], hex[BKR_ID_HEX];
	struct tpack *tp = NULL;
	uint8_t *buf;
	int err;

	*out = NULL;
	if (!have(p, id)) /* marks a pack in the trash that holds it as needed */
		e = NULL;
	else if (!e)
		e = in_trash(p, id, &tp);
	if (!e) {
		bkr_id_to_hex(id, hex);
		return bkr_error_set(BKR_ENOTFOUND, "tree %s is not in the index", hex);
	}
	if (e->type != BKR_BLOB_TREE) {
		bkr_id_to_hex(id, hex);
		return bkr_error_set(BKR_ECORRUPT, "blob %s is not a tree", hex);
	}
	if (tp)
		snprintf(path, sizeof(path), "%s", tp->path);
	else if ((err = bkr_repo_pack_path(p->r, &e->pack, BKR_BLOB_TREE, path, sizeof(path))) < 0)
		return err;
	if (!(buf = malloc(e->raw_len ? e->raw_len : 1)))
		return bkr_error_oom();
	if ((err = bkr_repo_pack_blob(p->r, path, e, buf)) < 0) {
		free(buf);
		return err;
	}
	return bkr_tree_parse(out, buf, e->raw_len);
}

/* One tree blob being walked: where it stands, and whether anything below was damaged. */
struct walk {
	struct repair *p;
	const bkr_manifest *m;
	char *path;
	size_t len;
	bool below;
};

static int walk_tree(struct repair *p, const bkr_manifest *m, const bkr_id *id, char *path, size_t len, bool *dirty);

/* A page of the directory being walked: the same path. */
static int walk_page(void *ctx, const bkr_id *id)
{
	struct walk *w = ctx;
	return walk_tree(w->p, w->m, id, w->path, w->len, &w->below);
}

/* Leaf record @p i of @p t: damaged when it uses a blob the new index lacks; a directory is walked. */
static int walk_entry(void *ctx, const bkr_tree *t, uint32_t i)
{
	struct walk *w = ctx;
	struct repair *p = w->p;
	char *path = w->path;
	size_t len = w->len, nc = 0, nx = 0, nl;
	bkr_chunk_ref *ch = NULL;
	bkr_xattr *xs = NULL;
	const bkr_id *bad = NULL;
	bkr_entry e;
	int err;

	if ((err = bkr_tree_get(t, i, &e)) < 0)
		return err;
	nl = len + (len ? 1 : 0) + e.name_len;
	if (nl >= PATH_MAX)
		return bkr_error_set(BKR_EINVAL, "backup %s: path too long under %s", w->m->backup_id, path);
	if (len)
		path[len] = '/';
	memcpy(path + len + (len ? 1 : 0), e.name, e.name_len);
	path[nl] = '\0';
	if ((err = bkr_tree_xattrs(t, i, &xs, &nx)) == 0 && e.type == BKR_FT_FILE)
		err = bkr_tree_chunks(t, i, &ch, &nc);
	for (size_t k = 0; k < nc && !bad && err == 0; k++)
		if (!have(p, &ch[k].id))
			bad = &ch[k].id;
	for (size_t k = 0; k < nx && !bad && err == 0; k++)
		if (xs[k].in_blob && !have(p, &xs[k].blob))
			bad = &xs[k].blob;
	if (bad) {
		w->below = true;
		damaged_file(p, w->m, path, e.type == BKR_FT_FILE ? &e : NULL, bad, "chunk", NULL);
	}
	free(ch);
	free(xs);
	if (err == 0 && e.type == BKR_FT_DIR)
		err = walk_tree(p, w->m, &e.subtree, path, nl, &w->below);
	path[len] = '\0';
	return err;
}

/* Every file under tree @p id (at @p path, @p len bytes) of @p m that uses a
 * blob the new index lacks.  *dirty says whether anything below was damaged. */
static int walk_tree(struct repair *p, const bkr_manifest *m, const bkr_id *id, char *path, size_t len, bool *dirty)
{
	struct walk w = { p, m, path, len, false };
	bkr_tree *t = NULL;
	int err;

	if (bkr_idset_has(&p->clean, id))
		return 0;
	if ((err = load_tree(p, id, &t)) < 0) {
		char *why = NULL;
		if (bkr_error_not_damage(err))
			return err;
		/* not in the new index, or there but unreadable (damaged, an I/O error): the
		 * message kept whole, as damaged_file may set the slot */
		if (err != BKR_ENOTFOUND && !(why = strdup(bkr_error_message())))
			return bkr_error_oom();
		bkr_error_clear();
		damaged_file(p, m, len ? path : "/", NULL, id, "directory tree", why);
		free(why);
		*dirty = true;
		return 0;
	}
	err = bkr_tree_each(t, walk_page, walk_entry, &w);
	bkr_tree_free(t);
	if (err == 0 && !w.below && bkr_idset_add(&p->clean, id) < 0)
		err = bkr_error_oom();
	if (w.below)
		*dirty = true;
	return err;
}

static int walk_one(struct repair *p, const bkr_manifest *m)
{
	char path[PATH_MAX] = "";
	bool dirty = false;
	int err = 0;

	p->backup_damaged = false;
	if (!bkr_id_is_zero(&m->tree))
		err = walk_tree(p, m, &m->tree, path, 0, &dirty);
	if (err == 0 && !bkr_id_is_zero(&m->report) && !have(p, &m->report))
		damaged_file(p, m, "report.json", NULL, &m->report, "recovery report", NULL);
	if (p->backup_damaged)
		p->rep->backups_damaged++;
	return err;
}

static int cmp_entry_id(const void *a, const void *b)
{
	return bkr_id_cmp(&((const bkr_index_entry *)a)->id, &((const bkr_index_entry *)b)->id);
}

/* A manifest that does not read: repair cannot rebuild it, and its data may go at the next prune. */
static void bad_manifest(void *ctx, const char *file, const char *message)
{
	struct repair *p = ctx;
	p->rep->damaged_manifests++;
	report(p, BKR_REPAIR_MANIFEST, file, "%s (repair cannot rebuild a manifest; prune stops until it is "
	       "put back from a copy or deleted: 'bkr delete --force ID', a recovery run's moved out of runs/)",
	       message);
}

static int walk_all(struct repair *p)
{
	int err = 0;
	if (p->nfinal && !(p->have = malloc(p->nfinal * sizeof(*p->have))))
		return bkr_error_oom();
	if (p->nfinal) {
		memcpy(p->have, p->final, p->nfinal * sizeof(*p->have));
		qsort(p->have, p->nfinal, sizeof(*p->have), cmp_entry_id);
	}
	for (int runs = 0; runs < 2 && err == 0; runs++) {
		bkr_manifest_list l = { 0 };
		if ((err = bkr_repo_list_cb(p->r, runs, &l, bad_manifest, p)) < 0)
			return err;
		for (size_t i = 0; i < l.n && err == 0; i++) {
			err = walk_one(p, l.items[i]);
			if (err == 0 && p->o->progress)
				p->o->progress(p->o->progress_ctx, "checking", runs ? "recovery runs" : "backups",
					       i + 1, l.n, 0, 0);
		}
		bkr_manifest_list_free(&l);
	}
	return err;
}

/*
 * The packs in the trash that a backup or recovery run uses (the walk marked
 * them: prune moved them there when no manifest used them, and a manifest
 * was put back - an undelete - or an index file was lost): each goes back to
 * its place, and its blobs into the new index.  The move comes first: killed
 * after it, the pack lies in place unindexed, which a rerun indexes (and
 * prune does not take for a leftover while a backup uses it).
 */
static int rescue(struct repair *p)
{
	int err = 0;

	for (size_t i = 0; i < p->ntpacks && err == 0; i++) {
		struct tpack *tp = &p->tpacks[i];
		char hex[BKR_PACK_ID_HEX], home[PATH_MAX];
		bkr_store *s = tp->place == 0 ? p->store : bkr_repo_tier(p->r, tp->place, NULL, NULL);
		if (!tp->needed)
			continue;
		bkr_pack_id_to_hex(&tp->id, hex);
		snprintf(home, sizeof(home), "%s/%.2s/%s.pack", tp->type == BKR_BLOB_TREE ? "tree" : "data", hex, hex);
		p->rep->rescued_packs++;
		report(p, BKR_REPAIR_TRASH_PACK, tp->name, "%s: a backup uses its blobs: %s back to %s and indexed", tp->name,
		       p->o->dry_run ? "would be moved" : "moved", home);
		if (!p->o->dry_run && (err = bkr_store_rename(s, tp->name, home)) < 0)
			break;
	}
	/* the blobs of the packs moved back, in one pass (tfoot is sorted by id, not by pack) */
	for (size_t k = 0; k < p->ntfoot && err == 0; k++) {
		struct tpack key, *tp;
		key.id = p->tfoot[k].pack;
		tp = bsearch(&key, p->tpacks, p->ntpacks, sizeof(*p->tpacks), cmp_tpack);
		if (!tp || !tp->needed || old_has(p, &p->tfoot[k]))
			continue; /* not moved back, or indexed already (build kept it) */
		p->rep->added++;
		err = push_entry(&p->final, &p->nfinal, &p->capfinal, &p->tfoot[k]);
	}
	return err;
}

/* By id, then by pack and offset. */
static int cmp_entry_id_pack(const void *a, const void *b)
{
	int c = cmp_entry_id(a, b);
	return c ? c : bkr_index_entry_cmp_pack(a, b);
}

/* Which of a blob's entries to keep: in a pack whose footer read, then one the index had. */
static int entry_rank(struct repair *p, const bkr_index_entry *e)
{
	const struct pack *pk = find_pack(p, &e->pack);
	return (pk && pk->ok ? 2 : 0) + (old_has(p, e) ? 1 : 0);
}

/*
 * One entry a blob, as the index file holds it (its writer keeps one of equal
 * ids): of a pack whose footer read, the one the index has already, else the
 * first by pack and offset.  Left to the writer, the copy kept was whichever
 * sorted first, so a blob stored twice (a killed backup's pack, then the next
 * backup's) could lose the intact copy the backups read for a damaged one no
 * verify had read, which prune then removed as a leftover; and the report
 * counted entries the file does not hold (added, after, rewritten at every
 * run).  Recounts what was added.
 */
static void one_entry_a_blob(struct repair *p)
{
	size_t n = 0, lo, hi;

	if (p->nfinal > 1)
		qsort(p->final, p->nfinal, sizeof(*p->final), cmp_entry_id_pack);
	for (lo = 0; lo < p->nfinal; lo = hi) {
		size_t keep = lo;
		int best = entry_rank(p, &p->final[lo]);
		for (hi = lo + 1; hi < p->nfinal && !cmp_entry_id(&p->final[hi], &p->final[lo]); hi++) {
			int r = entry_rank(p, &p->final[hi]);
			if (r > best) {
				best = r;
				keep = hi;
			}
		}
		p->final[n++] = p->final[keep];
	}
	p->nfinal = n;
	p->rep->added = 0;
	for (size_t i = 0; i < p->nfinal; i++)
		p->rep->added += !old_has(p, &p->final[i]);
}

/* ---- 5. publish ---------------------------------------------------------------- */

static int publish(struct repair *p, const bkr_index *idx)
{
	bkr_index_builder *b = NULL;
	const bkr_id *files, *stale;
	const char **trash = NULL;
	size_t nfiles, nstale, ntrash = 0;
	bkr_id id;
	int err;

	files = bkr_index_files(idx, &nfiles);
	stale = bkr_index_stale_files(idx, &nstale);
	if ((err = bkr_index_builder_new(&b)) < 0)
		goto done;
	for (size_t i = 0; i < p->nfinal && err == 0; i++)
		err = bkr_index_builder_add(b, &p->final[i]);
	for (size_t i = 0; i < nfiles && err == 0; i++)
		err = bkr_index_builder_supersede(b, &files[i]);
	for (size_t i = 0; i < nstale && err == 0; i++)
		err = bkr_index_builder_supersede(b, &stale[i]);
	if (err < 0)
		goto done;
	if (!(trash = calloc(p->nlisted + 1, sizeof(*trash)))) {
		err = bkr_error_oom();
		goto done;
	}
	for (size_t i = 0; i < p->nlisted; i++)
		if (index_damaged(idx, p->listed[i]))
			trash[ntrash++] = p->listed[i];
	/* the new index first: damaged files go only once it holds what they held; but a damaged
	 * file that holds the new one's name (the same entries: the name is their hash) goes first */
	if ((err = bkr_index_builder_publish(b, p->store, "index/", &id)) == BKR_EEXISTS && ntrash) {
		bkr_error_clear();
		if ((err = bkr_trash_move(p->store, trash, ntrash, p->now)) < 0)
			goto done;
		ntrash = 0;
		err = bkr_index_builder_publish(b, p->store, "index/", &id);
	}
	if (err == 0)
		err = bkr_trash_move(p->store, trash, ntrash, p->now);
done:
	free(trash);
	bkr_index_builder_free(b);
	return err;
}

static bool still_failing(void *ctx, const bkr_id *id)
{
	struct repair *p = ctx;
	return bkr_idset_has(&p->failing, id);
}

/*
 * The damage records heal has dealt with: every blob they name was read again
 * and no copy of it in any pack fails now (the damaged one was repacked away,
 * or reads), so they would only be read again, and counted, by every later
 * repair, and reported by health.  Into trash (verify records stay: they are
 * history).
 */
static int retire_damage(struct repair *p)
{
	char **names = NULL;
	size_t n = 0;
	int err;

	if ((err = bkr_damage_records_resolved(p->r, still_failing, p, &names, &n)) == 0 && n && !p->o->dry_run)
		err = bkr_trash_move(p->store, (const char *const *)names, n, p->now);
	if (err == 0)
		p->rep->damage_records_resolved = n;
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	return err;
}

int bkr_repair_run(bkr_repo *r, const bkr_repair_options *o, bkr_repair_report *out)
{
	struct repair p = { .r = r, .o = o, .rep = out, .damaged = BKR_IDSET_INIT, .clean = BKR_IDSET_INIT,
			  .seen = BKR_IDSET_INIT, .failing = BKR_IDSET_INIT };
	bkr_index *idx = NULL;
	size_t nstale = 0;
	int err;

	memset(out, 0, sizeof(*out));
	p.now = o->now_ns ? o->now_ns : bkr_time_now_ns();
	/* the tiers as recorded now (a migration may have recorded one while this
	 * waited for the lock; its packs would look missing), and every one
	 * there: one not mounted would look like missing packs */
	if ((err = bkr_repo_reload_tiers(r)) < 0 || (err = bkr_tier_check(r)) < 0)
		return err;
	if ((err = bkr_repo_config_heal(r, o->dry_run, &out->config_rewritten)) < 0)
		return err;
	if (out->config_rewritten)
		report(&p, BKR_REPAIR_CONFIG, out->config_rewritten, "%s: damaged, missing or different: %s from %s",
		       out->config_rewritten, o->dry_run ? "would rewrite it" : "rewritten",
		       strcmp(out->config_rewritten, "config.json") ? "config.json" : "its copy config.copy.json");
	bkr_host_name(p.host, sizeof(p.host), NULL);
	/* list before loading: a file published meanwhile (a recovery run takes no
	 * lock) is loaded, never mistaken for a damaged one */
	if ((err = bkr_trash_repo_store(r, &p.store)) < 0 || (err = bkr_store_list(p.store, "index/", list_index, &p)) < 0 ||
	    (err = bkr_store_list_other(p.store, "index/", list_index_other, &p)) < 0 ||
	    (err = bkr_index_load(&idx, p.store, "index/", BKR_INDEX_SKIP_DAMAGED)) < 0 ||
	    (err = bkr_index_foreach(idx, collect_old, &p)) < 0)
		goto done;
	bkr_index_files(idx, &nstale);
	out->index_files = nstale;
	bkr_index_stale_files(idx, &nstale);
	for (size_t i = 0; i < p.nlisted; i++)
		if (index_damaged(idx, p.listed[i])) {
			out->damaged_index_files++;
			report(&p, BKR_REPAIR_INDEX_FILE, p.listed[i], "%s: damaged or unknown index file: %s into trash",
			       p.listed[i], o->dry_run ? "would move it" : "moved");
		}
	out->entries_before = p.nold;
	if (p.nold)
		qsort(p.old, p.nold, sizeof(*p.old), bkr_index_entry_cmp_pack);
	if ((err = bkr_repo_foreach_pack(r, on_pack, &p)) < 0)
		goto done;
	if (p.npacks)
		qsort(p.packs, p.npacks, sizeof(*p.packs), cmp_pack);
	/* footer entries stay grouped by pack; packs[] was sorted after they were
	 * pushed, so each pack keeps its own [first, first+n) */
	if ((err = build(&p)) < 0 || (err = heal(&p)) < 0 || (err = scan_trash(&p)) < 0)
		goto done;
	/* which files stay damaged, and which packs in the trash the backups still use */
	if ((err = walk_all(&p)) < 0 || (err = rescue(&p)) < 0)
		goto done;
	one_entry_a_blob(&p);
	if (p.nfinal)
		qsort(p.final, p.nfinal, sizeof(*p.final), bkr_index_entry_cmp_pack);
	out->entries_after = p.nfinal;
	out->rewritten = p.nfinal != p.nold || out->damaged_index_files || nstale;
	for (size_t i = 0; i < p.nfinal && !out->rewritten; i++)
		out->rewritten = !same_entry(&p.final[i], &p.old[i]);
	if (out->rewritten && !o->dry_run) {
		if ((err = publish(&p, idx)) < 0 || (err = bkr_repo_reload_index(r)) < 0)
			goto done;
	}
	if ((err = retire_damage(&p)) < 0 || o->dry_run)
		goto done;
	/* the pack folders a publish that failed left empty, in the repository and the tiers it recorded */
	for (size_t i = 0, nt = bkr_repo_tier_count(r); i <= nt && err == 0; i++) {
		bool recorded;
		bkr_store *s = i == 0 ? p.store : bkr_repo_tier(r, i, NULL, &recorded);
		if (i == 0 || recorded)
			err = bkr_pack_folders_tidy(s);
	}
done:
	for (size_t i = 0; i < p.nlisted; i++)
		free(p.listed[i]);
	free(p.listed);
	for (size_t i = 0; i < p.npacks; i++)
		free(p.packs[i].path);
	free(p.packs);
	for (size_t i = 0; i < p.ntpacks; i++)
		free(p.tpacks[i].path);
	free(p.tpacks);
	free(p.tfoot);
	free(p.old);
	free(p.foot);
	free(p.final);
	free(p.have);
	bkr_idset_free(&p.damaged);
	bkr_idset_free(&p.failing);
	bkr_idset_free(&p.clean);
	bkr_idset_free(&p.seen);
	bkr_index_free(idx);
	bkr_store_free(p.store);
	return err;
}
