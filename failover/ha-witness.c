/* ha-witness: grants one lease per protected pair, so that a secondary
 * activates only when the primary can no longer hold it (failover/witness.h).
 * Run it on a third host that both hosts of each pair reach over a path of
 * its own. */
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netdb.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/ctl.h"
#include "common/io.h"
#include "common/log.h"
#include "common/opt.h"
#include "common/report.h"
#include "common/service.h"
#include "common/sock.h"
#include "common/version.h"
#include "failover/reload.h"
#include "failover/tls.h"
#include "failover/witness.h"

static volatile sig_atomic_t stop_flag;

/* Connections are served on threads of their own (at most MAX_CONNS at
 * once), so a client that connects and stays silent delays nobody else.
 * Each gets CONN_MAX_MS in all, handshake included: the accept loop shuts
 * down the socket of one that takes longer (a client trickling its bytes
 * would otherwise hold a slot for minutes), and of every one at exit, so
 * that the lease table outlives them all. */
#define MAX_CONNS 64
#define CONN_MAX_MS 3000
static pthread_mutex_t table_mu = PTHREAD_MUTEX_INITIALIZER;
static const char *state_path; /* --state */

static uint64_t now_ms(void);

/* The control socket (ha-ctl status witness). */
static int cmd_status(void *ctx, const char *arg, FILE *out)
{
	struct fo_lease_table *t = ctx;
	struct report *r;
	int rc;

	if (*arg && strcmp(arg, "json") && strcmp(arg, "metrics")) {
		fprintf(out, "error: status takes no argument but json\n");
		return -EINVAL;
	}
	pthread_mutex_lock(&table_mu);
	if (!*arg) {
		fo_lease_table_status(t, now_ms(), out);
		pthread_mutex_unlock(&table_mu);
		return 0;
	}
	rc = report_new(out, strcmp(arg, "json") ? REPORT_PROM : REPORT_JSON, "ha_witness", &r);
	if (rc == 0) {
		fo_lease_table_report(t, now_ms(), r);
		rc = report_finish(r);
	}
	pthread_mutex_unlock(&table_mu);
	return rc;
}

static int cmd_metrics(void *ctx, const char *arg, FILE *out)
{
	(void)arg;
	return cmd_status(ctx, "metrics", out);
}

static const struct ctl_cmd witness_cmds[] = {
	{"status", "status [json]", cmd_status},
	{"metrics", "metrics", cmd_metrics},
};

/* --pair NAME=HOSTS: who may ask for which lease. */
#define MAX_PAIRS 256
static struct pair_rule {
	char name[FO_WITNESS_NAME_MAX];
	const char *hosts;
} pairs[MAX_PAIRS];
static unsigned npairs;

/* Whether the authenticated peer of S may ask what LINE asks (--pair). */
static bool pair_allowed(const struct fo_tls_session *s, const char *line)
{
	char name[FO_WITNESS_NAME_MAX];

	if (!npairs)
		return true;
	if (!s || sscanf(line, "LEASE %63s", name) != 1)
		return false;
	for (unsigned i = 0; i < npairs; i++)
		if (!strcmp(pairs[i].name, name))
			return fo_tls_session_peer_is(s, pairs[i].hosts);
	return false;
}

static pthread_mutex_t slots_mu = PTHREAD_MUTEX_INITIALIZER;
static struct slot {
	int fd; /* -1: free */
	uint64_t since_ms;
} slots[MAX_CONNS];
static unsigned nconns; /* slots in use, under slots_mu */

struct conn {
	int fd;
	unsigned slot;
	struct fo_tls *tls;
	struct fo_lease_table *t;
	char peer[96];
};

static void on_signal(int sig)
{
	stop_flag = 1;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: ha-witness [options] --listen HOST:PORT\n"
		   "Grants each protected pair's lease to the host that may serve it.\n"
		   "\n"
		   "  -l, --listen ADDR   address to serve on (required)\n"
		   "      --state FILE    where holders, generations and stale marks are kept\n"
		   "                      across restarts (required; written before each\n"
		   "                      reply that changes them)\n"
		   "      --ctl PATH      control socket (default /run/ha-witness/witness.sock):\n"
		   "                      ha-ctl status|metrics witness\n"
		   "      --pair NAME=HOSTS  with certificates: only HOSTS (comma-separated\n"
		   "                      certificate names) may ask for pair NAME's lease;\n"
		   "                      once given, pairs not named are refused (repeat\n"
		   "                      for each pair)\n"
		   "      --max-ttl MS    longest lease granted, and how long nothing is\n"
		   "                      granted after a start (default 10000)\n"
		   "      --log-level L   error, warn, info or debug (default info)\n"
		   "  -v, --verbose       log every request\n"
		   "  -h, --help          this text\n"
		   "      --version       release, stream protocol, features\n"
		LOG_USAGE
		   "Link security (the same settings as the pairs it serves; one "
		   "required):\n" FO_TLS_USAGE);
}

static uint64_t now_ms(void)
{
	return clk_now_ns() / NSEC_PER_MSEC;
}

/* Where this run's generations start: the wall clock in ms, times 1000.
 * A lease changes holder at most once per FO_WITNESS_TTL_MIN ms, so an
 * earlier run never counts up to a later run's base. */
static uint64_t gen_base(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return ((uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000) * 1000;
}

/* One request per connection; a slow or silent client is cut off after a
 * second. */
static void serve(int fd, struct fo_tls *tls, struct fo_lease_table *t, const char *peer)
{
	struct timeval tv = {.tv_sec = 1};
	struct fo_tls_session *s = NULL;
	char line[256], reply[256], err[320] = "";
	size_t n = 0;
	int rc = 0;
	uint64_t t0 = now_ms();

	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (tls) {
		rc = fo_tls_handshake(tls, fd, &s, err, sizeof(err));
		if (rc < 0) {
			log_warn("refusing %s: %s", peer, err);
			return;
		}
	}
	while (n < sizeof(line) - 1) {
		ssize_t r = s ? fo_tls_read(s, line + n, 1) : io_read_full(fd, line + n, 1);

		if (r <= 0) {
			rc = r < 0 ? (int)r : -EPIPE;
			break;
		}
		if (line[n] == '\n')
			break;
		n++;
	}
	line[n] = '\0';
	if (rc < 0 && now_ms() - t0 >= CONN_MAX_MS) {
		log_warn("%s: no complete request within %d ms: cut off", peer, CONN_MAX_MS);
		goto out;
	} else if (rc < 0) {
		log_warn("%s: no complete request (%s)", peer, strerror(-rc));
		goto out;
	}
	if (!pair_allowed(s, line)) {
		/* Authenticated, but not one of the pair's hosts (--pair). */
		log_warn("refusing %s (%s): it is not a host of the pair it asks for", peer,
			 s ? fo_tls_session_desc(s) : "plain TCP");
		snprintf(reply, sizeof(reply), "ERROR this host may not ask for that pair\n");
		struct iovec iov = {reply, strlen(reply)};

		if (s)
			fo_tls_writev(s, &iov, 1);
		goto out;
	}
	pthread_mutex_lock(&table_mu);
	int what = fo_lease_handle(t, line, now_ms(), reply, sizeof(reply));
	/* What a reply grants or marks must survive a restart of this witness
	 * before anyone acts on it. A save that fails answers ERROR: the
	 * asker gets nothing, and the table (already changed) only denies
	 * the other host, which is safe. */
	if (fo_lease_table_changed(t) &&
	    fo_lease_table_save(t, state_path, err, sizeof(err)) < 0) {
		log_error("%s: %s; refusing the request", peer, err);
		snprintf(reply, sizeof(reply), "ERROR the witness cannot record its state\n");
		what = FO_LEASE_ERROR;
	}
	pthread_mutex_unlock(&table_mu);
	struct iovec iov = {reply, strlen(reply)};
	rc = s ? fo_tls_writev(s, &iov, 1) : io_writev_full(fd, &iov, 1);
	reply[strcspn(reply, "\n")] = '\0';
	if (what == FO_LEASE_NEW_HOLDER || what == FO_LEASE_DENIED || what == FO_LEASE_ERROR)
		log_info("%s: %s -> %s", peer, line, reply);
	else
		log_debug("%s: %s -> %s", peer, line, reply);
	if (rc < 0)
		log_warn("%s: the reply was not delivered: %s", peer, strerror(-rc));
out:
	fo_tls_session_free(s);
}

/* The socket is closed only once its slot is free, so the accept loop
 * never shuts down a descriptor number that was reused meanwhile. */
static void *conn_main(void *arg)
{
	struct conn *c = arg;

	serve(c->fd, c->tls, c->t, c->peer);
	pthread_mutex_lock(&slots_mu);
	slots[c->slot].fd = -1;
	nconns--;
	pthread_mutex_unlock(&slots_mu);
	close(c->fd);
	free(c);
	return NULL;
}

/* Takes a free slot for fd; false if all are in use. */
static bool slot_take(int fd, unsigned *out)
{
	bool ok = false;

	pthread_mutex_lock(&slots_mu);
	for (unsigned i = 0; i < MAX_CONNS && !ok; i++) {
		if (slots[i].fd < 0) {
			slots[i] = (struct slot){.fd = fd, .since_ms = now_ms()};
			nconns++;
			*out = i;
			ok = true;
		}
	}
	pthread_mutex_unlock(&slots_mu);
	return ok;
}

static void slot_drop(unsigned i)
{
	pthread_mutex_lock(&slots_mu);
	slots[i].fd = -1;
	nconns--;
	pthread_mutex_unlock(&slots_mu);
}

/* Cuts off the connections older than CONN_MAX_MS (all: every one) and
 * returns how many are still being served. */
static unsigned slots_reap(bool all)
{
	uint64_t now = now_ms();
	unsigned n;

	pthread_mutex_lock(&slots_mu);
	for (unsigned i = 0; i < MAX_CONNS; i++)
		if (slots[i].fd >= 0 && (all || now - slots[i].since_ms > CONN_MAX_MS))
			shutdown(slots[i].fd, SHUT_RDWR);
	n = nconns;
	pthread_mutex_unlock(&slots_mu);
	return n;
}

/* Accepts on lfd until a stop, one detached thread per connection, at most
 * MAX_CONNS at a time (the slots). */
static void accept_loop(int lfd, struct fo_tls *tls, struct fo_lease_table *t)
{
	while (!stop_flag) {
		struct pollfd pfd = {.fd = lfd, .events = POLLIN};
		struct sockaddr_storage ss;
		socklen_t sl = sizeof(ss);
		char host[64] = "?", serv[16] = "", peer[96];
		int fd;

		slots_reap(false);
		if (poll(&pfd, 1, 200) <= 0)
			continue;
		fd = accept4(lfd, (struct sockaddr *)&ss, &sl, SOCK_CLOEXEC);
		if (fd < 0)
			continue;
		getnameinfo((struct sockaddr *)&ss, sl, host, sizeof(host), serv, sizeof(serv),
			    NI_NUMERICHOST | NI_NUMERICSERV);
		snprintf(peer, sizeof(peer), "%s:%s", host, serv);
		struct conn *cn = calloc(1, sizeof(*cn));
		pthread_attr_t attr;
		pthread_t th;

		if (!cn || !slot_take(fd, &cn->slot)) {
			log_warn("refusing %s: %d connections are being served", peer, MAX_CONNS);
			free(cn);
			close(fd);
			continue;
		}
		cn->fd = fd;
		cn->tls = tls;
		cn->t = t;
		snprintf(cn->peer, sizeof(cn->peer), "%s", peer);
		pthread_attr_init(&attr);
		pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
		if (pthread_create(&th, &attr, conn_main, cn)) {
			slot_drop(cn->slot);
			close(fd);
			free(cn);
		}
		pthread_attr_destroy(&attr);
	}
}

int main(int argc, char **argv)
{
	enum { O_MAXTTL = 256, O_STATE, O_PAIR, O_CTL };
	static const struct option opts[] = {
	    {"listen", required_argument, NULL, 'l'},
	    {"pair", required_argument, NULL, O_PAIR},
	    {"state", required_argument, NULL, O_STATE},
	    {"ctl", required_argument, NULL, O_CTL},
	    {"max-ttl", required_argument, NULL, O_MAXTTL},
	    FO_TLS_OPTIONS,
	    LOG_OPTIONS,
	    {"verbose", no_argument, NULL, 'v'},
	    {"help", no_argument, NULL, 'h'},
	    {0},
	};
	struct fo_tls_config tc = {0};
	struct fo_tls *tls = NULL;
	struct fo_reload reload;
	struct fo_lease_table *t = NULL;
	const char *listen = NULL, *ctl = NULL;
	struct ctl_server *cs = NULL;
	struct ctl_commands cmds = {witness_cmds, sizeof(witness_cmds) / sizeof(witness_cmds[0]),
				    NULL, &stop_flag};
	char ctl_default[108];
	bool insecure = false;
	unsigned long max_ttl = 10000;
	char err[320];
	int c, lfd, rc = 1;

	if (version_arg(argc, argv, "ha-witness"))
		return 0;

	log_init(argv[0]);
	while ((c = getopt_long(argc, argv, "l:vh", opts, NULL)) != -1) {
		if (fo_tls_option(c, optarg, &tc, &insecure))
			continue;
		switch (c) {
		case 'l':
			listen = optarg;
			break;
		case O_CTL:
			ctl = optarg;
			break;
		case O_PAIR: {
			const char *eq = strchr(optarg, '=');

			if (!eq || eq == optarg || (size_t)(eq - optarg) >= FO_WITNESS_NAME_MAX ||
			    !eq[1] || npairs == MAX_PAIRS) {
				fprintf(stderr, "ha-witness: --pair wants NAME=HOST[,HOST...], not "
						"'%s' (at most %d)\n",
					optarg, MAX_PAIRS);
				return 2;
			}
			memcpy(pairs[npairs].name, optarg, (size_t)(eq - optarg));
			pairs[npairs++].hosts = eq + 1;
			break;
		}
		case O_STATE:
			state_path = optarg;
			break;
		case O_MAXTTL:
			max_ttl = opt_ulong("ha-witness", "--max-ttl", optarg, FO_WITNESS_TTL_MIN,
					    3600000);
			break;
		default:
			if ((c = opt_common(c, usage)) >= 0)
				return c;
		}
	}
	if (!listen || optind != argc) {
		fprintf(stderr, "ha-witness: --listen HOST:PORT is required, and nothing else\n");
		usage(stderr);
		return 2;
	}
	if (!sock_hostport_option("ha-witness", "--listen", listen))
		return 2;
	if (!state_path || !*state_path) {
		fprintf(stderr, "ha-witness: --state FILE is required: without it a restarted "
				"witness forgets every lease, so each protected primary sees a new "
				"generation and counts itself superseded\n");
		return 2;
	}
	if (fo_tls_setup(&tc, insecure, true, &tls, err, sizeof(err)) < 0) {
		fprintf(stderr, "ha-witness: %s\n", err);
		return 2;
	}
	if (npairs && (!tc.cert || !tls)) {
		fprintf(stderr, "ha-witness: --pair names the hosts' certificates: it needs "
				"--tls-cert, --tls-key and --tls-ca\n");
		fo_tls_free(tls);
		return 2;
	}
	reload = (struct fo_reload){NULL, CONF_PROTECT, {tls, NULL}, {"the witness", NULL}};
	/* SIGHUP reloads the TLS files; before any thread starts. */
	service_init(fo_reload, &reload);
	signal(SIGPIPE, SIG_IGN);
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	if (fo_lease_table_new(now_ms(), (unsigned)max_ttl, gen_base(), &t) < 0)
		goto out;
	rc = fo_lease_table_load(t, state_path, err, sizeof(err));
	if (rc == -ENOENT) {
		log_info("no state in %s yet: starting with no leases", state_path);
	} else if (rc < 0) {
		log_error("%s: move it away to start with no leases (each protected primary then "
			  "sees a new generation and counts itself superseded)",
			  err);
		rc = 1;
		goto out;
	}
	if (!ctl) {
		ctl_path(ctl_default, sizeof(ctl_default), "ha-witness", "witness");
		ctl = ctl_default;
	}
	cmds.ctx = t;
	rc = ctl_server_start(ctl, ctl_dispatch, &cmds, &cs);
	if (rc < 0) {
		log_error("control socket %s: %s%s", ctl, strerror(-rc),
			  rc == -EADDRINUSE ? " (does another ha-witness run here? give it --ctl)"
					    : "");
		rc = 1;
		goto out;
	}
	rc = 1;
	lfd = sock_tcp_listen(listen, 16);
	if (lfd < 0) {
		log_error("cannot listen on %s: %s", listen, sock_tcp_strerror(lfd));
		goto out;
	}
	log_info("witness on %s (%s); granting leases of up to %lu ms from %lu ms after start",
		 listen, tls ? fo_tls_mode(tls) : "plain TCP, --insecure", max_ttl, max_ttl);
	service_ready("witness on %s", listen);
	if (!tls)
		log_unsafe("--insecure: anyone who reaches %s can take a pair's lease and so "
			   "start a second copy of its domain",
			   listen);
	for (unsigned i = 0; i < MAX_CONNS; i++)
		slots[i].fd = -1;
	accept_loop(lfd, tls, t);
	/* Cut off the connections in flight and wait until each thread has
	 * let go of the table and the TLS context, which go next. A thread
	 * whose socket is shut down returns at its next read or write. */
	while (slots_reap(true))
		usleep(10000);
	close(lfd);
	log_info("stopped");
	rc = 0;
out:
	ctl_server_stop(cs);
	fo_lease_table_free(t);
	fo_tls_free(tls);
	return rc;
}
