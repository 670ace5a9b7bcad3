/* The preflight of ha-protect --check and ha-receive --check (and of
 * ha-ctl check, which runs them): one line per check on stdout, "ok   ..."
 * or "FAIL ...: what to do" (or "warn ...": allowed, but unsafe), in the
 * spirit of keepalived -t. The daemon exits 0 when nothing failed, 1
 * otherwise.
 */
#ifndef HA_FAILOVER_PREFLIGHT_H
#define HA_FAILOVER_PREFLIGHT_H

#include <stdbool.h>

#include "failover/tls.h"
#include "hv/hv.h"

struct pf {
	unsigned failed;
};

void pf_ok(struct pf *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void pf_fail(struct pf *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void pf_warn(struct pf *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The link's security: TLS with the credentials loaded (their files'
 * modes were checked then), or a warning for plain TCP (TLS NULL). */
void pf_link(struct pf *p, const struct fo_tls *tls);

/* WHAT at HOSTPORT accepts a TCP connection within 3 s and, with TLS,
 * authenticates both ways (the peer logs a connection that sent no
 * stream). */
void pf_peer(struct pf *p, const char *what, const char *hostport, struct fo_tls *tls);

/* The program that CMD (run as /bin/sh -c CMD) starts with is there and
 * executable: a path, or a name found in PATH. */
void pf_command(struct pf *p, const char *what, const char *cmd);

/* DRBD resource SPEC (a name or /dev/drbdN): the module is 8.4, the
 * resource configured, and Primary here, connected and in sync with
 * protocol C (PRIMARY), or Secondary with protocol C. */
void pf_drbd(struct pf *p, const char *spec, bool primary);

/* What a copy of DOMAIN needs here (hv_restore_ops.needs): the bridges or
 * interfaces its network plugs into exist, the hypervisor and this host
 * have its memory, and the directory a failover writes its image to has
 * room for it. */
void pf_needs(struct pf *p, const struct hv_needs *n, const char *domain);

/* The exit status: 0 when nothing failed, 1 otherwise; says so. */
int pf_end(struct pf *p, const char *prog);

#endif
