/* ha-diskrepl: serves a VM's disk image as an NBD export and mirrors its
 * writes, epoch by epoch, to ha-protect (ha-protect --disk NAME). */
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/ctl.h"
#include "common/log.h"
#include "common/opt.h"
#include "common/report.h"
#include "common/service.h"
#include "common/sock.h"
#include "common/version.h"
#include "diskrepl/nbdsrv.h"
#include "diskrepl/source.h"

static volatile sig_atomic_t stop_flag;

static void on_signal(int sig)
{
	(void)sig;
	stop_flag = 1;
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: ha-diskrepl --name NAME --image FILE [options]\n"
		"Serves FILE (a raw image or a block device) as an NBD export for the VM and\n"
		"mirrors its writes to ha-protect (ha-protect --disk NAME ...), which\n"
		"replicates them to the secondary in step with the memory checkpoints.\n"
		"While nothing is attached, changed regions are tracked so that the next\n"
		"protection resynchronises only those (the first one copies everything).\n"
		"\n"
		"  -n, --name NAME        the disk's name (sockets under /run/ha-diskrepl/)\n"
		"  -f, --image FILE       the disk image\n"
		"      --nbd PATH         the NBD UNIX socket (default /run/ha-diskrepl/NAME.nbd)\n"
		"      --nbd-listen ADDR  also serve NBD on TCP HOST:PORT (no authentication:\n"
		"                         bind it to a trusted address)\n"
		"      --export NAME      the export name (default: the disk's name)\n"
		"      --chunk KIB        resynchronisation granularity (default 64)\n"
		"      --bitmap FILE      keep the change bitmap in FILE, crash-safe, so that a\n"
		"                         restart of ha-diskrepl or of this host resynchronises\n"
		"                         only the changed chunks (without it: the whole disk)\n"
		"      --lineage HEX      FILE is a complete copy of this lineage (32 hex\n"
		"                         digits) as it stands: a replica that holds it too\n"
		"                         gets only what changes from now (ha-receive passes\n"
		"                         it when it serves an activated replica: failback)\n"
		"      --log-level L      error, warn, info or debug (default info)\n"
		"  -v, --verbose          debug logging\n"
		"  -h, --help             this text\n"
		"      --version          release, stream protocol, features\n"
		LOG_USAGE
		"The VM connects with nbd:unix:PATH (ha-vm --disk) or nbd+unix:///NAME?socket=PATH.\n"
		"Status: ha-ctl status disk:NAME.\n");
}

struct server {
	struct source *src;
	struct nbdsrv_export exp;
	char name[64];
};

/* One accepted connection, owned by its thread. */
struct conn {
	struct server *srv;
	int fd;
};

static void *nbd_conn_main(void *arg)
{
	struct conn *c = arg;
	char err[256];
	int rc;

	rc = nbdsrv_serve(c->fd, &c->srv->exp, err, sizeof(err));
	if (rc < 0)
		log_warn("NBD client: %s", err);
	else
		log_debug("NBD client disconnected");
	close(c->fd);
	free(c);
	return NULL;
}

static void *attach_main(void *arg)
{
	struct conn *a = arg;

	source_attach(a->srv->src, a->fd);
	close(a->fd);
	free(a);
	return NULL;
}

static bool trusted(int fd)
{
	uid_t uid;

	return sock_peer_cred(fd, NULL, &uid, NULL) == 0 && (uid == 0 || uid == geteuid());
}

static void spawn(void *(*fn)(void *), struct conn *arg)
{
	pthread_t th;
	pthread_attr_t at;

	pthread_attr_init(&at);
	pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
	if (pthread_create(&th, &at, fn, arg)) {
		log_error("cannot start a thread");
		close(arg->fd);
		free(arg);
	}
	pthread_attr_destroy(&at);
}

static int report(struct server *srv, FILE *out, enum report_fmt fmt)
{
	struct report *r;
	int rc = report_new(out, fmt, "ha_diskrepl", &r);

	if (rc < 0)
		return rc;
	report_label(r, "disk", srv->name);
	report_str(r, "role", "disk");
	source_report(srv->src, r);
	return report_finish(r);
}

static int cmd_status(void *ctx, const char *arg, FILE *out)
{
	struct server *srv = ctx;

	if (!strcmp(arg, "json"))
		return report(srv, out, REPORT_JSON);
	if (*arg) {
		fprintf(out, "error: status takes no argument but json\n");
		return -EINVAL;
	}
	fprintf(out, "role: disk\ndisk: %s\n", srv->name);
	source_status(srv->src, out);
	return 0;
}

static int cmd_metrics(void *ctx, const char *arg, FILE *out)
{
	(void)arg;
	return report(ctx, out, REPORT_PROM);
}

static const struct ctl_cmd disk_cmds[] = {
	{"status", "status [json]", cmd_status},
	{"metrics", "metrics", cmd_metrics},
};

/* Accepts for SRV until a stop: attachments of ha-protect (att_fd), NBD clients on
 * the UNIX socket (nbd_fd, both local, root or our user only) and on TCP
 * (tcp_fd, -1 if none), each on a thread of its own. */
static void accept_loop(struct server *srv, int att_fd, int nbd_fd, int tcp_fd)
{
	while (!stop_flag) {
		struct pollfd p[3] = {{.fd = att_fd, .events = POLLIN},
				      {.fd = nbd_fd, .events = POLLIN},
				      {.fd = tcp_fd, .events = POLLIN}};

		if (poll(p, tcp_fd >= 0 ? 3 : 2, 200) <= 0)
			continue;
		for (int i = 0; i < 3; i++) {
			int fd;

			if (!(p[i].revents & POLLIN))
				continue;
			fd = accept4(p[i].fd, NULL, NULL, SOCK_CLOEXEC);
			if (fd < 0)
				continue;
			if (i < 2 && !trusted(fd)) {
				log_warn("refusing a connection from an unprivileged local user");
				close(fd);
				continue;
			}
			struct conn *cn = malloc(sizeof(*cn));

			if (!cn) {
				close(fd);
				continue;
			}
			*cn = (struct conn){srv, fd};
			if (i == 2)
				sock_tcp_tune(fd);
			spawn(i == 0 ? attach_main : nbd_conn_main, cn);
		}
	}
}

int main(int argc, char **argv)
{
	enum { O_NBD = 256, O_NBD_LISTEN, O_EXPORT, O_CHUNK, O_BITMAP, O_LINEAGE };
	static const struct option opts[] = {
		{"name", required_argument, NULL, 'n'},
		{"image", required_argument, NULL, 'f'},
		{"nbd", required_argument, NULL, O_NBD},
		{"nbd-listen", required_argument, NULL, O_NBD_LISTEN},
		{"export", required_argument, NULL, O_EXPORT},
		{"chunk", required_argument, NULL, O_CHUNK},
		{"bitmap", required_argument, NULL, O_BITMAP},
		{"lineage", required_argument, NULL, O_LINEAGE},
		LOG_OPTIONS,
		{"verbose", no_argument, NULL, 'v'},
		{"help", no_argument, NULL, 'h'},
		{0},
	};
	const char *name = NULL, *image = NULL, *nbd_path = NULL, *nbd_listen = NULL;
	const char *export = NULL, *bitmap = NULL;
	uint8_t lineage[16];
	bool have_lineage = false;
	unsigned long chunk_kib = 64;
	char ctl[108], nbd_default[108], attach[108], err[600];
	/* Static: connection threads may outlive main, and so does the source. */
	static struct server srv;
	struct ctl_commands cmds = {disk_cmds, sizeof(disk_cmds) / sizeof(disk_cmds[0]), &srv,
				    &stop_flag};
	struct ctl_server *cs = NULL;
	int nbd_fd = -1, tcp_fd = -1, att_fd = -1, c, rc = 1;

	if (version_arg(argc, argv, "ha-diskrepl"))
		return 0;

	log_init(argv[0]);
	while ((c = getopt_long(argc, argv, "n:f:vh", opts, NULL)) != -1) {
		switch (c) {
		case 'n':
			name = optarg;
			break;
		case 'f':
			image = optarg;
			break;
		case O_NBD:
			nbd_path = optarg;
			break;
		case O_NBD_LISTEN:
			nbd_listen = optarg;
			break;
		case O_EXPORT:
			export = optarg;
			break;
		case O_BITMAP:
			bitmap = optarg;
			break;
		case O_LINEAGE:
			if (!opt_hex(optarg, lineage, sizeof(lineage))) {
				fprintf(stderr, "ha-diskrepl: --lineage wants 32 hex digits\n");
				return 2;
			}
			have_lineage = true;
			break;
		case O_CHUNK:
			chunk_kib = opt_pow2("ha-diskrepl", "--chunk", optarg, 4, 65536);
			break;
		default:
			if ((c = opt_common(c, usage)) >= 0)
				return c;
		}
	}
	if (!name || !image || optind != argc || strlen(name) > 48 || strchr(name, '/')) {
		fprintf(stderr, "ha-diskrepl: give --name NAME (no '/', at most 48 characters) "
				"and --image FILE\n");
		usage(stderr);
		return 2;
	}
	if (!sock_hostport_option("ha-diskrepl", "--nbd-listen", nbd_listen))
		return 2;
	snprintf(srv.name, sizeof(srv.name), "%s", name);
	log_set_domain(name);
	/* A SIGHUP only says that nothing here reloads; before any thread. */
	service_init(NULL, NULL);
	signal(SIGPIPE, SIG_IGN);
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);

	if (source_open(image, (uint32_t)chunk_kib << 10, bitmap, have_lineage ? lineage : NULL,
			&srv.src, err, sizeof(err)) < 0) {
		log_error("%s", err);
		return 1;
	}
	srv.exp = (struct nbdsrv_export){.name = export ? export : name,
					 .size = source_size(srv.src),
					 .multi_conn = true,
					 .ops = &source_nbd_ops,
					 .ctx = srv.src};

	ctl_path(ctl, sizeof(ctl), "ha-diskrepl", name);
	snprintf(attach, sizeof(attach), "%.*s.attach", (int)(strlen(ctl) - 5), ctl);
	snprintf(nbd_default, sizeof(nbd_default), "%.*s.nbd", (int)(strlen(ctl) - 5), ctl);
	if (!nbd_path)
		nbd_path = nbd_default;
	rc = ctl_server_start(ctl, ctl_dispatch, &cmds, &cs);
	if (rc < 0) {
		log_error("control socket %s: %s%s", ctl, strerror(-rc),
			  rc == -EADDRINUSE ? " (is this disk already served?)" : "");
		rc = 1;
		goto out;
	}
	att_fd = sock_unix_listen(attach, 4);
	nbd_fd = att_fd < 0 ? att_fd : sock_unix_listen(nbd_path, 16);
	if (att_fd < 0 || nbd_fd < 0) {
		log_error("cannot listen on %s: %s", att_fd < 0 ? attach : nbd_path,
			  strerror(-(att_fd < 0 ? att_fd : nbd_fd)));
		rc = 1;
		goto out;
	}
	chmod(nbd_path, 0600);
	chmod(attach, 0600);
	if (nbd_listen) {
		tcp_fd = sock_tcp_listen(nbd_listen, 16);
		if (tcp_fd < 0) {
			log_error("cannot listen on %s: %s", nbd_listen, sock_tcp_strerror(tcp_fd));
			rc = 1;
			goto out;
		}
	}
	log_info("serving %s (%llu MiB) as NBD export '%s' on %s%s%s", image,
		 (unsigned long long)(source_size(srv.src) >> 20), srv.exp.name, nbd_path,
		 nbd_listen ? " and " : "", nbd_listen ? nbd_listen : "");
	service_ready("serving %s as NBD export '%s'", image, srv.exp.name);

	accept_loop(&srv, att_fd, nbd_fd, tcp_fd);
	log_info("stopping");
	source_save(srv.src);
	rc = 0;
out:
	ctl_server_stop(cs);
	if (att_fd >= 0) {
		close(att_fd);
		unlink(attach);
	}
	if (nbd_fd >= 0) {
		close(nbd_fd);
		unlink(nbd_path);
	}
	if (tcp_fd >= 0)
		close(tcp_fd);
	/* Connection threads may still run: the image stays open until exit. */
	return rc;
}
