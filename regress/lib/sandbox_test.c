/*
 * Unit tests of smtpd/sandbox.c: each case forks, enters one process'
 * filter and makes one call; the exit status and the log line on the
 * standard error say what the filter did.  TAP output.
 */
#include <sys/types.h>
#include <sys/mman.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include <netinet/in.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "splitmx.h"
#include "tap.h"

#define NTESTS	14

enum action {
	ACT_NOTHING,
	ACT_OPEN,
	ACT_SOCKET,
	ACT_FORK,
	ACT_EXEC,
	ACT_MMAP_EXEC,
	ACT_MPROTECT_EXEC,
	ACT_KILL_PARENT,
	ACT_PROBE_PARENT,
	ACT_PTRACE,
	ACT_UNLINK
};

/* Exit codes of the child: 0 done, 3 the call did not do as expected. */
#define DONE	0
#define KILLED	1	/* sandbox_sigsys() */
#define WRONG	3

static int
act(enum action a)
{
	void	*p;
	int	 fd;

	switch (a) {
	case ACT_NOTHING:
		return DONE;
	case ACT_OPEN:
		fd = open("/etc/hostname", O_RDONLY);
		return fd == -1 && errno == EACCES ? DONE : WRONG;
	case ACT_SOCKET:
		fd = socket(AF_INET, SOCK_STREAM, 0);
		return fd == -1 && errno == EACCES ? DONE :
		    fd >= 0 ? 4 : WRONG;
	case ACT_FORK:
		(void)fork();
		return WRONG;
	case ACT_EXEC:
		(void)execl("/bin/true", "true", (char *)NULL);
		return WRONG;
	case ACT_MMAP_EXEC:
		(void)mmap(NULL, 4096, PROT_READ | PROT_EXEC,
		    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		return WRONG;
	case ACT_MPROTECT_EXEC:
		p = mmap(NULL, 4096, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (p == MAP_FAILED)
			return WRONG;
		(void)mprotect(p, 4096, PROT_READ | PROT_EXEC);
		return WRONG;
	case ACT_KILL_PARENT:
		(void)kill(getppid(), SIGTERM);
		return WRONG;
	case ACT_PROBE_PARENT:
		return kill(getppid(), 0) == 0 ? DONE : WRONG;
	case ACT_PTRACE:
		(void)ptrace(PTRACE_TRACEME, 0, NULL, NULL);
		return WRONG;
	case ACT_UNLINK:
		(void)unlink("/nonexistent-splitmx-sandbox-test");
		return WRONG;
	}
	return WRONG;
}

/* The child's exit status (-1 if it did not exit) and its stderr. */
static int
run(int proc, enum action a, char *err, size_t errlen)
{
	pid_t	 pid;
	int	 p[2], status;
	ssize_t	 n;
	size_t	 len = 0;

	if (pipe(p) == -1)
		return -1;
	fflush(stdout);
	if ((pid = fork()) == -1)
		return -1;
	if (pid == 0) {
		close(p[0]);
		if (dup2(p[1], STDERR_FILENO) == -1)
			_exit(5);
		log_init(1, 0);
		sandbox_enter(proc);
		_exit(act(a));
	}
	close(p[1]);
	while (len + 1 < errlen &&
	    (n = read(p[0], err + len, errlen - len - 1)) > 0)
		len += (size_t)n;
	err[len] = '\0';
	close(p[0]);
	if (waitpid(pid, &status, 0) == -1 || !WIFEXITED(status))
		return -1;
	return WEXITSTATUS(status);
}

static int
expect(int proc, enum action a, int want, const char *logged)
{
	char	 err[1024];
	int	 got;

	got = run(proc, a, err, sizeof(err));
	if (got != want)
		diag("exit %d, wanted %d; stderr: %s", got, want, err);
	if (logged != NULL && strstr(err, logged) == NULL) {
		diag("stderr has no \"%s\": %s", logged, err);
		return 0;
	}
	return got == want;
}

int
main(void)
{
#if defined(__SANITIZE_ADDRESS__)
	printf("1..0\n# no seccomp filter in sanitizer builds\n");
	return 0;
#endif
	plan(NTESTS);
	ok(expect(PROC_SMTP, ACT_NOTHING, DONE, NULL),
	    "smtp: the filter loads, the common calls pass");
	ok(expect(PROC_SMTP, ACT_OPEN, DONE, NULL),
	    "smtp: open() fails with EACCES");
	ok(expect(PROC_SMTP, ACT_SOCKET, DONE, NULL),
	    "smtp: socket() fails with EACCES");
	ok(expect(PROC_SMTP, ACT_FORK, KILLED,
	    "sandbox: forbidden system call"), "smtp: fork() is fatal, "
	    "and logged");
	ok(expect(PROC_RELAY, ACT_EXEC, KILLED, "sandbox: forbidden"),
	    "relay: execve() is fatal");
	ok(expect(PROC_LOOKUP, ACT_MMAP_EXEC, KILLED, NULL),
	    "lookup: executable mmap() is fatal");
	ok(expect(PROC_QUEUE, ACT_MPROTECT_EXEC, KILLED, NULL),
	    "queue: mprotect() to executable is fatal");
	ok(expect(PROC_CONTROL, ACT_KILL_PARENT, KILLED, NULL),
	    "control: signalling another process is fatal");
	ok(expect(PROC_CONTROL, ACT_PROBE_PARENT, DONE, NULL),
	    "control: kill(pid, 0) probes a process");
	ok(expect(PROC_SMTP, ACT_PROBE_PARENT, KILLED, NULL),
	    "smtp: even kill(pid, 0) is fatal");
	ok(expect(PROC_QUEUE, ACT_PTRACE, KILLED, NULL),
	    "queue: ptrace() is fatal");
	ok(expect(PROC_RELAY, ACT_UNLINK, KILLED, NULL),
	    "relay: unlink() is fatal");
	ok(expect(PROC_QUEUE, ACT_UNLINK, WRONG, NULL),
	    "queue: unlink() is allowed (and fails: no such file)");
	ok(expect(PROC_RELAY, ACT_SOCKET, 4, NULL),
	    "relay: socket() is allowed");
	return done();
}
