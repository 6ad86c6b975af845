/** @file
 * The interface between libbkr and the bkr-mongodb module (mongo_fetch.c),
 * the only code linked with mongo-c-driver.  libmongoc initialises itself
 * when it is loaded (a shared-memory segment /dev/shm/mongoc-PID per process,
 * left behind when the process is killed, and a warning on stderr when a
 * stale one has the same pid), so it is loaded only by a recovery that uses
 * the mongodb strategy, with MONGOC_DISABLE_SHM set (recover/mongodb.c).
 * Plain C types only: the module calls nothing in libbkr.
 */
#ifndef BKR_MONGO_FETCH_H
#define BKR_MONGO_FETCH_H

#include <stddef.h>
#include <stdint.h>

#define BKR_MONGO_ABI 3

struct bkr_mongo_query {
	const char *uri, *database, *collection;
	const char *filter;      /**< JSON (captures already substituted) */
	const char *sort;        /**< JSON or NULL */
	const char *projection;  /**< JSON or NULL */
	const char *key;         /**< the strategy's config key, for messages */
	int as_array;            /**< all documents as one array, else the first */
	int64_t limit;           /**< as_array: 0 = no limit */
	int32_t server_selection_timeout_ms, socket_timeout_ms, connect_timeout_ms;
	int64_t timeout_ms;      /**< the whole query, checked between documents (a cursor that never ends) */
	size_t max_bytes;        /**< the result may not be larger */
};

enum bkr_mongo_status {
	BKR_MONGO_OK = 0,
	BKR_MONGO_INVALID,       /**< bad uri, filter, sort or projection */
	BKR_MONGO_UNREACHABLE,   /**< no server, connection or stream failure */
	BKR_MONGO_SERVER,        /**< the server answered with an error */
	BKR_MONGO_NOMEM,         /**< out of memory, or the result too large */
	BKR_MONGO_BADDOC,        /**< a document cannot be written as JSON, or a reply is malformed */
	BKR_MONGO_TIMEOUT,       /**< not done within timeout_ms */
};

struct bkr_mongo_result {
	char *data;              /**< malloc'd relaxed extended JSON, '\n'-terminated */
	size_t len;
	size_t ndocs;
	char msg[512];           /**< what failed (status != OK) */
};

/** Run the query: the first document, or `[\n` doc `,\n` doc `\n]`, then '\n'. */
typedef int (*bkr_mongo_fetch_fn)(const struct bkr_mongo_query *q, struct bkr_mongo_result *r);
typedef void (*bkr_mongo_cleanup_fn)(void);

/**
 * libmongoc's own log lines (it prints them to stdout by default, which
 * would break `bkr ... --json`): the module sends them here instead, @p
 * level as bkr_log_level (0 debug, 1 info, 2 warn, 3 error; trace lines are
 * dropped); with no function set they are dropped.  Set before the first
 * query (bkr_mongo_set_log(NULL) drops them).
 */
typedef void (*bkr_mongo_log_fn)(int level, const char *domain, const char *message);
typedef void (*bkr_mongo_set_log_fn)(bkr_mongo_log_fn fn);

#endif
