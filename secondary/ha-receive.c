/* ha-receive: the secondary. Receives checkpoints, commits, acknowledges,
 * and resumes the domain here when the primary is lost. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/conf.h"
#include "common/log.h"
#include "common/opt.h"
#include "common/service.h"
#include "common/sock.h"
#include "common/version.h"
#include "failover/preflight.h"
#include "failover/reload.h"
#include "failover/role.h"
#include "failover/tls.h"
#include "hv/hv.h"
#include "secondary/receive.h"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: ha-receive [options] --listen HOST:PORT\n"
		"Waits for ha-protect on the primary, keeps the domain's last committed\n"
		"checkpoint, and resumes the domain here when the primary is lost.\n"
		"\n"
		"  -l, --listen ADDR        address to accept the primary on (required)\n"
		"      --backend KIND       hypervisor backend for the incoming domain: kvm\n"
		"                           (default) or xen\n"
		"      --timeout MS         down timer for the primary (default 500)\n"
		"      --postcopy-stall MS  a migration's postcopy fails when the domain waits\n"
		"                           longer for a page (default 10000)\n"
		"      --max-checkpoint MB  memory bound of one buffered checkpoint (1024)\n"
		"      --domain NAME        serve only the domain NAME: its control socket\n"
		"                           exists from the start (ha-ctl status NAME), and a\n"
		"                           primary of another domain is refused\n"
		"Configuration (man/ha-protect.conf.5; the file gives --listen, --backend\n"
		"and --domain):\n"
		CONF_USAGE
		"      --ctl PATH           control socket (default /run/ha-receive/NAME.sock,\n"
		"                           made when the first primary names the domain)\n"
		"      --once               exit when the first primary goes away\n"
		"      --restore FILE       no primary: read the stream from FILE (written by\n"
		"                           ha-protect --save) and run its last complete\n"
		"                           checkpoint here; exit 0 once the domain runs\n"
		"      --save-file OUT      with --restore: write that checkpoint to OUT\n"
		"                           instead, as the toolstack saves a domain (xen:\n"
		"                           a file xl restore reads; mode 0600)\n"
		"      --check              check the configuration and this host (the port,\n"
		"                           the backend, no copy of the domain running, the\n"
		"                           replicas, the witness, the fence command), one\n"
		"                           line each, then exit: 0 if all passed, else 1\n"
		"      --disk IMAGE[,journal=PATH][,serve=NAME][,bitmap=FILE]\n"
		"                           the replica of the primary's next replicated disk\n"
		"                           (repeat in ha-protect's --disk order); its journal\n"
		"                           defaults to IMAGE.journal. The resumed domain's\n"
		"                           first disk is the first replica; with serve=NAME,\n"
		"                           through ha-diskrepl's export NAME, started at\n"
		"                           activation, so that this host can protect it in\n"
		"                           turn (ha-protect --disk NAME: failback). bitmap=:\n"
		"                           the bitmap file of IMAGE's ha-diskrepl when IMAGE\n"
		"                           was the primary's disk: a failback then copies only\n"
		"                           the chunks that differ (and serve= keeps it)\n"
		"      --journal-limit MB   compact a journal past this size (default 64)\n"
		"      --drbd RES           a disk is DRBD resource RES (or /dev/drbdN),\n"
		"                           Secondary here (ha-protect --disk drbd:RES):\n"
		"                           promoted on failover, before activation; with no\n"
		"                           --disk, the resumed domain's disk is its device\n"
		"      --fence-cmd CMD      before activating, run CMD (/bin/sh -c) to make\n"
		"                           sure the primary is off; exit 0 = fenced. Without\n"
		"                           it a network partition can leave two copies running\n"
		"      --fence-timeout MS   kill the fence command after MS (default 30000)\n"
		"      --fence-retry MS     retry a failed fence after MS (default 5000)\n"
		"      --notify-cmd CMD     run /bin/sh -c CMD on each event (protected,\n"
		"                           primary-lost, fence-failed, failover-started,\n"
		"                           failover-complete, failover-failed,\n"
		"                           failover-refused), with HA_EVENT, HA_DOMAIN, ...\n"
		"                           in its environment (docs/monitoring.md)\n"
		"      --notify-timeout MS  kill a hook after MS (default 10000)\n"
		"      --ext-device PATH    an external device: the executable PATH is called\n"
		"                           with PHASE failover DOMAIN PEER EPOCH (check,\n"
		"                           prepare, transfer, commit) before a failover\n"
		"                           activates the copy; one that fails rolls back the\n"
		"                           others and the copy does not run; repeat for\n"
		"                           each, in order (docs/devices.md)\n"
		"      --ext-device-timeout MS  kill a device's call after MS: a failure\n"
		"                           (default 10000)\n"
		"      --witness HOST:PORT  activate only with the pair's lease from this\n"
		"                           ha-witness (same TLS settings as the link)\n"
		"      --witness-ttl MS     the lease asked for (default 2000; as ha-protect)\n"
		"      --witness-peer NAMES with certificates: the witness's must be for one of\n"
		"                           NAMES (as --tls-peer for the link)\n"
		"Replication link security (one of these is required):\n"
		FO_TLS_USAGE
		"      --log-level L        error, warn, info or debug (default info)\n"
		"  -v, --verbose            debug logging\n"
		"  -h, --help               this text\n"
		"      --version            release, stream protocol, features\n"
		LOG_USAGE
		"Backend options for the incoming domain come from the environment of the\n"
		"backend (kvm: HA_VM_ARGS, e.g. \"--tap tap0\", passed to ha-vm; xen:\n"
		"HA_XEN_SAVE_DIR for the restore image (default /tmp), HA_XEN_CONFIG=FILE, an\n"
		"xl config when the primary sends none, HA_XEN_XL for the xl binary,\n"
		"HA_XEN_RESTORE_FILE=1 to write the image to a file before xl restore\n"
		"instead of streaming it).\n"
		"Exit status: 0 stopped, no failover; 1 an error; 2 a usage or configuration\n"
		"error; 3 failed over: the domain runs on this host now; 5 the pair's role\n"
		"record says this host is the primary (ha-ctl role).\n"
		"With a pair file, this host's role in the pair is kept in\n"
		"$HA_STATE_DIR/NAME.role (default /var/lib/ha-protect; see ha-ctl role).\n");
}

static void on_signal(int sig)
{
	rx_request_stop();
}

#define P "ha-receive"

static bool check_only; /* --check */

/* ha-receive's options; a pair file's keys are their long names. */
enum { O_TIMEOUT = 256, O_PC_STALL, O_MAX, O_CTL, O_ONCE, O_RESTORE, O_SAVE_FILE, O_BACKEND, O_DISK, O_DRBD, O_JLIMIT, O_FENCE,
       O_FTIMEOUT, O_FRETRY, O_WITNESS, O_WTTL, O_WPEER, O_NOTIFY, O_NOTIFY_TO, O_DOMAIN,
       O_CHECK, O_EXTDEV, O_EXTDEV_TO };
static const struct option opts[] = {
	CONF_OPTIONS,
	{"listen", required_argument, NULL, 'l'},
	{"backend", required_argument, NULL, O_BACKEND},
	{"timeout", required_argument, NULL, O_TIMEOUT},
	{"postcopy-stall", required_argument, NULL, O_PC_STALL},
	{"max-checkpoint", required_argument, NULL, O_MAX},
	{"ctl", required_argument, NULL, O_CTL},
	{"once", no_argument, NULL, O_ONCE},
	{"restore", required_argument, NULL, O_RESTORE},
	{"save-file", required_argument, NULL, O_SAVE_FILE},
	{"check", no_argument, NULL, O_CHECK},
	{"disk", required_argument, NULL, O_DISK},
	{"drbd", required_argument, NULL, O_DRBD},
	{"journal-limit", required_argument, NULL, O_JLIMIT},
	{"fence-cmd", required_argument, NULL, O_FENCE},
	{"fence-timeout", required_argument, NULL, O_FTIMEOUT},
	{"notify-cmd", required_argument, NULL, O_NOTIFY},
	{"domain", required_argument, NULL, O_DOMAIN},
	{"notify-timeout", required_argument, NULL, O_NOTIFY_TO},
	{"fence-retry", required_argument, NULL, O_FRETRY},
	{"witness", required_argument, NULL, O_WITNESS},
	{"witness-ttl", required_argument, NULL, O_WTTL},
	{"witness-peer", required_argument, NULL, O_WPEER},
	{"ext-device", required_argument, NULL, O_EXTDEV},
	{"ext-device-timeout", required_argument, NULL, O_EXTDEV_TO},
	FO_TLS_OPTIONS,
	LOG_OPTIONS,
	{"verbose", no_argument, NULL, 'v'},
	{"help", no_argument, NULL, 'h'},
	{0},
};

/* Reads the options: -1 to go on, else the exit status (0 for --help, 2
 * for a usage error, said on stderr). */
static int parse(int argc, char **argv, struct rx_config *cfg, struct fo_tls_config *tlscfg,
		 bool *insecure, const char **backend, const char **witness_peer)
{
	int c, rc;

	while ((c = getopt_long(argc, argv, "l:vh", opts, NULL)) != -1) {
		if (fo_tls_option(c, optarg, tlscfg, insecure))
			continue;
		switch (c) {
		case 'l':
			cfg->listen = optarg;
			break;
		case O_BACKEND:
			*backend = optarg;
			break;
		case O_DISK: {
			char *o = strchr(optarg, ',');

			if (cfg->ndisks == CKPT_DISK_MAX) {
				fprintf(stderr, "ha-receive: at most %u disks\n", CKPT_DISK_MAX);
				return 2;
			}
			/* IMAGE[,journal=PATH][,serve=NAME] */
			while (o) {
				char *next = strchr(o + 1, ',');

				*o++ = '\0';
				if (next)
					*next = '\0';
				if (!strncmp(o, "journal=", 8) && o[8]) {
					cfg->journals[cfg->ndisks] = o + 8;
				} else if (!strncmp(o, "serve=", 6) && o[6] && !strchr(o + 6, '/')) {
					cfg->serve[cfg->ndisks] = o + 6;
				} else if (!strncmp(o, "bitmap=", 7) && o[7]) {
					cfg->bitmaps[cfg->ndisks] = o + 7;
				} else {
					fprintf(stderr, "ha-receive: --disk %s: '%s' is not journal=PATH, "
							"serve=NAME or bitmap=FILE\n",
						optarg, o);
					return 2;
				}
				o = next;
				if (next)
					*next = ',';
			}
			if (!*optarg) {
				fprintf(stderr, "ha-receive: --disk wants an image path\n");
				return 2;
			}
			cfg->disks[cfg->ndisks++] = optarg;
			break;
		}
		case O_DRBD:
			if (cfg->ndrbd == CKPT_DISK_MAX) {
				fprintf(stderr, "ha-receive: at most %u DRBD resources\n", CKPT_DISK_MAX);
				return 2;
			}
			cfg->drbd[cfg->ndrbd++] = optarg;
			break;
		case O_FENCE:
			if (!*optarg) {
				fprintf(stderr, "ha-receive: --fence-cmd wants a command\n");
				return 2;
			}
			cfg->fence_cmd = optarg;
			break;
		case O_WITNESS:
			cfg->witness = optarg;
			break;
		case O_FTIMEOUT:
			cfg->fence_timeout_ms = opt_uint(P, "--fence-timeout", optarg, 10, 3600000);
			break;
		case O_NOTIFY:
			cfg->notify_cmd = optarg;
			break;
		case O_NOTIFY_TO:
			cfg->notify_timeout_ms = opt_uint(P, "--notify-timeout", optarg, 100, 600000);
			break;
		case O_FRETRY:
			cfg->fence_retry_ms = opt_uint(P, "--fence-retry", optarg, 10, 3600000);
			break;
		case O_WPEER:
			*witness_peer = optarg;
			break;
		case O_EXTDEV:
			if (cfg->n_ext == EXTDEV_MAX) {
				fprintf(stderr, "ha-receive: at most %u --ext-device\n", EXTDEV_MAX);
				return 2;
			}
			cfg->ext[cfg->n_ext++] = optarg;
			break;
		case O_EXTDEV_TO:
			cfg->ext_timeout_ms = opt_uint(P, "--ext-device-timeout", optarg, 10, 3600000);
			break;
		case O_WTTL:
			cfg->witness_ttl_ms = opt_uint(P, "--witness-ttl", optarg, 10, 3600000);
			break;
		case O_PC_STALL:
			cfg->postcopy_stall_ms = opt_uint(P, "--postcopy-stall", optarg, 10, 3600000);
			break;
		case O_TIMEOUT:
			cfg->timeout_ms = opt_uint(P, "--timeout", optarg, 20, 600000);
			break;
		case O_JLIMIT:
			cfg->journal_limit =
			    (unsigned long long)opt_ulong(P, "--journal-limit", optarg, 1, 600000) << 20;
			break;
		case O_MAX:
			cfg->max_ckpt_bytes = (size_t)opt_ulong(P, "--max-checkpoint", optarg, 1, 600000)
					     << 20;
			break;
		case O_CTL:
			cfg->ctl_path = optarg;
			break;
		case O_DOMAIN:
			cfg->domain = optarg;
			break;
		case O_ONCE:
			cfg->once = true;
			break;
		case O_RESTORE:
			cfg->restore_path = optarg;
			break;
		case O_SAVE_FILE:
			cfg->save_file = optarg;
			break;
		case O_CHECK:
			check_only = true;
			break;
		case CONF_OPT_PAIR:
		case CONF_OPT_CONFIG:
		case CONF_OPT_HOST:
			break; /* read by conf_expand() */
		default:
			rc = opt_common(c, usage);
			if (rc >= 0)
				return rc;
		}
	}
	return -1;
}

/* The options' combinations: -1 to go on, or 2 (a usage error, said). */
static int check(int argc, const struct rx_config *cfg, const char *witness_peer)
{
	if (cfg->save_file && !cfg->restore_path) {
		fprintf(stderr, "ha-receive: --save-file needs --restore FILE\n");
		return 2;
	}
	if (cfg->restore_path && (cfg->listen || optind != argc)) {
		fprintf(stderr, "ha-receive: --restore FILE takes no --listen, and nothing else\n");
		return 2;
	}
	if (cfg->restore_path)
		return -1;
	if (!cfg->listen || optind != argc) {
		fprintf(stderr, "ha-receive: --listen HOST:PORT is required, and nothing else\n");
		usage(stderr);
		return 2;
	}
	if (!sock_hostport_option("ha-receive", "--listen", cfg->listen) ||
	    !sock_hostport_option("ha-receive", "--witness", cfg->witness))
		return 2;
	if (witness_peer && !cfg->witness) {
		fprintf(stderr, "ha-receive: --witness-peer needs --witness\n");
		return 2;
	}
	if (cfg->n_ext) {
		/* The devices are built per failover (the domain and the peer are
		 * the session's); their paths are checked now. */
		struct extdev *xd;
		char err[300];

		if (extdev_new(cfg->ext, cfg->n_ext, cfg->ext_timeout_ms, "-", "-", &xd, err,
			       sizeof(err)) < 0) {
			fprintf(stderr, "ha-receive: %s\n", err);
			return 2;
		}
		extdev_free(xd);
	}
	return -1;
}

/* The role record of the pair file PAIR_FILE (failover/role.h) into PATH,
 * PAIR and REC: 0 when it lets this host stand by for SPEC
 * (backend:NAME), else -EPERM with what to do in WHY. A record that says
 * primary refuses only while the domain runs here: where it does not, the
 * other host runs it, and this one may hold its copy. */
static int role_check(const char *pair_file, const char *spec, char *path, size_t len, char *pair,
		      size_t pairlen, struct role_rec *rec, char *why, size_t whylen)
{
	if (role_open(pair_file, "secondary (or primary)", path, len, pair, pairlen, rec, why,
		      whylen) < 0)
		return -EPERM;
	if (role_verdict(rec, false, pair, why, whylen) == ROLE_GO)
		return 0;
	return rec->role == ROLE_PRIMARY && !hv_domain_here(spec) ? 0 : -EPERM;
}

/* Records ROLE with its reason in the role record at PATH, or says why not. */
static void role_note(const char *path, enum role role, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void role_note(const char *path, enum role role, const char *fmt, ...)
{
	char why[200];
	va_list ap;
	int rc;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	rc = role_store(path, role, false, "%s", why);
	if (rc < 0)
		log_error("cannot write the role record %s (%s, %s): %s", path, role_name(role),
			  why, strerror(-rc));
	else
		log_info("role record %s: %s (%s)", path, role_name(role), why);
}

/* What a copy of SPEC (backend:NAME) needs on this host, as far as this
 * host's configuration of it tells. */
static void check_needs(struct pf *p, const struct hv_restore_ops *ops, const char *spec,
			const char *name)
{
	struct hv_needs n;
	char err[400];

	if (!ops || !ops->needs)
		return;
	if (ops->needs(name, &n, err, sizeof(err)) < 0) {
		pf_fail(p, "the configuration of %s here: %s", spec, err);
		return;
	}
	if (!n.source[0] && !strncmp(spec, "xen:", 4))
		pf_warn(p, "no xl configuration of %s on this host (HA_XEN_CONFIG, /etc/xen/%s.cfg "
			   "or /etc/xen/%s): the bridges and the memory it needs here are not "
			   "checked; keep a copy of the primary's",
			spec, name, name);
	pf_needs(p, &n, spec);
}

/* --check: what standing by needs, checked without standing by. */
static int preflight(const struct rx_config *cfg, const char *backend, const char *pair_file)
{
	char spec[128];
	const char *name;
	const struct hv_ops *save;
	struct pf p = {0};
	int fd;

	pf_ok(&p, "%s%s: listening on %s for %s", pair_file ? "pair file " : "options",
	      pair_file ? pair_file : "", cfg->listen, cfg->domain ? cfg->domain : "any domain");
	if (pair_file) {
		char path[300], pair[64], why[700];
		struct role_rec rec;

		snprintf(spec, sizeof(spec), "%s:%s", backend, cfg->domain ? cfg->domain : "");
		if (role_check(pair_file, spec, path, sizeof(path), pair, sizeof(pair), &rec, why,
			       sizeof(why)) < 0) {
			pf_fail(&p, "role record %s: %s", path, why);
		} else {
			role_describe(&rec, why, sizeof(why));
			pf_ok(&p, "role record %s: %s", path, why);
		}
	}
	pf_link(&p, cfg->tls);
	fd = sock_tcp_listen(cfg->listen, 1);
	if (fd < 0)
		pf_fail(&p, "port %s: %s%s", cfg->listen, sock_tcp_strerror(fd),
			fd == -EADDRINUSE ? " (does ha-receive already run?)" : "");
	else
		pf_ok(&p, "port %s free to listen on", cfg->listen);
	if (fd >= 0)
		close(fd);
	if (!strcmp(backend, "kvm")) {
		char self[4096], vmm[4200];
		ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);

		self[n > 0 ? n : 0] = '\0';
		if (strrchr(self, '/'))
			*strrchr(self, '/') = '\0';
		snprintf(vmm, sizeof(vmm), "%s/ha-vm", self);
		if (access(vmm, X_OK) == 0 && access("/dev/kvm", R_OK | W_OK) == 0)
			pf_ok(&p, "backend kvm: %s and /dev/kvm", vmm);
		else
			pf_fail(&p, "backend kvm: %s: %s", access(vmm, X_OK) ? vmm : "/dev/kvm",
				strerror(errno));
	} else if (access("/dev/xen/privcmd", R_OK | W_OK) == 0) {
		pf_ok(&p, "backend xen: this is a Xen control domain (/dev/xen/privcmd)");
	} else {
		pf_fail(&p, "backend xen: /dev/xen/privcmd: %s: not a Xen dom0, or xen modules not "
			    "loaded",
			strerror(errno));
	}
	/* A copy of the domain running here already: a failover would start
	 * a second one. */
	if (cfg->domain) {
		snprintf(spec, sizeof(spec), "%s:%s", backend, cfg->domain);
		save = hv_lookup(spec, &name);
		if (hv_domain_here(spec)) {
			pf_fail(&p, "domain %s already runs on this host: this host is its primary, "
				    "or a failover left it here; a secondary must not hold one",
				spec);
		} else {
			pf_ok(&p, "no domain %s runs on this host", spec);
		}
		check_needs(&p, save ? save->restore : NULL, spec, name);
	}
	for (unsigned i = 0; i < cfg->ndisks; i++) {
		if (access(cfg->disks[i], R_OK | W_OK) == 0)
			pf_ok(&p, "replica %u: %s is there, writable", i, cfg->disks[i]);
		else
			pf_fail(&p, "replica %u: %s: %s", i, cfg->disks[i], strerror(errno));
	}
	for (unsigned i = 0; i < cfg->ndrbd; i++)
		pf_drbd(&p, cfg->drbd[i], false);
	if (cfg->witness)
		pf_peer(&p, "the witness", cfg->witness, cfg->witness_tls);
	if (cfg->fence_cmd)
		pf_command(&p, "--fence-cmd", cfg->fence_cmd);
	else if (!cfg->witness)
		pf_warn(&p, "UNSAFE: no --fence-cmd and no --witness: a network partition can "
			    "leave two copies running");
	if (cfg->notify_cmd)
		pf_command(&p, "--notify-cmd", cfg->notify_cmd);
	return pf_end(&p, "ha-receive");
}

/* Sets up TLS and the backend, then receives: the exit status. */
static int run(struct rx_config *cfg, struct fo_tls_config *tlscfg, bool insecure,
	       const char *backend, const char *witness_peer, const char *pair_file)
{
	struct fo_tls_config wtlscfg = *tlscfg;
	struct fo_reload reload;
	const struct hv_ops *ops;
	const char *rest;
	char err[700], spec[128], role[300], pair[64];
	struct role_rec rec;
	int rc;

	wtlscfg.peer = witness_peer;
	/* Written to a file, the copy stays in this process: no standby
	 * domain is built for it (xen). */
	if (cfg->save_file)
		setenv("HA_XEN_STANDBY", "0", 1);
	/* --restore reads a file: no link to secure. */
	if ((!cfg->restore_path &&
	     fo_tls_setup(tlscfg, insecure, true, &cfg->tls, err, sizeof(err)) < 0) ||
	    (cfg->witness &&
	     fo_tls_setup(&wtlscfg, insecure, false, &cfg->witness_tls, err, sizeof(err)) < 0)) {
		fprintf(stderr, "ha-receive: %s\n", err);
		fo_tls_free(cfg->tls);
		return 2;
	}
	snprintf(spec, sizeof(spec), "%s:x", backend);
	ops = hv_lookup(spec, &rest);
	if (!ops || !ops->restore) {
		fprintf(stderr, "ha-receive: backend '%s' cannot receive domains\n", backend);
		fo_tls_free(cfg->tls);
		fo_tls_free(cfg->witness_tls);
		return 2;
	}
	/* serve=: the resumed ha-vm reaches its disk by NBD; a Xen domain's
	 * disk is the device its configuration names (DRBD: --drbd). */
	for (unsigned i = 0; i < cfg->ndisks; i++) {
		if (cfg->serve[i] && strcmp(backend, "kvm")) {
			fprintf(stderr, "ha-receive: --disk ...,serve=%s is for the kvm backend\n",
				cfg->serve[i]);
			fo_tls_free(cfg->tls);
			fo_tls_free(cfg->witness_tls);
			return 2;
		}
	}
	if (check_only) {
		rc = preflight(cfg, backend, pair_file);
		fo_tls_free(cfg->tls);
		fo_tls_free(cfg->witness_tls);
		return rc;
	}
	if (insecure)
		log_unsafe("--insecure: the replication link is plain TCP; guest memory and disk "
			   "writes cross the network unencrypted and unauthenticated");
	reload = (struct fo_reload){pair_file,
				    CONF_RECEIVE,
				    {cfg->tls, cfg->witness_tls},
				    {"the link", "the witness"}};
	/* Before any thread starts: they inherit the blocked SIGHUP. A
	 * closing terminal is no reason to stop, let alone fail over. */
	service_init(fo_reload, &reload);
	signal(SIGPIPE, SIG_IGN);
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	if (pair_file) {
		snprintf(spec, sizeof(spec), "%s:%s", backend, cfg->domain ? cfg->domain : "");
		if (role_check(pair_file, spec, role, sizeof(role), pair, sizeof(pair), &rec, err,
			       sizeof(err)) < 0) {
			log_error("not standing by: %s", err);
			rc = 5;
			goto out;
		}
		role_note(role, ROLE_SECONDARY, "standing by for %s", cfg->domain);
	}
	rc = rx_run(cfg, ops->restore);
	if (pair_file && rc == 1)
		role_note(role, ROLE_PRIMARY, "took over %s here: the primary was lost",
			  cfg->domain);
	else if (pair_file && rc == 2)
		role_note(role, ROLE_PRIMARY, "took over %s here: its primary handed it over "
					      "(switchover)",
			  cfg->domain);
	rc = rc < 0 ? 1 : rc == 3 ? 0 : rc >= 1 ? 3 : 0; /* a restore: 0 */
out:
	fo_tls_free(cfg->tls);
	fo_tls_free(cfg->witness_tls);
	return rc;
}

int main(int argc, char **argv)
{
	struct rx_config cfg = {.timeout_ms = 500,
				.postcopy_stall_ms = 10000,
				.max_ckpt_bytes = (size_t)1024 << 20,
				.fence_timeout_ms = 30000,
				.notify_timeout_ms = 10000,
				.fence_retry_ms = 5000,
				.witness_ttl_ms = 2000};
	struct fo_tls_config tlscfg = {0};
	const char *witness_peer = NULL;
	bool insecure = false;
	const char *backend = "kvm";
	struct conf_args ca;
	int rc;

	if (version_arg(argc, argv, "ha-receive"))
		return 0;

	log_init(argv[0]);
	if (conf_expand("ha-receive", CONF_RECEIVE, opts, argc, argv, &ca) < 0)
		return 2;
	conf_use(&ca);
	rc = parse(ca.argc, ca.argv, &cfg, &tlscfg, &insecure, &backend, &witness_peer);
	if (rc < 0)
		rc = check(ca.argc, &cfg, witness_peer);
	if (rc >= 0) {
		conf_args_free(&ca);
		return rc;
	}
	if (ca.have_pair)
		log_info("pair file %s: this host is %s, its peer %s", ca.pair.path, ca.pair.self,
			 ca.pair.peer);
	rc = run(&cfg, &tlscfg, insecure, backend, witness_peer,
		 ca.have_pair ? ca.pair.path : NULL);
	conf_args_free(&ca);
	return rc;
}
