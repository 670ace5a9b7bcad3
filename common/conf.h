/* The pair file: one configuration per protected pair, read by both hosts
 * (/etc/ha-protect/PAIR.conf; man/ha-protect.conf.5). INI syntax, read
 * with libinih:
 *
 *   [pair]           domain = xen:web      port = 7788 (default)
 *   [host alpha]     address = 10.0.0.1    (exactly two [host NAME])
 *   [host beta]      address = 10.0.0.2
 *   [common]         options of both daemons (tls-psk = ..., witness = ...)
 *   [protect]        options of ha-protect alone
 *   [receive]        options of ha-receive alone
 *
 * A key is a long option of the daemon, without its dashes; a flag takes
 * yes or no. conf_expand() turns the file into options placed before the
 * command line's, so that a flag given there overrides the file (repeated
 * options such as --disk add up). This host is the [host] section named by
 * --host, else by uname -n (or its first label).
 *
 * ha-protect gets DOMAIN and PEER (the other host's address:port) as its
 * arguments; ha-receive gets --listen (this host's address:port),
 * --backend and --domain, before the file's own [receive] options.
 */
#ifndef HA_COMMON_CONF_H
#define HA_COMMON_CONF_H

#include <getopt.h>
#include <stddef.h>

#define CONF_DIR_DEFAULT "/etc/ha-protect"

/* The options of the programs that read a pair file, for their getopt_long
 * tables; codes above every other option code. */
enum {
	CONF_OPT_PAIR = 0x1100,
	CONF_OPT_CONFIG,
	CONF_OPT_HOST,
};
#define CONF_OPTIONS                                                                               \
	{"pair", required_argument, NULL, CONF_OPT_PAIR},                                          \
	    {"config", required_argument, NULL, CONF_OPT_CONFIG},                                  \
	    {"host", required_argument, NULL, CONF_OPT_HOST}
#define CONF_USAGE                                                                                 \
	"      --pair NAME       read the pair file /etc/ha-protect/NAME.conf\n"                  \
	"                        ($HA_CONF_DIR/NAME.conf); options given here\n"                  \
	"                        override it\n"                                                  \
	"      --config FILE     read the pair file FILE\n"                                        \
	"      --host NAME       this host's [host NAME] in it (default: uname -n)\n"

enum conf_role {
	CONF_PROTECT,
	CONF_RECEIVE,
};

/* What a pair file says, once read. */
struct conf_pair {
	char *path;
	char *domain;	    /* as ha-protect names it: xen:web, kvm:web */
	unsigned port;	    /* replication port on both hosts */
	char *self, *peer;  /* the two [host] names */
	char *self_address; /* their addresses */
	char *peer_address;
};

/* The expanded command line; argv[i] came from origin[i] ("FILE:LINE") or
 * from the command line (NULL). */
struct conf_args {
	int argc;
	char **argv;
	char **origin;
	struct conf_pair pair;
	int have_pair;
};

/* With no --pair or --config in ARGV: OUT holds ARGV as it is. Otherwise
 * reads the file and builds OUT as described above; OPTS is the program's
 * getopt_long table, which the file's keys must be in. 0, or a negative
 * errno after printing what is wrong (file, line, what was expected). */
int conf_expand(const char *prog, enum conf_role role, const struct option *opts, int argc,
		char **argv, struct conf_args *out);
void conf_args_free(struct conf_args *a);

/* "FILE:LINE" for the option at argv index I of the expanded command line
 * in use (conf_use()), or NULL: what common/opt.c names in an error. */
void conf_use(const struct conf_args *a);
const char *conf_origin(int i);

/* Reads the pair file at PATH alone (for ha-ctl check): 0 or -errno,
 * with what is wrong in ERR. HOST as for --host (NULL: uname -n). */
int conf_read_pair(const char *path, const char *host, struct conf_pair *out, char *err,
		   size_t errlen);
void conf_pair_free(struct conf_pair *p);

/* On a reload: the log level the pair file at PATH sets now (log-level in
 * [common] or the ROLE's section), unless the command line set one; says
 * on the log what it did. */
void conf_reload_log_level(const char *path, enum conf_role role);

/* The path of pair NAME: $HA_CONF_DIR or CONF_DIR_DEFAULT, "/NAME.conf". */
int conf_pair_path(const char *name, char *buf, size_t len);

#endif
