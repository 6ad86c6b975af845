/** @file
 * A repository's config.json (docs/format.md "config.json"): creating a
 * repository (bkr_repo_init) and reading its settings and feature flags.
 */
#include "repo_priv.h"
#include "bkr/compress.h"
#include "bkr/crypto.h"
#include "bkr/error.h"
#include "bkr/key.h"
#include "bkr/store.h"
#include "bkr/utf8.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *const known_incompat[] = { "encryption", "zstd", NULL };
static const char *const known_ro_compat[] = { NULL };

static bool known(const char *const *list, const char *name)
{
	for (; *list; list++)
		if (!strcmp(*list, name))
			return true;
	return false;
}

static bool has_incompat(const cJSON *features, const char *name)
{
	const cJSON *arr = cJSON_GetObjectItemCaseSensitive(features, "incompat"), *it;
	cJSON_ArrayForEach(it, arr)
		if (cJSON_IsString(it) && !strcmp(it->valuestring, name))
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

int bkr_repo_config_parse(bkr_repo_config *cfg, const char *text, size_t len, const char *what)
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
	if (!cJSON_IsString(v) || (strcmp(v->valuestring, "none") && strcmp(v->valuestring, "aes-256-gcm"))) {
		err = bkr_error_set(BKR_EUNSUPPORTED, "%s: key 'encryption': expected \"none\" or \"aes-256-gcm\"", what);
		goto done;
	}
	cfg->encrypted = !strcmp(v->valuestring, "aes-256-gcm");
	if (cfg->encrypted != (features && has_incompat(features, "encryption"))) {
		err = bkr_error_set(BKR_ECORRUPT, "%s: key 'encryption' and the feature 'encryption' in "
				    "features.incompat disagree", what);
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
	if (!cJSON_IsString(v) || (strcmp(v->valuestring, "zlib") && strcmp(v->valuestring, "zstd") &&
				   strcmp(v->valuestring, "none"))) {
		err = bkr_error_set(BKR_EUNSUPPORTED, "%s: key 'compression.codec': expected \"zlib\", \"zstd\" or \"none\"",
				    what);
		goto done;
	}
	cfg->codec = !strcmp(v->valuestring, "zstd") ? BKR_CODEC_ZSTD : !strcmp(v->valuestring, "zlib") ? BKR_CODEC_ZLIB
													 : BKR_CODEC_NONE;
	/* zstd blobs are a format feature: a bkr without it must refuse the repository */
	if ((cfg->codec == BKR_CODEC_ZSTD) != (features && has_incompat(features, "zstd"))) {
		err = bkr_error_set(BKR_ECORRUPT, "%s: key 'compression.codec' and the feature 'zstd' in "
				    "features.incompat disagree", what);
		goto done;
	}
	if ((err = get_uint(comp, "level", what, 9, &u)) < 0)
		goto done;
	cfg->level = cfg->codec != BKR_CODEC_NONE ? (int)u : 0;
	if (!cfg->level)
		cfg->codec = BKR_CODEC_NONE;
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

/* Read and parse one copy; BKR_ENOTFOUND when absent. */
static int load_one(bkr_repo *r, const char *name, bkr_repo_config *cfg)
{
	char what[PATH_MAX];
	uint8_t *text = NULL;
	size_t len;
	int err;
	if ((err = bkr_store_describe(r->store, name, what, sizeof(what))) < 0 ||
	    (err = bkr_store_get(r->store, name, BKR_REPO_CONFIG_MAX, &text, &len)) < 0)
		goto done;
	err = bkr_repo_config_parse(cfg, (const char *)text, len, what);
done:
	free(text);
	return err;
}

int bkr_repo_config_load(bkr_repo *r)
{
	char *first = NULL; /* config.json's error, whole (it names the repository) */
	bkr_repo_config copy;
	int err = load_one(r, "config.json", &r->cfg), cerr;

	if (err != BKR_ECORRUPT && err != BKR_ENOTFOUND)
		return err;
	/* damaged, or absent (a repair killed while it rewrote it): the copy
	 * written beside it at init holds the same bytes */
	if (!bkr_text_setf(&first, "%s", err == BKR_ENOTFOUND ? "" : bkr_error_message()))
		return bkr_error_oom();
	if ((cerr = load_one(r, BKR_REPO_CONFIG_COPY, &copy)) < 0) {
		if (err == BKR_ENOTFOUND && cerr == BKR_ENOTFOUND && bkr_store_root_missing(r->store) < 0)
			err = BKR_ENOTFOUND; /* not the repository: the bucket it would be in */
		else if (err == BKR_ENOTFOUND && cerr == BKR_ENOTFOUND)
			err = bkr_error_set(BKR_ENOTFOUND, "%s: no config.json: not a bkrfs repository (create "
					    "one with 'bkr init')", r->path);
		else if (err == BKR_ENOTFOUND) /* the copy's error, formatted aside by bkr_error_set: whole */
			err = bkr_error_set(cerr, "%s: config.json is missing; and its copy: %s", r->path,
					    bkr_error_message());
		else
			err = bkr_error_set(err, "%s; and its copy: %s", first,
					    cerr == BKR_ENOTFOUND ? "absent (the repository predates it)"
								  : bkr_error_message());
		free(first);
		return err;
	}
	r->cfg = copy;
	if (err == BKR_ENOTFOUND)
		err = asprintf(&r->config_warning, "%s: config.json is missing; read its copy %s instead "
			       "('bkr repair' rewrites config.json)", r->path, BKR_REPO_CONFIG_COPY);
	else
		err = asprintf(&r->config_warning, "%s; read its copy %s instead ('bkr repair' rewrites config.json)",
			       first, BKR_REPO_CONFIG_COPY);
	free(first);
	if (err < 0) {
		r->config_warning = NULL;
		return bkr_error_oom();
	}
	return 0;
}

/* Replace object @p name of @p s with @p data: remove, then put.  A crash in
 * between leaves it absent, which the reader covers with the other copy. */
static int rewrite(bkr_store *s, const char *name, const uint8_t *data, size_t len)
{
	int err = bkr_store_delete(s, name);
	if (err < 0 && err != BKR_ENOTFOUND)
		return err;
	return bkr_store_put(s, name, data, len);
}

int bkr_repo_config_heal(bkr_repo *r, bool dry_run, const char **fixed)
{
	bkr_repo_config cfg;
	uint8_t *a = NULL, *b = NULL;
	size_t alen = 0, blen = 0;
	int err, ea, eb;

	*fixed = NULL;
	/* one that cannot be read (an I/O error, a server that does not
	 * answer) is not damaged: nothing is rewritten from the other */
	if (bkr_error_not_damage(err = ea = bkr_store_get(r->store, "config.json", BKR_REPO_CONFIG_MAX, &a, &alen)) ||
	    bkr_error_not_damage(err = eb = bkr_store_get(r->store, BKR_REPO_CONFIG_COPY, BKR_REPO_CONFIG_MAX, &b, &blen)))
		goto done;
	if (ea == 0)
		ea = bkr_repo_config_parse(&cfg, (const char *)a, alen, "config.json");
	if (eb == 0)
		eb = bkr_repo_config_parse(&cfg, (const char *)b, blen, BKR_REPO_CONFIG_COPY);
	if (ea == BKR_ENOMEM || eb == BKR_ENOMEM) {
		err = bkr_error_oom();
	} else if (ea == 0 && eb == 0 && alen == blen && !memcmp(a, b, alen)) {
		err = 0;
	} else if (ea == 0) {
		/* config.json is the truth whenever it is intact */
		*fixed = BKR_REPO_CONFIG_COPY;
		err = dry_run ? 0 : rewrite(r->store, BKR_REPO_CONFIG_COPY, a, alen);
	} else if (eb == 0) {
		*fixed = "config.json";
		err = dry_run ? 0 : rewrite(r->store, "config.json", b, blen);
	} else {
		err = bkr_error_set(BKR_ECORRUPT, "%s: config.json and its copy %s are both damaged or missing",
				    r->path, BKR_REPO_CONFIG_COPY);
	}
done:
	free(a);
	free(b);
	return err;
}

int bkr_repo_id_bytes(const bkr_repo_config *cfg, uint8_t out[16])
{
	if (bkr_hex_decode(out, 16, cfg->id) < 0)
		return bkr_error_set(BKR_ECORRUPT, "config.json: key 'id': expected 32 hex characters");
	return 0;
}

static const char *const repo_dirs[] = { "data", "tree", "index", "backups", "runs", "records", "locks", "trash" };

/* A refusal unless @p path is absent or an empty directory. */
static int check_empty(const char *path)
{
	DIR *d = opendir(path);
	struct dirent *de;
	if (!d)
		return errno == ENOENT ? 0 : bkr_error_set_errno(errno, "%s", path);
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..")) {
			closedir(d);
			return bkr_error_set(BKR_EEXISTS, "%s: directory is not empty; refusing to create a repository there", path);
		}
	closedir(d);
	return 0;
}

static int refuse_object(void *ctx, const char *name)
{
	const bkr_store *s = ctx;
	return bkr_error_set(BKR_EEXISTS, "%s: not empty (it holds %s); refusing to create a repository there",
			     bkr_store_location(s), name);
}

/* A refusal unless the store holds no object (a bucket prefix has no directory to check). */
static int check_no_objects(bkr_store *s)
{
	return bkr_store_list(s, "", refuse_object, s);
}

/* Whether location @p loc holds a config.json (a repository, or one being made). */
static bool holds_config(const char *loc)
{
	bkr_store *s = NULL;
	uint64_t size;
	bool yes = bkr_store_open(&s, loc, 0) == 0 && bkr_store_stat(s, "config.json", &size) == 0;
	bkr_store_free(s);
	bkr_error_clear();
	return yes;
}

/*
 * A refusal when @p path lies inside another repository (a folder of it, or
 * a prefix below it in a bucket): the outer one's prune and verify would take
 * the inner one's objects for damaged or unused ones of their own.
 */
static int check_not_inside(const char *path)
{
	char loc[PATH_MAX + 8], *cut;
	size_t keep = 0;

	if (bkr_store_is_url(path)) {
		const char *bucket = strstr(path, "://") + 3, *slash = strchr(bucket, '/');
		if (!slash)
			return 0; /* a whole bucket: nothing above it */
		keep = (size_t)(slash - path);
		snprintf(loc, sizeof(loc), "%s", path);
	} else {
		/* the absolute form of the nearest existing ancestor, and the rest as given */
		char abs[PATH_MAX], dir[PATH_MAX], real[PATH_MAX], cwd[PATH_MAX];
		if (path[0] == '/')
			snprintf(abs, sizeof(abs), "%s", path);
		else if (!getcwd(cwd, sizeof(cwd)) || snprintf(abs, sizeof(abs), "%s/%s", cwd, path) >= (int)sizeof(abs))
			return 0;
		snprintf(dir, sizeof(dir), "%s", abs);
		while (!realpath(dir, real)) {
			if (!(cut = strrchr(dir, '/')) || cut == dir)
				return 0;
			*cut = '\0';
		}
		if (snprintf(loc, sizeof(loc), "%s%s", real, abs + strlen(dir)) >= (int)sizeof(loc))
			return 0;
		keep = 1; /* "/" */
	}
	while ((cut = strrchr(loc, '/')) && (size_t)(cut - loc) >= keep) {
		*cut = '\0';
		if (!loc[0] || (cut > loc && cut[-1] == '/'))
			continue;
		if (holds_config(loc))
			return bkr_error_set(BKR_EINVAL, "%s: inside the repository %s; a repository needs a place of "
					     "its own", path, loc);
	}
	return 0;
}

int bkr_repo_init(const char *path, const bkr_repo_init_options *opts)
{
	bkr_repo_init_options defaults = BKR_REPO_INIT_OPTIONS_INIT;
	bkr_store *s = NULL;
	bkr_crypto *keys = NULL;
	cJSON *root = NULL, *o;
	char *text = NULL, *sealed = NULL, idhex[33], seedhex[17], created[32], key_id[BKR_KEY_ID_HEX];
	uint8_t id[16], *master = NULL;
	const char *pass = NULL;
	size_t passlen = 0;
	uint64_t seed;
	size_t sealed_len;
	bool encrypt, zstd, none;
	int err = 0;

	if (!opts)
		opts = &defaults;
	if (opts->level < 0 || opts->level > 9)
		return bkr_error_set(BKR_EINVAL, "compression level %d: expected 1..9", opts->level);
	if (opts->compression && strcmp(opts->compression, "zlib") && strcmp(opts->compression, "zstd") &&
	    strcmp(opts->compression, "none"))
		return bkr_error_set(BKR_EINVAL, "compression '%s': expected zlib, zstd or none", opts->compression);
	if (opts->encryption && strcmp(opts->encryption, "none") && strcmp(opts->encryption, "aes-256-gcm"))
		return bkr_error_set(BKR_EINVAL, "encryption '%s': expected none or aes-256-gcm", opts->encryption);
	/* "none" compresses nothing: its level is 0 (docs/format.md), and a level
	 * asked for would be written down and never used */
	if (opts->compression && !strcmp(opts->compression, "none") && opts->level)
		return bkr_error_set(BKR_EINVAL, "compression level %d: compression none stores blobs as they are "
				     "(a level goes with zlib or zstd)", opts->level);
	encrypt = opts->encryption && !strcmp(opts->encryption, "aes-256-gcm");
	/* zstd unless told otherwise: as fast as zlib's level 1 and 7 % smaller on
	 * text (docs/design.md "Blob store", measured) */
	zstd = !opts->compression || !strcmp(opts->compression, "zstd");
	if ((!bkr_store_is_url(path) && (err = check_empty(path)) < 0) || (err = check_not_inside(path)) < 0)
		return err;
	/* the passphrase first: without one nothing is created */
	if (encrypt && (err = bkr_key_new_passphrase(true, &pass, &passlen)) < 0)
		return err;
	if ((err = bkr_store_open(&s, path, BKR_STORE_CREATE)) < 0 || (err = check_no_objects(s)) < 0)
		goto done;
	for (size_t i = 0; i < sizeof(repo_dirs) / sizeof(*repo_dirs); i++)
		if ((err = bkr_store_prepare(s, repo_dirs[i])) < 0)
			goto done;
	if ((err = bkr_random_bytes(id, sizeof(id))) < 0 || (err = bkr_random_bytes(&seed, sizeof(seed))) < 0)
		goto done;
	if (encrypt) {
		/* fresh master keys, wrapped in the first key file before config.json
		 * (whose presence makes the repository) is written */
		if (!(master = bkr_secure_alloc(2 * BKR_CRYPTO_KEY_SIZE))) {
			err = bkr_error_oom();
			goto done;
		}
		if ((err = bkr_random_bytes(master, 2 * BKR_CRYPTO_KEY_SIZE)) < 0 ||
		    (err = bkr_crypto_new(&keys, master, master + BKR_CRYPTO_KEY_SIZE, id)) < 0 ||
		    (err = bkr_key_add(s, keys, pass, passlen, key_id)) < 0)
			goto done;
		seed = 0; /* the chunker's seed is secret: derived from the MAC key */
	}
	bkr_hex_encode(id, sizeof(id), idhex);
	bkr_hex_encode(&seed, sizeof(seed), seedhex);
	bkr_time_format(created, bkr_time_now_ns());

	root = cJSON_CreateObject();
	cJSON_AddStringToObject(root, "format", BKR_FORMAT_NAME);
	cJSON_AddNumberToObject(root, "version", BKR_FORMAT_VERSION);
	o = cJSON_AddObjectToObject(root, "features");
	cJSON_AddArrayToObject(o, "compat");
	cJSON_AddArrayToObject(o, "ro_compat");
	o = cJSON_AddArrayToObject(o, "incompat");
	if (encrypt)
		cJSON_AddItemToArray(o, cJSON_CreateString("encryption"));
	if (zstd)
		cJSON_AddItemToArray(o, cJSON_CreateString("zstd"));
	cJSON_AddStringToObject(root, "id", idhex);
	cJSON_AddStringToObject(root, "created", created);
	o = cJSON_AddObjectToObject(root, "chunker");
	cJSON_AddStringToObject(o, "algorithm", "fastcdc");
	cJSON_AddNumberToObject(o, "min", opts->chunk_min ? opts->chunk_min : BKR_CHUNK_MIN);
	cJSON_AddNumberToObject(o, "avg", opts->chunk_avg ? opts->chunk_avg : BKR_CHUNK_AVG);
	cJSON_AddNumberToObject(o, "max", opts->chunk_max ? opts->chunk_max : BKR_CHUNK_MAX);
	cJSON_AddStringToObject(o, "seed", seedhex);
	o = cJSON_AddObjectToObject(root, "compression");
	none = opts->compression && !strcmp(opts->compression, "none");
	cJSON_AddStringToObject(o, "codec", none ? "none" : zstd ? "zstd" : "zlib");
	cJSON_AddNumberToObject(o, "level", none ? 0 : opts->level ? opts->level : zstd ? BKR_ZSTD_LEVEL_DEFAULT : 1);
	cJSON_AddStringToObject(root, "hash", "sha256");
	cJSON_AddStringToObject(root, "encryption", encrypt ? "aes-256-gcm" : "none");
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
		if ((err = bkr_repo_config_parse(&check, sealed, sealed_len, "config.json")) < 0)
			goto done;
	}
	/* the copy first: a repository (config.json) never lacks it */
	if ((err = bkr_store_put(s, BKR_REPO_CONFIG_COPY, sealed, sealed_len)) < 0)
		goto done;
	err = bkr_store_put(s, "config.json", sealed, sealed_len);
done:
	bkr_secure_free(master, 2 * BKR_CRYPTO_KEY_SIZE);
	bkr_crypto_free(keys);
	bkr_store_free(s);
	cJSON_Delete(root);
	free(text);
	free(sealed);
	return err;
}
