/** @file
 * fscheck: a small syscall-level checker for bkrfs mount tests (compiled by
 * tests/integration/test_mount.sh into its temp dir).
 *
 *   fscheck compare SRC MNT [SKIPNAME]  every stat field, symlink targets, xattrs,
 *                                       content (read, random preads, mmap),
 *                                       SEEK_DATA/SEEK_HOLE maps, hardlink identity
 *   fscheck readers SRCFILE MNTFILE N   N threads of random preads compared with SRCFILE
 *   fscheck erofs DIR FILE              every write-type call fails with EROFS
 *   fscheck flip REPO FILE              flip one byte of FILE's data inside a pack
 *   fscheck eio FILE                    reading FILE fails with EIO
 * Exit 0 when everything matches; one line per difference on stderr.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

static const char *g_src, *g_mnt, *g_skip;
static int failures;

#define FAIL(...) do { fprintf(stderr, "fscheck: " __VA_ARGS__); fputc('\n', stderr); failures++; } while (0)

struct link_seen {
	dev_t sdev;
	ino_t sino;
	ino_t mino;
	char path[512];
};
static struct link_seen *links;
static size_t nlinks, caplinks;

static int read_all(const char *path, unsigned char **out, size_t *len)
{
	int fd = open(path, O_RDONLY);
	struct stat st;
	ssize_t n;
	size_t off = 0;

	if (fd < 0 || fstat(fd, &st) < 0)
		return -1;
	*out = malloc((size_t)st.st_size + 1);
	while ((n = read(fd, *out + off, (size_t)st.st_size - off)) > 0)
		off += (size_t)n;
	close(fd);
	if (n < 0)
		return -1;
	*len = off;
	return 0;
}

static void cmp_content(const char *rel, const char *s, const char *m, off_t size)
{
	unsigned char *a = NULL, *b = NULL;
	size_t la = 0, lb = 0;
	int fd;

	if (read_all(s, &a, &la) < 0 || read_all(m, &b, &lb) < 0) {
		FAIL("%s: read: %s", rel, strerror(errno));
		goto out;
	}
	if (la != lb || memcmp(a, b, la) != 0) {
		FAIL("%s: content differs", rel);
		goto out;
	}
	fd = open(m, O_RDONLY);
	if (fd < 0) {
		FAIL("%s: open: %s", rel, strerror(errno));
		goto out;
	}
	/* random preads */
	for (int k = 0; k < 50 && la > 0; k++) {
		unsigned char buf[70000];
		size_t off = (size_t)random() % la, want = (size_t)random() % sizeof(buf);
		ssize_t n = pread(fd, buf, want, (off_t)off);
		size_t exp = la - off < want ? la - off : want;
		if (n < 0 || (size_t)n != exp || memcmp(buf, a + off, exp) != 0) {
			FAIL("%s: pread(%zu, %zu) differs", rel, want, off);
			break;
		}
	}
	/* mmap */
	if (la > 0) {
		void *p = mmap(NULL, la, PROT_READ, MAP_PRIVATE, fd, 0);
		if (p == MAP_FAILED)
			FAIL("%s: mmap: %s", rel, strerror(errno));
		else {
			if (memcmp(p, a, la) != 0)
				FAIL("%s: mmap content differs", rel);
			munmap(p, la);
		}
	}
	/* the data/hole map */
	{
		int sfd = open(s, O_RDONLY);
		off_t ps = 0, pm = 0;
		for (int k = 0; k < 1000 && sfd >= 0 && ps < size; k++) {
			off_t ds = lseek(sfd, ps, SEEK_DATA), dm = lseek(fd, pm, SEEK_DATA);
			off_t hs, hm;
			if (ds != dm) {
				FAIL("%s: SEEK_DATA from %lld: source %lld, mount %lld", rel, (long long)ps,
				     (long long)ds, (long long)dm);
				break;
			}
			if (ds < 0)
				break;
			hs = lseek(sfd, ds, SEEK_HOLE);
			hm = lseek(fd, dm, SEEK_HOLE);
			if (hs != hm) {
				FAIL("%s: SEEK_HOLE from %lld: source %lld, mount %lld", rel, (long long)ds,
				     (long long)hs, (long long)hm);
				break;
			}
			ps = pm = hs;
		}
		if (sfd >= 0)
			close(sfd);
	}
	close(fd);
out:
	free(a);
	free(b);
}

static int cmp_cstr(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* two NUL-separated name lists hold the same names (in any order) */
static bool same_names(char *a, char *b, size_t len)
{
	char *va[4096], *vb[4096];
	size_t na = 0, nb = 0;

	for (char *p = a; p < a + len && na < 4096; p += strlen(p) + 1)
		va[na++] = p;
	for (char *p = b; p < b + len && nb < 4096; p += strlen(p) + 1)
		vb[nb++] = p;
	if (na != nb)
		return false;
	qsort(va, na, sizeof(char *), cmp_cstr);
	qsort(vb, nb, sizeof(char *), cmp_cstr);
	for (size_t k = 0; k < na; k++)
		if (strcmp(va[k], vb[k]) != 0)
			return false;
	return true;
}

static void cmp_xattrs(const char *rel, const char *s, const char *m)
{
	char ls[65536], lm[65536];
	ssize_t ns = llistxattr(s, ls, sizeof(ls)), nm = llistxattr(m, lm, sizeof(lm));

	if (ns < 0)
		ns = 0;
	if (nm < 0) {
		FAIL("%s: listxattr: %s", rel, strerror(errno));
		return;
	}
	if (ns != nm || !same_names(ls, lm, (size_t)ns)) {
		FAIL("%s: xattr names differ", rel);
		return;
	}
	if (memmem(lm, (size_t)nm, "user.bkr.", 9))
		FAIL("%s: user.bkr.* listed", rel);
	for (char *n = ls; n < ls + ns; n += strlen(n) + 1) {
		static char vs[1 << 17], vm[1 << 17];
		ssize_t a = lgetxattr(s, n, vs, sizeof(vs));
		ssize_t probe = lgetxattr(m, n, NULL, 0);
		ssize_t b = lgetxattr(m, n, vm, sizeof(vm));
		if (a != b || probe != b || memcmp(vs, vm, (size_t)(a > 0 ? a : 0)) != 0)
			FAIL("%s: xattr %s differs", rel, n);
		if (b > 1 && lgetxattr(m, n, vm, (size_t)b - 1) != -1)
			FAIL("%s: xattr %s: a short buffer did not fail", rel, n);
		else if (b > 1 && errno != ERANGE)
			FAIL("%s: xattr %s: short buffer gave %s, not ERANGE", rel, n, strerror(errno));
	}
}

static int visit(const char *spath, const struct stat *ss, int flag, struct FTW *ftw)
{
	const char *rel = spath + strlen(g_src);
	char mpath[8192];
	struct stat ms;

	if (g_skip && strstr(rel, g_skip))
		return 0;
	snprintf(mpath, sizeof(mpath), "%s%s", g_mnt, rel);
	if (lstat(mpath, &ms) != 0) {
		FAIL("%s: missing in the mount: %s", rel, strerror(errno));
		return 0;
	}
	if (ftw->level == 0)
		return 0; /* the source root itself: its attributes are the backup's */
#define F(field) if ((long long)ss->field != (long long)ms.field) \
		FAIL("%s: " #field " %lld != %lld", rel, (long long)ss->field, (long long)ms.field)
	F(st_mode);
	F(st_uid);
	F(st_gid);
	F(st_mtim.tv_sec);
	F(st_mtim.tv_nsec);
	F(st_ctim.tv_sec);
	F(st_ctim.tv_nsec);
	if (!S_ISDIR(ss->st_mode)) {
		F(st_nlink);
		F(st_size);
		F(st_blocks);
	}
	if (S_ISCHR(ss->st_mode) || S_ISBLK(ss->st_mode))
		F(st_rdev);
#undef F
	if (ms.st_atim.tv_sec != ms.st_mtim.tv_sec || ms.st_atim.tv_nsec != ms.st_mtim.tv_nsec)
		FAIL("%s: atime is not mtime", rel);
	if (S_ISLNK(ss->st_mode)) {
		char a[4096], b[4096];
		ssize_t na = readlink(spath, a, sizeof(a)), nb = readlink(mpath, b, sizeof(b));
		if (na != nb || memcmp(a, b, (size_t)(na > 0 ? na : 0)) != 0)
			FAIL("%s: symlink target differs", rel);
	}
	if (!S_ISLNK(ss->st_mode) && !S_ISFIFO(ss->st_mode))
		cmp_xattrs(rel, spath, mpath);
	if (S_ISREG(ss->st_mode))
		cmp_content(rel, spath, mpath, ss->st_size);
	/* hardlinks: one mount inode per source inode, and no false sharing */
	if (!S_ISDIR(ss->st_mode)) {
		for (size_t k = 0; k < nlinks; k++) {
			bool same_src = links[k].sdev == ss->st_dev && links[k].sino == ss->st_ino;
			bool same_mnt = links[k].mino == ms.st_ino;
			if (same_src != same_mnt)
				FAIL("%s and %s: hardlink identity differs (source %d, mount %d)", rel,
				     links[k].path, same_src, same_mnt);
		}
		if (nlinks == caplinks)
			links = realloc(links, (caplinks = caplinks ? caplinks * 2 : 256) * sizeof(*links));
		links[nlinks].sdev = ss->st_dev;
		links[nlinks].sino = ss->st_ino;
		links[nlinks].mino = ms.st_ino;
		snprintf(links[nlinks].path, sizeof(links[nlinks].path), "%s", rel);
		nlinks++;
	}
	return 0;
}

/* the mount has nothing the source lacks */
static int visit_back(const char *mpath, const struct stat *ms, int flag, struct FTW *ftw)
{
	char spath[8192];
	struct stat ss;

	snprintf(spath, sizeof(spath), "%s%s", g_src, mpath + strlen(g_mnt));
	if (lstat(spath, &ss) != 0)
		FAIL("%s: in the mount only", mpath);
	return 0;
}

struct reader {
	const char *src, *mnt;
	int fails;
	unsigned seed;
};

static void *reader_main(void *arg)
{
	struct reader *r = arg;
	int a = open(r->src, O_RDONLY), b = open(r->mnt, O_RDONLY);
	struct stat st;
	static __thread unsigned char x[1 << 20], y[1 << 20];

	if (a < 0 || b < 0 || fstat(a, &st) < 0 || st.st_size == 0) {
		r->fails++;
		return NULL;
	}
	for (int k = 0; k < 200; k++) {
		off_t off = (off_t)(rand_r(&r->seed) % (unsigned)st.st_size);
		size_t len = (size_t)rand_r(&r->seed) % sizeof(x);
		ssize_t na = pread(a, x, len, off), nb = pread(b, y, len, off);
		if (na != nb || na < 0 || memcmp(x, y, (size_t)na) != 0)
			r->fails++;
	}
	close(a);
	close(b);
	return NULL;
}

static void expect_erofs(const char *what, int r)
{
	if (r != -1 || errno != EROFS)
		FAIL("%s: %s, expected EROFS", what, r == -1 ? strerror(errno) : "succeeded");
}

static int do_erofs(const char *dir, const char *file)
{
	char p[8192], q[8192];

	snprintf(p, sizeof(p), "%s/new-file", dir);
	expect_erofs("create", open(p, O_CREAT | O_WRONLY, 0644));
	expect_erofs("open O_WRONLY", open(file, O_WRONLY));
	expect_erofs("open O_RDWR", open(file, O_RDWR));
	expect_erofs("open O_TRUNC", open(file, O_RDONLY | O_TRUNC));
	expect_erofs("mkdir", mkdir(p, 0755));
	expect_erofs("mknod", mknod(p, S_IFIFO | 0644, 0));
	expect_erofs("symlink", symlink("x", p));
	expect_erofs("link", link(file, p));
	expect_erofs("unlink", unlink(file));
	expect_erofs("rmdir", rmdir(dir));
	snprintf(q, sizeof(q), "%s.renamed", file);
	expect_erofs("rename", rename(file, q));
	expect_erofs("chmod", chmod(file, 0777));
	expect_erofs("chown", chown(file, 1, 1));
	expect_erofs("truncate", truncate(file, 0));
	expect_erofs("utimes", utimensat(AT_FDCWD, file, NULL, 0));
	expect_erofs("setxattr", setxattr(file, "user.x", "y", 1, 0));
	expect_erofs("removexattr", removexattr(file, "user.x"));
	{
		int fd = open(file, O_RDONLY);
		if (fd < 0)
			FAIL("open for reading: %s", strerror(errno));
		else {
			if (write(fd, "x", 1) != -1)
				FAIL("write on a read-only fd succeeded");
			if (fallocate(fd, 0, 0, 10) != -1)
				FAIL("fallocate succeeded");
			close(fd);
		}
	}
	return failures ? 1 : 0;
}

static int do_flip(const char *repo, const char *file)
{
	unsigned char pat[64];
	char cmd[8192], path[8192];
	int fd = open(file, O_RDONLY);
	FILE *f;
	int done = 0;

	if (fd < 0 || pread(fd, pat, sizeof(pat), 1000) != (ssize_t)sizeof(pat)) {
		FAIL("%s: cannot read a pattern", file);
		return 1;
	}
	close(fd);
	snprintf(cmd, sizeof(cmd), "find '%s/data' -name '*.pack'", repo);
	if (!(f = popen(cmd, "r")))
		return 1;
	while (!done && fgets(path, sizeof(path), f)) {
		unsigned char *buf;
		size_t len;
		path[strcspn(path, "\n")] = 0;
		if (read_all(path, &buf, &len) < 0)
			continue;
		unsigned char *hit = memmem(buf, len, pat, sizeof(pat));
		if (hit) {
			off_t at = (off_t)(hit - buf) + 10;
			unsigned char c = (unsigned char)(hit[10] ^ 0x40);
			int w = open(path, O_WRONLY);
			if (w >= 0 && pwrite(w, &c, 1, at) == 1) {
				printf("%s %lld\n", path, (long long)at);
				done = 1;
			}
			if (w >= 0)
				close(w);
		}
		free(buf);
	}
	pclose(f);
	if (!done)
		FAIL("%s: data not found raw in any pack", file);
	return done ? 0 : 1;
}

int main(int argc, char **argv)
{
	if (argc >= 4 && !strcmp(argv[1], "compare")) {
		g_src = argv[2];
		g_mnt = argv[3];
		g_skip = argc > 4 ? argv[4] : NULL;
		srandom(42);
		nftw(g_src, visit, 64, FTW_PHYS);
		nftw(g_mnt, visit_back, 64, FTW_PHYS);
		return failures ? 1 : 0;
	}
	if (argc == 5 && !strcmp(argv[1], "readers")) {
		int n = atoi(argv[4]);
		pthread_t th[64];
		struct reader r[64];
		if (n < 1 || n > 64)
			return 2;
		for (int k = 0; k < n; k++) {
			r[k] = (struct reader){ argv[2], argv[3], 0, (unsigned)k + 1 };
			pthread_create(&th[k], NULL, reader_main, &r[k]);
		}
		for (int k = 0; k < n; k++) {
			pthread_join(th[k], NULL);
			if (r[k].fails)
				FAIL("reader %d: %d mismatches", k, r[k].fails);
		}
		return failures ? 1 : 0;
	}
	if (argc == 4 && !strcmp(argv[1], "erofs"))
		return do_erofs(argv[2], argv[3]);
	if (argc == 4 && !strcmp(argv[1], "flip"))
		return do_flip(argv[2], argv[3]);
	if (argc == 3 && !strcmp(argv[1], "eio")) {
		unsigned char buf[65536];
		int fd = open(argv[2], O_RDONLY);
		ssize_t n;
		if (fd < 0) {
			FAIL("%s: open: %s", argv[2], strerror(errno));
			return 1;
		}
		while ((n = read(fd, buf, sizeof(buf))) > 0)
			;
		if (n != -1 || errno != EIO)
			FAIL("%s: read gave %s, expected EIO", argv[2], n == 0 ? "EOF" : strerror(errno));
		close(fd);
		return failures ? 1 : 0;
	}
	fprintf(stderr, "usage: fscheck compare|readers|erofs|flip|eio ...\n");
	return 2;
}
