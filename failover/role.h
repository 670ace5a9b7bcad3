/* The role record: what this host last was in a pair, kept across
 * reboots in /var/lib/ha-protect/PAIR.role ($HA_STATE_DIR), so that a
 * host that lost the primary role (its secondary took over, its copy was
 * superseded at the witness, or it stopped without a clean end and cannot
 * tell) does not protect or run the domain again until an operator or the
 * cluster manager says so (ha-ctl role). docs/operator-guide.md, "Roles
 * across reboots", has the rules; this is their one implementation.
 *
 * The file is INI (read with libinih), written whole to a temporary file,
 * synced and renamed over the old one, so a crash leaves the old record or
 * the new one:
 *
 *   [role]
 *   role = primary          primary, secondary or lost
 *   protecting = yes        primary: an ha-protect run began and did not
 *                           record its end
 *   since = 1764806400      when it was written (seconds since the epoch)
 *   why = ...               what wrote it, for the operator
 */
#ifndef HA_FAILOVER_ROLE_H
#define HA_FAILOVER_ROLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <ini.h>

#define ROLE_DIR_DEFAULT "/var/lib/ha-protect"
/* A reason fits one line of libinih's (INI_MAX_LINE) with its key. */
#define ROLE_WHY_MAX (INI_MAX_LINE - 16)

enum role {
	ROLE_NONE, /* no record: the pair never ran here */
	ROLE_PRIMARY,
	ROLE_SECONDARY,
	ROLE_LOST,
};

struct role_rec {
	enum role role;
	bool protecting;
	int64_t since;
	char why[ROLE_WHY_MAX];
};

const char *role_name(enum role r);
/* "primary", "secondary" or "lost": 0, or -EINVAL. */
int role_parse(const char *s, enum role *out);

/* The record of the pair whose file is at CONF_PATH (NAME.conf gives
 * NAME, into PAIR): $HA_STATE_DIR or ROLE_DIR_DEFAULT, "/NAME.role". 0 or
 * -ENAMETOOLONG. */
int role_path(const char *conf_path, char *buf, size_t len, char *pair, size_t pairlen);

/* Reads the record at PATH into OUT: 0; -ENOENT when there is none (OUT
 * is ROLE_NONE); another -errno when it cannot be read or is not a role
 * record (ERR names the file, the line and what was expected). */
int role_load(const char *path, struct role_rec *out, char *err, size_t errlen);

/* role_path and role_load together, for a daemon's start: 0 with the
 * record in OUT (ROLE_NONE when there is none), or -errno with, in WHY,
 * what is wrong and that `ha-ctl role PAIR AS` writes a new record. */
int role_open(const char *conf_path, const char *as, char *path, size_t len, char *pair,
	      size_t pairlen, struct role_rec *out, char *why, size_t whylen);

/* Replaces the record at PATH atomically (creating its directory): 0 or
 * -errno. SINCE is set to now. */
int role_store(const char *path, enum role role, bool protecting, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* "primary since 2026-12-04 00:51:02 UTC (protecting xen:web to beta)". */
void role_describe(const struct role_rec *r, char *buf, size_t len);

/* What the record lets a daemon do at its start. */
enum role_verdict {
	ROLE_GO,      /* go on */
	ROLE_CONFIRM, /* ha-protect: only if the secondary answers first */
	ROLE_REFUSE,  /* no: an operator decides (ha-ctl role) */
};
/* For ha-protect (PRIMARY true) or ha-receive; WHY says what to do when
 * the answer is not ROLE_GO. ha-receive takes a refusal after "primary"
 * only while the domain runs on this host. */
enum role_verdict role_verdict(const struct role_rec *r, bool primary, const char *pair,
			       char *why, size_t len);

#endif
