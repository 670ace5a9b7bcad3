/* Socket helpers: TCP host:port endpoints, UNIX sockets, fd passing. All
 * return a file descriptor or 0 on success, and -errno on failure. */
#ifndef HA_COMMON_SOCK_H
#define HA_COMMON_SOCK_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* Splits "host:port", "[v6]:port" or ":port" (host empty). -EINVAL if malformed. */
int sock_split_hostport(const char *s, char *host, size_t hostlen, char *port, size_t portlen);
/* For option checks: s is HOST:PORT (or NULL, an option not given). When
 * not, says so on stderr as "PROG: WHAT 's': ..." and returns false. */
bool sock_hostport_option(const char *prog, const char *what, const char *s);

/* Both resolve hostport first: -EINVAL if it is not HOST:PORT, -ENXIO if
 * the host name does not resolve, -EAGAIN if the name service did not
 * answer. */
int sock_tcp_listen(const char *hostport, int backlog);
/* Connects with a timeout (ms, <= 0 for the system default). */
int sock_tcp_connect(const char *hostport, int timeout_ms);
/* What a failure of sock_tcp_listen or sock_tcp_connect means, in words
 * for an operator (strerror, where the errno says it already). */
const char *sock_tcp_strerror(int rc);
int sock_tcp_accept(int lfd);
/* TCP_NODELAY plus keepalive tuned to notice a dead peer in seconds. */
int sock_tcp_tune(int fd);

/* Creates the directories leading to path (mode 0755). */
int sock_mkdir_parents(const char *path);

/* Binds and listens on path, replacing a stale socket file. */
int sock_unix_listen(const char *path, int backlog);
int sock_unix_connect(const char *path);
/* Credentials of the process at the other end of a UNIX socket. */
int sock_peer_cred(int fd, pid_t *pid, uid_t *uid, gid_t *gid);

/* Sends len bytes of data together with one file descriptor (SCM_RIGHTS). */
int sock_send_fd(int sock, int fd, const void *data, size_t len);
/* Receives up to len bytes and at most one descriptor (*fd = -1 if none).
 * Returns the number of bytes received or -errno. */
ssize_t sock_recv_fd(int sock, int *fd, void *data, size_t len);

#endif
