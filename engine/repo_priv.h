/** @file
 * What the repository's modules (repo.c, repo_config.c, writer.c,
 * catalog.c, lock.c) share and nothing else sees: the bkr_repo itself.
 */
#ifndef BKR_REPO_PRIV_H
#define BKR_REPO_PRIV_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "bkr/repo.h"
#include "bkr/store.h"

#define BKR_REPO_CONFIG_MAX (1u << 20)
#define BKR_REPO_TIERS_MAX 16

struct bkr_repo {
	char *path;
	bkr_repo_config cfg;
	int flags;
	bkr_store *store;             /* the repository: metadata, hot packs, trash, locks */
	/* Places 1..ntiers (place 0 is the repository): recorded tiers, then
	 * ones added by the caller.  Only ever appended to (readers use them
	 * without a lock): a slot is filled, then ntiers is stored (release). */
	pthread_mutex_t tier_lock;    /* serializes appends */
	struct repo_tier {
		char *name;
		bkr_store *store;
		bool recorded;
	} tiers[BKR_REPO_TIERS_MAX];
	size_t ntiers;
	uint64_t place_cache[256];    /* pack id prefix -> place + 1 where it was last found */
	pthread_rwlock_t index_lock;  /* guards index (swap on reload) */
	bkr_index *index;
	/* BKR_REPO_RETAIN_INDEX: indexes replaced by a reload that dropped files, newest last */
	bkr_index *retained[BKR_REPO_RETAINED_MAX];
	int64_t retained_ns[BKR_REPO_RETAINED_MAX];
	size_t nretained;
	pthread_mutex_t miss_lock;    /* one reload of the index on a reader's miss */
	bool miss_reloaded;
	char *config_warning;         /* config.json was damaged and its copy served (or NULL) */
	bkr_crypto *crypto;           /* master keys of an encrypted repository, else NULL */
	char key_id[17];              /* the key file that opened it */
	uint8_t *kek;                 /* BKR_REPO_PASSPHRASE: that key file's derived key (bkr_secure_alloc) */
	/* the latest time in a records/ name this process listed or wrote (0:
	 * none yet): a new record is named after it (catalog.c, record_time) */
	atomic_bool records_listed;
	atomic_llong records_newest_ns;
};

/** The 16 bytes of the config's id. */
int bkr_repo_id_bytes(const bkr_repo_config *cfg, uint8_t out[16]);

/** Parse and check config.json (@p what names it in messages). */
int bkr_repo_config_parse(bkr_repo_config *cfg, const char *text, size_t len, const char *what);

/** The copy of config.json written beside it at init, read when it is damaged. */
#define BKR_REPO_CONFIG_COPY "config.copy.json"

/**
 * Read and check config.json into r->cfg; when it is damaged (not when it is
 * missing, or names a format or feature this bkr does not know), fall back to
 * its copy and set r->config_warning.
 */
int bkr_repo_config_load(bkr_repo *r);

/** 0, or BKR_EUNSUPPORTED naming why @p r may not be written. */
int bkr_repo_check_writable(const bkr_repo *r);

#endif
