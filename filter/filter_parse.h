/*
 * The milter protocol, version 6, as the filter process speaks it: the
 * constants of the wire format and the decoders of what a milter sends.
 * Nothing here knows a process or the configuration, so that the fuzz
 * target (fuzz/milter_fuzz.c) links this file alone.
 */
#ifndef SMX_FILTER_PARSE_H
#define SMX_FILTER_PARSE_H

#include <stddef.h>
#include <stdint.h>

#define MILTER_VERSION		6
/* A packet: u32 length (command byte + data), command, data. */
#define MILTER_HDRSZ		5
#define MILTER_PACKET_MAX	(1024 * 1024)	/* data bytes we accept */
#define MILTER_CHUNK		65535		/* BODY data we send */
#define MILTER_MACRO_STAGES	7		/* SMFIM_CONNECT..EOH */
#define MILTER_MACROS_MAX	1024		/* a stage's list, bytes */

/* Commands, MTA -> milter. */
#define SMFIC_ABORT		'A'
#define SMFIC_BODY		'B'
#define SMFIC_CONNECT		'C'
#define SMFIC_MACRO		'D'
#define SMFIC_BODYEOB		'E'
#define SMFIC_HELO		'H'
#define SMFIC_HEADER		'L'
#define SMFIC_MAIL		'M'
#define SMFIC_EOH		'N'
#define SMFIC_OPTNEG		'O'
#define SMFIC_QUIT		'Q'
#define SMFIC_RCPT		'R'
#define SMFIC_DATA		'T'

/* Replies and modifications, milter -> MTA. */
#define SMFIR_ADDRCPT		'+'
#define SMFIR_DELRCPT		'-'
#define SMFIR_ADDRCPT_PAR	'2'
#define SMFIR_ACCEPT		'a'
#define SMFIR_REPLBODY		'b'
#define SMFIR_CONTINUE		'c'
#define SMFIR_DISCARD		'd'
#define SMFIR_CHGFROM		'e'
#define SMFIR_ADDHEADER		'h'
#define SMFIR_INSHEADER		'i'
#define SMFIR_CHGHEADER		'm'
#define SMFIR_PROGRESS		'p'
#define SMFIR_QUARANTINE	'q'
#define SMFIR_REJECT		'r'
#define SMFIR_SKIP		's'
#define SMFIR_TEMPFAIL		't'
#define SMFIR_REPLYCODE		'y'
#define SMFIR_OPTNEG		'O'

/* Actions a milter may take (OPTNEG's second word). */
#define SMFIF_ADDHDRS		0x001
#define SMFIF_CHGBODY		0x002
#define SMFIF_ADDRCPT		0x004
#define SMFIF_DELRCPT		0x008
#define SMFIF_CHGHDRS		0x010
#define SMFIF_QUARANTINE	0x020
#define SMFIF_CHGFROM		0x040
#define SMFIF_ADDRCPT_PAR	0x080
#define SMFIF_SETSYMLIST	0x100
#define SMFIF_ALL		0x1ff

/* Protocol steps (OPTNEG's third word). */
#define SMFIP_NOCONNECT		0x000001
#define SMFIP_NOHELO		0x000002
#define SMFIP_NOMAIL		0x000004
#define SMFIP_NORCPT		0x000008
#define SMFIP_NOBODY		0x000010
#define SMFIP_NOHDRS		0x000020
#define SMFIP_NOEOH		0x000040
#define SMFIP_NR_HDR		0x000080
#define SMFIP_NOUNKNOWN		0x000100
#define SMFIP_NODATA		0x000200
#define SMFIP_SKIP		0x000400
#define SMFIP_RCPT_REJ		0x000800
#define SMFIP_NR_CONN		0x001000
#define SMFIP_NR_HELO		0x002000
#define SMFIP_NR_MAIL		0x004000
#define SMFIP_NR_RCPT		0x008000
#define SMFIP_NR_DATA		0x010000
#define SMFIP_NR_UNKN		0x020000
#define SMFIP_NR_EOH		0x040000
#define SMFIP_NR_BODY		0x080000
#define SMFIP_HDR_LEADSPC	0x100000
/*
 * What we offer: every step and no-reply bit, SKIP and HDR_LEADSPC;
 * not RCPT_REJ (we never show a milter the recipients we refused).
 */
#define MILTER_OFFER_PROTOCOL	(0x1fffff & ~SMFIP_RCPT_REJ)

/* What a milter said in its OPTNEG reply. */
struct milter_optneg {
	uint32_t	 version;
	uint32_t	 actions;
	uint32_t	 protocol;
	/* Per stage, the macros it wants ("" none asked): SMFIM_* order. */
	char		 macros[MILTER_MACRO_STAGES][MILTER_MACROS_MAX];
	int		 have[MILTER_MACRO_STAGES];
};

/*
 * One decoded reply.  The strings point into the packet's data (every
 * one ends with its NUL there); valid as long as the data is.
 */
struct milter_reply {
	int		 cmd;
	uint32_t	 index;		/* INSHEADER, CHGHEADER */
	const char	*name;		/* ADDHEADER, INSHEADER, CHGHEADER */
	const char	*value;
	const char	*addr;		/* ADDRCPT(_PAR), DELRCPT, CHGFROM */
	const char	*args;		/* their ESMTP arguments, or NULL */
	const char	*text;		/* REPLYCODE, QUARANTINE */
	const uint8_t	*body;		/* REPLBODY */
	size_t		 bodylen;
};

/*
 * A whole packet at the start of buf: its size (header included) with
 * cmd, data and dlen set; 0 if more bytes are needed; -1 if its length
 * is 0 or over MILTER_PACKET_MAX (the stream cannot be trusted after).
 */
int	milter_parse_packet(const uint8_t *buf, size_t len, int *cmd,
	    const uint8_t **data, size_t *dlen);
/* The OPTNEG reply's data: 0, or -1 with *why. */
int	milter_parse_optneg(const uint8_t *, size_t, struct milter_optneg *,
	    const char **why);
/*
 * Any other reply: its fields, well formed (the right strings, each
 * ended by its NUL, nothing after them; header names and values and
 * addresses as checked below).  0, or -1 with *why.  Whether it is
 * allowed now is the caller's business.
 */
int	milter_parse_reply(int cmd, const uint8_t *, size_t,
	    struct milter_reply *, const char **why);
/*
 * REPLYCODE's text as an SMTP reply we can send: every line "ddd-" or
 * "ddd " with one code, 4xx or 5xx, an enhanced status code of the same
 * class (a default one is put in where the milter gave none), printable
 * text, at most 510 octets; lines are joined by CR LF and "%%" becomes
 * "%".  A line after the first that breaks these rules drops it and
 * every line after it (the first line is then the reply).  -1 if the
 * first line breaks them.  *code gets the code (451, 550...).
 */
int	milter_parse_replycode(const char *text, char *out, size_t outsz,
	    int *code);
/* A header name: 1 to 998 printable octets, no ':' (RFC 5322 2.2). */
int	milter_header_name_ok(const char *);
/*
 * A header value a milter gave: no bare CR, and every line after the
 * first (LF or CR LF) starts with a space or a tab, so that it cannot
 * end the header or start another field.
 */
int	milter_header_value_ok(const char *);
/*
 * "<addr>" or "addr" into out without the brackets: no control bytes,
 * spaces, '<' or '>' inside; "" only if empty_ok.  0, or -1.
 */
int	milter_parse_address(const char *, char *out, size_t outsz,
	    int empty_ok);
/* A space-separated macro list: names "x" or "{name}", printable. */
int	milter_macro_list_ok(const char *);

/*
 * A message's header section (lines ending in CR LF) cut into fields:
 * cb(arg, name, namelen, value, valuelen) for each, the value being
 * what follows the colon up to the field's last CR LF (its folded lines
 * included), the name without spaces before the colon.  The section
 * ends at a blank line (*sep = 1), at a line that is no field (a line
 * without a colon, a bad name, a continuation before any field: the
 * body starts there) or at the end of buf when at_eof.  Returns where
 * the body starts in buf, -1 if cb returned -1, or -2 if buf ends
 * before the section does (and !at_eof).
 */
typedef int	(*milter_field_cb)(void *, const char *, size_t, const char *,
		    size_t);
long	milter_header_split(const char *buf, size_t len, int at_eof,
	    int *sep, milter_field_cb cb, void *arg);

#endif
