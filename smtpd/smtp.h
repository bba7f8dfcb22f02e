/*
 * The smtp process' own structures: configuration generations with
 * their TLS contexts and listeners, and the interface between the
 * process (smtp.c) and its sessions (smtp_session.c).
 */
#ifndef SMTP_H
#define SMTP_H

#include <sys/types.h>
#include <sys/queue.h>
#include <sys/socket.h>

#include <event.h>
#include <stdint.h>
#include <tls.h>

#include "splitmx.h"

/* libbsd's RB_*_STATIC need a __unused it does not define. */
#define SMTP_RB_STATIC	__attribute__((__unused__)) static

/* One pki of a generation, ready to accept TLS. */
struct smtp_pki {
	TAILQ_ENTRY(smtp_pki)	 entry;
	char			 name[SMX_NAMESZ];
	struct tls_config	*cfg;
	struct tls		*ctx;
};

/* A listening socket of a generation and its accept event. */
struct smtp_listen {
	struct smtp_gen		*gen;
	struct smx_listener	*l;
	struct tls		*tls;	/* STARTTLS offered if not NULL */
	struct event		 ev;
	int			 active;	/* ev is added */
};

/*
 * A configuration as the smtp process uses it.  Sessions keep the
 * generation they started with, so a reload never changes the rules
 * under a session's feet; the generation is freed when the last session
 * that refers to it ends.
 */
struct smtp_gen {
	struct smx_conf		*conf;
	int			 refs;
	TAILQ_HEAD(, smtp_pki)	 pkis;
	struct smtp_listen	*listens;
	size_t			 nlistens;
};

struct smtp_session;

/* smtp.c */
void	smtp_gen_ref(struct smtp_gen *);
void	smtp_gen_unref(struct smtp_gen *);
/* A session ended: account for it (counts, per-ip, accepting again). */
void	smtp_session_gone(const struct sockaddr_storage *);
/* Tell the queue to drop an uncommitted message file. */
void	smtp_queue_rollback(const char *);

/* smtp_session.c */
void	smtp_session_new(int, const struct sockaddr_storage *, socklen_t,
	    struct smtp_listen *);
struct smtp_session *smtp_session_find(uint64_t);
void	smtp_session_rcpt_result(struct smtp_session *, uint32_t verdict,
	    uint32_t code, const char *text, uint32_t rclass,
	    const char *rewritten, const char *dest);
/* fd is taken over (closed or kept) in every case. */
void	smtp_session_create_result(struct smtp_session *, int ok,
	    const char *id, int fd);
void	smtp_session_commit_result(struct smtp_session *, int ok,
	    const char *reply);

#endif
