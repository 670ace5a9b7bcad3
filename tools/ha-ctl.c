/* ha-ctl: talk to the local daemons (ha-protect, ha-receive, ha-diskrepl,
 * ha-witness) through their control sockets. */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <yajl/yajl_tree.h>

#include "common/conf.h"
#include "common/ctl.h"
#include "common/log.h"
#include "common/version.h"
#include "failover/role.h"
#include "hv/hv.h"

/* The daemons, in the order a DOMAIN is looked up. */
static const char *const daemons[] = {"ha-protect", "ha-receive", "ha-diskrepl", "ha-witness"};
#define NDAEMONS (sizeof(daemons) / sizeof(daemons[0]))

static void usage(FILE *f)
{
	fprintf(f,
		"usage: ha-ctl [--ctl PATH] status [--json] DOMAIN|--all\n"
		"       ha-ctl [--ctl PATH] metrics DOMAIN|--all [--output FILE]\n"
		"       ha-ctl list\n"
		"       ha-ctl [--ctl PATH] interval DOMAIN MS|auto\n"
		"       ha-ctl [--ctl PATH] stop DOMAIN\n"
		"       ha-ctl [--ctl PATH] verify DOMAIN\n"
		"       ha-ctl [--ctl PATH] switchover DOMAIN\n"
		"       ha-ctl check PAIR [--as primary|secondary] [--host NAME]\n"
		"       ha-ctl role PAIR [primary|secondary]\n"
		"Talks to ha-protect (primary) or, failing that, ha-receive (secondary)\n"
		"for DOMAIN on this host; DOMAIN disk:NAME is ha-diskrepl's disk NAME,\n"
		"witness the local ha-witness. --all: every daemon of this host.\n"
		"  --json          status as JSON (docs/monitoring.md); with --all, an array\n"
		"  metrics         Prometheus text exposition; with --all, merged\n"
		"  --output FILE   write it to FILE atomically (node_exporter's textfile\n"
		"                  collector)\n"
		"  list            one line per daemon: kind, name, state\n"
		"  verify          (on the primary) the next checkpoint carries a hash of every\n"
		"                  page; the secondary compares its copy page by page and\n"
		"                  reports in its log and status (last_verify)\n"
		"  switchover      (on the primary) hand the domain over to the secondary: the\n"
		"                  next checkpoint is the last here, then the domain is\n"
		"                  stopped here and runs there; ha-protect logs the outcome\n"
		"                  (\"SWITCHOVER complete\", with the downtime) and exits\n"
		"  check           the preflight of pair PAIR (/etc/ha-protect/PAIR.conf) on\n"
		"                  this host: ha-protect --check where the pair's domain runs,\n"
		"                  else ha-receive --check (--as chooses); exit 0 if all passed\n"
		"  role            this host's role in pair PAIR, as its role record keeps it\n"
		"                  ($HA_STATE_DIR/PAIR.role, default /var/lib/ha-protect):\n"
		"                  primary, secondary, or lost (it was primary and lost the\n"
		"                  role). With a role: say so, after making sure the other\n"
		"                  host agrees (ha-protect.conf(5), \"Roles across reboots\");\n"
		"                  refused while ha-protect or ha-receive runs for the pair\n"
		"Exit status: 0 done, 1 the daemon answered \"error: ...\" or none runs\n"
		"for DOMAIN (check: a check failed; role: the record or the pair file\n"
		"cannot be read, the record cannot be written, or a daemon of the pair\n"
		"runs), 2 usage.\n");
}

/* A daemon's control socket, found by listing its run directory. */
struct sock {
	const char *daemon;
	char path[300];
	char name[256]; /* the socket's name without ".sock" */
};

static size_t list_socks(struct sock **out)
{
	struct sock *v = NULL;
	size_t n = 0;

	for (size_t d = 0; d < NDAEMONS; d++) {
		char dir[200];
		struct dirent *e;
		DIR *dp;

		ctl_path(dir, sizeof(dir), daemons[d], "");
		*strrchr(dir, '/') = '\0';
		dp = opendir(dir);
		if (!dp)
			continue;
		while ((e = readdir(dp))) {
			size_t len = strlen(e->d_name);
			struct sock *nv;

			if (len < 6 || strcmp(e->d_name + len - 5, ".sock"))
				continue;
			nv = realloc(v, (n + 1) * sizeof(*v));
			if (!nv)
				break;
			v = nv;
			v[n].daemon = daemons[d];
			snprintf(v[n].path, sizeof(v[n].path), "%s/%s", dir, e->d_name);
			snprintf(v[n].name, sizeof(v[n].name), "%.*s", (int)(len - 5), e->d_name);
			n++;
		}
		closedir(dp);
	}
	*out = v;
	return n;
}

/* The reply to line, in memory (NUL-terminated); rc as ctl_request. */
static int ask(const char *path, const char *line, char **buf)
{
	size_t len;
	FILE *f = open_memstream(buf, &len);
	int rc;

	if (!f)
		return -ENOMEM;
	rc = ctl_request(path, line, f);
	fclose(f);
	return rc;
}

/* Prometheus text from several daemons: families of the same name merged
 * (one HELP and TYPE each, their samples together), in first-seen order. */
struct family {
	char name[200];
	char *head, *body;
	size_t hlen, blen;
	FILE *hf, *bf;
};

static int merge_metrics(char **texts, size_t ntexts, FILE *out)
{
	/* Pointers: open_memstream holds on to each family's head and body. */
	struct family **fam = NULL;
	size_t nfam = 0;
	int rc = 0;

	for (size_t t = 0; t < ntexts; t++) {
		struct family *cur = NULL;
		bool fresh = false; /* cur was created by this block */
		char *save = NULL;

		for (char *l = strtok_r(texts[t], "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
			char name[200];

			if (sscanf(l, "# HELP %199s", name) == 1) {
				cur = NULL;
				for (size_t i = 0; i < nfam; i++)
					if (!strcmp(fam[i]->name, name))
						cur = fam[i];
				fresh = !cur;
				if (!cur) {
					struct family **nf = realloc(fam, (nfam + 1) * sizeof(*fam));

					if (!nf || !(cur = calloc(1, sizeof(*cur))))
						return -ENOMEM;
					fam = nf;
					fam[nfam++] = cur;
					snprintf(cur->name, sizeof(cur->name), "%s", name);
					cur->hf = open_memstream(&cur->head, &cur->hlen);
					cur->bf = open_memstream(&cur->body, &cur->blen);
					if (!cur->hf || !cur->bf)
						return -ENOMEM;
					fprintf(cur->hf, "%s\n", l);
				}
				continue;
			}
			if (!cur)
				continue;
			if (!strncmp(l, "# ", 2)) {
				if (fresh)
					fprintf(cur->hf, "%s\n", l);
				continue;
			}
			fprintf(cur->bf, "%s\n", l);
		}
	}
	for (size_t i = 0; i < nfam; i++) {
		fclose(fam[i]->hf);
		fclose(fam[i]->bf);
		if (fputs(fam[i]->head, out) == EOF || fputs(fam[i]->body, out) == EOF)
			rc = -EIO;
		free(fam[i]->head);
		free(fam[i]->body);
		free(fam[i]);
	}
	free(fam);
	return rc;
}

/* The "state" member of a JSON status, or "?". */
static void json_state(const char *json, char *buf, size_t len)
{
	const char *key[] = {"state", NULL};
	char err[128];
	yajl_val v = yajl_tree_parse(json, err, sizeof(err));
	yajl_val s = v ? yajl_tree_get(v, key, yajl_t_string) : NULL;

	snprintf(buf, len, "%s", s ? YAJL_GET_STRING(s) : "?");
	yajl_tree_free(v);
}

static int cmd_list(void)
{
	struct sock *v;
	size_t n = list_socks(&v);

	for (size_t i = 0; i < n; i++) {
		char *reply = NULL, state[64];
		int rc = ask(v[i].path, "status json", &reply);

		if (rc == 0)
			json_state(reply, state, sizeof(state));
		else
			snprintf(state, sizeof(state), "%s", rc < 0 ? "unreachable" : "error");
		printf("%-12s %-32s %s\n", v[i].daemon, v[i].name, state);
		free(reply);
	}
	free(v);
	return 0;
}

/* status --json --all, metrics --all */
static int cmd_all(const char *line, bool metrics, FILE *out)
{
	struct sock *v;
	size_t n = list_socks(&v), got = 0;
	char **texts = calloc(n ? n : 1, sizeof(*texts));
	int rc = 0;

	if (!texts) {
		free(v);
		return 1;
	}
	for (size_t i = 0; i < n; i++) {
		char *reply = NULL;

		if (ask(v[i].path, line, &reply) == 0)
			texts[got++] = reply;
		else
			free(reply);
	}
	if (metrics) {
		rc = merge_metrics(texts, got, out) < 0;
	} else {
		fputs("[\n", out);
		for (size_t i = 0; i < got; i++)
			fprintf(out, "%s%s", texts[i], i + 1 < got ? ",\n" : "");
		fputs("]\n", out);
	}
	for (size_t i = 0; i < got; i++)
		free(texts[i]);
	free(texts);
	free(v);
	return rc;
}

/* The daemon of DOMAIN: ha-protect, else ha-receive; disk:NAME ha-diskrepl;
 * witness ha-witness. */
static int one(const char *ctl, const char *dom, const char *line, FILE *out)
{
	char path[108];
	int rc;

	if (ctl) {
		rc = ctl_request(ctl, line, out);
		if (rc < 0)
			fprintf(stderr, "ha-ctl: no daemon answers on %s (%s)\n", ctl, strerror(-rc));
		return rc;
	}
	if (!strncmp(dom, "disk:", 5)) {
		ctl_path(path, sizeof(path), "ha-diskrepl", dom + 5);
		rc = ctl_request(path, line, out);
		if (rc < 0)
			fprintf(stderr, "ha-ctl: no ha-diskrepl serving %s on this host (%s)\n",
				dom + 5, strerror(-rc));
		return rc;
	}
	if (!strcmp(dom, "witness")) {
		ctl_path(path, sizeof(path), "ha-witness", "witness");
		rc = ctl_request(path, line, out);
		if (rc < 0)
			fprintf(stderr, "ha-ctl: no ha-witness on this host (%s)\n", strerror(-rc));
		return rc;
	}
	ctl_path(path, sizeof(path), "ha-protect", dom);
	rc = ctl_request(path, line, out);
	if (rc == -ENOENT || rc == -ECONNREFUSED) {
		ctl_path(path, sizeof(path), "ha-receive", dom);
		rc = ctl_request(path, line, out);
	}
	if (rc < 0)
		fprintf(stderr, "ha-ctl: no ha-protect or ha-receive for %s on this host (%s)\n",
			dom, strerror(-rc));
	return rc;
}

/* The daemon PROG: next to ha-ctl, in ../sbin from it (the installed
 * layout), else wherever PATH finds it. */
static void daemon_path(const char *prog, char *buf, size_t len)
{
	char self[4096];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	char *slash;

	snprintf(buf, len, "%s", prog);
	if (n <= 0)
		return;
	self[n] = '\0';
	slash = strrchr(self, '/');
	*slash = '\0';
	snprintf(buf, len, "%s/%s", self, prog);
	if (access(buf, X_OK) == 0)
		return;
	snprintf(buf, len, "%s/../sbin/%s", self, prog);
	if (access(buf, X_OK) == 0)
		return;
	snprintf(buf, len, "%s", prog);
}

/* Whether ha-receive answers for DOMAIN (kvm:NAME) here: its incoming
 * copy is a domain of that name too, and no sign of a primary. */
static bool receiving(const char *domain)
{
	const char *colon = strchr(domain, ':');
	FILE *null = fopen("/dev/null", "w");
	char sock[300];
	bool r;

	ctl_path(sock, sizeof(sock), "ha-receive", colon ? colon + 1 : domain);
	r = null && ctl_request(sock, "status", null) >= 0;
	if (null)
		fclose(null);
	return r;
}

/* check PAIR: runs the preflight of the daemon this host runs for it. */
static int cmd_check(const char *pair, const char *as, const char *host)
{
	char path[4096], err[512], prog[4200];
	struct conf_pair cp;
	const char *role = as;

	if (conf_pair_path(pair, path, sizeof(path)) < 0) {
		fprintf(stderr, "ha-ctl: check wants the name of a pair, not '%s'\n", pair);
		return 2;
	}
	if (conf_read_pair(path, host, &cp, err, sizeof(err)) < 0) {
		printf("FAIL %s\n", err);
		return 1;
	}
	if (!role) {
		/* Where the domain runs, this host is the primary (unless it is
		 * ha-receive's incoming copy). */
		bool runs = !receiving(cp.domain) && hv_domain_here(cp.domain);

		role = runs ? "primary" : "secondary";
		printf("ha-ctl: %s %s on this host (%s): checking it as the %s\n", cp.domain,
		       runs ? "runs" : "does not run", cp.self, role);
		fflush(stdout);
	}
	conf_pair_free(&cp);
	daemon_path(!strcmp(role, "primary") ? "ha-protect" : "ha-receive", prog, sizeof(prog));
	char *args[] = {prog, (char *)"--pair", (char *)pair, (char *)"--check",
			host ? (char *)"--host" : NULL, (char *)host, NULL};

	execv(prog, args);
	fprintf(stderr, "ha-ctl: cannot run %s: %s\n", prog, strerror(errno));
	return 1;
}

/* role PAIR [ROLE]: shows the role record, or writes ROLE into it. */
static int cmd_role(const char *pair, const char *set, const char *host)
{
	char conf[4096], err[512], path[300], name[64], d[400], sock[300];
	struct role_rec rec;
	struct conf_pair cp;
	enum role role;
	int rc;

	if (set && role_parse(set, &role) < 0) {
		fprintf(stderr, "ha-ctl: role wants primary or secondary, not '%s'\n", set);
		return 2;
	}
	if (set && role == ROLE_LOST) {
		fprintf(stderr, "ha-ctl: 'lost' is for the daemons to say; an operator says "
				"primary or secondary\n");
		return 2;
	}
	if (conf_pair_path(pair, conf, sizeof(conf)) < 0 ||
	    role_path(conf, path, sizeof(path), name, sizeof(name)) < 0) {
		fprintf(stderr, "ha-ctl: role wants the name of a pair, not '%s'\n", pair);
		return 2;
	}
	rc = role_load(path, &rec, err, sizeof(err));
	if (rc < 0 && rc != -ENOENT) {
		fprintf(stderr, "ha-ctl: %s%s\n", err,
			set ? "" : "; ha-ctl role PAIR primary (or secondary) writes a new one");
		if (!set)
			return 1;
	}
	if (!set) {
		role_describe(&rec, d, sizeof(d));
		printf("%s: %s\n", path, d);
		/* And what runs here now, for the operator and the OCF agent. */
		if (conf_read_pair(conf, host, &cp, err, sizeof(err)) == 0) {
			if (receiving(cp.domain))
				printf("%s does not run on this host: ha-receive stands by for it\n",
				       cp.domain);
			else
				printf("%s %s on this host\n", cp.domain,
				       hv_domain_here(cp.domain) ? "runs" : "does not run");
			conf_pair_free(&cp);
		} else {
			fprintf(stderr, "ha-ctl: %s\n", err);
			return 1;
		}
		return 0;
	}
	/* A daemon of the pair writes the record itself: it must not run. */
	if (conf_read_pair(conf, host, &cp, err, sizeof(err)) < 0) {
		fprintf(stderr, "ha-ctl: %s\n", err);
		return 1;
	}
	FILE *null = fopen("/dev/null", "w");

	rc = null ? 0 : -errno;
	for (size_t i = 0; i < 2 && rc == 0; i++) {
		/* ha-protect's socket is named by kvm:NAME, ha-receive's by NAME. */
		const char *colon = strchr(cp.domain, ':');

		ctl_path(sock, sizeof(sock), daemons[i], i && colon ? colon + 1 : cp.domain);
		if (ctl_request(sock, "status", null) >= 0) {
			fprintf(stderr, "ha-ctl: %s runs for %s on this host (%s): stop it first\n",
				daemons[i], cp.domain, sock);
			rc = 1;
		}
	}
	if (null)
		fclose(null);
	conf_pair_free(&cp);
	if (rc)
		return 1;
	rc = role_store(path, role, false, "set by the operator: ha-ctl role %s %s", pair, set);
	if (rc < 0) {
		fprintf(stderr, "ha-ctl: cannot write %s: %s\n", path, strerror(-rc));
		return 1;
	}
	rc = role_load(path, &rec, err, sizeof(err));
	role_describe(&rec, d, sizeof(d));
	printf("%s: %s\n", path, rc == 0 ? d : err);
	return rc == 0 ? 0 : 1;
}

int main(int argc, char **argv)
{
	enum { O_CTL = 256, O_JSON, O_ALL, O_OUTPUT, O_AS, O_HOST };
	static const struct option opts[] = {
		{"ctl", required_argument, NULL, O_CTL},
		{"as", required_argument, NULL, O_AS},
		{"host", required_argument, NULL, O_HOST},
		{"json", no_argument, NULL, O_JSON},
		{"all", no_argument, NULL, O_ALL},
		{"output", required_argument, NULL, O_OUTPUT},
		{"help", no_argument, NULL, 'h'},
		{0},
	};
	const char *ctl = NULL, *output = NULL, *cmd, *dom = NULL, *as = NULL, *host = NULL;
	bool json = false, all = false, metrics;
	char line[128], tmp[4200];
	FILE *out = stdout;
	int c, rc;

	if (version_arg(argc, argv, "ha-ctl"))
		return 0;

	/* Options anywhere: "status --json web" as "--json status web". */
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case O_CTL:
			ctl = optarg;
			break;
		case O_JSON:
			json = true;
			break;
		case O_ALL:
			all = true;
			break;
		case O_OUTPUT:
			output = optarg;
			break;
		case O_AS:
			if (strcmp(optarg, "primary") && strcmp(optarg, "secondary")) {
				fprintf(stderr, "ha-ctl: --as wants primary or secondary, not '%s'\n",
					optarg);
				return 2;
			}
			as = optarg;
			break;
		case O_HOST:
			host = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind >= argc) {
		usage(stderr);
		return 2;
	}
	cmd = argv[optind++];
	if (optind < argc)
		dom = argv[optind++];
	metrics = !strcmp(cmd, "metrics");
	if (!strcmp(cmd, "check")) {
		if (!dom || optind != argc || json || all || output || ctl) {
			usage(stderr);
			return 2;
		}
		log_init(argv[0]);
		return cmd_check(dom, as, host);
	}
	if (!strcmp(cmd, "role")) {
		const char *set = optind < argc ? argv[optind++] : NULL;

		if (!dom || optind != argc || json || all || output || ctl || as) {
			usage(stderr);
			return 2;
		}
		log_init(argv[0]);
		return cmd_role(dom, set, host);
	}
	if ((as || host)) {
		usage(stderr);
		return 2;
	}
	if (!strcmp(cmd, "list")) {
		if (dom || json || all || output || ctl) {
			usage(stderr);
			return 2;
		}
		return cmd_list();
	}
	if ((json && strcmp(cmd, "status")) || (output && !metrics) ||
	    (all && ((!metrics && !json) || dom || ctl)) || (!all && !dom && !ctl)) {
		usage(stderr);
		return 2;
	}
	if (!dom)
		dom = "";
	if (!strcmp(cmd, "interval")) {
		if (optind + 1 != argc) {
			usage(stderr);
			return 2;
		}
		snprintf(line, sizeof(line), "interval %s", argv[optind]);
	} else if ((!strcmp(cmd, "verify") || !strcmp(cmd, "switchover")) && optind == argc &&
		   !json) {
		snprintf(line, sizeof(line), "%s", cmd);
	} else if ((!strcmp(cmd, "status") || !strcmp(cmd, "stop") || metrics) && optind == argc) {
		snprintf(line, sizeof(line), "%s%s", cmd, json ? " json" : "");
	} else {
		usage(stderr);
		return 2;
	}
	if (output) {
		snprintf(tmp, sizeof(tmp), "%s.tmp.%d", output, (int)getpid());
		out = fopen(tmp, "w");
		if (!out) {
			fprintf(stderr, "ha-ctl: cannot write %s: %s\n", tmp, strerror(errno));
			return 1;
		}
	}
	rc = all ? cmd_all(line, metrics, out) : one(ctl, dom, line, out);
	if (output) {
		if (fclose(out) != 0 || rc != 0 || rename(tmp, output) < 0) {
			if (rc == 0)
				fprintf(stderr, "ha-ctl: cannot write %s: %s\n", output,
					strerror(errno));
			unlink(tmp);
			return 1;
		}
	}
	return rc < 0 ? 1 : rc; /* 1: the daemon answered "error: ..." */
}
