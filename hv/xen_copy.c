/* The secondary's copy of a Xen domain. Until the first checkpoint
 * commits, the pages of the pre-copy and of that checkpoint go into an
 * image in this process (xen_image.c); then the image becomes the hot
 * standby, the domain itself built paused on this host (xen_standby.c),
 * and the image is freed: from then on every commit writes into the
 * standby and failover unpauses it. If the standby cannot be built, the
 * copy stays an image and failover restores it with `xl restore` (the cold
 * route, slower by the time to write and restore the whole memory).
 * HA_XEN_STANDBY=0 asks for the cold route. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint/stream_format.h"
#include "common/log.h"
#include "hv/hv.h"
#include "hv/xen.h"

struct hv_copy {
	struct hv_xen_image *img;     /* until the standby holds the copy */
	struct hv_xen_standby *sb;
	bool cold;		      /* no standby: restore img at failover */
	struct hv_state start;	      /* the stream's start records */
	struct hv_info info;
};

static int xen_create(const struct hv_info *info, struct hv_copy **out)
{
	struct hv_copy *d;
	const char *env = getenv("HA_XEN_STANDBY");
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
	d->info = *info;
	d->cold = env && !strcmp(env, "0");
	if (d->cold)
		log_info("HA_XEN_STANDBY=0: the copy of %s stays in this process and failover "
			 "restores it with xl restore",
			 d->info.name);
	if (hv_xen_domain_named(d->info.name, &id) == 0)
		log_warn("a domain named %s already exists on this host (id %u): a failover "
			 "activates the copy only once it is gone (protecting a domain to its own "
			 "host is for tests)",
			 d->info.name, id);
	*out = d;
	return 0;
}

static int xen_stream_start(struct hv_copy *d, const struct hv_state *st)
{
	int rc;

	hv_state_free(&d->start);
	rc = hv_state_copy(&d->start, st);
	if (rc == 0 && d->img)
		rc = hv_xen_image_set_start(d->img, st);
	return rc;
}

/* After each commit: the first builds the standby from the image. */
static int xen_commit(struct hv_copy *d, const struct hv_state *st)
{
	int rc;

	if (d->sb || d->cold)
		return 0;
	rc = hv_xen_standby_new(d->img, st, &d->sb);
	if (rc < 0) {
		log_warn("no hot standby for %s (%s): the copy stays in this process and a "
			 "failover restores it with xl restore, which takes the time to write and "
			 "restore its whole memory",
			 d->info.name, strerror(-rc));
		d->cold = true;
		return 0;
	}
	hv_xen_image_free(d->img);
	d->img = NULL;
	return 0;
}

/* The image of the copy, taken back from the standby if it holds it. */
static int image_of(struct hv_copy *d)
{
	int rc;

	if (d->img)
		return 0;
	rc = hv_xen_image_new(&d->info, &d->img);
	if (rc == 0)
		rc = hv_xen_image_set_start(d->img, &d->start);
	if (rc == 0)
		rc = hv_xen_standby_copy_out(d->sb, d->img);
	if (rc < 0) {
		hv_xen_image_free(d->img);
		d->img = NULL;
	}
	return rc;
}

static int xen_save_file(struct hv_copy *d, const struct hv_state *st, int fd)
{
	int rc = image_of(d);

	return rc < 0 ? rc : hv_xen_image_write(d->img, st, fd);
}

/* Keeps the copy as an xl save file, for an activation that is refused. */
static void keep(struct hv_copy *d, const struct hv_state *st)
{
	char path[512];
	bool kept = false;

	/* With a standby, the image is gone: its memory is copied into one. */
	if (image_of(d) == 0)
		kept = hv_xen_image_keep(d->img, st, path, sizeof(path)) == 0;
	if (kept)
		log_error("The copy is kept in %s: if that domain is a leftover, `xl destroy` it, "
			  "then `xl restore` this file",
			  path);
	else
		log_error("the copy could not be kept");
}

/* Failover. Never beside a domain of the same name: that is the primary
 * itself (both ends on one host), or a leftover (a crashed, preserved
 * guest; an earlier copy), and two domains would share the guest's disk
 * and addresses. */
static int xen_activate(struct hv_copy *d, const struct hv_state *st)
{
	uint32_t id;

	if (hv_xen_domain_named(d->info.name, &id) == 0) {
		log_error("a domain named %s already exists on this host (id %u): not starting "
			  "a second one beside it",
			  d->info.name, id);
		keep(d, st);
		return -EEXIST;
	}
	if (d->sb)
		return hv_xen_standby_activate(d->sb, st);
	return hv_xen_image_restore(d->img, st);
}

static uint8_t *xen_copy_page(struct hv_copy *c, uint64_t pfn)
{
	return c->sb ? hv_xen_standby_page(c->sb, pfn) : hv_xen_image_page(c->img, pfn);
}

static const uint8_t *xen_copy_peek(struct hv_copy *c, uint64_t pfn)
{
	return c->sb ? hv_xen_standby_peek(c->sb, pfn) : hv_xen_image_peek(c->img, pfn);
}

static void xen_copy_destroy(struct hv_copy *c)
{
	hv_xen_standby_destroy(c->sb);
}

static void xen_copy_close(struct hv_copy *c)
{
	if (!c)
		return;
	hv_xen_standby_free(c->sb);
	hv_xen_image_free(c->img);
	hv_state_free(&c->start);
	free(c);
}

const struct hv_restore_ops hv_xen_restore_ops = {
	.create = xen_create,
	.page = xen_copy_page,
	.peek = xen_copy_peek,
	.stream_start = xen_stream_start,
	.commit = xen_commit,
	.activate = xen_activate,
	.save_file = xen_save_file,
	.destroy = xen_copy_destroy,
	.close = xen_copy_close,
	.needs = hv_xen_needs,
};
