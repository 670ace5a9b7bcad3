/* What a daemon of the pair reloads on SIGHUP (common/service.h): the log
 * level its pair file sets now, and its TLS credentials from the same
 * files (a renewed certificate, a rotated key). Everything else in the
 * pair file takes a restart; the log says so. */
#ifndef HA_FAILOVER_RELOAD_H
#define HA_FAILOVER_RELOAD_H

#include "common/conf.h"
#include "failover/tls.h"

struct fo_reload {
	const char *pair_file; /* NULL: none */
	enum conf_role role;
	struct fo_tls *tls[2]; /* NULL where there is none */
	const char *what[2];   /* "the link", "the witness" */
};

/* A service_reload_fn: CTX is a struct fo_reload. */
void fo_reload(void *ctx);

#endif
