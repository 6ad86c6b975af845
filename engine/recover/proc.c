/** @file
 * Running external commands for recovery (regenerate, validators, alert
 * hooks): an argv list executed with fork/execvp (never a shell), in its own
 * process group, with input on stdin, stdout and stderr captured (the last
 * 4 KiB: what a failing command says last, its error, is what is quoted of
 * it, however much it printed before), and a deadline after which the whole group is killed.  The
 * command is judged by its exit status once it exits: the output is read
 * for EXIT_GRACE_MS more, not until every holder of the pipe (a background
 * child) closes it; what is left of the group is killed then.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bkr/error.h"
#include "bkr/key.h"
#include "recover_i.h"

#define OUT_MAX 4096
/** How long the output is still read after the child exits (a background child may hold it open). */
#define EXIT_GRACE_MS 200

void bkr_rec_proc_free(bkr_rec_proc *p)
{
	if (!p)
		return;
	free(p->output);
	p->output = NULL;
}

static void child(char *const *argv, char *const *env, int in, int out)
{
	sigset_t none;

	setpgid(0, 0);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	signal(SIGPIPE, SIG_DFL);
	if (dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(out, 2) < 0)
		_exit(126);
	close_range(3, ~0u, 0);
	execvpe(argv[0], argv, env);
	dprintf(2, "cannot execute %s: %s\n", argv[0], strerror(errno));
	_exit(127);
}

int bkr_rec_spawn(char *const *argv, const void *input, size_t input_len, int64_t timeout_ms,
		  bkr_rec_proc *res)
{
	int inp[2] = { -1, -1 }, outp[2] = { -1, -1 }, err = 0;
	pid_t pid = -1;
	size_t written = 0, olen = 0;
	int64_t deadline, grace_end = 0;
	int pidfd = -1;
	bool reaped = false;
	sigset_t pipe_set, old_set;
	char **env = NULL;

	memset(res, 0, sizeof(*res));
	if (!argv || !argv[0])
		return bkr_error_set(BKR_EINVAL, "empty command");
	/* never a passphrase: what the command is given is its argv and stdin */
	if (!(res->output = calloc(1, OUT_MAX + 1)) || !(env = bkr_key_child_environ())) {
		free(res->output);
		res->output = NULL;
		return bkr_error_oom();
	}
	if (pipe2(inp, O_CLOEXEC) < 0 || pipe2(outp, O_CLOEXEC) < 0) {
		err = bkr_error_set_errno(errno, "%s: pipe", argv[0]);
		goto done;
	}
	sigemptyset(&pipe_set);
	sigaddset(&pipe_set, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &pipe_set, &old_set);
	pid = fork();
	if (pid == 0)
		child(argv, env, inp[0], outp[1]);
	if (pid < 0) {
		err = bkr_error_set_errno(errno, "%s: fork", argv[0]);
		pthread_sigmask(SIG_SETMASK, &old_set, NULL);
		goto done;
	}
	setpgid(pid, pid);
	close(inp[0]);
	inp[0] = -1;
	close(outp[1]);
	outp[1] = -1;
	fcntl(inp[1], F_SETFL, O_NONBLOCK);
	if (!input || input_len == 0) {
		close(inp[1]);
		inp[1] = -1;
	}
	deadline = bkr_rec_now_ms();
	deadline = timeout_ms > INT64_MAX - deadline ? INT64_MAX : deadline + timeout_ms;
#ifdef SYS_pidfd_open
	pidfd = (int)syscall(SYS_pidfd_open, pid, 0); /* readable when the child exits; close-on-exec */
#endif
	/*
	 * Feed stdin and read the output until the child exits, then read for a
	 * moment more (what it wrote is in the pipe) — not until the pipe closes:
	 * a background child it left behind may hold it open for as long as it
	 * likes.  The exit status decides; the deadline only counts while the
	 * child runs.
	 */
	for (;;) {
		struct pollfd pf[3];
		int64_t rem;
		int n = 0, left;

		if (!reaped) {
			pid_t w = waitpid(pid, &res->status, WNOHANG);
			if (w == pid) {
				reaped = true;
				grace_end = bkr_rec_now_ms() + EXIT_GRACE_MS;
				if (grace_end > deadline)
					grace_end = deadline;
				if (inp[1] >= 0) {
					close(inp[1]);
					inp[1] = -1;
				}
			} else if (w < 0 && errno != EINTR) {
				break;
			}
		}
		if (reaped && outp[0] < 0)
			break;
		rem = (reaped ? grace_end : deadline) - bkr_rec_now_ms();
		if (rem <= 0) {
			if (!reaped)
				res->timed_out = true;
			break;
		}
		/* poll takes an int: a timeout of 25 days or more is waited for in steps */
		left = rem > INT_MAX ? INT_MAX : (int)rem;
		if (!reaped && pidfd < 0 && left > 10)
			left = 10; /* no pidfd: look at the child every 10 ms */
		if (inp[1] >= 0)
			pf[n++] = (struct pollfd){ .fd = inp[1], .events = POLLOUT };
		if (outp[0] >= 0)
			pf[n++] = (struct pollfd){ .fd = outp[0], .events = POLLIN };
		if (!reaped && pidfd >= 0)
			pf[n++] = (struct pollfd){ .fd = pidfd, .events = POLLIN };
		if (poll(pf, (nfds_t)n, left) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		for (int i = 0; i < n; i++) {
			if (!pf[i].revents || pf[i].fd == pidfd)
				continue;
			if (pf[i].fd == inp[1]) {
				ssize_t w = write(inp[1], (const char *)input + written, input_len - written);
				if (w > 0)
					written += (size_t)w;
				if ((w < 0 && errno != EAGAIN && errno != EINTR) || written == input_len) {
					close(inp[1]);
					inp[1] = -1;
				}
			} else {
				char buf[OUT_MAX];
				ssize_t r = read(outp[0], buf, sizeof(buf));
				if (r > 0) {
					/* keep the tail: drop the oldest bytes to make room */
					size_t take = (size_t)r, drop = olen + take > OUT_MAX ? olen + take - OUT_MAX : 0;
					if (drop) {
						memmove(res->output, res->output + drop, olen - drop);
						olen -= drop;
					}
					memcpy(res->output + olen, buf, take);
					olen += take;
				} else if (r == 0 || (errno != EAGAIN && errno != EINTR)) {
					close(outp[0]);
					outp[0] = -1;
				}
			}
		}
	}
	if (!reaped) {
		kill(-pid, SIGKILL);
		kill(pid, SIGKILL);
		while (waitpid(pid, &res->status, 0) < 0 && errno == EINTR)
			;
	} else {
		/* leftovers of the group (background children) go too */
		kill(-pid, SIGKILL);
	}
	{
		struct timespec zero = { 0, 0 };
		while (sigtimedwait(&pipe_set, NULL, &zero) > 0)
			;
	}
	pthread_sigmask(SIG_SETMASK, &old_set, NULL);
	res->output[olen] = '\0';
	res->output_len = olen;
done:
	free(env);
	if (pidfd >= 0)
		close(pidfd);
	for (int i = 0; i < 2; i++) {
		if (inp[i] >= 0)
			close(inp[i]);
		if (outp[i] >= 0)
			close(outp[i]);
	}
	if (err < 0)
		bkr_rec_proc_free(res);
	return err;
}

char *bkr_rec_proc_describe(const char *name, const bkr_rec_proc *p, int64_t timeout_ms)
{
	char head[256], *out = NULL, tail[2 + 300 * 3 + 1] = ""; /* 300 bytes, each NUL 3 */
	const char *o = p->output ? p->output : "";
	size_t n;

	if (p->timed_out)
		snprintf(head, sizeof(head), "%s timed out after %.1fs (process group killed)", name,
			 (double)timeout_ms / 1000.0);
	else if (WIFEXITED(p->status) && WEXITSTATUS(p->status) == 127)
		snprintf(head, sizeof(head), "%s could not be executed", name);
	else if (WIFEXITED(p->status))
		snprintf(head, sizeof(head), "%s exited with status %d", name, WEXITSTATUS(p->status));
	else if (WIFSIGNALED(p->status))
		snprintf(head, sizeof(head), "%s killed by signal %d", name, WTERMSIG(p->status));
	else
		snprintf(head, sizeof(head), "%s failed", name);
	/* last non-empty line of the output (by its length: a command may print
	 * NUL bytes, and the line after one is what it said last), its NULs
	 * written as U+2400 */
	n = p->output ? p->output_len : 0;
	while (n && (o[n - 1] == '\n' || o[n - 1] == '\r' || o[n - 1] == ' ' || o[n - 1] == '\0'))
		n--;
	if (n) {
		size_t s = n, t = 2, end;
		while (s && o[s - 1] != '\n')
			s--;
		/* at most 300 bytes, cut at a character: never the first bytes of
		 * a UTF-8 sequence without the rest (a U+FFFD and an error_hex in
		 * the report, for a line that was valid UTF-8) */
		end = n - s > 300 ? s + 300 : n;
		while (end < n && end > s && ((unsigned char)o[end] & 0xc0) == 0x80)
			end--;
		memcpy(tail, ": ", 2);
		for (size_t i = s; i < end && t + 4 <= sizeof(tail); i++) {
			if (o[i]) {
				tail[t++] = o[i];
			} else {
				memcpy(tail + t, "\xe2\x90\x80", 3); /* U+2400, SYMBOL FOR NULL */
				t += 3;
			}
		}
		tail[t] = '\0';
	}
	if (asprintf(&out, "%s%s", head, tail) < 0)
		return NULL;
	return out;
}
