#include "failover/preflight.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/time.h>
#include <unistd.h>

#include "common/sock.h"
#include "diskrepl/drbd.h"

__attribute__((format(printf, 2, 0))) static void line(const char *tag, const char *fmt, va_list ap)
{
	fputs(tag, stdout);
	vprintf(fmt, ap);
	putchar('\n');
	fflush(stdout);
}

void pf_ok(struct pf *p, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	line("ok   ", fmt, ap);
	va_end(ap);
}

void pf_fail(struct pf *p, const char *fmt, ...)
{
	va_list ap;

	p->failed++;
	va_start(ap, fmt);
	line("FAIL ", fmt, ap);
	va_end(ap);
}

void pf_warn(struct pf *p, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	line("warn ", fmt, ap);
	va_end(ap);
}

void pf_link(struct pf *p, const struct fo_tls *tls)
{
	if (tls)
		pf_ok(p, "TLS: credentials loaded (%s), private files mode 0600", fo_tls_mode(tls));
	else
		pf_warn(p, "UNSAFE: plain TCP (--insecure): only on a trusted, isolated network");
}

void pf_peer(struct pf *p, const char *what, const char *hostport, struct fo_tls *tls)
{
	struct timeval tv = {.tv_sec = 3};
	struct fo_tls_session *s = NULL;
	char err[320];
	int fd = sock_tcp_connect(hostport, 3000);

	if (fd < 0) {
		pf_fail(p, "%s %s cannot be reached: %s (is it running, and does the firewall let "
			   "this host in?)",
			what, hostport, sock_tcp_strerror(fd));
		return;
	}
	if (!tls) {
		pf_ok(p, "%s %s reachable (plain TCP: --insecure)", what, hostport);
		close(fd);
		return;
	}
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (fo_tls_handshake(tls, fd, &s, err, sizeof(err)) < 0)
		pf_fail(p, "%s %s reachable, but TLS failed: %s", what, hostport, err);
	else
		pf_ok(p, "%s %s reachable and authenticated (%s)", what, hostport,
		      fo_tls_session_desc(s));
	fo_tls_session_free(s);
	close(fd);
}

void pf_command(struct pf *p, const char *what, const char *cmd)
{
	char prog[512], path[1024];
	const char *env = getenv("PATH");
	size_t n = strcspn(cmd, " \t;&|<>()$`\"'");

	while (*cmd == ' ' || *cmd == '\t')
		cmd++, n = strcspn(cmd, " \t;&|<>()$`\"'");
	if (n == 0 || n >= sizeof(prog)) {
		pf_fail(p, "%s '%s': no program at its start to check", what, cmd);
		return;
	}
	memcpy(prog, cmd, n);
	prog[n] = '\0';
	if (strchr(prog, '/')) {
		if (access(prog, X_OK) == 0)
			pf_ok(p, "%s: %s is executable", what, prog);
		else
			pf_fail(p, "%s: %s: %s", what, prog, strerror(errno));
		return;
	}
	for (const char *d = env ? env : "/usr/sbin:/usr/bin:/sbin:/bin"; *d;) {
		size_t dl = strcspn(d, ":");

		snprintf(path, sizeof(path), "%.*s/%s", (int)dl, d, prog);
		if (dl && access(path, X_OK) == 0) {
			pf_ok(p, "%s: %s is executable", what, path);
			return;
		}
		d += dl + (d[dl] == ':');
	}
	pf_fail(p, "%s: no program '%s' in PATH", what, prog);
}

void pf_drbd(struct pf *p, const char *spec, bool primary)
{
	char ver[32], err[400];
	struct drbd_res r;
	int rc = drbd_version(ver, sizeof(ver));

	if (rc == -ENOPKG) {
		pf_fail(p, "DRBD %s: DRBD is not loaded (no /proc/drbd): modprobe drbd", spec);
		return;
	}
	if (rc < 0) {
		pf_fail(p, "DRBD %s: version %s: only DRBD 8.4 (Debian's kernel module) is supported",
			spec, ver[0] ? ver : "unknown");
		return;
	}
	rc = drbd_resolve(spec, &r, err, sizeof(err));
	if (rc == 0)
		rc = primary ? drbd_check_primary(&r, err, sizeof(err))
			     : drbd_check_secondary(&r, err, sizeof(err));
	if (rc < 0)
		pf_fail(p, "%s", err);
	else if (primary)
		pf_ok(p, "DRBD %s: %s (version %s)", spec, err, ver);
	else
		pf_ok(p, "DRBD %s (%s): Secondary here, protocol C (version %s)", spec, r.dev, ver);
}

/* MemAvailable of /proc/meminfo in MiB: 0 or -errno. */
static int mem_available_mib(uint64_t *out)
{
	FILE *f = fopen("/proc/meminfo", "re");
	char line[128];
	unsigned long long kib;
	int rc = -ENOENT;

	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "MemAvailable: %llu kB", &kib) == 1) {
			*out = kib >> 10;
			rc = 0;
			break;
		}
	fclose(f);
	return rc;
}

void pf_needs(struct pf *p, const struct hv_needs *n, const char *domain)
{
	char path[96];
	struct statvfs vfs;
	uint64_t avail = 0;

	for (unsigned i = 0; i < n->nnets; i++) {
		const char *name = n->nets[i].name;

		snprintf(path, sizeof(path), "/sys/class/net/%s%s", name,
			 n->nets[i].bridge ? "/bridge" : "");
		if (access(path, F_OK) == 0)
			pf_ok(p, "%s %s (%s of %s) is there", n->nets[i].bridge ? "bridge" : "interface",
			      name, n->nets[i].what, n->source);
		else
			pf_fail(p, "%s %s (%s of %s): no such %s on this host: the copy's network "
				   "could not be plugged in at failover; create it as on the primary",
				n->nets[i].bridge ? "bridge" : "interface", name, n->nets[i].what,
				n->source, n->nets[i].bridge ? "bridge" : "interface");
	}
	if (!n->mem_mib)
		return;
	if (n->host_free_known && n->host_free_mib >= n->mem_mib)
		pf_ok(p, "hypervisor memory: %llu MiB free for %s's %llu MiB",
		      (unsigned long long)n->host_free_mib, domain,
		      (unsigned long long)n->mem_mib);
	else if (n->host_free_known)
		pf_fail(p, "hypervisor memory: %llu MiB free, and %s needs %llu MiB (%s) for its "
			   "standby here (built at the first checkpoint, run after a failover): "
			   "free memory (other domains, dom0_mem)",
			(unsigned long long)n->host_free_mib, domain,
			(unsigned long long)n->mem_mib, n->source);
	if (mem_available_mib(&avail) == 0) {
		if (avail >= n->mem_mib)
			pf_ok(p, "memory here: %llu MiB available to hold the copy of %s's %llu MiB",
			      (unsigned long long)avail, domain, (unsigned long long)n->mem_mib);
		else
			pf_fail(p, "memory here: %llu MiB available, and ha-receive holds a copy of "
				   "%s's %llu MiB (%s): give this host (dom0) more memory",
				(unsigned long long)avail, domain, (unsigned long long)n->mem_mib,
				n->source);
	}
	if (!n->image_dir[0])
		return;
	if (statvfs(n->image_dir, &vfs) < 0) {
		pf_fail(p, "restore image directory %s: %s", n->image_dir, strerror(errno));
		return;
	}
	avail = (uint64_t)vfs.f_bavail * vfs.f_frsize >> 20;
	if (avail >= n->mem_mib)
		pf_ok(p, "restore image directory %s: %llu MiB free for an image of %llu MiB",
		      n->image_dir, (unsigned long long)avail, (unsigned long long)n->mem_mib);
	else
		pf_fail(p, "restore image directory %s: %llu MiB free, and a failover writes an "
			   "image of %llu MiB there: free space, or set HA_XEN_SAVE_DIR",
			n->image_dir, (unsigned long long)avail, (unsigned long long)n->mem_mib);
}

int pf_end(struct pf *p, const char *prog)
{
	if (p->failed)
		printf("%s: %u check(s) failed\n", prog, p->failed);
	else
		printf("%s: every check passed\n", prog);
	return p->failed ? 1 : 0;
}
