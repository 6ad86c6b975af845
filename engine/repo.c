/** @file
 * An open repository: config.json, the blob store (index + packs in every
 * tier + trash, with an LRU of open pack files), the blob writer, manifests,
 * records and locks.  See repo.h for the threading rules.
 */
#include "bkr/repo.h"
#include "bkr/backupid.h"
#include "bkr/error.h"
#include "bkr/io.h"
#include "bkr/pack.h"
#include "idset.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define CONFIG_MAX (1u << 20)
#define MANIFEST_MAX (64u << 20)
#define PACK_CACHE 64

struct pack_slot {
	bkr_pack_id id;
	int fd;
	int refs;          /* readers using fd now; guarded by repo->pack_lock */
	uint64_t used;     /* LRU clock; guarded by repo->pack_lock */
	bool valid;
	char path[PATH_MAX];
};

struct bkr_repo {
	char *path;
	bkr_repo_config cfg;
	int flags;
	pthread_rwlock_t index_lock;  /* guards index (swap on reload) */
	bkr_index *index;
	char **tiers;                 /* warm, cold, ... (owned) */
	size_t ntiers;
	pthread_mutex_t pack_lock;    /* guards packs[] and clock */
	struct pack_slot packs[PACK_CACHE];
	uint64_t clock;
};

/* ---- config.json -------------------------------------------------------- */

static const char *const known_incompat[] = { NULL };
static const char *const known_ro_compat[] = { NULL };

static bool known(const char *const *list, const char *name)
{
	for (; *list; list++)
		if (!strcmp(*list, name))
			return true;
	return false;
}

static int config_features(const cJSON *features, const char *what, bool *read_only)
{
	static const char *const sets[] = { "compat", "ro_compat", "incompat" };
	for (int s = 0; s < 3; s++) {
		const cJSON *arr = cJSON_GetObjectItemCaseSensitive(features, sets[s]);
		const cJSON *it;
		if (!arr)
			continue;
		if (!cJSON_IsArray(arr))
			return bkr_error_set(BKR_ECORRUPT, "%s: key 'features.%s': expected an array", what, sets[s]);
		cJSON_ArrayForEach(it, arr) {
			if (!cJSON_IsString(it))
				return bkr_error_set(BKR_ECORRUPT, "%s: key 'features.%s': expected strings", what, sets[s]);
			if (s == 2 && !known(known_incompat, it->valuestring))
				return bkr_error_set(BKR_EUNSUPPORTED,
					"%s: repository uses feature '%s' that this bkr does not support; upgrade bkr",
					what, it->valuestring);
			if (s == 1 && !known(known_ro_compat, it->valuestring))
				*read_only = true;
		}
	}
	return 0;
}

static int get_uint(const cJSON *obj, const char *key, const char *what, uint64_t max, uint64_t *out)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
	if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble > (double)max ||
	    v->valuedouble != (double)(uint64_t)v->valuedouble)
		return bkr_error_set(BKR_ECORRUPT, "%s: key '%s': expected an integer 0..%llu",
				     what, key, (unsigned long long)max);
	*out = (uint64_t)v->valuedouble;
	return 0;
}

static int config_parse(bkr_repo_config *cfg, const char *text, size_t len, const char *what)
{
	cJSON *root = NULL;
	const cJSON *v, *ch, *comp, *features;
	uint64_t u;
	int err;

	memset(cfg, 0, sizeof(*cfg));
	if ((err = bkr_json_verify(text, len, what)) < 0)
		return err;
	if (!(root = cJSON_ParseWithLength(text, len)))
		return bkr_error_set(BKR_ECORRUPT, "%s: not valid JSON", what);
	v = cJSON_GetObjectItemCaseSensitive(root, "format");
	if (!cJSON_IsString(v) || strcmp(v->valuestring, BKR_FORMAT_NAME) != 0) {
		err = bkr_error_set(BKR_ECORRUPT, "%s: key 'format': not a bkrfs repository", what);
		goto done;
	}
	v = cJSON_GetObjectItemCaseSensitive(root, "version");
	if (!cJSON_IsNumber(v)) {
		err = bkr_error_set(BKR_ECORRUPT, "%s: key 'version': expected a number", what);
		goto done;
	}
	if (v->valuedouble != BKR_FORMAT_VERSION) {
		err = bkr_error_set(BKR_EUNSUPPORTED, "%s: repository format version %g is not supported (this bkr reads version %d)",
				    what, v->valuedouble, BKR_FORMAT_VERSION);
		goto done;
	}
	features = cJSON_GetObjectItemCaseSensitive(root, "features");
	if (features && (err = config_features(features, what, &cfg->read_only)) < 0)
		goto done;
	v = cJSON_GetObjectItemCaseSensitive(root, "id");
	if (!cJSON_IsString(v) || strlen(v->valuestring) != 32) {
		err = bkr_error_set(BKR_ECORRUPT, "%s: key 'id': expected 32 hex characters", what);
		goto done;
	}
	memcpy(cfg->id, v->valuestring, 33);
	v = cJSON_GetObjectItemCaseSensitive(root, "encryption");
	if (!cJSON_IsString(v) || strcmp(v->valuestring, "none") != 0) {
		err = bkr_error_set(BKR_EUNSUPPORTED, "%s: key 'encryption': only \"none\" is supported", what);
		goto done;
	}
	v = cJSON_GetObjectItemCaseSensitive(root, "hash");
	if (!cJSON_IsString(v) || strcmp(v->valuestring, "sha256") != 0) {
		err = bkr_error_set(BKR_EUNSUPPORTED, "%s: key 'hash': only \"sha256\" is supported", what);
		goto done;
	}
	ch = cJSON_GetObjectItemCaseSensitive(root, "chunker");
	if (!cJSON_IsObject(ch)) {
		err = bkr_error_set(BKR_ECORRUPT, "%s: key 'chunker': expected an object", what);
		goto done;
	}
	if ((err = get_uint(ch, "min", what, BKR_BLOB_MAX, &u)) < 0)
		goto done;
	cfg->chunk_min = (uint32_t)u;
	if ((err = get_uint(ch, "avg", what, BKR_BLOB_MAX, &u)) < 0)
		goto done;
	cfg->chunk_avg = (uint32_t)u;
	if ((err = get_uint(ch, "max", what, BKR_BLOB_MAX, &u)) < 0)
		goto done;
	cfg->chunk_max = (uint32_t)u;
	v = cJSON_GetObjectItemCaseSensitive(ch, "seed");
	if (!cJSON_IsString(v) || strlen(v->valuestring) != 16 ||
	    bkr_hex_decode(&u, 8, v->valuestring) < 0) {
		err = bkr_error_set(BKR_ECORRUPT, "%s: key 'chunker.seed': expected 16 hex characters", what);
		goto done;
	}
	cfg->chunk_seed = u;
	comp = cJSON_GetObjectItemCaseSensitive(root, "compression");
	if (!cJSON_IsObject(comp)) {
		err = bkr_error_set(BKR_ECORRUPT, "%s: key 'compression': expected an object", what);
		goto done;
	}
	v = cJSON_GetObjectItemCaseSensitive(comp, "codec");
	if (!cJSON_IsString(v) || (strcmp(v->valuestring, "zlib") && strcmp(v->valuestring, "none"))) {
		err = bkr_error_set(BKR_EUNSUPPORTED, "%s: key 'compression.codec': expected \"zlib\" or \"none\"", what);
		goto done;
	}
	if ((err = get_uint(comp, "level", what, 9, &u)) < 0)
		goto done;
	cfg->level = strcmp(v->valuestring, "none") ? (int)u : 0;
	if ((err = get_uint(root, "pack_size", what, 1u << 30, &u)) < 0)
		goto done;
	cfg->pack_size = (uint32_t)u;
	if (!(cfg->chunk_min < cfg->chunk_avg && cfg->chunk_avg < cfg->chunk_max) || cfg->pack_size < (1u << 16)) {
		err = bkr_error_set(BKR_ECORRUPT, "%s: key 'chunker': min < avg < max does not hold", what);
		goto done;
	}
done:
	cJSON_Delete(root);
	return err;
}

static const char *const repo_dirs[] = { "data", "tree", "index", "backups", "runs", "records", "locks", "trash" };

int bkr_repo_init(const char *path, const bkr_repo_init_options *opts)
{
	bkr_repo_init_options defaults = BKR_REPO_INIT_OPTIONS_INIT;
	cJSON *root = NULL, *o;
	char *text = NULL, *sealed = NULL, sub[PATH_MAX], idhex[33], seedhex[17], created[32];
	uint8_t id[16];
	uint64_t seed;
	size_t sealed_len;
	DIR *d;
	int err = 0;

	if (!opts)
		opts = &defaults;
	if (opts->level < 0 || opts->level > 9)
		return bkr_error_set(BKR_EINVAL, "compression level %d: expected 1..9", opts->level);
	if (opts->compression && strcmp(opts->compression, "zlib") && strcmp(opts->compression, "none"))
		return bkr_error_set(BKR_EINVAL, "compression '%s': expected zlib or none", opts->compression);
	if ((d = opendir(path))) {
		struct dirent *de;
		while ((de = readdir(d)))
			if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..")) {
				closedir(d);
				return bkr_error_set(BKR_EEXISTS, "%s: directory is not empty; refusing to create a repository there", path);
			}
		closedir(d);
	} else if (errno != ENOENT) {
		return bkr_error_set_errno(errno, "%s", path);
	}
	if ((err = bkr_io_mkdir_p(path, 0700)) < 0)
		return err;
	for (size_t i = 0; i < sizeof(repo_dirs) / sizeof(*repo_dirs); i++) {
		if ((err = bkr_path_join(sub, sizeof(sub), path, repo_dirs[i])) < 0 ||
		    (err = bkr_io_mkdir_p(sub, 0700)) < 0)
			return err;
	}
	if ((err = bkr_random_bytes(id, sizeof(id))) < 0 || (err = bkr_random_bytes(&seed, sizeof(seed))) < 0)
		return err;
	bkr_hex_encode(id, sizeof(id), idhex);
	bkr_hex_encode(&seed, sizeof(seed), seedhex);
	bkr_time_format(created, bkr_time_now_ns());

	root = cJSON_CreateObject();
	cJSON_AddStringToObject(root, "format", BKR_FORMAT_NAME);
	cJSON_AddNumberToObject(root, "version", BKR_FORMAT_VERSION);
	o = cJSON_AddObjectToObject(root, "features");
	cJSON_AddArrayToObject(o, "compat");
	cJSON_AddArrayToObject(o, "ro_compat");
	cJSON_AddArrayToObject(o, "incompat");
	cJSON_AddStringToObject(root, "id", idhex);
	cJSON_AddStringToObject(root, "created", created);
	o = cJSON_AddObjectToObject(root, "chunker");
	cJSON_AddStringToObject(o, "algorithm", "fastcdc");
	cJSON_AddNumberToObject(o, "min", opts->chunk_min ? opts->chunk_min : BKR_CHUNK_MIN);
	cJSON_AddNumberToObject(o, "avg", opts->chunk_avg ? opts->chunk_avg : BKR_CHUNK_AVG);
	cJSON_AddNumberToObject(o, "max", opts->chunk_max ? opts->chunk_max : BKR_CHUNK_MAX);
	cJSON_AddStringToObject(o, "seed", seedhex);
	o = cJSON_AddObjectToObject(root, "compression");
	cJSON_AddStringToObject(o, "codec", opts->compression && !strcmp(opts->compression, "none") ? "none" : "zlib");
	cJSON_AddNumberToObject(o, "level", opts->level ? opts->level : 1);
	cJSON_AddStringToObject(root, "hash", "sha256");
	cJSON_AddStringToObject(root, "encryption", "none");
	cJSON_AddNumberToObject(root, "pack_size", opts->pack_size ? opts->pack_size : BKR_PACK_TARGET_SIZE);
	if (!(text = cJSON_PrintUnformatted(root))) {
		err = bkr_error_oom();
		goto done;
	}
	if ((err = bkr_json_seal(text, &sealed, &sealed_len)) < 0)
		goto done;
	/* Validate what we are about to write with the reader's own rules. */
	{
		bkr_repo_config check;
		if ((err = config_parse(&check, sealed, sealed_len, "config.json")) < 0)
			goto done;
	}
	err = bkr_io_publish(path, "config.json", sealed, sealed_len, BKR_IO_NOREPLACE);
done:
	cJSON_Delete(root);
	free(text);
	free(sealed);
	return err;
}

/* ---- open/close ---------------------------------------------------------- */

static int repo_sub(const bkr_repo *r, char *out, size_t cap, const char *sub)
{
	return bkr_path_join(out, cap, r->path, sub);
}

int bkr_repo_open(bkr_repo **out, const char *path, int flags)
{
	bkr_repo *r = NULL;
	char p[PATH_MAX];
	uint8_t *text = NULL;
	size_t len;
	struct stat st;
	int err;

	*out = NULL;
	if (stat(path, &st) < 0)
		return bkr_error_set_errno(errno, "repository %s", path);
	if (!S_ISDIR(st.st_mode))
		return bkr_error_set(BKR_ENOTFOUND, "repository %s: not a directory", path);
	if ((err = bkr_path_join(p, sizeof(p), path, "config.json")) < 0)
		return err;
	if ((err = bkr_io_read_file(p, CONFIG_MAX, &text, &len)) < 0) {
		if (err == BKR_ENOTFOUND)
			bkr_error_set(BKR_ENOTFOUND, "%s: no config.json: not a bkrfs repository (create one with 'bkr init')", path);
		return err;
	}
	if (!(r = calloc(1, sizeof(*r)))) {
		err = bkr_error_oom();
		goto done;
	}
	pthread_rwlock_init(&r->index_lock, NULL);
	pthread_mutex_init(&r->pack_lock, NULL);
	r->flags = flags;
	if (!(r->path = strdup(path))) {
		err = bkr_error_oom();
		goto done;
	}
	if ((err = config_parse(&r->cfg, (const char *)text, len, p)) < 0)
		goto done;
	if ((err = repo_sub(r, p, sizeof(p), "index")) < 0 || (err = bkr_index_open(&r->index, p)) < 0)
		goto done;
	*out = r;
	r = NULL;
done:
	free(text);
	bkr_repo_free(r);
	return err;
}

void bkr_repo_free(bkr_repo *r)
{
	if (!r)
		return;
	for (int i = 0; i < PACK_CACHE; i++)
		if (r->packs[i].valid)
			close(r->packs[i].fd);
	for (size_t i = 0; i < r->ntiers; i++)
		free(r->tiers[i]);
	free(r->tiers);
	bkr_index_free(r->index);
	pthread_rwlock_destroy(&r->index_lock);
	pthread_mutex_destroy(&r->pack_lock);
	free(r->path);
	free(r);
}

const char *bkr_repo_path(const bkr_repo *r)
{
	return r->path;
}

const bkr_repo_config *bkr_repo_get_config(const bkr_repo *r)
{
	return &r->cfg;
}

int bkr_repo_set_tiers(bkr_repo *r, const char *const *dirs, size_t n)
{
	char **t = calloc(n ? n : 1, sizeof(*t));
	if (!t)
		return bkr_error_oom();
	for (size_t i = 0; i < n; i++) {
		if (!(t[i] = strdup(dirs[i]))) {
			while (i--)
				free(t[i]);
			free(t);
			return bkr_error_oom();
		}
	}
	for (size_t i = 0; i < r->ntiers; i++)
		free(r->tiers[i]);
	free(r->tiers);
	r->tiers = t;
	r->ntiers = n;
	return 0;
}

int bkr_repo_reload_index(bkr_repo *r)
{
	char p[PATH_MAX];
	bkr_index *fresh = NULL, *old;
	int err;
	if ((err = repo_sub(r, p, sizeof(p), "index")) < 0 || (err = bkr_index_open(&fresh, p)) < 0)
		return err;
	pthread_rwlock_wrlock(&r->index_lock);
	old = r->index;
	r->index = fresh;
	pthread_rwlock_unlock(&r->index_lock);
	bkr_index_free(old);
	return 0;
}

int bkr_repo_lookup(bkr_repo *r, const bkr_id *id, bkr_index_entry *out)
{
	int err;
	pthread_rwlock_rdlock(&r->index_lock);
	err = bkr_index_lookup(r->index, id, out);
	pthread_rwlock_unlock(&r->index_lock);
	if (err == BKR_ENOTFOUND) {
		char hex[BKR_ID_HEX];
		bkr_id_to_hex(id, hex);
		bkr_error_set(BKR_ENOTFOUND, "blob %s: not in the index of %s", hex, r->path);
	}
	return err;
}

/* ---- packs ---------------------------------------------------------------- */

int bkr_repo_pack_path(bkr_repo *r, const bkr_pack_id *id, bkr_blob_type type, char *out, size_t cap)
{
	char root[PATH_MAX], hex[BKR_PACK_ID_HEX];
	const char *kind = type == BKR_BLOB_TREE ? "tree" : "data";
	int err;

	if ((err = repo_sub(r, root, sizeof(root), kind)) < 0 || (err = bkr_pack_path(out, cap, root, id)) < 0)
		return err;
	if (access(out, F_OK) == 0)
		return 0;
	for (size_t i = 0; i < r->ntiers; i++) {
		if ((err = bkr_path_join(root, sizeof(root), r->tiers[i], kind)) < 0 ||
		    (err = bkr_pack_path(out, cap, root, id)) < 0)
			return err;
		if (access(out, F_OK) == 0)
			return 0;
	}
	bkr_pack_id_to_hex(id, hex);
	if (snprintf(out, cap, "%s/trash/%s.pack", r->path, hex) >= (int)cap)
		return bkr_error_set(BKR_EINVAL, "path too long");
	if (access(out, F_OK) == 0)
		return 0;
	return bkr_error_set(BKR_ENOTFOUND, "pack %s: missing from %s, every tier and trash", hex, r->path);
}

#define TREE_PACK_READ_WHOLE (4 << 20) /* tree packs up to this size are read ahead whole */

/* Borrow an fd for pack @p id; returns the slot index (release with pack_put). */
static int pack_get(bkr_repo *r, const bkr_pack_id *id, bkr_blob_type type, int *slot_out)
{
	char path[PATH_MAX];
	int fd, err, victim = -1;

	pthread_mutex_lock(&r->pack_lock);
	for (int i = 0; i < PACK_CACHE; i++) {
		struct pack_slot *s = &r->packs[i];
		if (s->valid && !bkr_pack_id_cmp(&s->id, id)) {
			s->refs++;
			s->used = ++r->clock;
			*slot_out = i;
			pthread_mutex_unlock(&r->pack_lock);
			return 0;
		}
	}
	pthread_mutex_unlock(&r->pack_lock);

	if ((err = bkr_repo_pack_path(r, id, type, path, sizeof(path))) < 0)
		return err;
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return bkr_error_set_errno(errno, "open pack %s", path);
	/* A small tree pack is read all over, and backwards (trees are written
	 * children first and walked parents first): one asynchronous read of
	 * the whole pack beats a disk seek per directory on a cold `ls -lR` or
	 * restore.  A big one may hold far more than the trees wanted. */
	if (type == BKR_BLOB_TREE) {
		struct stat st;
		if (fstat(fd, &st) == 0 && st.st_size <= TREE_PACK_READ_WHOLE)
			(void)posix_fadvise(fd, 0, 0, POSIX_FADV_WILLNEED);
	}

	pthread_mutex_lock(&r->pack_lock);
	for (int i = 0; i < PACK_CACHE; i++) {
		struct pack_slot *s = &r->packs[i];
		if (s->valid && !bkr_pack_id_cmp(&s->id, id)) { /* raced with another opener */
			s->refs++;
			s->used = ++r->clock;
			*slot_out = i;
			pthread_mutex_unlock(&r->pack_lock);
			close(fd);
			return 0;
		}
		if (s->valid && s->refs > 0)
			continue;
		if (victim < 0 || !s->valid || (r->packs[victim].valid && s->used < r->packs[victim].used))
			victim = i;
	}
	if (victim < 0) {
		/* every slot busy: use the fd uncached */
		pthread_mutex_unlock(&r->pack_lock);
		*slot_out = -1 - fd;
		return 0;
	}
	struct pack_slot *s = &r->packs[victim];
	if (s->valid)
		close(s->fd);
	s->id = *id;
	s->fd = fd;
	s->refs = 1;
	s->used = ++r->clock;
	s->valid = true;
	snprintf(s->path, sizeof(s->path), "%s", path);
	*slot_out = victim;
	pthread_mutex_unlock(&r->pack_lock);
	return 0;
}

static int slot_fd(bkr_repo *r, int slot, const char **path)
{
	if (slot < 0) {
		*path = "pack";
		return -1 - slot;
	}
	*path = r->packs[slot].path; /* stable while refs > 0 */
	return r->packs[slot].fd;
}

static void pack_put(bkr_repo *r, int slot, bool drop)
{
	if (slot < 0) {
		close(-1 - slot);
		return;
	}
	pthread_mutex_lock(&r->pack_lock);
	struct pack_slot *s = &r->packs[slot];
	if (--s->refs == 0 && drop) {
		close(s->fd);
		s->valid = false;
	}
	pthread_mutex_unlock(&r->pack_lock);
}

int bkr_repo_read_blob(bkr_repo *r, const bkr_id *id, bkr_blob_type type, uint8_t **out, size_t *len)
{
	bkr_index_entry e;
	uint8_t *buf = NULL;
	const char *path;
	int slot, err;

	*out = NULL;
	*len = 0;
	if ((err = bkr_repo_lookup(r, id, &e)) < 0)
		return err;
	if (e.type != type) {
		char hex[BKR_ID_HEX];
		bkr_id_to_hex(id, hex);
		return bkr_error_set(BKR_ECORRUPT, "blob %s: indexed as type %u, wanted %u", hex, e.type, type);
	}
	if (!(buf = malloc(e.raw_len ? e.raw_len : 1)))
		return bkr_error_oom();
	for (int attempt = 0; attempt < 2; attempt++) {
		if ((err = pack_get(r, &e.pack, type, &slot)) < 0)
			break;
		int fd = slot_fd(r, slot, &path);
		err = bkr_pack_read_blob(fd, path, id, e.offset,
					 e.stored_len, e.raw_len, e.type, buf);
		/* A pack moved to another tier or trash while cached: retry once fresh. */
		pack_put(r, slot, err < 0);
		if (err >= 0 || err == BKR_ECORRUPT)
			break;
	}
	if (err < 0) {
		free(buf);
		return err;
	}
	*out = buf;
	*len = e.raw_len;
	return 0;
}

int bkr_repo_load_tree(void *repo, const bkr_id *id, bkr_tree **out)
{
	uint8_t *buf;
	size_t len;
	int err;
	*out = NULL;
	if ((err = bkr_repo_read_blob(repo, id, BKR_BLOB_TREE, &buf, &len)) < 0)
		return err;
	return bkr_tree_parse(out, buf, len);
}

/* ---- the writer ----------------------------------------------------------- */

struct bkr_writer {
	bkr_repo *repo;
	pthread_mutex_t lock;           /* guards everything below */
	bkr_idset seen;              /* ids stored or being stored by this writer */
	bkr_pack_writer *open[2];       /* per blob type */
	bkr_index_builder *index;
	int failed;                     /* first error seen (sticky) */
	char failed_msg[512];           /* its message, for the other threads */
};

/* Record the first failure (its message comes from the calling thread); a
 * later one is a consequence (e.g. "pack writer failed earlier"), so the
 * calling thread reports the first instead.  w->lock held. */
static int writer_fail_locked(bkr_writer *w, int err)
{
	if (!w->failed) {
		w->failed = err;
		snprintf(w->failed_msg, sizeof(w->failed_msg), "%s", bkr_error_message());
		return err;
	}
	return bkr_error_set(w->failed, "%s", w->failed_msg);
}

static int writer_fail(bkr_writer *w, int err)
{
	pthread_mutex_lock(&w->lock);
	writer_fail_locked(w, err);
	pthread_mutex_unlock(&w->lock);
	return err;
}

/* The sticky failure, with its message set in the calling thread. */
static int writer_failed(bkr_writer *w)
{
	int err;
	pthread_mutex_lock(&w->lock);
	err = w->failed;
	if (err)
		bkr_error_set(err, "%s", w->failed_msg);
	pthread_mutex_unlock(&w->lock);
	return err;
}

int bkr_writer_new(bkr_writer **out, bkr_repo *r)
{
	bkr_writer *w;
	int err;
	*out = NULL;
	if (r->cfg.read_only || (r->flags & BKR_REPO_RDONLY))
		return bkr_error_set(BKR_EUNSUPPORTED, "%s: repository is open read-only", r->path);
	if (!(w = calloc(1, sizeof(*w))))
		return bkr_error_oom();
	w->repo = r;
	pthread_mutex_init(&w->lock, NULL);
	if ((err = bkr_index_builder_new(&w->index)) < 0) {
		bkr_writer_free(w);
		return err;
	}
	*out = w;
	return 0;
}

/* Publish a full pack and add its entries to the index builder.  Called
 * without w->lock held; @p pw is owned by the caller. */
static int pack_publish(bkr_writer *w, bkr_pack_writer *pw, bkr_blob_type type)
{
	char root[PATH_MAX];
	bkr_pack_id pid;
	const bkr_pack_entry *ents;
	size_t n;
	int err;

	if ((err = repo_sub(w->repo, root, sizeof(root), type == BKR_BLOB_TREE ? "tree" : "data")) < 0 ||
	    (err = bkr_pack_writer_finish(pw, root, &pid)) < 0)
		return err;
	ents = bkr_pack_writer_entries(pw, &n);
	pthread_mutex_lock(&w->lock);
	for (size_t i = 0; i < n && err == 0; i++) {
		bkr_index_entry e = {
			.id = ents[i].id, .pack = pid, .offset = (uint32_t)ents[i].offset,
			.stored_len = ents[i].stored_len, .raw_len = ents[i].raw_len,
			.type = ents[i].type, .flags = ents[i].flags,
		};
		err = bkr_index_builder_add(w->index, &e);
	}
	pthread_mutex_unlock(&w->lock);
	return err;
}

int bkr_writer_put(bkr_writer *w, bkr_blob_type type, const bkr_id *id,
		   const void *data, size_t len, bool *is_new, uint32_t *stored)
{
	bkr_index_entry e;
	bkr_pack_writer *full = NULL;
	uint8_t *payload = NULL, flags = 0;
	uint32_t stored_len = 0;
	int err, added;

	if (is_new)
		*is_new = false;
	if (stored)
		*stored = 0;
	if (len > BKR_BLOB_MAX)
		return bkr_error_set(BKR_EINVAL, "blob of %zu bytes exceeds the %u-byte limit", len, BKR_BLOB_MAX);
	if (bkr_repo_lookup(w->repo, id, &e) == 0)
		return 0;
	bkr_error_clear();
	if ((err = writer_failed(w)) < 0)
		return err;
	pthread_mutex_lock(&w->lock);
	added = bkr_idset_add(&w->seen, id);
	pthread_mutex_unlock(&w->lock);
	if (added <= 0)
		return added;

	if ((err = bkr_blob_encode(w->repo->cfg.level, data, len, &payload, &stored_len, &flags)) < 0)
		goto done;

	pthread_mutex_lock(&w->lock);
	if (!w->open[type]) {
		char tmpdir[PATH_MAX];
		if ((err = repo_sub(w->repo, tmpdir, sizeof(tmpdir), type == BKR_BLOB_TREE ? "tree" : "data")) == 0)
			err = bkr_pack_writer_new(&w->open[type], tmpdir, type);
	}
	if (err == 0)
		err = bkr_pack_writer_add(w->open[type], id, flags, payload, stored_len, (uint32_t)len);
	if (err == 0 && bkr_pack_writer_size(w->open[type]) >= w->repo->cfg.pack_size) {
		full = w->open[type];
		w->open[type] = NULL;
	}
	/* under the lock, so the first failure's message is the one kept */
	if (err < 0)
		writer_fail_locked(w, err);
	pthread_mutex_unlock(&w->lock);
	if (err < 0)
		goto done;
	if (full && (err = pack_publish(w, full, type)) < 0) {
		writer_fail(w, err);
		goto done;
	}
	if (is_new)
		*is_new = true;
	if (stored)
		*stored = stored_len + BKR_BLOB_HEADER_SIZE;
done:
	bkr_pack_writer_free(full);
	free(payload);
	return err;
}

int bkr_writer_put_hash(bkr_writer *w, bkr_blob_type type, const void *data, size_t len,
			bkr_id *id, bool *is_new)
{
	bkr_sha256(data, len, id);
	return bkr_writer_put(w, type, id, data, len, is_new, NULL);
}

int bkr_writer_emit_tree(void *w, const bkr_id *id, const uint8_t *blob, size_t len)
{
	return bkr_writer_put(w, BKR_BLOB_TREE, id, blob, len, NULL, NULL);
}

int bkr_writer_commit(bkr_writer *w)
{
	char dir[PATH_MAX];
	bkr_id file_id;
	int err;

	if ((err = writer_failed(w)) < 0)
		return err;
	/* Data packs first, then tree packs, then the index that names them. */
	for (int t = 0; t < 2; t++) {
		bkr_pack_writer *pw = w->open[t];
		w->open[t] = NULL;
		if (!pw)
			continue;
		err = bkr_pack_writer_count(pw) ? pack_publish(w, pw, (bkr_blob_type)t) : 0;
		bkr_pack_writer_free(pw);
		if (err < 0)
			return writer_fail(w, err);
	}
	if (bkr_index_builder_count(w->index) == 0)
		return 0;
	if ((err = repo_sub(w->repo, dir, sizeof(dir), "index")) < 0 ||
	    (err = bkr_index_builder_write(w->index, dir, &file_id)) < 0)
		return writer_fail(w, err);
	bkr_index_builder_free(w->index);
	w->index = NULL;
	if ((err = bkr_index_builder_new(&w->index)) < 0)
		return err;
	return bkr_repo_reload_index(w->repo);
}

void bkr_writer_free(bkr_writer *w)
{
	if (!w)
		return;
	bkr_pack_writer_free(w->open[0]);
	bkr_pack_writer_free(w->open[1]);
	bkr_index_builder_free(w->index);
	bkr_idset_free(&w->seen);
	pthread_mutex_destroy(&w->lock);
	free(w);
}

/* ---- manifests and records --------------------------------------------- */

static int name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sorted names of "*.json" files in REPO/<sub> (hiding temporaries). */
static int list_json(bkr_repo *r, const char *sub, char ***out, size_t *n)
{
	char dir[PATH_MAX];
	char **names = NULL;
	size_t cap = 0, cnt = 0;
	struct dirent *de;
	DIR *d;
	int err = 0;

	*out = NULL;
	*n = 0;
	if ((err = repo_sub(r, dir, sizeof(dir), sub)) < 0)
		return err;
	if (!(d = opendir(dir))) {
		if (errno == ENOENT)
			return 0;
		return bkr_error_set_errno(errno, "%s", dir);
	}
	while ((de = readdir(d))) {
		size_t l = strlen(de->d_name);
		if (de->d_name[0] == '.' || l < 6 || strcmp(de->d_name + l - 5, ".json"))
			continue;
		if (cnt == cap) {
			char **nn = realloc(names, (cap = cap ? cap * 2 : 64) * sizeof(*names));
			if (!nn) {
				err = bkr_error_oom();
				break;
			}
			names = nn;
		}
		if (!(names[cnt] = strdup(de->d_name))) {
			err = bkr_error_oom();
			break;
		}
		cnt++;
	}
	closedir(d);
	if (err < 0) {
		while (cnt--)
			free(names[cnt]);
		free(names);
		return err;
	}
	if (cnt)
		qsort(names, cnt, sizeof(*names), name_cmp);
	*out = names;
	*n = cnt;
	return 0;
}

static void free_names(char **names, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
}

static int load_manifest(bkr_repo *r, const char *sub, const char *name, bkr_manifest **out)
{
	char path[PATH_MAX], rel[PATH_MAX];
	uint8_t *text;
	size_t len;
	int err;
	*out = NULL;
	snprintf(rel, sizeof(rel), "%s/%s", sub, name);
	if ((err = repo_sub(r, path, sizeof(path), rel)) < 0)
		return err;
	if ((err = bkr_io_read_file(path, MANIFEST_MAX, &text, &len)) < 0)
		return err;
	err = bkr_manifest_parse(out, (const char *)text, len, path);
	free(text);
	/* the file name is the id: another name would make two catalogs disagree */
	if (err == 0 && (strncmp(name, (*out)->backup_id, strlen(name) - 5) || (*out)->backup_id[strlen(name) - 5])) {
		err = bkr_error_set(BKR_ECORRUPT, "%s: the file name does not match its backup_id '%s'", path,
				    (*out)->backup_id);
		bkr_manifest_free(*out);
		*out = NULL;
	}
	return err;
}

int bkr_repo_load_manifest(bkr_repo *r, bool run, const char *id, bkr_manifest **out)
{
	char name[300];
	*out = NULL;
	if (!*id || strchr(id, '/') || id[0] == '.' || snprintf(name, sizeof(name), "%s.json", id) >= (int)sizeof(name))
		return bkr_error_set(BKR_EINVAL, "bad backup id '%s'", id);
	return load_manifest(r, run ? "runs" : "backups", name, out);
}

static int cmp_manifest(const void *a, const void *b)
{
	const bkr_manifest *x = *(bkr_manifest *const *)a, *y = *(bkr_manifest *const *)b;
	if (x->time_ns != y->time_ns)
		return x->time_ns < y->time_ns ? -1 : 1;
	return strcmp(x->backup_id, y->backup_id);
}

static bkr_manifest *list_find(bkr_manifest_list *l, const char *id)
{
	for (size_t i = 0; i < l->n; i++)
		if (l->items[i] && !strcmp(l->items[i]->backup_id, id))
			return l->items[i];
	return NULL;
}

static int add_tag(bkr_manifest *m, const char *tag)
{
	for (size_t i = 0; i < m->ntags; i++)
		if (!strcmp(m->tags[i], tag))
			return 0;
	char **t = realloc(m->tags, (m->ntags + 1) * sizeof(*t));
	if (!t)
		return bkr_error_oom();
	m->tags = t;
	if (!(t[m->ntags] = strdup(tag)))
		return bkr_error_oom();
	m->ntags++;
	return 0;
}

static void del_tag(bkr_manifest *m, const char *tag)
{
	for (size_t i = 0; i < m->ntags; i++)
		if (!strcmp(m->tags[i], tag)) {
			free(m->tags[i]);
			memmove(&m->tags[i], &m->tags[i + 1], (m->ntags - i - 1) * sizeof(*m->tags));
			m->ntags--;
			return;
		}
}

/* Apply one record to the list (unknown kinds are ignored: forward compatible). */
static int apply_record(bkr_manifest_list *l, const cJSON *rec)
{
	const cJSON *kind = cJSON_GetObjectItemCaseSensitive(rec, "kind");
	const cJSON *id = cJSON_GetObjectItemCaseSensitive(rec, "backup_id");
	const cJSON *val;
	bkr_manifest *m;

	if (!cJSON_IsString(kind) || !cJSON_IsString(id) || !(m = list_find(l, id->valuestring)))
		return 0;
	if (!strcmp(kind->valuestring, "pin")) {
		val = cJSON_GetObjectItemCaseSensitive(rec, "until");
		free(m->pinned_until);
		m->pinned_until = strdup(cJSON_IsString(val) ? val->valuestring : "");
		return m->pinned_until ? 0 : bkr_error_oom();
	}
	if (!strcmp(kind->valuestring, "unpin")) {
		free(m->pinned_until);
		m->pinned_until = NULL;
		return 0;
	}
	val = cJSON_GetObjectItemCaseSensitive(rec, "tag");
	if (!strcmp(kind->valuestring, "tag") && cJSON_IsString(val))
		return add_tag(m, val->valuestring);
	if (!strcmp(kind->valuestring, "untag") && cJSON_IsString(val))
		del_tag(m, val->valuestring);
	/* "delete" records of older versions are ignored: a backup exists while
	 * its manifest is in backups/ (bkr delete moves it into trash/) */
	return 0;
}

static int apply_records(bkr_repo *r, bkr_manifest_list *l)
{
	char **names;
	size_t n;
	int err;
	if ((err = list_json(r, "records", &names, &n)) < 0)
		return err;
	for (size_t i = 0; i < n && err == 0; i++) {
		char path[PATH_MAX], rel[PATH_MAX];
		uint8_t *text;
		size_t len;
		cJSON *rec;
		snprintf(rel, sizeof(rel), "records/%s", names[i]);
		if (repo_sub(r, path, sizeof(path), rel) < 0 ||
		    bkr_io_read_file(path, CONFIG_MAX, &text, &len) < 0)
			continue; /* vanished (a concurrent cleanup) */
		if (bkr_json_verify((const char *)text, len, path) == 0 &&
		    (rec = cJSON_ParseWithLength((const char *)text, len))) {
			err = apply_record(l, rec);
			cJSON_Delete(rec);
		}
		free(text);
	}
	free_names(names, n);
	return err;
}

struct bad_count {
	size_t n;
	char last[1024];
};

static void count_bad(void *ctx, const char *file, const char *message)
{
	struct bad_count *b = ctx;
	b->n++;
	snprintf(b->last, sizeof(b->last), "%s", message);
	(void)file;
}

int bkr_repo_list(bkr_repo *r, bool runs, bkr_manifest_list *out, size_t *bad)
{
	struct bad_count b = { 0 };
	int err = bkr_repo_list_cb(r, runs, out, count_bad, &b);
	if (bad)
		*bad = b.n;
	if (err == 0 && b.n)
		bkr_error_set(BKR_ECORRUPT, "%s", b.last);
	return err;
}

int bkr_repo_list_cb(bkr_repo *r, bool runs, bkr_manifest_list *out,
		     void (*on_bad)(void *ctx, const char *file, const char *message), void *ctx)
{
	const char *sub = runs ? "runs" : "backups";
	char **names;
	size_t n, k = 0;
	int err;

	out->items = NULL;
	out->n = 0;
	if ((err = list_json(r, sub, &names, &n)) < 0)
		return err;
	if (n && !(out->items = calloc(n, sizeof(*out->items)))) {
		free_names(names, n);
		return bkr_error_oom();
	}
	for (size_t i = 0; i < n; i++) {
		bkr_manifest *m;
		int e = load_manifest(r, sub, names[i], &m);
		if (e == BKR_ENOTFOUND)
			continue; /* deleted meanwhile */
		if (e == BKR_ENOMEM) {
			err = e;
			break;
		}
		if (e < 0) {
			if (on_bad)
				on_bad(ctx, names[i], bkr_error_message());
			continue;
		}
		out->items[k++] = m;
	}
	out->n = k;
	free_names(names, n);
	if (err == 0)
		err = apply_records(r, out);
	if (err < 0) {
		bkr_manifest_list_free(out);
		return err;
	}
	/* compact away deleted ones and sort */
	k = 0;
	for (size_t i = 0; i < out->n; i++)
		if (out->items[i])
			out->items[k++] = out->items[i];
	out->n = k;
	if (k)
		qsort(out->items, k, sizeof(*out->items), cmp_manifest);
	bkr_error_clear();
	return 0;
}

void bkr_manifest_list_free(bkr_manifest_list *l)
{
	if (!l)
		return;
	for (size_t i = 0; i < l->n; i++)
		bkr_manifest_free(l->items[i]);
	free(l->items);
	l->items = NULL;
	l->n = 0;
}

static int find_in(bkr_repo *r, bool runs, const char *spec, bkr_manifest **out)
{
	bkr_manifest_list l;
	const char **ids = NULL;
	size_t hit;
	int err;

	*out = NULL;
	if ((err = bkr_repo_list(r, runs, &l, NULL)) < 0)
		return err;
	if (l.n && !(ids = calloc(l.n, sizeof(*ids)))) {
		err = bkr_error_oom();
		goto done;
	}
	for (size_t i = 0; i < l.n; i++)
		ids[i] = l.items[i]->backup_id;
	if ((err = bkr_backupid_resolve(&hit, ids, l.n, spec, runs ? "recovery run" : "backup", r->path)) < 0)
		goto done;
	*out = l.items[hit];
	l.items[hit] = NULL;
done:
	free(ids);
	bkr_manifest_list_free(&l);
	return err;
}

int bkr_repo_find_backup(bkr_repo *r, const char *spec, bkr_manifest **out)
{
	return find_in(r, false, spec, out);
}

int bkr_repo_find_run(bkr_repo *r, const char *spec, bkr_manifest **out)
{
	return find_in(r, true, spec, out);
}

int bkr_repo_publish_manifest(bkr_repo *r, const bkr_manifest *m)
{
	char dir[PATH_MAX], name[300];
	char *json = NULL;
	size_t len;
	int err;

	if ((err = repo_sub(r, dir, sizeof(dir), m->type == BKR_BACKUP_RECOVERY ? "runs" : "backups")) < 0)
		return err;
	if ((err = bkr_io_mkdir_p(dir, 0700)) < 0)
		return err;
	if (snprintf(name, sizeof(name), "%s.json", m->backup_id) >= (int)sizeof(name) ||
	    strchr(m->backup_id, '/') || m->backup_id[0] == '.')
		return bkr_error_set(BKR_EINVAL, "bad backup id '%s'", m->backup_id);
	if ((err = bkr_manifest_encode(m, &json, &len)) < 0)
		return err;
	err = bkr_io_publish(dir, name, json, len, BKR_IO_NOREPLACE);
	free(json);
	return err;
}

int bkr_repo_add_record(bkr_repo *r, const char *json_object)
{
	char dir[PATH_MAX], name[64], *sealed = NULL;
	uint8_t rnd[4];
	char rhex[9];
	size_t len;
	int err;

	if ((err = repo_sub(r, dir, sizeof(dir), "records")) < 0 || (err = bkr_io_mkdir_p(dir, 0700)) < 0)
		return err;
	if ((err = bkr_random_bytes(rnd, sizeof(rnd))) < 0)
		return err;
	bkr_hex_encode(rnd, sizeof(rnd), rhex);
	snprintf(name, sizeof(name), "%020lld-%s.json", (long long)bkr_time_now_ns(), rhex);
	if ((err = bkr_json_seal(json_object, &sealed, &len)) < 0)
		return err;
	err = bkr_io_publish(dir, name, sealed, len, BKR_IO_NOREPLACE);
	free(sealed);
	return err;
}

/* ---- locks -------------------------------------------------------------- */

struct bkr_lock {
	int fd;
};

int bkr_repo_lock(bkr_repo *r, bkr_lock_mode mode, bool wait, bkr_lock **out)
{
	char path[PATH_MAX];
	bkr_lock *l;
	int fd, err;

	*out = NULL;
	if ((err = repo_sub(r, path, sizeof(path), "locks")) < 0 || (err = bkr_io_mkdir_p(path, 0700)) < 0)
		return err;
	if ((err = repo_sub(r, path, sizeof(path), "locks/repo.lock")) < 0)
		return err;
	/* flock dies with the process, so a killed holder never blocks anyone. */
	if ((fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600)) < 0)
		return bkr_error_set_errno(errno, "open %s", path);
	while (flock(fd, (mode == BKR_LOCK_EXCLUSIVE ? LOCK_EX : LOCK_SH) | (wait ? 0 : LOCK_NB)) < 0) {
		if (errno == EINTR)
			continue;
		err = errno == EWOULDBLOCK
			? bkr_error_set(BKR_ELOCKED, "%s: repository is locked by %s (try again later)", r->path,
					mode == BKR_LOCK_EXCLUSIVE ? "a running backup, verify or prune" : "a running prune or tier migration")
			: bkr_error_set_errno(errno, "flock %s", path);
		close(fd);
		return err;
	}
	if (!(l = malloc(sizeof(*l)))) {
		close(fd);
		return bkr_error_oom();
	}
	l->fd = fd;
	*out = l;
	return 0;
}

void bkr_lock_release(bkr_lock *l)
{
	if (!l)
		return;
	close(l->fd);
	free(l);
}

/* ---- enumeration (verify, prune) ----------------------------------------- */

typedef int (*pack_cb)(void *ctx, const bkr_pack_id *id, bkr_blob_type type, const char *path);

static int scan_tmp(const char *dir, pack_cb cb, void *ctx)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	int err = 0;
	if (!d)
		return 0;
	while (err == 0 && (de = readdir(d))) {
		char p[PATH_MAX];
		if (strncmp(de->d_name, ".tmp-", 5) || bkr_path_join(p, sizeof(p), dir, de->d_name) < 0)
			continue;
		err = cb(ctx, NULL, BKR_BLOB_DATA, p);
	}
	closedir(d);
	return err;
}

/* <root>/<kind>/<xx>/<hex>.pack */
static int scan_packs(const char *root, bkr_blob_type type, pack_cb cb, void *ctx)
{
	char top[PATH_MAX];
	DIR *d;
	struct dirent *de;
	int err;

	if ((err = bkr_path_join(top, sizeof(top), root, type == BKR_BLOB_TREE ? "tree" : "data")) < 0)
		return err;
	if ((err = scan_tmp(top, cb, ctx)) < 0)
		return err;
	if (!(d = opendir(top)))
		return errno == ENOENT ? 0 : bkr_error_set_errno(errno, "%s", top);
	while (err == 0 && (de = readdir(d))) {
		char sub[PATH_MAX];
		DIR *s;
		struct dirent *pe;
		if (strlen(de->d_name) != 2 || bkr_path_join(sub, sizeof(sub), top, de->d_name) < 0)
			continue;
		if ((err = scan_tmp(sub, cb, ctx)) < 0 || !(s = opendir(sub)))
			continue;
		while (err == 0 && (pe = readdir(s))) {
			char p[PATH_MAX], hex[BKR_PACK_ID_HEX];
			bkr_pack_id id;
			size_t l = strlen(pe->d_name);
			if (l != 2 * BKR_PACK_ID_SIZE + 5 || strcmp(pe->d_name + l - 5, ".pack"))
				continue;
			memcpy(hex, pe->d_name, 2 * BKR_PACK_ID_SIZE);
			hex[2 * BKR_PACK_ID_SIZE] = '\0';
			if (bkr_pack_id_from_hex(&id, hex) < 0 || bkr_path_join(p, sizeof(p), sub, pe->d_name) < 0)
				continue;
			err = cb(ctx, &id, type, p);
		}
		closedir(s);
	}
	closedir(d);
	bkr_error_clear();
	return err;
}

int bkr_repo_foreach_pack(bkr_repo *r, pack_cb cb, void *ctx)
{
	static const char *const meta[] = { "", "index", "backups", "runs", "records" };
	int err;
	for (size_t i = 0; i < sizeof(meta) / sizeof(*meta); i++) {
		char p[PATH_MAX];
		if ((err = (*meta[i] ? repo_sub(r, p, sizeof(p), meta[i]) : bkr_path_join(p, sizeof(p), r->path, "."))) < 0 ||
		    (err = scan_tmp(p, cb, ctx)) < 0)
			return err;
	}
	for (int t = 0; t < 2; t++)
		if ((err = scan_packs(r->path, (bkr_blob_type)t, cb, ctx)) < 0)
			return err;
	for (size_t i = 0; i < r->ntiers; i++)
		if ((err = scan_packs(r->tiers[i], BKR_BLOB_DATA, cb, ctx)) < 0)
			return err;
	return 0;
}

int bkr_repo_foreach_blob(bkr_repo *r, int (*cb)(const bkr_index_entry *e, void *ctx), void *ctx)
{
	int err;
	pthread_rwlock_rdlock(&r->index_lock);
	err = bkr_index_foreach(r->index, cb, ctx);
	pthread_rwlock_unlock(&r->index_lock);
	return err;
}
