/* What a copy of a Xen domain needs on the secondary, for ha-receive
 * --check: read from the domain's xl configuration on this host (the file
 * operators keep on both hosts: HA_XEN_CONFIG, else /etc/xen/NAME.cfg or
 * /etc/xen/NAME) with libxlutil, xl's own parser, and from the hypervisor's
 * free memory (libxenctrl). Xen's headers need GNU C: as hv/xen_int.h,
 * before any system header. */
#undef __STRICT_ANSI__
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <xenctrl.h>
#include <libxlutil.h>

#include "hv/xen.h"

/* xl's default bridge for a vif without bridge= (libxl_nic's default). */
#define XL_DEFAULT_BRIDGE "xenbr0"

static int find_config(const char *name, char *path, size_t len)
{
	const char *env = getenv("HA_XEN_CONFIG");
	const char *suffixes[] = {".cfg", ""};

	if (env && env[0]) {
		snprintf(path, len, "%s", env);
		return 0;
	}
	for (size_t i = 0; i < sizeof(suffixes) / sizeof(suffixes[0]); i++) {
		snprintf(path, len, "/etc/xen/%s%s", name, suffixes[i]);
		if (access(path, R_OK) == 0)
			return 0;
	}
	path[0] = '\0';
	return -ENOENT;
}

/* The bridge= of one vif spec ("mac=...,bridge=xenbr1,script=..."), or
 * xl's default. */
static void vif_bridge(const char *spec, char *out, size_t len)
{
	const char *p = spec;

	snprintf(out, len, "%s", XL_DEFAULT_BRIDGE);
	while (p && *p) {
		while (*p == ' ' || *p == '\t')
			p++;
		if (!strncmp(p, "bridge=", 7)) {
			const char *v = p + 7, *end = strchr(v, ',');
			size_t n = end ? (size_t)(end - v) : strlen(v);

			while (n && (v[n - 1] == ' ' || v[n - 1] == '\t'))
				n--;
			snprintf(out, len, "%.*s", (int)n, v);
			return;
		}
		p = strchr(p, ',');
		if (p)
			p++;
	}
}

int hv_xen_config_needs(const char *path, struct hv_needs *out, char *err, size_t errlen)
{
	char *report = NULL;
	size_t report_len = 0;
	FILE *rf = open_memstream(&report, &report_len);
	XLU_Config *cfg;
	XLU_ConfigList *vifs;
	long mem = 0, maxmem = 0;
	int nvifs = 0, rc;

	if (!rf)
		return -errno;
	cfg = xlu_cfg_init(rf, path);
	if (!cfg) {
		fclose(rf);
		free(report);
		return -ENOMEM;
	}
	rc = xlu_cfg_readfile(cfg, path);
	fflush(rf);
	if (rc) {
		/* xl's parser says where: "FILE:LINE: config parsing error ...". */
		size_t n = report_len;

		while (n && report[n - 1] == '\n')
			n--;
		if (n)
			snprintf(err, errlen, "%.*s", (int)n, report);
		else
			snprintf(err, errlen, "%s: %s", path, strerror(rc));
		rc = rc > 0 ? -rc : -EINVAL;
		goto out;
	}
	snprintf(out->source, sizeof(out->source), "%s", path);
	if (xlu_cfg_get_long(cfg, "memory", &mem, 1) == 0 && mem > 0)
		out->mem_mib = (uint64_t)mem;
	if (xlu_cfg_get_long(cfg, "maxmem", &maxmem, 1) == 0 && maxmem > mem)
		out->mem_mib = (uint64_t)maxmem;
	if (xlu_cfg_get_list(cfg, "vif", &vifs, &nvifs, 1) == 0) {
		for (int i = 0; i < nvifs && out->nnets < HV_NEEDS_MAX_NETS; i++) {
			const char *spec = xlu_cfg_get_listitem(vifs, i);

			if (!spec)
				continue;
			vif_bridge(spec, out->nets[out->nnets].name,
				   sizeof(out->nets[out->nnets].name));
			out->nets[out->nnets].bridge = 1;
			snprintf(out->nets[out->nnets].what, sizeof(out->nets[out->nnets].what),
				 "vif %d", i);
			out->nnets++;
		}
	}
	rc = 0;
out:
	xlu_cfg_destroy(cfg);
	fclose(rf);
	free(report);
	return rc;
}

int hv_xen_needs(const char *name, struct hv_needs *out, char *err, size_t errlen)
{
	char path[256];
	xc_interface *xch;
	xc_physinfo_t phys = {0};
	const char *dir;
	int rc = 0;

	memset(out, 0, sizeof(*out));
	if (find_config(name, path, sizeof(path)) == 0)
		rc = hv_xen_config_needs(path, out, err, errlen);
	if (rc < 0)
		return rc;
	/* Not in a dom0 (the preflight says so already): libxenctrl would
	 * complain on stderr. */
	xch = access("/dev/xen/privcmd", R_OK | W_OK) == 0 ? xc_interface_open(NULL, NULL, 0) : NULL;
	if (xch) {
		if (xc_physinfo(xch, &phys) == 0) {
			out->host_free_mib = (uint64_t)phys.free_pages * 4096 >> 20;
			out->host_free_known = 1;
		}
		xc_interface_close(xch);
	}
	/* xl restore reads the image from a file only with HA_XEN_RESTORE_FILE. */
	if (getenv("HA_XEN_RESTORE_FILE")) {
		dir = getenv("HA_XEN_SAVE_DIR");
		snprintf(out->image_dir, sizeof(out->image_dir), "%s", dir && dir[0] ? dir : "/tmp");
	}
	return 0;
}
