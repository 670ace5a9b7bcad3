/* libFuzzer harness: the pair file (common/conf.c, read with libinih).
 *
 * Octet 0 picks the daemon (bit 0: ha-protect, else ha-receive) and
 * whether this host is named with --host a (bit 1) or b; the rest is the
 * file. Checked: conf_expand() returns 0 or a negative errno; on 0 every
 * option it adds is "--KEY" or "--KEY=VALUE" of the daemon's table and
 * names its file and line, the command line's own arguments follow
 * unchanged, ha-protect's last two arguments are the domain and the
 * peer's address, and the pair names two different [host] sections and a
 * domain with a kind. Nothing leaks (ASan).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "common/conf.h"

static const struct option opts[] = {
	CONF_OPTIONS,
	{"interval", required_argument, NULL, 'i'},
	{"timeout", required_argument, NULL, 1},
	{"tls-psk", required_argument, NULL, 2},
	{"insecure", no_argument, NULL, 3},
	{"disk", required_argument, NULL, 4},
	{"listen", required_argument, NULL, 5},
	{"backend", required_argument, NULL, 6},
	{"domain", required_argument, NULL, 7},
	{"help", no_argument, NULL, 'h'},
	{0},
};

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	/* conf_expand() says what is wrong on stderr: quiet here. Only the
	 * stream is swapped; descriptor 2, where libFuzzer and the
	 * sanitizers report, stays. */
	FILE *null = fopen("/dev/null", "w");

	if (null)
		stderr = null;
	return 0;
}

static bool is_opt(const char *arg)
{
	size_t n;

	if (strncmp(arg, "--", 2))
		return false;
	n = strcspn(arg + 2, "=");
	for (const struct option *o = opts; o->name; o++)
		if (strlen(o->name) == n && !strncmp(o->name, arg + 2, n))
			return (o->has_arg == no_argument) == !arg[2 + n];
	return false;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char path[64], prog[] = "ha-x", o1[] = "--config", o3[] = "--host", ha[] = "a", hb[] = "b",
					     tail[] = "--timeout=7";
	enum conf_role role;
	struct conf_args a;
	int fd, rc, argc;

	if (size < 1)
		return 0;
	role = data[0] & 1 ? CONF_PROTECT : CONF_RECEIVE;
	fd = memfd_create("pair.conf", MFD_CLOEXEC);
	if (fd < 0 || write(fd, data + 1, size - 1) != (ssize_t)(size - 1))
		abort();
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	char *argv[] = {prog, o1, path, o3, data[0] & 2 ? ha : hb, tail, NULL};

	argc = 6;
	rc = conf_expand("ha-x", role, opts, argc, argv, &a);
	if (rc > 0)
		abort();
	if (rc == 0) {
		int n = a.argc, own = argc - 1, first;

		/* The pair: two hosts, a domain with a kind. */
		if (!a.have_pair || !a.pair.domain || !strchr(a.pair.domain, ':') ||
		    !strcmp(a.pair.self, a.pair.peer) || !a.pair.port)
			abort();
		if (role == CONF_PROTECT) {
			if (n < own + 3 || strcmp(a.argv[n - 2], a.pair.domain) ||
			    !a.origin[n - 1] || !a.origin[n - 2])
				abort();
			n -= 2;
		}
		first = n - own;
		/* The command line's own, unchanged, after the file's. */
		for (int i = 0; i < own; i++)
			if (strcmp(a.argv[first + i], argv[1 + i]) || a.origin[first + i])
				abort();
		for (int i = 1; i < first; i++)
			if (!is_opt(a.argv[i]) || !a.origin[i] || !strstr(a.origin[i], path))
				abort();
		conf_args_free(&a);
	}
	close(fd);
	return 0;
}
