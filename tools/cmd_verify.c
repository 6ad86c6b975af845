/** @file
 * bkr verify: check the repository and name every damaged object with the
 * backups and paths it affects.
 */
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "bkr/error.h"
#include "bkr/log.h"
#include "bkr/verify.h"
#include "bkr/verify_record.h"

static const char usage[] =
	"usage: bkr verify -r REPO [ID] [--read-data] [--json]\n\n"
	"Check manifests, the index, that every pack exists, and every tree of every\n"
	"backup and recovery run (or of backup or run ID), and each run's report.\n"
	"--read-data also reads every blob and checks its hash.  Each problem names\n"
	"the damaged object and the backups or runs and paths that use it.\n"
	"Unreferenced packs left by interrupted backups are reported as leftovers,\n"
	"which are not errors.  A pack, tree, manifest or config file that cannot be\n"
	"read (an I/O error) is named as such, not as damage, and the rest is checked.\n"
	"Each run is recorded in the repository (docs/format.md \"Verify records\"):\n"
	"'bkr repair' takes the damaged blobs it found out of the index.\n"
	"Exit status: 0 every check passed, 1 problems found, 7 something could not\n"
	"be read (whatever else was found).\n";

enum { OPT_READ_DATA = OPT_FIRST_CMD };

struct state {
	bkr_verify_options o;
	cli *c;
	FILE *problems;   /* --json: the problems array, in memory until the summary */
	json_out pj;
	char *buf;
	size_t buflen;
};

static int opt(cli *c, int o, const char *arg, void *st)
{
	struct state *s = st;
	if (o == OPT_READ_DATA) {
		s->o.read_data = true;
		return 0;
	}
	return cli_usage_error(c, "unknown option");
}

static const char *kind_name(bkr_verify_kind k)
{
	switch (k) {
	case BKR_VERIFY_MANIFEST: return "manifest";
	case BKR_VERIFY_PACK: return "pack";
	case BKR_VERIFY_BLOB: return "blob";
	case BKR_VERIFY_TREE: return "tree";
	case BKR_VERIFY_MISSING: return "missing";
	case BKR_VERIFY_DAMAGED_FILE: return "damaged-file";
	case BKR_VERIFY_LEFTOVER: return "leftover";
	case BKR_VERIFY_INDEX: return "index";
	case BKR_VERIFY_CONFIG: return "config";
	case BKR_VERIFY_RECORD: return "record";
	case BKR_VERIFY_IO: return "io-error";
	}
	return "?";
}

static void on_problem(void *ctx, const bkr_verify_problem *p)
{
	struct state *s = ctx;
	bkr_log_event(p->error ? BKR_LOG_ERROR : BKR_LOG_WARN, "verify", p->error ? "problem" : "leftover",
		      (const char *[]){ "kind", kind_name(p->kind), "object", p->object ? p->object : "",
					p->run ? "run_id" : "backup_id", p->backup_id ? p->backup_id : "",
					"path", p->path ? p->path : "", NULL },
		      "%s", p->message);
	if (s->c->json) {
		json_out *j = &s->pj;
		json_out_begin_object(j);
		json_out_member(j, "kind", kind_name(p->kind));
		json_out_key(j, "error");
		json_out_bool(j, p->error);
		json_out_member(j, "object", p->object ? p->object : "");
		if (p->backup_id)
			json_out_member(j, p->run ? "run_id" : "backup_id", p->backup_id);
		if (p->path)
			json_out_path(j, "path", p->path, strlen(p->path));
		json_out_member(j, "message", p->message);
		if (p->nindex_files) {
			json_out_key(j, "index_files");
			json_out_begin_array(j);
			for (size_t i = 0; i < p->nindex_files; i++)
				json_out_string(j, p->index_files[i]);
			json_out_end_array(j);
		}
		json_out_end_object(j);
		return;
	}
	cli_progress_done(s->c);
	if (!p->error) {
		cli_warn(s->c, "leftover: %s", p->message);
	} else if (p->backup_id) {
		/* the path quoted when it holds a control character: a newline would forge a line */
		fprintf(stdout, "%s%s%s %s%s: ", cli_col(s->c, "red"), kind_name(p->kind), cli_col(s->c, "reset"),
			p->run ? "recovery run " : "", p->backup_id);
		cli_print_name(stdout, p->path ? p->path : "", p->path ? strlen(p->path) : 0);
		fprintf(stdout, ": %s\n", p->message);
	} else {
		/* a message that begins with its kind ("blob X: ...", "pack X is ...") is not given it twice */
		const char *kind = kind_name(p->kind);
		size_t kl = strlen(kind);
		bool named = !strncmp(p->message, kind, kl) && p->message[kl] == ' ';
		fprintf(stdout, "%s%s%s %s\n", cli_col(s->c, "red"), kind, cli_col(s->c, "reset"),
			named ? p->message + kl + 1 : p->message);
	}
}

int cmd_verify(cli *c, int argc, char **argv)
{
	static const struct option lo[] = {
		{ "read-data", no_argument, NULL, OPT_READ_DATA },
		{ NULL, 0, NULL, 0 },
	};
	struct state s = { .o = BKR_VERIFY_OPTIONS_INIT, .c = c };
	bkr_verify_stats st;
	char *unrecorded = NULL;
	bkr_repo *repo = NULL;
	int first, err, rc;

	CLI_PARSE(c, argc, argv, usage, "", lo, opt, &s, &first);
	if (argc - first > 1)
		return cli_usage_error(c, "expected at most one backup ID");
	s.o.backup = first < argc ? argv[first] : NULL;
	s.o.report = on_problem;
	s.o.report_ctx = &s;
	s.o.progress = cli_verify_progress;
	s.o.progress_ctx = c;
	if ((err = cli_open_repo(c, &repo, 0)) < 0)
		return cli_fail(c, err);
	if (c->json) {
		if (!(s.problems = open_memstream(&s.buf, &s.buflen))) {
			rc = cli_fail(c, bkr_error_oom());
			goto done;
		}
		json_out_init(&s.pj, s.problems);
		json_out_begin_array(&s.pj);
	}
	err = bkr_verify_run_recorded(&unrecorded, repo, &s.o, &st);
	cli_progress_done(c);
	/* a repository that cannot take the record still gets its answer */
	if (unrecorded)
		cli_warn(c, "the result could not be recorded in the repository: %s", unrecorded);
	free(unrecorded);
	/* what could not be read (an I/O error) was named: the rest was checked */
	bool unread = err == BKR_EIO && st.io_errors;
	if (err < 0 && err != BKR_ECORRUPT && !unread) {
		rc = cli_fail(c, err);
		goto done;
	}
	rc = err < 0 ? BKR_EXIT_FOUND : 0;
	{
		char n[6][24];
		snprintf(n[0], sizeof(n[0]), "%llu", (unsigned long long)st.backups);
		snprintf(n[4], sizeof(n[4]), "%llu", (unsigned long long)st.runs);
		snprintf(n[1], sizeof(n[1]), "%llu", (unsigned long long)st.errors);
		snprintf(n[2], sizeof(n[2]), "%llu", (unsigned long long)st.leftovers);
		snprintf(n[3], sizeof(n[3]), "%llu", (unsigned long long)st.bytes_read);
		snprintf(n[5], sizeof(n[5]), "%llu", (unsigned long long)st.io_errors);
		bkr_log_event(err ? BKR_LOG_ERROR : BKR_LOG_INFO, "verify", "verified",
			      (const char *[]){ "ok", err ? "false" : "true", "read_data", s.o.read_data ? "true" : "false",
						"backup", s.o.backup ? s.o.backup : "", "backups", n[0], "runs", n[4], "errors", n[1],
						"io_errors", n[5], "leftovers", n[2], "bytes_read", n[3], NULL },
			      "verify %s: %s backups, %s recovery runs, %s errors, %s I/O errors, %s leftovers",
			      err ? "FAILED" : "ok", n[0], n[4], n[1], n[5], n[2]);
	}
	if (c->json) {
		const struct { const char *key; uint64_t v; } counts[] = {
			{ "backups", st.backups }, { "runs", st.runs }, { "trees", st.trees }, { "files", st.files },
			{ "packs", st.packs }, { "blobs_read", st.blobs_read }, { "bytes_read", st.bytes_read },
			{ "errors", st.errors }, { "io_errors", st.io_errors }, { "unchecked", st.unchecked },
			{ "leftovers", st.leftovers }, { "damage_records_resolved", st.damage_records_resolved },
		};
		json_out j;
		json_out_end_array(&s.pj);
		fclose(s.problems);
		s.problems = NULL;
		json_out_init(&j, stdout);
		json_out_begin_object(&j);
		json_out_key(&j, "ok");
		json_out_bool(&j, err == 0);
		json_out_key(&j, "read_data");
		json_out_bool(&j, s.o.read_data);
		for (size_t i = 0; i < sizeof(counts) / sizeof(*counts); i++) {
			json_out_key(&j, counts[i].key);
			json_out_uint(&j, counts[i].v);
		}
		json_out_key(&j, "problems");
		json_out_raw(&j, s.buf);
		json_out_end_object(&j);
	} else if (!c->quiet) {
		char b[32];
		char io[120] = "";
		cli_human_bytes(b, st.bytes_read);
		if (st.io_errors)
			snprintf(io, sizeof(io), ", %llu I/O error%s", (unsigned long long)st.io_errors,
				 st.io_errors == 1 ? "" : "s");
		if (st.unchecked) /* the files and trees an unread object left unchecked: not more I/O errors */
			snprintf(io + strlen(io), sizeof(io) - strlen(io), " (%llu file%s or tree%s not checked for %s)",
				 (unsigned long long)st.unchecked, st.unchecked == 1 ? "" : "s",
				 st.unchecked == 1 ? "" : "s", st.io_errors == 1 ? "it" : "them");
		fprintf(stderr, "%s%s%s: %llu backups, %llu recovery runs, %llu directories, %llu files, %llu packs%s%s%s; %llu error%s%s, %llu leftover%s\n",
			cli_col(c, err ? "red" : "green"), err ? "verify FAILED" : "verify ok", cli_col(c, "reset"),
			(unsigned long long)st.backups, (unsigned long long)st.runs, (unsigned long long)st.trees,
			(unsigned long long)st.files,
			(unsigned long long)st.packs, s.o.read_data ? " (" : "", s.o.read_data ? b : "",
			s.o.read_data ? " read)" : "", (unsigned long long)st.errors, st.errors == 1 ? "" : "s", io,
			(unsigned long long)st.leftovers, st.leftovers == 1 ? "" : "s");
		if (st.damage_records_resolved)
			fprintf(stderr, "%llu damage record%s (by prune) resolved: every copy of %s blobs reads; "
				"moved %s into trash\n", (unsigned long long)st.damage_records_resolved,
				st.damage_records_resolved == 1 ? "" : "s",
				st.damage_records_resolved == 1 ? "its" : "their",
				st.damage_records_resolved == 1 ? "it" : "them");
	}
	/* an I/O error wins over problems found (7, not 1): the check is not
	 * complete; the one line saying so comes last, -q or not */
	if (unread)
		rc = c->json ? bkr_exit_for(err) : cli_fail(c, err);
done:
	if (s.problems)
		fclose(s.problems);
	free(s.buf);
	bkr_repo_free(repo);
	return rc;
}
