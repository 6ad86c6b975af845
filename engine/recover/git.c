/** @file
 * The git strategy (the only file that uses libgit2): open the configured
 * repository (default: the one containing the workspace, found with
 * git_repository_discover from the file's nearest existing directory, so
 * that a submodule's checkout is its own repository), walk the history of the configured ref newest
 * first with git_revwalk (topological order, so that a commit always comes
 * before its parents even when they share a second; time among branches;
 * a shallow clone's first parents, which git_revwalk cannot walk), and take the newest commit within max_age whose
 * copy of the file validates.  Walking history also finds files deleted in
 * HEAD.  Identical blobs are checked once.  A symlink (GIT_FILEMODE_LINK)
 * is never recovered: its blob is the link text, and writing that as a
 * regular file would be wrong; the walk stops there (not_found), as it
 * does where the path enters a submodule (a gitlink).  An object
 * that cannot be read (a damaged repository) fails the attempt: an older
 * commit's copy is not taken in its place.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <git2.h>

#include "bkr/error.h"
#include "bkr/io.h"
#include "recover_i.h"

static const char *git_msg(void)
{
	const git_error *e = git_error_last();
	return e && e->message ? e->message : "unknown libgit2 error";
}

/*
 * Whether a blob holds what a git filter keeps in the repository in a
 * file's place: a Git LFS pointer (the content is in LFS storage) or a
 * git-crypt ciphertext.  Recovered as they are, they were "recovered"
 * files of the wrong bytes; the filters (smudge) are not run here.
 */
static const char *filter_stand_in(const uint8_t *raw, size_t len)
{
	static const char lfs[] = "version https://git-lfs.github.com/spec/v1\n";
	static const char crypt[] = "\0GITCRYPT\0";

	if (len >= sizeof(lfs) - 1 && len < 1024 && memcmp(raw, lfs, sizeof(lfs) - 1) == 0)
		return "a Git LFS pointer";
	if (len >= sizeof(crypt) - 1 && memcmp(raw, crypt, sizeof(crypt) - 1) == 0)
		return "encrypted by git-crypt";
	return NULL;
}

/* A copy passed over: its commit and why, in the attempt's "rejected". */
static void reject(cJSON *rejected, const char *commit, const char *reason)
{
	cJSON *rj = cJSON_CreateObject();

	if (!rj)
		return;
	cJSON_AddStringToObject(rj, "commit", commit);
	cJSON_AddStringToObject(rj, "reason", reason);
	cJSON_AddItemToArray(rejected, rj);
}

/*
 * Whether @p oid is one of a shallow clone's roots, named in its "shallow"
 * file: the commits whose parents the clone does not hold, where its
 * history ends.  (libgit2 1.5 has no public call for them.)
 */
static bool shallow_root(git_repository *repo, const git_oid *oid)
{
	char path[PATH_MAX], line[128], hex[GIT_OID_HEXSZ + 1];
	bool found = false;
	FILE *fp;

	snprintf(path, sizeof(path), "%sshallow", git_repository_commondir(repo));
	if (!(fp = fopen(path, "re")))
		return false;
	git_oid_tostr(hex, sizeof(hex), oid);
	while (!found && fgets(line, sizeof(line), fp))
		found = strncmp(line, hex, GIT_OID_HEXSZ) == 0;
	fclose(fp);
	return found;
}

/*
 * The next commit of a shallow clone (a CI checkout, "git clone --depth"),
 * the first one being @p oid itself: libgit2 cannot walk such a history
 * (git_revwalk fails on the missing parents of its oldest commits, before
 * it returns any), so first parents are followed by hand, to the commit the
 * clone stops at (a shallow root).  A commit before it that cannot be read
 * is damage, which the caller's lookup reports.
 */
static bool first_parent_next(git_repository *repo, git_oid *oid, bool *started)
{
	git_commit *c = NULL;
	bool more;

	if (!*started)
		return *started = true;
	if (git_commit_lookup(&c, repo, oid) < 0)
		return false;
	if ((more = git_commit_parentcount(c) > 0 && !shallow_root(repo, oid)))
		git_oid_cpy(oid, git_commit_parent_id(c, 0));
	git_commit_free(c);
	return more;
}

/*
 * Where discovery starts for @p rel (into @p out): the nearest directory
 * of the file that exists in the workspace, walked down from the workspace
 * root without following symlinks.  A file in a submodule's checkout (or
 * in any repository nested in the workspace) is then found in that
 * repository, not in the superproject, which holds only a gitlink there.
 */
static void discover_start(const bkr_recover *rc, const char *rel, char *out, size_t n)
{
	const char *p = rel, *slash;
	size_t len;

	snprintf(out, n, "%s", rc->workspace_real ? rc->workspace_real : rc->workspace);
	len = strlen(out);
	while ((slash = strchr(p, '/'))) {
		struct stat st;
		size_t part = (size_t)(slash - p), keep = len;

		if (len + 1 + part >= n)
			break;
		out[len++] = '/';
		memcpy(out + len, p, part);
		len += part;
		out[len] = 0;
		if (lstat(out, &st) < 0 || !S_ISDIR(st.st_mode)) {
			out[keep] = 0;
			break;
		}
		p = slash + 1;
	}
}

/*
 * Whether @p gpath, not found in @p tree, goes through a submodule there (a
 * gitlink: a tree entry of type commit): its part up to the submodule goes
 * into @p sub.  The superproject never holds the file's copies beyond that
 * point; an older commit's, from before the path became a submodule, is not
 * the file as it is now.
 */
static bool in_submodule(git_tree *tree, const char *gpath, char *sub, size_t n)
{
	const char *slash = gpath;
	bool found = false;

	while (!found && (slash = strchr(slash, '/'))) {
		git_tree_entry *te = NULL;

		if ((size_t)(slash - gpath) >= n)
			break;
		memcpy(sub, gpath, (size_t)(slash - gpath));
		sub[slash - gpath] = 0;
		if (git_tree_entry_bypath(&te, tree, sub) < 0)
			break;
		found = git_tree_entry_type(te) == GIT_OBJECT_COMMIT;
		git_tree_entry_free(te);
		slash++;
	}
	return found;
}

/*
 * The repository of job @p j into *@p repo: the strategy's "repository", else
 * the one that holds the file (discover_start); and the file's path inside it
 * into @p gpath (PATH_MAX): the strategy's "prefix" joined with the file's
 * path, else the file's path below the work tree.  A failure is the
 * attempt's (bkr_rec_fail), *@p repo then the caller's to free all the same.
 */
static int open_repo(const bkr_rec_job *j, bkr_rec_outcome *o, git_repository **repo, char *gpath)
{
	const bkr_recover *rc = j->rc;
	git_buf found = { 0 };
	int err = 0;

	if (j->s->git_repository) {
		if (git_repository_open_ext(repo, j->s->git_repository, GIT_REPOSITORY_OPEN_NO_SEARCH, NULL) < 0) {
			err = bkr_rec_fail(o, BKR_EUNAVAILABLE, "git repository %s: %s", j->s->git_repository, git_msg());
			goto done;
		}
	} else {
		char start[PATH_MAX];
		discover_start(rc, j->rel, start, sizeof(start));
		if (git_repository_discover(&found, start, 0, NULL) < 0) {
			err = bkr_rec_fail(o, BKR_EUNAVAILABLE, "no git repository contains the workspace %s",
					   rc->workspace);
			goto done;
		}
		if (git_repository_open(repo, found.ptr) < 0) {
			err = bkr_rec_fail(o, BKR_EUNAVAILABLE, "git repository %s: %s", found.ptr, git_msg());
			goto done;
		}
	}
	if (j->s->git_prefix) {
		if (snprintf(gpath, PATH_MAX, "%s%s%s", j->s->git_prefix, *j->s->git_prefix ? "/" : "", j->rel) >= PATH_MAX) {
			err = bkr_rec_fail(o, BKR_EINVAL, "%s/%s: path too long (the \"prefix\" of %s and the file's path)",
					   j->s->git_prefix, j->rel, j->s->key);
			goto done;
		}
	} else {
		const char *wd = git_repository_workdir(*repo), *rest = NULL;
		char wdreal[PATH_MAX], abs[PATH_MAX];
		if (!wd) {
			err = bkr_rec_fail(o, BKR_EINVAL, "git repository is bare: set \"prefix\" in %s", j->s->key);
			goto done;
		}
		if (!realpath(wd, wdreal))
			snprintf(wdreal, sizeof(wdreal), "%s", wd);
		snprintf(abs, sizeof(abs), "%s/%s", rc->workspace_real ? rc->workspace_real : rc->workspace, j->rel);
		if (!(rest = bkr_path_under(abs, wdreal)) || !*rest) {
			err = bkr_rec_fail(o, BKR_EINVAL,
					   "the workspace is not inside the git work tree %s: set \"prefix\" in %s", wdreal,
					   j->s->key);
			goto done;
		}
		snprintf(gpath, PATH_MAX, "%s", rest);
	}
done:
	git_buf_dispose(&found);
	return err;
}

/*
 * Where the walk of @p ref's history starts: the commit it names into @p oid
 * and, unless the clone is @p shallow (first_parent_next walks it), a
 * revwalk from it into *@p walk (the caller's to free, even on failure).  A
 * failure is the attempt's (bkr_rec_fail).
 */
static int history_start(git_repository *repo, const char *ref, bool shallow, bkr_rec_outcome *o, git_oid *oid,
			 git_revwalk **walk)
{
	git_object *obj = NULL, *peeled = NULL;
	int err = 0;

	if (git_revparse_single(&obj, repo, ref) < 0) {
		err = bkr_rec_fail(o, BKR_ENOTFOUND, "git ref '%s': %s", ref, git_msg());
		goto done;
	}
	if (git_object_peel(&peeled, obj, GIT_OBJECT_COMMIT) < 0) {
		err = bkr_rec_fail(o, BKR_ENOTFOUND, "git ref '%s' is not a commit: %s", ref, git_msg());
		goto done;
	}
	git_oid_cpy(oid, git_object_id(peeled));
	if (!shallow &&
	    (git_revwalk_new(walk, repo) < 0 || git_revwalk_sorting(*walk, GIT_SORT_TOPOLOGICAL | GIT_SORT_TIME) < 0 ||
	     git_revwalk_push(*walk, oid) < 0))
		err = bkr_rec_fail(o, BKR_ERROR, "git revwalk: %s", git_msg());
done:
	git_object_free(peeled);
	git_object_free(obj);
	return err;
}

int bkr_rec_try_git(const bkr_rec_job *j, bkr_rec_outcome *o)
{
	bkr_recover *rc = j->rc;
	git_repository *repo = NULL;
	git_revwalk *walk = NULL;
	git_odb *odb = NULL;
	git_oid oid, last_blob;
	bool have_last = false, symlink_at = false, submodule_at = false;
	const char *stand_in = NULL; /* what a git filter keeps in the blob in the file's place */
	char *damaged = NULL; /* why an object could not be read */
	char gpath[PATH_MAX], hex[GIT_OID_HEXSZ + 1], sub[PATH_MAX];
	const char *ref = j->s->git_ref ? j->s->git_ref : "HEAD";
	cJSON *rejected = cJSON_CreateArray();
	int64_t now = (int64_t)time(NULL), commits = 0, candidates = 0;
	int err = 0, walked = 0;
	bool shallow, started = false;

	git_libgit2_init();
	if (!rejected) {
		err = bkr_error_oom();
		goto done;
	}
	if ((err = open_repo(j, o, &repo, gpath)) < 0)
		goto done;
	shallow = git_repository_is_shallow(repo) == 1;
	if (git_repository_odb(&odb, repo) < 0) {
		err = bkr_rec_fail(o, BKR_EUNAVAILABLE, "git repository %s: %s", git_repository_path(repo), git_msg());
		goto done;
	}
	if ((err = history_start(repo, ref, shallow, o, &oid, &walk)) < 0)
		goto done;
	while (shallow ? first_parent_next(repo, &oid, &started) : (walked = git_revwalk_next(&oid, walk)) == 0) {
		git_commit *commit = NULL;
		git_tree *tree = NULL;
		git_tree_entry *te = NULL;
		git_blob *blob = NULL;
		git_object_t htype;
		size_t hsize = 0;
		char *why = NULL;
		int r = 0;

		if (++commits > j->s->git_max_commits)
			break;
		if (git_commit_lookup(&commit, repo, &oid) < 0) {
			/* the walk reached it, so it belongs to the history: damage, as
			 * a commit the revwalk cannot read (never a history's end) */
			walked = GIT_ERROR;
			break;
		}
		if (j->s->max_age_s && (int64_t)git_commit_time(commit) < now - j->s->max_age_s) {
			git_commit_free(commit);
			break;
		}
		git_oid_tostr(hex, sizeof(hex), &oid);
		/* GIT_ENOTFOUND: the path is not in this commit; any other error is a
		 * tree that cannot be read, which may hold a newer copy: damage, as
		 * for a blob below, never a commit without the file */
		if (git_commit_tree(&tree, commit) < 0 || (r = git_tree_entry_bypath(&te, tree, gpath)) < 0) {
			if (tree && r == GIT_ENOTFOUND) {
				if (!in_submodule(tree, gpath, sub, sizeof(sub)))
					goto next;
				/* stop here, as for a symlink: older copies are not the file now */
				reject(rejected, hex, "in a git submodule");
				submodule_at = true;
				git_tree_free(tree);
				git_commit_free(commit);
				break;
			}
			if (asprintf(&damaged, "the tree of %s in commit %s cannot be read: %s; the repository is "
				     "damaged (see git fsck), and older commits are not used in its place",
				     gpath, hex, git_msg()) < 0)
				damaged = NULL;
			reject(rejected, hex, "unreadable: the repository is damaged");
			git_tree_free(tree);
			git_commit_free(commit);
			break;
		}
		if (git_tree_entry_type(te) != GIT_OBJECT_BLOB)
			goto next;
		if (git_tree_entry_filemode(te) == GIT_FILEMODE_LINK) {
			/* a symlink: its blob is the link text, never the file's content; the git
			 * strategy does not make symlinks, and an older regular copy would not be
			 * what the file is now: stop here (the next strategy may restore it) */
			reject(rejected, hex, "a symlink in git");
			symlink_at = true;
			git_tree_entry_free(te);
			git_tree_free(tree);
			git_commit_free(commit);
			break;
		}
		if (have_last && git_oid_equal(&last_blob, git_tree_entry_id(te)))
			goto next; /* the same bytes as the commit just rejected */
		git_oid_cpy(&last_blob, git_tree_entry_id(te));
		have_last = true;
		candidates++;
		/* the size from the object's header first: git_blob_lookup inflates all of it */
		if (git_odb_read_header(&hsize, &htype, odb, git_tree_entry_id(te)) < 0 ||
		    ((uint64_t)hsize <= BKR_REC_MAX_FILE && git_blob_lookup(&blob, repo, git_tree_entry_id(te)) < 0)) {
			/* the object cannot be read: the repository is damaged.  Not the same as a
			 * copy that does not validate: taking an older commit's copy here would
			 * silently lose the newer one (restic and borg stop with an error on
			 * damaged data too), so the attempt fails, naming the commit */
			char ohex[GIT_OID_HEXSZ + 1];
			git_oid_tostr(ohex, sizeof(ohex), git_tree_entry_id(te));
			if (asprintf(&damaged, "git object %s (%s in commit %s) cannot be read: %s; the repository is "
				     "damaged (see git fsck), and older commits are not used in its place",
				     ohex, gpath, hex, git_msg()) < 0)
				damaged = NULL;
			why = strdup("unreadable: the repository is damaged");
		} else if ((uint64_t)hsize > BKR_REC_MAX_FILE) {
			if (asprintf(&why, "too large (%zu bytes; the git strategy stops at %u MiB)", hsize,
				     BKR_REC_MAX_FILE >> 20) < 0)
				why = NULL;
		} else if ((uint64_t)git_blob_rawsize(blob) > BKR_REC_MAX_FILE) {
			why = strdup("too large");
		} else if ((stand_in = filter_stand_in(git_blob_rawcontent(blob), (size_t)git_blob_rawsize(blob)))) {
			/* not the file: older commits hold stand-ins too, or an older file than
			 * the one it is now; stop here, as for a symlink */
			why = strdup(stand_in);
		} else {
			const uint8_t *raw = git_blob_rawcontent(blob);
			size_t len = (size_t)git_blob_rawsize(blob);
			r = bkr_rec_validate(rc, j->rel, raw, len, j->nonempty, &why);
			if (r < 0) {
				why = strdup(bkr_error_message());
			} else if (r == 1) {
				if (!(o->data = malloc(len ? len : 1))) {
					err = bkr_error_oom();
				} else {
					memcpy(o->data, raw, len);
					o->len = len;
					o->mode = git_tree_entry_filemode(te) == GIT_FILEMODE_BLOB_EXECUTABLE ? 0755 : 0644;
					o->mtime_ns = (int64_t)git_commit_time(commit) * 1000000000LL;
					if ((o->source = cJSON_CreateObject())) {
						cJSON_AddStringToObject(o->source, "repository",
									git_repository_path(repo));
						cJSON_AddStringToObject(o->source, "ref", ref);
						cJSON_AddStringToObject(o->source, "commit", hex);
						cJSON_AddStringToObject(o->source, "path", gpath);
						cJSON_AddNumberToObject(o->source, "commit_time",
									(double)git_commit_time(commit));
						cJSON_AddItemToObject(o->source, "rejected", rejected);
						rejected = NULL;
					}
				}
				git_blob_free(blob);
				git_tree_entry_free(te);
				git_tree_free(tree);
				git_commit_free(commit);
				goto done;
			}
		}
		reject(rejected, hex, why ? why : "unknown");
		free(why);
		git_blob_free(blob);
		if (damaged || stand_in) {
			git_tree_entry_free(te);
			git_tree_free(tree);
			git_commit_free(commit);
			break;
		}
	next:
		git_tree_entry_free(te);
		git_tree_free(tree);
		git_commit_free(commit);
	}
	if ((o->source = cJSON_CreateObject())) {
		cJSON_AddStringToObject(o->source, "repository", git_repository_path(repo));
		cJSON_AddStringToObject(o->source, "ref", ref);
		cJSON_AddStringToObject(o->source, "path", gpath);
		cJSON_AddItemToObject(o->source, "rejected", rejected);
		rejected = NULL;
	}
	if (walked < 0 && walked != GIT_ITEROVER)
		err = bkr_rec_fail(o, BKR_ERROR, "the history of git ref '%s' cannot be walked: %s (see git fsck)", ref,
				   git_msg());
	else if (damaged)
		err = bkr_rec_fail(o, BKR_ERROR, "%s", damaged);
	else if (stand_in)
		err = bkr_rec_fail(o, BKR_ENOTFOUND,
				   "%s is %s in git commit %.12s, not the file's content: the git strategy does not "
				   "run git's filters (Git LFS, git-crypt)",
				   gpath, stand_in, hex);
	else if (submodule_at)
		err = bkr_rec_fail(o, BKR_ENOTFOUND,
				   "%s is in the git submodule '%s' in commit %.12s of %s: the git strategy reads one "
				   "repository; set \"repository\" in %s to the submodule's",
				   gpath, sub, hex, git_repository_path(repo), j->s->key);
	else if (symlink_at)
		err = bkr_rec_fail(o, BKR_ENOTFOUND,
				   "%s is a symlink in git commit %.12s: the git strategy does not restore symlinks",
				   gpath, hex);
	else if (!candidates)
		err = bkr_rec_fail(o, BKR_ENOTFOUND, "no commit of %s%s has %s", ref,
				   j->s->max_age_s ? " within max_age" : "", gpath);
	else
		err = bkr_rec_fail(o, BKR_ECORRUPT, "no valid copy of %s in %lld commit%s of %s", gpath,
				   (long long)candidates, candidates == 1 ? "" : "s", ref);
done:
	free(damaged);
	cJSON_Delete(rejected);
	git_revwalk_free(walk);
	git_odb_free(odb);
	git_repository_free(repo);
	git_libgit2_shutdown();
	return err;
}
