#include "common/version.h"

#include <string.h>

#include <gnutls/gnutls.h>
#include <zstd.h>

#include "checkpoint/stream_format.h"

void version_print(FILE *f, const char *prog)
{
	fprintf(f, "%s %s\n", prog, HA_VERSION);
	fprintf(f, "stream protocol: writes %u, reads %u to %u; back channel %u\n",
		CKPT_IHDR_VERSION, CKPT_IHDR_VERSION_MIN, CKPT_IHDR_VERSION,
		CKPT_IHDR_BACK_VERSION);
	fprintf(f, "hypervisors: xen (libxenctrl, libxenguest), kvm (ha-vm)\n");
	fprintf(f, "output buffering: plug qdisc, nfqueue\n");
	fprintf(f, "disks: built-in replica (nbd), drbd\n");
	fprintf(f, "libraries: gnutls %s, zstd %s\n", gnutls_check_version(NULL),
		ZSTD_versionString());
}

int version_arg(int argc, char **argv, const char *prog)
{
	if (argc != 2 || strcmp(argv[1], "--version"))
		return 0;
	version_print(stdout, prog);
	return 1;
}
