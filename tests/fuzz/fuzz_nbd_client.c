/* libFuzzer harness: the NBD client's handshake and reply parsing, fed
 * arbitrary server bytes over a socketpair. */
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/log.h"
#include "nbd/nbd.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int once;
	struct nbd_client *c;
	uint8_t buf[4096];
	int sv[2];

	if (!once) {
		signal(SIGPIPE, SIG_IGN);
		log_set_level(LOG_LVL_ERROR);
		once = 1;
	}
	if (size > 100000 || socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0)
		return 0;
	/* Everything the "server" says, then end of its output. */
	if (write(sv[1], data, size) != (ssize_t)size) {
		close(sv[0]);
		close(sv[1]);
		return 0;
	}
	shutdown(sv[1], SHUT_WR);
	if (nbd_client_connect_fd(sv[0], "exp", 1000, &c) == 0) {
		if (nbd_client_size(c) >= sizeof(buf))
			nbd_client_pread(c, buf, sizeof(buf), 0);
		nbd_client_pwrite(c, buf, 512, 0, true);
		nbd_client_flush(c);
		nbd_client_close(c);
	}
	close(sv[1]);
	return 0;
}
