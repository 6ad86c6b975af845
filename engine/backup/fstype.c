/** @file
 * Pseudo-filesystems, which a backup never reads: their files describe the
 * running system (proc, sysfs, cgroup, devtmpfs, debugfs...), are endless or
 * block, and a bkrfs mount is the repository itself.  Recognised by
 * statfs(2)'s f_type; tmpfs and FUSE share a magic with devtmpfs and other
 * FUSE filesystems, so for those the mount table names the type.
 */
#include "backup_i.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statfs.h>
#include <sys/sysmacros.h>

#define MAGIC_TMPFS 0x01021994
#define MAGIC_FUSE 0x65735546

static const struct {
	unsigned long magic;
	const char *name;
} pseudo[] = {
	{ 0x9fa0, "proc" },
	{ 0x62656572, "sysfs" },
	{ 0x27e0eb, "cgroup" },
	{ 0x63677270, "cgroup2" },
	{ 0x64626720, "debugfs" },
	{ 0x74726163, "tracefs" },
	{ 0x73636673, "securityfs" },
	{ 0x6165676c, "pstore" },
	{ 0xcafe4a11, "bpf" },
	{ 0x62656570, "configfs" },
	{ 0x1cd1, "devpts" },
	{ 0x42494e4d, "binfmt_misc" },
	{ 0xde5e81e4, "efivarfs" },
	{ 0x19800202, "mqueue" },
	{ 0x6e736673, "nsfs" },
};

/* The type column of /proc/self/mountinfo for device @p dev ("" when not found). */
static void mount_type(dev_t dev, char out[128])
{
	FILE *f = fopen("/proc/self/mountinfo", "re");
	char *line = NULL;
	size_t len = 0;

	out[0] = '\0';
	if (!f)
		return;
	while (getline(&line, &len, f) > 0) {
		unsigned maj, min;
		/* "36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw" */
		if (sscanf(line, "%*u %*u %u:%u", &maj, &min) != 2 || makedev(maj, min) != dev)
			continue;
		char *sep = strstr(line, " - ");
		if (sep && sscanf(sep + 3, "%127s", out) == 1)
			break;
		out[0] = '\0';
	}
	free(line);
	fclose(f);
}

const char *bkr_bk_pseudo_fs(int fd, dev_t dev)
{
	struct statfs sf;
	char type[128];

	if (fstatfs(fd, &sf) < 0)
		return NULL;
	for (size_t i = 0; i < sizeof(pseudo) / sizeof(pseudo[0]); i++)
		if ((unsigned long)sf.f_type == pseudo[i].magic)
			return pseudo[i].name;
	if ((unsigned long)sf.f_type == MAGIC_TMPFS) {
		mount_type(dev, type);
		if (!strcmp(type, "devtmpfs"))
			return "devtmpfs";
	} else if ((unsigned long)sf.f_type == MAGIC_FUSE) {
		mount_type(dev, type);
		if (!strcmp(type, "fuse.bkrfs"))
			return "bkrfs";
	}
	return NULL;
}
