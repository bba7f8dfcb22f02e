/*
 * The names of processes and message types, for logs that print names
 * rather than numbers.  Keep imsg_names[] in the order of enum imsg_type.
 */
#include <stdio.h>

#include "splitmx.h"

const char *proc_names[PROC_COUNT] = {
	"parent", "smtp", "lookup", "queue", "relay", "control"
};

const char *imsg_names[IMSG_TYPE_COUNT] = {
	"IMSG_NONE",
	"IMSG_PROC_PEER_OPEN",
	"IMSG_PROC_START",
	"IMSG_CONF_RESET",
	"IMSG_CONF_GLOBAL",
	"IMSG_CONF_PKI",
	"IMSG_CONF_LISTENER",
	"IMSG_CONF_TRUSTED",
	"IMSG_CONF_TABLE",
	"IMSG_CONF_DOMAIN",
	"IMSG_CONF_SOCKET",
	"IMSG_CONF_DONE",
	"IMSG_CONF_APPLY",
	"IMSG_CONF_ABORT",
	"IMSG_LOOKUP_RCPT",
	"IMSG_LOOKUP_RCPT_RESULT",
	"IMSG_QUEUE_MESSAGE_CREATE",
	"IMSG_QUEUE_MESSAGE_CREATE_RESULT",
	"IMSG_QUEUE_MESSAGE_COMMIT",
	"IMSG_QUEUE_MESSAGE_COMMIT_RESULT",
	"IMSG_QUEUE_MESSAGE_ROLLBACK",
	"IMSG_LOOKUP_DNS_HOST",
	"IMSG_LOOKUP_DNS_HOST_RESULT",
	"IMSG_RELAY_DELIVER",
	"IMSG_RELAY_RESULT",
	"IMSG_CTL_PROCS",
	"IMSG_CTL_VERBOSE",
	"IMSG_CTL_RELOAD",
	"IMSG_CTL_RELOAD_RESULT",
	"IMSG_CTL_STATS",
	"IMSG_CTL_QUEUE_LIST",
	"IMSG_CTL_QUEUE_ITEM",
	"IMSG_CTL_QUEUE_END",
	"IMSG_CTL_SMTP_PAUSE",
	"IMSG_CTL_RELAY_PAUSE",
	"IMSG_CTL_QUEUE_SHOW",
	"IMSG_CTL_QUEUE_MESSAGE",
	"IMSG_CTL_QUEUE_RCPT",
	"IMSG_CTL_QUEUE_EVENT",
	"IMSG_CTL_QUEUE_SCHEDULE",
	"IMSG_CTL_QUEUE_REMOVE",
	"IMSG_CTL_QUEUE_RESULT",
	"IMSG_CTL_LOOKUP",
	"IMSG_CTL_LOOKUP_RESULT",
};

const char *
imsg_name(uint32_t type)
{
	static char	 buf[32];

	if (type < IMSG_TYPE_COUNT && imsg_names[type] != NULL)
		return imsg_names[type];
	(void)snprintf(buf, sizeof(buf), "IMSG_%u", type);
	return buf;
}

const char *
proc_name(int proc)
{
	if (proc < 0 || proc >= PROC_COUNT)
		return "unknown";
	return proc_names[proc];
}
