/** @file
 * The regenerate strategy: run the configured argv (never a shell string)
 * with "{path}", "{output}", "{workspace}", "{rel}" and the pattern's
 * captures substituted in each argument, in its own process group with a
 * timeout, then read and validate what it wrote to {output} (a file in the
 * engine's private scratch directory, read as a live file is: the workspace
 * is never written here).
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bkr/error.h"
#include "bkr/hash.h"
#include "bkr/io.h"
#include "recover_i.h"

int bkr_rec_try_regenerate(const bkr_rec_job *j, bkr_rec_outcome *o)
{
	const bkr_rec_strategy *s = j->s;
	const char *scratch;
	char output[4096], **argv = NULL, *why = NULL;
	uint8_t rnd[8], *data = NULL;
	char hex[17];
	size_t len = 0;
	bool mapped = false;
	bkr_rec_proc p = { 0 };
	cJSON *cmd = NULL;
	int err = 0, r;

	if ((err = bkr_rec_scratch(j->rc, &scratch)) < 0)
		return bkr_rec_fail(o, err, "%s", bkr_error_message());
	if ((err = bkr_random_bytes(rnd, sizeof(rnd))) < 0)
		return bkr_rec_fail(o, err, "%s", bkr_error_message());
	bkr_hex_encode(rnd, sizeof(rnd), hex);
	snprintf(output, sizeof(output), "%s/regen-%s", scratch, hex);
	if (!(argv = calloc(s->argc + 1, sizeof(*argv))) || !(cmd = cJSON_CreateArray())) {
		err = bkr_error_oom();
		goto done;
	}
	for (size_t i = 0; i < s->argc; i++) {
		if (!(argv[i] = bkr_rec_substitute(s->argv[i], j->caps, j->abs, output, j->rc->workspace, j->rel))) {
			err = bkr_error_oom();
			goto done;
		}
		cJSON_AddItemToArray(cmd, cJSON_CreateString(argv[i]));
	}
	if ((o->source = cJSON_CreateObject())) {
		cJSON_AddItemToObject(o->source, "command", cmd);
		cmd = NULL;
		cJSON_AddNumberToObject(o->source, "timeout_ms", (double)s->timeout_ms);
	}
	if ((err = bkr_rec_spawn(argv, NULL, 0, s->timeout_ms, &p)) < 0) {
		err = bkr_rec_fail(o, err, "%s", bkr_error_message());
		goto done;
	}
	if (p.timed_out || !WIFEXITED(p.status) || WEXITSTATUS(p.status) != 0) {
		char *d = bkr_rec_proc_describe(argv[0], &p, s->timeout_ms);
		err = bkr_rec_fail(o, p.timed_out ? BKR_ETIMEOUT : BKR_ERROR, "%s", d ? d : "command failed");
		free(d);
		goto done;
	}
	/* read as a live file is (bkr_rec_read_at: only a regular file, opened
	 * O_NONBLOCK|O_NOFOLLOW so that a FIFO left there cannot block; a large
	 * one copied into a private scratch file, never mapped as it is): a
	 * process the command left outside its group may still hold {output}
	 * open, and a mapping of it would fault when that process shrinks it */
	r = bkr_rec_read_at(j->rc, AT_FDCWD, output, output, &data, &len, &mapped, NULL);
	if (r == BKR_ENOTFOUND) {
		err = bkr_rec_fail(o, BKR_ERROR, "%s exited with status 0 but wrote nothing to {output}", argv[0]);
		goto done;
	}
	if (r < 0) {
		err = bkr_rec_fail(o, r, "reading the output of %s: %s", argv[0], bkr_error_message());
		goto done;
	}
	r = bkr_rec_validate(j->rc, j->rel, data, len, j->nonempty, &why);
	if (r < 0) {
		err = bkr_rec_fail(o, r, "%s", bkr_error_message());
		goto done;
	}
	if (r == 0) {
		err = bkr_rec_fail(o, BKR_ECORRUPT, "%s wrote an invalid file: %s", argv[0], why);
		goto done;
	}
	o->data = data;
	o->len = len;
	o->mapped = mapped;
	data = NULL;
	err = 0;
done:
	if (err == BKR_ENOMEM && !o->error)
		bkr_rec_fail(o, err, "out of memory");
	free(why);
	bkr_rec_data_free(data, len, mapped);
	bkr_rec_proc_free(&p);
	cJSON_Delete(cmd);
	if (argv)
		for (size_t i = 0; i < s->argc; i++)
			free(argv[i]);
	free(argv);
	unlink(output);
	return err;
}
