#include "netbuf/netbuf.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"

int netbuf_parse_backend(const char *s, enum netbuf_backend *out)
{
	if (!strcmp(s, "auto"))
		*out = NETBUF_AUTO;
	else if (!strcmp(s, "plug"))
		*out = NETBUF_PLUG;
	else if (!strcmp(s, "nfqueue"))
		*out = NETBUF_NFQUEUE;
	else
		return -EINVAL;
	return 0;
}

int netbuf_create(const struct netbuf_config *cfg, struct ckpt_dev **out)
{
	enum netbuf_backend b = cfg->backend;

	if (b == NETBUF_AUTO) {
		b = netbuf_plug_available() == 1 ? NETBUF_PLUG : NETBUF_NFQUEUE;
		if (b == NETBUF_NFQUEUE)
			log_info("netbuf %s: this kernel has no sch_plug; using NFQUEUE instead",
				 cfg->ifname);
	}
	return b == NETBUF_PLUG ? netbuf_plug_create(cfg, out) : netbuf_nfqueue_create(cfg, out);
}

int netbuf_cleanup(const char *ifname)
{
	netbuf_nfqueue_cleanup(ifname);
	netbuf_plug_cleanup(ifname);
	return 0;
}
