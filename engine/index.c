/** @file
 * The blob index (docs/format.md "Index files").
 *
 * The builder collects entries in memory, sorts them by blob id, drops exact
 * duplicate ids, and publishes one immutable file named after its own SHA-256.
 * Files are objects of the storage layer (bkr/store.h) under a folder
 * ("index/"); the directory forms (bkr_index_open, bkr_index_builder_write)
 * open a local store on the directory.
 * The reader reads every index file that no other present file supersedes
 * into memory whole, validates it completely once (trailer hash, name,
 * counts, order, bounds) and then binary-searches its entries in place, so
 * opening a million blobs costs one read and one pass of hashing.  Read, not
 * mapped: a disk error in a mapped page would kill the process (a mount
 * keeps its index for as long as it runs) with SIGBUS, where a read fails
 * with an error naming the file.  A loaded index is immutable, so lookups
 * from many threads need no lock.
 */
#include "bkr/index.h"
#include "bkr/crypto.h"
#include "bkr/error.h"
#include "bkr/format.h"
#include "bkr/io.h"
#include "bkr/store.h"

#include "array.h"

#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define IDX_SUFFIX ".idx"
#define IDX_NAME_LEN (2 * BKR_ID_SIZE + 4) /* "<64 hex>.idx" */

/* what a read of an index file asks of the store at most (docs/format.md) */
#define INDEX_READ_MAX (BKR_INDEX_FILE_MAX < SIZE_MAX ? (size_t)BKR_INDEX_FILE_MAX : SIZE_MAX)
/* an index file up to this size is read whole at once, a larger one its header first (get_index) */
#define INDEX_WHOLE_AT_ONCE ((size_t)4 << 20)

/* Entry field offsets inside one 64-byte on-disk entry. */
#define E_ID 0
#define E_PACK 32
#define E_OFFSET 48
#define E_STORED 52
#define E_RAW 56
#define E_TYPE 60
#define E_FLAGS 61
#define E_RESERVED 62

/* ---- builder ------------------------------------------------------------ */

struct bkr_index_builder {
	bkr_index_entry *entries;
	size_t n, cap;
	bkr_id *supersede;
	size_t nsup, supcap;
};

int bkr_index_builder_new(bkr_index_builder **out)
{
	*out = calloc(1, sizeof(**out));
	if (!*out)
		return bkr_error_oom();
	return 0;
}

void bkr_index_builder_free(bkr_index_builder *b)
{
	if (!b)
		return;
	free(b->entries);
	free(b->supersede);
	free(b);
}

int bkr_index_builder_add(bkr_index_builder *b, const bkr_index_entry *e)
{
	int err;

	if (e->stored_len > bkr_blob_stored_max(e->flags) || e->raw_len > BKR_BLOB_MAX)
		return bkr_error_set(BKR_EINVAL, "index entry: blob length over %u", BKR_BLOB_MAX);
	if (e->type != BKR_BLOB_DATA && e->type != BKR_BLOB_TREE)
		return bkr_error_set(BKR_EINVAL, "index entry: bad blob type %u", e->type);
	if ((err = bkr_array_grow((void **)&b->entries, &b->cap, b->n, sizeof(*b->entries))) < 0)
		return err;
	b->entries[b->n++] = *e;
	return 0;
}

int bkr_index_builder_supersede(bkr_index_builder *b, const bkr_id *old)
{
	int err;

	for (size_t i = 0; i < b->nsup; i++)
		if (bkr_id_cmp(&b->supersede[i], old) == 0)
			return 0;
	if ((err = bkr_array_grow((void **)&b->supersede, &b->supcap, b->nsup, sizeof(*b->supersede))) < 0)
		return err;
	b->supersede[b->nsup++] = *old;
	return 0;
}

size_t bkr_index_builder_count(const bkr_index_builder *b)
{
	return b->n;
}

static int entry_cmp(const void *a, const void *b)
{
	return bkr_id_cmp(&((const bkr_index_entry *)a)->id, &((const bkr_index_entry *)b)->id);
}

static void encode_entry(uint8_t *p, const bkr_index_entry *e)
{
	memcpy(p + E_ID, e->id.b, BKR_ID_SIZE);
	memcpy(p + E_PACK, e->pack.b, BKR_PACK_ID_SIZE);
	bkr_put_u32(p + E_OFFSET, e->offset);
	bkr_put_u32(p + E_STORED, e->stored_len);
	bkr_put_u32(p + E_RAW, e->raw_len);
	p[E_TYPE] = e->type;
	p[E_FLAGS] = e->flags;
	bkr_put_u16(p + E_RESERVED, 0);
}

static void decode_entry(const uint8_t *p, bkr_index_entry *e)
{
	memcpy(e->id.b, p + E_ID, BKR_ID_SIZE);
	memcpy(e->pack.b, p + E_PACK, BKR_PACK_ID_SIZE);
	e->offset = bkr_get_u32(p + E_OFFSET);
	e->stored_len = bkr_get_u32(p + E_STORED);
	e->raw_len = bkr_get_u32(p + E_RAW);
	e->type = p[E_TYPE];
	e->flags = p[E_FLAGS];
}

static void index_file_name(const bkr_id *id, char out[IDX_NAME_LEN + 1])
{
	bkr_id_to_hex(id, out);
	memcpy(out + 2 * BKR_ID_SIZE, IDX_SUFFIX, sizeof(IDX_SUFFIX));
}

/* "<prefix><name>" into @p out (PATH_MAX). */
static int object_name(char *out, const char *prefix, const char *name)
{
	if (snprintf(out, PATH_MAX, "%s%s", prefix, name) >= PATH_MAX)
		return bkr_error_set(BKR_EINVAL, "name too long: %s%s", prefix, name);
	return 0;
}

/* Entries and superseded ids of one file written (the format's limits; tests lower them). */
static size_t index_entries_max = BKR_INDEX_ENTRIES_MAX;
static size_t index_superseded_max = BKR_INDEX_SUPERSEDED_MAX;

void bkr_index_set_file_limits(size_t entries, size_t superseded)
{
	index_entries_max = entries && entries < BKR_INDEX_ENTRIES_MAX ? entries : BKR_INDEX_ENTRIES_MAX;
	index_superseded_max = superseded && superseded < BKR_INDEX_SUPERSEDED_MAX ? superseded
										   : BKR_INDEX_SUPERSEDED_MAX;
}

/* 0 when object @p obj of @p s holds the @p len bytes of @p buf; BKR_EEXISTS naming it when it holds
 * others or does not read as an object (damaged: it holds the name, not the index file); a read that
 * fails otherwise (an I/O error) is that error. */
static int same_bytes(bkr_store *s, const char *obj, const uint8_t *buf, size_t len)
{
	char path[PATH_MAX];
	bkr_store_view v;
	int err = bkr_store_view_get(s, obj, len, &v);

	if (err == 0 && v.len == len && !memcmp(v.data, buf, len)) {
		bkr_store_view_release(&v);
		return 0;
	}
	bkr_store_view_release(&v);
	if (err < 0 && err != BKR_ECORRUPT)
		return err;
	bkr_error_clear();
	if (bkr_store_describe(s, obj, path, sizeof(path)) < 0)
		snprintf(path, sizeof(path), "%s", obj);
	return bkr_error_set(BKR_EEXISTS, "%s: the name of this index file is taken by a damaged one: not replaced", path);
}

/*
 * One index file of @p n entries superseding @p nsup files, published as
 * "<prefix><hex>.idx"; *id gets its id.
 */
static int publish_file(const bkr_index_entry *entries, size_t n, const bkr_id *sup, size_t nsup, bkr_store *s,
			const char *prefix, bkr_id *id)
{
	char name[IDX_NAME_LEN + 1], obj[PATH_MAX];
	size_t len = BKR_INDEX_HEADER_SIZE + nsup * BKR_ID_SIZE + n * BKR_INDEX_ENTRY_SIZE + BKR_ID_SIZE;
	uint8_t *buf, *p;
	int err;

	if (!(buf = malloc(len)))
		return bkr_error_oom();
	memcpy(buf, BKR_INDEX_MAGIC, 8);
	bkr_put_u32(buf + 8, BKR_INDEX_VERSION);
	bkr_put_u32(buf + 12, 0);
	bkr_put_u64(buf + 16, n);
	bkr_put_u32(buf + 24, (uint32_t)nsup);
	bkr_put_u32(buf + 28, 0);
	p = buf + BKR_INDEX_HEADER_SIZE;
	for (size_t i = 0; i < nsup; i++, p += BKR_ID_SIZE)
		memcpy(p, sup[i].b, BKR_ID_SIZE);
	for (size_t i = 0; i < n; i++, p += BKR_INDEX_ENTRY_SIZE)
		encode_entry(p, &entries[i]);
	bkr_sha256(buf, len - BKR_ID_SIZE, id);
	memcpy(p, id->b, BKR_ID_SIZE);
	bkr_sha256(buf, len, id);
	index_file_name(id, name);

	if ((err = object_name(obj, prefix, name)) == 0) {
		err = bkr_store_put(s, obj, buf, len);
		if (err == BKR_EEXISTS) {
			/* Same name = same bytes (the name is the hash): already published, unless what holds
			 * the name is damaged (a flipped bit, a FIFO): then the entries are in no index file */
			bkr_error_clear();
			err = same_bytes(s, obj, buf, len);
		}
	}
	free(buf);
	return err;
}

int bkr_index_builder_publish(bkr_index_builder *b, bkr_store *s, const char *prefix, bkr_id *file_id)
{
	char name[IDX_NAME_LEN + 1], obj[PATH_MAX];
	size_t n = 0, e_max = index_entries_max, s_max = index_superseded_max;
	int err = 0;

	memset(file_id, 0, sizeof(*file_id));
	if (b->n > 1)
		qsort(b->entries, b->n, sizeof(*b->entries), entry_cmp);
	/* Drop exact duplicate ids in place: any copy of a blob will do. */
	for (size_t i = 0; i < b->n; i++)
		if (n == 0 || bkr_id_cmp(&b->entries[n - 1].id, &b->entries[i].id) != 0)
			b->entries[n++] = b->entries[i];
	b->n = n;

	/*
	 * Readers refuse files over BKR_INDEX_FILE_MAX, 4 × the largest one
	 * written here, so more entries or superseded files than one file holds
	 * are written as several: first the entries in files that supersede
	 * nothing, then the superseded list in the last ones.  Until the last
	 * is durable the old files stay live beside the new (the same blobs
	 * named twice, which readers take either of): a crash loses nothing.
	 */
	size_t done_e = 0, done_s = 0;
	do {
		size_t ne = n - done_e > e_max ? e_max : n - done_e;
		size_t ns = 0;
		if (done_e + ne == n)
			ns = b->nsup - done_s > s_max ? s_max : b->nsup - done_s;
		/* (an empty builder's arrays are NULL: no offset added to them) */
		if ((err = publish_file(ne ? b->entries + done_e : NULL, ne, ns ? b->supersede + done_s : NULL, ns, s,
					prefix, file_id)) < 0)
			return err;
		done_e += ne;
		done_s += ns;
	} while (done_e < n || done_s < b->nsup);

	/*
	 * The new files are durable; now the old ones may go.  A failure here is
	 * harmless (readers skip superseded files), so it is not reported.
	 */
	for (size_t i = 0; i < b->nsup; i++) {
		index_file_name(&b->supersede[i], name);
		if (object_name(obj, prefix, name) == 0)
			(void)bkr_store_delete(s, obj);
	}
	bkr_error_clear();
	return 0;
}

/* ---- reader ------------------------------------------------------------- */

/** One validated index file, read whole. */
struct idx_file {
	bkr_store_view view;    /**< the whole file, read-only */
	const uint8_t *entries; /**< count × 64 bytes inside view */
	uint64_t count;
};

struct bkr_index {
	struct idx_file *files;
	bkr_id *ids;            /**< ids of files, same order */
	size_t n, cap;
	uint64_t total;
	char **skipped;         /**< one line per damaged file left out */
	size_t nskipped, capskipped;
	bkr_id *stale;          /**< files present but superseded by a present file */
	size_t nstale, capstale;
	char **listed; /**< "name\0stamp" of every index file the load listed, by name; NULL: unknown */
	size_t nlisted;
};

static int index_new(bkr_index **out)
{
	*out = calloc(1, sizeof(**out));
	return *out ? 0 : bkr_error_oom();
}

void bkr_index_free(bkr_index *idx)
{
	if (!idx)
		return;
	for (size_t i = 0; i < idx->n; i++)
		bkr_store_view_release(&idx->files[i].view);
	for (size_t i = 0; i < idx->nskipped; i++)
		free(idx->skipped[i]);
	free(idx->skipped);
	for (size_t i = 0; i < idx->nlisted; i++)
		free(idx->listed[i]);
	free(idx->listed);
	free(idx->files);
	free(idx->ids);
	free(idx->stale);
	free(idx);
}

/**
 * Check the fixed header of a file of @p size bytes and compute where the
 * parts lie.  Everything is bounded against @p size with overflow checks.
 */
static int check_header(const uint8_t *h, uint64_t size, const char *path,
			uint32_t *nsup, uint64_t *count)
{
	uint64_t n, s, room;

	if (size < BKR_INDEX_HEADER_SIZE + BKR_ID_SIZE)
		return bkr_error_set(BKR_ECORRUPT, "%s: truncated (%llu bytes, smaller than header and trailer)",
				     path, (unsigned long long)size);
	if (memcmp(h, BKR_INDEX_MAGIC, 8) != 0)
		return bkr_error_set(BKR_ECORRUPT, "%s: bad magic, not an index file", path);
	if (bkr_get_u32(h + 8) != BKR_INDEX_VERSION)
		return bkr_error_set(BKR_EUNSUPPORTED, "%s: unsupported index version %u",
				     path, bkr_get_u32(h + 8));
	if (bkr_get_u32(h + 12) != 0)
		return bkr_error_set(BKR_EUNSUPPORTED, "%s: unknown index flags 0x%x",
				     path, bkr_get_u32(h + 12));
	n = bkr_get_u64(h + 16);
	s = bkr_get_u32(h + 24);
	room = size - BKR_INDEX_HEADER_SIZE - BKR_ID_SIZE;
	if (s > room / BKR_ID_SIZE || n > (room - s * BKR_ID_SIZE) / BKR_INDEX_ENTRY_SIZE ||
	    s * BKR_ID_SIZE + n * BKR_INDEX_ENTRY_SIZE != room)
		return bkr_error_set(BKR_ECORRUPT,
				     "%s: header counts (%llu entries, %llu superseded) do not match the file size %llu",
				     path, (unsigned long long)n, (unsigned long long)s,
				     (unsigned long long)size);
	*nsup = (uint32_t)s;
	*count = n;
	return 0;
}

/** The base name of @p path must be "<hex of @p id>.idx". */
static int check_name(const char *path, const bkr_id *id)
{
	const char *base = strrchr(path, '/');
	char want[IDX_NAME_LEN + 1];

	base = base ? base + 1 : path;
	index_file_name(id, want);
	if (strcmp(base, want) != 0)
		return bkr_error_set(BKR_ECORRUPT, "%s: file name does not match its hash %.64s",
				     path, want);
	return 0;
}

/**
 * The SHA-256 of the first size-32 bytes (*trailer) and of the whole file
 * (*whole) in one pass: hash the body, copy the state, finish one copy for
 * the trailer and feed the trailer bytes to the other.
 */
static int hash_both(const uint8_t *data, size_t size, bkr_id *trailer, bkr_id *whole)
{
	bkr_hash_ctx *body = bkr_hash_new(), *all = bkr_hash_new();
	int err = 0;

	if (!body || !all) {
		err = bkr_error_oom();
		goto done;
	}
	bkr_hash_update(body, data, size - BKR_ID_SIZE);
	if ((err = bkr_hash_copy(all, body)) < 0)
		goto done;
	bkr_hash_final(body, trailer);
	bkr_hash_update(all, data + size - BKR_ID_SIZE, BKR_ID_SIZE);
	bkr_hash_final(all, whole);
done:
	bkr_hash_free(body);
	bkr_hash_free(all);
	return err;
}

/* The refusal of sealed index file @p path in a repository that says it is not encrypted (*@p sealed set). */
static int sealed_refusal(const char *path, unsigned flags, bool *sealed)
{
	*sealed = true;
	return bkr_error_set(BKR_ECORRUPT,
			     "%s is sealed (encrypted), but %s says the repository is not encrypted: "
			     "it was altered; refusing to use it",
			     path, (flags & BKR_INDEX_CONFIG_COPY) ? BKR_CONFIG_COPY_SAID : "config.json");
}

/*
 * Index file @p name of @p s (@p path in messages) read whole into @p v.  One
 * of up to INDEX_WHOLE_AT_ONCE bytes is read at once (one read, one GET, as
 * before); a larger one is judged before its body is read, so that garbage
 * (a sparse file of 4 GB) costs neither its size in memory nor the time to
 * read it: a plain one by its header (magic, version, flags, and the size its
 * counts declare against the object's), read with a ranged read of its first
 * bytes; a sealed one, which GCM opens only whole, by its size (a header,
 * 32-byte ids, 64-byte entries and a trailer).  A refusal is BKR_ECORRUPT or
 * BKR_EUNSUPPORTED naming @p path, as check_header says it of a whole file.
 */
static int get_index(bkr_store *s, const char *name, const char *path, unsigned flags, bkr_store_view *v, bool *sealed)
{
	uint8_t h[BKR_INDEX_HEADER_SIZE];
	uint64_t size, count;
	uint32_t nsup;
	int err = bkr_store_view_get(s, name, INDEX_WHOLE_AT_ONCE, v);

	if (err != BKR_ECORRUPT)
		return err; /* read, or a read that failed (not found, an I/O error) */
	/* "too large" for one read, or damaged (unsealing failed): its size tells */
	if ((err = bkr_store_stat(s, name, &size)) < 0)
		return err;
	if (size > INDEX_WHOLE_AT_ONCE && size <= INDEX_READ_MAX) {
		if (bkr_store_reads_whole(s, name)) {
			if (size < BKR_INDEX_HEADER_SIZE + BKR_ID_SIZE ||
			    (size - BKR_INDEX_HEADER_SIZE - BKR_ID_SIZE) % BKR_ID_SIZE)
				return bkr_error_set(BKR_ECORRUPT, "%s: %llu bytes once opened, not the size of an index "
						     "file (a header, 32-byte ids, 64-byte entries and a trailer)",
						     path, (unsigned long long)size);
		} else {
			if ((err = bkr_store_get_range(s, name, 0, sizeof(h), h, 0)) < 0)
				return err;
			if (!memcmp(h, BKR_SEALED_MAGIC, BKR_SEALED_MAGIC_SIZE))
				return sealed_refusal(path, flags, sealed);
			if ((err = check_header(h, size, path, &nsup, &count)) < 0)
				return err;
		}
	}
	/* larger than any index file: refused before it is read; small: its damage said again */
	return bkr_store_view_get(s, name, INDEX_READ_MAX, v);
}

/*
 * Read index file @p name of @p s (or take the bytes already in @p read, when
 * not NULL and filled: the view is taken), validate all of it, and append it to @p idx.  *@p sealed is set when it is an encrypted
 * repository's (the sealed magic): the store would have unsealed it, so the
 * repository's config.json says "none" and was altered - never skipped as
 * merely damaged (with BKR_INDEX_CONFIG_COPY in @p flags the message names
 * config.copy.json, which was read instead).
 */
static int load_file(bkr_index *idx, bkr_store *s, const char *name, unsigned flags, bkr_store_view *read,
		     bool *sealed)
{
	char path[PATH_MAX];
	bkr_store_view v = { 0 };
	uint64_t count = 0;
	uint32_t nsup = 0;
	const uint8_t *ents;
	bkr_id h, th;
	int err = 0;

	if ((err = bkr_store_describe(s, name, path, sizeof(path))) < 0)
		return err;
	if ((err = bkr_io_fault("index-read")) < 0) {
		bkr_error_prefix("read %s", path); /* as a real failure here names the file */
		return err;
	}
	if (read && read->data) {
		v = *read;
		memset(read, 0, sizeof(*read));
	} else if ((err = get_index(s, name, path, flags, &v, sealed)) < 0) {
		/* one larger than any the writer writes, or whose header is bad, is damaged: refused before
		 * its body is read */
		return err;
	}
	if (v.len >= BKR_SEALED_MAGIC_SIZE && !memcmp(v.data, BKR_SEALED_MAGIC, BKR_SEALED_MAGIC_SIZE)) {
		err = sealed_refusal(path, flags, sealed);
		goto done;
	}
	if ((err = check_header(v.data, v.len, path, &nsup, &count)) < 0)
		goto done;
	ents = v.data + BKR_INDEX_HEADER_SIZE + (size_t)nsup * BKR_ID_SIZE;
	for (uint64_t i = 0; i < count; i++) {
		const uint8_t *e = ents + i * BKR_INDEX_ENTRY_SIZE;
		if (i > 0 && memcmp(e - BKR_INDEX_ENTRY_SIZE, e, BKR_ID_SIZE) > 0) {
			err = bkr_error_set(BKR_ECORRUPT, "%s: entry %llu is out of order",
					    path, (unsigned long long)i);
			goto done;
		}
		if (bkr_get_u32(e + E_STORED) > bkr_blob_stored_max(e[E_FLAGS]) || bkr_get_u32(e + E_RAW) > BKR_BLOB_MAX) {
			err = bkr_error_set(BKR_ECORRUPT, "%s: entry %llu: blob length over %u",
					    path, (unsigned long long)i, BKR_BLOB_MAX);
			goto done;
		}
		if (e[E_TYPE] != BKR_BLOB_DATA && e[E_TYPE] != BKR_BLOB_TREE) {
			err = bkr_error_set(BKR_ECORRUPT, "%s: entry %llu: bad blob type %u",
					    path, (unsigned long long)i, e[E_TYPE]);
			goto done;
		}
	}
	/* hashed after the cheap checks: garbage (a sparse file's zeros) fails at its first entry */
	if ((err = hash_both(v.data, v.len, &th, &h)) < 0)
		goto done;
	if (memcmp(th.b, v.data + v.len - BKR_ID_SIZE, BKR_ID_SIZE) != 0) {
		err = bkr_error_set(BKR_ECORRUPT, "%s: trailer checksum mismatch", path);
		goto done;
	}
	if ((err = check_name(path, &h)) < 0)
		goto done;
	if ((err = bkr_array_grow((void **)&idx->files, &idx->cap, idx->n, sizeof(*idx->files))) < 0)
		goto done;
	{
		bkr_id *ids = realloc(idx->ids, idx->cap * sizeof(*ids));
		if (!ids) {
			err = bkr_error_oom();
			goto done;
		}
		idx->ids = ids;
	}
	idx->files[idx->n] = (struct idx_file){ v, ents, count };
	idx->ids[idx->n] = h;
	idx->n++;
	idx->total += count;
	memset(&v, 0, sizeof(v));
done:
	bkr_store_view_release(&v);
	return err;
}

/* A local store on the directory holding @p path; *base gets its last component. */
static int store_of_file(const char *path, bkr_store **s, const char **base)
{
	char dir[PATH_MAX];
	const char *slash = strrchr(path, '/');
	size_t n = slash ? (size_t)(slash - path) : 0;
	*s = NULL;
	*base = slash ? slash + 1 : path;
	if (n >= sizeof(dir))
		return bkr_error_set(BKR_EINVAL, "path too long: %s", path);
	if (!slash)
		memcpy(dir, ".", 2);
	else if (n == 0)
		memcpy(dir, "/", 2);
	else {
		memcpy(dir, path, n);
		dir[n] = '\0';
	}
	return bkr_store_local_open(s, dir, 0);
}

int bkr_index_open_file(bkr_index **out, const char *path)
{
	bkr_index *idx = NULL;
	bkr_store *s = NULL;
	const char *base;
	bool sealed = false;
	int err;

	*out = NULL;
	if ((err = store_of_file(path, &s, &base)) < 0 || (err = index_new(&idx)) < 0)
		goto done;
	if ((err = load_file(idx, s, base, 0, NULL, &sealed)) < 0)
		goto done;
	*out = idx;
	idx = NULL;
done:
	bkr_index_free(idx);
	bkr_store_free(s);
	return err;
}

/** A present index file during bkr_index_load. */
struct candidate {
	char name[PATH_MAX];
	bool has_id;    /**< name is "<prefix><64 hex>.idx" */
	bkr_id id;      /**< parsed from the name */
	bkr_id *sup;    /**< superseded ids read from its header (unverified) */
	uint32_t nsup;
	bkr_store_view v; /**< its bytes, read whole once for both passes */
	bool skip;
	char stamp[BKR_STORE_STAMP_MAX]; /**< the listing's (bkr_store_list_stamped) */
};

static int candidate_cmp(const void *a, const void *b)
{
	return strcmp(((const struct candidate *)a)->name, ((const struct candidate *)b)->name);
}

/**
 * Read @p c whole into c->v, kept for pass 2 (read once: a sealed file is
 * opened whole by any read, a header read too), and its superseded list; a
 * large one is judged before its body is read (get_index).  A file whose
 * header is damaged or gone is left with an empty list (if nothing
 * supersedes it, the full load reports it); a read that fails (an I/O error,
 * a server that cannot be reached) is an error: the files it supersedes must
 * not be taken for live ones.
 */
static int read_candidate(struct candidate *c, bkr_store *s)
{
	char path[PATH_MAX];
	uint64_t count;
	uint32_t nsup;
	bool sealed = false;
	int err;

	if ((err = bkr_store_describe(s, c->name, path, sizeof(path))) < 0 ||
	    (err = get_index(s, c->name, path, 0, &c->v, &sealed)) < 0 || c->v.len < BKR_INDEX_HEADER_SIZE ||
	    (err = check_header(c->v.data, c->v.len, c->name, &nsup, &count)) < 0 || nsup == 0)
		goto done;
	if (!(c->sup = malloc((size_t)nsup * sizeof(*c->sup))))
		return bkr_error_oom();
	memcpy(c->sup, c->v.data + BKR_INDEX_HEADER_SIZE, (size_t)nsup * BKR_ID_SIZE);
	c->nsup = nsup;
done:
	if (err < 0 && err != BKR_ECORRUPT && err != BKR_EUNSUPPORTED && err != BKR_ENOTFOUND)
		return err;
	bkr_error_clear();
	return 0;
}

struct listing {
	const char *prefix;
	size_t plen;
	struct candidate *cand;
	size_t n, cap;
	char **other; /**< "name\0what" of what a local store lists as no object (bkr_store_list_other) */
	size_t nother, capother;
};

/* Whether @p name (after the listing's prefix) is an index file: not a
 * ".tmp-*" or hidden file, not in a subfolder, named "*.idx". */
static bool is_index_file(const char *base)
{
	size_t len = strlen(base);
	return base[0] != '.' && !strchr(base, '/') && len >= 4 && !strcmp(base + len - 4, IDX_SUFFIX);
}

static int add_candidate(void *ctx, const char *name, const char *stamp)
{
	struct listing *l = ctx;
	const char *base = name + l->plen;
	size_t len = strlen(base);
	struct candidate *c;
	int err;

	if (!is_index_file(base))
		return 0;
	if ((err = bkr_array_grow((void **)&l->cand, &l->cap, l->n, sizeof(*l->cand))) < 0)
		return err;
	c = &l->cand[l->n++];
	memset(c, 0, sizeof(*c));
	snprintf(c->name, sizeof(c->name), "%s", name);
	snprintf(c->stamp, sizeof(c->stamp), "%s", stamp);
	if (len == IDX_NAME_LEN) {
		char hex[BKR_ID_HEX];
		memcpy(hex, base, 2 * BKR_ID_SIZE);
		hex[2 * BKR_ID_SIZE] = '\0';
		c->has_id = bkr_id_from_hex(&c->id, hex) == 0;
	}
	return 0;
}

/* Leave a damaged file out, keeping its message (the error slot's). */
static int note_skipped(bkr_index *idx)
{
	int err = bkr_array_push_str(&idx->skipped, &idx->capskipped, &idx->nskipped, bkr_error_message());
	if (err < 0)
		return err;
	bkr_error_clear();
	return 0;
}

/* "name\0stamp" of @p name into @p out (malloc'd): strcmp sees the name. */
static int listed_entry(char **out, const char *name, const char *stamp)
{
	size_t n = strlen(name), m = strlen(stamp);
	if (!(*out = malloc(n + m + 2)))
		return bkr_error_oom();
	memcpy(*out, name, n + 1);
	memcpy(*out + n + 1, stamp, m + 1);
	return 0;
}

/* Keep the sorted listing @p l in @p idx, for bkr_index_unchanged; none
 * (unknown) when a file has no stamp: the store cannot tell a change. */
static int keep_listing(bkr_index *idx, const struct listing *l)
{
	int err;
	for (size_t i = 0; i < l->n; i++)
		if (!l->cand[i].stamp[0])
			return 0;
	if (!(idx->listed = calloc(l->n + 1, sizeof(*idx->listed))))
		return bkr_error_oom();
	for (size_t i = 0; i < l->n; i++) {
		if ((err = listed_entry(&idx->listed[i], l->cand[i].name, l->cand[i].stamp)) < 0)
			return err;
		idx->nlisted++;
	}
	return 0;
}

/* An index file's name that holds no object (a local store's FIFO, socket,
 * device or symbolic link): kept with what it is, to be named (load_listed). */
static int add_other(void *ctx, const char *name, const char *what)
{
	struct listing *l = ctx;
	char *e;
	int err;

	if (!is_index_file(name + l->plen))
		return 0;
	if ((err = listed_entry(&e, name, what)) < 0)
		return err;
	if ((err = bkr_array_grow((void **)&l->other, &l->capother, l->nother, sizeof(*l->other))) < 0) {
		free(e);
		return err;
	}
	l->other[l->nother++] = e;
	return 0;
}

/* Whether index file id @p id is superseded by a present file of @p l. */
static bool superseded(const struct listing *l, const bkr_id *id)
{
	for (size_t i = 0; i < l->n; i++)
		for (uint32_t k = 0; k < l->cand[i].nsup; k++)
			if (bkr_id_cmp(&l->cand[i].sup[k], id) == 0)
				return true;
	return false;
}

/* One listing and load; *vanished when a listed file was gone by its read. */
static int load_listed(bkr_index **out, bkr_store *s, const char *prefix, unsigned flags, bool *vanished)
{
	struct listing l = { .prefix = prefix, .plen = strlen(prefix) };
	bkr_index *idx = NULL;
	int err;

	*out = NULL;
	*vanished = false;
	if ((err = index_new(&idx)) < 0)
		goto done;
	if ((err = bkr_store_list_stamped(s, prefix, add_candidate, &l)) < 0 ||
	    (err = bkr_store_list_other(s, prefix, add_other, &l)) < 0)
		goto done;
	if (l.n > 1)
		qsort(l.cand, l.n, sizeof(*l.cand), candidate_cmp);
	if ((err = keep_listing(idx, &l)) < 0)
		goto done;

	/* Pass 1: who supersedes whom. */
	for (size_t i = 0; i < l.n; i++)
		if ((err = read_candidate(&l.cand[i], s)) < 0)
			goto done;
	for (size_t i = 0; i < l.n; i++) {
		for (uint32_t k = 0; k < l.cand[i].nsup; k++) {
			for (size_t j = 0; j < l.n; j++) {
				if (j != i && l.cand[j].has_id &&
				    bkr_id_cmp(&l.cand[j].id, &l.cand[i].sup[k]) == 0)
					l.cand[j].skip = true;
			}
		}
	}

	/* Pass 2: read and verify the live files; remember the superseded ones a
	 * killed merge left behind, so that the next merge removes them too. */
	for (size_t i = 0; i < l.n; i++) {
		if (l.cand[i].skip) {
			if ((err = bkr_array_grow((void **)&idx->stale, &idx->capstale, idx->nstale,
						  sizeof(*idx->stale))) < 0)
				goto done;
			idx->stale[idx->nstale++] = l.cand[i].id;
			bkr_store_view_release(&l.cand[i].v);
			continue;
		}
		bool sealed = false;
		err = load_file(idx, s, l.cand[i].name, flags, &l.cand[i].v, &sealed);
		if (err == BKR_ECORRUPT && !sealed && bkr_store_drop_copy(s, l.cand[i].name) > 0) {
			bkr_error_clear(); /* a cached copy failed: the object itself, once */
			err = load_file(idx, s, l.cand[i].name, flags, NULL, &sealed);
		}
		if ((err == BKR_ECORRUPT || err == BKR_EUNSUPPORTED) && !sealed && (flags & BKR_INDEX_SKIP_DAMAGED))
			err = note_skipped(idx);
		*vanished = err == BKR_ENOTFOUND;
		if (err < 0)
			goto done;
	}
	/* an index file's name holding no object (a FIFO, a symbolic link) is a damaged index file: named,
	 * never passed over in silence (its entries, if it held any, are missing), unless superseded */
	for (size_t i = 0; i < l.nother; i++) {
		const char *name = l.other[i], *what = name + strlen(name) + 1, *base = name + l.plen;
		char path[PATH_MAX], hex[BKR_ID_HEX];
		bkr_id id;
		if (strlen(base) == IDX_NAME_LEN) {
			memcpy(hex, base, 2 * BKR_ID_SIZE);
			hex[2 * BKR_ID_SIZE] = '\0';
			if (bkr_id_from_hex(&id, hex) == 0 && superseded(&l, &id))
				continue;
		}
		if ((err = bkr_store_describe(s, name, path, sizeof(path))) < 0)
			goto done;
		err = bkr_error_set(BKR_ECORRUPT, "%s: not a regular file (%s), not an index file", path, what);
		if (!(flags & BKR_INDEX_SKIP_DAMAGED) || (err = note_skipped(idx)) < 0)
			goto done;
	}
done:
	for (size_t i = 0; i < l.n; i++) {
		free(l.cand[i].sup);
		bkr_store_view_release(&l.cand[i].v);
	}
	free(l.cand);
	for (size_t i = 0; i < l.nother; i++)
		free(l.other[i]);
	free(l.other);
	if (err < 0)
		bkr_index_free(idx);
	else
		*out = idx;
	return err;
}

int bkr_index_load(bkr_index **out, bkr_store *s, const char *prefix, unsigned flags)
{
	bool vanished = false;
	int err = 0;

	/* A merge (prune, repair) publishes its file, then deletes the ones it
	 * supersedes: a file listed here and gone when read was merged, and a
	 * new listing finds the merged one. */
	for (int attempt = 0; attempt < 5; attempt++) {
		if (attempt)
			bkr_error_clear();
		if ((err = load_listed(out, s, prefix, flags, &vanished)) != BKR_ENOTFOUND || !vanished)
			return err;
	}
	bkr_error_prefix("index files kept changing while being read (a merge running?)");
	return err;
}

struct recheck {
	const bkr_index *idx;
	size_t plen;
	size_t seen;
	bool same;
};

static int listed_cmp(const void *key, const void *entry)
{
	return strcmp(key, *(char *const *)entry);
}

static int recheck_one(void *ctx, const char *name, const char *stamp)
{
	struct recheck *rc = ctx;
	char *const *e;

	if (!rc->same || !is_index_file(name + rc->plen))
		return 0;
	e = rc->idx->nlisted ? bsearch(name, rc->idx->listed, rc->idx->nlisted, sizeof(*e), listed_cmp) : NULL;
	/* listed then, with the same stamp (none: the store cannot tell) */
	rc->same = e && stamp[0] && !strcmp(*e + strlen(*e) + 1, stamp);
	rc->seen++;
	return 0;
}

int bkr_index_unchanged(const bkr_index *idx, bkr_store *s, const char *prefix, bool *same)
{
	struct recheck rc = { .idx = idx, .plen = strlen(prefix), .same = true };
	int err;

	*same = false;
	if (!idx->listed)
		return 0;
	if ((err = bkr_store_list_stamped(s, prefix, recheck_one, &rc)) < 0)
		return err;
	/* names are unique: every file listed now was listed then, as many */
	*same = rc.same && rc.seen == idx->nlisted;
	return 0;
}

int bkr_index_open(bkr_index **out, const char *dir)
{
	bkr_store *s = NULL;
	int err = bkr_store_local_open(&s, dir, 0);
	*out = NULL;
	if (err == BKR_ENOTFOUND) {
		bkr_error_clear();
		return index_new(out); /* no index yet: empty */
	}
	if (err == 0)
		err = bkr_index_load(out, s, "", 0);
	bkr_store_free(s);
	return err;
}

int bkr_index_builder_write(bkr_index_builder *b, const char *dir, bkr_id *file_id)
{
	bkr_store *s = NULL;
	int err = bkr_store_local_open(&s, dir, BKR_STORE_CREATE);
	if (err == 0)
		err = bkr_index_builder_publish(b, s, "", file_id);
	bkr_store_free(s);
	return err;
}

/** The first 8 bytes of an id as a big-endian number (order-preserving). */
static uint64_t id_key(const uint8_t *id)
{
	uint64_t k = 0;
	for (int i = 0; i < 8; i++)
		k = k << 8 | id[i];
	return k;
}

static const uint8_t *entry_at(const struct idx_file *f, uint64_t i)
{
	return f->entries + i * BKR_INDEX_ENTRY_SIZE;
}

/**
 * Search one loaded file; a matching entry or NULL.  Ids are SHA-256 values,
 * uniformly spread, so a few interpolation steps land next to the entry
 * (about 3 probes for a million entries instead of 20); a plain binary search
 * finishes the job and bounds the worst case.
 */
static const uint8_t *search_file(const struct idx_file *f, const bkr_id *id)
{
	uint64_t lo = 0, hi = f->count, key = id_key(id->b), klo, khi;
	int c;

	if (hi == 0)
		return NULL;
	klo = id_key(entry_at(f, 0));
	khi = id_key(entry_at(f, hi - 1));
	/* invariant: every entry before lo < id, every entry at or after hi > id */
	for (int step = 0; step < 6 && hi - lo > 32; step++) {
		uint64_t pos;
		const uint8_t *e;
		if (key < klo || key > khi || khi == klo)
			break;
		pos = lo + (uint64_t)(((unsigned __int128)(key - klo) * (hi - 1 - lo)) / (khi - klo));
		e = entry_at(f, pos);
		c = memcmp(e, id->b, BKR_ID_SIZE);
		if (c == 0)
			return e;
		if (c < 0) {
			lo = pos + 1;
			klo = id_key(e);
		} else {
			hi = pos;
			khi = id_key(e);
		}
	}
	while (lo < hi) {
		uint64_t mid = lo + (hi - lo) / 2;
		c = memcmp(entry_at(f, mid), id->b, BKR_ID_SIZE);
		if (c == 0)
			return entry_at(f, mid);
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

/*
 * Every entry naming @p id in @p f, from the first to *end (one past the
 * last); NULL when none.  The writer writes an id once a file; one that holds
 * it more (readers take equal ids, sorted side by side) has them all here.
 */
static const uint8_t *search_file_all(const struct idx_file *f, const bkr_id *id, const uint8_t **end)
{
	const uint8_t *first = search_file(f, id), *last = entry_at(f, f->count), *e;

	if (!first)
		return NULL;
	for (e = first + BKR_INDEX_ENTRY_SIZE; e < last && memcmp(e, id->b, BKR_ID_SIZE) == 0;)
		e += BKR_INDEX_ENTRY_SIZE;
	while (first > f->entries && memcmp(first - BKR_INDEX_ENTRY_SIZE, id->b, BKR_ID_SIZE) == 0)
		first -= BKR_INDEX_ENTRY_SIZE;
	*end = e;
	return first;
}

int bkr_index_lookup_nth(const bkr_index *idx, const bkr_id *id, size_t nth, bkr_index_entry *out)
{
	char hex[BKR_ID_HEX];

	/* newest file (last in name order) first; a file's entries for it first to last */
	for (size_t i = idx->n; i-- > 0;) {
		const uint8_t *end = NULL, *e = search_file_all(&idx->files[i], id, &end);
		for (; e && e < end; e += BKR_INDEX_ENTRY_SIZE)
			if (nth-- == 0) {
				decode_entry(e, out);
				return 0;
			}
	}
	bkr_id_to_hex(id, hex);
	return bkr_error_set(BKR_ENOTFOUND, "blob %s is not in the index", hex);
}

size_t bkr_index_copies(const bkr_index *idx, const bkr_id *id)
{
	size_t n = 0;

	for (size_t i = 0; i < idx->n; i++) {
		const uint8_t *end = NULL, *e = search_file_all(&idx->files[i], id, &end);
		if (e)
			n += (size_t)(end - e) / BKR_INDEX_ENTRY_SIZE;
	}
	return n;
}

int bkr_index_lookup(const bkr_index *idx, const bkr_id *id, bkr_index_entry *out)
{
	return bkr_index_lookup_nth(idx, id, 0, out);
}

size_t bkr_index_files_holding(const bkr_index *idx, const bkr_index_entry *e, bkr_id *out, size_t cap)
{
	bkr_index_entry f;
	size_t n = 0;

	/* a file holding the id more than once is searched through all of them (search_file_all) */
	for (size_t i = idx->n; i-- > 0;) {
		const uint8_t *end = NULL, *p = search_file_all(&idx->files[i], &e->id, &end);
		bool holds = false;
		for (; p && p < end && !holds; p += BKR_INDEX_ENTRY_SIZE) {
			decode_entry(p, &f);
			holds = f.offset == e->offset && !bkr_pack_id_cmp(&f.pack, &e->pack);
		}
		if (!holds)
			continue;
		if (n < cap)
			out[n] = idx->ids[i];
		n++;
	}
	return n;
}

const char *const *bkr_index_skipped(const bkr_index *idx, size_t *n)
{
	*n = idx->nskipped;
	return (const char *const *)idx->skipped;
}

uint64_t bkr_index_count(const bkr_index *idx)
{
	return idx->total;
}

const bkr_id *bkr_index_files(const bkr_index *idx, size_t *n)
{
	*n = idx->n;
	return idx->ids;
}

const bkr_id *bkr_index_stale_files(const bkr_index *idx, size_t *n)
{
	*n = idx->nstale;
	return idx->stale;
}

int bkr_index_foreach(const bkr_index *idx, int (*cb)(const bkr_index_entry *e, void *arg), void *arg)
{
	bkr_index_entry e;
	int err;

	for (size_t i = 0; i < idx->n; i++) {
		const struct idx_file *f = &idx->files[i];
		for (uint64_t k = 0; k < f->count; k++) {
			decode_entry(f->entries + k * BKR_INDEX_ENTRY_SIZE, &e);
			if ((err = cb(&e, arg)) < 0)
				return err;
		}
	}
	return 0;
}

int bkr_index_entry_cmp_pack(const void *a, const void *b)
{
	const bkr_index_entry *x = a, *y = b;
	int c = bkr_pack_id_cmp(&x->pack, &y->pack);
	if (c)
		return c;
	if (x->offset != y->offset)
		return x->offset < y->offset ? -1 : 1;
	return bkr_id_cmp(&x->id, &y->id);
}
