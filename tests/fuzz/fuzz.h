/** @file
 * Helpers shared by the libFuzzer targets (tests/fuzz/fuzz_*.c): an input as
 * an open file (memfd), an input as a sealed JSON object, and a target's
 * scratch directory, removed at exit.
 */
#ifndef BKR_FUZZ_H
#define BKR_FUZZ_H

#include <ftw.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "bkr/manifest.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/** @p data in an anonymous file, positioned at 0; -1 if that fails. */
static inline int fuzz_memfd(const uint8_t *data, size_t size)
{
	int fd = memfd_create("fuzz", MFD_CLOEXEC);
	size_t done = 0;
	if (fd < 0)
		return -1;
	while (done < size) {
		ssize_t n = write(fd, data + done, size - done);
		if (n <= 0) {
			close(fd);
			return -1;
		}
		done += (size_t)n;
	}
	return fd;
}

/**
 * @p data as a NUL-terminated JSON object text with a valid "sha256" member
 * appended (so the parser behind the checksum is reached); NULL when @p data
 * is not shaped like an object.  Caller frees.
 */
static inline char *fuzz_sealed(const uint8_t *data, size_t size, size_t *len)
{
	char *text = malloc(size + 1), *out = NULL;
	if (!text)
		return NULL;
	memcpy(text, data, size);
	text[size] = '\0';
	if (bkr_json_seal(text, &out, len) < 0)
		out = NULL;
	free(text);
	return out;
}

static inline int fuzz_remove_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	(void)remove(path);
	return 0;
}

static char *fuzz_scratch_dir;

static inline void fuzz_remove_scratch(void)
{
	(void)nftw(fuzz_scratch_dir, fuzz_remove_one, 16, FTW_DEPTH | FTW_PHYS);
}

/** Make the scratch directory @p tmpl ("...XXXXXX", static storage); removed with all in it at exit. */
static inline void fuzz_scratch(char *tmpl)
{
	if (!mkdtemp(tmpl))
		abort();
	fuzz_scratch_dir = tmpl;
	atexit(fuzz_remove_scratch);
}

#endif
