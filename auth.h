/*
 * auth.h: JSON Web Tokens signed with HS256 (RFC 7519, RFC 7515 with
 * HMAC-SHA-256 from BearSSL), base64url without padding (RFC 4648 5),
 * and a constant-time compare. Only HS256 with the server secret is ever
 * accepted. No allocation and no I/O; the decoded token lives in static
 * buffers until the next call, which a single-threaded server allows.
 */
#ifndef VKWS_AUTH_H
#define VKWS_AUTH_H

#include <stddef.h>
#include <stdint.h>

#include "vkws.h"

/* Length of an HMAC-SHA-256 tag (bytes). */
#define JWT_HS256_LEN 32

/*
 * Latest exp or nbf taken seriously (seconds): 9999-12-31T23:59:59Z. A
 * larger or negative value is not a time but a mistake, and the token is
 * refused (JWT_ERR_CLAIMS).
 */
#define JWT_TIME_MAX 253402300799LL

enum {
	JWT_ERR_FORMAT = -1,	/* not three base64url parts, or too long */
	JWT_ERR_HEADER = -2,	/* header not {"alg":"HS256"...} */
	JWT_ERR_SIGNATURE = -3,	/* HMAC mismatch or not 32 bytes */
	JWT_ERR_CLAIMS = -4,	/* payload or a claim malformed */
	JWT_ERR_EXPIRED = -5,	/* now >= exp */
	JWT_ERR_NOT_YET = -6,	/* now < nbf */
	JWT_ERR_KEY = -7,	/* empty secret: refuse rather than sign */
	JWT_ERR_SPACE = -8	/* output buffer too small */
};

struct jwt_claims {
	char uid[VKWS_UID_MAX];		/* unescaped, not NUL-terminated */
	size_t uid_len;
	char info[VKWS_USERINFO_MAX];	/* userInfo JSON text, or "{}" */
	size_t info_len;
	int64_t exp;			/* seconds; valid when has_exp */
	int has_exp;
	int64_t nbf;			/* seconds; valid when has_nbf */
	int has_nbf;
};

/*
 * Verify tok[0..n) against key at time now (seconds since the epoch) and
 * fill *c. The signature is checked before any JSON is read. Header: a
 * JSON object whose "alg" is exactly "HS256", with no "crit" (RFC 7515
 * 4.1.11: vkws understands no extension) and, if "typ" is present, "JWT"
 * in any case (RFC 7515 4.1.9). Claims: "uid" a non-empty string of at
 * most VKWS_UID_MAX bytes without control characters; "userInfo" absent
 * or an object of at most VKWS_USERINFO_MAX bytes; "exp" and "nbf"
 * absent or numbers in [0, JWT_TIME_MAX], fractions truncated. Returns 0
 * or a JWT_ERR_*; on error *c is unspecified.
 */
int jwt_verify(const uint8_t *key, size_t key_len, const char *tok,
    size_t n, int64_t now, struct jwt_claims *c);

/*
 * Make a token for uid[0..uid_len) with header {"alg":"HS256","typ":"JWT"}
 * and payload {"uid":UID[,"exp":EXP][,"userInfo":INFO]}; exp 0 means
 * none, info_len 0 means no userInfo. The payload must pass the checks of
 * jwt_verify (else JWT_ERR_CLAIMS), so every token made here verifies.
 * Returns the token length in out[0..cap) (no NUL), JWT_ERR_SPACE if it
 * does not fit there or in VKWS_TOKEN_MAX, JWT_ERR_KEY for an empty key.
 */
int jwt_sign(const uint8_t *key, size_t key_len, const char *uid,
    size_t uid_len, int64_t exp, const char *info, size_t info_len,
    char *out, size_t cap);

/* HMAC-SHA-256 of p[0..n) under key (RFC 2104, RFC 7518 3.2). */
void jwt_hs256(const uint8_t *key, size_t key_len, const void *p, size_t n,
    uint8_t mac[JWT_HS256_LEN]);

/*
 * base64url without padding (RFC 4648 5, RFC 7515 2). Encode returns the
 * length written to out[0..cap) or JWT_ERR_SPACE. Decode returns the
 * byte count or JWT_ERR_FORMAT for '=', a byte outside the alphabet, a
 * length of 4k+1, or nonzero unused bits in the last character (so each
 * byte string has exactly one encoding); JWT_ERR_SPACE if out is short.
 */
int jwt_b64url_encode(const uint8_t *in, size_t n, char *out, size_t cap);
int jwt_b64url_decode(const char *in, size_t n, uint8_t *out, size_t cap);

/*
 * 1 if a[0..n) equals b[0..n), else 0, in time that depends on n only:
 * every byte is read, differences are OR-ed, nothing exits early.
 */
int vkws_ct_equal(const void *a, const void *b, size_t n);

#endif
