/** @file
 * bkr init: create a repository.
 */
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "bkr/error.h"

static const char usage[] =
	"usage: bkr init -r REPO [--encryption none|aes-256-gcm] [--compression zlib|zstd|none] [--level N]\n"
	"       [--chunk-avg BYTES]\n\n"
	"Create an empty repository at REPO (an absent or empty directory).\n\n"
	"  --encryption none|aes-256-gcm\n"
	"                            seal everything stored under keys opened by a passphrase\n"
	"                            (default none; docs/security.md says why, and what a lost\n"
	"                            passphrase means: the data is lost).  The passphrase comes from\n"
	"                            --new-password-file, else BKR_NEW_PASSWORD, else --password-file,\n"
	"                            --password-command or BKR_PASSWORD, else a prompt (twice)\n"
	"  --compression zlib|zstd|none\n"
	"                            blob compression (default zstd: smaller than zlib at the\n"
	"                            same speed; zlib for a bkr that does not know zstd)\n"
	"  --level N                 level 1..9 (default: zlib 1, zstd 2; measured best)\n"
	"  --chunk-avg BYTES         average chunk size, a power of two from 4096 to 1048576\n"
	"                            (default 1048576; a chunk is at most 4 times it)\n";

enum { OPT_COMPRESSION = OPT_FIRST_CMD, OPT_LEVEL, OPT_CHUNK_AVG, OPT_ENCRYPTION };

static int opt(cli *c, int o, const char *arg, void *st)
{
	bkr_repo_init_options *io = st;
	uint64_t v;
	switch (o) {
	case OPT_ENCRYPTION:
		if (strcmp(arg, "none") && strcmp(arg, "aes-256-gcm"))
			return cli_usage_error(c, "--encryption: expected none or aes-256-gcm, not '%s'", arg);
		io->encryption = arg;
		return 0;
	case OPT_COMPRESSION:
		if (strcmp(arg, "zlib") && strcmp(arg, "zstd") && strcmp(arg, "none"))
			return cli_usage_error(c, "--compression: expected zlib, zstd or none, not '%s'", arg);
		io->compression = arg;
		return 0;
	case OPT_LEVEL:
		if (cli_uint_arg(c, "--level", arg, "", 1, 9, &v))
			return BKR_EXIT_USAGE;
		io->level = (int)v;
		return 0;
	case OPT_CHUNK_AVG:
		/* at most 1 MiB: its chunks of up to 4 times that must fit half a backup worker's
		 * read buffer (BKR_BK_READ_BUF, 8 MiB), or no backup could ever be made */
		if (cli_uint_arg(c, "--chunk-avg", arg, "", 4096, 1 << 20, &v))
			return BKR_EXIT_USAGE;
		if (v & (v - 1))
			return cli_usage_error(c, "--chunk-avg: expected a power of two from 4096 to 1048576, not '%s'",
					       arg);
		io->chunk_avg = (uint32_t)v;
		io->chunk_min = (uint32_t)v / 4;
		io->chunk_max = (uint32_t)v * 4;
		return 0;
	}
	return cli_usage_error(c, "unknown option");
}

int cmd_init(cli *c, int argc, char **argv)
{
	static const struct option lo[] = {
		{ "compression", required_argument, NULL, OPT_COMPRESSION },
		{ "level", required_argument, NULL, OPT_LEVEL },
		{ "chunk-avg", required_argument, NULL, OPT_CHUNK_AVG },
		{ "encryption", required_argument, NULL, OPT_ENCRYPTION },
		{ NULL, 0, NULL, 0 },
	};
	bkr_repo_init_options io = BKR_REPO_INIT_OPTIONS_INIT;
	bkr_config *cfg = NULL;
	const char *path;
	int first, err;

	CLI_PARSE(c, argc, argv, usage, "", lo, opt, &io, &first);
	if (first < argc && !c->repo)
		c->repo = argv[first++];
	if (first < argc)
		return cli_usage_error(c, "unexpected argument '%s'", argv[first]);
	/* the one "no repository" line of every command (cli_repo_needed), exit 2 */
	if ((err = cli_repo_needed(c, &cfg, &path)) < 0) {
		bkr_config_free(cfg);
		return cli_fail(c, err);
	}
	if ((err = bkr_repo_init(path, &io)) < 0) {
		bkr_config_free(cfg);
		return cli_fail(c, err);
	}
	if (c->json) {
		json_out j;
		json_out_init(&j, stdout);
		json_out_begin_object(&j);
		json_out_path(&j, "repository", path, strlen(path));
		json_out_key(&j, "created");
		json_out_bool(&j, true);
		json_out_member(&j, "encryption", io.encryption ? io.encryption : "none");
		json_out_end_object(&j);
	} else if (!c->quiet) {
		printf("created %srepository ", io.encryption && !strcmp(io.encryption, "aes-256-gcm") ? "encrypted " : "");
		cli_print_name(stdout, path, strlen(path));
		putchar('\n');
	}
	bkr_config_free(cfg);
	return 0;
}
