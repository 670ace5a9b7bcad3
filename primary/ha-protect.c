/* ha-protect: protect a domain by checkpointing it to a secondary. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "checkpoint/codec.h"
#include "checkpoint/extdev.h"
#include "common/conf.h"
#include "common/ctl.h"
#include "common/log.h"
#include "common/opt.h"
#include "common/service.h"
#include "common/sock.h"
#include "common/version.h"
#include "hv/hv.h"
#include "netbuf/netbuf.h"
#include "diskrepl/dev.h"
#include "diskrepl/drbd.h"
#include "failover/preflight.h"
#include "failover/reload.h"
#include "failover/role.h"
#include "failover/tls.h"
#include "primary/protect.h"

/* How long a DRBD resource may stay unconnected when protection starts
 * (a resync that progresses extends it). */
#define DRBD_SETUP_TIMEOUT_MS 60000

static void usage(FILE *f)
{
	fprintf(f,
		"usage: ha-protect [options] DOMAIN PEER\n"
		"Protects DOMAIN (kvm:NAME, an ha-vm instance; xen:NAME or xen:DOMID, a PVH or\n"
		"HVM domain of this Xen host) by checkpointing it to the secondary ha-receive\n"
		"listening at PEER (host:port).\n"
		"\n"
		"  -i, --interval MS     epoch period: a checkpoint's pause starts every MS\n"
		"                        (default 100). A pause longer than MS/2 stretches\n"
		"                        the period to twice the pause: the guest always\n"
		"                        runs at least as long as it was just paused\n"
		"  -i, --interval auto   adjust the period to the load so that checkpointing\n"
		"                        adds at most --sla-p99 MS to the p99 output latency\n"
		"      --sla-p99 MS      the target for --interval auto\n"
		"      --interval-min MS, --interval-max MS\n"
		"                        bounds for --interval auto (default 2, 1000)\n"
		"      --timeout MS      down timer for the secondary (default 500)\n"
		"      --max-inflight N  unacknowledged epochs before the next pause waits\n"
		"                        (default 2)\n"
		"      --precopy-rounds N  live pre-copy rounds before the first checkpoint\n"
		"                        (default 5)\n"
		"      --converge-pages N  a pre-copy round that leaves at most N pages\n"
		"                        dirty ends the pre-copy (default 1024)\n"
		"      --migrate         live migration: once the secondary holds the first\n"
		"                        checkpoint, switch over to it (the domain then runs\n"
		"                        there; exit 0); prints the total time and downtime\n"
		"      --postcopy        with --migrate: after the pre-copy, run the domain\n"
		"                        there at once; the pages still dirty follow, those it\n"
		"                        touches first (for a guest that writes faster than\n"
		"                        the link carries; a link lost meanwhile loses it)\n"
		"      --retry MS        re-protection attempts while degraded (default 1000)\n"
		"  -u, --no-compress     send raw pages (a Xen-compatible PAGE_DATA stream)\n"
		"      --cache-pages N   sender cache for XOR deltas (default %d)\n"
		"      --level N         zstd level (default %d)\n"
		"      --save FILE       also write the stream to FILE (mode 0600: it holds the\n"
		"                        guest's memory), to inspect or verify with ha-stream;\n"
		"                        with -b, a save that ha-restore runs (ha-save(8))\n"
		"      --stop            with -b --save FILE --max-epochs N: the domain stops\n"
		"                        at its last checkpoint, once FILE holds it on disk\n"
		"      --netbuf MODE     auto|plug|nfqueue|none (default auto)\n"
		"      --netbuf-queue N  NFQUEUE number (default 7)\n"
		"      --netbuf-limit N  packets held at most (default 10000)\n"
		"  -F, --unsafe          allow the unsafe modes below\n"
		"  -n, --no-netbuf       do not hold network output (needs -F)\n"
		"      --disk NAME       replicate the disk that ha-diskrepl serves as NAME\n"
		"                        (or the path of its attach socket); repeat for\n"
		"                        each disk, in the order of ha-receive's --disk\n"
		"      --disk drbd:RES   the disk is DRBD resource RES (or drbd:/dev/drbdN),\n"
		"                        Primary here, protocol C: each epoch commits once\n"
		"                        DRBD has its writes on the peer (ha-receive --drbd)\n"
		"  -d, --no-disk         the domain's disk is not replicated (on shared\n"
		"                        storage; needs -F)\n"
		"  -b, --blackhole       no secondary: checkpoints go to --save FILE or\n"
		"                        /dev/null and count as acknowledged (needs -F)\n"
		"      --witness HOST:PORT  without the secondary, run the domain only while\n"
		"                        holding the pair's lease from this ha-witness, else\n"
		"                        pause it (same TLS settings as the link)\n"
		"      --witness-ttl MS  the lease asked for, renewed every TTL/6 (default 2000)\n"
		"      --witness-peer NAMES  with certificates: the witness's must be for one\n"
		"                        of NAMES (as --tls-peer for the link)\n"
		"Replication link security (one of these is required, except with -b):\n"
		FO_TLS_USAGE
		"Configuration (man/ha-protect.conf.5):\n"
		CONF_USAGE
		"                        With a pair file, this host's role in the pair is\n"
		"                        kept in $HA_STATE_DIR/NAME.role (default\n"
		"                        /var/lib/ha-protect; see ha-ctl role)\n"
		"      --ctl PATH        control socket (default /run/ha-protect/DOMAIN.sock)\n"
		"      --max-epochs N    stop after N checkpoints\n"
		"      --check           check the configuration and what it names (the\n"
		"                        domain, the secondary, the witness, disks, hooks),\n"
		"                        one line each, then exit: 0 if all passed, else 1\n"
		"      --notify-cmd CMD  run /bin/sh -c CMD on each event (protected,\n"
		"                        reprotected, degraded, lease-lost, lease-back,\n"
		"                        superseded, stopped), with HA_EVENT, HA_DOMAIN, ...\n"
		"                        in its environment (docs/monitoring.md); never\n"
		"                        on the pause path; a failure changes nothing\n"
		"      --notify-timeout MS  kill a hook after MS (default 10000)\n"
		"      --ext-device PATH  an external device: the executable PATH is called\n"
		"                        with PHASE OPERATION DOMAIN PEER EPOCH when\n"
		"                        protection starts and ends, and in a switchover or\n"
		"                        migration (check, prepare, transfer, commit; rollback\n"
		"                        of the others when one fails); repeat for each, in\n"
		"                        order (docs/devices.md)\n"
		"      --ext-device-timeout MS  kill a device's call after MS: a failure\n"
		"                        (default 10000)\n"
		"      --event-log FILE  append output-commit events (epoch closed, ACK read,\n"
		"                        output released) with CLOCK_MONOTONIC times, for\n"
		"                        checking the output commit against packet captures\n"
		"      --log-level L     error, warn, info or debug (default info)\n"
		"  -v, --verbose         debug logging\n"
		"  -h, --help            this text\n"
		"      --version         release, stream protocol, features\n"
		LOG_USAGE
		"Exit status: 0 stopped; 1 an error, or the guest shut itself down, rebooted\n"
		"or crashed (the secondary is told to discard its copy); 2 a usage or\n"
		"configuration error; 3 the domain is gone (destroyed, or its VMM died):\n"
		"the secondary takes over; 4 stopped with the domain left PAUSED by the\n"
		"witness rule (superseded, or no lease): resume it only by hand; 5 the\n"
		"pair's role record says this host must not protect the domain now\n"
		"(ha-ctl role; the domain is left PAUSED if the secondary did not answer\n"
		"after an unrecorded end).\n",
		CKPT_CODEC_DEFAULT_CACHE_PAGES, CKPT_CODEC_DEFAULT_LEVEL);
}

static void on_signal(int sig)
{
	prot_request_stop();
}

/* The domain's disk and a DRBD device are the same block device. */
static bool same_file(const char *a, const char *b)
{
	struct stat sa, sb;

	if (stat(a, &sa) < 0 || stat(b, &sb) < 0)
		return !strcmp(a, b);
	if (S_ISBLK(sa.st_mode) && S_ISBLK(sb.st_mode))
		return sa.st_rdev == sb.st_rdev;
	return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

/* Built-in replicated disks are numbered in the stream apart from DRBD's. */
static unsigned ndrbd_before(const char *const *disks, unsigned i)
{
	unsigned n = 0;

	while (i--)
		n += !strncmp(disks[i], "drbd:", 5);
	return n;
}

/* What the command line asked for. */
struct args {
	struct prot_config cfg;
	struct netbuf_config nb;
	const char *netbuf;
	bool unsafe, no_netbuf, no_disk, auto_interval, insecure, check_only;
	unsigned sla_p99;
	struct fo_tls_config tlscfg;
	const char *witness_peer;
	const char *disks[PROT_MAX_DISKS];
	unsigned ndisks;
	const char *ext[EXTDEV_MAX];
	unsigned n_ext;
	unsigned ext_timeout_ms;
};

/* ha-protect's options; a pair file's keys are their long names. */
enum { O_TIMEOUT = 256, O_INFLIGHT, O_ROUNDS, O_RETRY, O_CACHE, O_LEVEL, O_SAVE,
       O_NETBUF, O_CTL, O_MAXEP, O_NBQ, O_NBL, O_DISK, O_SLA, O_IMIN, O_IMAX, O_WITNESS,
       O_WTTL, O_EVLOG, O_WPEER, O_NOTIFY, O_NOTIFY_TO, O_CHECK, O_CONVERGE, O_MIGRATE, O_STOP,
       O_POSTCOPY, O_EXTDEV, O_EXTDEV_TO };
static const struct option opts[] = {
	CONF_OPTIONS,
	{"interval", required_argument, NULL, 'i'},
	{"sla-p99", required_argument, NULL, O_SLA},
	{"interval-min", required_argument, NULL, O_IMIN},
	{"interval-max", required_argument, NULL, O_IMAX},
	{"timeout", required_argument, NULL, O_TIMEOUT},
	{"max-inflight", required_argument, NULL, O_INFLIGHT},
	{"precopy-rounds", required_argument, NULL, O_ROUNDS},
	{"converge-pages", required_argument, NULL, O_CONVERGE},
	{"migrate", no_argument, NULL, O_MIGRATE},
	{"postcopy", no_argument, NULL, O_POSTCOPY},
	{"retry", required_argument, NULL, O_RETRY},
	{"no-compress", no_argument, NULL, 'u'},
	{"cache-pages", required_argument, NULL, O_CACHE},
	{"level", required_argument, NULL, O_LEVEL},
	{"save", required_argument, NULL, O_SAVE},
	{"stop", no_argument, NULL, O_STOP},
	{"netbuf", required_argument, NULL, O_NETBUF},
	{"netbuf-queue", required_argument, NULL, O_NBQ},
	{"netbuf-limit", required_argument, NULL, O_NBL},
	{"unsafe", no_argument, NULL, 'F'},
	{"no-netbuf", no_argument, NULL, 'n'},
	{"no-disk", no_argument, NULL, 'd'},
	{"disk", required_argument, NULL, O_DISK},
	{"blackhole", no_argument, NULL, 'b'},
	{"ctl", required_argument, NULL, O_CTL},
	FO_TLS_OPTIONS,
	{"witness", required_argument, NULL, O_WITNESS},
	{"witness-ttl", required_argument, NULL, O_WTTL},
	{"witness-peer", required_argument, NULL, O_WPEER},
	{"max-epochs", required_argument, NULL, O_MAXEP},
	{"event-log", required_argument, NULL, O_EVLOG},
	{"check", no_argument, NULL, O_CHECK},
	{"notify-cmd", required_argument, NULL, O_NOTIFY},
	{"notify-timeout", required_argument, NULL, O_NOTIFY_TO},
	{"ext-device", required_argument, NULL, O_EXTDEV},
	{"ext-device-timeout", required_argument, NULL, O_EXTDEV_TO},
	LOG_OPTIONS,
	{"verbose", no_argument, NULL, 'v'},
	{"help", no_argument, NULL, 'h'},
	{0},
};

/* Reads the options into A: -1 to go on, else the exit status (0 for
 * --help, 2 for a usage error, said on stderr). */
static int parse(int argc, char **argv, struct args *a)
{
	int c, rc;

	while ((c = getopt_long(argc, argv, "i:uFndbvh", opts, NULL)) != -1) {
		if (fo_tls_option(c, optarg, &a->tlscfg, &a->insecure))
			continue;
		switch (c) {
		case 'i':
			a->auto_interval = !strcmp(optarg, "auto");
			if (!a->auto_interval)
				a->cfg.interval_ms = opt_uint("ha-protect", "--interval", optarg, 1, 60000);
			break;
		case O_SLA:
			a->sla_p99 = opt_uint("ha-protect", "--sla-p99", optarg, 1, 600000);
			break;
		case O_IMIN:
			a->cfg.interval_min_ms = opt_uint("ha-protect", "--interval-min", optarg, 1, 60000);
			break;
		case O_IMAX:
			a->cfg.interval_max_ms = opt_uint("ha-protect", "--interval-max", optarg, 1, 60000);
			break;
		case O_TIMEOUT:
			a->cfg.timeout_ms = opt_uint("ha-protect", "--timeout", optarg, 20, 600000);
			break;
		case O_INFLIGHT:
			a->cfg.max_inflight = opt_uint("ha-protect", "--max-inflight", optarg, 1, 64);
			break;
		case O_CONVERGE:
			a->cfg.converge_pages =
			    opt_uint("ha-protect", "--converge-pages", optarg, 1, 1u << 30);
			break;
		case O_POSTCOPY:
			a->cfg.postcopy = true;
			break;
		case O_MIGRATE:
			a->cfg.migrate = true;
			break;
		case O_STOP:
			a->cfg.stop_at_end = true;
			break;
		case O_ROUNDS:
			a->cfg.precopy_rounds = opt_uint("ha-protect", "--precopy-rounds", optarg, 0, 100);
			break;
		case O_RETRY:
			a->cfg.retry_ms = opt_uint("ha-protect", "--retry", optarg, 10, 3600000);
			break;
		case 'u':
			a->cfg.compress = false;
			break;
		case O_CACHE:
			a->cfg.cache_pages = opt_ulong("ha-protect", "--cache-pages", optarg, 0, 1ul << 26);
			break;
		case O_LEVEL:
			a->cfg.level = (int)opt_uint("ha-protect", "--level", optarg, 1, 19);
			break;
		case O_SAVE:
			a->cfg.save_path = optarg;
			break;
		case O_NETBUF:
			a->netbuf = optarg;
			break;
		case O_NBQ:
			a->nb.queue = (uint16_t)opt_uint("ha-protect", "--netbuf-queue", optarg, 0, 65535);
			break;
		case O_NBL:
			a->nb.limit = (uint32_t)opt_uint("ha-protect", "--netbuf-limit", optarg, 16, 1000000);
			break;
		case 'F':
			a->unsafe = true;
			break;
		case 'n':
			a->no_netbuf = true;
			break;
		case 'd':
			a->no_disk = true;
			break;
		case O_DISK:
			if (a->ndisks == PROT_MAX_DISKS) {
				fprintf(stderr, "ha-protect: at most %u disks\n", PROT_MAX_DISKS);
				return 2;
			}
			a->disks[a->ndisks++] = optarg;
			break;
		case 'b':
			a->cfg.blackhole = true;
			break;
		case O_CTL:
			a->cfg.ctl_path = optarg;
			break;
		case O_CHECK:
			a->check_only = true;
			break;
		case O_EVLOG:
			a->cfg.event_log = optarg;
			break;
		case O_NOTIFY:
			a->cfg.notify_cmd = optarg;
			break;
		case O_NOTIFY_TO:
			a->cfg.notify_timeout_ms =
				opt_uint("ha-protect", "--notify-timeout", optarg, 100, 600000);
			break;
		case O_EXTDEV:
			if (a->n_ext == EXTDEV_MAX) {
				fprintf(stderr, "ha-protect: at most %u --ext-device\n", EXTDEV_MAX);
				return 2;
			}
			a->ext[a->n_ext++] = optarg;
			break;
		case O_EXTDEV_TO:
			a->ext_timeout_ms =
			    opt_uint("ha-protect", "--ext-device-timeout", optarg, 10, 3600000);
			break;
		case O_WITNESS:
			a->cfg.witness = optarg;
			break;
		case O_WPEER:
			a->witness_peer = optarg;
			break;
		case O_WTTL:
			a->cfg.witness_ttl_ms = opt_uint("ha-protect", "--witness-ttl", optarg, 100, 600000);
			break;
		case O_MAXEP:
			a->cfg.max_epochs = opt_ulong("ha-protect", "--max-epochs", optarg, 1, ~0ul);
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

/* The options' combinations and the positional arguments: 0, or 2 (a
 * usage error, said on stderr). */
static int check(int argc, char **argv, struct args *a, bool pair_file)
{
	char err[320];

	if (pair_file && (a->cfg.blackhole || argc - optind != 2)) {
		fprintf(stderr, "ha-protect: with a pair file (--pair, --config) the DOMAIN and "
				"the PEER come from it: give neither%s\n",
			a->cfg.blackhole ? ", and no -b" : "");
		return 2;
	}
	if (argc - optind != (a->cfg.blackhole ? 1 : 2)) {
		fprintf(stderr, a->cfg.blackhole
				    ? "ha-protect: with -b, give only the DOMAIN\n"
				    : "ha-protect: give a DOMAIN and a PEER (host:port)\n");
		usage(stderr);
		return 2;
	}
	if (a->auto_interval != (a->sla_p99 != 0)) {
		fprintf(stderr, a->auto_interval
				    ? "ha-protect: --interval auto needs a target: --sla-p99 MS\n"
				    : "ha-protect: --sla-p99 goes with --interval auto\n");
		return 2;
	}
	if (a->cfg.interval_min_ms > a->cfg.interval_max_ms) {
		fprintf(stderr, "ha-protect: --interval-min %u is above --interval-max %u\n",
			a->cfg.interval_min_ms, a->cfg.interval_max_ms);
		return 2;
	}
	a->cfg.sla_p99_ms = a->sla_p99;
	if (!strcmp(a->netbuf, "none"))
		a->no_netbuf = true;
	if (a->no_disk && !a->unsafe) {
		fprintf(stderr, "ha-protect: -d (no disk replication) is unsafe; add -F to allow it\n");
		return 2;
	}
	if (a->no_disk && a->ndisks) {
		fprintf(stderr, "ha-protect: --disk and -d contradict each other\n");
		return 2;
	}
	if ((a->no_netbuf || a->cfg.blackhole) && !a->unsafe) {
		fprintf(stderr, "ha-protect: %s is unsafe (clients could see output that a "
				"failover loses); add -F to allow it\n",
			a->cfg.blackhole ? "-b" : "running without network buffering");
		return 2;
	}
	if (!a->no_netbuf && netbuf_parse_backend(a->netbuf, &a->nb.backend) < 0) {
		fprintf(stderr, "ha-protect: --netbuf is auto, plug, nfqueue or none\n");
		return 2;
	}
	if (a->cfg.witness && a->cfg.blackhole) {
		fprintf(stderr, "ha-protect: --witness makes no sense with -b\n");
		return 2;
	}
	if (a->cfg.stop_at_end && (!a->cfg.blackhole || !a->cfg.save_path || !a->cfg.max_epochs)) {
		fprintf(stderr, "ha-protect: --stop is for a save that stops the domain: it needs -b, "
				"--save FILE and --max-epochs (ha-save --stop)\n");
		return 2;
	}
	if (a->cfg.postcopy && !a->cfg.migrate) {
		fprintf(stderr, "ha-protect: --postcopy is for a migration (--migrate): a protected "
				"domain's secondary must hold every page of its checkpoints to fail "
				"over\n");
		return 2;
	}
	if (a->cfg.migrate && (a->cfg.blackhole || a->cfg.max_epochs)) {
		fprintf(stderr, "ha-protect: --migrate needs a secondary to migrate to (no -b) and "
				"ends by itself (no --max-epochs)\n");
		return 2;
	}
	if (!a->cfg.blackhole &&
	    fo_tls_setup(&a->tlscfg, a->insecure, false, &a->cfg.tls, err, sizeof(err)) < 0) {
		fprintf(stderr, "ha-protect: %s\n", err);
		return 2;
	}
	if (a->cfg.witness) {
		struct fo_tls_config wc = a->tlscfg;

		wc.peer = a->witness_peer;
		if (fo_tls_setup(&wc, a->insecure, false, &a->cfg.witness_tls, err, sizeof(err)) <
		    0) {
			fprintf(stderr, "ha-protect: the witness's TLS: %s\n", err);
			fo_tls_free(a->cfg.tls);
			return 2;
		}
	} else if (a->witness_peer) {
		fprintf(stderr, "ha-protect: --witness-peer needs --witness\n");
		return 2;
	}
	a->cfg.domain = argv[optind];
	a->cfg.peer = a->cfg.blackhole ? NULL : argv[optind + 1];
	if (a->cfg.postcopy && !strncmp(a->cfg.domain, "xen:", 4)) {
		fprintf(stderr, "ha-protect: --postcopy needs a domain whose memory can be missing "
				"while it runs, and Xen 4.17 as Debian builds it has no memory paging "
				"(CONFIG_MEM_PAGING, unsupported upstream): migrate %s without it\n",
			a->cfg.domain);
		return 2;
	}
	if (!sock_hostport_option("ha-protect", "PEER", a->cfg.peer) ||
	    !sock_hostport_option("ha-protect", "--witness", a->cfg.witness))
		return 2;
	if (a->n_ext && a->cfg.blackhole) {
		fprintf(stderr, "ha-protect: --ext-device needs a secondary (no -b)\n");
		return 2;
	}
	if (a->n_ext && extdev_new(a->ext, a->n_ext, a->ext_timeout_ms, a->cfg.domain, a->cfg.peer,
				  &a->cfg.ext, err, sizeof(err)) < 0) {
		fprintf(stderr, "ha-protect: %s\n", err);
		return 2;
	}
	return 0;
}

/* The checkpoint devices the domain INFO needs (disks, then the output
 * buffer) into a->cfg.devs: 0 or -errno (logged). */
static int make_devices(struct args *a, const struct hv_info *info)
{
	unsigned ndrbd = 0;
	int rc = 0;

	for (unsigned i = 0; i < a->ndisks; i++)
		ndrbd += !strncmp(a->disks[i], "drbd:", 5);
	if (info->disk[0] && !a->ndisks && !a->no_disk) {
		log_error("the domain has a disk (%s) and nothing replicates it: serve it with "
			  "ha-diskrepl and give --disk NAME, give --disk drbd:RES if it is a DRBD "
			  "device, or -F -d if it is on shared storage",
			  info->disk);
		rc = -EINVAL;
	} else if (a->ndisks > ndrbd && strncmp(info->disk, "nbd:", 4)) {
		log_error("--disk: the domain's disk (%s) is not an NBD export, so its writes "
			  "cannot pass through ha-diskrepl; start the domain on "
			  "nbd:unix:/run/ha-diskrepl/NAME.nbd",
			  info->disk[0] ? info->disk : "none");
		rc = -EINVAL;
	}
	for (unsigned i = 0; rc == 0 && i < a->ndisks; i++) {
		if (!strncmp(a->disks[i], "drbd:", 5)) {
			/* DRBD's completion is the disk ACK: the secondary acks memory. */
			rc = drbd_dev_create(a->disks[i] + 5, DRBD_SETUP_TIMEOUT_MS,
					     &a->cfg.devs[a->cfg.ndevs]);
			if (rc == 0 && info->disk[0] && a->ndisks == ndrbd &&
			    !same_file(info->disk, drbd_dev_path(a->cfg.devs[a->cfg.ndevs]))) {
				log_error("--disk %s: the domain's disk is %s, not the resource's "
					  "device %s; start the domain on the DRBD device",
					  a->disks[i], info->disk,
					  drbd_dev_path(a->cfg.devs[a->cfg.ndevs]));
				a->cfg.devs[a->cfg.ndevs]->ops->destroy(a->cfg.devs[a->cfg.ndevs]);
				rc = -EINVAL;
			}
			if (rc == 0)
				a->cfg.ndevs++;
			continue;
		}
		rc = diskrepl_dev_create(a->disks[i], i - ndrbd_before(a->disks, i),
					 &a->cfg.devs[a->cfg.ndevs]);
		if (rc == 0)
			a->cfg.ndevs++;
		a->cfg.need_disk_ack = true;
	}
	/* A migration's devices take part in the migration alone. */
	if (rc == 0 && a->cfg.ext && !a->cfg.migrate) {
		rc = extdev_ckpt_dev_create(a->cfg.ext, &a->cfg.devs[a->cfg.ndevs]);
		if (rc == 0)
			a->cfg.ndevs++;
	}
	if (rc == 0 && !a->no_netbuf) {
		if (!info->iface[0]) {
			log_info("the domain has no network interface: no output to hold");
		} else {
			a->nb.ifname = info->iface;
			rc = netbuf_create(&a->nb, &a->cfg.devs[a->cfg.ndevs]);
			if (rc == 0)
				a->cfg.ndevs++;
		}
	}
	return rc;
}

/* The role record of the pair (failover/role.h), with a pair file only. */
struct role_state {
	bool active;
	char path[300];
	char pair[64];
	struct role_rec rec; /* as found at the start */
	const char *domain, *peer;
	bool confirm; /* the last run here did not record its end */
	bool held;    /* recorded: the secondary holds a copy it may activate */
	bool protected; /* this run protected the domain at least once */
};

/* Reads the record and what it lets this run do: ROLE_GO, ROLE_CONFIRM or
 * ROLE_REFUSE (with what to do in WHY). */
static enum role_verdict role_start(struct role_state *rs, const struct conf_args *ca,
				    const struct prot_config *cfg, char *why, size_t len)
{
	rs->active = ca->have_pair && !cfg->blackhole;
	if (!rs->active)
		return ROLE_GO;
	rs->domain = cfg->domain;
	rs->peer = cfg->peer;
	if (role_open(ca->pair.path, "primary (or secondary)", rs->path, sizeof(rs->path),
		      rs->pair, sizeof(rs->pair), &rs->rec, why, len) < 0)
		return ROLE_REFUSE;
	return role_verdict(&rs->rec, true, rs->pair, why, len);
}

static void role_write(struct role_state *rs, enum role role, bool held, const char *why)
{
	int rc = role_store(rs->path, role, held, "%s", why);

	if (rc < 0)
		log_error("cannot write the role record %s (%s): %s. Until it is written, a "
			  "restart of this host cannot tell whether the secondary may have taken "
			  "over",
			  rs->path, why, strerror(-rc));
	else
		log_info("role record %s: %s%s (%s)", rs->path, role_name(role),
			 held ? ", protecting" : "", why);
}

/* prot_config.on_copy: the secondary holds a copy it may activate, or
 * discarded it (END confirmed). */
static void role_on_copy(void *ctx, bool held)
{
	struct role_state *rs = ctx;
	char why[200];

	if (held && rs->held && rs->protected)
		return; /* re-protected: recorded already */
	if (held)
		snprintf(why, sizeof(why), "protecting %s to %s", rs->domain, rs->peer);
	else
		snprintf(why, sizeof(why), "protection of %s stopped: the secondary confirmed "
					   "END and discarded its copy",
			 rs->domain);
	role_write(rs, ROLE_PRIMARY, held, why);
	rs->held = held;
	rs->protected |= held;
}

/* After prot_run's RC: what the record must say now; true when the run
 * counts as refused (exit 5). */
static bool role_end(struct role_state *rs, int rc, const struct hv_save_ops *ops,
		     struct hv_dom *dom, bool protected)
{
	char why[200];

	if (!rs->active)
		return false;
	if (rs->confirm && !protected && !(rc == 0 && prot_stop_requested())) {
		/* The secondary never answered as the secondary: it may run the
		 * domain now. The copy here must not run beside it. */
		int prc = rc == -ESRCH ? -ESRCH : ops->pause(dom);

		snprintf(why, sizeof(why),
			 "the last protection here did not record its end, and the secondary "
			 "%s did not answer at the next start: it may have taken over",
			 rs->peer);
		role_write(rs, ROLE_LOST, false, why);
		log_error("this host LOST the primary role of pair %s: %s. The domain is left "
			  "PAUSED%s. If the other host does not run it, say so with ha-ctl role %s "
			  "primary and resume it; else destroy it here",
			  rs->pair, why, prc < 0 && prc != -ESRCH ? " (the pause failed!)" : "",
			  rs->pair);
		return true;
	}
	if (rc == PROT_HANDED_OVER) {
		snprintf(why, sizeof(why), "handed %s over to %s (switchover): it runs there",
			 rs->domain, rs->peer);
		role_write(rs, ROLE_SECONDARY, false, why);
		return false;
	}
	if (rc == -EINPROGRESS) {
		role_write(rs, ROLE_LOST, false, "a switchover's outcome was not confirmed: the "
						 "secondary may run the domain");
		return false;
	}
	if (!rs->held)
		return false;
	if (rc == -ESRCH)
		role_write(rs, ROLE_LOST, false, "the domain was gone (destroyed, or its VMM "
						 "died): the secondary takes over");
	else if (rc == -ESTALE)
		role_write(rs, ROLE_LOST, false, "stopped with the domain paused by the "
						 "witness rule: the secondary may have taken over");
	return false;
}

/* --check: what protection needs, checked without protecting. */
static int preflight(struct args *a, const struct hv_ops *ops, const char *name,
		     const struct conf_args *ca)
{
	struct prot_config *cfg = &a->cfg;
	struct role_state rs = {0};
	struct pf p = {0};
	struct hv_dom *dom;
	struct hv_info info;
	char why[700], role[400];
	int rc;

	if (ca->have_pair) {
		pf_ok(&p, "pair file %s: this host is %s, protecting %s to %s", ca->pair.path,
		      ca->pair.self, cfg->domain, cfg->peer);
		switch (role_start(&rs, ca, cfg, why, sizeof(why))) {
		case ROLE_GO:
			role_describe(&rs.rec, role, sizeof(role));
			pf_ok(&p, "role record %s: %s", rs.path, role);
			break;
		case ROLE_CONFIRM:
			pf_warn(&p, "role record %s: %s", rs.path, why);
			break;
		case ROLE_REFUSE:
			pf_fail(&p, "role record %s: %s", rs.path, why);
			break;
		}
	} else
		pf_ok(&p, "options: protecting %s to %s", cfg->domain,
		      cfg->peer ? cfg->peer : "nowhere (-b)");
	if (!cfg->blackhole)
		pf_link(&p, cfg->tls);
	rc = ops->save->open(name, &dom);
	if (rc < 0) {
		pf_fail(&p, "domain %s: %s: it must run on this host (the secondary checks with "
			    "ha-receive --check)",
			cfg->domain, strerror(-rc));
	} else {
		rc = ops->save->info(dom, &info);
		if (rc < 0)
			pf_fail(&p, "domain %s: %s", cfg->domain, strerror(-rc));
		else
			pf_ok(&p, "domain %s runs here: %u vCPU(s), a %llu MiB physical map",
			      cfg->domain, info.vcpus, (unsigned long long)(info.nr_pages >> 8));
		ops->save->close(dom);
	}
	if (cfg->peer)
		pf_peer(&p, "the secondary", cfg->peer, cfg->tls);
	if (cfg->witness)
		pf_peer(&p, "the witness", cfg->witness, cfg->witness_tls);
	if (!a->no_netbuf && a->nb.backend != NETBUF_NFQUEUE) {
		if (netbuf_plug_available() == 1)
			pf_ok(&p, "output buffering: the kernel has the plug qdisc");
		else if (a->nb.backend == NETBUF_PLUG)
			pf_fail(&p, "output buffering: --netbuf plug, but the kernel has no sch_plug "
				    "(modprobe sch_plug, or --netbuf nfqueue)");
		else
			pf_ok(&p, "output buffering: no plug qdisc here, NFQUEUE instead");
	}
	for (unsigned i = 0; i < a->ndisks; i++) {
		const char *d = a->disks[i];
		char path[108];
		struct stat st;

		if (!strncmp(d, "drbd:", 5)) {
			pf_drbd(&p, d + 5, true);
			continue;
		}
		if (strchr(d, '/'))
			snprintf(path, sizeof(path), "%s", d);
		else
			ctl_path(path, sizeof(path), "ha-diskrepl", d);
		if (!strchr(d, '/'))
			snprintf(path + strlen(path) - 5, sizeof(path) - strlen(path) + 5, ".attach");
		if (stat(path, &st) == 0 && S_ISSOCK(st.st_mode))
			pf_ok(&p, "disk %s: ha-diskrepl serves it (%s)", d, path);
		else
			pf_fail(&p, "disk %s: no ha-diskrepl serves it (%s is missing): start "
				    "ha-diskrepl@%s",
				d, path, d);
	}
	if (cfg->notify_cmd)
		pf_command(&p, "--notify-cmd", cfg->notify_cmd);
	return pf_end(&p, "ha-protect");
}

int main(int argc, char **argv)
{
	struct args args = {
		.cfg = {
			.interval_ms = 100,
			.timeout_ms = 500,
			.max_inflight = 2,
			.precopy_rounds = 5,
			.converge_pages = 1024,
			.retry_ms = 1000,
			.interval_min_ms = 2,
			.interval_max_ms = 1000,
			.compress = true,
			.cache_pages = CKPT_CODEC_DEFAULT_CACHE_PAGES,
			.level = CKPT_CODEC_DEFAULT_LEVEL,
			.witness_ttl_ms = 2000,
			.notify_timeout_ms = 10000,
		},
		.netbuf = "auto",
		.nb = {.backend = NETBUF_AUTO, .limit = 10000, .queue = 7},
	};
	struct args *a = &args;
	struct prot_config *cfg = &args.cfg;
	const struct hv_ops *ops;
	struct hv_info info;
	struct hv_dom *dom;
	struct conf_args ca;
	struct fo_reload reload;
	struct role_state rs = {0};
	const char *name;
	char ctl[108], why[700];
	bool refused = false;
	int rc;

	if (version_arg(argc, argv, "ha-protect"))
		return 0;

	log_init(argv[0]);
	if (conf_expand("ha-protect", CONF_PROTECT, opts, argc, argv, &ca) < 0)
		return 2;
	conf_use(&ca);
	rc = parse(ca.argc, ca.argv, a);
	if (rc < 0 && check(ca.argc, ca.argv, a, ca.have_pair))
		rc = 2;
	if (rc < 0 && !(ops = hv_lookup(cfg->domain, &name))) {
		fprintf(stderr, "ha-protect: unknown domain kind in '%s' (use kvm:NAME or xen:NAME)\n",
			cfg->domain);
		rc = 2;
	}
	if (rc >= 0) {
		conf_args_free(&ca);
		return rc;
	}
	if (a->check_only) {
		rc = preflight(a, ops, name, &ca);
		extdev_free(cfg->ext);
		fo_tls_free(cfg->tls);
		fo_tls_free(cfg->witness_tls);
		conf_args_free(&ca);
		return rc;
	}
	if (ca.have_pair)
		log_info("pair file %s: this host is %s, its peer %s", ca.pair.path, ca.pair.self,
			 ca.pair.peer);
	reload = (struct fo_reload){ca.have_pair ? ca.pair.path : NULL,
				    CONF_PROTECT,
				    {cfg->tls, cfg->witness_tls},
				    {"the link", "the witness"}};
	/* Before any thread starts: they inherit the blocked SIGHUP. */
	service_init(fo_reload, &reload);
	if (!cfg->ctl_path) {
		ctl_path(ctl, sizeof(ctl), "ha-protect", cfg->domain);
		cfg->ctl_path = ctl;
	}
	log_set_domain(cfg->domain);
	if (cfg->tls)
		log_info("replication link: TLS 1.3 with %s", fo_tls_mode(cfg->tls));
	else if (!cfg->blackhole)
		log_unsafe("--insecure: the replication link is plain TCP; guest memory and disk "
			   "writes cross the network unencrypted and unauthenticated");
	if (a->no_netbuf)
		log_unsafe("network output is not held (-n or --netbuf none): clients can see "
			   "output that a failover loses");
	if (a->no_disk)
		log_unsafe("-d: the disk is not replicated; a failover is safe only if it is on "
			   "storage both hosts share");
	if (cfg->blackhole)
		log_unsafe("-b: no secondary; nothing survives the loss of this host");
	if (cfg->witness)
		log_info("witness %s: without the secondary the domain runs only while this host "
			 "holds the lease (TTL %u ms)",
			 cfg->witness, cfg->witness_ttl_ms);
	signal(SIGPIPE, SIG_IGN);
	/* SIGHUP reloads (service_init): a closing terminal is no reason to
	 * stop, let alone fail over. */
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);

	/* Before the domain is touched: a host that lost its role leaves it
	 * as it is. */
	switch (role_start(&rs, &ca, cfg, why, sizeof(why))) {
	case ROLE_GO:
		break;
	case ROLE_CONFIRM:
		log_warn("%s", why);
		rs.confirm = true;
		break;
	case ROLE_REFUSE:
		log_error("not protecting: %s", why);
		extdev_free(cfg->ext);
		fo_tls_free(cfg->tls);
		fo_tls_free(cfg->witness_tls);
		conf_args_free(&ca);
		return 5;
	}
	if (rs.active) {
		rs.held = rs.rec.role == ROLE_PRIMARY && rs.rec.protecting;
		cfg->on_copy = role_on_copy;
		cfg->on_copy_ctx = &rs;
	}
	rc = ops->save->open(name, &dom);
	if (rc < 0) {
		log_error("cannot open domain %s: %s", cfg->domain, strerror(-rc));
		extdev_free(cfg->ext);
		fo_tls_free(cfg->tls);
		fo_tls_free(cfg->witness_tls);
		conf_args_free(&ca);
		return 1;
	}
	rc = ops->save->info(dom, &info);
	if (rc == 0)
		rc = make_devices(a, &info);
	if (rc == 0) {
		rc = prot_run(cfg, ops->save, dom);
		refused = role_end(&rs, rc, ops->save, dom, rs.protected);
	} else {
		log_error("cannot prepare protection: %s", strerror(-rc));
	}
	for (unsigned i = 0; i < cfg->ndevs; i++)
		if (cfg->devs[i]->ops->destroy)
			cfg->devs[i]->ops->destroy(cfg->devs[i]);
	extdev_free(cfg->ext);
	ops->save->close(dom);
	fo_tls_free(cfg->tls);
	fo_tls_free(cfg->witness_tls);
	conf_args_free(&ca);
	/* The outcomes an operator or a cluster manager tells apart. */
	return refused			? 5
	       : rc == 0 || rc == PROT_HANDED_OVER ? 0
	       : rc == -ESRCH			? 3
	       : rc == -ESTALE || rc == -EINPROGRESS ? 4
						: 1;
}
