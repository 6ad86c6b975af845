/*
 * keyring: what the key cache tests (test_keycache.sh) need of the kernel's
 * keyring, with no keyutils installed (raw add_key, request_key, keyctl):
 *
 *   keyring new-session     give the calling shell (the parent) a new, empty
 *                           session keyring of its own (as `keyctl new_session`),
 *                           so that a test's entries are its own
 *   keyring user-session    give the calling shell the user's default session
 *                           keyring as its session keyring: the state of a
 *                           process no PAM module gave a session keyring
 *   keyring has DESC        exit 0 when a "user" key DESC is found, 1 when not
 *   keyring add DESC HEX    add a "user" key DESC with the payload HEX (bytes in hex)
 *                           to the session keyring
 *   keyring copy FROM TO    add a "user" key TO with the payload of key FROM
 *   keyring desc DESC       print the key's KEYCTL_DESCRIBE line: type;uid;gid;perm;desc
 */
#include <errno.h>
#include <linux/keyctl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

static long find(const char *desc)
{
	return syscall(SYS_request_key, "user", desc, NULL, 0);
}

static int add(const char *desc, const void *payload, size_t len)
{
	if (syscall(SYS_add_key, "user", desc, payload, len, KEY_SPEC_SESSION_KEYRING) < 0) {
		perror("add_key");
		return 2;
	}
	return 0;
}

int main(int argc, char **argv)
{
	unsigned char buf[4096];
	long k, n;

	if (argc == 2 && !strcmp(argv[1], "new-session")) {
		if (syscall(SYS_keyctl, KEYCTL_JOIN_SESSION_KEYRING, NULL) < 0 ||
		    syscall(SYS_keyctl, KEYCTL_SESSION_TO_PARENT) < 0) {
			perror("keyctl");
			return 2;
		}
		return 0;
	}
	if (argc == 2 && !strcmp(argv[1], "user-session")) {
		char name[32];
		snprintf(name, sizeof(name), "_uid_ses.%u", (unsigned)getuid());
		if (syscall(SYS_keyctl, KEYCTL_JOIN_SESSION_KEYRING, name) < 0 ||
		    syscall(SYS_keyctl, KEYCTL_SESSION_TO_PARENT) < 0) {
			perror("keyctl");
			return 2;
		}
		return 0;
	}
	if (argc == 3 && !strcmp(argv[1], "has"))
		return find(argv[2]) > 0 ? 0 : 1;
	if (argc == 4 && !strcmp(argv[1], "add")) {
		size_t len = strlen(argv[3]) / 2;
		for (size_t i = 0; i < len && i < sizeof(buf); i++)
			sscanf(argv[3] + 2 * i, "%2hhx", &buf[i]);
		return add(argv[2], buf, len < sizeof(buf) ? len : sizeof(buf));
	}
	if (argc == 4 && !strcmp(argv[1], "copy")) {
		if ((k = find(argv[2])) < 0 || (n = syscall(SYS_keyctl, KEYCTL_READ, k, buf, sizeof(buf))) < 0) {
			perror(argv[2]);
			return 2;
		}
		return add(argv[3], buf, (size_t)n);
	}
	if (argc == 3 && !strcmp(argv[1], "desc")) {
		char d[512];
		if ((k = find(argv[2])) < 0 || (n = syscall(SYS_keyctl, KEYCTL_DESCRIBE, k, d, sizeof(d))) < 0) {
			perror(argv[2]);
			return 2;
		}
		printf("%s\n", d);
		return 0;
	}
	fprintf(stderr, "usage: keyring new-session | has DESC | add DESC HEX | copy FROM TO | desc DESC\n");
	return 2;
}
