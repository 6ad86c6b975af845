/** @file
 * The inode table of bkrfs.
 *
 * Id spaces.  bkrfs deals with four kinds of identifiers and never mixes
 * them: blob and tree ids (bkr_id, SHA-256 of content), pack ids
 * (bkr_pack_id, random), backup and run ids (strings such as
 * "backup_20261126_070000_full_1a2b3c4d"), and FUSE inode numbers
 * (bkrfs_ino, 64 bits).  Inode numbers 1-4 are the fixed top level (root,
 * by-id, by-date, recovered).  Every other inode has an *identity key*, a
 * byte string naming what it stands for: for a tree entry the backup (or run)
 * id and the entry's path inside that backup; for a hardlinked file
 * (link_group != 0) the backup id and the link group instead of the path, so
 * every link of one group within a backup is one inode (st_nlink is the
 * recorded link count); for the synthesized views the view and the name or
 * target.  The inode number is the first 8 bytes of the key's SHA-256
 * (raised above BKRFS_INO_RESERVED), so it is the same after a remount and
 * differs between backups: `du` or `cp -a` across two backups see no false
 * hardlinks.  A collision with a live inode of another key is resolved by
 * probing the next number (astronomically rare, and then only that inode's
 * number depends on the visiting order).
 *
 * Lookup counts follow the FUSE protocol: +1 for every entry reply (lookup,
 * each readdirplus entry except "." and ".."), -n in forget/forget_multi.
 * An inode is freed when its count reaches zero and no request holds a
 * reference to it (refs).  The fixed top-level inodes are pinned and never
 * freed.  One mutex guards the table; it is never held during I/O.
 */
#include "inode.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "bkr/error.h"
#include "bkr/hash.h"

struct bkrfs_itable {
	pthread_mutex_t lock;
	bkrfs_inode **buckets;     /**< by ino; guarded by lock */
	size_t nbuckets;           /**< power of two */
	size_t count;
	uint64_t clock;            /**< ticks at every get/enter */
	bkrfs_inode_release_fn release;
};

static size_t bucket_of(const bkrfs_itable *t, bkrfs_ino ino)
{
	uint64_t h = ino * 0x9e3779b97f4a7c15ull;
	return (size_t)(h >> 32) & (t->nbuckets - 1);
}

int bkrfs_itable_new(bkrfs_itable **out, bkrfs_inode_release_fn release)
{
	bkrfs_itable *t;

	*out = NULL;
	if (!(t = calloc(1, sizeof(*t))))
		return bkr_error_oom();
	t->nbuckets = 1024;
	if (!(t->buckets = calloc(t->nbuckets, sizeof(*t->buckets)))) {
		free(t);
		return bkr_error_oom();
	}
	pthread_mutex_init(&t->lock, NULL);
	t->release = release;
	*out = t;
	return 0;
}

static void inode_free(bkrfs_itable *t, bkrfs_inode *i)
{
	if (!i)
		return;
	if (t && t->release)
		t->release(i);
	free(i->path);
	free(i->name);
	free(i->target);
	free(i->key);
	free(i);
}

void bkrfs_inode_discard(bkrfs_itable *t, bkrfs_inode *i)
{
	inode_free(t, i);
}

void bkrfs_itable_free(bkrfs_itable *t)
{
	if (!t)
		return;
	for (size_t b = 0; b < t->nbuckets; b++) {
		bkrfs_inode *i = t->buckets[b], *next;
		for (; i; i = next) {
			next = i->next;
			inode_free(t, i);
		}
	}
	free(t->buckets);
	pthread_mutex_destroy(&t->lock);
	free(t);
}

bkrfs_ino bkrfs_ino_of_key(const void *key, size_t len)
{
	bkr_id h;
	uint64_t v = 0;

	bkr_sha256(key, len, &h);
	for (int k = 0; k < 8; k++)
		v = v << 8 | h.b[k];
	if (v < BKRFS_INO_RESERVED)
		v += BKRFS_INO_RESERVED;
	return v;
}

int bkrfs_key_make(uint8_t **out, size_t *len, char kind, size_t n, const void *const *parts,
		   const size_t *lens)
{
	size_t total = 1;
	uint8_t *k, *p;

	*out = NULL;
	*len = 0;
	for (size_t j = 0; j < n; j++)
		total += lens[j] + 1;
	if (!(k = malloc(total)))
		return bkr_error_oom();
	p = k;
	*p++ = (uint8_t)kind;
	for (size_t j = 0; j < n; j++) {
		if (lens[j])
			memcpy(p, parts[j], lens[j]);
		p += lens[j];
		*p++ = 0;
	}
	*out = k;
	*len = total;
	return 0;
}

/* lock held */
static bkrfs_inode *find_locked(bkrfs_itable *t, bkrfs_ino ino)
{
	for (bkrfs_inode *i = t->buckets[bucket_of(t, ino)]; i; i = i->next)
		if (i->ino == ino)
			return i;
	return NULL;
}

static bool key_eq(const bkrfs_inode *i, const uint8_t *key, size_t len)
{
	return i->key && i->key_len == len && memcmp(i->key, key, len) == 0;
}

/* lock held: the number @p key has (found=true) or would get */
static bkrfs_ino probe_locked(bkrfs_itable *t, const uint8_t *key, size_t len, bkrfs_inode **found)
{
	bkrfs_ino ino = bkrfs_ino_of_key(key, len);

	*found = NULL;
	for (;;) {
		bkrfs_inode *i = find_locked(t, ino);
		if (!i)
			return ino;
		if (key_eq(i, key, len)) {
			*found = i;
			return ino;
		}
		ino++;
		if (ino < BKRFS_INO_RESERVED)
			ino = BKRFS_INO_RESERVED;
	}
}

/* lock held */
static void grow_locked(bkrfs_itable *t)
{
	size_t nb = t->nbuckets * 2;
	bkrfs_inode **nbk = calloc(nb, sizeof(*nbk));
	bkrfs_inode **old = t->buckets;
	size_t onb = t->nbuckets;

	if (!nbk)
		return; /* keep the longer chains */
	t->buckets = nbk;
	t->nbuckets = nb;
	for (size_t b = 0; b < onb; b++) {
		bkrfs_inode *i = old[b], *next;
		for (; i; i = next) {
			size_t nbi = bucket_of(t, i->ino);
			next = i->next;
			i->next = nbk[nbi];
			nbk[nbi] = i;
		}
	}
	free(old);
}

/* lock held */
static void insert_locked(bkrfs_itable *t, bkrfs_inode *i)
{
	size_t b;

	if (t->count + 1 > t->nbuckets)
		grow_locked(t);
	b = bucket_of(t, i->ino);
	i->next = t->buckets[b];
	t->buckets[b] = i;
	t->count++;
}

/* lock held: unlink and free when unused */
static bkrfs_inode *maybe_remove_locked(bkrfs_itable *t, bkrfs_inode *i)
{
	bkrfs_inode **pp;

	if (i->pinned || i->nlookup || i->refs)
		return NULL;
	for (pp = &t->buckets[bucket_of(t, i->ino)]; *pp; pp = &(*pp)->next) {
		if (*pp == i) {
			*pp = i->next;
			t->count--;
			return i;
		}
	}
	return NULL;
}

bkrfs_ino bkrfs_itable_peek(bkrfs_itable *t, const uint8_t *key, size_t len, bool *present)
{
	bkrfs_inode *found;
	bkrfs_ino ino;

	pthread_mutex_lock(&t->lock);
	ino = probe_locked(t, key, len, &found);
	pthread_mutex_unlock(&t->lock);
	if (present)
		*present = found != NULL;
	return ino;
}

bkrfs_inode *bkrfs_itable_enter(bkrfs_itable *t, bkrfs_inode *fresh, uint8_t *key, size_t len,
				bool lookup)
{
	bkrfs_inode *found;
	bkrfs_ino ino;

	pthread_mutex_lock(&t->lock);
	ino = probe_locked(t, key, len, &found);
	if (found) {
		if (lookup)
			found->nlookup++;
		found->refs++;
		found->used = ++t->clock;
		pthread_mutex_unlock(&t->lock);
		free(key);
		inode_free(t, fresh);
		return found;
	}
	fresh->ino = ino;
	fresh->st.st_ino = (ino_t)ino;
	fresh->key = key;
	fresh->key_len = len;
	fresh->nlookup = lookup ? 1 : 0;
	fresh->refs = 1;
	fresh->pinned = false;
	fresh->used = ++t->clock;
	insert_locked(t, fresh);
	pthread_mutex_unlock(&t->lock);
	return fresh;
}

int bkrfs_itable_pin(bkrfs_itable *t, bkrfs_inode *fresh, bkrfs_ino ino)
{
	pthread_mutex_lock(&t->lock);
	if (find_locked(t, ino)) {
		pthread_mutex_unlock(&t->lock);
		return bkr_error_set(BKR_EEXISTS, "inode %llu already exists", (unsigned long long)ino);
	}
	fresh->ino = ino;
	fresh->st.st_ino = (ino_t)ino;
	fresh->pinned = true;
	fresh->nlookup = 0;
	fresh->refs = 0;
	insert_locked(t, fresh);
	pthread_mutex_unlock(&t->lock);
	return 0;
}

bkrfs_inode *bkrfs_itable_get(bkrfs_itable *t, bkrfs_ino ino)
{
	bkrfs_inode *i;

	pthread_mutex_lock(&t->lock);
	if ((i = find_locked(t, ino))) {
		i->refs++;
		i->used = ++t->clock;
	}
	pthread_mutex_unlock(&t->lock);
	return i;
}

void bkrfs_itable_put(bkrfs_itable *t, bkrfs_inode *i)
{
	bkrfs_inode *dead;

	if (!i)
		return;
	pthread_mutex_lock(&t->lock);
	if (i->refs)
		i->refs--;
	dead = maybe_remove_locked(t, i);
	pthread_mutex_unlock(&t->lock);
	inode_free(t, dead);
}

void bkrfs_itable_unlookup(bkrfs_itable *t, bkrfs_inode *i)
{
	bkrfs_inode *dead;

	pthread_mutex_lock(&t->lock);
	if (i->nlookup)
		i->nlookup--;
	dead = maybe_remove_locked(t, i);
	pthread_mutex_unlock(&t->lock);
	inode_free(t, dead);
}

void bkrfs_itable_forget(bkrfs_itable *t, bkrfs_ino ino, uint64_t n)
{
	bkrfs_inode *i, *dead = NULL;

	pthread_mutex_lock(&t->lock);
	if ((i = find_locked(t, ino))) {
		i->nlookup = i->nlookup > n ? i->nlookup - n : 0;
		dead = maybe_remove_locked(t, i);
	}
	pthread_mutex_unlock(&t->lock);
	inode_free(t, dead);
}

int bkrfs_lookups_init(bkrfs_lookups *l, size_t cap)
{
	l->n = 0;
	l->cap = cap;
	/* written before read (only the first n are): no zeroing, which cost a
	 * cold ls -lR 29 % of the daemon's user-space instructions */
	l->ino = cap ? reallocarray(NULL, cap, sizeof(*l->ino)) : NULL;
	return cap && !l->ino ? ENOMEM : 0;
}

bool bkrfs_lookups_add(bkrfs_lookups *l, const bkrfs_inode *i)
{
	if (l->n == l->cap)
		return false;
	l->ino[l->n++] = i->ino;
	return true;
}

void bkrfs_lookups_done(bkrfs_itable *t, bkrfs_lookups *l, bool delivered)
{
	/* each noted lookup keeps its inode in the table until undone here */
	for (size_t k = 0; !delivered && k < l->n; k++)
		bkrfs_itable_forget(t, l->ino[k], 1);
	free(l->ino);
	l->ino = NULL;
	l->n = l->cap = 0;
}

size_t bkrfs_itable_count(bkrfs_itable *t)
{
	size_t n;

	pthread_mutex_lock(&t->lock);
	n = t->count;
	pthread_mutex_unlock(&t->lock);
	return n;
}

struct prune_cand {
	uint64_t order;            /**< least recently used first */
	bkrfs_inode *i;
};

static int cand_cmp(const void *a, const void *b)
{
	const struct prune_cand *x = a, *y = b;
	return x->order < y->order ? -1 : x->order > y->order;
}

size_t bkrfs_itable_prune(bkrfs_itable *t, size_t max, bkrfs_prune **out)
{
	struct prune_cand *c = NULL;
	size_t n = 0, want, got = 0;

	*out = NULL;
	pthread_mutex_lock(&t->lock);
	if (t->count <= max || !(c = malloc(t->count * sizeof(*c))))
		goto done;
	want = t->count - max / 2;
	for (size_t b = 0; b < t->nbuckets; b++)
		for (bkrfs_inode *i = t->buckets[b]; i; i = i->next)
			if (i->kind == BKRFS_NODE_ENTRY && !S_ISDIR(i->st.st_mode) && !i->pinned && !i->refs &&
			    i->nlookup && i->parent && i->path && *i->path)
				c[n++] = (struct prune_cand){ i->used, i };
	qsort(c, n, sizeof(*c), cand_cmp);
	if (n > want)
		n = want;
	if (!n || !(*out = malloc(n * sizeof(**out))))
		goto done;
	for (size_t k = 0; k < n; k++) {
		const char *slash = strrchr(c[k].i->path, '/'), *name = slash ? slash + 1 : c[k].i->path;
		if (c[k].i->name)
			name = c[k].i->name;
		if (!*name || !((*out)[got].name = strdup(name)))
			continue;
		(*out)[got++].parent = c[k].i->parent;
	}
done:
	pthread_mutex_unlock(&t->lock);
	free(c);
	if (!got) {
		free(*out);
		*out = NULL;
	}
	return got;
}

size_t bkrfs_itable_of_kind(bkrfs_itable *t, bkrfs_node_kind kind, bkrfs_ino **out)
{
	size_t n = 0, cap = 0;

	*out = NULL;
	pthread_mutex_lock(&t->lock);
	for (size_t b = 0; b < t->nbuckets; b++)
		for (bkrfs_inode *i = t->buckets[b]; i; i = i->next) {
			if (i->kind != kind)
				continue;
			if (n == cap) {
				bkrfs_ino *v = realloc(*out, (cap = cap ? cap * 2 : 64) * sizeof(*v));
				if (!v)
					goto done;
				*out = v;
			}
			(*out)[n++] = i->ino;
		}
done:
	pthread_mutex_unlock(&t->lock);
	return n;
}

uint64_t bkrfs_itable_nlookup(bkrfs_itable *t, bkrfs_ino ino)
{
	bkrfs_inode *i;
	uint64_t n = 0;

	pthread_mutex_lock(&t->lock);
	if ((i = find_locked(t, ino)))
		n = i->nlookup;
	pthread_mutex_unlock(&t->lock);
	return n;
}
