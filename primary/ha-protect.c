/* ha-protect: protect a domain by checkpointing it to a secondary. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint/codec.h"
#include "common/ctl.h"
#include "common/log.h"
#include "hv/hv.h"
#include "netbuf/netbuf.h"
#include "diskrepl/dev.h"
#include "primary/protect.h"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: ha-protect [options] DOMAIN PEER\n"
		"Protects DOMAIN (kvm:NAME, an ha-vm instance; xen:NAME or xen:DOMID, a PVH or\n"
		"HVM domain of this Xen host) by checkpointing it to the secondary ha-receive\n"
		"listening at PEER (host:port).\n"
		"\n"
		"  -i, --interval MS     epoch period (default 100)\n"
		"      --timeout MS      down timer for the secondary (default 500)\n"
		"      --max-inflight N  unacknowledged epochs before the next pause waits\n"
		"                        (default 2)\n"
		"      --precopy-rounds N  live pre-copy rounds before the first checkpoint\n"
		"                        (default 5)\n"
		"      --retry MS        re-protection attempts while degraded (default 1000)\n"
		"  -u, --no-compress     send raw pages (a Xen-compatible PAGE_DATA stream)\n"
		"      --cache-pages N   sender cache for XOR deltas (default %d)\n"
		"      --level N         zstd level (default %d)\n"
		"      --save FILE       also write the stream to FILE (see ha-stream)\n"
		"      --netbuf MODE     auto|plug|nfqueue|none (default auto)\n"
		"      --netbuf-queue N  NFQUEUE number (default 7)\n"
		"      --netbuf-limit N  packets held at most (default 10000)\n"
		"  -F, --unsafe          allow the unsafe modes below\n"
		"  -n, --no-netbuf       do not hold network output (needs -F)\n"
		"      --disk NAME       replicate the disk that ha-diskrepl serves as NAME\n"
		"                        (or the path of its attach socket); repeat for\n"
		"                        each disk, in the order of ha-receive's --disk\n"
		"  -d, --no-disk         the domain's disk is not replicated (on shared\n"
		"                        storage; needs -F)\n"
		"  -b, --blackhole       no secondary: checkpoints go to --save FILE or\n"
		"                        /dev/null and count as acknowledged (needs -F)\n"
		"      --ctl PATH        control socket (default /run/ha-protect/DOMAIN.sock)\n"
		"      --max-epochs N    stop after N checkpoints\n"
		"  -v, --verbose         debug logging\n"
		"  -h, --help            this text\n",
		CKPT_CODEC_DEFAULT_CACHE_PAGES, CKPT_CODEC_DEFAULT_LEVEL);
}

static void on_signal(int sig)
{
	prot_request_stop();
}

static unsigned long number(const char *opt, const char *s, unsigned long min, unsigned long max)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || !*s || *end || v < min || v > max) {
		fprintf(stderr, "ha-protect: %s wants a number in %lu..%lu, not '%s'\n", opt, min,
			max, s);
		exit(2);
	}
	return v;
}

int main(int argc, char **argv)
{
	enum { O_TIMEOUT = 256, O_INFLIGHT, O_ROUNDS, O_RETRY, O_CACHE, O_LEVEL, O_SAVE,
	       O_NETBUF, O_CTL, O_MAXEP, O_NBQ, O_NBL, O_DISK };
	static const struct option opts[] = {
		{"interval", required_argument, NULL, 'i'},
		{"timeout", required_argument, NULL, O_TIMEOUT},
		{"max-inflight", required_argument, NULL, O_INFLIGHT},
		{"precopy-rounds", required_argument, NULL, O_ROUNDS},
		{"retry", required_argument, NULL, O_RETRY},
		{"no-compress", no_argument, NULL, 'u'},
		{"cache-pages", required_argument, NULL, O_CACHE},
		{"level", required_argument, NULL, O_LEVEL},
		{"save", required_argument, NULL, O_SAVE},
		{"netbuf", required_argument, NULL, O_NETBUF},
		{"netbuf-queue", required_argument, NULL, O_NBQ},
		{"netbuf-limit", required_argument, NULL, O_NBL},
		{"unsafe", no_argument, NULL, 'F'},
		{"no-netbuf", no_argument, NULL, 'n'},
		{"no-disk", no_argument, NULL, 'd'},
		{"disk", required_argument, NULL, O_DISK},
		{"blackhole", no_argument, NULL, 'b'},
		{"ctl", required_argument, NULL, O_CTL},
		{"max-epochs", required_argument, NULL, O_MAXEP},
		{"verbose", no_argument, NULL, 'v'},
		{"help", no_argument, NULL, 'h'},
		{0},
	};
	struct prot_config cfg = {
		.interval_ms = 100,
		.timeout_ms = 500,
		.max_inflight = 2,
		.precopy_rounds = 5,
		.retry_ms = 1000,
		.compress = true,
		.cache_pages = CKPT_CODEC_DEFAULT_CACHE_PAGES,
		.level = CKPT_CODEC_DEFAULT_LEVEL,
	};
	const char *netbuf = "auto", *name;
	struct netbuf_config nb = {.backend = NETBUF_AUTO, .limit = 10000, .queue = 7};
	struct hv_info info;
	bool unsafe = false, no_netbuf = false, no_disk = false;
	const char *disks[PROT_MAX_DEVS];
	unsigned ndisks = 0;
	char ctl[108];
	const struct hv_ops *ops;
	struct hv_dom *dom;
	int c, rc;

	log_init(argv[0]);
	while ((c = getopt_long(argc, argv, "i:uFndbvh", opts, NULL)) != -1) {
		switch (c) {
		case 'i':
			cfg.interval_ms = (unsigned)number("--interval", optarg, 1, 60000);
			break;
		case O_TIMEOUT:
			cfg.timeout_ms = (unsigned)number("--timeout", optarg, 20, 600000);
			break;
		case O_INFLIGHT:
			cfg.max_inflight = (unsigned)number("--max-inflight", optarg, 1, 64);
			break;
		case O_ROUNDS:
			cfg.precopy_rounds = (unsigned)number("--precopy-rounds", optarg, 0, 100);
			break;
		case O_RETRY:
			cfg.retry_ms = (unsigned)number("--retry", optarg, 10, 3600000);
			break;
		case 'u':
			cfg.compress = false;
			break;
		case O_CACHE:
			cfg.cache_pages = number("--cache-pages", optarg, 0, 1ul << 26);
			break;
		case O_LEVEL:
			cfg.level = (int)number("--level", optarg, 1, 19);
			break;
		case O_SAVE:
			cfg.save_path = optarg;
			break;
		case O_NETBUF:
			netbuf = optarg;
			break;
		case O_NBQ:
			nb.queue = (uint16_t)number("--netbuf-queue", optarg, 0, 65535);
			break;
		case O_NBL:
			nb.limit = (uint32_t)number("--netbuf-limit", optarg, 16, 1000000);
			break;
		case 'F':
			unsafe = true;
			break;
		case 'n':
			no_netbuf = true;
			break;
		case 'd':
			no_disk = true;
			break;
		case O_DISK:
			if (ndisks == PROT_MAX_DEVS - 1) {
				fprintf(stderr, "ha-protect: at most %u disks\n", PROT_MAX_DEVS - 1);
				return 2;
			}
			disks[ndisks++] = optarg;
			break;
		case 'b':
			cfg.blackhole = true;
			break;
		case O_CTL:
			cfg.ctl_path = optarg;
			break;
		case O_MAXEP:
			cfg.max_epochs = number("--max-epochs", optarg, 1, ~0ul);
			break;
		case 'v':
			log_set_level(LOG_LVL_DEBUG);
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (argc - optind != (cfg.blackhole ? 1 : 2)) {
		fprintf(stderr, cfg.blackhole ? "ha-protect: with -b, give only the DOMAIN\n"
					      : "ha-protect: give a DOMAIN and a PEER (host:port)\n");
		usage(stderr);
		return 2;
	}
	if (!strcmp(netbuf, "none"))
		no_netbuf = true;
	if (no_disk && !unsafe) {
		fprintf(stderr, "ha-protect: -d (no disk replication) is unsafe; add -F to allow it\n");
		return 2;
	}
	if (no_disk && ndisks) {
		fprintf(stderr, "ha-protect: --disk and -d contradict each other\n");
		return 2;
	}
	if ((no_netbuf || cfg.blackhole) && !unsafe) {
		fprintf(stderr, "ha-protect: %s is unsafe (clients could see output that a "
				"failover loses); add -F to allow it\n",
			cfg.blackhole ? "-b" : "running without network buffering");
		return 2;
	}
	if (!no_netbuf && netbuf_parse_backend(netbuf, &nb.backend) < 0) {
		fprintf(stderr, "ha-protect: --netbuf is auto, plug, nfqueue or none\n");
		return 2;
	}
	cfg.domain = argv[optind];
	cfg.peer = cfg.blackhole ? NULL : argv[optind + 1];
	ops = hv_lookup(cfg.domain, &name);
	if (!ops) {
		fprintf(stderr, "ha-protect: unknown domain kind in '%s' (use kvm:NAME or xen:NAME)\n",
			cfg.domain);
		return 2;
	}
	if (!cfg.ctl_path) {
		ctl_path(ctl, sizeof(ctl), "ha-protect", cfg.domain);
		cfg.ctl_path = ctl;
	}
	log_set_domain(cfg.domain);
	signal(SIGPIPE, SIG_IGN);
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);

	rc = ops->open(name, &dom);
	if (rc < 0) {
		log_error("cannot open domain %s: %s", cfg.domain, strerror(-rc));
		return 1;
	}
	rc = ops->info(dom, &info);
	if (rc == 0 && info.disk[0] && !ndisks && !no_disk) {
		log_error("the domain has a disk (%s) and nothing replicates it: serve it with "
			  "ha-diskrepl and give --disk NAME, or -F -d if it is on shared storage",
			  info.disk);
		rc = -EINVAL;
	} else if (rc == 0 && ndisks && strncmp(info.disk, "nbd:", 4)) {
		log_error("--disk: the domain's disk (%s) is not an NBD export, so its writes "
			  "cannot pass through ha-diskrepl; start the domain on "
			  "nbd:unix:/run/ha-diskrepl/NAME.nbd",
			  info.disk[0] ? info.disk : "none");
		rc = -EINVAL;
	}
	for (unsigned i = 0; rc == 0 && i < ndisks; i++) {
		rc = diskrepl_dev_create(disks[i], i, &cfg.devs[cfg.ndevs]);
		if (rc == 0)
			cfg.ndevs++;
		cfg.need_disk_ack = true;
	}
	if (rc == 0 && !no_netbuf) {
		if (!info.iface[0]) {
			log_info("the domain has no network interface: no output to hold");
		} else {
			nb.ifname = info.iface;
			rc = netbuf_create(&nb, &cfg.devs[cfg.ndevs]);
			if (rc == 0)
				cfg.ndevs++;
		}
	}
	if (rc == 0)
		rc = prot_run(&cfg, ops, dom);
	else
		log_error("cannot prepare protection: %s", strerror(-rc));
	for (unsigned i = 0; i < cfg.ndevs; i++)
		if (cfg.devs[i]->ops->destroy)
			cfg.devs[i]->ops->destroy(cfg.devs[i]);
	ops->close(dom);
	return rc < 0 ? 1 : 0;
}
