#include "failover/fence.h"

#include <stdio.h>
#include <string.h>

#include "common/runcmd.h"

int fo_fence_run(const char *cmd, unsigned timeout_ms, const struct fo_fence_target *t, char *why,
		 size_t whylen)
{
	char vars[4][256], host[200];
	const char *peer = t->peer ? t->peer : "";
	const char *colon = strrchr(peer, ':');
	const char *const v[] = {vars[0], vars[1], vars[2], vars[3], NULL};

	snprintf(host, sizeof(host), "%.*s", colon ? (int)(colon - peer) : (int)strlen(peer), peer);
	snprintf(vars[0], sizeof(vars[0]), "HA_DOMAIN=%s", t->domain ? t->domain : "");
	snprintf(vars[1], sizeof(vars[1]), "HA_PEER=%s", peer);
	snprintf(vars[2], sizeof(vars[2]), "HA_PEER_HOST=%s", host);
	snprintf(vars[3], sizeof(vars[3]), "HA_EPOCH=%llu", (unsigned long long)t->epoch);
	return run_cmd("fence", cmd, timeout_ms, v, why, whylen);
}
