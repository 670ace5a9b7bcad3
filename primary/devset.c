#include "primary/devset.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"

/* set: phases and status take it shared, setup, teardown and discard
 * alone; dev[i]: one call at a time on device i, unless it is concurrent. */
struct devset {
	pthread_rwlock_t set;
	pthread_mutex_t dev[DEVSET_MAX];
	struct ckpt_dev *devs[DEVSET_MAX];
	unsigned n;
	bool up;		    /* setup succeeded, no teardown since */
	bool connected[DEVSET_MAX]; /* connect succeeded, no setup since */
	devset_event_fn *event;
	void *ctx;
};

static const char *const phase_names[] = {
	[DEVSET_POSTSUSPEND] = "postsuspend",
	[DEVSET_PRERESUME] = "preresume",
	[DEVSET_FLUSH] = "flush",
	[DEVSET_COMMIT] = "commit",
	[DEVSET_HANDOVER] = "handover",
};

int devset_new(struct ckpt_dev *const *devs, unsigned ndevs, devset_event_fn *event, void *ctx,
	       struct devset **out)
{
	struct devset *ds;

	if (ndevs > DEVSET_MAX)
		return -E2BIG;
	ds = calloc(1, sizeof(*ds));
	if (!ds)
		return -ENOMEM;
	pthread_rwlock_init(&ds->set, NULL);
	for (unsigned i = 0; i < DEVSET_MAX; i++)
		pthread_mutex_init(&ds->dev[i], NULL);
	if (ndevs)
		memcpy(ds->devs, devs, ndevs * sizeof(*devs));
	ds->n = ndevs;
	ds->event = event;
	ds->ctx = ctx;
	*out = ds;
	return 0;
}

void devset_free(struct devset *ds)
{
	if (!ds)
		return;
	pthread_rwlock_destroy(&ds->set);
	for (unsigned i = 0; i < DEVSET_MAX; i++)
		pthread_mutex_destroy(&ds->dev[i]);
	free(ds);
}

static void emit(struct devset *ds, const char *what)
{
	if (ds->event)
		ds->event(ds->ctx, what);
}

/* Runs before pre-copy, on the session's thread, while no other phase
 * can run: the devices are not up yet. */
int devset_connect(struct devset *ds, const struct ckpt_sink *sink)
{
	int rc = 0;

	for (unsigned i = 0; i < ds->n && rc == 0; i++) {
		struct ckpt_dev *d = ds->devs[i];

		if (!d->ops->connect)
			continue;
		rc = d->ops->connect(d, sink);
		ds->connected[i] = rc == 0;
		if (rc < 0)
			log_error("device %s (%s): cannot start: %s", d->name, d->ops->kind,
				  strerror(-rc));
	}
	return rc;
}

int devset_setup(struct devset *ds)
{
	int rc = 0;
	unsigned i;

	pthread_rwlock_wrlock(&ds->set);
	for (i = 0; i < ds->n; i++) {
		struct ckpt_dev *d = ds->devs[i];

		rc = d->ops->setup(d);
		if (rc < 0) {
			log_error("device %s (%s): setup failed: %s", d->name, d->ops->kind,
				  strerror(-rc));
			while (i--)
				ds->devs[i]->ops->teardown(ds->devs[i]);
			break;
		}
	}
	ds->up = rc == 0;
	if (rc == 0)
		emit(ds, "setup");
	if (rc < 0) /* a connected device that failed its setup is torn down too */
		for (i = 0; i < ds->n; i++)
			if (ds->connected[i])
				ds->devs[i]->ops->teardown(ds->devs[i]);
	memset(ds->connected, 0, sizeof(ds->connected));
	pthread_rwlock_unlock(&ds->set);
	return rc;
}

static int (*phase_fn(const struct ckpt_dev_ops *ops,
		      enum devset_phase phase))(struct ckpt_dev *, uint64_t)
{
	switch (phase) {
	case DEVSET_POSTSUSPEND:
		return ops->postsuspend;
	case DEVSET_PRERESUME:
		return ops->preresume;
	case DEVSET_FLUSH:
		return ops->flush;
	case DEVSET_COMMIT:
		return ops->commit;
	case DEVSET_HANDOVER:
		return ops->handover;
	}
	return NULL;
}

static void dev_lock(struct devset *ds, unsigned i)
{
	if (!ds->devs[i]->ops->concurrent)
		pthread_mutex_lock(&ds->dev[i]);
}

static void dev_unlock(struct devset *ds, unsigned i)
{
	if (!ds->devs[i]->ops->concurrent)
		pthread_mutex_unlock(&ds->dev[i]);
}

bool devset_has(struct devset *ds, enum devset_phase phase)
{
	bool has = false;

	pthread_rwlock_rdlock(&ds->set);
	for (unsigned i = 0; i < ds->n && !has; i++)
		has = phase_fn(ds->devs[i]->ops, phase) != NULL;
	pthread_rwlock_unlock(&ds->set);
	return has;
}

int devset_call(struct devset *ds, enum devset_phase phase, uint64_t epoch)
{
	int rc = 0;

	pthread_rwlock_rdlock(&ds->set);
	for (unsigned i = 0; ds->up && i < ds->n && rc == 0; i++) {
		struct ckpt_dev *d = ds->devs[i];
		int (*fn)(struct ckpt_dev *, uint64_t) = phase_fn(d->ops, phase);

		if (!fn)
			continue;
		dev_lock(ds, i);
		rc = fn(d, epoch);
		dev_unlock(ds, i);
		if (rc < 0)
			log_error("device %s (%s): %s of epoch %llu failed: %s", d->name,
				  d->ops->kind, phase_names[phase], (unsigned long long)epoch,
				  strerror(-rc));
	}
	pthread_rwlock_unlock(&ds->set);
	return rc;
}

/* Undoes connect and setup, in reverse order, with each device's DISCARD
 * (or teardown) when DROP. */
static void end(struct devset *ds, bool drop)
{
	pthread_rwlock_wrlock(&ds->set);
	if (ds->up)
		emit(ds, drop ? "discard" : "teardown");
	for (unsigned i = ds->n; i--;) {
		struct ckpt_dev *d = ds->devs[i];

		if (ds->up || ds->connected[i])
			(drop && d->ops->discard ? d->ops->discard : d->ops->teardown)(d);
	}
	ds->up = false;
	memset(ds->connected, 0, sizeof(ds->connected));
	pthread_rwlock_unlock(&ds->set);
}

void devset_teardown(struct devset *ds)
{
	end(ds, false);
}

void devset_discard(struct devset *ds)
{
	end(ds, true);
}

bool devset_held(struct devset *ds, uint64_t *packets, int64_t *bytes)
{
	bool any = false;

	*packets = 0;
	*bytes = 0;
	pthread_rwlock_rdlock(&ds->set);
	for (unsigned i = 0; ds->up && i < ds->n; i++) {
		struct ckpt_dev *d = ds->devs[i];
		uint64_t p, b;

		/* Not under the device's lock: a netlink query for a status
		 * request must never hold up the pause path's phases. */
		if (!d->ops->held || d->ops->held(d, &p, &b) < 0)
			continue;
		any = true;
		*packets += p;
		if (b == UINT64_MAX || *bytes < 0)
			*bytes = -1;
		else
			*bytes += (int64_t)b;
	}
	pthread_rwlock_unlock(&ds->set);
	if (!any)
		*bytes = -1;
	return any;
}

void devset_status(struct devset *ds, FILE *out)
{
	pthread_rwlock_rdlock(&ds->set);
	for (unsigned i = 0; i < ds->n; i++) {
		struct ckpt_dev *d = ds->devs[i];
		char line[256] = "not active";

		if (ds->up && d->ops->status) {
			dev_lock(ds, i);
			d->ops->status(d, line, sizeof(line));
			dev_unlock(ds, i);
		}
		fprintf(out, "device %s (%s): %s\n", d->name, d->ops->kind, line);
	}
	pthread_rwlock_unlock(&ds->set);
}
