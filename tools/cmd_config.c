/** @file
 * bkr config check|show: validate a configuration file.
 */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "bkr/io.h"
#include "bkr/error.h"
#include "bkr/recover.h"

static const char usage[] =
	"usage: bkr config check [-c FILE] [--json]\n"
	"       bkr config show  [-c FILE] [--json]\n\n"
	"check: load FILE (or BKR_CONFIG) and report the first problem as one line\n"
	"naming the file and the exact key; exit status 2 when it is invalid.\n"
	"show: print the effective configuration, every default filled in.\n";

/* A repository inside what is backed up is left out of every backup: say so. */
static void warn_repo_inside(cli *c, const bkr_config *cfg)
{
	const char *where = NULL;

	if (cfg->repository && cfg->workspace_root && bkr_path_under(cfg->repository, cfg->workspace_root))
		where = cfg->workspace_root;
	for (size_t i = 0; !where && i < cfg->nsources; i++)
		for (size_t j = 0; !where && j < cfg->sources[i].npaths; j++)
			if (cfg->repository && bkr_path_under(cfg->repository, cfg->sources[i].paths[j]))
				where = cfg->sources[i].paths[j];
	if (where)
		cli_warn(c, "the repository %s lies inside %s: backups leave it out (it cannot back itself up); "
			 "keep it on another disk", cfg->repository, where);
}

int cmd_config(cli *c, int argc, char **argv)
{
	bkr_config *cfg = NULL;
	bkr_recover_rules *rules = NULL;
	const char *verb, *file;
	int first, err;

	CLI_PARSE(c, argc, argv, usage, "", NULL, NULL, NULL, &first);
	if (first >= argc)
		return cli_usage_error(c, "expected 'check' or 'show'");
	verb = argv[first++];
	if (strcmp(verb, "check") && strcmp(verb, "show"))
		return cli_usage_error(c, "unknown config verb '%s' (check or show)", verb);
	if (first < argc && !c->config)
		c->config = argv[first++];
	if (first < argc)
		return cli_usage_error(c, "unexpected argument '%s'", argv[first]);
	file = c->config ? c->config : getenv("BKR_CONFIG");
	if (!file || !*file)
		return cli_usage_error(c, "no configuration: give -c FILE or set BKR_CONFIG");
	if ((err = bkr_config_load(&cfg, file)) < 0)
		return cli_fail(c, err);
	if ((err = bkr_recover_rules_parse(&rules, cfg->recovery_json, file)) < 0) {
		bkr_config_free(cfg);
		return cli_fail(c, err);
	}
	bkr_recover_rules_free(rules);
	warn_repo_inside(c, cfg);
	if (!strcmp(verb, "show")) {
		/* text: the file as it would be written (a path's bytes as they are);
		 * --json: UTF-8, a path that is not gets U+FFFD and KEY_hex */
		char *text = c->json ? cli_json_utf8(bkr_config_to_json(cfg, false)) : bkr_config_to_json(cfg, true);
		json_out j;
		if (!text) {
			bkr_config_free(cfg);
			return cli_fail(c, bkr_error_oom());
		}
		json_out_init(&j, stdout);
		json_out_raw(&j, text);
		free(text);
	} else if (c->json) {
		json_out j;
		json_out_init(&j, stdout);
		json_out_begin_object(&j);
		json_out_path(&j, "config", file, strlen(file));
		json_out_key(&j, "valid");
		json_out_bool(&j, true);
		json_out_end_object(&j);
	} else if (!c->quiet) {
		char sf[1024], sr[1024];
		printf("%s: ok (%zu source%s, repository %s)\n", cli_text_safe(sf, sizeof(sf), file), cfg->nsources,
		       cfg->nsources == 1 ? "" : "s", cli_text_safe(sr, sizeof(sr), cfg->repository));
	}
	bkr_config_free(cfg);
	return 0;
}
