#include "failover/reload.h"

#include "common/log.h"

void fo_reload(void *ctx)
{
	const struct fo_reload *r = ctx;
	char err[320];

	if (r->pair_file)
		conf_reload_log_level(r->pair_file, r->role);
	for (int i = 0; i < 2; i++) {
		if (!r->tls[i])
			continue;
		if (fo_tls_reload(r->tls[i], err, sizeof(err)) < 0)
			log_error("reload: %s's TLS credentials: %s; the ones in use stay", r->what[i],
				  err);
		else
			log_info("reload: %s's TLS credentials read again from their files, for "
				 "the connections from now on",
				 r->what[i]);
	}
	if (r->pair_file)
		log_info("reload: other changes to %s take effect at the next restart",
			 r->pair_file);
}
