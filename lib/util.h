/*
 * Small parsers and helpers shared by every process: sizes, durations,
 * networks, socket addresses, names, printable copies of hostile text.
 */
#ifndef SMX_UTIL_H
#define SMX_UTIL_H

#include <sys/types.h>
#include <sys/socket.h>

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

/*
 * For RB_PROTOTYPE_INTERNAL/RB_GENERATE_INTERNAL of <sys/tree.h>:
 * libbsd's RB_*_STATIC need a __unused that it does not define.
 */
#define SMX_RB_STATIC	__attribute__((__unused__)) static

/* The longest DNS name, NUL included (RFC 1035 §2.3.4). */
#define UTIL_DOMAINSZ	256

/* "35M" -> bytes; K/M/G suffixes (powers of 1024). -1 with *errstr. */
int	 parse_size(const char *, size_t *, const char **errstr);
/* "5m" -> seconds; s/m/h/d suffixes, bare number is seconds. */
int	 parse_duration(const char *, time_t *, const char **errstr);
/* "10.0.0.0/8", "::1", "127.0.0.1" (host route). */
int	 parse_net(const char *, struct sockaddr_storage *, int *prefixlen,
	    const char **errstr);
int	 net_match(const struct sockaddr_storage *net, int prefixlen,
	    const struct sockaddr *addr);
/* A numeric address (v4 or v6) with a port into ss. */
int	 parse_sockaddr(const char *, uint16_t port,
	    struct sockaddr_storage *, socklen_t *);
/* "1.2.3.4" / "::1" of an address, port not included. */
const char *sa_str(const struct sockaddr *, char *, size_t);
int	 valid_domain(const char *);	/* syntax of a DNS name */
/* Lower-cases in place (ASCII only; SMTPUTF8 bytes are left alone). */
int	 hex_value(int);		/* '0'-'9' 'a'-'f' 'A'-'F', else -1 */
void	 str_lower(char *);
/*
 * A copy of hostile text for a reply or a log line: printable ASCII
 * stays, control characters, DEL and 8-bit octets become '?', cut to
 * fit dstsz.  dst may be src.  Returns dst.
 */
char	*str_printable(char *dst, size_t dstsz, const char *src);
/*
 * s as a JSON string, quoted and escaped, to out: the control process'
 * answers and splitmxctl's own (import).  UTF-8 passes as it is.
 */
void	 json_str(FILE *out, const char *s);
/*
 * strdup() or fatal(): running out of memory is not a state to go on in.
 * NULL gives "" (an optional field read from a message).
 */
char	*str_dup(const char *);
/* Durations and sizes printed back the way the configuration says them. */
void	 duration_str(time_t, char *, size_t);
void	 size_str(size_t, char *, size_t);

#endif
