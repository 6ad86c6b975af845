/** @file
 * libFuzzer target: a record (pin, unpin, tag, untag, delete, hold,
 * release...) applied to a repository's catalog and read for its holds.  One repository with one backup, whose id is
 * FUZZ_BACKUP_ID (the seed records name it), is made at start; each input is
 * written to records/ as it is and sealed, and the backups are listed.
 */
#include <stdio.h>
#include <sys/stat.h>

#include "bkr/backup.h"
#include "bkr/error.h"
#include "bkr/hold.h"
#include "bkr/io.h"
#include "bkr/repo.h"
#include "fuzz.h"

#define FUZZ_BACKUP_ID "backup_20260101_000000_full_00000000"

static bkr_repo *repo;
static char record[4200];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	static char dir[] = "/tmp/bkr-fuzz-record-XXXXXX";
	char path[4096], src[4096];
	bkr_repo_init_options io = BKR_REPO_INIT_OPTIONS_INIT;
	bkr_backup_options o = BKR_BACKUP_OPTIONS_INIT;
	bkr_source_spec s;
	bkr_manifest *m = NULL;

	(void)argc;
	(void)argv;
	fuzz_scratch(dir);
	snprintf(path, sizeof(path), "%s/repo", dir);
	snprintf(src, sizeof(src), "%s/src", dir);
	if (mkdir(src, 0700) < 0 || bkr_repo_init(path, &io) < 0 || bkr_repo_open(&repo, path, 0) < 0)
		abort();
	s = (bkr_source_spec){ "src", src, NULL, 0 };
	o.type = BKR_BACKUP_FULL;
	o.sources = &s;
	o.nsources = 1;
	o.hostname = "fuzz";
	o.threads = 1;
	if (bkr_backup_run(repo, &o, &m) < 0)
		abort();
	/* the same backup again under the fixed id the seeds use */
	snprintf(record, sizeof(record), "%s/backups/%s.json", path, m->backup_id);
	unlink(record);
	free(m->backup_id);
	if (!(m->backup_id = strdup(FUZZ_BACKUP_ID)) || bkr_repo_publish_manifest(repo, m) < 0)
		abort();
	bkr_manifest_free(m);
	snprintf(record, sizeof(record), "%s/records/20260101T000000Z-fuzz.json", path);
	snprintf(path, sizeof(path), "%s/repo/records", dir);
	mkdir(path, 0700);
	return 0;
}

static void one(const void *text, size_t len)
{
	bkr_manifest_list l = { 0 };
	FILE *f = fopen(record, "w");
	if (!f)
		abort();
	if (len)
		fwrite(text, 1, len, f);
	fclose(f);
	bkr_holds h;
	if (bkr_repo_list(repo, false, &l, NULL) == 0)
		bkr_manifest_list_free(&l);
	if (bkr_holds_read(repo, &h) == 0)
		bkr_holds_free(&h);
	bkr_error_clear();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t len;
	char *sealed;
	one(data, size);
	if ((sealed = fuzz_sealed(data, size, &len))) {
		one(sealed, len);
		free(sealed);
	}
	return 0;
}
