/* TLS 1.3 on the replication link (GnuTLS), mutually authenticated.
 *
 * Two ways to authenticate a pair of hosts:
 *   - certificates: each side presents its certificate (--tls-cert,
 *     --tls-key) and accepts the peer only if the peer's certificate chains
 *     to the configured CA (--tls-ca), which should be a CA made for this
 *     pair or cluster alone;
 *   - a pre-shared key (--tls-psk FILE, one line "identity:hexkey", at least
 *     16 octets of key), with an ephemeral (EC)DHE exchange so a leaked key
 *     does not reveal past traffic.
 * Only TLS 1.3 is offered or accepted. After the handshake the server
 * sends one octet (0x01) inside TLS to confirm it accepted the client, so
 * both sides learn of a refusal during fo_tls_handshake(). The server
 * sends no session tickets,
 * so after the handshake only application data flows: one thread may send
 * while another receives (GnuTLS allows exactly that split).
 *
 * Functions return 0 or -errno; handshake failures also fill err with what
 * happened and what to check.
 */
#ifndef HA_FAILOVER_TLS_H
#define HA_FAILOVER_TLS_H

/* The options text both daemons print in their usage. */
#define FO_TLS_USAGE                                                                               \
	"      --tls-cert FILE   this host's certificate (PEM); with --tls-key, --tls-ca\n"        \
	"      --tls-key FILE    its private key (PEM)\n"                                          \
	"      --tls-ca FILE     CA certificate the peer's certificate must chain to\n"            \
	"      --tls-peer NAMES  with certificates: the peer's must be for one of NAMES\n"         \
	"                        (comma-separated; its subjectAltName DNS or CN)\n"              \
	"      --tls-psk FILE    pre-shared key instead of certificates: one line\n"               \
	"                        IDENTITY:HEXKEY, the same file on both hosts\n"                   \
	"      --insecure        plain TCP on the replication link: no encryption, no\n"           \
	"                        authentication (only on a trusted, isolated network)\n"

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include <sys/uio.h>

struct fo_tls_config {
	const char *cert; /* PEM certificate (chain) of this host */
	const char *key;  /* its PEM private key */
	const char *ca;	  /* PEM CA certificate(s) the peer must chain to */
	const char *psk;  /* PSK file: "identity:hexkey" */
	/* With certificates: the names (comma-separated) one of which the
	 * peer's certificate must carry; NULL: any the CA signed. */
	const char *peer;
};

/* The options of FO_TLS_USAGE, for a getopt_long table (<getopt.h>), with
 * codes above every other option code of the programs. */
enum {
	FO_TLS_OPT_CERT = 0x1000,
	FO_TLS_OPT_KEY,
	FO_TLS_OPT_CA,
	FO_TLS_OPT_PSK,
	FO_TLS_OPT_INSECURE,
	FO_TLS_OPT_PEER,
};
#define FO_TLS_OPTIONS                                                                             \
	{"tls-cert", required_argument, NULL, FO_TLS_OPT_CERT},                                    \
	    {"tls-key", required_argument, NULL, FO_TLS_OPT_KEY},                                  \
	    {"tls-ca", required_argument, NULL, FO_TLS_OPT_CA},                                    \
	    {"tls-psk", required_argument, NULL, FO_TLS_OPT_PSK},                                  \
	    {"insecure", no_argument, NULL, FO_TLS_OPT_INSECURE},                                  \
	    {"tls-peer", required_argument, NULL, FO_TLS_OPT_PEER}

/* Takes option C (what getopt_long returned) with ARG into CFG and
 * *INSECURE if it is one of FO_TLS_OPTIONS: true; false otherwise. */
bool fo_tls_option(int c, const char *arg, struct fo_tls_config *cfg, bool *insecure);

/* Credentials and role, shared by the connections of one daemon. */
struct fo_tls;
/* One authenticated connection. */
struct fo_tls_session;

/* Checks the configuration (exactly one of cert+key+ca or psk), loads the
 * files. -EINVAL with err set on a bad configuration or file. */
int fo_tls_new(const struct fo_tls_config *cfg, bool server, struct fo_tls **out, char *err,
	       size_t errlen);
/* Loads the same files again (a renewed certificate, a new key) for the
 * connections made from now on; the ones open keep theirs. On an error
 * (ERR says which) the credentials in use stay. 0 or -errno. */
int fo_tls_reload(struct fo_tls *t, char *err, size_t errlen);
void fo_tls_free(struct fo_tls *t);
/* The daemons' policy: TLS from cfg, or plain TCP only when insecure is
 * set (then *out = NULL). Neither, or both, is a usage error (-EINVAL, err
 * says what to give). */
int fo_tls_setup(const struct fo_tls_config *cfg, bool insecure, bool server, struct fo_tls **out,
		 char *err, size_t errlen);
/* "certificates" or "pre-shared key". */
const char *fo_tls_mode(const struct fo_tls *t);

/* Runs the handshake on the connected socket fd (not owned; blocking, so
 * the socket's timeouts bound it). -EPROTO: the peer failed to
 * authenticate or does not speak TLS 1.3 (err says which), -ETIMEDOUT,
 * or the socket error. */
int fo_tls_handshake(struct fo_tls *t, int fd, struct fo_tls_session **out, char *err,
		     size_t errlen);
/* Frees the session (the socket stays open). */
void fo_tls_session_free(struct fo_tls_session *s);
/* "TLS1.3 AES-256-GCM, peer CN=..." for the log. */
const char *fo_tls_session_desc(const struct fo_tls_session *s);
/* Whether the (authenticated) peer's certificate is for one of NAMES
 * (comma-separated); false with a PSK. */
bool fo_tls_session_peer_is(const struct fo_tls_session *s, const char *names);

/* Exact I/O with common/io.h's semantics. A read that sees no octet
 * within the socket's receive timeout fails with -EAGAIN; a record that
 * fails authentication with -EBADMSG (logged). */
ssize_t fo_tls_read(struct fo_tls_session *s, void *buf, size_t len);
int fo_tls_writev(struct fo_tls_session *s, const struct iovec *iov, int cnt);

#endif
