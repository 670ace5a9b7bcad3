#include "failover/preflight.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include "common/sock.h"

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

int pf_end(struct pf *p, const char *prog)
{
	if (p->failed)
		printf("%s: %u check(s) failed\n", prog, p->failed);
	else
		printf("%s: every check passed\n", prog);
	return p->failed ? 1 : 0;
}
