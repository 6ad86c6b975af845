/** @file
 * Backup manifests (backups/<id>.json), recovery-run manifests (runs/<id>.json)
 * and the checksummed-JSON convention shared by every repository JSON file
 * (docs/format.md "Checksummed JSON", "Manifests").
 */
#ifndef BKR_MANIFEST_H
#define BKR_MANIFEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bkr/hash.h"

typedef enum {
	BKR_BACKUP_FULL = 0,
	BKR_BACKUP_INCREMENTAL,
	BKR_BACKUP_DIFFERENTIAL,
	BKR_BACKUP_SNAPSHOT,
	BKR_BACKUP_RECOVERY, /**< a recovery run (runs/) */
} bkr_backup_type;

const char *bkr_backup_type_name(bkr_backup_type t);
/** BKR_EINVAL naming @p s when it is not a type name. */
int bkr_backup_type_parse(const char *s, bkr_backup_type *out);

typedef struct {
	char *source;        /**< name: also the top-level directory in the tree */
	char *path;          /**< absolute path it was read from */
	uint64_t files_backed_up;
	uint64_t total_size_bytes;
	bkr_id tree;         /**< the "checksum" field: the source's subtree id */
	char *compression;   /**< "zlib" or "none" */
} bkr_manifest_source;

typedef struct {
	uint64_t files, dirs, bytes;
	uint64_t new_bytes, reused_bytes, stored_bytes;
	uint64_t new_blobs, reused_blobs;
	/** entries carrying an xattr of the "security." namespace (SELinux
	 *  labels, capabilities); BKR_STATS_UNKNOWN in manifests older than
	 *  the field.  bkrfs answers EOPNOTSUPP for security.* names of a backup
	 *  with none, so `ls -l` stops asking (docs/mount.md). */
	uint64_t security_xattrs;
	/** entries carrying a POSIX ACL (system.posix_acl_access or
	 *  system.posix_acl_default); BKR_STATS_UNKNOWN in manifests older than
	 *  the field.  Used by bkrfs as security_xattrs is. */
	uint64_t acl_xattrs;
} bkr_backup_stats;

#define BKR_STATS_UNKNOWN UINT64_MAX

/** A parsed manifest.  All strings are owned (free with bkr_manifest_free). */
typedef struct {
	char *backup_id;
	char *timestamp;     /**< "YYYY-MM-DDTHH:MM:SS.uuuuuuZ" */
	int64_t time_ns;     /**< the same, parsed */
	bkr_backup_type type;
	char *parent;        /**< NULL for none */
	bkr_id tree;         /**< root tree */
	char **tags; size_t ntags;
	bkr_manifest_source *sources; size_t nsources;
	char *hostname;
	char *workspace_root;
	double duration_seconds;
	char *integrity_check;   /**< "passed", "failed", "skipped" */
	char *restore_test;
	bkr_backup_stats stats;
	char *pinned_until;  /**< snapshots: NULL = not pinned, "" = forever, else an ISO date */
	char **warnings; size_t nwarnings;
	bkr_id report;       /**< recovery runs: blob id of report.json (zero otherwise) */
} bkr_manifest;

bkr_manifest *bkr_manifest_new(void);
void bkr_manifest_free(bkr_manifest *m);

/** Whether @p s can name a directory (the mount's /by-source/S, /by-tag/T):
 *  not NULL or empty, not . or .., no '/'.  A manifest's source names must. */
bool bkr_manifest_name_safe(const char *s);

/** Parse and checksum-verify; BKR_ECORRUPT naming @p what (the file) and the key. */
int bkr_manifest_parse(bkr_manifest **out, const char *json, size_t len, const char *what);

/** Encode as checksummed compact JSON; *json is malloc'd, NUL-terminated. */
int bkr_manifest_encode(const bkr_manifest *m, char **json, size_t *len);

/** The manifest as a cJSON-free JSON text with "sha256" removed (for `--json` output); malloc'd. */
char *bkr_manifest_to_json(const bkr_manifest *m, bool pretty);

/** Append "sha256" as the last member of the JSON object text @p obj (compact, no trailing ws). */
int bkr_json_seal(const char *obj, char **out, size_t *out_len);
/** Check the "sha256" member of a sealed JSON text; BKR_ECORRUPT naming @p what. */
int bkr_json_verify(const char *text, size_t len, const char *what);

typedef struct bkr_store bkr_store;
struct cJSON;
/** Seal the JSON object @p o (bkr_json_seal of its compact text) and publish it as @p name in
 *  @p s (bkr_store_put: BKR_EEXISTS when it is there).  @p o stays the caller's. */
int bkr_json_put(bkr_store *s, const char *name, const struct cJSON *o);

/**
 * Find the first of @p names (in order) that repeats an earlier one, in
 * O(n log n) (the duplicate-key checks of manifests and the configuration).
 * Returns 1 and sets *at to its index, 0 when all differ, or BKR_ENOMEM.
 */
int bkr_json_find_repeat(size_t *at, const char *const *names, size_t n);

/** New backup id "backup_YYYYMMDD_HHMMSS_<type>_<8 hex>" for @p time_ns (UTC). */
int bkr_backup_id_new(char *out, size_t cap, bkr_backup_type type, int64_t time_ns);
/** Format @p time_ns as "YYYY-MM-DDTHH:MM:SS.uuuuuuZ". */
void bkr_time_format(char out[32], int64_t time_ns);
/** Parse ISO-8601 UTC ("...Z", fraction optional) or "YYYY-MM-DD"; BKR_EINVAL. */
int bkr_time_parse(const char *s, int64_t *time_ns);
/** CLOCK_REALTIME in ns. */
int64_t bkr_time_now_ns(void);

#endif
