/*
 * fuzz_jwt.c: the JWT verifier. The fuzzer cannot forge an HMAC, so byte
 * 0 picks a mode. Mode 0: the rest is a token, verified as is. Mode 1:
 * the rest is "HEADER\nPAYLOAD" JSON text, which the harness encodes and
 * signs with the test key, so header_check() and the claims reader see
 * whatever the fuzzer writes. Mode 2: base64url alone.
 * Properties: jwt_verify() returns 0 or a JWT_ERR_*; an accepted token
 * has a uid of 1..VKWS_UID_MAX bytes and userInfo no longer than
 * VKWS_USERINFO_MAX; the accepted claims signed again by jwt_sign() give
 * a token that verifies to the same claims; the token with its last
 * signature character changed does not verify; base64url decodes only
 * its one canonical encoding (encode(decode(s)) == s).
 */
#include <string.h>

#include "auth.h"
#include "fuzz.h"

static const uint8_t key[] = "fuzz-secret";
#define KEY_LEN (sizeof(key) - 1)
#define NOW 1700000000

static char tok[VKWS_TOKEN_MAX + 64];
static uint8_t bin[VKWS_TOKEN_MAX];
static char txt[VKWS_TOKEN_MAX + 8];
static char made[VKWS_TOKEN_MAX + 64];
static struct jwt_claims c1, c2;

static void
check_ok(const char *t, size_t n)
{
	int r, len;

	FUZZ_CHECK(c1.uid_len >= 1 && c1.uid_len <= VKWS_UID_MAX);
	FUZZ_CHECK(c1.info_len <= VKWS_USERINFO_MAX);
	/* The same claims, signed by vkws, verify to the same claims. */
	len = jwt_sign(key, KEY_LEN, c1.uid, c1.uid_len,
	    c1.has_exp ? c1.exp : 0, c1.info, c1.info_len, tok, sizeof(tok));
	if (len > 0) {
		r = jwt_verify(key, KEY_LEN, tok, (size_t)len, NOW, &c2);
		FUZZ_CHECK(r == 0);
		FUZZ_CHECK(c2.uid_len == c1.uid_len &&
		    memcmp(c2.uid, c1.uid, c1.uid_len) == 0);
	} else {
		/* Only a token too long for the limit may fail to sign. */
		FUZZ_CHECK(len == JWT_ERR_SPACE);
	}
	/* A changed signature character fails. */
	if (n <= sizeof(txt)) {
		memcpy(txt, t, n);
		txt[n - 1] = txt[n - 1] == 'A' ? 'B' : 'A';
		r = jwt_verify(key, KEY_LEN, txt, n, NOW, &c2);
		FUZZ_CHECK(r != 0);
	}
}

static void
verify(const char *t, size_t n)
{
	int r = jwt_verify(key, KEY_LEN, t, n, NOW, &c1);

	FUZZ_CHECK(r <= 0 && r >= JWT_ERR_SPACE);
	if (r == 0)
		check_ok(t, n);
}

/* Encode "HEADER\nPAYLOAD" and sign it with the test key. */
static void
signed_parts(const char *p, size_t n)
{
	const char *nl = memchr(p, '\n', n);
	uint8_t mac[JWT_HS256_LEN];
	size_t hn, k = 0;
	int r;

	if (nl == NULL)
		return;
	hn = (size_t)(nl - p);
	if ((r = jwt_b64url_encode((const uint8_t *)p, hn, made,
	    sizeof(made))) < 0)
		return;
	k = (size_t)r;
	if (k == sizeof(made))
		return;
	made[k++] = '.';
	if ((r = jwt_b64url_encode((const uint8_t *)nl + 1, n - hn - 1,
	    made + k, sizeof(made) - k)) < 0)
		return;
	k += (size_t)r;
	/* The harness's own bound: each '.' needs a byte (a payload that
	 * filled the buffer was found here by the fuzzer). */
	if (k == sizeof(made))
		return;
	jwt_hs256(key, KEY_LEN, made, k, mac);
	made[k++] = '.';
	if ((r = jwt_b64url_encode(mac, sizeof(mac), made + k,
	    sizeof(made) - k)) < 0)
		return;
	k += (size_t)r;
	verify(made, k);
}

static void
b64(const char *p, size_t n)
{
	int d = jwt_b64url_decode(p, n, bin, sizeof(bin)), e;

	FUZZ_CHECK(d == JWT_ERR_FORMAT || d == JWT_ERR_SPACE ||
	    (d >= 0 && (size_t)d <= n));
	if (d < 0)
		return;
	e = jwt_b64url_encode(bin, (size_t)d, txt, sizeof(txt));
	FUZZ_CHECK(e >= 0 && (size_t)e == n && memcmp(txt, p, n) == 0);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *p = (const char *)data + 1;
	size_t n = size - 1;

	if (size < 1 || size > VKWS_TOKEN_MAX)
		return 0;
	switch (data[0] % 3) {
	case 0:
		verify(p, n);
		break;
	case 1:
		signed_parts(p, n);
		break;
	default:
		b64(p, n);
		break;
	}
	return 0;
}
