/** @file
 * Validators: decide whether a file's bytes are usable.  "json" parses with
 * cJSON (and reports line and column of the first error), "nonempty" rejects
 * a zero-length file, "command" runs a configured argv with "{path}" replaced
 * by a file holding the bytes and accepts exit status 0.  Files named *.json
 * get the json validator unless "json_validation" is false.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "bkr/error.h"
#include "bkr/io.h"
#include "recover_i.h"

static bool is_json_name(const char *rel)
{
	size_t n = strlen(rel);
	return n >= 5 && strcmp(rel + n - 5, ".json") == 0;
}

bool bkr_rec_has_validator(const bkr_recover *rc, const char *rel)
{
	if (rc->rules->json_default && is_json_name(rel))
		return true;
	for (size_t i = 0; i < rc->rules->nvalidators; i++)
		if (bkr_rec_match(rc->rules->validators[i].pattern, rel, NULL))
			return true;
	return false;
}

static int check_json(const uint8_t *data, size_t len, char **why)
{
	const char *end = NULL;
	cJSON *j;
	char *copy;

	*why = NULL;
	if (len == 0)
		return (*why = strdup("empty file, not valid JSON")) ? 0 : bkr_error_oom();
	if (memchr(data, '\0', len))
		return (*why = strdup("contains NUL bytes, not valid JSON")) ? 0 : bkr_error_oom();
	if (!(copy = malloc(len + 1)))
		return bkr_error_oom();
	memcpy(copy, data, len);
	copy[len] = '\0';
	j = cJSON_ParseWithOpts(copy, &end, true);
	if (j) {
		cJSON_Delete(j);
		free(copy);
		return 1;
	}
	{
		size_t off = end ? (size_t)(end - copy) : 0, line = 1, col = 1;
		for (size_t i = 0; i < off && i < len; i++) {
			if (copy[i] == '\n') {
				line++;
				col = 1;
			} else {
				col++;
			}
		}
		free(copy);
		if (asprintf(why, "not valid JSON (error at line %zu, column %zu)", line, col) < 0) {
			*why = NULL;
			return bkr_error_oom();
		}
	}
	return 0;
}

static int check_command(bkr_recover *rc, const bkr_rec_validator *v, const char *rel, const uint8_t *data,
			 size_t len, char **why)
{
	const char *scratch;
	char path[4096], **argv = NULL;
	int fd = -1, err;
	bkr_rec_proc p = { 0 };

	*why = NULL;
	if ((err = bkr_rec_scratch(rc, &scratch)) < 0)
		return err;
	snprintf(path, sizeof(path), "%s/validate-XXXXXX", scratch);
	if ((fd = mkstemp(path)) < 0)
		return bkr_error_set_errno(errno, "validator: %s", path);
	if ((err = bkr_io_write_full(fd, data, len, path)) < 0)
		goto done;
	close(fd);
	fd = -1;
	if (!(argv = calloc(v->argc + 1, sizeof(*argv)))) {
		err = bkr_error_oom();
		goto done;
	}
	for (size_t i = 0; i < v->argc; i++) {
		if (!(argv[i] = bkr_rec_substitute(v->argv[i], NULL, path, path, rc->workspace, rel))) {
			err = bkr_error_oom();
			goto done;
		}
	}
	if ((err = bkr_rec_spawn(argv, NULL, 0, v->timeout_ms, &p)) < 0)
		goto done;
	if (!p.timed_out && WIFEXITED(p.status) && WEXITSTATUS(p.status) == 0) {
		err = 1;
	} else {
		char *d = bkr_rec_proc_describe("validator command", &p, v->timeout_ms);
		if (!d) {
			err = bkr_error_oom();
			goto done;
		}
		*why = d;
		err = 0;
	}
done:
	bkr_rec_proc_free(&p);
	if (argv)
		for (size_t i = 0; i < v->argc; i++)
			free(argv[i]);
	free(argv);
	if (fd >= 0)
		close(fd);
	unlink(path);
	return err;
}

int bkr_rec_validate(bkr_recover *rc, const char *rel, const uint8_t *data, size_t len, bool nonempty,
		     char **why)
{
	bool json_done = false;
	int r;

	*why = NULL;
	if (nonempty && len == 0)
		return (*why = strdup("empty file")) ? 0 : bkr_error_oom();
	for (size_t i = 0; i < rc->rules->nvalidators; i++) {
		const bkr_rec_validator *v = &rc->rules->validators[i];
		if (!bkr_rec_match(v->pattern, rel, NULL))
			continue;
		switch (v->type) {
		case BKR_VALIDATE_JSON:
			json_done = true;
			r = check_json(data, len, why);
			break;
		case BKR_VALIDATE_NONEMPTY:
			r = len ? 1 : ((*why = strdup("empty file")) ? 0 : bkr_error_oom());
			break;
		default:
			r = check_command(rc, v, rel, data, len, why);
			break;
		}
		if (r <= 0)
			return r;
	}
	if (!json_done && rc->rules->json_default && is_json_name(rel))
		return check_json(data, len, why);
	return 1;
}
