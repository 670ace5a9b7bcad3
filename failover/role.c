#include "failover/role.h"

#include <errno.h>
#include <fcntl.h>
#include <ini.h>
#include <inttypes.h>
#include <libgen.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static const char *const names[] = {
	[ROLE_NONE] = "none",
	[ROLE_PRIMARY] = "primary",
	[ROLE_SECONDARY] = "secondary",
	[ROLE_LOST] = "lost",
};

const char *role_name(enum role r)
{
	return (unsigned)r < sizeof(names) / sizeof(names[0]) ? names[r] : "?";
}

int role_parse(const char *s, enum role *out)
{
	for (enum role r = ROLE_PRIMARY; r <= ROLE_LOST; r++) {
		if (!strcmp(s, names[r])) {
			*out = r;
			return 0;
		}
	}
	return -EINVAL;
}

int role_path(const char *conf_path, char *buf, size_t len, char *pair, size_t pairlen)
{
	const char *dir = getenv("HA_STATE_DIR");
	const char *base = strrchr(conf_path, '/');
	size_t n;

	base = base ? base + 1 : conf_path;
	n = strlen(base);
	if (n > 5 && !strcmp(base + n - 5, ".conf"))
		n -= 5;
	if ((size_t)snprintf(buf, len, "%s/%.*s.role", dir && dir[0] ? dir : ROLE_DIR_DEFAULT,
			     (int)n, base) >= len ||
	    (size_t)snprintf(pair, pairlen, "%.*s", (int)n, base) >= pairlen)
		return -ENAMETOOLONG;
	return 0;
}

struct load {
	struct role_rec *r;
	bool have_role;
	int err_line;
	char err[160];
};

static int handler(void *user, const char *section, const char *key, const char *value,
		   int line)
{
	struct load *l = user;
	char *end;

	if (l->err[0])
		return 0; /* the first error is the one said */
	if (strcmp(section, "role")) {
		snprintf(l->err, sizeof(l->err), "a section [%s]: only [role] is expected", section);
	} else if (!strcmp(key, "role")) {
		if (role_parse(value, &l->r->role) == 0)
			l->have_role = true;
		else
			snprintf(l->err, sizeof(l->err),
				 "role = %s: expected primary, secondary or lost", value);
	} else if (!strcmp(key, "protecting")) {
		if (!strcmp(value, "yes") || !strcmp(value, "no"))
			l->r->protecting = value[0] == 'y';
		else
			snprintf(l->err, sizeof(l->err), "protecting = %s: expected yes or no",
				 value);
	} else if (!strcmp(key, "since")) {
		errno = 0;
		l->r->since = strtoll(value, &end, 10);
		if (errno || end == value || *end || l->r->since < 0)
			snprintf(l->err, sizeof(l->err),
				 "since = %s: expected seconds since 1970", value);
	} else if (!strcmp(key, "why")) {
		snprintf(l->r->why, sizeof(l->r->why), "%s", value);
	} else {
		snprintf(l->err, sizeof(l->err), "unknown key '%s'", key);
	}
	if (l->err[0]) {
		l->err_line = line;
		return 0;
	}
	return 1;
}

/* inih's handler gets no line number: the reader counts the lines. */
struct reader {
	FILE *f;
	int line, long_line;
	struct load *l;
};

static char *read_line(char *str, int num, void *stream)
{
	struct reader *rd = stream;
	char *r = fgets(str, num, rd->f);

	if (r) {
		rd->line++;
		if (!strchr(str, '\n') && !feof(rd->f) && !rd->long_line)
			rd->long_line = rd->line;
	}
	return r;
}

static int handler_at(void *user, const char *section, const char *key, const char *value)
{
	struct reader *rd = user;

	return handler(rd->l, section, key, value, rd->line);
}

int role_load(const char *path, struct role_rec *out, char *err, size_t errlen)
{
	struct load l = {.r = out};
	struct reader rd = {.l = &l};
	int rc;

	memset(out, 0, sizeof(*out));
	rd.f = fopen(path, "re");
	if (!rd.f) {
		rc = -errno;
		if (rc != -ENOENT)
			snprintf(err, errlen, "%s: %s", path, strerror(-rc));
		return rc;
	}
	rc = ini_parse_stream(read_line, &rd, handler_at, &rd);
	fclose(rd.f);
	if (rd.long_line) {
		snprintf(err, errlen, "%s:%d: line too long (at most %d characters)", path,
			 rd.long_line, INI_MAX_LINE - 2);
	} else if (l.err[0]) {
		snprintf(err, errlen, "%s:%d: %s", path, l.err_line, l.err);
	} else if (rc) {
		snprintf(err, errlen, "%s:%d: not a line of a role record", path, rc);
	} else if (!l.have_role) {
		snprintf(err, errlen, "%s: no 'role =' line", path);
	} else {
		return 0;
	}
	memset(out, 0, sizeof(*out));
	return -EINVAL;
}

/* mkdir -p of PATH's directory. */
static int make_dir(const char *path)
{
	char *copy = strdup(path), *dir, *p;
	int rc = 0;

	if (!copy)
		return -ENOMEM;
	dir = dirname(copy);
	for (p = dir + 1; rc == 0; p++) {
		if (*p && *p != '/')
			continue;
		char c = *p;

		*p = '\0';
		if (mkdir(dir, 0755) < 0 && errno != EEXIST)
			rc = -errno;
		*p = c;
		if (!c)
			break;
	}
	free(copy);
	return rc;
}

int role_store(const char *path, enum role role, bool protecting, const char *fmt, ...)
{
	char tmp[4200], why[ROLE_WHY_MAX], *dir, *copy;
	va_list ap;
	FILE *f;
	int rc, fd;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	/* One line, read back whole: no line breaks, and no ';' that inih
	 * would take for the start of a comment. */
	for (char *c = why; *c; c++)
		if (*c == '\n' || *c == '\r')
			*c = ' ';
		else if (*c == ';')
			*c = ',';
	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= sizeof(tmp))
		return -ENAMETOOLONG;
	rc = make_dir(path);
	if (rc < 0)
		return rc;
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	f = fdopen(fd, "w");
	if (!f) {
		rc = -errno;
		close(fd);
		unlink(tmp);
		return rc;
	}
	fprintf(f,
		"# The role of this host in the pair, kept by ha-protect and ha-receive.\n"
		"# Change it only with ha-ctl role (ha-ctl(8)).\n"
		"[role]\n"
		"role = %s\n"
		"protecting = %s\n"
		"since = %lld\n"
		"why = %s\n",
		role_name(role), protecting ? "yes" : "no", (long long)time(NULL), why);
	rc = fflush(f) == 0 && fsync(fd) == 0 ? 0 : -errno;
	if (fclose(f) != 0 && rc == 0)
		rc = -errno;
	if (rc == 0 && rename(tmp, path) < 0)
		rc = -errno;
	if (rc < 0) {
		unlink(tmp);
		return rc;
	}
	/* The rename itself, on disk. */
	copy = strdup(path);
	if (!copy)
		return -ENOMEM;
	dir = dirname(copy);
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	free(copy);
	if (fd < 0)
		return -errno;
	rc = fsync(fd) == 0 ? 0 : -errno;
	close(fd);
	return rc;
}

void role_describe(const struct role_rec *r, char *buf, size_t len)
{
	char when[64] = "";
	time_t t = (time_t)r->since;
	struct tm tm;

	if (r->role == ROLE_NONE) {
		snprintf(buf, len, "none (the pair never ran on this host)");
		return;
	}
	if (gmtime_r(&t, &tm))
		strftime(when, sizeof(when), " since %Y-%m-%d %H:%M:%S UTC", &tm);
	snprintf(buf, len, "%s%s%s (%s)", role_name(r->role),
		 r->role == ROLE_PRIMARY && r->protecting ? ", protecting" : "", when,
		 r->why[0] ? r->why : "no reason recorded");
}

enum role_verdict role_verdict(const struct role_rec *r, bool primary, const char *pair,
			       char *why, size_t len)
{
	char d[400];

	role_describe(r, d, sizeof(d));
	why[0] = '\0';
	if (primary) {
		switch (r->role) {
		case ROLE_NONE:
			return ROLE_GO;
		case ROLE_PRIMARY:
			if (!r->protecting)
				return ROLE_GO;
			snprintf(why, len,
				 "the last protection on this host did not record its end (a crash, "
				 "a fence or a power loss?): %s. The secondary may have taken over "
				 "since; protection goes on only if it answers as the secondary",
				 d);
			return ROLE_CONFIRM;
		case ROLE_SECONDARY:
			snprintf(why, len,
				 "this host is the secondary of pair %s: %s. If the domain is to "
				 "run here now and the other host does not run it, say so: ha-ctl "
				 "role %s primary",
				 pair, d, pair);
			return ROLE_REFUSE;
		case ROLE_LOST:
			snprintf(why, len,
				 "this host lost the primary role of pair %s: %s. Make sure the "
				 "other host does not run the domain (or stop it there), then say "
				 "so: ha-ctl role %s primary",
				 pair, d, pair);
			return ROLE_REFUSE;
		}
	}
	if (r->role != ROLE_PRIMARY)
		return ROLE_GO;
	snprintf(why, len,
		 "this host is the primary of pair %s: %s. While the domain runs here, this "
		 "host must not hold a copy of it: to stand by here, stop it here first (ha-ctl "
		 "role %s secondary records the change)",
		 pair, d, pair);
	return ROLE_REFUSE;
}

int role_open(const char *conf_path, const char *as, char *path, size_t len, char *pair,
	      size_t pairlen, struct role_rec *out, char *why, size_t whylen)
{
	char err[400];
	int rc = role_path(conf_path, path, len, pair, pairlen);

	if (rc == 0)
		rc = role_load(path, out, err, sizeof(err));
	if (rc == -ENOENT)
		return 0;
	if (rc < 0)
		snprintf(why, whylen,
			 "the role record cannot be read: %s. Check it; ha-ctl role %s %s writes "
			 "a new one",
			 rc == -ENAMETOOLONG ? strerror(-rc) : err, pair, as);
	return rc;
}
