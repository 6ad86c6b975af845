/** @file
 * How a file's page cache is held, for bench/mount.sh (root only).
 *
 *   folios FILE
 *
 * Prints one line:
 *
 *   <resident pages> <pages in large folios> <percent>
 *
 * The kernel copies a read out of the page cache folio by folio.  A file
 * system whose page cache uses large folios (ext4 on recent kernels) pays
 * that per-folio cost once per up to 2 MiB; one whose page cache is made of
 * 4 KiB folios pays it 512 times as often, which is what a warm `cat` of a
 * FUSE file measures.  Only pages already resident are looked at (mincore),
 * so nothing is read: each one is mapped, its frame found in
 * /proc/self/pagemap and its flags in /proc/kpageflags.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define KPF_COMPOUND_HEAD 15
#define KPF_COMPOUND_TAIL 16

static int read_u64(int fd, uint64_t index, uint64_t *out, const char *what)
{
	if (pread(fd, out, sizeof(*out), (off_t)(index * sizeof(*out))) != (ssize_t)sizeof(*out)) {
		fprintf(stderr, "folios: %s: %s\n", what, strerror(errno ? errno : EIO));
		return -1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	long page = sysconf(_SC_PAGESIZE);
	uint64_t resident = 0, large = 0;
	unsigned char *vec = NULL;
	volatile unsigned char sink;
	int fd, pm = -1, kf = -1, ret = 1;
	struct stat st;
	size_t npages;
	unsigned char *map = MAP_FAILED;

	if (argc != 2 || !strcmp(argv[1], "--help")) {
		fprintf(argc == 2 ? stdout : stderr, "usage: folios FILE  (root: reads /proc/kpageflags)\n");
		return argc == 2 ? 0 : 2;
	}
	if ((fd = open(argv[1], O_RDONLY)) < 0 || fstat(fd, &st) < 0) {
		fprintf(stderr, "folios: %s: %s\n", argv[1], strerror(errno));
		return 1;
	}
	npages = (size_t)((st.st_size + page - 1) / page);
	if (!npages) {
		printf("0 0 0.0\n");
		close(fd);
		return 0;
	}
	if ((map = mmap(NULL, npages * (size_t)page, PROT_READ, MAP_SHARED, fd, 0)) == MAP_FAILED ||
	    !(vec = malloc(npages)) || mincore(map, npages * (size_t)page, vec) < 0) {
		fprintf(stderr, "folios: %s: %s\n", argv[1], strerror(errno));
		goto out;
	}
	if ((pm = open("/proc/self/pagemap", O_RDONLY)) < 0 || (kf = open("/proc/kpageflags", O_RDONLY)) < 0) {
		fprintf(stderr, "folios: /proc/%s: %s\n", pm < 0 ? "self/pagemap" : "kpageflags", strerror(errno));
		goto out;
	}
	for (size_t k = 0; k < npages; k++) {
		uint64_t ent, flags;
		if (!(vec[k] & 1))
			continue;
		sink = map[k * (size_t)page]; /* resident: maps it, reads nothing */
		(void)sink;
		if (read_u64(pm, (uintptr_t)(map + k * (size_t)page) / (uint64_t)page, &ent, "/proc/self/pagemap") < 0)
			goto out;
		if (!(ent >> 63 & 1))
			continue; /* dropped meanwhile */
		if (!(ent & ((1ull << 55) - 1))) {
			fprintf(stderr, "folios: /proc/self/pagemap shows no frame numbers (not root?)\n");
			goto out;
		}
		if (read_u64(kf, ent & ((1ull << 55) - 1), &flags, "/proc/kpageflags") < 0)
			goto out;
		resident++;
		large += (flags >> KPF_COMPOUND_HEAD & 1) || (flags >> KPF_COMPOUND_TAIL & 1);
	}
	printf("%" PRIu64 " %" PRIu64 " %.1f\n", resident, large, resident ? 100.0 * (double)large / (double)resident : 0.0);
	ret = 0;
out:
	if (map != MAP_FAILED)
		munmap(map, npages * (size_t)page);
	free(vec);
	if (pm >= 0)
		close(pm);
	if (kf >= 0)
		close(kf);
	close(fd);
	return ret;
}
