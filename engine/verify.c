/** @file
 * `bkr verify`: manifests, index and packs, every tree of every backup, and
 * with read_data every blob's bytes; damage is mapped to backups and paths.
 *
 * Order: (1) manifests; (2) every pack on disk: a pack the index names has
 * its footer read and every index entry naming it compared with the footer
 * (blob id at that offset, lengths, type, flags, and the pack's folder), and
 * with read_data every such blob is read through the index entry, exactly as
 * restore and the mount read it, and re-hashed; a pack the index does not
 * name has its footer's blob ids noted; temporaries are leftovers; (3) packs
 * the index names that are not on disk (trash is searched; missing ones are
 * errors); (4) every selected backup's and recovery run's trees are walked:
 * each tree is hash-checked when loaded, each file chunk must be indexed, of
 * type data and not damaged, as must a run's report.  A file touching damage
 * is reported with its backup (or run) and path.
 * Last, (5) each unindexed pack: when backups or runs use blobs that only it holds it
 * is an error (an index file was lost: the pack must be kept), else a
 * leftover.
 *
 * A pack, tree, manifest or config file whose read fails with an I/O error
 * (a disk error, maybe transient) proves nothing about its bytes: it is
 * reported as an I/O error (BKR_VERIFY_IO, never damage, no blob recorded)
 * and the rest is checked; verify then returns BKR_EIO.  So is a file or
 * tree whose blob is not in the index while a pack the index does not name
 * could not be read (it may be there): not checked, never "missing".  A server that does
 * not answer, an index or record that cannot be read, and want of memory
 * stop it.
 */
#include "bkr/verify.h"
#include "bkr/tier.h"
#include "bkr/clock.h"
#include "bkr/error.h"
#include "bkr/host.h"
#include "bkr/lock.h"
#include "bkr/trash.h"
#include "bkr/verify_record.h"
#include "bkr/pack.h"
#include "bkr/utf8.h"
#include "bkr/walk.h"
#include "array.h"
#include "idset.h"
#include "repo_priv.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* A pack on disk that no index entry names. */
struct unindexed {
	bkr_pack_id id;
	char *path;
	size_t blobs;        /* in its footer */
	size_t used;         /* of them, blobs that backups use and the index lacks */
};

/* A blob in the footer of an unindexed pack. */
struct loose {
	bkr_id id;
	size_t pack;         /* index into verify.unx */
};

struct verify {
	bkr_repo *r;
	const bkr_verify_options *o;
	bkr_verify_stats *st;
	bkr_idset damaged;      /* blob ids unreadable through the index */
	bkr_idset listed;       /* those and the blobs with a damaged copy readers do not use */
	bkr_id *dlist;          /* listed, in the order found (for the record) */
	size_t ndlist, capdlist;
	uint64_t damaged_files; /* files of backups reported damaged or missing */
	char **dbackups;        /* backups (not runs) with an error, each once (for the record) */
	size_t ndbackups, cap_dbackups;
	uint64_t dbackups_lost; /* such backups not listed for want of memory: counted as omitted */
	const char *one_id;     /* the backup or run checked alone, its full id */
	bkr_idset checked;      /* pack ids (zero-extended) found and checked */
	bkr_index_entry *ents;  /* every index entry, by pack, then offset */
	size_t nents, cap_ents;
	struct unindexed *unx;
	size_t nunx, cap_unx;
	struct loose *loose;    /* by blob id once the packs are scanned */
	size_t nloose, cap_loose;
	bkr_idset loose_used;   /* loose blob ids counted in their pack's used */
	char unx_unread[PATH_MAX]; /* the first pack no index entry names whose footer could not be read */
	size_t nunx_unread;     /* how many such packs (I/O errors): a blob not in the index may be in one */
	bkr_idset recorded;     /* blobs earlier verifies or prunes recorded as damaged (repair takes them out) */
	bkr_idset lost;         /* of the damaged, blobs whose pack is in no tier (not damaged: missing) */
	bkr_idset bad_entries;  /* index entries (entry_key) whose copy is damaged or whose pack is missing */
	bkr_idset copy_bad;     /* recorded blobs with a copy the index does not name that failed, or was not read */
	bkr_idset unread_packs; /* pack ids (zero-extended) that could not be read: counted once in io_errors */
	bool derived;           /* report: an io-error problem is a file or tree not checked (st->unchecked) */
	char **seen_records;    /* the records/ names this run read at its start, sorted: only those it resolves */
	size_t nseen_records, cap_seen_records;
	bool copies_unknown;    /* a pack's footer did not read: the copies in it are not known */
	char *places;           /* "REPO, tier NAME at PATH, ..." searched for a missing pack, whole */
	uint64_t packs_done, packs_total;
	uint64_t bytes_done, bytes_total;   /* stored bytes of the blobs of the packs checked */
	bool walk_incomplete;   /* a tree could not be loaded: its files went unchecked */
	bool in_run;            /* walking a recovery run: problems naming it say so */
	bool tiers_reloaded;    /* check_missing read the tier records again */
	int writing;            /* bkr_repo_writers_active, once it said yes (-1: not asked) */
	char *writer;           /* leftover_by's message when an S3 mark is seen, whole */
	char *why;              /* blob_problem's message, whole */
	char *first_io;         /* the first I/O error's message (the one verify returns with), whole */
	uint8_t *buf;           /* BKR_BLOB_MAX scratch */
	uint8_t *win;           /* read_data: WINDOW_MAX bytes, the window of the pack being read (packsrc) */
	char **ifiles;          /* the index files of the next problem ("index/<hex>.idx"): report takes them */
	size_t nifiles, cap_ifiles;
	bkr_id *fids;           /* note_index_files' scratch */
	size_t cap_fids;
	char ifiles_said[300];  /* ifiles in a message: "index/A.idx", "..., index/C.idx and 2 more index files" */
};

/* A message when there was no memory to format it. */
#define OOM_MESSAGE "out of memory (this message could not be formatted)"

static void report(struct verify *v, bkr_verify_kind kind, const char *object, const char *backup,
		   const char *path, const char *fmt, ...) __attribute__((format(printf, 6, 7)));

/* Backup @p id had an error: it goes into the record's damaged backups (bkr health does not count it good). */
static void note_damaged_backup(struct verify *v, const char *id)
{
	for (size_t i = v->ndbackups; i-- > 0;) /* its problems come together: the last one first */
		if (!strcmp(v->dbackups[i], id))
			return;
	if (bkr_array_push_str(&v->dbackups, &v->cap_dbackups, &v->ndbackups, id) < 0) {
		bkr_error_clear();
		v->dbackups_lost++;
	}
}

static void clear_ifiles(struct verify *v)
{
	for (size_t i = 0; i < v->nifiles; i++)
		free(v->ifiles[i]);
	v->nifiles = 0;
	v->ifiles_said[0] = 0;
}

/* The index files holding entries @p e[0, n) (each file once, newest first)
 * into v->ifiles and v->ifiles_said, for the next report, which takes them. */
static int note_index_files(struct verify *v, const bkr_index_entry *e, size_t n)
{
	char name[BKR_ID_HEX + 16], hex[BKR_ID_HEX];
	size_t used = 0, shown = 0;
	int w;

	clear_ifiles(v);
	for (size_t i = 0; i < n; i++) {
		size_t k = bkr_repo_index_files_holding(v->r, &e[i], NULL, 0);
		while (k > v->cap_fids) /* each grow doubles: as often as k needs */
			if (bkr_array_grow((void **)&v->fids, &v->cap_fids, v->cap_fids, sizeof(*v->fids)) < 0)
				return BKR_ENOMEM;
		k = bkr_repo_index_files_holding(v->r, &e[i], v->fids, v->cap_fids);
		for (size_t j = 0; j < k && j < v->cap_fids; j++) {
			bool seen = false;
			bkr_id_to_hex(&v->fids[j], hex);
			snprintf(name, sizeof(name), "index/%s.idx", hex);
			for (size_t f = 0; f < v->nifiles && !seen; f++)
				seen = !strcmp(v->ifiles[f], name);
			if (!seen && bkr_array_push_str(&v->ifiles, &v->cap_ifiles, &v->nifiles, name) < 0)
				return BKR_ENOMEM;
		}
	}
	/* three by name, the others counted */
	for (size_t f = 0; f < v->nifiles && f < 3; f++, shown++) {
		const char *sep = f == 0 ? "" : f + 1 == v->nifiles ? " and " : ", ";
		w = snprintf(v->ifiles_said + used, sizeof(v->ifiles_said) - used, "%s%s", sep, v->ifiles[f]);
		used += w > 0 ? (size_t)w : 0;
	}
	if (v->nifiles > shown)
		snprintf(v->ifiles_said + used, sizeof(v->ifiles_said) - used, " and %zu more index file%s",
			 v->nifiles - shown, v->nifiles - shown == 1 ? "" : "s");
	if (!v->nifiles)
		snprintf(v->ifiles_said, sizeof(v->ifiles_said), "no index file (a reload dropped it)");
	return 0;
}

static void report(struct verify *v, bkr_verify_kind kind, const char *object, const char *backup,
		   const char *path, const char *fmt, ...)
{
	char *msg = NULL;
	va_list ap;
	bkr_verify_problem p = { kind, kind != BKR_VERIFY_LEFTOVER, object, backup, path, NULL, backup && v->in_run };
	p.index_files = (const char *const *)v->ifiles;
	p.nindex_files = v->nifiles;
	va_start(ap, fmt);
	if (vasprintf(&msg, fmt, ap) < 0) /* whole, however long the paths and reasons in it */
		msg = NULL;
	va_end(ap);
	p.message = msg ? msg : OOM_MESSAGE;
	if (backup && path && (kind == BKR_VERIFY_DAMAGED_FILE || kind == BKR_VERIFY_MISSING))
		v->damaged_files++;
	if (kind == BKR_VERIFY_IO && v->derived)
		v->st->unchecked++;
	else if (kind == BKR_VERIFY_IO)
		v->st->io_errors++;
	else if (p.error)
		v->st->errors++;
	else
		v->st->leftovers++;
	if (p.error && kind != BKR_VERIFY_IO && backup && !v->in_run && v->o->record)
		note_damaged_backup(v, backup);
	if (v->o->report)
		v->o->report(v->o->report_ctx, &p);
	clear_ifiles(v); /* they were this problem's */
	free(msg);
}

static bkr_id pack_key(const bkr_pack_id *p)
{
	bkr_id k = { { 0 } };
	memcpy(k.b, p->b, BKR_PACK_ID_SIZE); /* the first 8 bytes are random: idset's hash */
	return k;
}

/* A read that failed with @p err does not stop verify: an I/O error, said by unread. */
static bool goes_on(int err)
{
	return err == BKR_EIO || !bkr_error_not_damage(err);
}

/* An object whose read failed with an I/O error (@p msg: the error, naming
 * the file): not damage, maybe transient, and nothing is recorded for it;
 * @p unchecked says what went unchecked. */
static void unread(struct verify *v, const char *object, const char *backup, const char *path, const char *msg,
		   const char *unchecked)
{
	if (!v->first_io)
		v->first_io = strdup(msg); /* out of memory: the next one is kept */
	report(v, BKR_VERIFY_IO, object, backup, path,
	       "%s: an I/O error, not damage: %s (check the disk, then run verify again)", msg, unchecked);
}

/* Pack @p id could not be read: 1 when it is the first time (an object that
 * could not be read, counted in io_errors), 0 when it was counted already. */
static int pack_unread_once(struct verify *v, const bkr_pack_id *id)
{
	bkr_id k = pack_key(id);
	return bkr_idset_add(&v->unread_packs, &k) != 0; /* out of memory: counted again, never lost */
}

/* A problem of kind io-error about a file or tree of a backup that was not
 * checked because an object it may be in could not be read (counted there,
 * in io_errors): counted in st->unchecked, so that io_errors counts each
 * object that could not be read once. */
#define REPORT_UNCHECKED(v, ...)                                                                                       \
	do {                                                                                                           \
		(v)->derived = true;                                                                                   \
		report(v, BKR_VERIFY_IO, __VA_ARGS__);                                                                 \
		(v)->derived = false;                                                                                  \
	} while (0)

/* Tree @p tree at @p path of backup @p backup could not be read (an I/O
 * error, @p msg): an object that could not be read, unless the pack it is
 * in was counted already (its footer, or another tree of it, did not read). */
static void unread_tree(struct verify *v, const bkr_id *tree, const char *backup, const char *path, const char *msg,
			const char *what)
{
	bkr_index_entry e;
	char hex[BKR_ID_HEX], *own = strdup(msg); /* whole: the lookup below sets the error slot @p msg may be */
	const char *m = own ? own : OOM_MESSAGE;
	bkr_id_to_hex(tree, hex);
	if (bkr_repo_lookup(v->r, tree, &e) == 0 && !pack_unread_once(v, &e.pack)) {
		if (!v->first_io)
			v->first_io = strdup(m);
		REPORT_UNCHECKED(v, hex, backup, path, "%s: an I/O error, not damage: %s (check the disk, then run "
				 "verify again)", m, what);
	} else {
		bkr_error_clear();
		unread(v, hex, backup, path, m, what);
	}
	free(own);
}

/* Blob @p id goes into the record's damaged blobs (repair reads every copy
 * of it again and takes out of the index those that still fail). */
static int list_damaged(struct verify *v, const bkr_id *id)
{
	int added = bkr_idset_add(&v->listed, id);
	if (added <= 0)
		return added < 0 ? BKR_ENOMEM : 0;
	if (bkr_array_grow((void **)&v->dlist, &v->capdlist, v->ndlist, sizeof(*v->dlist)) < 0)
		return BKR_ENOMEM;
	v->dlist[v->ndlist++] = *id;
	return 0;
}

/* Blob @p id is damaged (unreadable through the index). */
static int add_damaged(struct verify *v, const bkr_id *id)
{
	if (bkr_idset_add(&v->damaged, id) < 0)
		return BKR_ENOMEM;
	return list_damaged(v, id);
}

static const char *type_name(unsigned type)
{
	return type == BKR_BLOB_DATA ? "data" : type == BKR_BLOB_TREE ? "tree" : "unknown";
}

static void on_bad_manifest(void *ctx, const char *file, const char *message)
{
	report(ctx, BKR_VERIFY_MANIFEST, file, NULL, NULL, "%s", message);
}

static void on_bad_run_manifest(void *ctx, const char *file, const char *message)
{
	char name[1300];
	snprintf(name, sizeof(name), "runs/%s", file);
	report(ctx, BKR_VERIFY_MANIFEST, name, NULL, NULL, "recovery run %s", message);
}

/* a manifest that could not be read (an I/O error): its backup goes unchecked,
 * and unindexed packs may hold its blobs (they are kept) */
static void on_unread_manifest(void *ctx, const char *file, const char *message)
{
	struct verify *v = ctx;
	v->walk_incomplete = true;
	unread(v, file, NULL, NULL, message, "this backup not checked");
}

static void on_unread_run_manifest(void *ctx, const char *file, const char *message)
{
	struct verify *v = ctx;
	char name[1300];
	snprintf(name, sizeof(name), "runs/%s", file);
	v->walk_incomplete = true;
	unread(v, name, NULL, NULL, message, "this recovery run not checked");
}

/* a record every reader skips: the pin, tag or hold in it is not applied */
static void on_bad_record(void *ctx, const char *path, const char *why)
{
	const char *rel = strstr(path, "records/");
	report(ctx, BKR_VERIFY_RECORD, rel ? rel : path, NULL, NULL,
	       "%s; every command skips this record, so a pin, tag or hold in it is not applied (retention may "
	       "remove the backup it kept): put it back from a copy of the repository, or remove it",
	       why);
}

static void on_bad_index(void *ctx, const char *message)
{
	report(ctx, BKR_VERIFY_INDEX, "index", NULL, NULL,
	       "%s (left out: the blobs it names are missing until 'bkr repair' rebuilds the index from the packs)", message);
}

/* config.json and its copy must both be intact and the same bytes (each is
 * the other's spare).  A repository made before the copy existed has none:
 * not an error, but said once so that repair writes one. */
static int check_config(struct verify *v)
{
	bkr_store *s = v->r->store;
	uint8_t *a = NULL, *b = NULL;
	size_t alen = 0, blen = 0;
	int err = 0, ea, eb;

	if (bkr_repo_config_warning(v->r))
		report(v, BKR_VERIFY_CONFIG, "config.json", NULL, NULL, "%s", bkr_repo_config_warning(v->r));
	/* one that cannot be read is not damaged: an I/O error is said, the
	 * two are not compared; a server that does not answer stops verify */
	if ((ea = bkr_store_get(s, "config.json", BKR_REPO_CONFIG_MAX, &a, &alen)) == BKR_EIO)
		unread(v, "config.json", NULL, NULL, bkr_error_message(), "not compared with its copy");
	eb = goes_on(ea) ? bkr_store_get(s, BKR_REPO_CONFIG_COPY, BKR_REPO_CONFIG_MAX, &b, &blen) : 0;
	if (eb == BKR_EIO)
		unread(v, BKR_REPO_CONFIG_COPY, NULL, NULL, bkr_error_message(), "not compared with config.json");
	if (!goes_on(ea) || !goes_on(eb)) {
		err = goes_on(ea) ? eb : ea;
	} else if (ea == BKR_EIO || eb == BKR_EIO) {
		/* said */
	} else if (eb == BKR_ENOTFOUND) {
		report(v, BKR_VERIFY_LEFTOVER, BKR_REPO_CONFIG_COPY, NULL, NULL,
		       "%s: absent (the repository predates it): 'bkr repair' writes one", BKR_REPO_CONFIG_COPY);
	} else if (eb < 0) {
		report(v, BKR_VERIFY_CONFIG, BKR_REPO_CONFIG_COPY, NULL, NULL, "%s: %s", BKR_REPO_CONFIG_COPY,
		       bkr_error_message());
	} else if (ea == 0 && !bkr_repo_config_warning(v->r) && (alen != blen || memcmp(a, b, alen))) {
		bkr_repo_config cfg;
		if (bkr_repo_config_parse(&cfg, (const char *)b, blen, BKR_REPO_CONFIG_COPY) < 0)
			report(v, BKR_VERIFY_CONFIG, BKR_REPO_CONFIG_COPY, NULL, NULL, "%s", bkr_error_message());
		else
			report(v, BKR_VERIFY_CONFIG, BKR_REPO_CONFIG_COPY, NULL, NULL,
			       "%s: differs from config.json ('bkr repair' rewrites it)", BKR_REPO_CONFIG_COPY);
	}
	free(a);
	free(b);
	return err;
}

static int collect_entry(const bkr_index_entry *e, void *ctx)
{
	struct verify *v = ctx;
	int err;
	if ((err = bkr_array_grow((void **)&v->ents, &v->cap_ents, v->nents, sizeof(*v->ents))) < 0)
		return err;
	v->ents[v->nents++] = *e;
	return 0;
}

/* The index entries naming pack @p id: [*lo, *hi) of v->ents. */
static void pack_range(const struct verify *v, const bkr_pack_id *id, size_t *lo, size_t *hi)
{
	size_t a = 0, b = v->nents;
	while (a < b) {
		size_t m = a + (b - a) / 2;
		if (bkr_pack_id_cmp(&v->ents[m].pack, id) < 0)
			a = m + 1;
		else
			b = m;
	}
	*lo = a;
	while (b < v->nents && !bkr_pack_id_cmp(&v->ents[b].pack, id))
		b++;
	*hi = b < a ? a : b;
}

/* One index entry (blob, pack, offset) as a set key. */
static bkr_id entry_key(const bkr_index_entry *e)
{
	bkr_id k = e->id;
	for (size_t i = 0; i < BKR_PACK_ID_SIZE; i++)
		k.b[i] ^= e->pack.b[i];
	for (size_t i = 0; i < sizeof(e->offset); i++)
		k.b[BKR_PACK_ID_SIZE + i] ^= (uint8_t)(e->offset >> (8 * i));
	return k;
}

/* Entry @p e's copy is damaged, or its pack missing (@p lost): its blob is
 * damaged when no other entry of it is left that may read (readers try every
 * entry naming a blob, bkr_repo_read_blob).  Another copy may be the one they
 * read: then the backups using the blob are fine, but the blob is still
 * recorded, so that repair takes this copy's entry out of the index; when
 * that other copy is found bad too, its own mark finds none left. */
static int mark_entry_as(struct verify *v, const bkr_index_entry *e, bool lost)
{
	bkr_index_entry o;
	bkr_id k = entry_key(e);
	if (bkr_idset_add(&v->bad_entries, &k) < 0)
		return BKR_ENOMEM;
	for (size_t nth = 0; bkr_repo_lookup_nth(v->r, &e->id, nth, &o) == 0; nth++) {
		k = entry_key(&o);
		if (o.type == e->type && !bkr_idset_has(&v->bad_entries, &k))
			return list_damaged(v, &e->id);
	}
	bkr_error_clear();
	if (lost && bkr_idset_add(&v->lost, &e->id) < 0)
		return BKR_ENOMEM;
	return add_damaged(v, &e->id);
}

static int mark_entry(struct verify *v, const bkr_index_entry *e)
{
	return mark_entry_as(v, e, false);
}

/* What is wrong with index entry @p e given its pack's footer (sorted by
 * offset) and the folder (@p folder_type, or -1 for trash); NULL when it agrees. */
static const char *entry_problem(const bkr_index_entry *e, const bkr_pack_entry *f, size_t nf,
				 int folder_type, char *buf, size_t cap)
{
	char hex[BKR_ID_HEX];
	size_t a = 0, b = nf;
	while (a < b) {
		size_t m = a + (b - a) / 2;
		if (f[m].offset < e->offset)
			a = m + 1;
		else
			b = m;
	}
	if (a == nf || f[a].offset != e->offset) {
		snprintf(buf, cap, "no blob starts at that offset in the pack");
		return buf;
	}
	f += a;
	if (bkr_id_cmp(&f->id, &e->id)) {
		bkr_id_to_hex(&f->id, hex);
		snprintf(buf, cap, "the pack holds blob %s there", hex);
		return buf;
	}
	if (f->stored_len != e->stored_len || f->raw_len != e->raw_len || f->type != e->type ||
	    f->flags != e->flags) {
		snprintf(buf, cap, "the index says lengths %u/%u, type %u, flags 0x%02x; the pack's footer says %u/%u, %u, 0x%02x",
			 e->stored_len, e->raw_len, e->type, e->flags, f->stored_len, f->raw_len, f->type, f->flags);
		return buf;
	}
	if (folder_type >= 0 && e->type != folder_type) {
		snprintf(buf, cap, "a %s blob, but its pack lies with the %s packs, where readers do not look",
			 type_name(e->type), type_name((unsigned)folder_type));
		return buf;
	}
	return NULL;
}

/* With read_data a pack's blobs are read in windows: runs of blobs the index
 * names, one request each, never more than one blob's bound (so that any blob
 * fits one window) and never the whole pack: memory stays the same whatever
 * the pack's size (a pack the index names little of, a hole in its blob area).
 * Unnamed bytes between two blobs up to WINDOW_GAP are read through. */
#define WINDOW_MAX ((size_t)BKR_BLOB_HEADER_SIZE + BKR_SEALED_BLOB_STORED_MAX)
#define WINDOW_GAP ((uint64_t)1 << 16)

/* A pack being checked, through its store, with a window of its bytes.
 * Read, never mapped: a disk error in a mapped page would kill verify
 * (SIGBUS) instead of being named as an I/O error. */
struct packsrc {
	bkr_store *s;
	const char *name, *path;
	uint8_t *win; /* v->win (WINDOW_MAX bytes): bytes [at, at + len) of the pack */
	uint64_t at;
	size_t len;
	uint64_t size;
};

static int src_read(void *ctx, void *buf, size_t len, uint64_t off)
{
	const struct packsrc *p = ctx;
	if (p->len && off >= p->at && len <= p->len && off - p->at <= p->len - len) {
		memcpy(buf, p->win + (off - p->at), len);
		return 0;
	}
	return bkr_store_get_range(p->s, p->name, off, len, buf, BKR_STORE_LISTED);
}

/* Open @p path for reading: its store and size. */
static int src_open(struct verify *v, const char *path, struct packsrc *p)
{
	int err;
	memset(p, 0, sizeof(*p));
	p->path = path;
	p->win = v->win;
	if ((err = bkr_repo_locate(v->r, path, &p->s, &p->name)) < 0)
		return err;
	return bkr_store_stat_listed(p->s, p->name, &p->size);
}

/* Before entry @p i of v->ents[i, hi) is read: the window over it and the
 * entries after it that fit.  A window that does not read is dropped: each
 * blob's own read then says what is wrong (truncated, an I/O error). */
static void src_window(struct verify *v, struct packsrc *p, size_t i, size_t hi)
{
	const bkr_index_entry *e = &v->ents[i];
	uint64_t start = e->offset, end = start;
	if (p->len && start >= p->at && start - p->at < p->len &&
	    e->stored_len + (uint64_t)BKR_BLOB_HEADER_SIZE <= p->len - (start - p->at))
		return; /* in the window already */
	p->len = 0;
	for (size_t k = i; k < hi; k++) {
		uint64_t at = v->ents[k].offset, x = at + BKR_BLOB_HEADER_SIZE + v->ents[k].stored_len;
		if (k > i && at > end + WINDOW_GAP)
			break;
		if ((x > end ? x : end) - start > WINDOW_MAX)
			break;
		if (x > end)
			end = x;
	}
	if (end > p->size)
		end = p->size;
	if (end <= start)
		return;
	if (bkr_store_get_range(p->s, p->name, start, (size_t)(end - start), p->win, 0) < 0) {
		bkr_error_clear();
		return;
	}
	p->at = start;
	p->len = (size_t)(end - start);
}

/* Pack @p id at @p path could not be read (an I/O error): @p n blobs the index names in it go unchecked. */
static void unread_pack(struct verify *v, const bkr_pack_id *id, const char *path, size_t n)
{
	char what[200];
	snprintf(what, sizeof(what), "%zu blob%s the index names in it not checked", n, n == 1 ? "" : "s");
	pack_unread_once(v, id);
	unread(v, path, NULL, NULL, bkr_error_message(), what);
}

/*
 * The copies in pack @p path (footer @p fents) of blobs a verify or prune
 * recorded as damaged that no index entry names (v->ents[lo, hi): this
 * pack's): repair took them out of the index, or it reads again.  Each is
 * read, so that a damage record is resolved only once every copy any pack
 * holds reads (as repair resolves one): a copy that fails or cannot be read
 * goes into copy_bad.  Readers do not use these copies: no problem is
 * reported for them.
 */
static int read_unindexed_copies(struct verify *v, const char *path, struct packsrc *src,
				 const bkr_pack_entry *fents, size_t nf, size_t lo, size_t hi)
{
	for (size_t j = 0; j < nf; j++) {
		const bkr_pack_entry *f = &fents[j];
		bool indexed = false;
		int rb;
		if (!bkr_idset_has(&v->recorded, &f->id))
			continue;
		for (size_t i = lo; i < hi && !indexed; i++)
			indexed = v->ents[i].offset == f->offset && !bkr_id_cmp(&v->ents[i].id, &f->id);
		if (indexed)
			continue;
		rb = bkr_pack_read_blob_from(bkr_repo_crypto(v->r), src_read, src, path, &f->id, f->offset,
					     f->stored_len, f->raw_len, f->type, v->buf, 0);
		if (rb == BKR_ENOMEM)
			return rb;
		if (rb == 0)
			continue;
		bkr_error_clear();
		if (bkr_idset_add(&v->copy_bad, &f->id) < 0)
			return BKR_ENOMEM;
	}
	return 0;
}

/*
 * Check pack @p id at @p path (in the folder of @p folder_type blobs, -1 for
 * trash) against the index entries naming it; with read_data read each blob
 * through its entry.
 */
static int check_pack(struct verify *v, const bkr_pack_id *id, int folder_type, const char *path)
{
	bkr_pack_entry *fents = NULL;
	size_t nf = 0, lo, hi;
	struct packsrc src;
	bool footer_ok = false;
	int err = 0;

	pack_range(v, id, &lo, &hi);
	uint64_t bytes_end = v->bytes_done;
	for (size_t i = lo; i < hi; i++)
		bytes_end += v->ents[i].stored_len + BKR_BLOB_HEADER_SIZE;
	if (v->o->progress)
		v->o->progress(v->o->progress_ctx, "packs", v->packs_done, v->packs_total, v->bytes_done, v->bytes_total);
	if ((err = src_open(v, path, &src)) < 0) {
		if (err == BKR_EIO) {
			unread_pack(v, id, path, hi - lo);
			err = 0;
			goto done;
		}
		if (bkr_error_not_damage(err))
			goto done;
		/* restore cannot read it either: every blob in it is lost */
		report(v, BKR_VERIFY_PACK, path, NULL, NULL, "%s", bkr_error_message());
		v->copies_unknown = true;
		err = 0;
		for (size_t i = lo; i < hi && err == 0; i++)
			err = mark_entry(v, &v->ents[i]);
		goto done;
	}
	if ((err = bkr_pack_read_footer_from(bkr_repo_crypto(v->r), id, src_read, &src, src.size, path, &fents,
					     &nf)) < 0) {
		if (err == BKR_EIO) {
			unread_pack(v, id, path, hi - lo);
			err = 0;
			goto done;
		}
		if (bkr_error_not_damage(err))
			goto done;
		/* readers go by the index, not the footer: read_data finds out what is lost */
		report(v, BKR_VERIFY_PACK, path, NULL, NULL, "%s", bkr_error_message());
		v->copies_unknown = true;
		err = 0;
	} else {
		footer_ok = true;
	}
	for (size_t i = lo; i < hi; i++) {
		const bkr_index_entry *e = &v->ents[i];
		char why[300], hex[BKR_ID_HEX], phex[BKR_PACK_ID_HEX];
		const char *bad = footer_ok ? entry_problem(e, fents, nf, folder_type, why, sizeof(why)) : NULL;
		bkr_id_to_hex(&e->id, hex);
		if (bad) {
			bkr_pack_id_to_hex(&e->pack, phex);
			if ((err = note_index_files(v, e, 1)) < 0)
				goto done;
			report(v, BKR_VERIFY_INDEX, hex, NULL, NULL,
			       "index entry of blob %s (pack %s, offset %u) in %s: %s; 'bkr repair' drops it (the pack's "
			       "footer says what the pack holds), writing an index that replaces %s",
			       hex, phex, e->offset, v->ifiles_said, bad, v->nifiles == 1 ? "that file" : "those files");
			if ((err = mark_entry(v, e)) < 0)
				goto done;
			continue;
		}
		if (!v->o->read_data)
			continue;
		v->st->blobs_read++;
		v->st->bytes_read += e->stored_len + BKR_BLOB_HEADER_SIZE;
		src_window(v, &src, i, hi);
		int rb = bkr_pack_read_blob_from(bkr_repo_crypto(v->r), src_read, &src, path, &e->id, e->offset,
						 e->stored_len, e->raw_len, e->type, v->buf, 0);
		v->bytes_done += e->stored_len + BKR_BLOB_HEADER_SIZE;
		if (v->o->progress)
			v->o->progress(v->o->progress_ctx, "packs", v->packs_done, v->packs_total, v->bytes_done,
				       v->bytes_total);
		if (rb == 0)
			continue;
		if (rb == BKR_EIO) {
			unread_pack(v, id, path, hi - i);
			goto done;
		}
		if (bkr_error_not_damage(rb)) {
			err = rb;
			goto done;
		}
		char *msg = strdup(bkr_error_message()); /* whole: note_index_files may set the slot */
		if ((err = note_index_files(v, e, 1)) < 0) {
			free(msg);
			goto done;
		}
		report(v, BKR_VERIFY_BLOB, hex, NULL, NULL,
		       "%s (its index entry is in %s: 'bkr repair' reads it again "
		       "and, if it still fails, takes it out of the index, writing one that replaces %s)",
		       msg ? msg : OOM_MESSAGE, v->ifiles_said, v->nifiles == 1 ? "that file" : "those files");
		free(msg);
		if ((err = mark_entry(v, e)) < 0)
			goto done;
	}
	if (footer_ok && v->o->read_data)
		err = read_unindexed_copies(v, path, &src, fents, nf, lo, hi);
done:
	v->packs_done++;
	v->bytes_done = bytes_end;
	if (v->o->progress)
		v->o->progress(v->o->progress_ctx, "packs", v->packs_done, v->packs_total, v->bytes_done, v->bytes_total);
	free(fents);
	return err;
}

/* A pack no index entry names: note the blobs of its footer (judged after the walk). */
static int note_unindexed(struct verify *v, const bkr_pack_id *id, const char *path)
{
	bkr_pack_entry *fents = NULL;
	struct unindexed *u;
	size_t nf = 0;
	int err = 0;

	if ((err = bkr_repo_pack_footer(v->r, id, path, &fents, &nf)) < 0) {
		if (err == BKR_EIO) {
			pack_unread_once(v, id);
			unread(v, path, NULL, NULL, bkr_error_message(),
			       "a pack the index does not name, its blobs not noted");
			if (!v->nunx_unread++)
				snprintf(v->unx_unread, sizeof(v->unx_unread), "%s", path);
			err = 0;
			goto done;
		}
		if (bkr_error_not_damage(err))
			goto done;
		err = 0;
		report(v, BKR_VERIFY_PACK, path, NULL, NULL, "%s (a pack the index does not name)", bkr_error_message());
		v->copies_unknown = true;
		goto done;
	}
	if ((err = bkr_array_grow((void **)&v->unx, &v->cap_unx, v->nunx, sizeof(*v->unx))) < 0)
		goto done;
	u = &v->unx[v->nunx];
	if (!(u->path = strdup(path))) {
		err = bkr_error_oom();
		goto done;
	}
	u->id = *id;
	u->blobs = nf;
	u->used = 0;
	v->nunx++;
	for (size_t i = 0; i < nf; i++) {
		if ((err = bkr_array_grow((void **)&v->loose, &v->cap_loose, v->nloose, sizeof(*v->loose))) < 0)
			goto done;
		v->loose[v->nloose++] = (struct loose){ fents[i].id, v->nunx - 1 };
		/* a recorded blob's copy here is not read: its damage record stays */
		if (bkr_idset_has(&v->recorded, &fents[i].id) && bkr_idset_add(&v->copy_bad, &fents[i].id) < 0) {
			err = BKR_ENOMEM;
			goto done;
		}
	}
done:
	free(fents);
	return err;
}

/* Who left an unfinished object: a writer at work now, or a dead one.  Asked
 * again at each leftover until a writer is seen (one may start meanwhile). */
static const char *leftover_by(struct verify *v)
{
	if (v->writing != 1) {
		char *who = NULL; /* whole: on S3 it names the lock object */
		v->writing = bkr_repo_writers_active(v->r, &who);
		/* on S3 a killed writer's mark stays until it is stale: maybe
		 * nobody is writing (on a local repository the mark dies with it) */
		/* out of memory: the words without the mark's */
		if (v->writing == 1 && bkr_store_is_url(bkr_repo_path(v->r)))
			bkr_text_setf(&v->writer, "possibly a command writing to the repository now "
				      "(locks/writers.lock: %s; a killed command's mark stays until it is stale): its "
				      "work in progress, else an interrupted command's",
				      who ? who : "out of memory naming its holder");
		free(who);
	}
	switch (v->writing) {
	case 1:
		return v->writer ? v->writer
				    : "a command writing to the repository now (it holds locks/writers.lock): its work in progress";
	case 0: return "an interrupted command (no command is writing now; bkr prune removes it after the grace period)";
	default: return "an interrupted command or one still running (cannot tell: locks/writers.lock is not writable)";
	}
}

static int on_pack(void *ctx, const bkr_pack_id *id, bkr_blob_type type, const char *path)
{
	struct verify *v = ctx;
	bkr_id k;
	size_t lo, hi;
	int added;
	if (!id) {
		report(v, BKR_VERIFY_LEFTOVER, path, NULL, NULL, "%s: unfinished write, left by %s", path, leftover_by(v));
		return 0;
	}
	k = pack_key(id);
	if ((added = bkr_idset_add(&v->checked, &k)) < 0)
		return BKR_ENOMEM;
	if (!added)
		return 0; /* a second copy (in a later tier): readers use the first */
	v->st->packs++;
	pack_range(v, id, &lo, &hi);
	if (lo == hi)
		return note_unindexed(v, id, path);
	return check_pack(v, id, (int)type, path);
}

/* Where a pack is searched (bkr_repo_places, made once into v->places); out of memory, words saying so. */
static const char *searched(struct verify *v)
{
	if (!v->places)
		v->places = bkr_repo_places(v->r);
	return v->places ? v->places : "the repository and each tier (out of memory naming them)";
}

/* v->why formatted whole, or @p oom (the same first words: file_kind reads them) out of memory. */
static const char *set_why(struct verify *v, const char *oom, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static const char *set_why(struct verify *v, const char *oom, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	bkr_text_vsetf(&v->why, fmt, ap);
	va_end(ap);
	return v->why ? v->why : oom;
}

/* Packs the index names that the scan did not find: perhaps in trash (still readable). */
static int check_missing(struct verify *v)
{
	int err = 0;
	for (size_t lo = 0, hi; lo < v->nents && err == 0; lo = hi) {
		const bkr_index_entry *e = &v->ents[lo];
		bkr_id k = pack_key(&e->pack);
		char path[PATH_MAX], hex[BKR_PACK_ID_HEX];
		pack_range(v, &e->pack, &lo, &hi);
		if (bkr_idset_has(&v->checked, &k))
			continue;
		if (bkr_idset_add(&v->checked, &k) < 0)
			return BKR_ENOMEM;
		/* Not listed: a tier migration may have moved it since the listing
		 * (as tier status, verify looks again: bkr_repo_pack_seek). */
		int found = bkr_repo_pack_path(v->r, &e->pack, (bkr_blob_type)e->type, path, sizeof(path));
		if (found == BKR_ENOTFOUND) {
			bkr_error_clear();
			found = bkr_repo_pack_seek(v->r, &e->pack, (bkr_blob_type)e->type, true, &v->tiers_reloaded,
						   path, sizeof(path));
		}
		if (found == 0) {
			err = check_pack(v, &e->pack, -1, path);
			continue;
		}
		bkr_pack_id_to_hex(&e->pack, hex);
		if (found == BKR_EIO) { /* a place could not say whether it holds the pack: not missing */
			char what[200];
			snprintf(what, sizeof(what), "pack %s named by the index: a place that may hold it could not be looked at; "
				 "%zu blob%s in it not checked", hex, hi - lo, hi - lo == 1 ? "" : "s");
			pack_unread_once(v, &e->pack);
			unread(v, hex, NULL, NULL, bkr_error_message(), what);
			continue;
		}
		if (found == BKR_ECORRUPT) {
			/* no pack in its place (a FIFO, a directory: "not a regular file"): as one
			 * that does not open (check_pack), named, never verify's silent failure */
			report(v, BKR_VERIFY_PACK, hex, NULL, NULL, "%s", bkr_error_message());
			bkr_error_clear();
			v->copies_unknown = true;
			for (size_t i = lo; i < hi && err == 0; i++)
				err = mark_entry(v, &v->ents[i]);
			continue;
		}
		if (found < 0 && found != BKR_ENOTFOUND)
			return found; /* the tier records could not be read again, a server that does not answer */
		bkr_error_clear();
		/* the hint about tier disks only where there are tiers; the index
		 * files naming it (an old one put back after prune removed the pack?) */
		if ((err = note_index_files(v, &v->ents[lo], hi - lo)) < 0)
			return err;
		report(v, BKR_VERIFY_PACK, hex, NULL, NULL,
		       "pack %s is named by the index but missing from every tier "
		       "and trash (searched %s%s); %zu entr%s naming it %s in %s: 'bkr repair' drops %s, writing an index "
		       "that replaces %s",
		       hex, searched(v), bkr_repo_tier_count(v->r) ? ": is the right disk mounted at each tier?" : "",
		       hi - lo, hi - lo == 1 ? "y" : "ies", hi - lo == 1 ? "is" : "are", v->ifiles_said,
		       hi - lo == 1 ? "it" : "them", v->nifiles == 1 ? "that file" : "those files");
		for (size_t i = lo; i < hi && err == 0; i++)
			err = mark_entry_as(v, &v->ents[i], true);
	}
	return err;
}

static int cmp_loose(const void *a, const void *b)
{
	return bkr_id_cmp(&((const struct loose *)a)->id, &((const struct loose *)b)->id);
}

/* The unindexed pack holding blob @p id, counting the blob as used; NULL if none. */
static const struct unindexed *loose_pack(struct verify *v, const bkr_id *id)
{
	struct loose key = { *id, 0 }, *l;
	struct unindexed *u;
	if (!v->nloose || bkr_idset_has(&v->recorded, id) ||
	    !(l = bsearch(&key, v->loose, v->nloose, sizeof(*l), cmp_loose)))
		return NULL; /* a recorded damaged copy does not make its pack worth keeping */
	u = &v->unx[l->pack];
	if (bkr_idset_add(&v->loose_used, id) > 0)
		u->used++;
	return u;
}

#define NOT_CHECKED "not checked"

/* A blob that is @p what (not in the index) while a pack the index does not
 * name could not be read: it may be there, so it is not missing but not
 * checked (an I/O error, never damage); in v->why. */
static const char *unindexed_unread(struct verify *v, const char *what)
{
	char more[64] = "";
	if (v->nunx_unread > 1)
		snprintf(more, sizeof(more), " (or one of %zu more)", v->nunx_unread - 1);
	return set_why(v, NOT_CHECKED " (out of memory formatting why)",
		       NOT_CHECKED ": %s, it may be in %s%s, a pack the index does not name that "
		       "could not be read (an I/O error, not damage: check the disk, then run verify again)",
		       what, v->unx_unread, more);
}

/* Why a blob a backup uses (as @p type) cannot be read, in v->why; NULL when it can. */
static const char *blob_problem(struct verify *v, const bkr_id *id, bkr_blob_type type)
{
	bkr_index_entry e;
	const struct unindexed *u;
	if (bkr_idset_has(&v->damaged, id)) {
		if ((u = loose_pack(v, id))) {
			return set_why(v, "damaged (out of memory naming where another copy is)",
				       "damaged (another copy is in %s, which the index does not name)", u->path);
		}
		if (bkr_idset_has(&v->lost, id)) {
			return set_why(v, "missing (out of memory naming where its pack was searched)",
				       "missing: its pack is in none of %s%s", searched(v),
				       bkr_repo_tier_count(v->r) ? " (is the right disk mounted at each tier?)" : "");
		}
		return "damaged";
	}
	if (bkr_repo_lookup(v->r, id, &e) == 0) {
		if (e.type == type)
			return NULL;
		return set_why(v, "indexed as another type of blob (out of memory naming it)", "indexed as a %s blob",
			       type_name(e.type));
	}
	bkr_error_clear();
	if ((u = loose_pack(v, id))) {
		return set_why(v, "missing from the index (out of memory naming the pack it is in)",
			       "missing from the index (it is in %s, which the index does not name)", u->path);
	}
	if (bkr_idset_has(&v->recorded, id))
		return "damaged (bkr repair took it out of the index: the next backup of a source that still has "
		       "these bytes stores them again)";
	if (v->nunx_unread)
		return unindexed_unread(v, "not in the index");
	return "missing from the index";
}

/* The kind of a file whose blob is @p why (blob_problem's answer). */
static bkr_verify_kind file_kind(const char *why)
{
	if (!strncmp(why, "damaged", 7))
		return BKR_VERIFY_DAMAGED_FILE;
	if (!strncmp(why, NOT_CHECKED, strlen(NOT_CHECKED)))
		return BKR_VERIFY_IO;
	return BKR_VERIFY_MISSING;
}

/* Tree @p id at @p path of backup @p m failed to load (@p msg says why):
 * report it; a copy in an unindexed pack counts as used. */
static void bad_tree(struct verify *v, const bkr_manifest *m, const bkr_id *id, const char *path, const char *msg)
{
	bkr_index_entry e;
	const struct unindexed *u = NULL;
	char hex[BKR_ID_HEX], *own = strdup(msg); /* whole: the lookup below sets the error slot @p msg may be */
	msg = own ? own : OOM_MESSAGE;
	v->walk_incomplete = true;
	bkr_id_to_hex(id, hex);
	bool unindexed = bkr_repo_lookup(v->r, id, &e) < 0;
	if (unindexed)
		u = loose_pack(v, id);
	bkr_error_clear();
	if (unindexed && !u && !bkr_idset_has(&v->recorded, id) && v->nunx_unread)
		REPORT_UNCHECKED(v, hex, m->backup_id, path, "%sblob %s is %s: nothing below it checked",
				 strcmp(path, "/") ? "" : "root tree: ", hex, unindexed_unread(v, "not in the index"));
	else if (u)
		report(v, BKR_VERIFY_TREE, hex, m->backup_id, path, "%s%s (it is in %s, which the index does not name)",
		       strcmp(path, "/") ? "" : "root tree: ", msg, u->path);
	else
		report(v, BKR_VERIFY_TREE, hex, m->backup_id, path, "%s%s", strcmp(path, "/") ? "" : "root tree: ", msg);
	free(own);
}

/* The blob of a recovery run's report (not an entry of its tree). */
static void check_report(struct verify *v, const bkr_manifest *m)
{
	const char *why;
	char hex[BKR_ID_HEX];

	if (bkr_id_is_zero(&m->report) || !(why = blob_problem(v, &m->report, BKR_BLOB_DATA)))
		return;
	bkr_id_to_hex(&m->report, hex);
	v->derived = file_kind(why) == BKR_VERIFY_IO; /* not checked: counted apart from io_errors */
	report(v, file_kind(why), hex, m->backup_id, "report.json", "the run's report: blob %s is %s", hex, why);
	v->derived = false;
}

/* Every tree and file of backup or recovery run @p m (a run's report too). */
static int walk_backup(struct verify *v, const bkr_manifest *m)
{
	bkr_walk *w = NULL;
	const bkr_walk_item *it;
	char hex[BKR_ID_HEX];
	int err;

	v->in_run = m->type == BKR_BACKUP_RECOVERY;
	if (v->in_run) {
		v->st->runs++;
		check_report(v, m);
		if (bkr_id_is_zero(&m->tree))
			return 0; /* nothing was recovered: no tree */
	} else {
		v->st->backups++;
	}
	if ((err = bkr_walk_new(&w, v->r, &m->tree, NULL, 0)) < 0) {
		if (err == BKR_EIO) {
			v->walk_incomplete = true;
			unread_tree(v, &m->tree, m->backup_id, "/", bkr_error_message(),
				    "root tree: nothing in it checked");
			return 0;
		}
		if (bkr_error_not_damage(err))
			return err;
		bad_tree(v, m, &m->tree, "/", bkr_error_message());
		return 0;
	}
	while ((err = bkr_walk_next(w, &it)) > 0) {
		if (it->entry.type == BKR_FT_DIR) {
			v->st->trees++;
			if (it->error == BKR_EIO) {
				v->walk_incomplete = true;
				unread_tree(v, &it->entry.subtree, m->backup_id, it->path, bkr_walk_error_message(w),
					    "directory tree: nothing below it checked");
				continue;
			}
			if (it->error < 0 && bkr_error_not_damage(it->error)) {
				err = bkr_error_set(it->error, "%s", bkr_walk_error_message(w));
				break;
			}
			if (it->error < 0)
				bad_tree(v, m, &it->entry.subtree, it->path, bkr_walk_error_message(w));
			continue;
		}
		if (it->entry.type != BKR_FT_FILE)
			continue;
		v->st->files++;
		bkr_chunk_ref *chunks = NULL;
		bkr_xattr *xs = NULL;
		size_t nc = 0, nx = 0;
		const char *why = NULL;
		const bkr_id *bad = NULL;
		if ((err = bkr_tree_chunks(it->leaf, it->li, &chunks, &nc)) < 0 ||
		    (err = bkr_tree_xattrs(it->leaf, it->li, &xs, &nx)) < 0) {
			free(chunks);
			break;
		}
		for (size_t i = 0; i < nc && !bad; i++)
			if ((why = blob_problem(v, &chunks[i].id, BKR_BLOB_DATA)))
				bad = &chunks[i].id;
		for (size_t i = 0; i < nx && !bad; i++)
			if (xs[i].in_blob && (why = blob_problem(v, &xs[i].blob, BKR_BLOB_DATA)))
				bad = &xs[i].blob;
		if (bad) {
			bkr_id_to_hex(bad, hex);
			v->derived = file_kind(why) == BKR_VERIFY_IO; /* not checked: counted apart from io_errors */
			report(v, file_kind(why), hex, m->backup_id, it->path, "chunk %s is %s", hex, why);
			v->derived = false;
		}
		free(chunks);
		free(xs);
	}
	bkr_walk_free(w);
	return err < 0 ? err : 0;
}

/* After the walk: unindexed packs holding blobs backups use must be kept. */
static void judge_unindexed(struct verify *v)
{
	for (size_t i = 0; i < v->nunx; i++) {
		const struct unindexed *u = &v->unx[i];
		if (u->used)
			report(v, BKR_VERIFY_PACK, u->path, NULL, NULL,
			       "%s: not in the index, but %zu of its %zu blob%s are used by backups or recovery runs and found "
			       "nowhere else: "
			       "keep this pack, it may be the only copy. An index file was lost or damaged: "
			       "run 'bkr repair' to rebuild the index from the packs",
			       u->path, u->used, u->blobs, u->blobs == 1 ? "" : "s");
		else if (v->walk_incomplete)
			report(v, BKR_VERIFY_PACK, u->path, NULL, NULL,
			       "%s: not in the index, and some trees of the backups or runs could not be read, so its %zu blob%s "
			       "may be their only copy: keep this pack. If an index file was lost or damaged, run "
			       "'bkr repair' to rebuild the index from the packs",
			       u->path, u->blobs, u->blobs == 1 ? "" : "s");
		else if (v->o->backup)
			report(v, BKR_VERIFY_LEFTOVER, u->path, NULL, NULL,
			       "%s: pack not referenced by the index, nor by %s (the other backups and runs were not checked)",
			       u->path, v->o->backup);
		else
			report(v, BKR_VERIFY_LEFTOVER, u->path, NULL, NULL,
			       "%s: pack not referenced by the index nor by any backup or recovery run, left by %s, or by a "
			       "'bkr repair' that took its damaged blobs out of the index", u->path, leftover_by(v));
	}
}

/* What o->record says about this run (@p err: its outcome). */
static int fill_record(struct verify *v, int err, int64_t t0)
{
	bkr_verify_record *rec = v->o->record;
	char host[256];
	const char *msg = err < 0 && err != BKR_ECORRUPT ? bkr_error_message() : NULL;

	memset(rec, 0, sizeof(*rec));
	rec->time_ns = bkr_time_now_ns();
	rec->duration_s = (double)(bkr_clock_mono_ns() - t0) / 1e9;
	rec->read_data = v->o->read_data;
	rec->stats = *v->st;
	rec->damaged_files = v->damaged_files;
	rec->result = err == 0 ? BKR_VERIFY_RESULT_OK : err == BKR_ECORRUPT ? BKR_VERIFY_RESULT_PROBLEMS
									   : BKR_VERIFY_RESULT_FAILED;
	bkr_host_name(host, sizeof(host), NULL);
	/* the backup checked by its full id (not "latest" or a prefix): a later
	 * health or mount matches it against the backups */
	if (!(rec->host = strdup(host)) ||
	    (v->o->backup && !(rec->backup_id = strdup(v->one_id ? v->one_id : v->o->backup))) ||
	    (msg && !(rec->message = strdup(msg))))
		return BKR_ENOMEM;
	rec->damaged = v->dlist;
	rec->ndamaged = v->ndlist;
	v->dlist = NULL;
	rec->damaged_backups = v->dbackups;
	rec->ndamaged_backups = v->ndbackups;
	rec->damaged_backups_omitted = v->dbackups_lost;
	v->dbackups = NULL;
	v->ndbackups = 0;
	return 0;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Note the name of each record read at the start (a damage record made later,
 * after this run read the copies of its blobs, is not this run's to resolve). */
static int note_record_name(void *ctx, const char *path, const char *text, size_t len)
{
	struct verify *v = ctx;
	const char *base = strrchr(path, '/');
	(void)text;
	(void)len;
	if (bkr_array_grow((void **)&v->seen_records, &v->cap_seen_records, v->nseen_records,
			   sizeof(*v->seen_records)) < 0 ||
	    !(v->seen_records[v->nseen_records] = strdup(base ? base + 1 : path)))
		return BKR_ENOMEM;
	v->nseen_records++;
	return 0;
}

/* A blob a damage record names that this run did not find whole in every
 * copy: damaged through the index, a copy outside it failed or was not read,
 * or one recorded after this run read the records (its copies not read). */
static bool still_damaged(void *ctx, const bkr_id *id)
{
	struct verify *v = ctx;
	return !bkr_idset_has(&v->recorded, id) || bkr_idset_has(&v->listed, id) || bkr_idset_has(&v->copy_bad, id);
}

/*
 * After a whole verify --read-data that read every pack's footer and every
 * copy of the recorded blobs (no I/O error): the damage records whose every
 * blob read whole in every copy any pack holds are resolved, as repair
 * resolves them, and move into the trash, so that health and repair stop
 * reporting damage that is no longer there (a bad read that reads again, a
 * pack put back from a copy).  Verify records stay: they are history, and a
 * later verify supersedes them.  Under the shared lock, so that no repair or
 * prune runs meanwhile; when an exclusive command holds it, or the lock cannot
 * be taken (a read-only repository), the records stay for a later run.  A
 * move that fails is said (not an error: the check itself is complete).
 */
static int resolve_damage(struct verify *v)
{
	bkr_lock *lock = NULL;
	bkr_store *s = NULL;
	char **names = NULL;
	size_t n = 0, w = 0;
	int err;

	if (!v->recorded.n)
		return 0; /* no record names a damaged blob */
	if ((err = bkr_damage_records_resolved(v->r, still_damaged, v, &names, &n)) < 0)
		goto done;
	/* only the records read at the start (one made since names damage this
	 * run may have read before it); one a repair moved meanwhile is passed
	 * over (bkr_trash_move) */
	for (size_t i = 0; i < n; i++) {
		const char *base = strrchr(names[i], '/');
		base = base ? base + 1 : names[i];
		if (bsearch(&base, v->seen_records, v->nseen_records, sizeof(*v->seen_records), cmp_str))
			names[w++] = names[i];
		else
			free(names[i]);
	}
	n = w;
	/* the lock only when there is something to move (on S3 it is an object) */
	if (!n)
		goto done;
	if (bkr_repo_lock(v->r, BKR_LOCK_SHARED, false, &lock) < 0) {
		bkr_error_clear();
		goto done;
	}
	if ((err = bkr_trash_repo_store(v->r, &s)) == 0 &&
	    (err = bkr_trash_move(s, (const char *const *)names, n, bkr_time_now_ns())) == 0)
		v->st->damage_records_resolved = n;
done:
	if (err < 0 && err != BKR_ENOMEM && v->o->report) {
		char *msg = NULL;
		bkr_verify_problem p = { BKR_VERIFY_RECORD, false, n ? names[0] : "records/", NULL, NULL, NULL, false };
		int k;
		if (n)
			k = asprintf(&msg, "%zu damage record%s resolved (every copy of %s blobs reads), "
				 "but not moved into the trash: %s", n, n == 1 ? "" : "s", n == 1 ? "its" : "their",
				 bkr_error_message());
		else
			k = asprintf(&msg, "the damage records could not be read again to resolve them: %s",
				     bkr_error_message());
		p.message = k < 0 ? OOM_MESSAGE : msg;
		v->o->report(v->o->report_ctx, &p);
		if (k >= 0)
			free(msg);
	}
	if (err != BKR_ENOMEM) {
		bkr_error_clear();
		err = 0;
	}
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	bkr_store_free(s);
	bkr_lock_release(lock);
	return err;
}

static int note_recorded(void *ctx, const bkr_id *ids, size_t n, uint64_t omitted)
{
	struct verify *v = ctx;
	(void)omitted;
	for (size_t i = 0; i < n; i++)
		if (bkr_idset_add(&v->recorded, &ids[i]) < 0)
			return BKR_ENOMEM;
	return 0;
}

int bkr_verify_run(bkr_repo *r, const bkr_verify_options *o, bkr_verify_stats *stats)
{
	struct verify v = { .r = r, .o = o, .st = stats, .writing = -1 };
	int64_t t0 = bkr_clock_mono_ns();
	bkr_manifest_list l = { 0 }, runs = { 0 };
	bkr_manifest *one = NULL;
	bkr_records *records = NULL;
	bool packs_read = false;
	int err;

	memset(stats, 0, sizeof(*stats));
	/* a tier that is not there would make its packs look lost: say so once;
	 * a damaged or another repository's tier.json is a problem found */
	if ((err = bkr_tier_check(r)) < 0) {
		if (err != BKR_ECORRUPT && err != BKR_EINVAL)
			return err;
		report(&v, BKR_VERIFY_CONFIG, "tier.json", NULL, NULL, "%s", bkr_error_message());
		err = bkr_error_set(BKR_ECORRUPT, "verify found 1 problem");
		goto done; /* recorded like every other finding */
	}
	if (o->read_data && (!(v.buf = malloc(BKR_BLOB_MAX)) || !(v.win = malloc(WINDOW_MAX)))) {
		free(v.buf);
		return bkr_error_oom();
	}
	/* the backups first, then the index: one that committed after the open
	 * published its index files before its manifest, so every backup listed
	 * here is in the index loaded after (never 'missing from the index') */
	/* records/ read once: for the backups, the runs and the earlier verify results */
	if ((err = bkr_repo_records_read(r, &records)) < 0 ||
	    (err = bkr_repo_list_with(r, records, false, &l, on_bad_manifest, on_unread_manifest, &v)) < 0 ||
	    (err = bkr_repo_list_with(r, records, true, &runs, on_bad_run_manifest, on_unread_run_manifest, &v)) < 0 ||
	    (err = bkr_damaged_blobs_foreach_in(records, note_recorded, &v)) < 0 ||
	    (err = bkr_records_foreach(records, false, note_record_name, &v)) < 0 ||
	    (err = bkr_repo_reload_index(r)) < 0)
		goto done;
	bkr_records_foreach_damaged(records, false, on_bad_record, &v);
	if (v.nseen_records)
		qsort(v.seen_records, v.nseen_records, sizeof(*v.seen_records), cmp_str);
	bkr_records_free(records);
	records = NULL;
	bkr_repo_index_warnings(r, on_bad_index, &v);
	if ((err = check_config(&v)) < 0)
		goto done;
	/* ID: a backup, else a recovery run ("latest" is the newest backup) */
	if (o->backup && (err = bkr_repo_find_backup(r, o->backup, &one)) == BKR_ENOTFOUND &&
	    strcmp(o->backup, "latest") && (err = bkr_repo_find_run(r, o->backup, &one)) == BKR_ENOTFOUND)
		err = bkr_repo_find_backup(r, o->backup, &one); /* neither: the backup's message */
	if (err < 0)
		goto done;
	if (one)
		v.one_id = one->backup_id;
	if ((err = bkr_repo_foreach_blob(r, collect_entry, &v)) < 0)
		goto done;
	if (v.nents)
		qsort(v.ents, v.nents, sizeof(*v.ents), bkr_index_entry_cmp_pack);
	for (size_t i = 0; i < v.nents; i++) {
		if (i == 0 || bkr_pack_id_cmp(&v.ents[i].pack, &v.ents[i - 1].pack))
			v.packs_total++;
		v.bytes_total += v.ents[i].stored_len + BKR_BLOB_HEADER_SIZE;
	}
	if ((err = bkr_repo_foreach_pack(r, on_pack, &v)) < 0 || (err = check_missing(&v)) < 0)
		goto done;
	packs_read = true;
	if (v.nloose)
		qsort(v.loose, v.nloose, sizeof(*v.loose), cmp_loose);
	if (one) {
		err = walk_backup(&v, one);
	} else {
		for (size_t i = 0; i < l.n + runs.n && err == 0; i++) {
			if (o->progress)
				o->progress(o->progress_ctx, "backups", i, l.n + runs.n, 0, 0);
			err = walk_backup(&v, i < l.n ? l.items[i] : runs.items[i - l.n]);
		}
	}
	if (err == 0)
		judge_unindexed(&v);
	if (err == 0 && stats->io_errors)
		err = bkr_error_set(BKR_EIO, "%llu object%s could not be read%s: %s (%s, not damage)%s",
				    (unsigned long long)stats->io_errors, stats->io_errors == 1 ? "" : "s",
				    stats->io_errors == 1 ? "" : ", the first",
				    v.first_io ? v.first_io : OOM_MESSAGE,
				    stats->io_errors == 1 ? "an I/O error" : "I/O errors",
				    stats->errors ? "; problems were found in what was read" : "");
	else if (err == 0 && stats->errors)
		err = bkr_error_set(BKR_ECORRUPT, "verify found %llu problem%s", (unsigned long long)stats->errors,
				    stats->errors == 1 ? "" : "s");
	if ((err == 0 || err == BKR_ECORRUPT) && o->record && o->read_data && !o->backup && packs_read &&
	    !stats->io_errors && !v.copies_unknown && !v.nunx_unread) {
		int rerr;
		char *why = strdup(bkr_error_message()); /* whole: resolve_damage may set the slot */
		if (!why)
			err = bkr_error_oom();
		else if ((rerr = resolve_damage(&v)) < 0)
			err = rerr;
		else if (err < 0)
			bkr_error_set(err, "%s", why);
		free(why);
	}
done:
	if (o->record && fill_record(&v, err, t0) < 0)
		err = bkr_error_oom();
	free(v.dlist);
	for (size_t i = 0; i < v.ndbackups; i++)
		free(v.dbackups[i]);
	free(v.dbackups);
	for (size_t i = 0; i < v.nunx; i++)
		free(v.unx[i].path);
	free(v.unx);
	free(v.loose);
	free(v.ents);
	bkr_idset_free(&v.loose_used);
	bkr_idset_free(&v.recorded);
	bkr_idset_free(&v.lost);
	bkr_idset_free(&v.bad_entries);
	bkr_idset_free(&v.copy_bad);
	bkr_idset_free(&v.unread_packs);
	for (size_t i = 0; i < v.nseen_records; i++)
		free(v.seen_records[i]);
	free(v.seen_records);
	bkr_idset_free(&v.damaged);
	bkr_idset_free(&v.listed);
	bkr_idset_free(&v.checked);
	bkr_manifest_free(one);
	bkr_manifest_list_free(&l);
	bkr_manifest_list_free(&runs);
	bkr_records_free(records);
	free(v.buf);
	free(v.win);
	free(v.first_io);
	free(v.places);
	free(v.writer);
	free(v.why);
	clear_ifiles(&v);
	free(v.ifiles);
	free(v.fids);
	return err;
}
