/*
 * The seccomp filter, the last step of every child's privilege drop
 * (proc_drop_privileges()): after it a process can make only the system
 * calls its work needs.  A call outside its list stops it: SIGSYS, one
 * log line naming the call, and exit; the parent then takes the daemon
 * down as for any child that dies.  A few calls that libc may make on a
 * path we do not take (opening a file, a new socket for syslog) fail
 * with an error instead, as they would in the empty chroot anyway.
 *
 * What each process may do:
 *	every child	its event loop, messages and descriptors from its
 *			peers, memory (never executable), time, logs
 *	smtp		accept connections on the listeners it was given
 *	lookup		sockets for DNS (libunbound) and LDAP; open files (the
 *			resolver reads its files; the directory files come
 *			from the parent as descriptors)
 *	queue		files and directories under the spool, and their
 *			fsync through AIO (io_submit, io_getevents)
 *	relay		outbound sockets
 *	control		accept on the control and status sockets and the
 *			metrics listener; kill(pid, 0) to see whether a
 *			process lives (every child may signal only itself)
 *	filter		outbound sockets to inet milters (unix milters
 *			come connected from the parent); the message
 *			files are descriptors from the queue
 *
 * Built with sanitizers the filter is left out: their runtimes need
 * calls no process of ours makes (ptrace for the leak check at exit).
 * Built with -DSANDBOX_LEARN, a call outside the lists is allowed and
 * logged by the kernel (dmesg, "type=1326"), and each process carries
 * its name as its command name: how the lists below were checked
 * against the whole regress suite.
 */
#include <sys/types.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>

#include <errno.h>
#include <fcntl.h>
#include <seccomp.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "splitmx.h"

#if defined(__SANITIZE_ADDRESS__)
#define SANDBOX_SANITIZED	1
#else
#define SANDBOX_SANITIZED	0
#endif

static void	sandbox_sigsys(int, siginfo_t *, void *);
static void	sandbox_allow(scmp_filter_ctx, const int *);
static void	sandbox_errno(scmp_filter_ctx, const int *, int);
static void	sandbox_rule(scmp_filter_ctx, uint32_t, int, unsigned int,
		    const struct scmp_arg_cmp *);

/*
 * Every child.  Each process' own list below is named in the process
 * table (proc.c).
 */
static const int sys_common[] = {
	SCMP_SYS(read), SCMP_SYS(write), SCMP_SYS(readv), SCMP_SYS(writev),
	SCMP_SYS(pread64), SCMP_SYS(pwrite64), SCMP_SYS(close),
	SCMP_SYS(lseek), SCMP_SYS(fstat), SCMP_SYS(newfstatat),
	SCMP_SYS(statx), SCMP_SYS(fcntl), SCMP_SYS(dup), SCMP_SYS(dup2),
	SCMP_SYS(dup3),
	SCMP_SYS(epoll_create1), SCMP_SYS(epoll_ctl), SCMP_SYS(epoll_wait),
	SCMP_SYS(epoll_pwait), SCMP_SYS(poll), SCMP_SYS(ppoll),
	SCMP_SYS(select), SCMP_SYS(pselect6),
	SCMP_SYS(recvmsg), SCMP_SYS(sendmsg), SCMP_SYS(recvfrom),
	SCMP_SYS(sendto), SCMP_SYS(shutdown), SCMP_SYS(getsockopt),
	SCMP_SYS(setsockopt), SCMP_SYS(getsockname), SCMP_SYS(getpeername),
	SCMP_SYS(brk), SCMP_SYS(munmap), SCMP_SYS(mremap), SCMP_SYS(madvise),
	SCMP_SYS(rt_sigaction), SCMP_SYS(rt_sigprocmask),
	SCMP_SYS(rt_sigreturn),
	SCMP_SYS(clock_gettime), SCMP_SYS(clock_getres),
	SCMP_SYS(gettimeofday), SCMP_SYS(time), SCMP_SYS(nanosleep),
	SCMP_SYS(clock_nanosleep),
	SCMP_SYS(getpid), SCMP_SYS(gettid), SCMP_SYS(getppid),
	SCMP_SYS(getuid), SCMP_SYS(geteuid), SCMP_SYS(getgid),
	SCMP_SYS(getegid), SCMP_SYS(getrandom), SCMP_SYS(futex),
	SCMP_SYS(sched_yield), SCMP_SYS(sysinfo), SCMP_SYS(uname),
	SCMP_SYS(getrlimit), SCMP_SYS(prlimit64),
	SCMP_SYS(exit), SCMP_SYS(exit_group),
	-1
};

/* libc may try these on paths we do not take: an error, not death. */
static const int sys_refused[] = {
	SCMP_SYS(open), SCMP_SYS(openat), SCMP_SYS(socket),
	SCMP_SYS(connect), SCMP_SYS(access), SCMP_SYS(faccessat),
	SCMP_SYS(readlink), SCMP_SYS(readlinkat),
	-1
};

const int sandbox_smtp[] = {
	SCMP_SYS(accept), SCMP_SYS(accept4),
	SCMP_SYS(ftruncate),		/* a reused message file */
	-1
};

const int sandbox_lookup[] = {
	SCMP_SYS(socket), SCMP_SYS(connect), SCMP_SYS(bind),
	SCMP_SYS(open), SCMP_SYS(openat), SCMP_SYS(recvmmsg),
	SCMP_SYS(sendmmsg), SCMP_SYS(pipe2), SCMP_SYS(eventfd2),
	-1
};

const int sandbox_queue[] = {
	SCMP_SYS(open), SCMP_SYS(openat), SCMP_SYS(rename),
	SCMP_SYS(renameat), SCMP_SYS(renameat2), SCMP_SYS(unlink),
	SCMP_SYS(unlinkat), SCMP_SYS(mkdir), SCMP_SYS(mkdirat),
	SCMP_SYS(fsync), SCMP_SYS(fdatasync), SCMP_SYS(sync_file_range),
	SCMP_SYS(fadvise64), SCMP_SYS(fallocate),	/* queue_fs.c: reuse */
	SCMP_SYS(ftruncate), SCMP_SYS(getdents64), SCMP_SYS(fstatfs),
	SCMP_SYS(statfs), SCMP_SYS(fchmod), SCMP_SYS(umask),
	SCMP_SYS(io_submit), SCMP_SYS(io_getevents),	/* queue_aio.c */
	-1
};

const int sandbox_relay[] = {
	SCMP_SYS(socket), SCMP_SYS(connect), SCMP_SYS(bind),
	-1
};

const int sandbox_control[] = {
	SCMP_SYS(accept), SCMP_SYS(accept4),
	-1
};

const int sandbox_filter[] = {
	SCMP_SYS(socket), SCMP_SYS(connect),
	-1
};

static const char	*sandbox_proc = "?";

void
sandbox_enter(int proc)
{
	const struct proc_ident	*pi = proc_ident(proc);
	scmp_filter_ctx		 ctx;
	struct sigaction	 sa;
	struct scmp_arg_cmp	 arg;
	const int		*own;
	uint32_t		 deflt = SCMP_ACT_TRAP;
	int			 r;

	sandbox_proc = pi->name;
	if ((own = pi->syscalls) == NULL)
		fatalx("sandbox: no filter for %s", sandbox_proc);
	if (SANDBOX_SANITIZED) {
		log_debug("sandbox: no seccomp filter in a sanitizer build");
		return;
	}
#ifdef SANDBOX_LEARN
	deflt = SCMP_ACT_LOG;
	{
		char	 name[16];

		(void)snprintf(name, sizeof(name), "smx-%s", sandbox_proc);
		(void)prctl(PR_SET_NAME, name, 0, 0, 0);
	}
#endif
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = sandbox_sigsys;
	sa.sa_flags = SA_SIGINFO;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGSYS, &sa, NULL) == -1)
		fatal("sandbox: sigaction");

	if ((ctx = seccomp_init(deflt)) == NULL)
		fatalx("sandbox: seccomp_init failed");
	sandbox_allow(ctx, sys_common);
	sandbox_allow(ctx, own);
	/* The rest of libc's attempts fail as in the empty chroot. */
	sandbox_errno(ctx, sys_refused, EACCES);

	/* Memory is never made executable. */
	arg = SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, 0);
	sandbox_rule(ctx, SCMP_ACT_ALLOW, SCMP_SYS(mmap), 1, &arg);
	sandbox_rule(ctx, SCMP_ACT_ALLOW, SCMP_SYS(mprotect), 1, &arg);
	/* ioctl: the few requests libc and libevent make. */
	arg = SCMP_A1(SCMP_CMP_EQ, FIONREAD);
	sandbox_rule(ctx, SCMP_ACT_ALLOW, SCMP_SYS(ioctl), 1, &arg);
	arg = SCMP_A1(SCMP_CMP_EQ, FIONBIO);
	sandbox_rule(ctx, SCMP_ACT_ALLOW, SCMP_SYS(ioctl), 1, &arg);
	arg = SCMP_A1(SCMP_CMP_EQ, TCGETS);
	sandbox_rule(ctx, SCMP_ACT_ALLOW, SCMP_SYS(ioctl), 1, &arg);
	/* Signals only to itself (abort()), never to a sibling. */
	arg = SCMP_A0(SCMP_CMP_EQ, (scmp_datum_t)getpid());
	sandbox_rule(ctx, SCMP_ACT_ALLOW, SCMP_SYS(tgkill), 1, &arg);
	sandbox_rule(ctx, SCMP_ACT_ALLOW, SCMP_SYS(kill), 1, &arg);
	if (pi->flags & F_PROC_PROBE) {
		/* "show status": kill(pid, 0) asks whether a process lives. */
		arg = SCMP_A1(SCMP_CMP_EQ, 0);
		sandbox_rule(ctx, SCMP_ACT_ALLOW, SCMP_SYS(kill), 1, &arg);
	}

	if ((r = seccomp_load(ctx)) < 0)
		fatalx("sandbox: seccomp_load: %s", strerror(-r));
	seccomp_release(ctx);
	log_debug("sandbox: seccomp filter loaded");
}

static void
sandbox_allow(scmp_filter_ctx ctx, const int *list)
{
	for (; *list != -1; list++)
		sandbox_rule(ctx, SCMP_ACT_ALLOW, *list, 0, NULL);
}

static void
sandbox_errno(scmp_filter_ctx ctx, const int *list, int error)
{
	for (; *list != -1; list++)
		sandbox_rule(ctx, SCMP_ACT_ERRNO(error), *list, 0, NULL);
}

/*
 * One rule.  A call this architecture does not have (a negative
 * pseudo-number) is left out; a call already allowed is not refused.
 */
static void
sandbox_rule(scmp_filter_ctx ctx, uint32_t action, int nr, unsigned int n,
    const struct scmp_arg_cmp *arg)
{
	int	 r;

	if (nr < 0)
		return;
	if (n == 0)
		r = seccomp_rule_add(ctx, action, nr, 0);
	else
		r = seccomp_rule_add_array(ctx, action, nr, n, arg);
	if (r == -EEXIST)
		return;
	if (r < 0)
		fatalx("sandbox: rule for system call %d: %s", nr,
		    strerror(-r));
}

/*
 * A call outside the lists: one log line, then exit.  The number is
 * the architecture's (scmp_sys_resolver(1) names it); resolving it here
 * would allocate, and the call may have come from inside malloc.
 */
static void
sandbox_sigsys(int sig, siginfo_t *info, void *ctx)
{
	(void)sig;
	(void)ctx;
	log_warnx("sandbox: forbidden system call %d, exiting",
	    info->si_syscall);
	_exit(1);
}
