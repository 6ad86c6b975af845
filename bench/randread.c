/** @file
 * Random-read benchmark used by bench/mount.sh.
 *
 *   randread FILE [COUNT] [--seed S] [--block BYTES] [--threads T]
 *
 * Reads COUNT (default 2000) blocks of BYTES (default 4096) at block-aligned
 * offsets chosen by a fixed-seed xorshift generator, with pread(2), and prints
 * one line:
 *
 *   <elapsed seconds> <reads> <reads per second> <checksum>
 *
 * The offsets depend only on the seed, the block size and the file size, so
 * the same command on the source file and on a mounted copy reads the same
 * blocks; the checksum (FNV-1a over the bytes read, in offset order of the
 * sequence) must then be equal, which catches a mount returning wrong bytes.
 * With --threads T the sequence is split between T threads (each reading a
 * contiguous slice of the sequence); the checksum is then combined per slice
 * in slice order, so it still does not depend on scheduling.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

struct slice {
	int fd;
	const uint64_t *offs;
	size_t n;
	size_t block;
	uint64_t sum;
	int err;
};

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t rng_next(uint64_t *s)
{
	uint64_t x = *s;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*s = x;
	return x * 0x2545f4914f6cdd1dULL;
}

static void *run_slice(void *arg)
{
	struct slice *sl = arg;
	unsigned char *buf = malloc(sl->block);
	uint64_t h = 1469598103934665603ULL;

	if (!buf) {
		sl->err = ENOMEM;
		return NULL;
	}
	for (size_t i = 0; i < sl->n; i++) {
		size_t got = 0;
		while (got < sl->block) {
			ssize_t r = pread(sl->fd, buf + got, sl->block - got,
					  (off_t)(sl->offs[i] + got));
			if (r < 0) {
				if (errno == EINTR)
					continue;
				sl->err = errno;
				free(buf);
				return NULL;
			}
			if (r == 0)
				break;
			got += (size_t)r;
		}
		for (size_t k = 0; k < got; k++) {
			h ^= buf[k];
			h *= 1099511628211ULL;
		}
	}
	sl->sum = h;
	free(buf);
	return NULL;
}

static void usage(void)
{
	fprintf(stderr, "usage: randread FILE [COUNT] [--seed S] [--block BYTES] [--threads T]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	const char *path = NULL;
	size_t count = 2000, block = 4096;
	uint64_t seed = 42;
	int threads = 1;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--seed") && i + 1 < argc)
			seed = strtoull(argv[++i], NULL, 0);
		else if (!strcmp(argv[i], "--block") && i + 1 < argc)
			block = strtoull(argv[++i], NULL, 0);
		else if (!strcmp(argv[i], "--threads") && i + 1 < argc)
			threads = atoi(argv[++i]);
		else if (argv[i][0] == '-')
			usage();
		else if (!path)
			path = argv[i];
		else
			count = strtoull(argv[i], NULL, 0);
	}
	if (!path || block == 0 || count == 0 || threads < 1 || threads > 64)
		usage();

	int fd = open(path, O_RDONLY);
	if (fd < 0) {
		fprintf(stderr, "randread: %s: %s\n", path, strerror(errno));
		return 1;
	}
	struct stat st;
	if (fstat(fd, &st) < 0 || (uint64_t)st.st_size < block) {
		fprintf(stderr, "randread: %s: smaller than one block\n", path);
		return 1;
	}
	uint64_t nblocks = (uint64_t)st.st_size / block;
	uint64_t *offs = malloc(count * sizeof *offs);
	if (!offs) {
		fprintf(stderr, "randread: out of memory\n");
		return 1;
	}
	uint64_t s = seed ? seed : 0x9e3779b97f4a7c15ULL;
	for (size_t i = 0; i < count; i++)
		offs[i] = (rng_next(&s) % nblocks) * block;

	struct slice sl[64];
	pthread_t tid[64];
	size_t per = count / (size_t)threads, at = 0;
	for (int t = 0; t < threads; t++) {
		size_t n = (t == threads - 1) ? count - at : per;
		sl[t] = (struct slice){ .fd = fd, .offs = offs + at, .n = n, .block = block };
		at += n;
	}

	double t0 = now();
	if (threads == 1) {
		run_slice(&sl[0]);
	} else {
		for (int t = 0; t < threads; t++)
			if (pthread_create(&tid[t], NULL, run_slice, &sl[t]) != 0) {
				fprintf(stderr, "randread: pthread_create failed\n");
				return 1;
			}
		for (int t = 0; t < threads; t++)
			pthread_join(tid[t], NULL);
	}
	double el = now() - t0;

	uint64_t sum = 1469598103934665603ULL;
	for (int t = 0; t < threads; t++) {
		if (sl[t].err) {
			fprintf(stderr, "randread: %s: %s\n", path, strerror(sl[t].err));
			return 1;
		}
		sum = (sum ^ sl[t].sum) * 1099511628211ULL;
	}
	printf("%.6f %zu %.0f %016" PRIx64 "\n", el, count, el > 0 ? (double)count / el : 0.0, sum);
	free(offs);
	close(fd);
	return 0;
}
