/* External devices driven by scripts (extdev.h, docs/devices.md). */
#include "checkpoint/extdev.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"
#include "common/runcmd.h"

/* What a device passed in one operation: the last phase it passed, -1
 * none (or rolled back). */
struct extdev_one {
	const char *path;
	const char *name; /* its basename, for logs */
	int passed[EXTDEV_NOPS];
	bool per_epoch; /* its protection check printed "per-epoch" */
};

struct extdev {
	pthread_mutex_t mu; /* one call at a time */
	unsigned n, timeout_ms;
	char *domain, *peer;
	struct extdev_one dev[EXTDEV_MAX];
};

static const char *const op_names[EXTDEV_NOPS] = {"protect", "switchover", "migrate",
						  "failover"};
static const char *const phase_names[] = {"check",  "prepare",	"transfer",
					  "commit", "rollback", "release"};

const char *extdev_op_name(enum extdev_op op)
{
	return (unsigned)op < EXTDEV_NOPS ? op_names[op] : "?";
}

const char *extdev_phase_name(enum extdev_phase phase)
{
	return (unsigned)phase <= EXTDEV_RELEASE ? phase_names[phase] : "?";
}

/* An absolute path to an executable regular file: 0, or -errno with ERR. */
static int check_path(const char *path, char *err, size_t errlen)
{
	struct stat st;
	int rc;

	if (path[0] != '/') {
		snprintf(err, errlen, "external device %s: give its absolute path", path);
		return -EINVAL;
	}
	if (stat(path, &st) < 0) {
		rc = -errno;
		snprintf(err, errlen, "external device %s: %s", path, strerror(-rc));
		return rc;
	}
	if (!S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "external device %s: not a regular file", path);
		return -EINVAL;
	}
	if (access(path, X_OK) < 0) {
		snprintf(err, errlen, "external device %s: not executable (chmod +x it)", path);
		return -EACCES;
	}
	return 0;
}

int extdev_new(const char *const *paths, unsigned n, unsigned timeout_ms, const char *domain,
	       const char *peer, struct extdev **out, char *err, size_t errlen)
{
	struct extdev *xd;
	int rc = 0;

	*out = NULL;
	if (n > EXTDEV_MAX) {
		snprintf(err, errlen, "at most %u external devices", EXTDEV_MAX);
		return -EINVAL;
	}
	for (unsigned i = 0; i < n; i++) {
		rc = check_path(paths[i], err, errlen);
		if (rc < 0)
			return rc;
	}
	xd = calloc(1, sizeof(*xd));
	if (!xd) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	pthread_mutex_init(&xd->mu, NULL);
	xd->n = n;
	xd->timeout_ms = timeout_ms ? timeout_ms : EXTDEV_TIMEOUT_DEFAULT_MS;
	xd->domain = strdup(domain ? domain : "-");
	xd->peer = strdup(peer ? peer : "-");
	if (!xd->domain || !xd->peer) {
		extdev_free(xd);
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	for (unsigned i = 0; i < n; i++) {
		const char *slash = strrchr(paths[i], '/');

		xd->dev[i].path = paths[i];
		xd->dev[i].name = slash ? slash + 1 : paths[i];
		for (unsigned op = 0; op < EXTDEV_NOPS; op++)
			xd->dev[i].passed[op] = -1;
	}
	*out = xd;
	return 0;
}

void extdev_free(struct extdev *xd)
{
	if (!xd)
		return;
	pthread_mutex_destroy(&xd->mu);
	free(xd->domain);
	free(xd->peer);
	free(xd);
}

unsigned extdev_count(const struct extdev *xd)
{
	return xd ? xd->n : 0;
}

static void note_line(void *ctx, const char *line)
{
	struct extdev_one *d = ctx;

	if (!strcmp(line, "per-epoch"))
		d->per_epoch = true;
}

/* One call of device I (mu held): 0, -EIO or -ETIMEDOUT (WHY says which). */
static int call(struct extdev *xd, unsigned i, enum extdev_op op, enum extdev_phase phase,
		uint64_t epoch, char *why, size_t whylen)
{
	struct extdev_one *d = &xd->dev[i];
	char ep[24], what[96], v_phase[40], v_op[40], v_dom[300], v_peer[300], v_ep[40],
	    v_idx[40], v_cnt[40], v_passed[48];
	const char *passed = d->passed[op] < 0 ? "none" : phase_names[d->passed[op]];
	int rc;

	if (epoch == EXTDEV_NO_EPOCH)
		snprintf(ep, sizeof(ep), "-");
	else
		snprintf(ep, sizeof(ep), "%" PRIu64, epoch);
	snprintf(what, sizeof(what), "device %.40s %s", d->name, phase_names[phase]);
	snprintf(v_phase, sizeof(v_phase), "HA_DEVICE_PHASE=%s", phase_names[phase]);
	snprintf(v_op, sizeof(v_op), "HA_DEVICE_OP=%s", op_names[op]);
	snprintf(v_dom, sizeof(v_dom), "HA_DOMAIN=%.250s", xd->domain);
	snprintf(v_peer, sizeof(v_peer), "HA_PEER=%.250s", xd->peer);
	snprintf(v_ep, sizeof(v_ep), "HA_EPOCH=%s", ep);
	snprintf(v_idx, sizeof(v_idx), "HA_DEVICE_INDEX=%u", i);
	snprintf(v_cnt, sizeof(v_cnt), "HA_DEVICE_COUNT=%u", xd->n);
	snprintf(v_passed, sizeof(v_passed), "HA_DEVICE_PASSED=%s", passed);
	const char *const vars[] = {v_phase, v_op, v_dom, v_peer, v_ep, v_idx, v_cnt, v_passed, NULL};
	const char *const argv[] = {d->path, phase_names[phase], op_names[op], xd->domain, xd->peer,
				    ep, NULL};

	if (phase == EXTDEV_CHECK && op == EXTDEV_PROTECT)
		d->per_epoch = false;
	rc = run_argv(what, argv, xd->timeout_ms, vars,
		      phase == EXTDEV_CHECK && op == EXTDEV_PROTECT ? note_line : NULL, d, why,
		      whylen);
	if (rc < 0 && rc != -ETIMEDOUT)
		rc = -EIO;
	return rc;
}

/* Rollback (or release) of every device whose last passed phase in OP is
 * at least MIN, last device first (mu held). */
static void unwind(struct extdev *xd, enum extdev_op op, enum extdev_phase how, int min,
		   uint64_t epoch)
{
	for (unsigned i = xd->n; i-- > 0;) {
		char why[200];

		if (xd->dev[i].passed[op] < min)
			continue;
		if (call(xd, i, op, how, epoch, why, sizeof(why)) < 0)
			log_error("external device %s: %s of the %s failed: %s; it may hold "
				  "what it took: check it by hand",
				  xd->dev[i].name, phase_names[how], op_names[op], why);
		xd->dev[i].passed[op] = -1;
	}
}

void extdev_begin(struct extdev *xd, enum extdev_op op)
{
	if (!xd)
		return;
	pthread_mutex_lock(&xd->mu);
	for (unsigned i = 0; i < xd->n; i++)
		xd->dev[i].passed[op] = -1;
	pthread_mutex_unlock(&xd->mu);
}

int extdev_phase(struct extdev *xd, enum extdev_op op, enum extdev_phase phase, uint64_t epoch,
		 char *why, size_t whylen)
{
	bool per_epoch = op == EXTDEV_PROTECT && phase == EXTDEV_COMMIT;
	char w[200];
	int rc = 0;

	if (!xd || !xd->n)
		return 0;
	pthread_mutex_lock(&xd->mu);
	for (unsigned i = 0; i < xd->n; i++) {
		struct extdev_one *d = &xd->dev[i];

		if (per_epoch && (!d->per_epoch || d->passed[op] < EXTDEV_PREPARE))
			continue;
		rc = call(xd, i, op, phase, epoch, w, sizeof(w));
		if (rc == 0) {
			if (!per_epoch)
				d->passed[op] = (int)phase;
			continue;
		}
		log_error("external device %s failed at %s of the %s of %s: %s%s", d->name,
			  phase_names[phase], op_names[op], xd->domain, w,
			  per_epoch ? "" : "; rolling back the devices that passed a phase");
		if (why)
			snprintf(why, whylen, "external device %s failed at %s: %s", d->name,
				 phase_names[phase], w);
		if (!per_epoch)
			unwind(xd, op, EXTDEV_ROLLBACK, EXTDEV_CHECK, epoch);
		break;
	}
	pthread_mutex_unlock(&xd->mu);
	return rc;
}

void extdev_rollback(struct extdev *xd, enum extdev_op op, uint64_t epoch)
{
	if (!xd)
		return;
	pthread_mutex_lock(&xd->mu);
	unwind(xd, op, EXTDEV_ROLLBACK, EXTDEV_CHECK, epoch);
	pthread_mutex_unlock(&xd->mu);
}

void extdev_release(struct extdev *xd, enum extdev_op op, uint64_t epoch)
{
	if (!xd)
		return;
	pthread_mutex_lock(&xd->mu);
	unwind(xd, op, EXTDEV_RELEASE, EXTDEV_PREPARE, epoch);
	/* What passed only check holds nothing. */
	for (unsigned i = 0; i < xd->n; i++)
		xd->dev[i].passed[op] = -1;
	pthread_mutex_unlock(&xd->mu);
}

bool extdev_active(struct extdev *xd, enum extdev_op op)
{
	bool any = false;

	if (!xd)
		return false;
	pthread_mutex_lock(&xd->mu);
	for (unsigned i = 0; i < xd->n && !any; i++)
		any = xd->dev[i].passed[op] >= 0;
	pthread_mutex_unlock(&xd->mu);
	return any;
}

/* ------------------------------------------------------------------ */
/* Protection: the list as one checkpoint device. */

struct xdev {
	struct ckpt_dev dev;
	struct extdev *xd;
	uint64_t last; /* the last epoch committed, EXTDEV_NO_EPOCH none */
};

static int xdev_setup(struct ckpt_dev *dev)
{
	struct xdev *x = dev->priv;
	int rc;

	x->last = EXTDEV_NO_EPOCH;
	extdev_begin(x->xd, EXTDEV_PROTECT);
	rc = extdev_phase(x->xd, EXTDEV_PROTECT, EXTDEV_CHECK, EXTDEV_NO_EPOCH, NULL, 0);
	if (rc == 0)
		rc = extdev_phase(x->xd, EXTDEV_PROTECT, EXTDEV_PREPARE, EXTDEV_NO_EPOCH, NULL, 0);
	return rc;
}

static int xdev_commit(struct ckpt_dev *dev, uint64_t epoch)
{
	struct xdev *x = dev->priv;
	int rc = extdev_phase(x->xd, EXTDEV_PROTECT, EXTDEV_COMMIT, epoch, NULL, 0);

	if (rc == 0)
		x->last = epoch;
	return rc;
}

static void xdev_teardown(struct ckpt_dev *dev)
{
	struct xdev *x = dev->priv;

	extdev_release(x->xd, EXTDEV_PROTECT, x->last);
}

static int xdev_status(struct ckpt_dev *dev, char *buf, size_t len)
{
	struct xdev *x = dev->priv;

	snprintf(buf, len, "%u script(s), %s", extdev_count(x->xd),
		 extdev_active(x->xd, EXTDEV_PROTECT) ? "prepared" : "idle");
	return 0;
}

static void xdev_destroy(struct ckpt_dev *dev)
{
	free(dev->priv);
}

static const struct ckpt_dev_ops xdev_ops = {
	.kind = "ext-scripts",
	.setup = xdev_setup,
	.commit = xdev_commit,
	.teardown = xdev_teardown,
	.status = xdev_status,
	.destroy = xdev_destroy,
};

int extdev_ckpt_dev_create(struct extdev *xd, struct ckpt_dev **out)
{
	struct xdev *x = calloc(1, sizeof(*x));

	if (!x)
		return -ENOMEM;
	x->xd = xd;
	x->last = EXTDEV_NO_EPOCH;
	x->dev.ops = &xdev_ops;
	x->dev.priv = x;
	snprintf(x->dev.name, sizeof(x->dev.name), "external");
	*out = &x->dev;
	return 0;
}
