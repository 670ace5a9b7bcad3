#include "failover/tls.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"

/* TLS 1.3 only. With a PSK, only the (EC)DHE-PSK exchanges: forward
 * secrecy even if the shared key leaks later. AES-GCM first, on both
 * sides: GnuTLS may rank ChaCha20 first when it doubts the CPU's AES
 * support, and its ChaCha20 ran at an eighth of AES-256-GCM's speed on the
 * test machine (docs/benchmarks.md). */
#define PRIO_CIPHERS ":-CIPHER-ALL:+AES-256-GCM:+AES-128-GCM:+CHACHA20-POLY1305:%SERVER_PRECEDENCE"
#define PRIO_CERT "NORMAL:-VERS-ALL:+VERS-TLS1.3" PRIO_CIPHERS
#define PRIO_PSK "NORMAL:-VERS-ALL:+VERS-TLS1.3:-KX-ALL:+ECDHE-PSK:+DHE-PSK" PRIO_CIPHERS

#define PSK_MIN 16
#define PSK_MAX 64
/* The largest plaintext of one TLS record. */
#define REC_MAX 16384

/* What the files hold, loaded: a reload (fo_tls_reload) loads a new set,
 * and a session keeps the set it started with until it ends. */
struct creds {
	atomic_int refs;
	gnutls_certificate_credentials_t xcred;
	gnutls_psk_client_credentials_t pskc;
	gnutls_psk_server_credentials_t psks;
	char identity[128];
	unsigned char key[PSK_MAX];
	size_t keylen;
};

struct fo_tls {
	bool server;
	bool psk_mode;
	char *peers; /* --tls-peer: comma-separated names, or NULL */
	char *cert, *key, *ca, *psk; /* the files, read again on a reload */
	pthread_mutex_t mu;
	struct creds *cur; /* under mu */
};

struct fo_tls_session {
	gnutls_session_t s;
	struct fo_tls *t;
	struct creds *c; /* a reference */
	bool wrong_peer;	/* the certificate chained, but is for another name */
	unsigned verify_status; /* why it did not chain (gnutls_certificate_status_t) */
	char desc[256];
	/* Small writes are gathered into full records (the link serialises
	 * writers, so one buffer suffices). */
	size_t wlen;
	uint8_t wbuf[REC_MAX];
};

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = tolower(c);
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* One line "identity:hexkey" (psktool's format). */
static int load_psk(struct creds *t, const char *path, char *err, size_t errlen)
{
	char line[512];
	struct stat st;
	ssize_t n;
	char *colon, *hex;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	int rc = -EINVAL;

	if (fd < 0) {
		snprintf(err, errlen, "cannot open the PSK file %s: %s", path, strerror(errno));
		return -errno;
	}
	if (fstat(fd, &st) == 0 && (st.st_mode & 077)) {
		snprintf(err, errlen,
			 "refusing the PSK file %s: other users may read it (mode %03o); chmod 600 it",
			 path, (unsigned)(st.st_mode & 0777));
		close(fd);
		return -EACCES;
	}
	n = read(fd, line, sizeof(line) - 1);
	close(fd);
	if (n < 0) {
		snprintf(err, errlen, "cannot read the PSK file %s: %s", path, strerror(errno));
		return -EIO;
	}
	line[n] = '\0';
	while (n > 0 && isspace((unsigned char)line[n - 1]))
		line[--n] = '\0';
	colon = strrchr(line, ':');
	if (!colon || colon == line || (size_t)(colon - line) >= sizeof(t->identity) ||
	    strchr(line, '\n')) {
		snprintf(err, errlen,
			 "the PSK file %s must hold one line IDENTITY:HEXKEY (see the operator "
			 "guide for how to make one)",
			 path);
		goto out;
	}
	*colon = '\0';
	hex = colon + 1;
	size_t hl = strlen(hex);
	if (hl % 2 || hl / 2 < PSK_MIN || hl / 2 > PSK_MAX) {
		snprintf(err, errlen,
			 "the key in %s must be %d to %d octets in hex, not %zu digits", path,
			 PSK_MIN, PSK_MAX, hl);
		goto out;
	}
	for (size_t i = 0; i < hl / 2; i++) {
		int hi = hexval(hex[2 * i]), lo = hexval(hex[2 * i + 1]);

		if (hi < 0 || lo < 0) {
			snprintf(err, errlen, "the key in %s is not hexadecimal", path);
			goto out;
		}
		t->key[i] = (unsigned char)(hi << 4 | lo);
	}
	t->keylen = hl / 2;
	memcpy(t->identity, line, (size_t)(colon - line) + 1);
	rc = 0;
out:
	explicit_bzero(line, sizeof(line));
	return rc;
}

static int psk_server_key(gnutls_session_t s, const char *username, gnutls_datum_t *key)
{
	struct creds *t = ((struct fo_tls_session *)gnutls_session_get_ptr(s))->c;

	/* Not authenticated yet: what the peer calls itself is not logged. */
	if (strcmp(username, t->identity) != 0) {
		log_warn("TLS: the peer offered another PSK identity than '%s'", t->identity);
		return -1;
	}
	key->data = gnutls_malloc(t->keylen);
	if (!key->data)
		return -1;
	memcpy(key->data, t->key, t->keylen);
	key->size = (unsigned)t->keylen;
	return 0;
}

/* Whether the peer's certificate of S is for one of NAMES (comma-separated:
 * subjectAltName DNS or CN, no wildcards). */
static bool cert_is_for(gnutls_session_t s, const char *names)
{
	unsigned n = 0;
	const gnutls_datum_t *certs = gnutls_certificate_get_peers(s, &n);
	gnutls_x509_crt_t crt;
	bool ok = false;
	char buf[256], *save = NULL;

	if (!certs || !n || gnutls_x509_crt_init(&crt) < 0)
		return false;
	snprintf(buf, sizeof(buf), "%s", names);
	if (gnutls_x509_crt_import(crt, &certs[0], GNUTLS_X509_FMT_DER) == 0)
		for (char *name = strtok_r(buf, ",", &save); name && !ok;
		     name = strtok_r(NULL, ",", &save))
			ok = gnutls_x509_crt_check_hostname2(crt, name,
							     GNUTLS_VERIFY_DO_NOT_ALLOW_WILDCARDS);
	gnutls_x509_crt_deinit(crt);
	return ok;
}

bool fo_tls_session_peer_is(const struct fo_tls_session *ss, const char *names)
{
	return !ss->t->psk_mode && cert_is_for(ss->s, names);
}

/* GnuTLS calls this in the handshake: the peer's certificate must chain to
 * --tls-ca and, with --tls-peer, be for one of its names. */
static int verify_peer(gnutls_session_t s)
{
	struct fo_tls_session *ss = gnutls_session_get_ptr(s);
	unsigned status = 0;
	int rc = gnutls_certificate_verify_peers2(s, &status);

	if (rc < 0)
		return rc;
	if (status) {
		ss->verify_status = status;
		return GNUTLS_E_CERTIFICATE_VERIFICATION_ERROR;
	}
	if (!ss->t->peers)
		return 0;
	ss->wrong_peer = !cert_is_for(s, ss->t->peers);
	return ss->wrong_peer ? GNUTLS_E_CERTIFICATE_ERROR : 0;
}

static void creds_put(struct creds *c)
{
	if (!c || atomic_fetch_sub(&c->refs, 1) != 1)
		return;
	if (c->xcred)
		gnutls_certificate_free_credentials(c->xcred);
	if (c->pskc)
		gnutls_psk_free_client_credentials(c->pskc);
	if (c->psks)
		gnutls_psk_free_server_credentials(c->psks);
	explicit_bzero(c->key, sizeof(c->key));
	free(c);
}

/* Loads T's files into a new set of credentials. */
static int creds_load(const struct fo_tls *t, struct creds **out, char *err, size_t errlen)
{
	struct creds *c = calloc(1, sizeof(*c));
	int rc;

	if (!c)
		return -ENOMEM;
	atomic_init(&c->refs, 1);
	if (t->psk_mode) {
		gnutls_datum_t k;

		rc = load_psk(c, t->psk, err, errlen);
		if (rc < 0)
			goto fail;
		k.data = c->key;
		k.size = (unsigned)c->keylen;
		if (t->server) {
			rc = gnutls_psk_allocate_server_credentials(&c->psks);
			if (rc == 0)
				gnutls_psk_set_server_credentials_function(c->psks, psk_server_key);
		} else {
			rc = gnutls_psk_allocate_client_credentials(&c->pskc);
			if (rc == 0)
				rc = gnutls_psk_set_client_credentials(c->pskc, c->identity, &k,
								       GNUTLS_PSK_KEY_RAW);
		}
		if (rc < 0) {
			snprintf(err, errlen, "PSK credentials: %s", gnutls_strerror(rc));
			rc = -ENOMEM;
			goto fail;
		}
	} else {
		struct stat st;

		rc = gnutls_certificate_allocate_credentials(&c->xcred);
		if (rc < 0) {
			snprintf(err, errlen, "certificate credentials: %s", gnutls_strerror(rc));
			rc = -ENOMEM;
			goto fail;
		}
		rc = gnutls_certificate_set_x509_trust_file(c->xcred, t->ca, GNUTLS_X509_FMT_PEM);
		if (rc <= 0) {
			snprintf(err, errlen, "no CA certificate loaded from %s: %s", t->ca,
				 rc < 0 ? gnutls_strerror(rc) : "the file holds none");
			rc = -EINVAL;
			goto fail;
		}
		if (stat(t->key, &st) == 0 && (st.st_mode & 077)) {
			snprintf(err, errlen,
				 "refusing the private key %s: other users may read it (mode %03o); "
				 "chmod 600 it",
				 t->key, (unsigned)(st.st_mode & 0777));
			rc = -EACCES;
			goto fail;
		}
		rc = gnutls_certificate_set_x509_key_file(c->xcred, t->cert, t->key,
							  GNUTLS_X509_FMT_PEM);
		if (rc < 0) {
			snprintf(err, errlen,
				 "cannot use certificate %s with key %s: %s (both PEM, and the key "
				 "must match the certificate)",
				 t->cert, t->key, gnutls_strerror(rc));
			rc = -EINVAL;
			goto fail;
		}
	}
	*out = c;
	return 0;
fail:
	creds_put(c);
	return rc;
}

static int dup_path(char **dst, const char *src)
{
	return !src || (*dst = strdup(src)) ? 0 : -ENOMEM;
}

int fo_tls_new(const struct fo_tls_config *cfg, bool server, struct fo_tls **out, char *err,
	       size_t errlen)
{
	bool certs = cfg->cert || cfg->key || cfg->ca;
	struct fo_tls *t;
	int rc;

	if (certs == !!cfg->psk) {
		snprintf(err, errlen,
			 "give either --tls-cert, --tls-key and --tls-ca, or --tls-psk");
		return -EINVAL;
	}
	if (certs && !(cfg->cert && cfg->key && cfg->ca)) {
		snprintf(err, errlen,
			 "certificate mode needs all of --tls-cert, --tls-key and "
			 "--tls-ca");
		return -EINVAL;
	}
	if (cfg->peer && !certs) {
		snprintf(err, errlen,
			 "--tls-peer names the peer's certificate: it needs --tls-cert, --tls-key "
			 "and --tls-ca (with a PSK, whoever holds the key is the peer)");
		return -EINVAL;
	}
	if (cfg->peer && (!cfg->peer[0] || strlen(cfg->peer) >= 256 || cfg->peer[0] == ',')) {
		snprintf(err, errlen, "--tls-peer wants one or more names, comma-separated");
		return -EINVAL;
	}
	t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	pthread_mutex_init(&t->mu, NULL);
	t->server = server;
	t->psk_mode = !certs;
	rc = -ENOMEM;
	if (dup_path(&t->peers, cfg->peer) < 0 || dup_path(&t->cert, cfg->cert) < 0 ||
	    dup_path(&t->key, cfg->key) < 0 || dup_path(&t->ca, cfg->ca) < 0 ||
	    dup_path(&t->psk, cfg->psk) < 0 || (rc = creds_load(t, &t->cur, err, errlen)) < 0) {
		if (rc == -ENOMEM)
			snprintf(err, errlen, "out of memory");
		fo_tls_free(t);
		return rc;
	}
	*out = t;
	return 0;
}

int fo_tls_reload(struct fo_tls *t, char *err, size_t errlen)
{
	struct creds *c, *old;
	int rc = creds_load(t, &c, err, errlen);

	if (rc < 0)
		return rc;
	pthread_mutex_lock(&t->mu);
	old = t->cur;
	t->cur = c;
	pthread_mutex_unlock(&t->mu);
	creds_put(old);
	return 0;
}

bool fo_tls_option(int c, const char *arg, struct fo_tls_config *cfg, bool *insecure)
{
	switch (c) {
	case FO_TLS_OPT_CERT:
		cfg->cert = arg;
		return true;
	case FO_TLS_OPT_KEY:
		cfg->key = arg;
		return true;
	case FO_TLS_OPT_CA:
		cfg->ca = arg;
		return true;
	case FO_TLS_OPT_PSK:
		cfg->psk = arg;
		return true;
	case FO_TLS_OPT_INSECURE:
		*insecure = true;
		return true;
	case FO_TLS_OPT_PEER:
		cfg->peer = arg;
		return true;
	default:
		return false;
	}
}

int fo_tls_setup(const struct fo_tls_config *cfg, bool insecure, bool server, struct fo_tls **out,
		 char *err, size_t errlen)
{
	bool any = cfg->cert || cfg->key || cfg->ca || cfg->psk;

	*out = NULL;
	if (insecure && any) {
		snprintf(err, errlen, "--insecure and --tls-* exclude each other");
		return -EINVAL;
	}
	if (insecure)
		return 0;
	if (!any) {
		snprintf(err, errlen,
			 "the replication link needs TLS: give --tls-cert, --tls-key and "
			 "--tls-ca, or --tls-psk FILE (see the operator guide), or --insecure "
			 "for plain TCP on a trusted network");
		return -EINVAL;
	}
	return fo_tls_new(cfg, server, out, err, errlen);
}

void fo_tls_free(struct fo_tls *t)
{
	if (!t)
		return;
	creds_put(t->cur);
	pthread_mutex_destroy(&t->mu);
	free(t->peers);
	free(t->cert);
	free(t->key);
	free(t->ca);
	free(t->psk);
	free(t);
}

const char *fo_tls_mode(const struct fo_tls *t)
{
	return t->psk_mode ? "pre-shared key" : "certificates";
}

/* The peer's subject, for the log. */
static void peer_name(struct fo_tls_session *ss, char *buf, size_t len)
{
	unsigned n = 0;
	const gnutls_datum_t *certs = gnutls_certificate_get_peers(ss->s, &n);
	gnutls_x509_crt_t crt;
	gnutls_datum_t dn = {0};

	snprintf(buf, len, "?");
	if (!certs || !n || gnutls_x509_crt_init(&crt) < 0)
		return;
	if (gnutls_x509_crt_import(crt, &certs[0], GNUTLS_X509_FMT_DER) == 0 &&
	    gnutls_x509_crt_get_dn3(crt, &dn, 0) == 0) {
		snprintf(buf, len, "%.*s", (int)dn.size, (const char *)dn.data);
		gnutls_free(dn.data);
	}
	gnutls_x509_crt_deinit(crt);
}

static void explain(struct fo_tls *t, struct fo_tls_session *ss, int grc, char *err, size_t errlen)
{
	gnutls_datum_t txt = {0};
	unsigned status;

	if (ss->wrong_peer) {
		snprintf(err, errlen,
			 "the peer's certificate is signed by our CA but is for none of the "
			 "names in --tls-peer (%s)",
			 t->peers);
		return;
	}
	switch (grc) {
	case GNUTLS_E_CERTIFICATE_VERIFICATION_ERROR:
		status = ss->verify_status;
		if (gnutls_certificate_verification_status_print(status, GNUTLS_CRT_X509, &txt, 0) <
		    0)
			txt.data = NULL;
		snprintf(err, errlen,
			 "the peer's certificate was rejected (%s); it must be signed by the CA "
			 "in --tls-ca",
			 txt.data ? (const char *)txt.data : "verification failed");
		gnutls_free(txt.data);
		return;
	case GNUTLS_E_NO_CERTIFICATE_FOUND:
		snprintf(err, errlen,
			 "the peer presented no certificate; give it --tls-cert and "
			 "--tls-key");
		return;
	case GNUTLS_E_FATAL_ALERT_RECEIVED:
		snprintf(err, errlen,
			 "the peer refused the handshake (alert: %s); check on both hosts %s",
			 gnutls_alert_get_name(gnutls_alert_get(ss->s)),
			 t->psk_mode ? "that the PSK files hold the same identity and key"
				     : "that each host's certificate is signed by the CA the "
				       "other host has in --tls-ca");
		return;
	case GNUTLS_E_UNEXPECTED_PACKET_LENGTH:
	case GNUTLS_E_UNSUPPORTED_VERSION_PACKET:
	case GNUTLS_E_UNEXPECTED_PACKET:
	case GNUTLS_E_UNEXPECTED_HANDSHAKE_PACKET:
	case GNUTLS_E_RECORD_OVERFLOW:
		snprintf(err, errlen,
			 "the peer does not speak TLS 1.3 (%s): is it running with --insecure? "
			 "Both hosts need the same TLS settings",
			 gnutls_strerror(grc));
		return;
	case GNUTLS_E_PREMATURE_TERMINATION:
		snprintf(err, errlen,
			 "the peer closed the connection during the TLS handshake: it refused "
			 "our credentials, or it expects plain TCP (--insecure); see its log");
		return;
	case GNUTLS_E_DECRYPTION_FAILED:
	case GNUTLS_E_RECEIVED_ILLEGAL_PARAMETER:
	case GNUTLS_E_USER_ERROR:
	case GNUTLS_E_KEYFILE_ERROR:
	case GNUTLS_E_INSUFFICIENT_CREDENTIALS:
		if (t->psk_mode) {
			snprintf(err, errlen,
				 "the peer's pre-shared key does not match ours (%s): both hosts "
				 "need the same PSK file",
				 gnutls_strerror(grc));
			return;
		}
		break;
	default:
		break;
	}
	snprintf(err, errlen, "TLS handshake failed: %s; check the TLS settings on both hosts",
		 gnutls_strerror(grc));
}

int fo_tls_handshake(struct fo_tls *t, int fd, struct fo_tls_session **out, char *err,
		     size_t errlen)
{
	struct fo_tls_session *ss = calloc(1, sizeof(*ss));
	const char *errpos = NULL;
	char peer[200];
	int grc, rc;

	if (!ss)
		return -ENOMEM;
	grc = gnutls_init(&ss->s, (t->server ? GNUTLS_SERVER : GNUTLS_CLIENT) | GNUTLS_NO_TICKETS |
				      GNUTLS_NO_SIGNAL);
	if (grc < 0) {
		free(ss);
		snprintf(err, errlen, "TLS session: %s", gnutls_strerror(grc));
		return -ENOMEM;
	}
	ss->t = t;
	pthread_mutex_lock(&t->mu);
	ss->c = t->cur;
	atomic_fetch_add(&ss->c->refs, 1);
	pthread_mutex_unlock(&t->mu);
	gnutls_session_set_ptr(ss->s, ss);
	grc = gnutls_priority_set_direct(ss->s, t->psk_mode ? PRIO_PSK : PRIO_CERT, &errpos);
	if (grc == 0) {
		if (t->psk_mode) {
			grc = gnutls_credentials_set(ss->s, GNUTLS_CRD_PSK,
						     t->server ? (void *)ss->c->psks
							       : (void *)ss->c->pskc);
		} else {
			grc = gnutls_credentials_set(ss->s, GNUTLS_CRD_CERTIFICATE, ss->c->xcred);
			if (t->server)
				gnutls_certificate_server_set_request(ss->s, GNUTLS_CERT_REQUIRE);
			/* Checked against --tls-ca (and --tls-peer) during the
			 * handshake, on both sides. */
			gnutls_session_set_verify_function(ss->s, verify_peer);
		}
	}
	if (grc < 0) {
		snprintf(err, errlen, "TLS setup: %s", gnutls_strerror(grc));
		rc = -EINVAL;
		goto fail;
	}
	gnutls_transport_set_int(ss->s, fd);
	do
		grc = gnutls_handshake(ss->s);
	while (grc == GNUTLS_E_INTERRUPTED ||
	       (grc < 0 && !gnutls_error_is_fatal(grc) && grc != GNUTLS_E_AGAIN));
	if (grc == GNUTLS_E_AGAIN) {
		snprintf(err, errlen, "the TLS handshake timed out: the peer sent nothing");
		rc = -ETIMEDOUT;
		goto fail;
	}
	if (grc == GNUTLS_E_PUSH_ERROR || grc == GNUTLS_E_PULL_ERROR) {
		snprintf(err, errlen, "the connection failed during the TLS handshake (%s)",
			 gnutls_strerror(grc));
		rc = -ECONNRESET;
		goto fail;
	}
	if (grc < 0) {
		explain(t, ss, grc, err, errlen);
		/* Tell the peer why, so its log says more than "closed". */
		if (grc != GNUTLS_E_FATAL_ALERT_RECEIVED)
			gnutls_alert_send_appropriate(ss->s, grc);
		rc = -EPROTO;
		goto fail;
	}
	/* In TLS 1.3 the client's handshake ends before the server has
	 * checked the client's certificate. The server confirms with one
	 * octet, so a refused client learns it here (as an alert) and not
	 * later in the middle of the stream. */
	if (t->server) {
		grc = (int)gnutls_record_send(ss->s, "\x01", 1);
	} else {
		char ok = 0;

		do
			grc = (int)gnutls_record_recv(ss->s, &ok, 1);
		while (grc == GNUTLS_E_INTERRUPTED);
		if (grc == 1 && ok != 1)
			grc = GNUTLS_E_UNEXPECTED_PACKET;
	}
	if (grc == GNUTLS_E_AGAIN) {
		snprintf(err, errlen, "the TLS handshake timed out: no confirmation from the peer");
		rc = -ETIMEDOUT;
		goto fail;
	}
	if (grc == 0 || grc == GNUTLS_E_PREMATURE_TERMINATION) {
		grc = GNUTLS_E_PREMATURE_TERMINATION;
		explain(t, ss, grc, err, errlen);
		rc = -EPROTO;
		goto fail;
	}
	if (grc < 0) {
		explain(t, ss, grc, err, errlen);
		rc = grc == GNUTLS_E_PUSH_ERROR || grc == GNUTLS_E_PULL_ERROR ? -ECONNRESET
									      : -EPROTO;
		goto fail;
	}
	if (gnutls_protocol_get_version(ss->s) != GNUTLS_TLS1_3) {
		snprintf(err, errlen, "the peer negotiated %s, not TLS 1.3",
			 gnutls_protocol_get_name(gnutls_protocol_get_version(ss->s)));
		rc = -EPROTO;
		goto fail;
	}
	if (t->psk_mode) {
		snprintf(peer, sizeof(peer), "PSK identity '%s'", ss->c->identity);
	} else {
		unsigned status = 1;

		/* Belt and braces: the handshake verified it already. */
		if (gnutls_certificate_verify_peers2(ss->s, &status) < 0 || status) {
			snprintf(err, errlen, "the peer's certificate did not verify");
			rc = -EPROTO;
			goto fail;
		}
		peer_name(ss, peer, sizeof(peer));
	}
	snprintf(ss->desc, sizeof(ss->desc), "TLS 1.3 %s, peer %s",
		 gnutls_cipher_get_name(gnutls_cipher_get(ss->s)), peer);
	*out = ss;
	return 0;
fail:
	gnutls_deinit(ss->s);
	creds_put(ss->c);
	free(ss);
	return rc;
}

void fo_tls_session_free(struct fo_tls_session *s)
{
	if (!s)
		return;
	gnutls_deinit(s->s);
	creds_put(s->c);
	explicit_bzero(s->wbuf, sizeof(s->wbuf));
	free(s);
}

const char *fo_tls_session_desc(const struct fo_tls_session *s)
{
	return s->desc;
}

ssize_t fo_tls_read(struct fo_tls_session *s, void *buf, size_t len)
{
	size_t done = 0;

	while (done < len) {
		ssize_t r = gnutls_record_recv(s->s, (uint8_t *)buf + done, len - done);

		if (r > 0) {
			done += (size_t)r;
			continue;
		}
		/* A connection cut without close_notify reads as end of input,
		 * as it does on plain TCP: the stream reader decides. */
		if (r == 0 || r == GNUTLS_E_PREMATURE_TERMINATION)
			break;
		if (r == GNUTLS_E_INTERRUPTED)
			continue;
		if (r == GNUTLS_E_AGAIN)
			return -EAGAIN;
		if (r == GNUTLS_E_PULL_ERROR)
			return -ECONNRESET;
		if (r == GNUTLS_E_FATAL_ALERT_RECEIVED) {
			log_error("TLS: the peer ended the session (alert: %s): it refused our "
				  "credentials or our traffic; see its log",
				  gnutls_alert_get_name(gnutls_alert_get(s->s)));
			return -EBADMSG;
		}
		log_warn("TLS: a record from the peer was rejected: %s (corrupted or forged "
			 "traffic)",
			 gnutls_strerror((int)r));
		return -EBADMSG;
	}
	return (ssize_t)done;
}

static int send_all(struct fo_tls_session *s, const uint8_t *p, size_t len)
{
	while (len) {
		ssize_t r = gnutls_record_send(s->s, p, len);

		if (r > 0) {
			p += r;
			len -= (size_t)r;
			continue;
		}
		if (r == GNUTLS_E_INTERRUPTED)
			continue; /* gnutls wants the same arguments again */
		if (r == GNUTLS_E_AGAIN)
			return -EAGAIN;
		if (r == GNUTLS_E_PUSH_ERROR)
			return -EPIPE;
		log_warn("TLS: sending failed: %s", gnutls_strerror((int)r));
		return -EIO;
	}
	return 0;
}

static int flush(struct fo_tls_session *s)
{
	int rc = send_all(s, s->wbuf, s->wlen);

	s->wlen = 0;
	return rc;
}

int fo_tls_writev(struct fo_tls_session *s, const struct iovec *iov, int cnt)
{
	int rc = 0;

	for (int i = 0; i < cnt && rc == 0; i++) {
		const uint8_t *p = iov[i].iov_base;
		size_t len = iov[i].iov_len;

		/* Whole records straight from the caller's buffer. */
		if (s->wlen == 0 && len >= REC_MAX) {
			size_t whole = len - len % REC_MAX;

			rc = send_all(s, p, whole);
			p += whole;
			len -= whole;
		}
		while (rc == 0 && len) {
			size_t n = REC_MAX - s->wlen < len ? REC_MAX - s->wlen : len;

			memcpy(s->wbuf + s->wlen, p, n);
			s->wlen += n;
			p += n;
			len -= n;
			if (s->wlen == REC_MAX)
				rc = flush(s);
		}
	}
	if (rc == 0 && s->wlen)
		rc = flush(s);
	s->wlen = 0;
	return rc;
}
