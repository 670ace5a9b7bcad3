#include "diskrepl/drbd.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "checkpoint/stream_format.h"
#include "common/clock.h"
#include "common/hist.h"
#include "common/log.h"
#include "common/service.h"

#define PROC_MAX (64 * 1024)
#define CMD_TIMEOUT_MS 10000
#define SETUP_LOG_MS 5000

/* ---- /proc/drbd ---------------------------------------------------------- */

/* Copies the value after "key" (up to a space, '/' or end of line) into out.
 * Returns a pointer past it, or NULL when key is absent from [s, end). */
static const char *field(const char *s, const char *end, const char *key, char *out, size_t len,
			 const char *stops)
{
	size_t klen = strlen(key), n = 0;
	const char *p = s;

	for (; p + klen <= end; p++)
		if (!memcmp(p, key, klen) && (p == s || p[-1] == ' '))
			break;
	if (p + klen > end)
		return NULL;
	p += klen;
	while (p < end && !strchr(stops, *p) && n + 1 < len)
		out[n++] = *p++;
	out[n] = '\0';
	return p;
}

int drbd_parse_proc(const char *text, unsigned minor, struct drbd_state *st)
{
	char want[16], num[32];
	const char *line = text, *end, *next, *p;

	memset(st, 0, sizeof(*st));
	st->sync_permille = -1;
	if (strncmp(text, "version: ", 9))
		return -EPROTONOSUPPORT;
	if (strncmp(text + 9, "8.4.", 4))
		return -EPROTONOSUPPORT; /* 9.x lists no minors here; 8.3 is too old */
	snprintf(want, sizeof(want), "%u: cs:", minor);
	for (;; line = next + 1) {
		next = strchr(line, '\n');
		if (!next)
			return -ENODEV;
		p = line;
		while (*p == ' ')
			p++;
		if (!strncmp(p, want, strlen(want)))
			break;
	}
	end = next;
	p = field(line, end, "cs:", st->cs, sizeof(st->cs), " \n");
	if (!p || !st->cs[0])
		return -EBADMSG;
	if (!strcmp(st->cs, "Unconfigured"))
		return -ENODEV;
	if (!field(line, end, "ro:", st->role, sizeof(st->role), "/ \n") ||
	    !(p = field(line, end, "ds:", st->disk, sizeof(st->disk), "/ \n")))
		return -EBADMSG;
	if (p < end && *p == '/')
		field(p, end, "/", st->peer_disk, sizeof(st->peer_disk), " \n");
	p = strstr(line, "ro:");
	p = p && p < end ? strchr(p, '/') : NULL;
	if (p && p < end)
		field(p, end, "/", st->peer_role, sizeof(st->peer_role), " \n");
	if (!st->role[0] || !st->disk[0] || !st->peer_disk[0])
		return -EBADMSG;
	/* The protocol: the single letter after the ds: field, blank while
	 * the resource has no network configuration (StandAlone). */
	p = strstr(line, " ds:");
	p = p ? strchr(p + 1, ' ') : NULL;
	if (!p || p + 2 >= end)
		return -EBADMSG;
	if (strchr("ABC", p[1]) && p[2] == ' ')
		st->protocol = p[1];
	else if (p[1] != ' ')
		return -EBADMSG;
	/* Continuation lines (indented, not another minor): counters, resync. */
	for (line = end + 1; *line; line = next + 1) {
		next = strchr(line, '\n');
		end = next ? next : line + strlen(line);
		p = line;
		while (*p == ' ' || *p == '\t')
			p++;
		if (p == line || isdigit((unsigned char)*p))
			break;
		if (field(line, end, "oos:", num, sizeof(num), " \n"))
			st->oos_kib = strtoull(num, NULL, 10);
		p = strstr(line, "sync'ed:");
		if (p && p < end) {
			double pct = strtod(p + 8, NULL);

			/* !(pct >= 0) also catches "nan", which no cast may meet. */
			st->sync_permille = !(pct >= 0) ? 0 : pct > 100 ? 1000 : (int)(pct * 10);
		}
		if (!next)
			break;
	}
	return 0;
}

/* /proc/drbd (HA_DRBD_PROC overrides the path) into a new buffer *out:
 * 0, -ENOPKG when DRBD is not loaded, or -errno. */
static int read_proc(char **out)
{
	const char *path = getenv("HA_DRBD_PROC") ? getenv("HA_DRBD_PROC") : "/proc/drbd";
	char *buf = malloc(PROC_MAX);
	ssize_t n, got = 0;
	int fd, rc;

	if (!buf)
		return -ENOMEM;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		rc = errno == ENOENT ? -ENOPKG : -errno;
		free(buf);
		return rc;
	}
	while (got < PROC_MAX - 1 && (n = read(fd, buf + got, PROC_MAX - 1 - (size_t)got)) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = -errno;
			close(fd);
			free(buf);
			return rc;
		}
		got += n;
	}
	close(fd);
	buf[got] = '\0';
	*out = buf;
	return 0;
}

int drbd_read_state(unsigned minor, struct drbd_state *st)
{
	char *buf;
	int rc = read_proc(&buf);

	if (rc < 0)
		return rc;
	rc = drbd_parse_proc(buf, minor, st);
	free(buf);
	return rc;
}

int drbd_version(char *ver, size_t len)
{
	char *buf;
	int rc = read_proc(&buf);

	ver[0] = '\0';
	if (rc < 0)
		return rc;
	if (!strncmp(buf, "version: ", 9))
		snprintf(ver, len, "%.*s", (int)strcspn(buf + 9, " \n"), buf + 9);
	rc = !strncmp(ver, "8.4.", 4) ? 0 : -EPROTONOSUPPORT;
	free(buf);
	return rc;
}

void drbd_state_str(const struct drbd_state *st, char *buf, size_t len)
{
	int n = snprintf(buf, len, "cs:%s ro:%s/%s ds:%s/%s %c oos:%" PRIu64, st->cs, st->role,
			 st->peer_role, st->disk, st->peer_disk, st->protocol ? st->protocol : '-',
			 st->oos_kib);

	if (st->sync_permille >= 0 && n > 0 && (size_t)n < len)
		snprintf(buf + n, len - (size_t)n, " sync'ed:%d.%d%%", st->sync_permille / 10,
			 st->sync_permille % 10);
}

const char *drbd_primary_unsafe(const struct drbd_state *st)
{
	if (strcmp(st->role, "Primary"))
		return "the resource is not Primary on this host";
	if (strcmp(st->disk, "UpToDate"))
		return "the local disk is not UpToDate";
	if (st->protocol && st->protocol != 'C')
		return "the resource does not replicate with protocol C: a write completes "
		       "before the peer has it";
	if (!strncmp(st->cs, "Sync", 4) || !strncmp(st->cs, "PausedSync", 10))
		return "a resync is in progress: the peer's disk is not usable yet";
	if (strcmp(st->cs, "Connected"))
		return "the resource is not connected to its peer";
	if (strcmp(st->peer_disk, "UpToDate"))
		return "the peer's disk is not UpToDate";
	if (st->oos_kib)
		return "blocks are out of sync with the peer";
	return NULL;
}

/* ---- drbdsetup ----------------------------------------------------------- */

/* Runs argv with stdout and stderr into out (NUL-terminated, truncated),
 * killed after timeout_ms. 0 on exit 0; -EIO on another status (out says
 * why); -ETIMEDOUT; -ENOENT when the program is missing. */
static int run(char *const argv[], unsigned timeout_ms, char *out, size_t outlen)
{
	uint64_t deadline = clk_now_ns() + (uint64_t)timeout_ms * NSEC_PER_MSEC;
	size_t got = 0;
	int pfd[2], status, rc = 0;
	pid_t pid;

	out[0] = '\0';
	if (pipe2(pfd, O_CLOEXEC) < 0)
		return -errno;
	pid = fork();
	if (pid < 0) {
		rc = -errno;
		close(pfd[0]);
		close(pfd[1]);
		return rc;
	}
	if (pid == 0) {
		service_child_signals();
		dup2(pfd[1], 1);
		dup2(pfd[1], 2);
		signal(SIGPIPE, SIG_DFL);
		execvp(argv[0], argv);
		_exit(127);
	}
	close(pfd[1]);
	for (;;) {
		uint64_t now = clk_now_ns();
		struct pollfd p = {.fd = pfd[0], .events = POLLIN};
		char sink[512];
		ssize_t n;

		if (now >= deadline) {
			rc = -ETIMEDOUT;
			kill(pid, SIGKILL);
			break;
		}
		int r = poll(&p, 1, (int)((deadline - now) / NSEC_PER_MSEC) + 1);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			continue;
		if (got + 1 < outlen)
			n = read(pfd[0], out + got, outlen - 1 - got);
		else
			n = read(pfd[0], sink, sizeof(sink));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		if (got + 1 < outlen) {
			got += (size_t)n;
			out[got] = '\0';
		}
	}
	close(pfd[0]);
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return rc ? rc : -errno;
	if (rc)
		return rc;
	if (WIFEXITED(status) && WEXITSTATUS(status) == 127 && !got)
		return -ENOENT;
	return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -EIO;
}

/* The last non-empty line of a command's output, for an error message. */
static const char *last_line(char *out)
{
	char *end = out + strlen(out), *p;

	while (end > out && (end[-1] == '\n' || end[-1] == ' '))
		*--end = '\0';
	p = strrchr(out, '\n');
	return p ? p + 1 : out;
}

static const char *drbdsetup(void)
{
	return getenv("HA_DRBDSETUP") ? getenv("HA_DRBDSETUP") : "drbdsetup";
}

int drbd_resolve(const char *spec, struct drbd_res *out, char *err, size_t errlen)
{
	char buf[8192], *end;
	const char *p;
	int rc, found = 0;
	unsigned long minor = 0;

	memset(out, 0, sizeof(*out));
	if (!spec || !*spec || strlen(spec) >= sizeof(out->name)) {
		snprintf(err, errlen, "a DRBD resource name or /dev/drbdN is required");
		return -EINVAL;
	}
	if (!strncmp(spec, "/dev/drbd", 9)) {
		errno = 0;
		minor = strtoul(spec + 9, &end, 10);
		if (errno || end == spec + 9 || *end || minor > 1048575) {
			snprintf(err, errlen, "%s is not a DRBD device (/dev/drbdN)", spec);
			return -EINVAL;
		}
		snprintf(out->name, sizeof(out->name), "minor %lu", minor);
	} else {
		char *argv[] = {(char *)drbdsetup(), (char *)"show", (char *)spec, NULL};

		rc = run(argv, CMD_TIMEOUT_MS, buf, sizeof(buf));
		if (rc == -ENOENT) {
			snprintf(err, errlen, "%s is not installed (Debian package drbd-utils)",
				 argv[0]);
			return rc;
		}
		if (rc < 0) {
			snprintf(err, errlen, "no DRBD resource %s here (drbdsetup show: %s)", spec,
				 rc == -EIO ? last_line(buf) : strerror(-rc));
			return -ENODEV;
		}
		/* "device minor N;" per volume: volume 0 is the one. */
		for (p = buf; (p = strstr(p, "device")) != NULL; p++) {
			const char *q = p + 6;

			while (*q == ' ' || *q == '\t')
				q++;
			if (strncmp(q, "minor", 5))
				continue;
			if (!found++)
				minor = strtoul(q + 5, NULL, 10);
		}
		if (!found) {
			snprintf(err, errlen, "DRBD resource %s has no volume (drbdsetup show lists "
					      "no device minor)", spec);
			return -ENODEV;
		}
		if (found > 1) {
			snprintf(err, errlen, "DRBD resource %s has %d volumes: name the one to "
					      "protect by its device (/dev/drbdN)", spec, found);
			return -EINVAL;
		}
		snprintf(out->name, sizeof(out->name), "%s", spec);
	}
	out->minor = (unsigned)minor;
	snprintf(out->dev, sizeof(out->dev), "/dev/drbd%u", out->minor);
	return 0;
}

static int state_or_why(const struct drbd_res *r, struct drbd_state *st, char *err, size_t errlen)
{
	int rc = drbd_read_state(r->minor, st);

	if (rc == -ENOPKG)
		snprintf(err, errlen, "DRBD is not loaded (no /proc/drbd): modprobe drbd");
	else if (rc == -EPROTONOSUPPORT)
		snprintf(err, errlen, "this DRBD is not version 8.4 (see /proc/drbd); only 8.4 "
				      "is supported");
	else if (rc == -ENODEV)
		snprintf(err, errlen, "DRBD %s (minor %u) is not configured here", r->name,
			 r->minor);
	else if (rc < 0)
		snprintf(err, errlen, "cannot read the state of DRBD %s: %s", r->name,
			 strerror(-rc));
	return rc;
}

int drbd_check_primary(const struct drbd_res *r, char *err, size_t errlen)
{
	struct drbd_state st;
	char s[160];
	const char *why;
	int rc = state_or_why(r, &st, err, errlen);

	if (rc < 0)
		return rc;
	drbd_state_str(&st, s, sizeof(s));
	why = drbd_primary_unsafe(&st);
	if (why) {
		snprintf(err, errlen, "DRBD %s (%s): %s", r->name, s, why);
		return -EBUSY;
	}
	snprintf(err, errlen, "DRBD %s (%s, %s)", r->name, r->dev, s);
	return 0;
}

int drbd_check_secondary(const struct drbd_res *r, char *err, size_t errlen)
{
	struct drbd_state st;
	char s[160];
	int rc = state_or_why(r, &st, err, errlen);

	if (rc < 0)
		return rc;
	drbd_state_str(&st, s, sizeof(s));
	if (strcmp(st.role, "Secondary")) {
		snprintf(err, errlen, "DRBD %s is %s here (%s): the replica must be Secondary "
				      "while the primary runs",
			 r->name, st.role, s);
		return -EBUSY;
	}
	if (st.protocol && st.protocol != 'C') {
		snprintf(err, errlen, "DRBD %s replicates with protocol %c (%s): use protocol C",
			 r->name, st.protocol, s);
		return -EINVAL;
	}
	return 0;
}

int drbd_demote(const struct drbd_res *r, unsigned timeout_ms, char *err, size_t errlen)
{
	uint64_t until = clk_now_ns() + (uint64_t)timeout_ms * NSEC_PER_MSEC;
	struct drbd_state st;
	char s[160], minor[16], out[2048];
	int rc;

	snprintf(minor, sizeof(minor), "%u", r->minor);
	for (;;) {
		char *argv[] = {(char *)drbdsetup(), (char *)"secondary", minor, NULL};

		rc = state_or_why(r, &st, err, errlen);
		if (rc < 0)
			return rc;
		if (strcmp(st.role, "Primary"))
			return 0;
		uint64_t now = clk_now_ns();
		unsigned left = now < until ? (unsigned)((until - now) / NSEC_PER_MSEC) : 0;

		rc = run(argv, left > 1000 ? left : 1000, out, sizeof(out));
		/* Still open (a backend letting go): again, until the deadline. */
		if (rc < 0 && clk_now_ns() >= until) {
			drbd_state_str(&st, s, sizeof(s));
			snprintf(err, errlen, "drbdsetup secondary %s (%s) failed: %s (state %s): is "
					      "the device still open?",
				 minor, r->name, rc == -EIO ? last_line(out) : strerror(-rc), s);
			return rc;
		}
		if (rc == 0 && clk_now_ns() >= until) {
			snprintf(err, errlen, "DRBD %s is still Primary after drbdsetup secondary",
				 r->name);
			return -EIO;
		}
		clk_sleep_until_ns(clk_now_ns() + 200 * NSEC_PER_MSEC);
	}
}

int drbd_promote(const struct drbd_res *r, unsigned timeout_ms, char *err, size_t errlen)
{
	struct drbd_state st;
	char s[160], minor[16], out[2048];
	int rc = state_or_why(r, &st, err, errlen);

	if (rc < 0)
		return rc;
	drbd_state_str(&st, s, sizeof(s));
	if (!strcmp(st.role, "Primary"))
		return 0;
	if (strcmp(st.disk, "UpToDate")) {
		snprintf(err, errlen, "DRBD %s's disk is %s here (%s): it does not hold the "
				      "primary's data (a resync was incomplete when the primary was "
				      "lost, or the disk failed)",
			 r->name, st.disk, s);
		return -EIO;
	}
	if (!strcmp(st.cs, "Connected") && !strcmp(st.peer_role, "Primary")) {
		snprintf(err, errlen, "DRBD %s's peer is still Primary and connected (%s): the "
				      "old primary's host is alive",
			 r->name, s);
		return -EBUSY;
	}
	snprintf(minor, sizeof(minor), "%u", r->minor);
	char *argv[] = {(char *)drbdsetup(), (char *)"primary", minor, NULL};
	rc = run(argv, timeout_ms, out, sizeof(out));
	if (rc < 0) {
		snprintf(err, errlen, "drbdsetup primary %s (%s) failed: %s (state %s)", minor,
			 r->name, rc == -EIO ? last_line(out) : strerror(-rc), s);
		return rc;
	}
	rc = state_or_why(r, &st, err, errlen);
	if (rc == 0 && strcmp(st.role, "Primary")) {
		drbd_state_str(&st, s, sizeof(s));
		snprintf(err, errlen, "DRBD %s is still %s after drbdsetup primary (%s)", r->name,
			 st.role, s);
		rc = -EIO;
	}
	return rc;
}

/* ---- the primary's checkpoint device ------------------------------------- */

struct ddev {
	struct ckpt_dev dev;
	struct drbd_res res;
	unsigned setup_timeout_ms;
	struct ckpt_sink sink; /* a copy: the caller's is gone after connect */
	bool has_sink;
	int fd;
	pthread_mutex_t mu; /* the figures below: status reads them from another thread */
	uint64_t flushes, failures;
	struct hist flush_us;
	char last[160]; /* the state at the last check */
};

static void count_failure(struct ddev *d)
{
	pthread_mutex_lock(&d->mu);
	d->failures++;
	pthread_mutex_unlock(&d->mu);
}

static int ddev_connect(struct ckpt_dev *dev, const struct ckpt_sink *sink)
{
	struct ddev *d = dev->priv;

	struct ckpt_ha_drbd_disk rec = {.minor = d->res.minor};
	struct iovec iov = {&rec, sizeof(rec)};

	d->sink = *sink;
	d->has_sink = sink->cancelled != NULL;
	/* The secondary must know, to promote its resource on failover. */
	snprintf(rec.resource, sizeof(rec.resource), "%s", d->res.name);
	return sink->record(sink->ctx, CKPT_REC_HA_DRBD_DISK, &iov, 1);
}

static bool cancelled(const struct ddev *d)
{
	return d->has_sink && d->sink.cancelled(d->sink.ctx);
}

/* Waits for a state in which completed writes are on the peer: at most the
 * setup timeout, restarted whenever a resync advances. */
static int ddev_setup(struct ckpt_dev *dev)
{
	struct ddev *d = dev->priv;
	struct drbd_state st;
	uint64_t start = clk_now_ns(), last_log = 0;
	int last_sync = -1, rc;
	char err[256];
	const char *why;

	for (;;) {
		rc = state_or_why(&d->res, &st, err, sizeof(err));
		if (rc < 0) {
			log_error("%s", err);
			return rc;
		}
		pthread_mutex_lock(&d->mu);
		drbd_state_str(&st, d->last, sizeof(d->last));
		pthread_mutex_unlock(&d->mu);
		why = drbd_primary_unsafe(&st);
		if (!why)
			break;
		/* What waiting cannot fix. */
		if (strcmp(st.role, "Primary") || (st.protocol && st.protocol != 'C') ||
		    strcmp(st.disk, "UpToDate")) {
			log_error("DRBD %s (%s): %s (%s); %s", d->res.name, d->res.dev, why, d->last,
				  strcmp(st.role, "Primary")
					  ? "make it Primary here (drbdadm primary) and start the "
					    "domain on it"
				  : strcmp(st.disk, "UpToDate") ? "repair the local disk first"
								 : "set protocol C in its net section");
			return -EINVAL;
		}
		uint64_t now = clk_now_ns();
		if (st.sync_permille > last_sync) {
			last_sync = st.sync_permille;
			start = now; /* progress: keep waiting */
		}
		if (now - start > (uint64_t)d->setup_timeout_ms * NSEC_PER_MSEC) {
			log_error("DRBD %s: %s (%s) for %u ms; connect it to its peer (drbdadm "
				  "connect %s) and let it resync",
				  d->res.name, why, d->last, d->setup_timeout_ms, d->res.name);
			return -ENOLINK;
		}
		if (cancelled(d))
			return -ECANCELED;
		if (now - last_log >= (uint64_t)SETUP_LOG_MS * NSEC_PER_MSEC) {
			log_info("DRBD %s: waiting: %s (%s)", d->res.name, why, d->last);
			last_log = now;
		}
		usleep(100 * 1000);
	}
	if (d->fd < 0) {
		d->fd = open(d->res.dev, O_RDONLY | O_CLOEXEC);
		if (d->fd < 0) {
			rc = -errno;
			log_error("DRBD %s: cannot open %s: %s", d->res.name, d->res.dev,
				  strerror(errno));
			return rc;
		}
	}
	log_info("DRBD %s (%s): %s; the disk ACK of each epoch is DRBD's completion",
		 d->res.name, d->res.dev, d->last);
	return 0;
}

/* Every write the guest saw complete before the pause is on the peer once
 * this returns 0 (see the top of drbd.h). */
static int ddev_flush(struct ckpt_dev *dev, uint64_t epoch)
{
	struct ddev *d = dev->priv;
	struct drbd_state st;
	uint64_t t0 = clk_now_ns();
	char err[256];
	const char *why;
	int rc;

	(void)epoch;
	if (fsync(d->fd) < 0) {
		rc = -errno;
		count_failure(d);
		log_error("DRBD %s: flushing %s failed: %s; the epoch is not committed",
			  d->res.name, d->res.dev, strerror(errno));
		return rc;
	}
	rc = state_or_why(&d->res, &st, err, sizeof(err));
	if (rc < 0) {
		count_failure(d);
		log_error("%s", err);
		return rc;
	}
	pthread_mutex_lock(&d->mu);
	drbd_state_str(&st, d->last, sizeof(d->last));
	why = drbd_primary_unsafe(&st);
	if (why)
		d->failures++;
	else
		d->flushes++, hist_add(&d->flush_us, (clk_now_ns() - t0) / 1000);
	pthread_mutex_unlock(&d->mu);
	if (why) {
		log_error("DRBD %s: %s (%s): this epoch's writes may be missing on the peer; "
			  "not committing it",
			  d->res.name, why, d->last);
		return -ENOLINK;
	}
	return 0;
}

static void ddev_teardown(struct ckpt_dev *dev)
{
	struct ddev *d = dev->priv;

	if (d->fd >= 0)
		close(d->fd);
	d->fd = -1;
	d->has_sink = false;
}

/* A switchover: the domain is stopped here, so its disk is closed soon
 * (Xen's backend lets go shortly after the domain is gone); Secondary
 * here, so that the peer can promote. */
static int ddev_handover(struct ckpt_dev *dev, uint64_t epoch)
{
	struct ddev *d = dev->priv;
	char err[256];
	int rc;

	(void)epoch;
	ddev_teardown(dev);
	rc = drbd_demote(&d->res, 30000, err, sizeof(err));
	if (rc < 0)
		log_error("%s", err);
	else
		log_info("DRBD %s is Secondary here: the peer may promote it", d->res.name);
	return rc;
}

static int ddev_status(struct ckpt_dev *dev, char *buf, size_t len)
{
	struct ddev *d = dev->priv;

	pthread_mutex_lock(&d->mu);
	snprintf(buf, len,
		 "drbd %s (%s): %s; flushes %" PRIu64 " (p50 %" PRIu64 " us, p99 %" PRIu64
		 " us), failed checks %" PRIu64,
		 d->res.name, d->res.dev, d->last, d->flushes, hist_quantile(&d->flush_us, 0.5),
		 hist_quantile(&d->flush_us, 0.99), d->failures);
	pthread_mutex_unlock(&d->mu);
	return 0;
}

static void ddev_destroy(struct ckpt_dev *dev)
{
	struct ddev *d = dev->priv;

	ddev_teardown(dev);
	pthread_mutex_destroy(&d->mu);
	free(d);
}

static const struct ckpt_dev_ops ddev_ops = {
	.kind = "drbd",
	.connect = ddev_connect,
	.setup = ddev_setup,
	.flush = ddev_flush,
	.handover = ddev_handover,
	.teardown = ddev_teardown,
	.status = ddev_status,
	.destroy = ddev_destroy,
};

int drbd_dev_create(const char *spec, unsigned setup_timeout_ms, struct ckpt_dev **out)
{
	struct ddev *d = calloc(1, sizeof(*d));
	char err[256];
	int rc;

	if (!d)
		return -ENOMEM;
	rc = drbd_resolve(spec, &d->res, err, sizeof(err));
	if (rc < 0) {
		log_error("--disk drbd:%s: %s", spec, err);
		free(d);
		return rc;
	}
	d->fd = -1;
	pthread_mutex_init(&d->mu, NULL);
	d->setup_timeout_ms = setup_timeout_ms;
	snprintf(d->last, sizeof(d->last), "not checked yet");
	d->dev.ops = &ddev_ops;
	d->dev.priv = d;
	snprintf(d->dev.name, sizeof(d->dev.name), "drbd:%s", d->res.name);
	*out = &d->dev;
	return 0;
}

const char *drbd_dev_path(const struct ckpt_dev *dev)
{
	const struct ddev *d = dev->priv;

	return d->res.dev;
}
