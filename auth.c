/*
 * auth.c: HS256 JSON Web Tokens (RFC 7519, RFC 7515) for the ?token= and
 * {"type":"auth"} paths, base64url (RFC 4648 5) and a constant-time
 * compare. The signature is checked before any JSON is parsed, so the
 * JSON reader only ever sees bytes the secret's holder signed. No
 * allocation, no I/O; the decoded token and its JSON tokens live in the
 * static buffers below, which the single-threaded server reuses per call.
 */
#include <limits.h>
#include <stdint.h>
#include <string.h>

#include <bearssl.h>

#include "auth.h"
#include "json.h"

/* Bytes of header plus payload once decoded: base64url carries three
 * bytes in four characters. */
#define JWT_DEC_MAX (VKWS_TOKEN_MAX / 4 * 3)
/* JSON tokens for one decoded part. A value of t tokens takes at least
 * 2t - 1 bytes (by induction: each element or member adds a separator or
 * a key), so this many always suffice and no payload is refused for want
 * of tokens. */
#define JWT_TOKENS (JWT_DEC_MAX / 2 + 1)

/* The RFC 7515 5.1 header every vkws token carries. */
static const char jwt_header[] = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";

static uint8_t dec[JWT_DEC_MAX];
static jsmntok_t toks[JWT_TOKENS];

static const char b64url[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

int
vkws_ct_equal(const void *a, const void *b, size_t n)
{
	const volatile unsigned char *x = a, *y = b;
	unsigned d = 0;
	size_t i;

	for (i = 0; i < n; i++)
		d |= (unsigned)(x[i] ^ y[i]);
	/* d is 0..255: d - 1 wraps to set bit 8 only when d is 0. */
	return (int)(((d - 1) >> 8) & 1);
}

void
jwt_hs256(const uint8_t *key, size_t key_len, const void *p, size_t n,
    uint8_t mac[JWT_HS256_LEN])
{
	br_hmac_key_context kc;
	br_hmac_context hc;

	br_hmac_key_init(&kc, &br_sha256_vtable, key, key_len);
	br_hmac_init(&hc, &kc, 0);
	br_hmac_update(&hc, p, n);
	br_hmac_out(&hc, mac);
}

int
jwt_b64url_encode(const uint8_t *in, size_t n, char *out, size_t cap)
{
	size_t need, i, k = 0;
	uint32_t v;

	if (n > (size_t)INT_MAX / 4 * 3)
		return JWT_ERR_SPACE;
	need = n / 3 * 4 + (n % 3 ? n % 3 + 1 : 0);
	if (need > cap)
		return JWT_ERR_SPACE;
	for (i = 0; n - i >= 3; i += 3) {
		v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 |
		    in[i + 2];
		out[k++] = b64url[v >> 18];
		out[k++] = b64url[v >> 12 & 63];
		out[k++] = b64url[v >> 6 & 63];
		out[k++] = b64url[v & 63];
	}
	/* RFC 7515 2: the padding '=' is left off. */
	if (n - i == 1) {
		v = (uint32_t)in[i] << 16;
		out[k++] = b64url[v >> 18];
		out[k++] = b64url[v >> 12 & 63];
	} else if (n - i == 2) {
		v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
		out[k++] = b64url[v >> 18];
		out[k++] = b64url[v >> 12 & 63];
		out[k++] = b64url[v >> 6 & 63];
	}
	return (int)k;
}

static int
b64val(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '-')
		return 62;
	if (c == '_')
		return 63;
	return -1;
}

int
jwt_b64url_decode(const char *in, size_t n, uint8_t *out, size_t cap)
{
	const unsigned char *s = (const unsigned char *)in;
	size_t i, k = 0, need;
	uint32_t v = 0;
	int bits = 0, c;

	/* One character carries 6 bits, less than a byte. */
	if (n % 4 == 1 || n > (size_t)INT_MAX)
		return JWT_ERR_FORMAT;
	for (i = 0; i < n; i++)
		if (b64val(s[i]) < 0)
			return JWT_ERR_FORMAT;
	/*
	 * RFC 4648 3.5: the unused bits of the last character are zero in
	 * a canonical encoding; anything else is a second spelling of the
	 * same bytes and is refused.
	 */
	if ((n % 4 == 2 && (b64val(s[n - 1]) & 0x0f) != 0) ||
	    (n % 4 == 3 && (b64val(s[n - 1]) & 0x03) != 0))
		return JWT_ERR_FORMAT;
	need = n / 4 * 3 + (n % 4 ? n % 4 - 1 : 0);
	if (need > cap)
		return JWT_ERR_SPACE;
	for (i = 0; i < n; i++) {
		c = b64val(s[i]);
		v = (v << 6 | (uint32_t)c) & 0xffffff;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[k++] = (uint8_t)(v >> bits);
		}
	}
	return (int)k;
}

/* ASCII case-insensitive equality of s[0..n) and the lower-case lit. */
static int
ieq(const char *s, size_t n, const char *lit)
{
	size_t i;
	char c;

	if (n != strlen(lit))
		return 0;
	for (i = 0; i < n; i++) {
		c = s[i];
		if (c >= 'A' && c <= 'Z')
			c = (char)(c - 'A' + 'a');
		if (c != lit[i])
			return 0;
	}
	return 1;
}

/* The JOSE header: only what vkws itself writes is accepted. */
static int
header_check(const char *p, size_t n)
{
	struct json_doc d;
	char typ[8];
	int v, r;

	if (json_parse(&d, toks, JWT_TOKENS, p, n) < 0 ||
	    !json_is_object(&d, 0))
		return JWT_ERR_HEADER;
	/*
	 * RFC 7515 4.1.1 and RFC 8725 3.1: the algorithm is fixed, not
	 * taken from the token, so "none" and every other name (case
	 * counts: "hs256" is not HS256) are refused.
	 */
	v = json_get(&d, 0, "alg");
	if (!json_streq(&d, v, "HS256"))
		return JWT_ERR_HEADER;
	/* RFC 7515 4.1.11: vkws knows no extension, so any "crit" fails. */
	if (json_get(&d, 0, "crit") >= 0)
		return JWT_ERR_HEADER;
	/* RFC 7515 4.1.9: "typ" is a media type, compared without case;
	 * RFC 7519 5.1 says it is "JWT" when present. */
	if ((v = json_get(&d, 0, "typ")) >= 0) {
		r = json_string(&d, v, typ, sizeof(typ));
		if (r < 0 || !ieq(typ, (size_t)r, "jwt"))
			return JWT_ERR_HEADER;
	}
	return 0;
}

/* exp or nbf: absent, or a number in [0, JWT_TIME_MAX] (RFC 7519 2). */
static int
time_claim(const struct json_doc *d, const char *name, int64_t *t, int *has)
{
	int v;

	*has = 0;
	*t = 0;
	if ((v = json_get(d, 0, name)) < 0)
		return 0;
	if (json_int_trunc(d, v, t) < 0 || *t < 0 || *t > JWT_TIME_MAX)
		return JWT_ERR_CLAIMS;
	*has = 1;
	return 0;
}

/* The claims of PROTOCOL.md 2 and 7 from the payload p[0..n). */
static int
claims_read(const char *p, size_t n, struct jwt_claims *c)
{
	struct json_doc d;
	const char *raw;
	size_t rn, k;
	int v, r;

	if (json_parse(&d, toks, JWT_TOKENS, p, n) < 0 ||
	    !json_is_object(&d, 0))
		return JWT_ERR_CLAIMS;
	v = json_get(&d, 0, "uid");
	r = json_string(&d, v, c->uid, sizeof(c->uid));
	if (r <= 0)
		return JWT_ERR_CLAIMS;
	c->uid_len = (size_t)r;
	/* A user id is shown in logs and lists: no control characters. */
	for (k = 0; k < c->uid_len; k++)
		if ((unsigned char)c->uid[k] < 0x20 || c->uid[k] == 0x7f)
			return JWT_ERR_CLAIMS;
	if ((v = json_get(&d, 0, "userInfo")) < 0) {
		memcpy(c->info, "{}", 2);
		c->info_len = 2;
	} else {
		if (!json_is_object(&d, v))
			return JWT_ERR_CLAIMS;
		rn = json_raw(&d, v, &raw);
		if (rn > sizeof(c->info))
			return JWT_ERR_CLAIMS;
		memcpy(c->info, raw, rn);
		c->info_len = rn;
	}
	if (time_claim(&d, "exp", &c->exp, &c->has_exp) < 0 ||
	    time_claim(&d, "nbf", &c->nbf, &c->has_nbf) < 0)
		return JWT_ERR_CLAIMS;
	return 0;
}

int
jwt_verify(const uint8_t *key, size_t key_len, const char *tok, size_t n,
    int64_t now, struct jwt_claims *c)
{
	uint8_t mac[JWT_HS256_LEN], sig[JWT_HS256_LEN];
	const char *d1, *d2, *hp, *pp, *sp;
	size_t hn, pn, sn;
	int hl, pl, sl;

	if (key_len == 0)
		return JWT_ERR_KEY;
	if (n == 0 || n > VKWS_TOKEN_MAX)
		return JWT_ERR_FORMAT;
	/* RFC 7515 7.1: header '.' payload '.' signature, no more. */
	if ((d1 = memchr(tok, '.', n)) == NULL ||
	    (d2 = memchr(d1 + 1, '.', n - (size_t)(d1 + 1 - tok))) == NULL ||
	    memchr(d2 + 1, '.', n - (size_t)(d2 + 1 - tok)) != NULL)
		return JWT_ERR_FORMAT;
	hp = tok;
	hn = (size_t)(d1 - tok);
	pp = d1 + 1;
	pn = (size_t)(d2 - pp);
	sp = d2 + 1;
	sn = n - (size_t)(sp - tok);
	if (hn == 0 || pn == 0)
		return JWT_ERR_FORMAT;
	if ((hl = jwt_b64url_decode(hp, hn, dec, sizeof(dec))) < 0 ||
	    (pl = jwt_b64url_decode(pp, pn, dec + hl,
	    sizeof(dec) - (size_t)hl)) < 0)
		return JWT_ERR_FORMAT;
	sl = jwt_b64url_decode(sp, sn, sig, sizeof(sig));
	if (sl == JWT_ERR_FORMAT)
		return JWT_ERR_FORMAT;
	/* RFC 7518 3.2: an HS256 signature is the whole 32-byte tag. */
	if (sl != JWT_HS256_LEN)
		return JWT_ERR_SIGNATURE;
	/* RFC 7515 5.2: the MAC covers the encoded header '.' payload. */
	jwt_hs256(key, key_len, tok, (size_t)(d2 - tok), mac);
	if (!vkws_ct_equal(mac, sig, sizeof(mac)))
		return JWT_ERR_SIGNATURE;
	if (header_check((const char *)dec, (size_t)hl) < 0)
		return JWT_ERR_HEADER;
	if (claims_read((const char *)dec + hl, (size_t)pl, c) < 0)
		return JWT_ERR_CLAIMS;
	/* RFC 7519 4.1.4: not accepted on or after exp. */
	if (c->has_exp && now >= c->exp)
		return JWT_ERR_EXPIRED;
	/* RFC 7519 4.1.5: not accepted before nbf. */
	if (c->has_nbf && now < c->nbf)
		return JWT_ERR_NOT_YET;
	return 0;
}

/* The payload for jwt_sign(), or JWT_ERR_SPACE / JWT_ERR_CLAIMS. */
static int
payload_make(char *buf, size_t cap, const char *uid, size_t uid_len,
    int64_t exp, const char *info, size_t info_len)
{
	struct json_out o;
	struct json_doc d;

	/* userInfo is spliced in verbatim, so it must be one object and
	 * nothing else ({},"uid":"x" would add a member). */
	if (info_len > 0 && (json_parse(&d, toks, JWT_TOKENS, info,
	    info_len) < 0 || !json_is_object(&d, 0)))
		return JWT_ERR_CLAIMS;
	json_out_init(&o, buf, cap);
	json_out_lit(&o, "{\"uid\":");
	json_out_str(&o, uid, uid_len);
	if (exp != 0) {
		json_out_lit(&o, ",\"exp\":");
		json_out_int(&o, exp);
	}
	if (info_len > 0) {
		json_out_lit(&o, ",\"userInfo\":");
		json_out_raw(&o, info, info_len);
	}
	json_out_lit(&o, "}");
	if (!json_out_ok(&o))
		return JWT_ERR_SPACE;
	return (int)o.n;
}

int
jwt_sign(const uint8_t *key, size_t key_len, const char *uid,
    size_t uid_len, int64_t exp, const char *info, size_t info_len,
    char *out, size_t cap)
{
	static char pay[JWT_DEC_MAX];
	static struct jwt_claims chk;
	uint8_t mac[JWT_HS256_LEN];
	size_t k, pn, lim;
	int r;

	if (key_len == 0)
		return JWT_ERR_KEY;
	if ((r = payload_make(pay, sizeof(pay), uid, uid_len, exp, info,
	    info_len)) < 0)
		return r;
	pn = (size_t)r;
	/* What jwt_verify() would refuse is not signed. */
	if (claims_read(pay, pn, &chk) < 0 || chk.uid_len != uid_len ||
	    memcmp(chk.uid, uid, uid_len) != 0)
		return JWT_ERR_CLAIMS;
	/* A token longer than VKWS_TOKEN_MAX would never verify. */
	lim = cap < VKWS_TOKEN_MAX ? cap : VKWS_TOKEN_MAX;
	if ((r = jwt_b64url_encode((const uint8_t *)jwt_header,
	    sizeof(jwt_header) - 1, out, lim)) < 0 || (size_t)r == lim)
		return JWT_ERR_SPACE;
	k = (size_t)r;
	out[k++] = '.';
	if ((r = jwt_b64url_encode((const uint8_t *)pay, pn, out + k,
	    lim - k)) < 0 || (size_t)r == lim - k)
		return JWT_ERR_SPACE;
	k += (size_t)r;
	/* RFC 7515 5.1: sign the ASCII header '.' payload. */
	jwt_hs256(key, key_len, out, k, mac);
	out[k++] = '.';
	if ((r = jwt_b64url_encode(mac, sizeof(mac), out + k, lim - k)) < 0)
		return JWT_ERR_SPACE;
	return (int)(k + (size_t)r);
}
