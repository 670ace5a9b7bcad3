#include "hv/hv.h"

#include "common/log.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

extern const struct hv_ops hv_havm_ops;
extern const struct hv_ops hv_xen_ops;

/* The first is the default for names without a prefix. */
static const struct hv_ops *const backends[] = {
	&hv_havm_ops,
	&hv_xen_ops,
};

const struct hv_ops *hv_lookup(const char *spec, const char **name)
{
	const char *colon = strchr(spec, ':');

	if (!colon) {
		*name = spec;
		return backends[0];
	}
	for (size_t i = 0; i < sizeof(backends) / sizeof(backends[0]); i++) {
		size_t n = strlen(backends[i]->prefix);

		if ((size_t)(colon - spec) == n && strncmp(spec, backends[i]->prefix, n) == 0) {
			*name = colon + 1;
			return backends[i];
		}
	}
	return NULL;
}


bool hv_domain_here(const char *spec)
{
	enum log_level level = log_get_level();
	const char *name;
	const struct hv_ops *ops = hv_lookup(spec, &name);
	struct hv_dom *d;
	bool found;

	/* Not finding it is an answer, not an error: nothing is logged. */
	log_set_level(LOG_LVL_NONE);
	found = ops && ops->save->open(name, &d) == 0;
	log_set_level(level);
	if (found)
		ops->save->close(d);
	return found;
}
