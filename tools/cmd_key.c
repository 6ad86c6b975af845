/** @file
 * bkr key list|add|remove|passwd|unlock|lock: the key files of an encrypted
 * repository (docs/security.md "Keys") and the key cache ("Key cache").
 * Every subcommand but lock first opens the repository - add, remove,
 * passwd and unlock with the current passphrase, never the key cache; add
 * and passwd then take a new one.  No data is rewritten.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "lifecycle.h"
#include "bkr/error.h"
#include "bkr/key.h"
#include "bkr/keycache.h"
#include "bkr/manifest.h"
#include "bkr/utf8.h"

static const char usage[] =
	"usage: bkr key list   -r REPO [--json]\n"
	"       bkr key add    -r REPO [--no-wait]\n"
	"       bkr key remove -r REPO ID [--no-wait]\n"
	"       bkr key passwd -r REPO [--no-wait]\n"
	"       bkr key unlock -r REPO [--for DURATION]\n"
	"       bkr key lock   -r REPO\n\n"
	"Manage the key files of an encrypted repository (docs/security.md).  Each key\n"
	"file holds the repository's master keys sealed under one passphrase.\n\n"
	"  list     every key file: id, created, host, user, KDF; '*' marks the one in use\n"
	"  add      one more key file, for a new passphrase\n"
	"  remove   delete key file ID (a unique prefix; a damaged one too); never the last\n"
	"           usable one or the one in use\n"
	"  passwd   replace the key file in use by one under a new passphrase\n"
	"  unlock   hold the key that the passphrase opens in the kernel's key cache, so\n"
	"           that commands and mounts started from this session need no passphrase\n"
	"           until it expires (docs/security.md \"Key cache\"); list says until when\n"
	"  lock     remove it from the key cache now (needs no passphrase)\n\n"
	"  --no-wait  fail at once (status 5) when another key command holds the keys\n"
	"             lock (default: wait for it, saying so)\n"
	"  --for DURATION\n"
	"             how long unlock holds the key: 30s, 15min (the default), 2h; at\n"
	"             most 24h\n\n"
	"The current passphrase comes from --password-file FILE, --password-command CMD,\n"
	"BKR_PASSWORD, or a prompt; a new one from --new-password-file FILE,\n"
	"BKR_NEW_PASSWORD, or a prompt (twice).  Other commands take the key cache's\n"
	"key instead of the prompt (not instead of a passphrase given; BKR_KEY_CACHE=0:\n"
	"never).  Without the passphrase nothing can read the data: keep a second key\n"
	"somewhere safe.\n";

enum { OPT_FOR = OPT_FIRST_CMD + 91 };

struct state {
	bool no_wait;
	const char *dur; /* --for */
};

static int opt(cli *c, int o, const char *arg, void *st)
{
	struct state *s = st;
	if (o == LC_OPT_NO_WAIT) {
		s->no_wait = true;
		return 0;
	}
	if (o == OPT_FOR) {
		s->dur = arg;
		return 0;
	}
	return cli_usage_error(c, "unknown option");
}

/* The keys lock is held: one line naming the holder (on S3 a killed key
 * command's lock stays until it is stale, minutes without a word otherwise). */
static void on_lock_waiting(void *ctx, const char *holder)
{
	cli *c = ctx;
	char esc[4 * 700 + 4];
	if (!c->quiet)
		fprintf(stderr, "bkr key: waiting for the keys lock (%s)...\n",
			bkr_text_escape(esc, sizeof(esc), holder, strlen(holder)));
}

static void warn_key(void *ctx, const char *message)
{
	cli_warn(ctx, "%s (damaged key file left out)", message);
}

static int do_list(cli *c, bkr_repo *r)
{
	bkr_key_file *v = NULL;
	char cached[BKR_KEY_ID_HEX] = "", until[32] = "";
	int64_t expires = 0;
	size_t n = 0;
	int err;

	if ((err = bkr_key_list(bkr_repo_store(r), bkr_crypto_repo_id(bkr_repo_crypto(r)), &v, &n, warn_key, c)) < 0)
		return cli_fail(c, err);
	/* the key cache's entry for this repository, when it fits (one that does not is noted and removed) */
	if ((err = bkr_key_cached(bkr_repo_store(r), bkr_crypto_repo_id(bkr_repo_crypto(r)), cached, &expires)) < 0) {
		free(v);
		return cli_fail(c, err);
	}
	if (err == 0)
		bkr_time_format(until, expires * 1000000000);
	else
		cached[0] = 0;
	if (c->json) {
		json_out j;
		json_out_init(&j, stdout);
		json_out_begin_array(&j);
		for (size_t i = 0; i < n; i++) {
			json_out_begin_object(&j);
			json_out_member(&j, "id", v[i].id);
			json_out_key(&j, "current");
			json_out_bool(&j, !strcmp(v[i].id, bkr_repo_key_id(r)));
			json_out_member(&j, "created", v[i].created);
			json_out_member(&j, "hostname", v[i].hostname);
			json_out_member(&j, "username", v[i].username);
			json_out_key(&j, "cached_until");
			if (!strcmp(v[i].id, cached))
				json_out_string(&j, until);
			else
				json_out_null(&j);
			json_out_key(&j, "kdf");
			json_out_begin_object(&j);
			json_out_member(&j, "algorithm", "scrypt");
			json_out_key(&j, "n");
			json_out_uint(&j, v[i].kdf.n);
			json_out_key(&j, "r");
			json_out_uint(&j, v[i].kdf.r);
			json_out_key(&j, "p");
			json_out_uint(&j, v[i].kdf.p);
			json_out_end_object(&j);
			json_out_end_object(&j);
		}
		json_out_end_array(&j);
	} else {
		/* created, hostname and username are not authenticated (anyone who
		 * can write keys/ sets them): escaped, never sent raw to a terminal */
		char created[4 * sizeof(v->created)], host[4 * sizeof(v->hostname)], user[4 * sizeof(v->username)];
		printf("  %-16s  %-27s  %-20s  %-12s  %s\n", "ID", "CREATED", "HOST", "USER", "KDF");
		for (size_t i = 0; i < n; i++)
			printf("%s %-16s  %-27s  %-20s  %-12s  scrypt N=%llu r=%u p=%u\n",
			       strcmp(v[i].id, bkr_repo_key_id(r)) ? " " : "*", v[i].id,
			       bkr_text_escape(created, sizeof(created), v[i].created, strlen(v[i].created)),
			       bkr_text_escape(host, sizeof(host), v[i].hostname, strlen(v[i].hostname)),
			       bkr_text_escape(user, sizeof(user), v[i].username, strlen(v[i].username)), (unsigned long long)v[i].kdf.n,
			       v[i].kdf.r, v[i].kdf.p);
		/* only when one is held: without 'bkr key unlock' (opt-in) the table is all there is */
		if (cached[0])
			printf("key cache: key %s, until %s ('bkr key lock' removes it)\n", cached, until);
	}
	free(v);
	return 0;
}

/* bkr key unlock: the key that opened @p r, into the key cache for --for. */
static int do_unlock(cli *c, bkr_repo *r, const char *dur)
{
	int64_t seconds = BKR_KEYCACHE_DEFAULT_S, expires = 0;
	char until[32];
	int err;

	if (dur && (err = bkr_config_parse_duration(dur, &seconds)) < 0)
		return cli_usage_error(c, "--for: %s", bkr_error_message());
	if (seconds < 1 || seconds > BKR_KEYCACHE_MAX_S)
		return cli_usage_error(c, "--for %s: expected 1s to 24h (units s, min, h; m is months)", dur);
	if ((err = bkr_repo_key_cache_put(r, seconds, &expires)) < 0)
		return cli_fail(c, err);
	if (!bkr_keycache_enabled())
		cli_warn(c, "BKR_KEY_CACHE=0: the commands run with it set do not use the key cache");
	bkr_time_format(until, expires * 1000000000);
	if (c->json) {
		json_out j;
		json_out_init(&j, stdout);
		json_out_begin_object(&j);
		json_out_member(&j, "key", bkr_repo_key_id(r));
		json_out_member(&j, "until", until);
		json_out_key(&j, "seconds");
		json_out_uint(&j, (uint64_t)seconds);
		json_out_end_object(&j);
	} else if (!c->quiet) {
		printf("key %s cached until %s: commands from this session need no passphrase ('bkr key lock' ends it)\n",
		       bkr_repo_key_id(r), until);
	}
	return 0;
}

/* bkr key lock: the key cache's entry for the repository removed; no key is opened for it. */
static int do_lock(cli *c)
{
	uint8_t id[BKR_CRYPTO_REPO_ID_SIZE];
	bkr_config *cfg = NULL;
	const char *path;
	bool encrypted, removed;
	int err;

	if ((err = cli_repo_needed(c, &cfg, &path)) == 0)
		err = bkr_repo_identify(path, id, &encrypted);
	if (err == 0 && !encrypted)
		err = bkr_error_set(BKR_EINVAL, "%s: the repository is not encrypted: it has no keys", path);
	if (err == 0 && (err = bkr_keycache_drop(id)) == BKR_ENOTFOUND) {
		bkr_error_clear();
		err = 1;
	}
	if (err < 0) {
		bkr_config_free(cfg);
		return cli_fail(c, err);
	}
	removed = err == 0;
	if (c->json) {
		json_out j;
		json_out_init(&j, stdout);
		json_out_begin_object(&j);
		json_out_key(&j, "removed");
		json_out_bool(&j, removed);
		json_out_end_object(&j);
	} else if (!c->quiet) {
		printf(removed ? "the cached key of %s is removed\n" : "no key of %s was cached\n", path);
	}
	bkr_config_free(cfg);
	return 0;
}

/*
 * After passwd: the old passphrase may open another key file still (one that
 * 'bkr key add' made with the same passphrase), and then it was not changed
 * for whoever has it.  Said, naming that key file; a new passphrase that is
 * the old one again opens the new key file, which is no news.
 */
static void warn_old_still_opens(cli *c, bkr_repo *r, const char *pass, size_t len)
{
	const char *old;
	size_t oldlen;
	bkr_crypto *k = NULL;
	char still[BKR_KEY_ID_HEX];

	if (bkr_key_passphrase(bkr_repo_path(r), false, &old, &oldlen) == 0 &&
	    !(oldlen == len && !memcmp(old, pass, len)) &&
	    bkr_key_unlock(bkr_repo_store(r), bkr_crypto_repo_id(bkr_repo_crypto(r)), old, oldlen, &k, still) == 0)
		cli_warn(c, "the old passphrase still opens key %s (made with the same passphrase): "
			 "remove it ('bkr key remove %s') or change it too", still, still);
	bkr_crypto_free(k);
	bkr_error_clear();
}

/* {"added":..,"removed":..} (either may be NULL), or a line. */
static void report(cli *c, const char *added, const char *removed)
{
	if (c->json) {
		json_out j;
		json_out_init(&j, stdout);
		json_out_begin_object(&j);
		if (added)
			json_out_member(&j, "added", added);
		if (removed)
			json_out_member(&j, "removed", removed);
		json_out_end_object(&j);
	} else if (!c->quiet) {
		if (added && removed)
			printf("passphrase changed: key %s replaced by key %s\n", removed, added);
		else
			printf("%s key %s\n", added ? "added" : "removed", added ? added : removed);
	}
}

int cmd_key(cli *c, int argc, char **argv)
{
	bkr_repo *r = NULL;
	char id[BKR_KEY_ID_HEX];
	const char *sub, *pass;
	size_t len;
	int first, err, rc = 0;

	static const struct option lo[] = {
		{ "no-wait", no_argument, NULL, LC_OPT_NO_WAIT },
		{ "for", required_argument, NULL, OPT_FOR },
		{ NULL, 0, NULL, 0 },
	};
	struct state st = { .no_wait = false };
	bool cache_cmd;

	CLI_PARSE(c, argc, argv, usage, "", lo, opt, &st, &first);
	if (first >= argc)
		return cli_usage_error(c, "which one: list, add, remove, passwd, unlock or lock?");
	sub = argv[first++];
	if (strcmp(sub, "list") && strcmp(sub, "add") && strcmp(sub, "remove") && strcmp(sub, "passwd") &&
	    strcmp(sub, "unlock") && strcmp(sub, "lock"))
		return cli_usage_error(c, "unknown subcommand '%s' (list, add, remove, passwd, unlock, lock)", sub);
	if (!strcmp(sub, "remove") ? first + 1 != argc : first != argc)
		return cli_usage_error(c, "%s: %s", sub, !strcmp(sub, "remove") ? "give one key ID" : "no arguments expected");
	cache_cmd = !strcmp(sub, "unlock") || !strcmp(sub, "lock");
	if (st.no_wait && (cache_cmd || !strcmp(sub, "list")))
		return cli_usage_error(c, "%s takes no --no-wait (it takes no lock)", sub);
	if (st.dur && strcmp(sub, "unlock"))
		return cli_usage_error(c, "--for is for unlock");
	if (!strcmp(sub, "lock"))
		return do_lock(c);
	bkr_key_set_lock_wait(st.no_wait, on_lock_waiting, c);
	/* changing who holds a key, or caching one, takes the passphrase: never the cache */
	if ((err = cli_open_repo(c, &r, strcmp(sub, "list") ? BKR_REPO_PASSPHRASE : 0)) < 0)
		return cli_fail(c, err);
	if (!bkr_repo_crypto(r)) {
		rc = cli_failf(c, BKR_EINVAL, "%s: the repository is not encrypted: it has no keys", bkr_repo_path(r));
		goto done;
	}
	if (!strcmp(sub, "list")) {
		rc = do_list(c, r);
	} else if (!strcmp(sub, "unlock")) {
		rc = do_unlock(c, r, st.dur);
	} else if (!strcmp(sub, "remove")) {
		if ((err = bkr_key_remove(bkr_repo_store(r), bkr_crypto_repo_id(bkr_repo_crypto(r)), argv[first], bkr_repo_key_id(r), id)) < 0)
			rc = cli_fail(c, err);
		else
			report(c, NULL, id); /* the full id, not the prefix given */
	} else {
		/* add, passwd: a new key file first; passwd then removes the one in use */
		if ((err = bkr_key_new_passphrase(false, &pass, &len)) < 0 ||
		    (err = bkr_key_add(bkr_repo_store(r), bkr_repo_crypto(r), pass, len, id)) < 0) {
			rc = cli_fail(c, err);
			goto done;
		}
		if (!strcmp(sub, "passwd") && (err = bkr_key_remove(bkr_repo_store(r), bkr_crypto_repo_id(bkr_repo_crypto(r)), bkr_repo_key_id(r), id, NULL)) < 0) {
			/* another holder removed it meanwhile: it is gone, as asked */
			if (err != BKR_ENOTFOUND) {
				rc = cli_failf(c, err, "new key %s written, but the old key %s stays: %s", id,
					       bkr_repo_key_id(r), bkr_error_message());
				goto done;
			}
			bkr_error_clear();
			if (!c->quiet)
				fprintf(stderr, "bkr key: the old key %s was removed by another command meanwhile\n",
					bkr_repo_key_id(r));
		}
		if (!strcmp(sub, "passwd"))
			warn_old_still_opens(c, r, pass, len);
		report(c, id, !strcmp(sub, "passwd") ? bkr_repo_key_id(r) : NULL);
	}
done:
	bkr_repo_free(r);
	bkr_key_forget();
	return rc;
}
