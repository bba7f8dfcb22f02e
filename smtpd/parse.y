/*
 * splitmx.conf: the configuration language (SPEC §3, splitmx.conf(5)),
 * its lexer with a file stack for "include", and its validation.
 *
 * Extensions to the language of SPEC §3, all documented in
 * splitmx.conf(5):
 *
 *	limit errors N			protocol errors before a session is
 *					disconnected (default 10)
 *	timeout command DURATION	idle time allowed between commands
 *					(default 5m)
 *	timeout data DURATION		how far a message may fall behind
 *					the data rate (default 10m)
 *	limit data-rate SIZE		the least average rate, in octets
 *					a second, of a message (default 1K)
 *	domain "x" { forward from NET... }
 *					the addresses the forward host sends
 *					from: an "unknown forward" recipient
 *					in a message from there is a loop
 *	table x ldap { timeout DURATION }
 *					time allowed for one LDAP request
 *					(default 10s)
 *	table x ldap { tls require }	StartTLS on ldap:// servers
 *	table x ldap { ca "FILE" }	CA certificates that verify the
 *					servers of ldaps:// and StartTLS
 *	table x ldap { filter "..%u..%d.." }
 *					the local part and the domain of
 *					the address, besides %s
 *	trust-anchor "FILE"		the DNSSEC trust anchors (default
 *					the root's, from dns-root-data)
 *	ca "FILE"			the CA certificates that outbound
 *					verification trusts (tls verify,
 *					MTA-STS), instead of the system's
 *	milter NAME "inet:..."|"unix:..." [on-error tempfail|accept|reject]
 *	    [timeout DURATION]		SPEC §9, with NAME at most 32
 *					characters (it is in counter names)
 *	listen on ... milter NAME ...	at most 8 milters, in order
 *
 * SPEC §10's connection policy (dnsbl, dnswl, dnsbl threshold, limit
 * connection-rate) is read by add_dnsbl() and check_dnsbl().
 *
 * Every error is reported as FILE:LINE: message and parsing goes on at
 * the next line, so one run shows all of them; a file with any error is
 * refused as a whole.  Names that are defined later in the file (a pki,
 * a table) are resolved once everything has been read.
 */

%{
#include <sys/types.h>
#include <sys/queue.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <netinet/in.h>
#include <arpa/inet.h>

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "splitmx.h"

#define MAX_INCLUDE	8		/* nested include files */
#define MAX_WORD	8192		/* longest word or string */

/* One file being read; the stack top is the current one. */
struct file {
	TAILQ_ENTRY(file)	 entry;
	FILE			*stream;
	char			*name;
	dev_t			 dev;
	ino_t			 ino;
	int			 lineno;
	int			 nlpending;	/* count at next char */
	int			 startnl;	/* first a newline (include) */
	int			 eof;
};
TAILQ_HEAD(filelist, file);

/* A name used before it may be defined, checked at the end. */
enum ref_kind {
	REF_PKI,
	REF_TABLE,
	REF_MILTER
};
struct ref {
	TAILQ_ENTRY(ref)	 entry;
	enum ref_kind		 kind;
	char			 name[SMX_NAMESZ];
	const char		*file;
	int			 line;
};
TAILQ_HEAD(reflist, ref);

/* Settings that may be given once. */
enum once {
	ONCE_HOSTNAME,
	ONCE_USER,
	ONCE_QUEUE,
	ONCE_CONTROL,
	ONCE_ADMIN,
	ONCE_STATUS,
	ONCE_RESOLVER,
	ONCE_METRICS,
	ONCE_MSGSIZE,
	ONCE_RECIPIENTS,
	ONCE_SESSIONS,
	ONCE_PERIP,
	ONCE_ERRORS,
	ONCE_TIMEOUT_CMD,
	ONCE_TIMEOUT_DATA,
	ONCE_OUTBOUND,
	ONCE_RETRY,
	ONCE_WARN,
	ONCE_THRESHOLD,
	ONCE_CONNRATE,
	ONCE_DATA_RATE,
	ONCE_TRUST_ANCHOR,
	ONCE_CA,
	ONCE_MTA_STS,
	ONCE_COUNT
};

/* The listen directive being read. */
struct listen_opts {
	int			 port;		/* -1: default */
	int			 flags;
	char			*pki;
	int			 tls_seen;
	char			 milters[SMX_LISTEN_MILTERS][SMX_NAMESZ];
	uint32_t		 nmilters;
};

/* The milter directive being read. */
struct milter_ctx {
	struct smx_milter	*mi;
	int			 on_error_set, timeout_set;
};

/* The domain block being read. */
struct domain_ctx {
	struct smx_domain	*d;
	const char		*file;
	int			 line;
	int			 errors;	/* at the opening line */
	int			 type_set, type_line;
	int			 dir_set, unknown_set, unknown_line;
};

/* The ldap table block being read. */
#define LDAP_URL	0x01
#define LDAP_BASE	0x02
#define LDAP_BIND	0x04
#define LDAP_FILTER	0x08
#define LDAP_TARGET	0x10
#define LDAP_CACHE	0x20
#define LDAP_TIMEOUT	0x40
#define LDAP_TLS	0x80
#define LDAP_CA		0x100
#define LDAP_FAILBACK	0x200
struct table_ctx {
	struct smx_table	*t;
	const char		*file;
	int			 line;
	int			 errors;
	int			 seen;
};

static struct filelist		 files = TAILQ_HEAD_INITIALIZER(files);
static struct filelist		 closed = TAILQ_HEAD_INITIALIZER(closed);
static struct reflist		 refs = TAILQ_HEAD_INITIALIZER(refs);
static struct file		*file, *topfile;
static struct smx_conf		*conf;
static FILE			*errfp;
static int			 errors;
static int			 listen_seen;
static int			 once_set[ONCE_COUNT];
static struct listen_opts	 lopts;
static struct domain_ctx	 dctx;
static struct table_ctx		 tctx;
static struct milter_ctx	 mctx;
static struct smx_netlist	*cur_nets;
/* Where the connection policy was set, for check_dnsbl(). */
static const char		*dnsbl_file;
static int			 dnsbl_line;
static char			 lex_last[48];	/* the last token, shown */

int		 yyparse(void);
static int	 yylex(void);
static int	 yyerror(const char *, ...)
		    __attribute__((__format__ (printf, 1, 2)));
static const char *show_word(char *, size_t, const char *);
static void	 lex_remember(const char *, int);
static const char *kw_name(int);
static void	 conf_error(const char *, int, const char *, ...)
		    __attribute__((__format__ (printf, 3, 4)));
static int	 kw_lookup(const char *);
static int	 lgetc(void);
static struct file *pushfile(const char *, int);
static int	 popfile(void);
static int	 set_once(enum once, const char *);
static int	 in_range(int64_t, int64_t, int64_t, const char *);
static int	 valid_name(const char *, const char *);
static int	 copy_str(char *, size_t, const char *, const char *);
static int	 copy_path(char *, size_t, const char *, const char *);
static int	 copy_sock(char *, size_t, const char *, const char *);
static int	 copy_user(char *, size_t, const char *);
static int	 copy_group(char *, size_t, const char *);
static void	 add_ref(enum ref_kind, const char *);
static void	 add_net(const char *);
static void	 set_host(struct smx_host *, const char *, int, const char *);
static int	 hostname_ok(const char *);
static void	 set_hostname(const char *);
static void	 set_resolver(const char *);
static void	 set_metrics(const char *, int64_t);
static void	 set_time(time_t *, int64_t, int64_t, int64_t, const char *);
static int	 set_file(char *, size_t, const char *, const char *);
static void	 add_pki(const char *, const char *, const char *);
static void	 add_listener(const char *);
static void	 add_file_table(const char *, const char *);
static struct smx_table *new_table(const char *, enum smx_table_type);
static void	 ldap_begin(const char *);
static int	 ldap_once(int, const char *);
static void	 ldap_set_url(const char *);
static void	 ldap_set_filter(const char *);
static void	 ldap_end(void);
static void	 domain_begin(const char *);
static int	 domain_name_ok(const char *);
static void	 domain_end(void);
static void	 milter_begin(const char *, const char *);
static void	 milter_end(void);
static void	 listen_milter(const char *);
static void	 check_refs(void);
static void	 add_dnsbl(const char *, int, int64_t);
static void	 check_dnsbl(void);
static void	 drop_pending(void);
static void	 cleanup(void);

%}

/*
 * Syntax errors are reported by yyreport_syntax_error(), which names
 * the word the parser stopped at; LAC makes the expected tokens it
 * lists exact.
 */
%define parse.error custom
%define parse.lac full

%union {
	int64_t		 number;
	char		*string;
}

%token	ACCEPT ADMIN AFTER AUTHORITATIVE BASE BIND BOUNCE CA CACHE CERT COMMAND
%token	CONTROL DATA DIRECTORY DOMAIN ERRORS EXPIRE FAILBACK FILENAME FILTER
%token	FORWARD
%token	FROM GROUP HOSTNAME INCLUDE KEY LDAP LIMIT LISTEN LOCAL MESSAGE_SIZE
%token	METRICS MILTER MX NONE ON ON_ERROR OPPORTUNISTIC OUTBOUND PASSWORD
%token	PKI PORT QUEUE
%token	RECIPIENTS REJECT RELAY REQUIRE RESOLVER RETRY SESSIONS
%token	SESSIONS_PER_IP SHARED SOCKET STATUS TABLE TARGET_ATTRIBUTE TIMEOUT
%token	TEMPFAIL TLS TLS_REQUIRE TO TRUSTED TYPE UNKNOWN URL USER VERIFY VIA
%token	WARN
%token	CONNECTION_RATE DNSBL DNSWL THRESHOLD WEIGHT
%token	DATA_RATE
%token	DANE DANE_ONLY MTA_STS OFF TRUST_ANCHOR
%token	ERROR
%token	<string>	STRING
%token	<number>	NUMBER
%type	<string>	optgroup
%type	<number>	size duration tlspolicy domaintype unknownpolicy
%type	<number>	dnsweight onerror

%destructor { free($$); } <string>

%%

grammar		: /* empty */
		| grammar '\n'
		| grammar include '\n'
		| grammar main '\n'
		| grammar error '\n'		{
			yyerrok;
			drop_pending();
		}
		;

include		: INCLUDE STRING		{
			struct file	*nf;

			if ((nf = pushfile($2, 1)) != NULL) {
				/* The include line ends before the file. */
				nf->startnl = 1;
				file = nf;
			}
			free($2);
		}
		;

size		: NUMBER			{ $$ = $1; }
		| STRING			{
			const char	*errstr;
			size_t		 sz;

			if (parse_size($1, &sz, &errstr) == -1) {
				yyerror("invalid size \"%s\": %s", $1, errstr);
				$$ = -1;
			} else
				$$ = (int64_t)sz;
			free($1);
		}
		;

duration	: NUMBER			{ $$ = $1; }
		| STRING			{
			const char	*errstr;
			time_t		 t;

			if (parse_duration($1, &t, &errstr) == -1) {
				yyerror("invalid duration \"%s\": %s", $1,
				    errstr);
				$$ = -1;
			} else
				$$ = (int64_t)t;
			free($1);
		}
		;

optgroup	: /* empty */			{ $$ = NULL; }
		| GROUP STRING			{ $$ = $2; }
		;

tlspolicy	: /* empty */			{ $$ = TLSP_OPPORTUNISTIC; }
		| TLS NONE			{ $$ = TLSP_NONE; }
		| TLS OPPORTUNISTIC		{ $$ = TLSP_OPPORTUNISTIC; }
		| TLS REQUIRE			{ $$ = TLSP_REQUIRE; }
		| TLS VERIFY			{ $$ = TLSP_VERIFY; }
		| TLS DANE			{ $$ = TLSP_DANE; }
		| TLS DANE_ONLY			{ $$ = TLSP_DANE_ONLY; }
		;

netlist		: net
		| netlist net
		;

net		: STRING			{ add_net($1); free($1); }
		;

main		: HOSTNAME STRING		{
			if (set_once(ONCE_HOSTNAME, "hostname"))
				set_hostname($2);
			free($2);
		}
		| USER STRING			{
			if (set_once(ONCE_USER, "user"))
				copy_user(conf->user, sizeof(conf->user), $2);
			free($2);
		}
		| QUEUE STRING			{
			if (set_once(ONCE_QUEUE, "queue")) {
				if ($2[0] != '/')
					yyerror("queue \"%s\" must be an "
					    "absolute path", $2);
				else
					copy_path(conf->queue_dir,
					    sizeof(conf->queue_dir), $2,
					    "queue");
			}
			free($2);
		}
		| CONTROL SOCKET STRING optgroup {
			if (set_once(ONCE_CONTROL, "control socket")) {
				copy_sock(conf->control_sock,
				    sizeof(conf->control_sock), $3,
				    "control socket");
				if ($4 != NULL)
					copy_group(conf->control_group,
					    sizeof(conf->control_group), $4);
			}
			free($3);
			free($4);
		}
		| CONTROL ADMIN GROUP STRING	{
			if (set_once(ONCE_ADMIN, "control admin group"))
				copy_group(conf->admin_group,
				    sizeof(conf->admin_group), $4);
			free($4);
		}
		| STATUS SOCKET STRING optgroup	{
			if (set_once(ONCE_STATUS, "status socket")) {
				copy_sock(conf->status_sock,
				    sizeof(conf->status_sock), $3,
				    "status socket");
				if ($4 != NULL)
					copy_group(conf->status_group,
					    sizeof(conf->status_group), $4);
			}
			free($3);
			free($4);
		}
		| RESOLVER STRING		{
			if (set_once(ONCE_RESOLVER, "resolver"))
				set_resolver($2);
			free($2);
		}
		| METRICS LISTEN ON STRING PORT NUMBER {
			if (set_once(ONCE_METRICS, "metrics listen"))
				set_metrics($4, $6);
			free($4);
		}
		| PKI STRING CERT STRING KEY STRING {
			add_pki($2, $4, $6);
			free($2);
			free($4);
			free($6);
		}
		| LISTEN ON STRING		{
			listen_seen = 1;
			drop_pending();
			memset(&lopts, 0, sizeof(lopts));
			lopts.port = -1;
		} listenopts			{
			add_listener($3);
			free($3);
			free(lopts.pki);
			lopts.pki = NULL;
		}
		| LIMIT MESSAGE_SIZE size	{
			if (set_once(ONCE_MSGSIZE, "limit message-size") &&
			    $3 != -1 && in_range($3, 1024,
			    2048LL * 1024 * 1024, "limit message-size"))
				conf->max_message_size = (size_t)$3;
		}
		| LIMIT RECIPIENTS NUMBER	{
			if (set_once(ONCE_RECIPIENTS, "limit recipients") &&
			    in_range($3, 1, 100000, "limit recipients"))
				conf->max_recipients = (uint32_t)$3;
		}
		| LIMIT SESSIONS NUMBER		{
			if (set_once(ONCE_SESSIONS, "limit sessions") &&
			    in_range($3, 1, 100000, "limit sessions"))
				conf->max_sessions = (uint32_t)$3;
		}
		| LIMIT SESSIONS_PER_IP NUMBER	{
			if (set_once(ONCE_PERIP, "limit sessions-per-ip") &&
			    in_range($3, 1, 100000, "limit sessions-per-ip"))
				conf->max_sessions_per_ip = (uint32_t)$3;
		}
		| LIMIT CONNECTION_RATE NUMBER	{
			if (set_once(ONCE_CONNRATE, "limit connection-rate") &&
			    in_range($3, 0, 100000, "limit connection-rate"))
				conf->connection_rate = (uint32_t)$3;
		}
		| DNSBL STRING dnsweight	{
			add_dnsbl($2, 0, $3);
			free($2);
		}
		| DNSWL STRING dnsweight	{
			add_dnsbl($2, 1, $3);
			free($2);
		}
		| DNSBL THRESHOLD NUMBER	{
			if (set_once(ONCE_THRESHOLD, "dnsbl threshold") &&
			    in_range($3, 1, DNSBL_THRESHOLD_MAX,
			    "dnsbl threshold")) {
				conf->dnsbl_threshold = (uint32_t)$3;
				dnsbl_file = file->name;
				dnsbl_line = file->lineno;
			}
		}
		| LIMIT ERRORS NUMBER		{
			if (set_once(ONCE_ERRORS, "limit errors") &&
			    in_range($3, 1, 1000, "limit errors"))
				conf->max_errors = (uint32_t)$3;
		}
		| TIMEOUT COMMAND duration	{
			if (set_once(ONCE_TIMEOUT_CMD, "timeout command"))
				set_time(&conf->timeout_command, $3, 1, 86400,
				    "timeout command");
		}
		| TIMEOUT DATA duration		{
			if (set_once(ONCE_TIMEOUT_DATA, "timeout data"))
				set_time(&conf->timeout_data, $3, 1, 86400,
				    "timeout data");
		}
		| LIMIT DATA_RATE size		{
			if (set_once(ONCE_DATA_RATE, "limit data-rate") &&
			    $3 != -1 && in_range($3, 1, 1024 * 1024 * 1024,
			    "limit data-rate"))
				conf->min_data_rate = (size_t)$3;
		}
		| TRUSTED			{
			cur_nets = &conf->trusted;
		} netlist
		| TABLE STRING FILENAME STRING	{
			add_file_table($2, $4);
			free($2);
			free($4);
		}
		| TABLE STRING LDAP		{
			ldap_begin($2);
			free($2);
			$2 = NULL;
		} '{' ldapopts '}'		{
			ldap_end();
		}
		| DOMAIN STRING			{
			domain_begin($2);
			free($2);
			$2 = NULL;
		} '{' domainopts '}'		{
			domain_end();
		}
		| OUTBOUND VIA MX tlspolicy	{
			if (set_once(ONCE_OUTBOUND, "outbound")) {
				memset(&conf->outbound, 0,
				    sizeof(conf->outbound));
				conf->outbound.port = 25;
				conf->outbound.flags = F_HOST_MX;
				conf->outbound.tls = (enum smx_tls)$4;
				conf->outbound.set = 1;
			}
		}
		| OUTBOUND VIA STRING tlspolicy	{
			if (set_once(ONCE_OUTBOUND, "outbound"))
				set_host(&conf->outbound, $3, (int)$4,
				    "outbound via");
			free($3);
		}
		| RETRY duration TO duration EXPIRE duration {
			if (set_once(ONCE_RETRY, "retry")) {
				set_time(&conf->retry_first, $2, 1,
				    30 * 86400, "retry");
				set_time(&conf->retry_cap, $4, 1,
				    30 * 86400, "retry ... to");
				set_time(&conf->expire, $6, 60,
				    365 * 86400, "expire");
				if ($2 > 0 && $4 > 0 && $2 > $4)
					yyerror("retry: the first interval "
					    "is longer than the cap");
			}
		}
		| WARN AFTER duration		{
			if (set_once(ONCE_WARN, "warn after"))
				set_time(&conf->warn_after, $3, 1,
				    365 * 86400, "warn after");
		}
		| TRUST_ANCHOR STRING		{
			if (set_once(ONCE_TRUST_ANCHOR, "trust-anchor"))
				set_file(conf->trust_anchor,
				    sizeof(conf->trust_anchor), $2,
				    "trust-anchor");
			free($2);
		}
		| CA STRING			{
			if (set_once(ONCE_CA, "ca") && set_file(conf->ca_file,
			    sizeof(conf->ca_file), $2, "ca"))
				conf->ca_set = 1;
			free($2);
		}
		| MTA_STS ON			{
			if (set_once(ONCE_MTA_STS, "mta-sts"))
				conf->mta_sts = 1;
		}
		| MTA_STS OFF			{
			if (set_once(ONCE_MTA_STS, "mta-sts"))
				conf->mta_sts = 0;
		}
		| MTA_STS STRING		{
			yyerror("mta-sts \"%s\": on or off", $2);
			free($2);
		}
		| MILTER STRING STRING		{
			milter_begin($2, $3);
			free($2);
			free($3);
			$2 = $3 = NULL;
		} milteropts			{
			milter_end();
		}
		;

milteropts	: /* empty */
		| milteropts milteropt
		;

milteropt	: ON_ERROR onerror		{
			if (mctx.on_error_set++)
				yyerror("milter: on-error given twice");
			else if (mctx.mi != NULL)
				mctx.mi->on_error = (enum smx_milter_error)$2;
		}
		| TIMEOUT duration		{
			if (mctx.timeout_set++)
				yyerror("milter: timeout given twice");
			else if (mctx.mi != NULL)
				set_time(&mctx.mi->timeout, $2, 1, 3600,
				    "milter timeout");
		}
		;

onerror		: TEMPFAIL		{ $$ = MILTER_ON_ERROR_TEMPFAIL; }
		| ACCEPT			{ $$ = MILTER_ON_ERROR_ACCEPT; }
		| REJECT			{ $$ = MILTER_ON_ERROR_REJECT; }
		;

dnsweight	: /* empty */			{ $$ = 1; }
		| WEIGHT NUMBER			{ $$ = $2; }
		;

listenopts	: /* empty */
		| listenopts listenopt
		;

listenopt	: PORT NUMBER			{
			if (lopts.port != -1)
				yyerror("listen: port given twice");
			else if (in_range($2, 1, 65535, "port"))
				lopts.port = (int)$2;
			else
				lopts.port = 0;
		}
		| TLS				{
			if (lopts.tls_seen++)
				yyerror("listen: tls given twice");
			lopts.flags |= F_LISTEN_TLS;
		}
		| TLS_REQUIRE			{
			if (lopts.tls_seen++)
				yyerror("listen: tls given twice");
			lopts.flags |= F_LISTEN_TLS | F_LISTEN_TLS_REQUIRE;
		}
		| PKI STRING			{
			if (lopts.pki != NULL) {
				yyerror("listen: pki given twice");
				free($2);
			} else
				lopts.pki = $2;
		}
		| MILTER STRING			{
			listen_milter($2);
			free($2);
		}
		;

ldapopts	: /* empty */
		| ldapopts '\n'
		| ldapopts ldapopt '\n'
		| ldapopts error '\n'		{ yyerrok; }
		;

ldapopt		: URL STRING			{
			if (ldap_once(LDAP_URL, "url"))
				ldap_set_url($2);
			free($2);
		}
		| BASE STRING			{
			if (ldap_once(LDAP_BASE, "base"))
				copy_str(tctx.t->base, sizeof(tctx.t->base),
				    $2, "base");
			free($2);
		}
		| BIND STRING PASSWORD STRING	{
			if (ldap_once(LDAP_BIND, "bind")) {
				copy_str(tctx.t->binddn,
				    sizeof(tctx.t->binddn), $2, "bind");
				copy_str(tctx.t->bindpw,
				    sizeof(tctx.t->bindpw), $4, "password");
			}
			free($2);
			explicit_bzero($4, strlen($4));
			free($4);
		}
		| FILTER STRING			{
			if (ldap_once(LDAP_FILTER, "filter"))
				ldap_set_filter($2);
			free($2);
		}
		| TARGET_ATTRIBUTE STRING	{
			if (ldap_once(LDAP_TARGET, "target-attribute"))
				copy_str(tctx.t->target_attr,
				    sizeof(tctx.t->target_attr), $2,
				    "target-attribute");
			free($2);
		}
		| CACHE duration		{
			if (ldap_once(LDAP_CACHE, "cache"))
				set_time(&tctx.t->cache, $2, 0, 86400,
				    "cache");
		}
		| TIMEOUT duration		{
			if (ldap_once(LDAP_TIMEOUT, "timeout"))
				set_time(&tctx.t->timeout, $2, 1, 3600,
				    "timeout");
		}
		| FAILBACK duration		{
			if (ldap_once(LDAP_FAILBACK, "failback"))
				set_time(&tctx.t->failback, $2, 0, 86400,
				    "failback");
		}
		| TLS REQUIRE			{
			if (ldap_once(LDAP_TLS, "tls"))
				tctx.t->starttls = 1;
		}
		| CA STRING			{
			if (ldap_once(LDAP_CA, "ca") &&
			    copy_path(tctx.t->ca, sizeof(tctx.t->ca), $2,
			    "ca") && access($2, R_OK) == -1)
				yyerror("table \"%s\": cannot read ca \"%s\": "
				    "%s", tctx.t->name, $2, strerror(errno));
			free($2);
		}
		;

domaintype	: AUTHORITATIVE			{ $$ = DOMAIN_AUTHORITATIVE; }
		| SHARED			{ $$ = DOMAIN_SHARED; }
		| RELAY				{ $$ = DOMAIN_RELAY; }
		;

unknownpolicy	: REJECT			{ $$ = UNKNOWN_REJECT; }
		| BOUNCE			{ $$ = UNKNOWN_BOUNCE; }
		| FORWARD			{ $$ = UNKNOWN_FORWARD; }
		;

domainopts	: /* empty */
		| domainopts '\n'
		| domainopts domainopt '\n'
		| domainopts error '\n'		{ yyerrok; }
		;

domainopt	: TYPE domaintype		{
			if (dctx.type_set++)
				yyerror("domain \"%s\": type given twice",
				    dctx.d->name);
			dctx.d->type = (enum smx_domain_type)$2;
			dctx.type_line = file->lineno;
		}
		| DIRECTORY STRING		{
			if (dctx.dir_set++)
				yyerror("domain \"%s\": directory given twice",
				    dctx.d->name);
			else if (valid_name($2, "table")) {
				strlcpy(dctx.d->directory, $2,
				    sizeof(dctx.d->directory));
				add_ref(REF_TABLE, $2);
			}
			free($2);
		}
		| LOCAL TO STRING tlspolicy	{
			if (dctx.d->local.set)
				yyerror("domain \"%s\": local to given twice",
				    dctx.d->name);
			else
				set_host(&dctx.d->local, $3, (int)$4,
				    "local to");
			free($3);
		}
		| FORWARD TO STRING tlspolicy	{
			if (dctx.d->forward.set)
				yyerror("domain \"%s\": forward to given "
				    "twice", dctx.d->name);
			else
				set_host(&dctx.d->forward, $3, (int)$4,
				    "forward to");
			free($3);
		}
		| FORWARD FROM			{
			cur_nets = &dctx.d->forward_from;
		} netlist
		| UNKNOWN unknownpolicy		{
			if (dctx.unknown_set++)
				yyerror("domain \"%s\": unknown given twice",
				    dctx.d->name);
			dctx.d->unknown = (enum smx_unknown)$2;
			dctx.unknown_line = file->lineno;
		}
		;

%%

struct keyword {
	const char	*name;
	int		 token;
};

/* Sorted for bsearch. */
static const struct keyword keywords[] = {
	{ "accept",		ACCEPT },
	{ "admin",		ADMIN },
	{ "after",		AFTER },
	{ "authoritative",	AUTHORITATIVE },
	{ "base",		BASE },
	{ "bind",		BIND },
	{ "bounce",		BOUNCE },
	{ "ca",			CA },
	{ "cache",		CACHE },
	{ "cert",		CERT },
	{ "command",		COMMAND },
	{ "connection-rate",	CONNECTION_RATE },
	{ "control",		CONTROL },
	{ "dane",		DANE },
	{ "dane-only",		DANE_ONLY },
	{ "data",		DATA },
	{ "data-rate",		DATA_RATE },
	{ "directory",		DIRECTORY },
	{ "dnsbl",		DNSBL },
	{ "dnswl",		DNSWL },
	{ "domain",		DOMAIN },
	{ "errors",		ERRORS },
	{ "expire",		EXPIRE },
	{ "failback",		FAILBACK },
	{ "file",		FILENAME },
	{ "filter",		FILTER },
	{ "forward",		FORWARD },
	{ "from",		FROM },
	{ "group",		GROUP },
	{ "hostname",		HOSTNAME },
	{ "include",		INCLUDE },
	{ "key",		KEY },
	{ "ldap",		LDAP },
	{ "limit",		LIMIT },
	{ "listen",		LISTEN },
	{ "local",		LOCAL },
	{ "message-size",	MESSAGE_SIZE },
	{ "metrics",		METRICS },
	{ "milter",		MILTER },
	{ "mta-sts",		MTA_STS },
	{ "mx",			MX },
	{ "none",		NONE },
	{ "off",		OFF },
	{ "on",			ON },
	{ "on-error",		ON_ERROR },
	{ "opportunistic",	OPPORTUNISTIC },
	{ "outbound",		OUTBOUND },
	{ "password",		PASSWORD },
	{ "pki",		PKI },
	{ "port",		PORT },
	{ "queue",		QUEUE },
	{ "recipients",		RECIPIENTS },
	{ "reject",		REJECT },
	{ "relay",		RELAY },
	{ "require",		REQUIRE },
	{ "resolver",		RESOLVER },
	{ "retry",		RETRY },
	{ "sessions",		SESSIONS },
	{ "sessions-per-ip",	SESSIONS_PER_IP },
	{ "shared",		SHARED },
	{ "socket",		SOCKET },
	{ "status",		STATUS },
	{ "table",		TABLE },
	{ "target-attribute",	TARGET_ATTRIBUTE },
	{ "tempfail",		TEMPFAIL },
	{ "threshold",		THRESHOLD },
	{ "timeout",		TIMEOUT },
	{ "tls",		TLS },
	{ "tls-require",	TLS_REQUIRE },
	{ "to",			TO },
	{ "trust-anchor",	TRUST_ANCHOR },
	{ "trusted",		TRUSTED },
	{ "type",		TYPE },
	{ "unknown",		UNKNOWN },
	{ "url",		URL },
	{ "user",		USER },
	{ "verify",		VERIFY },
	{ "via",		VIA },
	{ "warn",		WARN },
	{ "weight",		WEIGHT }
};

static int
kw_cmp(const void *k, const void *e)
{
	return strcmp(k, ((const struct keyword *)e)->name);
}

static int
kw_lookup(const char *s)
{
	const struct keyword	*kw;

	kw = bsearch(s, keywords, sizeof(keywords) / sizeof(keywords[0]),
	    sizeof(keywords[0]), kw_cmp);
	return kw == NULL ? -1 : kw->token;
}

/* The keyword of a token kind, or NULL. */
static const char *
kw_name(int kind)
{
	size_t	 i;

	for (i = 0; i < sizeof(keywords) / sizeof(keywords[0]); i++)
		if (YYTRANSLATE(keywords[i].token) == kind)
			return keywords[i].name;
	return NULL;
}

/* Whether the lexer reads s as a keyword: a name spelt so is quoted. */
int
parse_keyword(const char *s)
{
	return kw_lookup(s) != -1;
}

/*
 * A syntax error names the word the parser stopped at and, when few
 * things could have come there, what those are.  A keyword where a
 * string was expected is the commonest: a name or a value that happens
 * to be spelt like a keyword ("mx", "relay", "tls").
 */
static int
yyreport_syntax_error(const yypcontext_t *ctx)
{
	yysymbol_kind_t	 tok = yypcontext_token(ctx);
	yysymbol_kind_t	 exp[YYNTOKENS];
	const char	*name, *sep;
	char		 alt[160];
	int		 n, i;

	/* The lexer has already said what is wrong with its ERROR. */
	if (tok == YYSYMBOL_ERROR)
		return 0;
	n = yypcontext_expected_tokens(ctx, exp, YYNTOKENS);
	if (kw_name(tok) != NULL)
		for (i = 0; i < n; i++)
			if (exp[i] == YYSYMBOL_STRING) {
				yyerror("%s is a keyword; quote it or choose "
				    "another name", lex_last);
				return 0;
			}
	if (tok == YYSYMBOL_YYEOF) {
		/* A block left open: where it began is the useful line. */
		if (dctx.d != NULL)
			conf_error(dctx.file, dctx.line, "domain \"%s\": "
			    "the block is not closed with \"}\"", dctx.d->name);
		else if (tctx.t != NULL)
			conf_error(tctx.file, tctx.line, "table \"%s\": "
			    "the block is not closed with \"}\"", tctx.t->name);
		else
			yyerror("unexpected end of file");
		return 0;
	}
	/* The alternatives, when they are few enough to be a hint. */
	alt[0] = '\0';
	for (i = 0; i < n && n <= 6; i++) {
		if (exp[i] == YYSYMBOL_YYEMPTY)
			break;
		if ((name = kw_name(exp[i])) == NULL) {
			if (exp[i] == YYSYMBOL_STRING)
				name = "a string";
			else if (exp[i] == YYSYMBOL_NUMBER)
				name = "a number";
			else if (exp[i] == YYTRANSLATE('\n'))
				name = "end of line";
			else if (exp[i] == YYTRANSLATE('{'))
				name = "\"{\"";
			else if (exp[i] == YYTRANSLATE('}'))
				name = "\"}\"";
			else
				name = yysymbol_name(exp[i]);
		}
		sep = i == 0 ? "" : i == n - 1 ? " or " : ", ";
		strlcat(alt, sep, sizeof(alt));
		strlcat(alt, name, sizeof(alt));
	}
	if (alt[0] != '\0')
		yyerror("syntax error at %s; expected %s", lex_last, alt);
	else
		yyerror("syntax error at %s", lex_last);
	return 0;
}

static int
yyerror(const char *fmt, ...)
{
	va_list	 ap;

	errors++;
	fprintf(errfp, "%s:%d: ", file->name, file->lineno);
	va_start(ap, fmt);
	vfprintf(errfp, fmt, ap);
	va_end(ap);
	fputc('\n', errfp);
	return 0;
}

/* An error at a place remembered earlier (a block, a reference). */
static void
conf_error(const char *name, int line, const char *fmt, ...)
{
	va_list	 ap;

	errors++;
	fprintf(errfp, "%s:%d: ", name, line);
	va_start(ap, fmt);
	vfprintf(errfp, fmt, ap);
	va_end(ap);
	fputc('\n', errfp);
}

/*
 * A word as an error message shows it: in quotes, octets that are not
 * printable as \xHH, cut short with "..." if long.  len is at least 16.
 */
static const char *
show_word(char *dst, size_t len, const char *s)
{
	size_t	 off = 0;
	char	 hex[5];

	dst[off++] = '"';
	for (; *s != '\0'; s++) {
		if (off + 4 + 5 >= len) {
			strlcpy(dst + off, "...", len - off);
			off += 3;
			break;
		}
		if ((unsigned char)*s < 0x20 || (unsigned char)*s >= 0x7f) {
			(void)snprintf(hex, sizeof(hex), "\\x%02x",
			    (unsigned char)*s);
			memcpy(dst + off, hex, 4);
			off += 4;
		} else if (*s == '"' || *s == '\\') {
			dst[off++] = '\\';
			dst[off++] = *s;
		} else
			dst[off++] = *s;
	}
	dst[off++] = '"';
	dst[off] = '\0';
	return dst;
}

/* The token just read, for a syntax error: a word, or what it was. */
static void
lex_remember(const char *s, int quote)
{
	if (quote)
		show_word(lex_last, sizeof(lex_last), s);
	else
		strlcpy(lex_last, s, sizeof(lex_last));
}

static int
lgetc(void)
{
	int	 c;

	c = getc(file->stream);
	/* A new line is counted by its first character, not at EOF. */
	if (c != EOF && file->nlpending) {
		file->nlpending = 0;
		file->lineno++;
	}
	if (c == '\0') {
		yyerror("NUL byte in the configuration");
		return ' ';
	}
	return c;
}

/* Characters of a bare word: everything that is not syntax. */
static int
is_word(int c)
{
	if (c == EOF || c < 0x21 || c == 0x7f)
		return c >= 0x80;
	switch (c) {
	case '"': case '#': case '{': case '}': case '(': case ')':
	case '\'': case ';': case ',': case '=':
		return 0;
	}
	return 1;
}

static int
yylex(void)
{
	char		 buf[MAX_WORD];
	char		*p;
	const char	*errstr;
	int		 c, tok, alldigits;

top:
	if (file->startnl) {
		file->startnl = 0;
		lex_remember("end of line", 0);
		return '\n';
	}
	do {
		c = lgetc();
	} while (c == ' ' || c == '\t' || c == '\r');

	if (c == '#')
		do {
			c = lgetc();
		} while (c != '\n' && c != EOF);

	if (c == EOF) {
		if (ferror(file->stream)) {
			yyerror("read error: %s", strerror(errno));
			clearerr(file->stream);
		}
		/* A last line without a newline still ends. */
		if (!file->eof) {
			file->eof = 1;
			lex_remember("end of line", 0);
			return '\n';
		}
		if (popfile() == EOF) {
			lex_remember("end of file", 0);
			return 0;
		}
		goto top;
	}

	if (c == '\n') {
		file->nlpending = 1;
		lex_remember("end of line", 0);
		return '\n';
	}

	if (c == '"') {
		p = buf;
		for (;;) {
			c = lgetc();
			if (c == '\n' || c == EOF) {
				yyerror("unterminated string");
				ungetc(c, file->stream);
				return ERROR;
			}
			if (c == '"')
				break;
			if (c == '\\') {
				c = lgetc();
				if (c != '"' && c != '\\') {
					yyerror("invalid escape in string: "
					    "only \\\" and \\\\");
					while (c != '\n' && c != EOF)
						c = lgetc();
					ungetc(c, file->stream);
					return ERROR;
				}
			}
			if (p + 1 >= buf + sizeof(buf)) {
				yyerror("string is too long");
				while ((c = lgetc()) != '\n' && c != EOF)
					;
				ungetc(c, file->stream);
				return ERROR;
			}
			*p++ = (char)c;
		}
		*p = '\0';
		lex_remember(buf, 1);
		if ((yylval.string = strdup(buf)) == NULL)
			fatal("strdup");
		return STRING;
	}

	if (is_word(c)) {
		p = buf;
		alldigits = 1;
		do {
			if (p + 1 >= buf + sizeof(buf)) {
				yyerror("word is too long");
				while ((c = lgetc()) != '\n' && c != EOF)
					;
				ungetc(c, file->stream);
				return ERROR;
			}
			if (!isdigit(c))
				alldigits = 0;
			*p++ = (char)c;
		} while (is_word(c = lgetc()));
		ungetc(c, file->stream);
		*p = '\0';
		lex_remember(buf, 1);
		if ((tok = kw_lookup(buf)) != -1)
			return tok;
		if (alldigits) {
			/* Too large a number fails its range check. */
			yylval.number = strtonum(buf, 0, INT64_MAX, &errstr);
			if (errstr != NULL)
				yylval.number = INT64_MAX;
			return NUMBER;
		}
		if ((yylval.string = strdup(buf)) == NULL)
			fatal("strdup");
		return STRING;
	}

	buf[0] = (char)c;
	buf[1] = '\0';
	lex_remember(buf, 1);
	return c;
}

static struct file *
pushfile(const char *name, int isinclude)
{
	struct file	*nf, *f;
	struct stat	 st;
	int		 depth = 0;
	FILE		*fp;

	TAILQ_FOREACH(f, &files, entry)
		depth++;
	if (isinclude && depth > MAX_INCLUDE) {
		yyerror("include \"%s\": includes nested more than %d deep",
		    name, MAX_INCLUDE);
		return NULL;
	}
	if ((fp = fopen(name, "r")) == NULL) {
		if (isinclude)
			yyerror("include \"%s\": %s", name, strerror(errno));
		else {
			fprintf(errfp, "%s: %s\n", name, strerror(errno));
			errors++;
		}
		return NULL;
	}
	if (fstat(fileno(fp), &st) == -1 || !S_ISREG(st.st_mode)) {
		if (isinclude)
			yyerror("include \"%s\": not a regular file", name);
		else {
			fprintf(errfp, "%s: not a regular file\n", name);
			errors++;
		}
		fclose(fp);
		return NULL;
	}
	TAILQ_FOREACH(f, &files, entry)
		if (f->dev == st.st_dev && f->ino == st.st_ino) {
			yyerror("include \"%s\": include loop", name);
			fclose(fp);
			return NULL;
		}
	if ((nf = calloc(1, sizeof(*nf))) == NULL ||
	    (nf->name = strdup(name)) == NULL)
		fatal("pushfile");
	nf->stream = fp;
	nf->dev = st.st_dev;
	nf->ino = st.st_ino;
	nf->lineno = 1;
	TAILQ_INSERT_TAIL(&files, nf, entry);
	return nf;
}

/* Back to the including file; its name stays for later errors. */
static int
popfile(void)
{
	struct file	*prev;

	if ((prev = TAILQ_PREV(file, filelist, entry)) == NULL)
		return EOF;
	TAILQ_REMOVE(&files, file, entry);
	fclose(file->stream);
	file->stream = NULL;
	TAILQ_INSERT_TAIL(&closed, file, entry);
	file = prev;
	return 0;
}

static int
set_once(enum once what, const char *name)
{
	if (once_set[what]) {
		yyerror("%s is set twice", name);
		return 0;
	}
	once_set[what] = 1;
	return 1;
}

static int
in_range(int64_t v, int64_t min, int64_t max, const char *what)
{
	if (v < min || v > max) {
		yyerror("%s must be between %lld and %lld", what,
		    (long long)min, (long long)max);
		return 0;
	}
	return 1;
}

/*
 * pki and table names: printed back bare, or quoted when spelt like a
 * keyword (which the lexer only takes for a name in quotes).
 */
static int
valid_name(const char *s, const char *what)
{
	const char	*p;
	char		 shown[48];

	if (strlen(s) >= SMX_NAMESZ) {
		yyerror("%s name %s is too long", what,
		    show_word(shown, sizeof(shown), s));
		return 0;
	}
	if (!isalpha((unsigned char)s[0]))
		goto bad;
	for (p = s; *p; p++)
		if (!isalnum((unsigned char)*p) && *p != '-' && *p != '_' &&
		    *p != '.')
			goto bad;
	return 1;
bad:
	yyerror("invalid %s name %s: a letter, then letters, digits, "
	    "'-', '_' or '.'", what, show_word(shown, sizeof(shown), s));
	return 0;
}

static int
copy_str(char *dst, size_t len, const char *s, const char *what)
{
	if (*s == '\0') {
		yyerror("%s must not be empty", what);
		return 0;
	}
	if (strlcpy(dst, s, len) >= len) {
		yyerror("%s is too long", what);
		return 0;
	}
	return 1;
}

static int
copy_path(char *dst, size_t len, const char *s, const char *what)
{
	return copy_str(dst, len, s, what);
}

/* A file the parent reads at start and reload: it must be there now. */
static int
set_file(char *dst, size_t len, const char *s, const char *what)
{
	if (!copy_path(dst, len, s, what))
		return 0;
	if (access(s, R_OK) == -1) {
		yyerror("cannot read %s \"%s\": %s", what, s, strerror(errno));
		return 0;
	}
	return 1;
}

/* A socket path must fit in sun_path, with the suffix it is bound under. */
static int
copy_sock(char *dst, size_t len, const char *s, const char *what)
{
	struct sockaddr_un	 sun;
	size_t			 max;

	max = sizeof(sun.sun_path) - sizeof(SMX_SOCK_NEW);
	if (strlen(s) > max) {
		yyerror("%s \"%s\" is too long for a socket (at most %zu)",
		    what, s, max);
		return 0;
	}
	return copy_path(dst, len, s, what);
}

/* User and group names as /etc/passwd and /etc/group can hold them. */
static int
copy_user(char *dst, size_t len, const char *s)
{
	const char	*p;

	for (p = s; *p; p++)
		if (isspace((unsigned char)*p) || *p == ':' || *p == '"' ||
		    *p == '\\' || iscntrl((unsigned char)*p)) {
			yyerror("invalid user name \"%s\"", s);
			return 0;
		}
	return copy_str(dst, len, s, "user");
}

static int
copy_group(char *dst, size_t len, const char *s)
{
	const char	*p;

	for (p = s; *p; p++)
		if (isspace((unsigned char)*p) || *p == ':' || *p == '"' ||
		    *p == '\\' || iscntrl((unsigned char)*p)) {
			yyerror("invalid group name \"%s\"", s);
			return 0;
		}
	return copy_str(dst, len, s, "group");
}

static void
add_ref(enum ref_kind kind, const char *name)
{
	struct ref	*r;

	if ((r = calloc(1, sizeof(*r))) == NULL)
		fatal("add_ref");
	r->kind = kind;
	strlcpy(r->name, name, sizeof(r->name));
	r->file = file->name;
	r->line = file->lineno;
	TAILQ_INSERT_TAIL(&refs, r, entry);
}

static void
add_net(const char *s)
{
	struct smx_net	*n;
	const char	*errstr;

	if ((n = calloc(1, sizeof(*n))) == NULL)
		fatal("add_net");
	if (parse_net(s, &n->ss, &n->prefixlen, &errstr) == -1) {
		yyerror("invalid network \"%s\": %s", s, errstr);
		free(n);
		return;
	}
	TAILQ_INSERT_TAIL(cur_nets, n, entry);
}

static void
set_host(struct smx_host *h, const char *s, int tls, const char *what)
{
	struct in6_addr	 in6;
	const char	*errstr;

	if (parse_host(s, h, &errstr) == -1) {
		yyerror("%s: invalid host \"%s\": %s", what, s, errstr);
		memset(h, 0, sizeof(*h));
		return;
	}
	h->tls = (enum smx_tls)tls;
	h->set = 1;
	/* DANE authenticates a name: an address has no TLSA records. */
	if (h->tls == TLSP_DANE_ONLY && (h->flags & F_HOST_MX) == 0 &&
	    (inet_pton(AF_INET6, h->name, &in6) == 1 ||
	    inet_pton(AF_INET, h->name, &in6) == 1)) {
		yyerror("%s: tls dane-only needs a host name, not the address "
		    "\"%s\"", what, h->name);
		memset(h, 0, sizeof(*h));
	}
}

/* valid_domain(), and no label that begins or ends with a '-'. */
static int
hostname_ok(const char *s)
{
	const char	*p;

	if (*s == '\0' || !valid_domain(s))
		return 0;
	for (p = s; *p; p++)
		if (*p == '-' && (p == s || p[-1] == '.' || p[1] == '.' ||
		    p[1] == '\0'))
			return 0;
	return 1;
}

static void
set_hostname(const char *s)
{
	size_t	 len = strlen(s);

	if (len == 0 || s[0] == '.' || s[len - 1] == '.' || !hostname_ok(s)) {
		yyerror("invalid hostname \"%s\"", s);
		return;
	}
	strlcpy(conf->hostname, s, sizeof(conf->hostname));
}

/* "IP", "IPv4:port", "[IPv6]:port" */
static void
set_resolver(const char *s)
{
	char			 buf[128], *addr, *port = NULL, *end;
	struct sockaddr_storage	 ss;
	socklen_t		 sslen;
	const char		*errstr;

	if (strlcpy(buf, s, sizeof(buf)) >= sizeof(buf))
		goto bad;
	addr = buf;
	if (buf[0] == '[') {
		addr = buf + 1;
		if ((end = strchr(addr, ']')) == NULL)
			goto bad;
		*end++ = '\0';
		if (*end == ':')
			port = end + 1;
		else if (*end != '\0')
			goto bad;
		if (strchr(addr, ':') == NULL)
			goto bad;	/* brackets are for IPv6 */
	} else if ((end = strchr(buf, ':')) != NULL &&
	    strchr(end + 1, ':') == NULL) {
		*end = '\0';
		port = end + 1;
	}
	if (parse_sockaddr(addr, 53, &ss, &sslen) == -1)
		goto bad;
	if (port != NULL) {
		strtonum(port, 1, 65535, &errstr);
		if (errstr != NULL)
			goto bad;
	}
	strlcpy(conf->resolver, s, sizeof(conf->resolver));
	return;
bad:
	yyerror("invalid resolver \"%s\": an IP address with an optional "
	    ":port ([IPv6]:port)", s);
}

static void
set_metrics(const char *addr, int64_t port)
{
	if (!in_range(port, 1, 65535, "port"))
		return;
	if (parse_sockaddr(addr, (uint16_t)port, &conf->metrics_ss,
	    &conf->metrics_sslen) == -1) {
		yyerror("metrics listen: \"%s\" is not an IPv4 or IPv6 "
		    "address", addr);
		return;
	}
	conf->metrics_port = (uint16_t)port;
	conf->metrics = 1;
}

/* v is -1 when the duration was already reported as invalid. */
static void
set_time(time_t *t, int64_t v, int64_t min, int64_t max, const char *what)
{
	char	 a[32], b[32];

	if (v == -1)
		return;
	if (v < min || v > max) {
		duration_str((time_t)min, a, sizeof(a));
		duration_str((time_t)max, b, sizeof(b));
		yyerror("%s must be between %s and %s", what, a, b);
		return;
	}
	*t = (time_t)v;
}

static void
add_pki(const char *name, const char *cert, const char *key)
{
	struct smx_pki	*pki;

	if (!valid_name(name, "pki"))
		return;
	if (conf_pki(conf, name) != NULL) {
		yyerror("pki \"%s\" is already defined", name);
		return;
	}
	if ((pki = calloc(1, sizeof(*pki))) == NULL)
		fatal("add_pki");
	strlcpy(pki->name, name, sizeof(pki->name));
	strlcpy(pki->def_file, file->name, sizeof(pki->def_file));
	pki->def_line = file->lineno;
	if (!copy_path(pki->cert_file, sizeof(pki->cert_file), cert,
	    "cert") ||
	    !copy_path(pki->key_file, sizeof(pki->key_file), key, "key")) {
		free(pki);
		return;
	}
	if (access(cert, R_OK) == -1)
		yyerror("pki \"%s\": cannot read cert \"%s\": %s", name, cert,
		    strerror(errno));
	if (access(key, R_OK) == -1)
		yyerror("pki \"%s\": cannot read key \"%s\": %s", name, key,
		    strerror(errno));
	TAILQ_INSERT_TAIL(&conf->pkis, pki, entry);
}

static void
add_listener(const char *addr)
{
	struct smx_listener	*l, *o;
	uint16_t		 port;
	char			 buf[INET6_ADDRSTRLEN];

	if (lopts.port == 0)
		return;			/* bad port, already reported */
	port = lopts.port == -1 ? 25 : (uint16_t)lopts.port;
	if ((l = calloc(1, sizeof(*l))) == NULL)
		fatal("add_listener");
	l->fd = -1;
	l->port = port;
	l->flags = lopts.flags;
	if (parse_sockaddr(addr, port, &l->ss, &l->sslen) == -1) {
		yyerror("listen on \"%s\": not an IPv4 or IPv6 address",
		    addr);
		free(l);
		return;
	}
	if (lopts.pki != NULL) {
		if (!valid_name(lopts.pki, "pki")) {
			free(l);
			return;
		}
		strlcpy(l->pki, lopts.pki, sizeof(l->pki));
		add_ref(REF_PKI, lopts.pki);
	}
	memcpy(l->milters, lopts.milters, sizeof(l->milters));
	l->nmilters = lopts.nmilters;
	sa_str((struct sockaddr *)&l->ss, buf, sizeof(buf));
	if ((l->flags & F_LISTEN_TLS) && l->pki[0] == '\0') {
		yyerror("listen on %s port %u: %s needs a pki", buf, port,
		    (l->flags & F_LISTEN_TLS_REQUIRE) ? "tls-require" : "tls");
		free(l);
		return;
	}
	TAILQ_FOREACH(o, &conf->listeners, entry)
		if (o->sslen == l->sslen && o->port == l->port &&
		    memcmp(&o->ss, &l->ss, l->sslen) == 0) {
			yyerror("listen on %s port %u is given twice", buf,
			    port);
			free(l);
			return;
		}
	TAILQ_INSERT_TAIL(&conf->listeners, l, entry);
}

static struct smx_table *
new_table(const char *name, enum smx_table_type type)
{
	struct smx_table	*t;
	int			 ok;

	ok = valid_name(name, "table");
	if (ok && conf_table(conf, name) != NULL) {
		yyerror("table \"%s\" is already defined", name);
		ok = 0;
	}
	if ((t = calloc(1, sizeof(*t))) == NULL)
		fatal("new_table");
	strlcpy(t->name, name, sizeof(t->name));
	t->type = type;
	t->fd = -1;
	t->timeout = DEF_LDAP_TIMEOUT;
	t->failback = DEF_LDAP_FAILBACK;
	strlcpy(t->filter, DEF_LDAP_FILTER, sizeof(t->filter));
	strlcpy(t->target_attr, DEF_LDAP_TARGET, sizeof(t->target_attr));
	if (!ok) {
		/* Parsed for its errors, then dropped. */
		return t;
	}
	TAILQ_INSERT_TAIL(&conf->tables, t, entry);
	return t;
}

static void
add_file_table(const char *name, const char *path)
{
	struct smx_table	*t;

	t = new_table(name, TABLE_FILE);
	if (copy_path(t->path, sizeof(t->path), path, "table file") &&
	    access(path, R_OK) == -1)
		yyerror("table \"%s\": cannot read \"%s\": %s", name, path,
		    strerror(errno));
	if (conf_table(conf, name) != t)
		free(t);
}

static void
ldap_begin(const char *name)
{
	drop_pending();
	memset(&tctx, 0, sizeof(tctx));
	tctx.errors = errors;
	tctx.file = file->name;
	tctx.line = file->lineno;
	tctx.t = new_table(name, TABLE_LDAP);
}

static int
ldap_once(int bit, const char *what)
{
	if (tctx.seen & bit) {
		yyerror("table \"%s\": %s given twice", tctx.t->name, what);
		return 0;
	}
	tctx.seen |= bit;
	return 1;
}

static void
ldap_set_url(const char *s)
{
	char		 buf[sizeof(tctx.t->url)], *p, *u;
	int		 n = 0;

	if (strlcpy(buf, s, sizeof(buf)) >= sizeof(buf)) {
		yyerror("url is too long");
		return;
	}
	p = buf;
	while ((u = strsep(&p, " \t")) != NULL) {
		if (*u == '\0')
			continue;
		if ((strncmp(u, "ldap://", 7) != 0 || u[7] == '\0') &&
		    (strncmp(u, "ldaps://", 8) != 0 || u[8] == '\0')) {
			yyerror("table \"%s\": invalid url \"%s\": ldap://host"
			    "[:port] or ldaps://host[:port]", tctx.t->name, u);
			return;
		}
		n++;
	}
	if (n == 0) {
		yyerror("table \"%s\": url must not be empty", tctx.t->name);
		return;
	}
	strlcpy(tctx.t->url, s, sizeof(tctx.t->url));
}

/*
 * The address is put in for %s, its local part for %u, its domain for
 * %d; %% is a percent sign.
 */
static void
ldap_set_filter(const char *s)
{
	const char	*p;
	int		 n = 0;

	for (p = s; *p; p++) {
		if (*p != '%')
			continue;
		if (p[1] == 's' || p[1] == 'u' || p[1] == 'd')
			n++;
		else if (p[1] != '%') {
			yyerror("table \"%s\": filter: only %%s, %%u, %%d and "
			    "%%%% may follow %%", tctx.t->name);
			return;
		}
		p++;
	}
	if (n == 0) {
		yyerror("table \"%s\": filter must contain %%s (the address)",
		    tctx.t->name);
		return;
	}
	copy_str(tctx.t->filter, sizeof(tctx.t->filter), s, "filter");
}

static void
ldap_end(void)
{
	struct smx_table	*t = tctx.t;

	if (errors == tctx.errors) {
		if (!(tctx.seen & LDAP_URL))
			conf_error(file->name, tctx.line,
			    "table \"%s\": url is missing", t->name);
		if (!(tctx.seen & LDAP_BASE))
			conf_error(file->name, tctx.line,
			    "table \"%s\": base is missing", t->name);
	}
	if (conf_table(conf, t->name) != t) {
		explicit_bzero(t->bindpw, sizeof(t->bindpw));
		free(t);
	}
	tctx.t = NULL;
}

/* Lower-cased already; ".example.com" matches sub-domains too. */
static int
domain_name_ok(const char *s)
{
	size_t	 len = strlen(s);

	if (len == 0 || s[len - 1] == '.')
		return 0;
	if (s[0] == '.')
		s++;
	return hostname_ok(s);
}

static void
domain_begin(const char *name)
{
	struct smx_domain	*d;
	int			 ok = 1;

	drop_pending();
	memset(&dctx, 0, sizeof(dctx));
	dctx.file = file->name;
	dctx.line = dctx.type_line = file->lineno;
	dctx.errors = errors;
	if ((d = calloc(1, sizeof(*d))) == NULL)
		fatal("domain_begin");
	TAILQ_INIT(&d->forward_from);
	d->type = DOMAIN_AUTHORITATIVE;
	d->unknown = UNKNOWN_REJECT;
	if (strlcpy(d->name, name, sizeof(d->name)) >= sizeof(d->name)) {
		yyerror("domain name \"%s\" is too long", name);
		ok = 0;
	} else {
		str_lower(d->name);
		if (!domain_name_ok(d->name)) {
			yyerror("invalid domain name \"%s\"", name);
			ok = 0;
		}
	}
	if (ok) {
		struct smx_domain	*o;

		TAILQ_FOREACH(o, &conf->domains, entry)
			if (strcmp(o->name, d->name) == 0) {
				yyerror("domain \"%s\" is already defined",
				    d->name);
				ok = 0;
				break;
			}
	}
	/* Even a bad one is read to the end, for its errors. */
	TAILQ_INSERT_TAIL(&conf->domains, d, entry);
	dctx.d = d;
}

static void
domain_end(void)
{
	struct smx_domain	*d = dctx.d;
	const char		*tname;
	const char		*fn = file->name;

	dctx.d = NULL;
	if (errors != dctx.errors)
		return;		/* the block is broken already */
	switch (d->type) {
	case DOMAIN_AUTHORITATIVE:
		tname = "authoritative";
		break;
	case DOMAIN_SHARED:
		tname = "shared";
		break;
	default:
		tname = "relay";
		break;
	}
	if (d->type != DOMAIN_RELAY) {
		if (!dctx.dir_set)
			conf_error(fn, dctx.type_line,
			    "domain \"%s\": type %s needs a directory",
			    d->name, tname);
		if (!d->local.set)
			conf_error(fn, dctx.type_line,
			    "domain \"%s\": type %s needs \"local to\"",
			    d->name, tname);
	}
	if (d->type != DOMAIN_AUTHORITATIVE && !d->forward.set)
		conf_error(fn, dctx.type_line,
		    "domain \"%s\": type %s needs \"forward to\"",
		    d->name, tname);
	if (d->unknown == UNKNOWN_FORWARD && d->type == DOMAIN_AUTHORITATIVE)
		conf_error(fn, dctx.unknown_line,
		    "domain \"%s\": type authoritative cannot use "
		    "\"unknown forward\"", d->name);
	else if (d->unknown == UNKNOWN_FORWARD && !d->forward.set &&
	    d->type != DOMAIN_RELAY)
		conf_error(fn, dctx.unknown_line,
		    "domain \"%s\": \"unknown forward\" needs \"forward to\"",
		    d->name);
}

/*
 * dnsbl|dnswl "zone" [weight N]: a DNS name with a dot in it, short
 * enough for an IPv6 query name in front, each zone once.
 */
static void
add_dnsbl(const char *zone, int allow, int64_t weight)
{
	const char		*what = allow ? "dnswl" : "dnsbl";
	struct smx_dnsbl	*bl, *o;
	size_t			 len, n = 0;

	if ((bl = calloc(1, sizeof(*bl))) == NULL)
		fatal("add_dnsbl");
	len = strlcpy(bl->zone, zone, sizeof(bl->zone));
	if (len < sizeof(bl->zone) && len > 1 && bl->zone[len - 1] == '.')
		bl->zone[--len] = '\0';
	str_lower(bl->zone);
	if (len > DNSBL_ZONE_MAX) {
		yyerror("%s \"%s\": zone is too long (at most %d characters)",
		    what, zone, DNSBL_ZONE_MAX);
		goto fail;
	}
	if (bl->zone[0] == '.' || strchr(bl->zone, '.') == NULL ||
	    !hostname_ok(bl->zone)) {
		yyerror("%s \"%s\": invalid zone: a DNS name such as "
		    "zen.example.org", what, zone);
		goto fail;
	}
	TAILQ_FOREACH(o, &conf->dnsbls, entry) {
		if (strcmp(o->zone, bl->zone) == 0) {
			yyerror("%s \"%s\": the zone is already a %s", what,
			    bl->zone, o->allow ? "dnswl" : "dnsbl");
			goto fail;
		}
		n++;
	}
	if (weight < 1 || weight > DNSBL_WEIGHT_MAX) {
		yyerror("%s \"%s\": weight must be between 1 and %d", what,
		    bl->zone, DNSBL_WEIGHT_MAX);
		goto fail;
	}
	if (n >= DNSBL_MAX) {
		yyerror("%s \"%s\": more than %d dnsbl and dnswl lines", what,
		    bl->zone, DNSBL_MAX);
		goto fail;
	}
	bl->allow = allow;
	bl->weight = (uint32_t)weight;
	TAILQ_INSERT_TAIL(&conf->dnsbls, bl, entry);
	if (dnsbl_file == NULL) {
		dnsbl_file = file->name;
		dnsbl_line = file->lineno;
	}
	return;
 fail:
	free(bl);
}

/*
 * A threshold that the block lists cannot reach together would let
 * every client through while the configuration says otherwise.  (Not
 * after other errors: a refused dnsbl line would count as missing.)
 */
static void
check_dnsbl(void)
{
	struct smx_dnsbl	*bl;
	uint32_t		 sum = 0;

	if (TAILQ_EMPTY(&conf->dnsbls) || errors)
		return;
	TAILQ_FOREACH(bl, &conf->dnsbls, entry)
		if (!bl->allow)
			sum += bl->weight;
	if (sum == 0)
		conf_error(dnsbl_file, dnsbl_line, "dnswl needs at least one "
		    "dnsbl to weigh against");
	else if (sum < conf->dnsbl_threshold)
		conf_error(dnsbl_file, dnsbl_line, "dnsbl threshold %u cannot "
		    "be reached: the dnsbl lines weigh %u in all",
		    conf->dnsbl_threshold, sum);
}

/*
 * "milter NAME ADDRESS": checked here, its options follow; a bad one
 * is read to the end of its line for their errors, then dropped.
 */
static void
milter_begin(const char *name, const char *address)
{
	struct smx_milter	*mi;
	struct sockaddr_storage	 ss;
	socklen_t		 len;
	const char		*errstr;
	int			 ok;

	milter_end();	/* one left by a line with a syntax error */
	if ((mi = calloc(1, sizeof(*mi))) == NULL)
		fatal("milter_begin");
	mi->on_error = MILTER_ON_ERROR_TEMPFAIL;
	mi->timeout = DEF_MILTER_TIMEOUT;
	mctx.mi = mi;
	ok = valid_name(name, "milter");
	if (ok && strlen(name) >= sizeof(mi->name)) {
		yyerror("milter name \"%s\" is too long (at most %zu "
		    "characters)", name, sizeof(mi->name) - 1);
		ok = 0;
	} else if (ok && conf_milter(conf, name) != NULL) {
		yyerror("milter \"%s\" is already defined", name);
		ok = 0;
	}
	strlcpy(mi->name, name, sizeof(mi->name));
	if (milter_address(address, &ss, &len, &errstr) == -1) {
		yyerror("milter \"%s\": invalid address \"%s\": %s", name,
		    address, errstr);
		ok = 0;
	} else
		strlcpy(mi->address, address, sizeof(mi->address));
	if (ok)
		TAILQ_INSERT_TAIL(&conf->milters, mi, entry);
}

static void
milter_end(void)
{
	if (mctx.mi != NULL && conf_milter(conf, mctx.mi->name) != mctx.mi)
		free(mctx.mi);
	memset(&mctx, 0, sizeof(mctx));
}

/* "listen on ... milter NAME": in order, each once. */
static void
listen_milter(const char *name)
{
	uint32_t	 i;

	if (!valid_name(name, "milter"))
		return;
	for (i = 0; i < lopts.nmilters; i++)
		if (strcmp(lopts.milters[i], name) == 0) {
			yyerror("listen: milter %s given twice", name);
			return;
		}
	if (lopts.nmilters == SMX_LISTEN_MILTERS) {
		yyerror("listen: more than %d milters", SMX_LISTEN_MILTERS);
		return;
	}
	strlcpy(lopts.milters[lopts.nmilters++], name, SMX_NAMESZ);
	add_ref(REF_MILTER, name);
}

/* Names used before their definition, now that all is read. */
static void
check_refs(void)
{
	struct ref	*r;

	TAILQ_FOREACH(r, &refs, entry) {
		if (r->kind == REF_PKI && conf_pki(conf, r->name) == NULL)
			conf_error(r->file, r->line,
			    "pki \"%s\" is not defined", r->name);
		if (r->kind == REF_TABLE && conf_table(conf, r->name) == NULL)
			conf_error(r->file, r->line,
			    "table \"%s\" is not defined", r->name);
		if (r->kind == REF_MILTER && conf_milter(conf, r->name) == NULL)
			conf_error(r->file, r->line,
			    "milter \"%s\" is not defined", r->name);
	}
}

/*
 * What a statement holds while it is read and owns until its end: the
 * table of an ldap block (until ldap_end() puts it in the configuration
 * or frees it), the pki name of a listen line; and the domain a block
 * is about (the configuration owns it).  A statement that a syntax
 * error cut short never reaches its end; error recovery, the next
 * statement and cleanup() let go of it here.
 */
static void
drop_pending(void)
{
	if (tctx.t != NULL && conf_table(conf, tctx.t->name) != tctx.t) {
		explicit_bzero(tctx.t->bindpw, sizeof(tctx.t->bindpw));
		free(tctx.t);
	}
	tctx.t = NULL;
	free(lopts.pki);
	lopts.pki = NULL;
	dctx.d = NULL;
	milter_end();
}

static void
cleanup(void)
{
	struct file	*f;
	struct ref	*r;

	while ((f = TAILQ_FIRST(&files)) != NULL) {
		TAILQ_REMOVE(&files, f, entry);
		if (f->stream != NULL)
			fclose(f->stream);
		free(f->name);
		free(f);
	}
	while ((f = TAILQ_FIRST(&closed)) != NULL) {
		TAILQ_REMOVE(&closed, f, entry);
		free(f->name);
		free(f);
	}
	while ((r = TAILQ_FIRST(&refs)) != NULL) {
		TAILQ_REMOVE(&refs, r, entry);
		free(r);
	}
	drop_pending();
	memset(&lopts, 0, sizeof(lopts));
	memset(&dctx, 0, sizeof(dctx));
	memset(&tctx, 0, sizeof(tctx));
	cur_nets = NULL;
	dnsbl_file = NULL;
	dnsbl_line = 0;
	file = topfile = NULL;
}

struct smx_conf *
parse_config(const char *filename, FILE *efp)
{
	struct smx_conf	*c;

	errfp = efp != NULL ? efp : stderr;
	errors = 0;
	listen_seen = 0;
	memset(once_set, 0, sizeof(once_set));
	if ((conf = conf_new()) == NULL)
		fatal("conf_new");
	if (strlcpy(conf->file, filename, sizeof(conf->file)) >=
	    sizeof(conf->file)) {
		fprintf(errfp, "%s: file name is too long\n", filename);
		conf_free(conf);
		conf = NULL;
		return NULL;
	}
	conf->loaded = time(NULL);

	if ((file = topfile = pushfile(filename, 0)) == NULL) {
		conf_free(conf);
		conf = NULL;
		return NULL;
	}
	if (yyparse() != 0 && errors == 0) {
		/* Only a broken block at the end of a file gets here. */
		yyerror("unexpected end of file");
	}
	/* What is missing is reported at the end of the main file. */
	file = topfile;
	if (!listen_seen)
		yyerror("no \"listen on\" directive");
	check_refs();
	check_dnsbl();

	cleanup();
	c = conf;
	conf = NULL;
	if (errors) {
		conf_free(c);
		return NULL;
	}
	return c;
}
