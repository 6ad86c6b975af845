/** @file
 * libFuzzer target: the configuration.  The first byte chooses the decoder:
 * even, the user configuration (bkr_config_from_string, then the effective
 * configuration printed); odd, the rest sealed as a repository's
 * config.json and the repository opened (bkr_repo_open).
 */
#include <stdio.h>
#include <sys/stat.h>

#include "bkr/config.h"
#include "bkr/error.h"
#include "bkr/repo.h"
#include "fuzz.h"

static char repo_dir[64], config_json[128];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	static char dir[] = "/tmp/bkr-fuzz-config-XXXXXX";
	bkr_repo_init_options io = BKR_REPO_INIT_OPTIONS_INIT;
	(void)argc;
	(void)argv;
	fuzz_scratch(dir);
	snprintf(repo_dir, sizeof(repo_dir), "%s/repo", dir);
	snprintf(config_json, sizeof(config_json), "%s/config.json", repo_dir);
	if (bkr_repo_init(repo_dir, &io) < 0)
		abort();
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!size)
		return 0;
	if (!(data[0] & 1)) {
		bkr_config *c = NULL;
		if (bkr_config_from_string(&c, (const char *)data + 1, size - 1, "fuzz.json", "/base") == 0)
			free(bkr_config_to_json(c, true));
		bkr_config_free(c);
	} else {
		size_t len;
		char *sealed = fuzz_sealed(data + 1, size - 1, &len);
		bkr_repo *r = NULL;
		FILE *f;
		if (sealed && (f = fopen(config_json, "w"))) {
			fwrite(sealed, 1, len, f);
			fclose(f);
			if (bkr_repo_open(&r, repo_dir, BKR_REPO_RDONLY) == 0)
				bkr_repo_free(r);
		}
		free(sealed);
	}
	bkr_error_clear();
	return 0;
}
