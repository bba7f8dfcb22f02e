/*
 * The names of message types and route classes, for logs and replies
 * that print names rather than numbers.  Process names are in the
 * process table (proc.c).
 */
#include <stdio.h>

#include "splitmx.h"

/* Each entry names its own index: the order of the enum does not matter. */
#define NAME(x)	[x] = #x

static const char *imsg_names[IMSG_TYPE_COUNT] = {
	NAME(IMSG_NONE),

	NAME(IMSG_PROC_PEER_OPEN),
	NAME(IMSG_PROC_START),
	NAME(IMSG_CONF_RESET),
	NAME(IMSG_CONF_GLOBAL),
	NAME(IMSG_CONF_PKI),
	NAME(IMSG_CONF_LISTENER),
	NAME(IMSG_CONF_TRUSTED),
	NAME(IMSG_CONF_TABLE),
	NAME(IMSG_CONF_DOMAIN),
	NAME(IMSG_CONF_SOCKET),
	NAME(IMSG_CONF_DONE),
	NAME(IMSG_CONF_APPLY),
	NAME(IMSG_CONF_ABORT),

	NAME(IMSG_LOOKUP_RCPT),
	NAME(IMSG_LOOKUP_RCPT_RESULT),

	NAME(IMSG_QUEUE_MESSAGE_CREATE),
	NAME(IMSG_QUEUE_MESSAGE_CREATE_RESULT),
	NAME(IMSG_QUEUE_MESSAGE_COMMIT),
	NAME(IMSG_QUEUE_MESSAGE_COMMIT_RESULT),
	NAME(IMSG_QUEUE_MESSAGE_ROLLBACK),

	NAME(IMSG_LOOKUP_DNS_HOST),
	NAME(IMSG_LOOKUP_DNS_HOST_RESULT),

	NAME(IMSG_RELAY_DELIVER),
	NAME(IMSG_RELAY_RESULT),

	NAME(IMSG_CTL_PROCS),
	NAME(IMSG_CTL_VERBOSE),
	NAME(IMSG_CTL_RELOAD),
	NAME(IMSG_CTL_RELOAD_RESULT),
	NAME(IMSG_CTL_STATS),
	NAME(IMSG_CTL_QUEUE_LIST),
	NAME(IMSG_CTL_QUEUE_ITEM),
	NAME(IMSG_CTL_QUEUE_END),
	NAME(IMSG_CTL_SMTP_PAUSE),
	NAME(IMSG_CTL_RELAY_PAUSE),
	NAME(IMSG_CTL_QUEUE_SHOW),
	NAME(IMSG_CTL_QUEUE_MESSAGE),
	NAME(IMSG_CTL_QUEUE_RCPT),
	NAME(IMSG_CTL_QUEUE_EVENT),
	NAME(IMSG_CTL_QUEUE_SCHEDULE),
	NAME(IMSG_CTL_QUEUE_REMOVE),
	NAME(IMSG_CTL_QUEUE_RESULT),
	NAME(IMSG_CTL_LOOKUP),
	NAME(IMSG_CTL_LOOKUP_RESULT),
	NAME(IMSG_IMPORT_ENTRIES),
	NAME(IMSG_IMPORT_ERRORS),
	NAME(IMSG_IMPORT_DONE),

	NAME(IMSG_CONF_POLICY),
	NAME(IMSG_LOOKUP_CLIENT),
	NAME(IMSG_LOOKUP_CLIENT_RESULT),
	NAME(IMSG_CTL_CHECK_CLIENT),
	NAME(IMSG_CTL_CHECK_CLIENT_RESULT),

	NAME(IMSG_CTL_STOP),
	NAME(IMSG_CTL_STOP_RESULT),
	NAME(IMSG_PROC_STOP),
	NAME(IMSG_PROC_STOPPED),
	NAME(IMSG_CONF_OUTBOUND_TLS),
	NAME(IMSG_QUEUE_STS_STORE),
	NAME(IMSG_LOOKUP_STS_LOAD),
	NAME(IMSG_LOOKUP_STS_LOADED),
	NAME(IMSG_CTL_LOOKUP_TLS),
	NAME(IMSG_CTL_LOOKUP_TLS_RESULT),

	NAME(IMSG_CONF_MILTER),
	NAME(IMSG_FILTER_CONNECT),
	NAME(IMSG_FILTER_HELO),
	NAME(IMSG_FILTER_MAIL),
	NAME(IMSG_FILTER_RCPT),
	NAME(IMSG_FILTER_DATA),
	NAME(IMSG_FILTER_MESSAGE),
	NAME(IMSG_FILTER_ABORT),
	NAME(IMSG_FILTER_CLOSE),
	NAME(IMSG_FILTER_RESULT),
	NAME(IMSG_FILTER_MESSAGE_RESULT),
	NAME(IMSG_FILTER_MILTER_CONNECT),
	NAME(IMSG_FILTER_MILTER_CONNECT_RESULT),
	NAME(IMSG_QUEUE_MESSAGE_OPEN),
	NAME(IMSG_QUEUE_MESSAGE_OPEN_RESULT),
	NAME(IMSG_CTL_QUEUE_RELEASE),
};

/* As the envelope files, the logs and splitmxctl spell them. */
static const char *route_class_names[ROUTE_COUNT] = {
	[ROUTE_LOCAL] =		"local",
	[ROUTE_CUSTOM] =	"custom",
	[ROUTE_FORWARD] =	"forward",
	[ROUTE_BOUNCE] =	"bounce",
	[ROUTE_OUTBOUND] =	"outbound",
	[ROUTE_NONE] =		"none",
};

/* As the configuration (tls ...), the envelopes and the logs spell them. */
static const char *tls_policy_names[TLSP_COUNT] = {
	[TLSP_NONE] =		"none",
	[TLSP_OPPORTUNISTIC] =	"opportunistic",
	[TLSP_DANE] =		"dane",
	[TLSP_REQUIRE] =	"require",
	[TLSP_VERIFY] =		"verify",
	[TLSP_DANE_ONLY] =	"dane-only",
};

/* A type without a name (a hole in the table) prints as its number. */
const char *
imsg_name(uint32_t type)
{
	static char	 buf[32];

	if (type < IMSG_TYPE_COUNT && imsg_names[type] != NULL)
		return imsg_names[type];
	(void)snprintf(buf, sizeof(buf), "IMSG_%u", type);
	return buf;
}

/* 1 if every message type has its name (a unit test checks it). */
int
imsg_names_complete(void)
{
	uint32_t	 i;

	for (i = 0; i < IMSG_TYPE_COUNT; i++)
		if (imsg_names[i] == NULL)
			return 0;
	return 1;
}

const char *
route_class_name(enum route_class rc)
{
	if ((unsigned int)rc < ROUTE_COUNT && route_class_names[rc] != NULL)
		return route_class_names[rc];
	return "none";
}

const char *
tls_policy_name(enum smx_tls tls)
{
	if ((unsigned int)tls < TLSP_COUNT && tls_policy_names[tls] != NULL)
		return tls_policy_names[tls];
	return "opportunistic";
}
