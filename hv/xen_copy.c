/* The secondary's copy of a Xen domain: the committed image, kept in this
 * process (xen_image.c) and restored with `xl restore` on failover. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "common/log.h"
#include "hv/hv.h"
#include "hv/xen.h"

struct hv_copy {
	struct hv_xen_image *img;
	char name[64];
};

static int xen_create(const struct hv_info *info, struct hv_copy **out)
{
	struct hv_copy *d;
	uint32_t id;
	int rc;

	if (!hv_xen_present("cannot keep a Xen domain's copy"))
		return -ENODEV;
	d = calloc(1, sizeof(*d));
	if (!d)
		return -ENOMEM;
	rc = hv_xen_image_new(info, &d->img);
	if (rc < 0) {
		free(d);
		return rc;
	}
	snprintf(d->name, sizeof(d->name), "%s", info->name);
	if (hv_xen_domain_named(d->name, &id) == 0)
		log_warn("a domain named %s already exists on this host (id %u): a failover "
			 "activates the copy only once it is gone (protecting a domain to its own "
			 "host is for tests)",
			 d->name, id);
	*out = d;
	return 0;
}

/* Failover. Never beside a domain of the same name: that is the primary
 * itself (both ends on one host), or a leftover (a crashed, preserved
 * guest; an earlier copy), and two domains would share the guest's disk
 * and addresses. The copy is refused, and kept as an xl save file. */
static int xen_activate(struct hv_copy *d, const struct hv_state *st)
{
	char path[512];
	uint32_t id;

	if (hv_xen_domain_named(d->name, &id) == 0) {
		bool kept = hv_xen_image_keep(d->img, st, path, sizeof(path)) == 0;

		log_error("a domain named %s already exists on this host (id %u): not starting "
			  "a second one beside it. %s%s%s",
			  d->name, id,
			  kept ? "The copy is kept in " : "The copy could not be kept",
			  kept ? path : "",
			  kept ? ": if that domain is a leftover, `xl destroy` it, then `xl "
				 "restore` this file"
			       : "");
		return -EEXIST;
	}
	return hv_xen_image_restore(d->img, st);
}

static uint8_t *xen_copy_page(struct hv_copy *c, uint64_t pfn)
{
	return hv_xen_image_page(c->img, pfn);
}

static void xen_copy_close(struct hv_copy *c)
{
	if (!c)
		return;
	hv_xen_image_free(c->img);
	free(c);
}

const struct hv_restore_ops hv_xen_restore_ops = {
	.create = xen_create,
	.page = xen_copy_page,
	.activate = xen_activate,
	.close = xen_copy_close,
	.needs = hv_xen_needs,
};
