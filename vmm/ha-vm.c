/* ha-vm: the built-in KVM VMM that runs ha-protect's test guests.
 *
 *   ha-vm run --name N --mem 64M --guest counter [--tap T] [--ip A/LEN] ...
 *   ha-vm run --name N --mem 64M --incoming [--tap T]
 *   ha-vm list
 *   ha-vm stop N
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "common/version.h"
#include "vmm/server.h"
#include "vmm/vm.h"
#include "vmm/vmm_ctl.h"

/* The guest programs, linked in as flat binaries. */
#define GUEST(n)                                                                             \
	extern const uint8_t _binary_##n##_bin_start[], _binary_##n##_bin_end[];
GUEST(counter)
GUEST(dirty)
GUEST(kv)
GUEST(disk)

static const struct {
	const char *name;
	const uint8_t *start, *end;
	const char *what;
} guests[] = {
	{"counter", _binary_counter_bin_start, _binary_counter_bin_end,
	 "UDP counter service on port 7000 (needs --tap and --ip)"},
	{"kv", _binary_kv_bin_start, _binary_kv_bin_end,
	 "UDP key-value store on port 7001; --arg 0=SLOTS (needs --tap and --ip)"},
	{"dirty", _binary_dirty_bin_start, _binary_dirty_bin_end,
	 "dirties --arg 0=N pages per ms over --arg 1=W pages"},
	{"disk", _binary_disk_bin_start, _binary_disk_bin_end,
	 "writes sequence-numbered blocks (needs --disk); checks disk and memory agree"},
};

static struct vm *the_vm;

static void on_signal(int sig)
{
	if (the_vm)
		vm_stop(the_vm);
}

static void usage(FILE *f)
{
	fprintf(f, "usage: ha-vm run --name NAME --mem SIZE (--guest PROGRAM | --incoming)\n"
		   "                 [--tap IFACE] [--mac MAC] [--ip ADDR/LEN] [--gw ADDR]\n"
		   "                 [--disk FILE|nbd:unix:PATH[#EXPORT]|nbd:HOST:PORT[#EXPORT]]\n"
		   "                 [--arg I=VALUE]...\n"
		   "       ha-vm list\n"
		   "       ha-vm stop NAME\n"
		   "Guests:\n");
	for (size_t i = 0; i < sizeof(guests) / sizeof(guests[0]); i++)
		fprintf(f, "  %-8s %s\n", guests[i].name, guests[i].what);
	fprintf(f, "Control sockets live in $HA_RUN_DIR/ha-vm (default /run/ha-vm).\n");
}

static int parse_size(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v = strtoull(s, &end, 10);

	if (end == s)
		return -EINVAL;
	switch (*end) {
	case 'G': case 'g': v <<= 30; end++; break;
	case 'M': case 'm': v <<= 20; end++; break;
	case 'K': case 'k': v <<= 10; end++; break;
	default: break;
	}
	if (*end)
		return -EINVAL;
	*out = v;
	return 0;
}

static int parse_mac(const char *s, uint8_t mac[6])
{
	unsigned b[6];

	if (sscanf(s, "%x:%x:%x:%x:%x:%x", &b[0], &b[1], &b[2], &b[3], &b[4], &b[5]) != 6)
		return -EINVAL;
	for (int i = 0; i < 6; i++) {
		if (b[i] > 255)
			return -EINVAL;
		mac[i] = (uint8_t)b[i];
	}
	return mac[0] & 1 ? -EINVAL : 0;
}

/* run's options into CFG: -1 to go on, else the exit status (0 for
 * --help, 2 for a usage error, said on stderr). */
static int run_options(int argc, char **argv, struct vm_config *cfg, const char **guest,
		       bool *have_mac)
{
	enum { O_NAME = 256, O_MEM, O_GUEST, O_TAP, O_MAC, O_IP, O_GW, O_ARG, O_INCOMING, O_DISK };
	static const struct option opts[] = {
		{"name", required_argument, NULL, O_NAME}, {"mem", required_argument, NULL, O_MEM},
		{"guest", required_argument, NULL, O_GUEST}, {"tap", required_argument, NULL, O_TAP},
		{"mac", required_argument, NULL, O_MAC},   {"ip", required_argument, NULL, O_IP},
		{"gw", required_argument, NULL, O_GW},     {"arg", required_argument, NULL, O_ARG},
		{"incoming", no_argument, NULL, O_INCOMING}, {"help", no_argument, NULL, 'h'},
		{"disk", required_argument, NULL, O_DISK},
		{0},
	};
	int c;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case O_NAME:
			cfg->name = optarg;
			break;
		case O_MEM:
			if (parse_size(optarg, &cfg->mem_bytes) < 0) {
				fprintf(stderr, "ha-vm: --mem wants a size like 64M, not '%s'\n",
					optarg);
				return 2;
			}
			break;
		case O_GUEST:
			*guest = optarg;
			break;
		case O_TAP:
			cfg->tap = optarg;
			break;
		case O_MAC:
			if (parse_mac(optarg, cfg->mac) < 0) {
				fprintf(stderr, "ha-vm: --mac wants a unicast MAC like "
						"52:54:00:12:34:56, not '%s'\n", optarg);
				return 2;
			}
			*have_mac = true;
			break;
		case O_IP: {
			char buf[32], *slash;
			struct in_addr a;
			unsigned len = 24;

			snprintf(buf, sizeof(buf), "%s", optarg);
			slash = strchr(buf, '/');
			if (slash) {
				*slash = '\0';
				len = (unsigned)atoi(slash + 1);
			}
			if (inet_pton(AF_INET, buf, &a) != 1 || len < 1 || len > 32) {
				fprintf(stderr, "ha-vm: --ip wants ADDR/LEN like 10.0.0.10/24\n");
				return 2;
			}
			cfg->ip = ntohl(a.s_addr);
			cfg->netmask = len == 32 ? 0xffffffffu : ~(0xffffffffu >> len);
			break;
		}
		case O_GW: {
			struct in_addr a;

			if (inet_pton(AF_INET, optarg, &a) != 1) {
				fprintf(stderr, "ha-vm: --gw wants an IPv4 address\n");
				return 2;
			}
			cfg->gateway = ntohl(a.s_addr);
			break;
		}
		case O_ARG: {
			char *end;
			unsigned long i = strtoul(optarg, &end, 10);

			if (*end != '=' || i > 3) {
				fprintf(stderr, "ha-vm: --arg wants I=VALUE with I in 0..3\n");
				return 2;
			}
			cfg->arg[i] = strtoull(end + 1, NULL, 0);
			break;
		}
		case O_INCOMING:
			cfg->incoming = true;
			break;
		case O_DISK:
			cfg->disk = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	return -1;
}

/* The name, and the guest program to load (unless incoming): 0 or 2 (a
 * usage error, said on stderr). */
static int run_check(struct vm_config *cfg, const char *guest, int argc)
{
	if (!cfg->name || optind != argc || (!guest) == !cfg->incoming) {
		fprintf(stderr, "ha-vm run: give --name and either --guest or --incoming\n");
		usage(stderr);
		return 2;
	}
	if (strlen(cfg->name) > 48 || strchr(cfg->name, '/')) {
		fprintf(stderr, "ha-vm: a name is up to 48 characters, without '/'\n");
		return 2;
	}
	if (guest) {
		size_t i;

		for (i = 0; i < sizeof(guests) / sizeof(guests[0]); i++)
			if (!strcmp(guest, guests[i].name))
				break;
		if (i == sizeof(guests) / sizeof(guests[0])) {
			fprintf(stderr, "ha-vm: unknown guest '%s'\n", guest);
			usage(stderr);
			return 2;
		}
		cfg->image = guests[i].start;
		cfg->image_len = (size_t)(guests[i].end - guests[i].start);
	}
	return 0;
}

/* A stable locally administered MAC derived from the name. */
static void default_mac(const char *name, uint8_t mac[6])
{
	uint32_t h = 2166136261u;

	for (const char *p = name; *p; p++)
		h = (h ^ (uint8_t)*p) * 16777619u;
	mac[0] = 0x52;
	mac[1] = 0x54;
	mac[2] = 0x00;
	mac[3] = (uint8_t)(h >> 16);
	mac[4] = (uint8_t)(h >> 8);
	mac[5] = (uint8_t)h;
}

static int cmd_run(int argc, char **argv)
{
	struct vm_config cfg = {.mem_bytes = 64u << 20};
	const char *guest = NULL;
	bool have_mac = false;
	char path[108];
	int rc;

	rc = run_options(argc, argv, &cfg, &guest, &have_mac);
	if (rc >= 0)
		return rc;
	rc = run_check(&cfg, guest, argc);
	if (rc)
		return rc;
	if (!have_mac)
		default_mac(cfg.name, cfg.mac);
	log_set_domain(cfg.name);
	rc = vm_create(&cfg, &the_vm);
	if (rc < 0)
		return 1;
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	signal(SIGPIPE, SIG_IGN);
	if (!cfg.incoming) {
		rc = vm_start(the_vm);
		if (rc < 0) {
			log_error("cannot start the vCPU: %s", strerror(-rc));
			vm_destroy(the_vm);
			return 1;
		}
		log_info("running guest '%s' with %llu MiB%s%s", guest,
			 (unsigned long long)(cfg.mem_bytes >> 20), cfg.tap ? " on " : "",
			 cfg.tap ? cfg.tap : "");
	} else {
		log_info("incoming: %llu MiB, waiting for memory and state",
			 (unsigned long long)(cfg.mem_bytes >> 20));
	}
	vmm_ctl_path(path, sizeof(path), cfg.name);
	rc = vmm_serve(the_vm, path);
	vm_destroy(the_vm);
	return rc < 0 ? 1 : rc;
}

static int cmd_list(void)
{
	char dir[108], *dot;
	DIR *d;
	struct dirent *e;

	vmm_ctl_path(dir, sizeof(dir), "x");
	*strrchr(dir, '/') = '\0';
	d = opendir(dir);
	if (!d) {
		printf("no VMs (%s: %s)\n", dir, strerror(errno));
		return 0;
	}
	printf("%-24s %8s  %-10s %s\n", "NAME", "MEM", "STATE", "TAP");
	while ((e = readdir(d))) {
		struct vmm_ctl *c;
		struct vmm_ctl_info info;

		dot = strstr(e->d_name, ".sock");
		if (!dot || dot[5])
			continue;
		*dot = '\0';
		if (vmm_ctl_connect(e->d_name, &c) < 0)
			continue;
		if (vmm_ctl_info(c, &info) == 0)
			printf("%-24s %7lluM  %-10s %s\n", info.name,
			       (unsigned long long)(info.mem_bytes >> 20),
			       info.flags & VMM_INFO_INCOMING ? "incoming"
			       : info.flags & VMM_INFO_PAUSED ? "paused"
							      : "running",
			       info.tap[0] ? info.tap : "-");
		vmm_ctl_close(c);
	}
	closedir(d);
	return 0;
}

static int cmd_stop(const char *name)
{
	struct vmm_ctl *c;
	int rc = vmm_ctl_connect(name, &c);

	if (rc < 0) {
		fprintf(stderr, "ha-vm: no VM named %s here: %s\n", name, strerror(-rc));
		return 1;
	}
	rc = vmm_ctl_stop(c);
	vmm_ctl_close(c);
	return rc < 0 ? 1 : 0;
}

int main(int argc, char **argv)
{
	if (version_arg(argc, argv, "ha-vm"))
		return 0;
	log_init(argv[0]);
	if (argc >= 2 && !strcmp(argv[1], "run"))
		return cmd_run(argc - 1, argv + 1);
	if (argc == 2 && !strcmp(argv[1], "list"))
		return cmd_list();
	if (argc == 3 && !strcmp(argv[1], "stop"))
		return cmd_stop(argv[2]);
	if (argc == 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
		usage(stdout);
		return 0;
	}
	usage(stderr);
	return 2;
}
