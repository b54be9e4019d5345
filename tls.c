/*
 * tls.c: the TLS transport on BearSSL. A static pool of
 * VKWS_MAX_TLS_CONNS server engines, each with its own input and output
 * buffers; the certificate chain and private key are read from PEM files
 * with BearSSL's own decoders into static buffers. Above this file only
 * plaintext exists: the core calls vkws_tls_recv() and vkws_tls_send()
 * where it would call recv() and sendmsg(), and asks vkws_tls_events()
 * what to poll for, since a handshake or a queued record may need the
 * socket in the other direction than the plaintext does.
 *
 * Nothing here allocates. The only system calls are recv() and send() on
 * a connection's socket, and open()/read() of the PEM files at start and
 * on SIGHUP.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <bearssl.h>

#include "core.h"

/* Bytes BearSSL adds around the plaintext of an outgoing record
 * (BR_SSL_BUFSIZE_OUTPUT is 16384 plus this). */
#define TLS_OUT_OVERHEAD (BR_SSL_BUFSIZE_OUTPUT - 16384)
/* Engine steps (one socket call or one buffer move) per transport call,
 * so a call always ends; each step moves bytes or returns. */
#define TLS_STEPS 64
/* Bytes of random data given to each engine at accept. */
#define TLS_SEED 32

/*
 * A certificate chain and its private key. Two are kept: the one new
 * handshakes use, and the one a SIGHUP loads into. An engine points into
 * its set until its handshake is done (renegotiation is refused, so the
 * set is not used afterwards); refs counts such engines, and a set with
 * refs > 0 is never overwritten.
 */
struct tls_keys {
	unsigned char der[VKWS_TLS_CHAIN_MAX];
	size_t der_len;
	br_x509_certificate chain[VKWS_TLS_CHAIN_CERTS];
	size_t nchain;
	br_skey_decoder_context skey;	/* holds the decoded key */
	int key_type;			/* BR_KEYTYPE_RSA or _EC */
	unsigned issuer_type;		/* key type of the leaf's issuer */
	unsigned bits;			/* RSA modulus bits, or curve id */
	unsigned refs;			/* engines in a handshake with it */
};

/* One engine of the pool. */
struct tls_conn {
	br_ssl_server_context sc;
	unsigned char ibuf[BR_SSL_BUFSIZE_INPUT];
	unsigned char obuf[VKWS_TLS_RECORD_OUT + TLS_OUT_OVERHEAD];
	uint8_t used;
	uint8_t keys;		/* index into keyset[] */
	uint8_t hs_done;	/* handshake done, keys released */
	uint8_t closing;	/* close_notify queued */
	/* Eviction order (PROTOCOL.md 8): engines in a handshake, and
	 * engines of unproven connections past it, each oldest first. */
	uint8_t list;		/* L_NONE, L_HS or L_UP */
	uint16_t prev, next;	/* within the list, VKWS_NO_SLOT ends */
	uint16_t owner;		/* slot of the connection */
};

enum { L_NONE = 0, L_HS, L_UP };

static struct tls_conn pool[VKWS_MAX_TLS_CONNS];
static uint16_t l_head[3] = { VKWS_NO_SLOT, VKWS_NO_SLOT, VKWS_NO_SLOT };
static uint16_t l_tail[3] = { VKWS_NO_SLOT, VKWS_NO_SLOT, VKWS_NO_SLOT };
static struct tls_keys keyset[2];
static int cur = -1;		/* the set new handshakes use */
static struct vkws_config *cfg;

/* Entropy: a generator seeded from the OS at start gives every engine
 * TLS_SEED bytes, so a handshake never depends on the OS source being
 * readable at that moment (e.g. with every descriptor in use). */
static br_hmac_drbg_context drbg;

static br_ssl_session_cache_lru cache;
static unsigned char cache_store[VKWS_TLS_SESSIONS * 100];

/* Forward secrecy and AEAD only (TLS 1.2): every browser of the last
 * decade offers these, and none of them needs a CBC code path. The
 * client's order is kept: a phone without AES instructions asks for
 * ChaCha20 first. */
static const uint16_t suites_ec[] = {
	BR_TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	BR_TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	BR_TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
};
static const uint16_t suites_rsa[] = {
	BR_TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	BR_TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	BR_TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
};

static const struct {
	uint16_t id;
	const char *name;
} suite_names[] = {
	{ BR_TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256" },
	{ BR_TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384" },
	{ BR_TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256" },
	{ BR_TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256" },
	{ BR_TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384" },
	{ BR_TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
	    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256" },
};

/* ---- Loading the certificate chain and key --------------------------- */

/* What the PEM reader is filling. */
struct pem_sink {
	struct tls_keys *k;
	int is_key;		/* reading --key, not --cert */
	int nkeys;		/* key objects seen */
	int encrypted;		/* an ENCRYPTED PRIVATE KEY was seen */
	int overflow;		/* the chain did not fit */
};

static int
name_is(const char *name, const char *want)
{
	return strcmp(name, want) == 0;
}

static void
der_append(void *ctx, const void *p, size_t n)
{
	struct pem_sink *s = ctx;
	struct tls_keys *k = s->k;

	if (n > sizeof(k->der) - k->der_len) {
		s->overflow = 1;
		return;
	}
	memcpy(k->der + k->der_len, p, n);
	k->der_len += n;
	k->chain[k->nchain - 1].data_len += n;
}

static void
key_append(void *ctx, const void *p, size_t n)
{
	struct pem_sink *s = ctx;

	br_skey_decoder_push(&s->k->skey, p, n);
}

/* A PEM object starts: route its bytes by its name. */
static void
pem_begin(struct pem_sink *s, br_pem_decoder_context *pc)
{
	const char *name = br_pem_decoder_name(pc);
	struct tls_keys *k = s->k;

	br_pem_decoder_setdest(pc, NULL, NULL);
	if (!s->is_key) {
		if (!name_is(name, "CERTIFICATE") &&
		    !name_is(name, "X509 CERTIFICATE"))
			return;
		if (k->nchain == VKWS_TLS_CHAIN_CERTS) {
			s->overflow = 1;
			return;
		}
		k->chain[k->nchain].data = k->der + k->der_len;
		k->chain[k->nchain].data_len = 0;
		k->nchain++;
		br_pem_decoder_setdest(pc, der_append, s);
		return;
	}
	/* PKCS#8 ("PRIVATE KEY") and the traditional RSA and SEC 1 forms;
	 * "EC PARAMETERS" before an EC key is skipped. */
	if (name_is(name, "ENCRYPTED PRIVATE KEY")) {
		s->encrypted = 1;
		return;
	}
	if (!name_is(name, "PRIVATE KEY") &&
	    !name_is(name, "RSA PRIVATE KEY") &&
	    !name_is(name, "EC PRIVATE KEY"))
		return;
	if (s->nkeys++ == 0) {
		br_skey_decoder_init(&k->skey);
		br_pem_decoder_setdest(pc, key_append, s);
	}
}

/* Read the PEM file path (given by flag) into s. Returns 0, or -1 after
 * a log line naming the file. */
static int
pem_read(const char *flag, const char *path, struct pem_sink *s)
{
	static br_pem_decoder_context pc;
	static unsigned char chunk[4096];
	size_t total = 0;
	int fd, eof = 0;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		vkws_log("%s %s: %s", flag, path, strerror(errno));
		return -1;
	}
	br_pem_decoder_init(&pc);
	while (!eof) {
		ssize_t r;
		size_t n, off = 0;

		do
			r = read(fd, chunk, sizeof(chunk));
		while (r < 0 && errno == EINTR);
		if (r < 0) {
			vkws_log("%s %s: %s", flag, path, strerror(errno));
			close(fd);
			return -1;
		}
		if (r == 0) {
			/* A last line without its newline still ends. */
			chunk[0] = '\n';
			r = 1;
			eof = 1;
		}
		n = (size_t)r;
		total += n;
		if (total > VKWS_TLS_FILE_MAX) {
			vkws_log("%s %s: larger than %d bytes", flag, path,
			    VKWS_TLS_FILE_MAX);
			close(fd);
			return -1;
		}
		while (off < n) {
			size_t used = br_pem_decoder_push(&pc, chunk + off,
			    n - off);
			int ev = br_pem_decoder_event(&pc);

			off += used;
			if (ev == BR_PEM_BEGIN_OBJ)
				pem_begin(s, &pc);
			else if (ev == BR_PEM_ERROR) {
				vkws_log("%s %s: not valid PEM", flag, path);
				close(fd);
				return -1;
			} else if (ev == 0 && used == 0)
				break;	/* cannot happen: no event, no bytes */
		}
	}
	close(fd);
	return 0;
}

/* Strip the leading zero bytes of a big-endian integer. */
static void
be_trim(const unsigned char **p, size_t *n)
{
	while (*n > 0 && **p == 0) {
		(*p)++;
		(*n)--;
	}
}

static int
be_equal(const unsigned char *a, size_t an, const unsigned char *b,
    size_t bn)
{
	be_trim(&a, &an);
	be_trim(&b, &bn);
	return an == bn && memcmp(a, b, an) == 0;
}

/* Whether the private key of k belongs to the public key pk of its leaf
 * certificate: the same type, and the public half computed again from
 * the private one is the certificate's. */
static int
key_matches(struct tls_keys *k, const br_x509_pkey *pk)
{
	/* Room for an RSA-4096 modulus or an uncompressed EC point, the
	 * largest BearSSL takes. */
	static unsigned char buf[BR_X509_BUFSIZE_KEY];

	if (pk->key_type != k->key_type)
		return 0;
	if (k->key_type == BR_KEYTYPE_RSA) {
		const br_rsa_private_key *sk = br_skey_decoder_get_rsa(&k->skey);
		size_t n = br_rsa_i31_compute_modulus(NULL, sk);
		uint32_t e;
		unsigned char eb[4];

		/* The modulus is p * q, so an equal modulus is the same key.
		 * The exponent is compared too when BearSSL can recompute it
		 * (it cannot for every key; signing does not need it). */
		if (n == 0 || n > sizeof(buf) ||
		    br_rsa_i31_compute_modulus(buf, sk) != n ||
		    !be_equal(buf, n, pk->key.rsa.n, pk->key.rsa.nlen))
			return 0;
		if ((e = br_rsa_i31_compute_pubexp(sk)) == 0)
			return 1;
		eb[0] = (unsigned char)(e >> 24);
		eb[1] = (unsigned char)(e >> 16);
		eb[2] = (unsigned char)(e >> 8);
		eb[3] = (unsigned char)e;
		return be_equal(eb, 4, pk->key.rsa.e, pk->key.rsa.elen);
	}
	{
		const br_ec_private_key *sk = br_skey_decoder_get_ec(&k->skey);
		br_ec_public_key pub;

		if (sk->curve != pk->key.ec.curve ||
		    br_ec_compute_pub(br_ec_get_default(), &pub, buf, sk) == 0)
			return 0;
		return pub.qlen == pk->key.ec.qlen &&
		    memcmp(pub.q, pk->key.ec.q, pub.qlen) == 0;
	}
}

/* Check every certificate of k parses, and the key is usable and is the
 * leaf's. Returns 0, or -1 after a log line naming the file. */
static int
keys_check(struct tls_keys *k, const char *cert, const char *key)
{
	static br_x509_decoder_context xd;
	static br_x509_pkey leaf;
	static unsigned char leaf_buf[BR_X509_BUFSIZE_KEY];
	size_t i;

	for (i = 0; i < k->nchain; i++) {
		const br_x509_pkey *pk;
		int err;

		br_x509_decoder_init(&xd, NULL, NULL);
		br_x509_decoder_push(&xd, k->chain[i].data,
		    k->chain[i].data_len);
		err = br_x509_decoder_last_error(&xd);
		if (err != 0 || (pk = br_x509_decoder_get_pkey(&xd)) == NULL) {
			vkws_log("--cert %s: certificate %zu does not parse "
			    "(BearSSL error %d)", cert, i + 1, err);
			return -1;
		}
		if (i > 0)
			continue;
		/* The decoder's key points into the decoder; keep a copy
		 * of the leaf's. */
		leaf = *pk;
		if (pk->key_type == BR_KEYTYPE_RSA) {
			size_t nl = pk->key.rsa.nlen, el = pk->key.rsa.elen;
			if (nl + el > sizeof(leaf_buf))
				return -1;
			memcpy(leaf_buf, pk->key.rsa.n, nl);
			memcpy(leaf_buf + nl, pk->key.rsa.e, el);
			leaf.key.rsa.n = leaf_buf;
			leaf.key.rsa.e = leaf_buf + nl;
		} else {
			if (pk->key.ec.qlen > sizeof(leaf_buf))
				return -1;
			memcpy(leaf_buf, pk->key.ec.q, pk->key.ec.qlen);
			leaf.key.ec.q = leaf_buf;
		}
		k->issuer_type = (unsigned)
		    br_x509_decoder_get_signer_key_type(&xd);
	}
	k->key_type = br_skey_decoder_key_type(&k->skey);
	if (k->key_type == BR_KEYTYPE_RSA) {
		k->bits = br_skey_decoder_get_rsa(&k->skey)->n_bitlen;
		/* 2048 bits is the floor of current practice (and of
		 * OpenSSL's default security level in clients). */
		if (k->bits < 2048) {
			vkws_log("--key %s: RSA key of %u bits; at least 2048 "
			    "are needed", key, k->bits);
			return -1;
		}
	} else {
		int curve = br_skey_decoder_get_ec(&k->skey)->curve;
		if (curve != BR_EC_secp256r1 && curve != BR_EC_secp384r1 &&
		    curve != BR_EC_secp521r1) {
			vkws_log("--key %s: EC curve %d is not supported (use "
			    "P-256)", key, curve);
			return -1;
		}
		k->bits = (unsigned)curve;
	}
	if (!key_matches(k, &leaf)) {
		vkws_log("--key %s does not match the certificate in --cert %s",
		    key, cert);
		return -1;
	}
	if (k->issuer_type == 0)
		k->issuer_type = BR_KEYTYPE_RSA;
	return 0;
}

/* Load cfg's --cert and --key into k. Returns 0, or -1 after a log line
 * naming the file at fault. */
static int
keys_load(struct tls_keys *k)
{
	/* Static: the PEM decoder (static too) keeps a pointer to it. */
	static struct pem_sink s;
	int err;

	k->der_len = 0;
	k->nchain = 0;
	k->key_type = 0;
	memset(&s, 0, sizeof(s));
	s.k = k;
	if (pem_read("--cert", cfg->cert, &s) < 0)
		return -1;
	if (s.overflow) {
		vkws_log("--cert %s: chain larger than %d certificates or %d "
		    "bytes", cfg->cert, VKWS_TLS_CHAIN_CERTS, VKWS_TLS_CHAIN_MAX);
		return -1;
	}
	if (k->nchain == 0) {
		vkws_log("--cert %s: no CERTIFICATE in the file", cfg->cert);
		return -1;
	}
	memset(&s, 0, sizeof(s));
	s.k = k;
	s.is_key = 1;
	br_skey_decoder_init(&k->skey);
	if (pem_read("--key", cfg->key, &s) < 0)
		return -1;
	if (s.nkeys == 0) {
		vkws_log("--key %s: %s", cfg->key, s.encrypted ?
		    "encrypted keys are not supported" :
		    "no PRIVATE KEY in the file");
		return -1;
	}
	if (s.nkeys > 1) {
		vkws_log("--key %s: more than one key in the file", cfg->key);
		return -1;
	}
	err = br_skey_decoder_last_error(&k->skey);
	if (err != 0) {
		vkws_log("--key %s: the key does not parse (BearSSL error %d)",
		    cfg->key, err);
		return -1;
	}
	return keys_check(k, cfg->cert, cfg->key);
}

static void
keys_logged(const struct tls_keys *k, const char *what)
{
	if (k->key_type == BR_KEYTYPE_RSA)
		vkws_log("TLS %s: %s (chain of %zu, RSA %u bits), key %s",
		    what, cfg->cert, k->nchain, k->bits, cfg->key);
	else
		vkws_log("TLS %s: %s (chain of %zu, EC %s), key %s", what,
		    cfg->cert, k->nchain, k->bits == BR_EC_secp256r1 ? "P-256" :
		    k->bits == BR_EC_secp384r1 ? "P-384" : "P-521", cfg->key);
}

/* ---- Start and reload ------------------------------------------------ */

/* Set up engine t for a new handshake with the current keys. Returns 0,
 * or -1 if the engine would not start. */
static int
engine_start(struct tls_conn *t)
{
	struct tls_keys *k = &keyset[cur];
	br_ssl_engine_context *e = &t->sc.eng;
	unsigned char seed[TLS_SEED];

	if (k->key_type == BR_KEYTYPE_RSA) {
		br_ssl_server_init_full_rsa(&t->sc, k->chain, k->nchain,
		    br_skey_decoder_get_rsa(&k->skey));
		br_ssl_engine_set_suites(e, suites_rsa,
		    sizeof(suites_rsa) / sizeof(suites_rsa[0]));
	} else {
		br_ssl_server_init_full_ec(&t->sc, k->chain, k->nchain,
		    k->issuer_type, br_skey_decoder_get_ec(&k->skey));
		br_ssl_engine_set_suites(e, suites_ec,
		    sizeof(suites_ec) / sizeof(suites_ec[0]));
	}
	/* TLS 1.2 only (RFC 8996 deprecates 1.0 and 1.1). Renegotiation
	 * is refused, so the keys are used in the first handshake only. */
	br_ssl_engine_set_versions(e, BR_TLS12, BR_TLS12);
	br_ssl_engine_add_flags(e, BR_OPT_NO_RENEGOTIATION);
	br_ssl_engine_set_buffers_bidi(e, t->ibuf, sizeof(t->ibuf), t->obuf,
	    sizeof(t->obuf));
	br_ssl_server_set_cache(&t->sc, &cache.vtable);
	br_hmac_drbg_generate(&drbg, seed, sizeof(seed));
	br_ssl_engine_inject_entropy(e, seed, sizeof(seed));
	memset(seed, 0, sizeof(seed));
	if (!br_ssl_server_reset(&t->sc))
		return -1;
	t->keys = (uint8_t)cur;
	t->hs_done = 0;
	t->closing = 0;
	k->refs++;
	return 0;
}

int
vkws_tls_init(struct vkws_config *c)
{
	const char *src = NULL;
	br_prng_seeder seeder;

	cfg = c;
	if (c->cert[0] == '\0' || c->key[0] == '\0') {
		vkws_log("--tls-listen %s needs --cert FILE and --key FILE",
		    c->tls_listen);
		return -1;
	}
	/* The handshake's secrets come from this generator: without an OS
	 * source of entropy the server must not start. */
	br_hmac_drbg_init(&drbg, &br_sha256_vtable, NULL, 0);
	seeder = br_prng_seeder_system(&src);
	if (seeder == 0 || !seeder(&drbg.vtable)) {
		vkws_log("TLS: cannot seed the random generator from the "
		    "system (%s)", src ? src : "no source");
		return -1;
	}
	if (keys_load(&keyset[0]) < 0)
		return -1;
	cur = 0;
	br_ssl_session_cache_lru_init(&cache, cache_store,
	    sizeof(cache_store));
	/* A trial engine: proves the keys and the engine's own seeding
	 * work before anything listens. */
	if (engine_start(&pool[0]) < 0) {
		vkws_log("TLS: the engine does not start with %s and %s "
		    "(BearSSL error %d)", c->cert, c->key,
		    br_ssl_engine_last_error(&pool[0].sc.eng));
		return -1;
	}
	keyset[0].refs = 0;
	memset(&pool[0].sc, 0, sizeof(pool[0].sc));
	keys_logged(&keyset[0], "certificate");
	return 0;
}

void
vkws_tls_reload(void)
{
	int next;

	if (cur < 0)
		return;
	next = 1 - cur;
	if (keyset[next].refs > 0) {
		/* Handshakes begun before the previous reload still use
		 * that set; they end within --handshake-timeout. */
		vkws_log("TLS reload: handshakes still use the previous "
		    "certificate; keeping the current one, send SIGHUP again "
		    "in %u s", cfg->handshake_timeout);
		return;
	}
	if (keys_load(&keyset[next]) < 0) {
		vkws_log("TLS reload failed; keeping the current certificate");
		return;
	}
	cur = next;
	/* Sessions of the old key are not resumed under the new one. */
	br_ssl_session_cache_lru_init(&cache, cache_store,
	    sizeof(cache_store));
	keys_logged(&keyset[cur], "reloaded");
}

/* ---- Eviction order --------------------------------------------------- */

static void
list_del(struct tls_conn *t)
{
	uint8_t l = t->list;

	if (l == L_NONE)
		return;
	if (t->prev != VKWS_NO_SLOT)
		pool[t->prev].next = t->next;
	else
		l_head[l] = t->next;
	if (t->next != VKWS_NO_SLOT)
		pool[t->next].prev = t->prev;
	else
		l_tail[l] = t->prev;
	t->list = L_NONE;
}

static void
list_add(struct tls_conn *t, uint8_t l)
{
	uint16_t i = (uint16_t)(t - pool);

	list_del(t);
	t->list = l;
	t->prev = l_tail[l];
	t->next = VKWS_NO_SLOT;
	if (l_tail[l] != VKWS_NO_SLOT)
		pool[l_tail[l]].next = i;
	else
		l_head[l] = i;
	l_tail[l] = i;
}

struct conn *
vkws_tls_victim(int *in_handshake)
{
	*in_handshake = l_head[L_HS] != VKWS_NO_SLOT;
	if (*in_handshake)
		return &vkws_conns[pool[l_head[L_HS]].owner];
	if (l_head[L_UP] != VKWS_NO_SLOT)
		return &vkws_conns[pool[l_head[L_UP]].owner];
	return NULL;
}

void
vkws_tls_proven(struct conn *c)
{
	if (c->tls && c->tls_slot != VKWS_NO_SLOT)
		list_del(&pool[c->tls_slot]);
}

/* ---- The transport --------------------------------------------------- */

static struct tls_conn *
tls_of(const struct conn *c)
{
	return &pool[c->tls_slot];
}

int
vkws_tls_engine(const struct conn *c)
{
	return c->tls && c->tls_slot != VKWS_NO_SLOT;
}

/* Note the end of the handshake: application data may now flow, and the
 * keys are no longer needed by this engine. */
static unsigned
tls_state(struct tls_conn *t)
{
	unsigned st = br_ssl_engine_current_state(&t->sc.eng);

	if (!t->hs_done && (st & (BR_SSL_SENDAPP | BR_SSL_RECVAPP))) {
		t->hs_done = 1;
		keyset[t->keys].refs--;
		/* Its connection is still unproven: it has sent nothing
		 * over TLS yet. */
		if (t->list == L_HS)
			list_add(t, L_UP);
	}
	return st;
}

int
vkws_tls_accept(struct conn *c)
{
	size_t i;

	for (i = 0; i < VKWS_MAX_TLS_CONNS; i++) {
		struct tls_conn *t = &pool[i];

		if (t->used)
			continue;
		if (engine_start(t) < 0) {
			vkws_log("TLS: engine start failed (BearSSL error %d)",
			    br_ssl_engine_last_error(&t->sc.eng));
			return -1;
		}
		t->used = 1;
		t->owner = (uint16_t)vkws_slot_of(c);
		list_add(t, L_HS);
		c->tls = 1;
		c->tls_slot = (uint16_t)i;
		return 0;
	}
	return -1;
}

/* Send what the engine holds of records: 1 if bytes went out, 0 if the
 * socket is full or nothing waits, -1 with errno on a socket error. */
static int
push(struct conn *c, struct tls_conn *t)
{
	br_ssl_engine_context *e = &t->sc.eng;
	unsigned char *b;
	size_t len;
	ssize_t r;

	b = br_ssl_engine_sendrec_buf(e, &len);
	if (b == NULL)
		return 0;
	do
		r = send(c->fd, b, len, MSG_NOSIGNAL);
	while (r < 0 && errno == EINTR);
	if (r < 0)
		return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -1;
	br_ssl_engine_sendrec_ack(e, (size_t)r);
	return 1;
}

/* The engine is closed: 0 (EOF) after the peer's close_notify, else -1. */
static ssize_t
closed(const struct tls_conn *t)
{
	if (br_ssl_engine_last_error(&t->sc.eng) == BR_ERR_OK)
		return 0;
	errno = EPROTO;
	return -1;
}

ssize_t
vkws_tls_recv(struct conn *c, void *p, size_t n)
{
	struct tls_conn *t = tls_of(c);
	br_ssl_engine_context *e = &t->sc.eng;
	int i;

	for (i = 0; i < TLS_STEPS; i++) {
		unsigned st = tls_state(t);
		unsigned char *b;
		size_t len;
		ssize_t r;

		if (st & BR_SSL_CLOSED)
			return closed(t);
		if ((st & BR_SSL_RECVAPP) && n > 0) {
			b = br_ssl_engine_recvapp_buf(e, &len);
			if (len > n)
				len = n;
			memcpy(p, b, len);
			br_ssl_engine_recvapp_ack(e, len);
			return (ssize_t)len;
		}
		/* Handshake records (and alerts) go out before more comes
		 * in: the peer waits for them. */
		if (st & BR_SSL_SENDREC) {
			int pr = push(c, t);
			if (pr < 0)
				return -1;
			if (pr > 0)
				continue;
		}
		if (!(st & BR_SSL_RECVREC))
			break;
		b = br_ssl_engine_recvrec_buf(e, &len);
		do
			r = recv(c->fd, b, len, 0);
		while (r < 0 && errno == EINTR);
		if (r <= 0)
			return r;	/* EOF, EAGAIN or an error */
		br_ssl_engine_recvrec_ack(e, (size_t)r);
	}
	errno = EAGAIN;
	return -1;
}

ssize_t
vkws_tls_send(struct conn *c, const struct iovec *iov, int n)
{
	struct tls_conn *t = tls_of(c);
	br_ssl_engine_context *e = &t->sc.eng;
	size_t taken = 0, off = 0;
	int i = 0, step, pr = 0;

	for (step = 0; step < TLS_STEPS && i < n; step++) {
		unsigned st = tls_state(t);
		unsigned char *b;
		size_t len, k;

		if (st & BR_SSL_CLOSED)
			break;
		if (off == iov[i].iov_len) {
			i++;
			off = 0;
			continue;
		}
		b = br_ssl_engine_sendapp_buf(e, &len);
		if (b == NULL) {
			/* A full record waits for the socket. */
			if (!(st & BR_SSL_SENDREC) || (pr = push(c, t)) <= 0)
				break;
			continue;
		}
		k = iov[i].iov_len - off;
		if (k > len)
			k = len;
		memcpy(b, (const unsigned char *)iov[i].iov_base + off, k);
		br_ssl_engine_sendapp_ack(e, k);
		off += k;
		taken += k;
	}
	if (taken > 0) {
		/* Close the last record now: the queue above us is the
		 * buffer, this engine only frames. */
		br_ssl_engine_flush(e, 0);
		(void)vkws_tls_flush(c);
		return (ssize_t)taken;
	}
	if (pr < 0)
		return -1;
	if (tls_state(t) & BR_SSL_CLOSED) {
		errno = EPIPE;
		return -1;
	}
	errno = EAGAIN;
	return -1;
}

int
vkws_tls_flush(struct conn *c)
{
	struct tls_conn *t = tls_of(c);
	int i;

	for (i = 0; i < TLS_STEPS; i++) {
		unsigned st = tls_state(t);
		int pr;

		if (st & BR_SSL_CLOSED)
			return closed(t) == 0 ? 0 : -1;
		if (!(st & BR_SSL_SENDREC))
			return 0;
		pr = push(c, t);
		if (pr < 0)
			return -1;
		if (pr == 0)
			return 1;
	}
	return 1;
}

void
vkws_tls_close(struct conn *c)
{
	struct tls_conn *t = tls_of(c);

	/* RFC 5246 7.2.1: each party sends close_notify before closing
	 * its write side. */
	if (!t->closing) {
		t->closing = 1;
		br_ssl_engine_close(&t->sc.eng);
	}
}

int
vkws_tls_pending(const struct conn *c)
{
	struct tls_conn *t;

	if (!vkws_tls_engine(c))
		return 0;
	t = tls_of(c);

	/* A closed engine counts: reading it reports EOF or the error. */
	return (tls_state(t) & (BR_SSL_RECVAPP | BR_SSL_CLOSED)) != 0;
}

short
vkws_tls_events(const struct conn *c, short ev)
{
	struct tls_conn *t = tls_of(c);
	unsigned st = tls_state(t);
	short out = 0;

	if (st & BR_SSL_CLOSED)
		return POLLIN;	/* vkws_tls_pending() makes it read now */
	/* Records always go out, whatever the plaintext side wants. */
	if (st & BR_SSL_SENDREC)
		out |= POLLOUT;
	if ((ev & POLLIN) && (st & (BR_SSL_RECVREC | BR_SSL_RECVAPP)))
		out |= POLLIN;
	if ((ev & POLLOUT) && (st & BR_SSL_SENDAPP))
		out |= POLLOUT;
	/* The handshake goes on while the plaintext side waits. */
	if (!t->hs_done && (st & BR_SSL_RECVREC))
		out |= POLLIN;
	return out;
}

void
vkws_tls_free(struct conn *c)
{
	struct tls_conn *t;

	if (!vkws_tls_engine(c))
		return;
	t = tls_of(c);
	c->tls_slot = VKWS_NO_SLOT;
	if (!t->used)
		return;
	list_del(t);
	if (!t->hs_done)
		keyset[t->keys].refs--;
	/* The context holds the session keys, the buffers the last records
	 * decrypted or encrypted (tokens among them): the next connection
	 * to take this engine must find none of them. */
	memset(&t->sc, 0, sizeof(t->sc));
	memset(t->ibuf, 0, sizeof(t->ibuf));
	memset(t->obuf, 0, sizeof(t->obuf));
	t->used = 0;
	t->hs_done = 0;
}

size_t
vkws_tls_static_size(void)
{
	return sizeof(pool) + sizeof(keyset) + sizeof(cache_store) +
	    sizeof(cache) + sizeof(drbg);
}

size_t
vkws_tls_conn_size(void)
{
	return sizeof(struct tls_conn);
}

const char *
vkws_tls_cipher(const struct conn *c)
{
	struct tls_conn *t;
	br_ssl_session_parameters sp;
	size_t i;

	if (!vkws_tls_engine(c))
		return NULL;
	t = tls_of(c);
	if (!t->used || !t->hs_done)
		return NULL;
	br_ssl_engine_get_session_parameters(&t->sc.eng, &sp);
	for (i = 0; i < sizeof(suite_names) / sizeof(suite_names[0]); i++)
		if (suite_names[i].id == sp.cipher_suite)
			return suite_names[i].name;
	return NULL;
}
