/* ha-netbuf: drive an output buffer by hand, and clean up after a crash.
 *
 *   ha-netbuf hold [--backend auto|plug|nfqueue] [--limit N] [--queue Q] IFACE
 *       reads "postsuspend N", "commit N", "status" lines on stdin and answers
 *       each with "ok ..." or "error ..."; EOF releases everything.
 *   ha-netbuf cleanup IFACE
 *   ha-netbuf probe-plug        exit 0 if the kernel offers sch_plug
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/version.h"
#include "netbuf/netbuf.h"

static void usage(FILE *f)
{
	fprintf(f, "usage: ha-netbuf hold [--backend auto|plug|nfqueue] [--limit N] [--queue Q] "
		   "IFACE\n"
		   "       ha-netbuf cleanup IFACE\n"
		   "       ha-netbuf probe-plug\n"
		   "hold buffers IFACE's output and takes 'postsuspend N', 'commit N' and\n"
		   "'status' lines on standard input; end of input releases everything.\n");
}

static int hold(int argc, char **argv)
{
	static const struct option opts[] = {
		{"backend", required_argument, NULL, 'b'},
		{"limit", required_argument, NULL, 'l'},
		{"queue", required_argument, NULL, 'q'},
		{0},
	};
	struct netbuf_config cfg = {.backend = NETBUF_AUTO, .limit = 10000, .queue = 7};
	struct ckpt_dev *dev;
	char line[128];
	int c, rc;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'b':
			if (netbuf_parse_backend(optarg, &cfg.backend) < 0) {
				fprintf(stderr, "ha-netbuf: backend is auto, plug or nfqueue\n");
				return 2;
			}
			break;
		case 'l':
			cfg.limit = (uint32_t)strtoul(optarg, NULL, 10);
			break;
		case 'q':
			cfg.queue = (uint16_t)strtoul(optarg, NULL, 10);
			break;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc - 1 || !cfg.limit) {
		usage(stderr);
		return 2;
	}
	cfg.ifname = argv[optind];
	rc = netbuf_create(&cfg, &dev);
	if (rc == 0) {
		rc = dev->ops->setup(dev);
		if (rc < 0)
			dev->ops->destroy(dev);
	}
	if (rc < 0) {
		printf("error setup: %s\n", strerror(-rc));
		return 1;
	}
	printf("ok setup %s\n", dev->ops->kind);
	fflush(stdout);
	while (fgets(line, sizeof(line), stdin)) {
		unsigned long long n = 0;
		char cmd[32];

		if (sscanf(line, "%31s %llu", cmd, &n) < 1)
			continue;
		if (!strcmp(cmd, "postsuspend"))
			rc = dev->ops->postsuspend(dev, n);
		else if (!strcmp(cmd, "commit"))
			rc = dev->ops->commit(dev, n);
		else if (!strcmp(cmd, "status")) {
			char st[256];
			dev->ops->status(dev, st, sizeof(st));
			printf("ok %s\n", st);
			fflush(stdout);
			continue;
		} else
			rc = -EINVAL;
		if (rc < 0)
			printf("error %s %llu: %s\n", cmd, n, strerror(-rc));
		else
			printf("ok %s %llu\n", cmd, n);
		fflush(stdout);
	}
	dev->ops->teardown(dev);
	dev->ops->destroy(dev);
	printf("ok teardown\n");
	return 0;
}

int main(int argc, char **argv)
{
	if (version_arg(argc, argv, "ha-netbuf"))
		return 0;
	log_init(argv[0]);
	signal(SIGPIPE, SIG_IGN);
	if (argc >= 2 && !strcmp(argv[1], "hold"))
		return hold(argc - 1, argv + 1);
	if (argc == 2 && !strcmp(argv[1], "probe-plug"))
		return netbuf_plug_available() == 1 ? 0 : 1;
	if (argc == 3 && !strcmp(argv[1], "cleanup"))
		return netbuf_cleanup(argv[2]) < 0 ? 1 : 0;
	if (argc == 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
		usage(stdout);
		return 0;
	}
	usage(stderr);
	return 2;
}
