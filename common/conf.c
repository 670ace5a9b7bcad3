#include "common/conf.h"

#include <errno.h>
#include <ini.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/utsname.h>

#include "common/log.h"
#include "common/opt.h"

/* One "key = value" of the file, in file order. */
struct entry {
	char *section, *key, *value;
	int line;
};

struct parse {
	FILE *f;
	int line; /* of the last line read */
	bool long_line;
	struct entry *e;
	size_t n, cap;
	int err_line;
	char err[256];
};

static void set_err(char *err, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void set_err(char *err, size_t len, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, len, fmt, ap);
	va_end(ap);
}

/* inih reads one line per call: counting the calls gives the line of the
 * key the handler gets next. */
static char *reader(char *str, int num, void *stream)
{
	struct parse *p = stream;
	char *r = fgets(str, num, p->f);

	if (!r)
		return NULL;
	p->line++;
	if (!strchr(str, '\n') && !feof(p->f) && !p->long_line) {
		p->long_line = true;
		p->err_line = p->line;
	}
	return r;
}

static int handler(void *user, const char *section, const char *key, const char *value)
{
	struct parse *p = user;
	struct entry *e;

	if (p->n == p->cap) {
		size_t cap = p->cap ? 2 * p->cap : 32;
		struct entry *ne = realloc(p->e, cap * sizeof(*ne));

		if (!ne)
			return 0;
		p->e = ne;
		p->cap = cap;
	}
	e = &p->e[p->n];
	e->section = strdup(section);
	e->key = strdup(key);
	e->value = strdup(value);
	e->line = p->line;
	if (!e->section || !e->key || !e->value) {
		free(e->section);
		free(e->key);
		free(e->value);
		return 0;
	}
	p->n++;
	return 1;
}

static void entries_free(struct parse *p)
{
	for (size_t i = 0; i < p->n; i++) {
		free(p->e[i].section);
		free(p->e[i].key);
		free(p->e[i].value);
	}
	free(p->e);
}

static int load(const char *path, struct parse *p, char *err, size_t errlen)
{
	int rc;

	memset(p, 0, sizeof(*p));
	p->f = fopen(path, "re");
	if (!p->f) {
		rc = -errno;
		set_err(err, errlen, "%s: cannot open: %s", path, strerror(errno));
		return rc;
	}
	rc = ini_parse_stream(reader, p, handler, p);
	fclose(p->f);
	if (p->long_line) {
		set_err(err, errlen, "%s:%d: line too long (at most %d characters)", path,
			p->err_line, INI_MAX_LINE - 2);
		return -EINVAL;
	}
	if (rc < 0) {
		set_err(err, errlen, "%s: out of memory", path);
		return -ENOMEM;
	}
	if (rc > 0) {
		set_err(err, errlen,
			"%s:%d: not a [section], a 'key = value' or a comment (# or ;)", path,
			rc);
		return -EINVAL;
	}
	return 0;
}

static bool is_host_section(const char *s, const char **name)
{
	if (strncmp(s, "host ", 5) || !s[5])
		return false;
	*name = s + 5;
	return true;
}

void conf_pair_free(struct conf_pair *p)
{
	free(p->path);
	free(p->domain);
	free(p->self);
	free(p->peer);
	free(p->self_address);
	free(p->peer_address);
	memset(p, 0, sizeof(*p));
}

static int dup_into(char **dst, const char *s)
{
	free(*dst);
	*dst = strdup(s);
	return *dst ? 0 : -ENOMEM;
}

/* The [pair] and [host] sections of P into OUT; the other sections are
 * checked for their names only. */
static int pair_of(const char *path, const char *host, const struct parse *p,
		   struct conf_pair *out, char *err, size_t errlen)
{
	struct utsname u;
	char shortname[sizeof(u.nodename)];
	const char *hosts[2] = {NULL, NULL}, *addr[2] = {NULL, NULL};
	int nhosts = 0, self = -1, rc = -EINVAL;
	unsigned long port = 7788;

	memset(out, 0, sizeof(*out));
	for (size_t i = 0; i < p->n; i++) {
		const struct entry *e = &p->e[i];
		const char *hn;

		if (!strcmp(e->section, "pair")) {
			if (!strcmp(e->key, "domain")) {
				if (!strchr(e->value, ':')) {
					set_err(err, errlen,
						"%s:%d: domain wants xen:NAME or kvm:NAME, not '%s'",
						path, e->line, e->value);
					goto out;
				}
				if (dup_into(&out->domain, e->value) < 0)
					goto nomem;
			} else if (!strcmp(e->key, "port")) {
				char *end;

				errno = 0;
				port = strtoul(e->value, &end, 10);
				if (errno || *end || !*e->value || port < 1 || port > 65535) {
					set_err(err, errlen,
						"%s:%d: port wants a number in 1..65535, not '%s'",
						path, e->line, e->value);
					goto out;
				}
			} else {
				set_err(err, errlen,
					"%s:%d: unknown key '%s' in [pair] (domain, port)", path,
					e->line, e->key);
				goto out;
			}
		} else if (is_host_section(e->section, &hn)) {
			int h = -1;

			for (int j = 0; j < nhosts; j++)
				if (!strcmp(hosts[j], hn))
					h = j;
			if (h < 0) {
				if (nhosts == 2) {
					set_err(err, errlen,
						"%s:%d: a third [host] section ([host %s]): a pair has two hosts",
						path, e->line, hn);
					goto out;
				}
				h = nhosts++;
				hosts[h] = hn;
			}
			if (strcmp(e->key, "address")) {
				set_err(err, errlen,
					"%s:%d: unknown key '%s' in [host %s] (address)", path,
					e->line, e->key, hn);
				goto out;
			}
			addr[h] = e->value;
		} else if (strcmp(e->section, "common") && strcmp(e->section, "protect") &&
			   strcmp(e->section, "receive")) {
			set_err(err, errlen,
				"%s:%d: unknown section [%s] (pair, host NAME, common, protect, receive)",
				path, e->line, e->section);
			goto out;
		}
	}
	if (!out->domain) {
		set_err(err, errlen, "%s: [pair] has no domain (domain = xen:NAME or kvm:NAME)",
			path);
		goto out;
	}
	if (nhosts != 2) {
		set_err(err, errlen, "%s: %d [host NAME] section(s); a pair has two", path,
			nhosts);
		goto out;
	}
	for (int j = 0; j < 2; j++)
		if (!addr[j]) {
			set_err(err, errlen, "%s: [host %s] has no address", path, hosts[j]);
			goto out;
		}
	if (!host) {
		if (uname(&u) < 0) {
			rc = -errno;
			set_err(err, errlen, "uname: %s", strerror(errno));
			goto out;
		}
		snprintf(shortname, sizeof(shortname), "%s", u.nodename);
		shortname[strcspn(shortname, ".")] = '\0';
		for (int j = 0; j < 2; j++)
			if (!strcmp(hosts[j], u.nodename) || !strcmp(hosts[j], shortname))
				self = j;
		if (self < 0) {
			set_err(err, errlen,
				"%s: neither [host %s] nor [host %s] is this host (uname -n: '%s'): "
				"name it with --host",
				path, hosts[0], hosts[1], u.nodename);
			goto out;
		}
	} else {
		for (int j = 0; j < 2; j++)
			if (!strcmp(hosts[j], host))
				self = j;
		if (self < 0) {
			set_err(err, errlen, "%s: --host %s: no [host %s] (the pair is %s and %s)",
				path, host, host, hosts[0], hosts[1]);
			goto out;
		}
	}
	out->port = (unsigned)port;
	if (dup_into(&out->path, path) < 0 || dup_into(&out->self, hosts[self]) < 0 ||
	    dup_into(&out->peer, hosts[!self]) < 0 ||
	    dup_into(&out->self_address, addr[self]) < 0 ||
	    dup_into(&out->peer_address, addr[!self]) < 0)
		goto nomem;
	return 0;
nomem:
	rc = -ENOMEM;
	set_err(err, errlen, "out of memory");
out:
	conf_pair_free(out);
	return rc;
}

int conf_read_pair(const char *path, const char *host, struct conf_pair *out, char *err,
		   size_t errlen)
{
	struct parse p;
	int rc = load(path, &p, err, errlen);

	if (rc == 0)
		rc = pair_of(path, host, &p, out, err, errlen);
	entries_free(&p);
	return rc;
}

int conf_pair_path(const char *name, char *buf, size_t len)
{
	const char *dir = getenv("HA_CONF_DIR");

	if (!*name || strchr(name, '/'))
		return -EINVAL;
	if ((size_t)snprintf(buf, len, "%s/%s.conf", dir && *dir ? dir : CONF_DIR_DEFAULT,
			     name) >= len)
		return -ENAMETOOLONG;
	return 0;
}

/* The expanded argv under construction. */
struct build {
	struct conf_args *a;
	size_t cap;
};

static int push(struct build *b, const char *arg, const char *path, int line)
{
	struct conf_args *a = b->a;

	if ((size_t)a->argc + 2 > b->cap) {
		size_t cap = b->cap ? 2 * b->cap : 32;
		char **nv = realloc(a->argv, cap * sizeof(*nv));

		if (!nv)
			return -ENOMEM;
		a->argv = nv;
		char **no = realloc(a->origin, cap * sizeof(*no));

		if (!no)
			return -ENOMEM;
		a->origin = no;
		b->cap = cap;
	}
	a->argv[a->argc] = strdup(arg);
	a->origin[a->argc] = NULL;
	if (!a->argv[a->argc])
		return -ENOMEM;
	if (path && asprintf(&a->origin[a->argc], "%s:%d", path, line) < 0) {
		a->origin[a->argc] = NULL;
		free(a->argv[a->argc]);
		return -ENOMEM;
	}
	a->argc++;
	a->argv[a->argc] = NULL;
	a->origin[a->argc] = NULL;
	return 0;
}

static int push_opt(struct build *b, const char *key, const char *value, const char *path,
		    int line)
{
	char *s;
	int rc;

	if (value && asprintf(&s, "--%s=%s", key, value) < 0)
		return -ENOMEM;
	if (!value && asprintf(&s, "--%s", key) < 0)
		return -ENOMEM;
	rc = push(b, s, path, line);
	free(s);
	return rc;
}

static const struct option *find_opt(const struct option *opts, const char *name)
{
	for (; opts->name; opts++)
		if (!strcmp(opts->name, name))
			return opts;
	return NULL;
}

static int yes_no(const char *v)
{
	static const char *const yes[] = {"yes", "true", "on", "1"}, *const no[] = {"no", "false",
										       "off", "0"};

	for (size_t i = 0; i < 4; i++) {
		if (!strcasecmp(v, yes[i]))
			return 1;
		if (!strcasecmp(v, no[i]))
			return 0;
	}
	return -1;
}

/* Keys a pair file may not hold: they select the file or print and exit. */
static bool reserved(const char *k)
{
	return !strcmp(k, "pair") || !strcmp(k, "config") || !strcmp(k, "host") ||
	       !strcmp(k, "help") || !strcmp(k, "version");
}

/* The entries of SECTION as options, in file order. */
static int push_section(struct build *b, const char *prog, const struct option *opts,
			const struct parse *p, const char *path, const char *section)
{
	for (size_t i = 0; i < p->n; i++) {
		const struct entry *e = &p->e[i];
		const struct option *o;
		int rc = 0;

		if (strcmp(e->section, section))
			continue;
		o = reserved(e->key) ? NULL : find_opt(opts, e->key);
		if (!o) {
			fprintf(stderr, "%s: %s:%d: unknown key '%s' in [%s]: %s has no --%s%s\n",
				prog, path, e->line, e->key, section, prog, e->key,
				!strcmp(section, "common") ? " (keys for one daemon alone go in "
							     "[protect] or [receive])"
							   : "");
			return -EINVAL;
		}
		if (o->has_arg == no_argument) {
			int yn = yes_no(e->value);

			if (yn < 0) {
				fprintf(stderr, "%s: %s:%d: %s wants yes or no, not '%s'\n", prog,
					path, e->line, e->key, e->value);
				return -EINVAL;
			}
			if (yn)
				rc = push_opt(b, e->key, NULL, path, e->line);
		} else {
			rc = push_opt(b, e->key, e->value, path, e->line);
		}
		if (rc < 0)
			return rc;
	}
	return 0;
}

/* The line of KEY in [SECTION], for naming where an implied option
 * came from. */
static int line_of(const struct parse *p, const char *section, const char *key)
{
	for (size_t i = p->n; i-- > 0;)
		if (!strcmp(p->e[i].section, section) && !strcmp(p->e[i].key, key))
			return p->e[i].line;
	return 0;
}

static const struct conf_args *in_use;

void conf_use(const struct conf_args *a)
{
	in_use = a;
}

const char *conf_origin(int i)
{
	if (!in_use || i < 0 || i >= in_use->argc)
		return NULL;
	return in_use->origin[i];
}

void conf_args_free(struct conf_args *a)
{
	if (in_use == a)
		in_use = NULL;
	for (int i = 0; a->origin && i < a->argc; i++)
		free(a->origin[i]);
	for (int i = 0; a->have_pair && a->argv && i < a->argc; i++)
		free(a->argv[i]);
	if (a->have_pair) {
		free(a->argv);
		conf_pair_free(&a->pair);
	}
	free(a->origin);
	memset(a, 0, sizeof(*a));
}

/* The value of --NAME or --NAME=VALUE in ARGV (the last one), or NULL. */
static const char *arg_of(int argc, char **argv, const char *name, int *bad)
{
	size_t n = strlen(name);
	const char *v = NULL;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--"))
			break;
		if (strncmp(argv[i], "--", 2) || strncmp(argv[i] + 2, name, n))
			continue;
		if (argv[i][2 + n] == '=')
			v = argv[i] + 3 + n;
		else if (!argv[i][2 + n] && i + 1 < argc)
			v = argv[++i];
		else if (!argv[i][2 + n])
			*bad = 1;
	}
	return v;
}

int conf_expand(const char *prog, enum conf_role role, const struct option *opts, int argc,
		char **argv, struct conf_args *out)
{
	struct build b = {out, 0};
	struct parse p;
	char path[4096], err[512], addr[600], sect[300];
	const char *pair, *file, *host, *colon;
	int bad = 0, rc;

	memset(out, 0, sizeof(*out));
	pair = arg_of(argc, argv, "pair", &bad);
	file = arg_of(argc, argv, "config", &bad);
	host = arg_of(argc, argv, "host", &bad);
	if (!pair && !file) {
		out->argc = argc;
		out->argv = argv;
		out->origin = calloc((size_t)argc + 1, sizeof(*out->origin));
		return out->origin ? 0 : -ENOMEM;
	}
	if (pair && file) {
		fprintf(stderr, "%s: --pair and --config both name a pair file: give one\n", prog);
		return -EINVAL;
	}
	if (pair && conf_pair_path(pair, path, sizeof(path)) < 0) {
		fprintf(stderr, "%s: --pair wants the name of a pair (no '/'), not '%s'\n", prog,
			pair);
		return -EINVAL;
	}
	if (file)
		snprintf(path, sizeof(path), "%s", file);
	out->have_pair = 1; /* OUT owns its argv from here */
	rc = load(path, &p, err, sizeof(err));
	if (rc == 0)
		rc = pair_of(path, host, &p, &out->pair, err, sizeof(err));
	if (rc < 0) {
		fprintf(stderr, "%s: %s\n", prog, err);
		goto out;
	}
	colon = strchr(out->pair.domain, ':');
	rc = push(&b, argv[0], NULL, 0);
	if (rc == 0 && role == CONF_RECEIVE) {
		char backend[16];

		snprintf(addr, sizeof(addr), "%s:%u", out->pair.self_address, out->pair.port);
		snprintf(backend, sizeof(backend), "%.*s", (int)(colon - out->pair.domain),
			 out->pair.domain);
		snprintf(sect, sizeof(sect), "host %s", out->pair.self);
		rc = push_opt(&b, "listen", addr, path, line_of(&p, sect, "address"));
		if (rc == 0)
			rc = push_opt(&b, "backend", backend, path, line_of(&p, "pair", "domain"));
		if (rc == 0)
			rc = push_opt(&b, "domain", colon + 1, path, line_of(&p, "pair", "domain"));
	}
	if (rc == 0)
		rc = push_section(&b, prog, opts, &p, path, "common");
	if (rc == 0)
		rc = push_section(&b, prog, opts, &p, path, role == CONF_PROTECT ? "protect" : "receive");
	for (int i = 1; rc == 0 && i < argc; i++)
		rc = push(&b, argv[i], NULL, 0);
	if (rc == 0 && role == CONF_PROTECT) {
		snprintf(addr, sizeof(addr), "%s:%u", out->pair.peer_address, out->pair.port);
		snprintf(sect, sizeof(sect), "host %s", out->pair.peer);
		rc = push(&b, out->pair.domain, path, line_of(&p, "pair", "domain"));
		if (rc == 0)
			rc = push(&b, addr, path, line_of(&p, sect, "address"));
	}
	if (rc == -ENOMEM)
		fprintf(stderr, "%s: out of memory\n", prog);
out:
	entries_free(&p);
	if (rc < 0)
		conf_args_free(out);
	return rc;
}

void conf_reload_log_level(const char *path, enum conf_role role)
{
	const char *sect = role == CONF_PROTECT ? "protect" : "receive", *v = NULL;
	enum log_level lvl;
	struct parse p;
	char err[512];
	int line = 0;

	if (opt_log_level_fixed()) {
		log_info("reload: the log level stays as the command line set it");
		return;
	}
	if (load(path, &p, err, sizeof(err)) < 0) {
		log_error("reload: %s; the log level stays", err);
		entries_free(&p);
		return;
	}
	for (size_t i = 0; i < p.n; i++)
		if ((!strcmp(p.e[i].section, "common") || !strcmp(p.e[i].section, sect)) &&
		    !strcmp(p.e[i].key, "log-level")) {
			v = p.e[i].value;
			line = p.e[i].line;
		}
	if (!v)
		lvl = LOG_LVL_INFO;
	else if (log_parse_level(v, &lvl) < 0) {
		log_error("reload: %s:%d: log-level wants error, warn, info or debug, not '%s'; "
			  "the log level stays",
			  path, line, v);
		entries_free(&p);
		return;
	}
	log_set_level(lvl);
	log_info("reload: log level %s (%s)", v ? v : "info",
		v ? path : "the default: the pair file sets none");
	entries_free(&p);
}
