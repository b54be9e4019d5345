/*
 * test_jwt.c: HS256 tokens. The RFC 7515 A.1 and RFC 4231 vectors check
 * the HMAC and base64url path; then sign and verify round trips, every
 * forgery and malformed form a client could send, the claim rules of
 * PROTOCOL.md 7 at their edges, and every truncation of a good token.
 */
#include <stdint.h>
#include <string.h>

#include "check.h"
#include "../auth.h"

#define NOW 1700000000LL

static const uint8_t key[] = "vkws test secret";
#define KEY_LEN (sizeof(key) - 1)

static char tokbuf[VKWS_TOKEN_MAX + 64];
static struct jwt_claims cl;

static int
verify(const char *t, size_t n, int64_t now)
{
	return jwt_verify(key, KEY_LEN, t, n, now, &cl);
}

static int
verify_s(const char *t, int64_t now)
{
	return verify(t, strlen(t), now);
}

/*
 * A token with any header and payload text, correctly signed with key:
 * what only the secret's holder could make, to test what verify does
 * after the signature passes.
 */
static int
mk(const char *hdr, const char *pay, size_t pn, char *out, size_t cap)
{
	uint8_t mac[JWT_HS256_LEN];
	size_t k;
	int r;

	if ((r = jwt_b64url_encode((const uint8_t *)hdr, strlen(hdr), out,
	    cap)) < 0)
		return r;
	k = (size_t)r;
	out[k++] = '.';
	if ((r = jwt_b64url_encode((const uint8_t *)pay, pn, out + k,
	    cap - k)) < 0)
		return r;
	k += (size_t)r;
	jwt_hs256(key, KEY_LEN, out, k, mac);
	out[k++] = '.';
	if ((r = jwt_b64url_encode(mac, sizeof(mac), out + k, cap - k)) < 0)
		return r;
	k += (size_t)r;
	out[k] = '\0';
	return (int)k;
}

static int
mk_verify(const char *hdr, const char *pay, int64_t now)
{
	if (mk(hdr, pay, strlen(pay), tokbuf, sizeof(tokbuf) - 1) < 0)
		return -100;
	return verify_s(tokbuf, now);
}

#define HS "{\"alg\":\"HS256\",\"typ\":\"JWT\"}"

static void
test_b64url(void)
{
	static const char *const vec[][2] = {	/* RFC 4648 10 */
		{ "", "" }, { "f", "Zg" }, { "fo", "Zm8" }, { "foo", "Zm9v" },
		{ "foob", "Zm9vYg" }, { "fooba", "Zm9vYmE" },
		{ "foobar", "Zm9vYmFy" },
	};
	static const uint8_t hi[] = { 0xfb, 0xff, 0xbf };
	char enc[16];
	uint8_t dbuf[16];
	size_t i, n;

	for (i = 0; i < sizeof(vec) / sizeof(vec[0]); i++) {
		n = strlen(vec[i][0]);
		CHECK_EQ(jwt_b64url_encode((const uint8_t *)vec[i][0], n, enc,
		    sizeof(enc)), strlen(vec[i][1]));
		CHECK_MEM(enc, vec[i][1], strlen(vec[i][1]));
		CHECK_EQ(jwt_b64url_decode(vec[i][1], strlen(vec[i][1]), dbuf,
		    sizeof(dbuf)), n);
		CHECK_MEM(dbuf, vec[i][0], n);
	}
	/* The URL alphabet: '-' and '_', never '+' and '/'. */
	CHECK_EQ(jwt_b64url_encode(hi, 3, enc, sizeof(enc)), 4);
	CHECK_MEM(enc, "-_-_", 4);
	CHECK_EQ(jwt_b64url_decode("-_-_", 4, dbuf, sizeof(dbuf)), 3);
	CHECK_MEM(dbuf, hi, 3);
	CHECK_EQ(jwt_b64url_decode("+/+/", 4, dbuf, sizeof(dbuf)),
	    JWT_ERR_FORMAT);
	/* Padding, stray bytes, 4k+1 lengths, non-canonical tails. */
	CHECK_EQ(jwt_b64url_decode("Zg==", 4, dbuf, sizeof(dbuf)),
	    JWT_ERR_FORMAT);
	CHECK_EQ(jwt_b64url_decode("Zm8=", 4, dbuf, sizeof(dbuf)),
	    JWT_ERR_FORMAT);
	CHECK_EQ(jwt_b64url_decode("Zm9 v", 5, dbuf, sizeof(dbuf)),
	    JWT_ERR_FORMAT);
	CHECK_EQ(jwt_b64url_decode("Zm9v\0", 5, dbuf, sizeof(dbuf)),
	    JWT_ERR_FORMAT);
	CHECK_EQ(jwt_b64url_decode("Z", 1, dbuf, sizeof(dbuf)),
	    JWT_ERR_FORMAT);
	CHECK_EQ(jwt_b64url_decode("Zm9vY", 5, dbuf, sizeof(dbuf)),
	    JWT_ERR_FORMAT);
	CHECK_EQ(jwt_b64url_decode("Zh", 2, dbuf, sizeof(dbuf)),
	    JWT_ERR_FORMAT);
	CHECK_EQ(jwt_b64url_decode("Zm9", 3, dbuf, sizeof(dbuf)),
	    JWT_ERR_FORMAT);
	/* Room: exactly enough, then one short. */
	CHECK_EQ(jwt_b64url_decode("Zm9vYmE", 7, dbuf, 5), 5);
	CHECK_EQ(jwt_b64url_decode("Zm9vYmE", 7, dbuf, 4), JWT_ERR_SPACE);
	CHECK_EQ(jwt_b64url_encode((const uint8_t *)"fooba", 5, enc, 7), 7);
	CHECK_EQ(jwt_b64url_encode((const uint8_t *)"fooba", 5, enc, 6),
	    JWT_ERR_SPACE);
}

static void
test_vectors(void)
{
	/* RFC 4231 4.3, test case 2. */
	static const uint8_t want2[] = {
		0x5b, 0xdc, 0xc1, 0x46, 0xbf, 0x60, 0x75, 0x4e, 0x6a, 0x04,
		0x24, 0x26, 0x08, 0x95, 0x75, 0xc7, 0x5a, 0x00, 0x3f, 0x08,
		0x9d, 0x27, 0x39, 0x83, 0x9d, 0xec, 0x58, 0xb9, 0x64, 0xec,
		0x38, 0x43,
	};
	/* RFC 7515 A.1: the JWK "k", the signing input, the signature. */
	static const char k64[] =
	    "AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0"
	    "iPS4hcgUuTwjAzZr1Z9CAow";
	static const char input[] =
	    "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9"
	    ".eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGF"
	    "tcGxlLmNvbS9pc19yb290Ijp0cnVlfQ";
	static const char sig[] = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
	static char tok[sizeof(input) + sizeof(sig)];
	uint8_t rk[64], mac[JWT_HS256_LEN];
	char enc[64];
	int kl;

	jwt_hs256((const uint8_t *)"Jefe", 4, "what do ya want for nothing?",
	    28, mac);
	CHECK_MEM(mac, want2, sizeof(want2));

	kl = jwt_b64url_decode(k64, sizeof(k64) - 1, rk, sizeof(rk));
	CHECK_EQ(kl, 64);
	jwt_hs256(rk, (size_t)kl, input, sizeof(input) - 1, mac);
	CHECK_EQ(jwt_b64url_encode(mac, sizeof(mac), enc, sizeof(enc)), 43);
	CHECK_MEM(enc, sig, 43);

	/*
	 * The whole token: signature and header (typ "JWT", alg "HS256")
	 * pass, and the claims fail only because the RFC has no uid.
	 */
	memcpy(tok, input, sizeof(input) - 1);
	tok[sizeof(input) - 1] = '.';
	memcpy(tok + sizeof(input), sig, sizeof(sig) - 1);
	CHECK_EQ(jwt_verify(rk, (size_t)kl, tok,
	    sizeof(input) + sizeof(sig) - 1, 1300819379, &cl), JWT_ERR_CLAIMS);
	rk[0] ^= 1;
	CHECK_EQ(jwt_verify(rk, (size_t)kl, tok,
	    sizeof(input) + sizeof(sig) - 1, 1300819379, &cl),
	    JWT_ERR_SIGNATURE);
}

static void
test_roundtrip(void)
{
	static const char uid[] = "a\"b\\c/\xf0\x9f\x98\x80\xe4\xb8\xad";
	static const char info[] = "{\"name\":\"Al\\u00e9\",\"lvl\":[1,2]}";
	int n;

	n = jwt_sign(key, KEY_LEN, "alice", 5, NOW + 3600, NULL, 0, tokbuf,
	    sizeof(tokbuf));
	CHECK(n > 0);
	CHECK(memchr(tokbuf, '=', (size_t)n) == NULL);
	CHECK_EQ(verify(tokbuf, (size_t)n, NOW), 0);
	CHECK_EQ(cl.uid_len, 5);
	CHECK_MEM(cl.uid, "alice", 5);
	CHECK_EQ(cl.info_len, 2);
	CHECK_MEM(cl.info, "{}", 2);
	CHECK_EQ(cl.has_exp, 1);
	CHECK_EQ(cl.exp, NOW + 3600);
	CHECK_EQ(cl.has_nbf, 0);
	/* The header is the RFC 7519 3.1 one. */
	CHECK_MEM(tokbuf, "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.", 37);

	/* The uid is escaped going in and unescaped coming out. */
	n = jwt_sign(key, KEY_LEN, uid, sizeof(uid) - 1, 0, info,
	    sizeof(info) - 1, tokbuf, sizeof(tokbuf));
	CHECK(n > 0);
	CHECK_EQ(verify(tokbuf, (size_t)n, NOW), 0);
	CHECK_EQ(cl.uid_len, sizeof(uid) - 1);
	CHECK_MEM(cl.uid, uid, sizeof(uid) - 1);
	CHECK_EQ(cl.info_len, sizeof(info) - 1);
	CHECK_MEM(cl.info, info, sizeof(info) - 1);
	CHECK_EQ(cl.has_exp, 0);

	/* Another key, or none at all. */
	CHECK_EQ(jwt_verify((const uint8_t *)"other", 5, tokbuf, (size_t)n,
	    NOW, &cl), JWT_ERR_SIGNATURE);
	CHECK_EQ(jwt_verify(key, 0, tokbuf, (size_t)n, NOW, &cl),
	    JWT_ERR_KEY);
	CHECK_EQ(jwt_sign(key, 0, "a", 1, 0, NULL, 0, tokbuf,
	    sizeof(tokbuf)), JWT_ERR_KEY);
}

static void
test_sign_limits(void)
{
	static char big[64];
	char small[256];
	int n;

	n = jwt_sign(key, KEY_LEN, "bob", 3, NOW, NULL, 0, tokbuf,
	    sizeof(tokbuf));
	CHECK(n > 0 && (size_t)n < sizeof(small));
	/* Exactly enough room, then one byte short. */
	CHECK_EQ(jwt_sign(key, KEY_LEN, "bob", 3, NOW, NULL, 0, small,
	    (size_t)n), n);
	CHECK_MEM(small, tokbuf, (size_t)n);
	CHECK_EQ(jwt_sign(key, KEY_LEN, "bob", 3, NOW, NULL, 0, small,
	    (size_t)n - 1), JWT_ERR_SPACE);
	CHECK_EQ(jwt_sign(key, KEY_LEN, "bob", 3, NOW, NULL, 0, small, 0),
	    JWT_ERR_SPACE);

	/* What verify refuses is never signed. */
	memset(big, 'u', sizeof(big));
	CHECK(jwt_sign(key, KEY_LEN, big, VKWS_UID_MAX, 0, NULL, 0, tokbuf,
	    sizeof(tokbuf)) > 0);
	CHECK_EQ(jwt_sign(key, KEY_LEN, big, 0, 0, NULL, 0, tokbuf,
	    sizeof(tokbuf)), JWT_ERR_CLAIMS);
	CHECK_EQ(jwt_sign(key, KEY_LEN, "\xff", 1, 0, NULL, 0, tokbuf,
	    sizeof(tokbuf)), JWT_ERR_CLAIMS);
	CHECK_EQ(jwt_sign(key, KEY_LEN, "a\nb", 3, 0, NULL, 0, tokbuf,
	    sizeof(tokbuf)), JWT_ERR_CLAIMS);
	CHECK_EQ(jwt_sign(key, KEY_LEN, "a", 1, -5, NULL, 0, tokbuf,
	    sizeof(tokbuf)), JWT_ERR_CLAIMS);
	CHECK_EQ(jwt_sign(key, KEY_LEN, "a", 1, 0, "[1]", 3, tokbuf,
	    sizeof(tokbuf)), JWT_ERR_CLAIMS);
	CHECK_EQ(jwt_sign(key, KEY_LEN, "a", 1, 0, "{", 1, tokbuf,
	    sizeof(tokbuf)), JWT_ERR_CLAIMS);
	/* userInfo is spliced in, so it cannot smuggle in a member. */
	CHECK_EQ(jwt_sign(key, KEY_LEN, "a", 1, 0, "{},\"uid\":\"x\"", 12,
	    tokbuf, sizeof(tokbuf)), JWT_ERR_CLAIMS);
}

/* Flip one bit of byte pos of part (0, 1, 2) of t, keeping it base64url. */
static int
flip(const char *t, size_t n, int part, size_t pos, char *out, size_t cap)
{
	static uint8_t raw[VKWS_TOKEN_MAX];
	const char *p[3], *e;
	size_t len[3], k = 0;
	int i, r;

	p[0] = t;
	e = memchr(t, '.', n);
	len[0] = (size_t)(e - t);
	p[1] = e + 1;
	e = memchr(p[1], '.', n - (size_t)(p[1] - t));
	len[1] = (size_t)(e - p[1]);
	p[2] = e + 1;
	len[2] = n - (size_t)(p[2] - t);
	for (i = 0; i < 3; i++) {
		if (i > 0)
			out[k++] = '.';
		if (i != part) {
			memcpy(out + k, p[i], len[i]);
			k += len[i];
			continue;
		}
		r = jwt_b64url_decode(p[i], len[i], raw, sizeof(raw));
		if (r < 0 || pos >= (size_t)r)
			return -1;
		raw[pos] ^= (uint8_t)(1u << (pos % 8));
		r = jwt_b64url_encode(raw, (size_t)r, out + k, cap - k);
		if (r < 0)
			return -1;
		k += (size_t)r;
	}
	return (int)k;
}

static void
test_forgery(void)
{
	static char good[512], bad[512];
	static const char *const none_hdr[] = {
		"{\"alg\":\"none\"}", "{\"alg\":\"none\",\"typ\":\"JWT\"}",
	};
	const char *d1, *d2;
	size_t n, k, pos;
	int part, m, r, fails = 0, tried = 0;
	char c;
	int bit;

	m = jwt_sign(key, KEY_LEN, "alice", 5, NOW + 60,
	    "{\"role\":\"user\"}", 15, good, sizeof(good));
	CHECK(m > 0);
	n = (size_t)m;
	CHECK_EQ(verify(good, n, NOW), 0);

	/* One bit flipped in the bytes of each part: a clean mismatch. */
	for (part = 0; part < 3; part++) {
		/* The header decodes to 27 bytes, the rest to more. */
		for (pos = 0; pos < 27; pos += 13) {
			r = flip(good, n, part, pos, bad, sizeof(bad));
			CHECK(r > 0);
			CHECK_EQ(verify(bad, (size_t)r, NOW),
			    JWT_ERR_SIGNATURE);
		}
	}
	/* Every bit of every character: never accepted. */
	for (k = 0; k < n; k++) {
		for (bit = 1; bit < 0x80; bit <<= 1) {
			memcpy(bad, good, n);
			c = (char)(good[k] ^ (char)bit);
			bad[k] = c;
			tried++;
			if (verify(bad, n, NOW) >= 0)
				fails++;
		}
	}
	CHECK(tried > 1000);
	CHECK_EQ(fails, 0);

	/* alg "none" with an empty signature never reaches the header. */
	d1 = strchr(good, '.');
	d2 = strchr(d1 + 1, '.');
	for (k = 0; k < 2; k++) {
		r = jwt_b64url_encode((const uint8_t *)none_hdr[k],
		    strlen(none_hdr[k]), bad, sizeof(bad));
		CHECK(r > 0);
		/* The good payload, then the final '.' and no signature. */
		memcpy(bad + r, d1, (size_t)(d2 - d1) + 1);
		m = r + (int)(d2 - d1) + 1;
		CHECK_EQ(verify(bad, (size_t)m, NOW), JWT_ERR_SIGNATURE);
	}
	/* And signed with the secret, "none" is still refused. */
	CHECK_EQ(mk_verify("{\"alg\":\"none\"}", "{\"uid\":\"a\"}", NOW),
	    JWT_ERR_HEADER);
}

static void
test_header(void)
{
	static const char pay[] = "{\"uid\":\"a\"}";

	CHECK_EQ(mk_verify(HS, pay, NOW), 0);
	CHECK_EQ(mk_verify("{\"alg\":\"HS256\"}", pay, NOW), 0);
	CHECK_EQ(mk_verify("{\"typ\":\"jwt\",\"alg\":\"HS256\"}", pay, NOW), 0);
	CHECK_EQ(mk_verify("{\"alg\":\"HS\\u0032\\u00356\"}", pay, NOW), 0);
	CHECK_EQ(mk_verify("{\"alg\":\"HS256\",\"kid\":\"1\"}", pay, NOW), 0);
	CHECK_EQ(mk_verify("{\"alg\":\"HS384\"}", pay, NOW), JWT_ERR_HEADER);
	CHECK_EQ(mk_verify("{\"alg\":\"RS256\"}", pay, NOW), JWT_ERR_HEADER);
	CHECK_EQ(mk_verify("{\"alg\":\"hs256\"}", pay, NOW), JWT_ERR_HEADER);
	CHECK_EQ(mk_verify("{\"alg\":\"HS256 \"}", pay, NOW), JWT_ERR_HEADER);
	CHECK_EQ(mk_verify("{\"alg\":\"\"}", pay, NOW), JWT_ERR_HEADER);
	CHECK_EQ(mk_verify("{\"alg\":null}", pay, NOW), JWT_ERR_HEADER);
	CHECK_EQ(mk_verify("{\"alg\":[\"HS256\"]}", pay, NOW),
	    JWT_ERR_HEADER);
	CHECK_EQ(mk_verify("{\"typ\":\"JWT\"}", pay, NOW), JWT_ERR_HEADER);
	CHECK_EQ(mk_verify("{}", pay, NOW), JWT_ERR_HEADER);
	CHECK_EQ(mk_verify("{\"ALG\":\"HS256\"}", pay, NOW), JWT_ERR_HEADER);
	CHECK_EQ(mk_verify("{\"alg\":\"HS256\",\"crit\":[\"exp\"]}", pay,
	    NOW), JWT_ERR_HEADER);
	CHECK_EQ(mk_verify("{\"alg\":\"HS256\",\"typ\":\"JOSE\"}", pay, NOW),
	    JWT_ERR_HEADER);
	CHECK_EQ(mk_verify("{\"alg\":\"HS256\",\"typ\":1}", pay, NOW),
	    JWT_ERR_HEADER);
	CHECK_EQ(mk_verify("[\"HS256\"]", pay, NOW), JWT_ERR_HEADER);
	CHECK_EQ(mk_verify("{\"alg\":\"HS256\"", pay, NOW), JWT_ERR_HEADER);
	CHECK_EQ(mk_verify("\"HS256\"", pay, NOW), JWT_ERR_HEADER);
}

static void
test_claims(void)
{
	static char pay[4096], info[2048];
	size_t n;

	CHECK_EQ(mk_verify(HS, "{\"uid\":\"\\u0061lice\"}", NOW), 0);
	CHECK_EQ(cl.uid_len, 5);
	CHECK_MEM(cl.uid, "alice", 5);
	CHECK_EQ(mk_verify(HS, "{\"exp\":1}", NOW), JWT_ERR_CLAIMS);
	CHECK_EQ(mk_verify(HS, "{\"uid\":\"\"}", NOW), JWT_ERR_CLAIMS);
	CHECK_EQ(mk_verify(HS, "{\"uid\":5}", NOW), JWT_ERR_CLAIMS);
	CHECK_EQ(mk_verify(HS, "{\"uid\":null}", NOW), JWT_ERR_CLAIMS);
	CHECK_EQ(mk_verify(HS, "{\"uid\":\"a\\nb\"}", NOW), JWT_ERR_CLAIMS);
	CHECK_EQ(mk_verify(HS, "{\"uid\":\"a\\u0000\"}", NOW), JWT_ERR_CLAIMS);
	CHECK_EQ(mk_verify(HS, "[\"uid\",\"a\"]", NOW), JWT_ERR_CLAIMS);
	CHECK_EQ(mk_verify(HS, "{\"uid\":\"a\"", NOW), JWT_ERR_CLAIMS);
	CHECK_EQ(mk_verify(HS, "{\"uid\":\"\xff\"}", NOW), JWT_ERR_CLAIMS);

	/* uid: 64 bytes is the limit, 65 is past it. */
	memset(info, 'u', 65);
	n = (size_t)snprintf(pay, sizeof(pay), "{\"uid\":\"%.*s\"}", 64, info);
	CHECK_EQ(mk_verify(HS, pay, NOW), 0);
	CHECK_EQ(cl.uid_len, 64);
	n = (size_t)snprintf(pay, sizeof(pay), "{\"uid\":\"%.*s\"}", 65, info);
	CHECK_EQ(mk_verify(HS, pay, NOW), JWT_ERR_CLAIMS);
	/* 64 bytes of UTF-8 that take more bytes escaped still fit. */
	n = (size_t)snprintf(pay, sizeof(pay), "{\"uid\":\"%s\"}",
	    "\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9"
	    "\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9"
	    "\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9"
	    "\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9");
	CHECK_EQ(mk_verify(HS, pay, NOW), 0);
	CHECK_EQ(cl.uid_len, 64);

	/* userInfo: an object of 1 KiB is kept byte for byte. */
	memset(info, 'x', sizeof(info));
	n = (size_t)snprintf(pay, sizeof(pay),
	    "{\"uid\":\"a\",\"userInfo\":{\"bio\":\"%.*s\",\"n\":[1,{}]}}",
	    1000, info);
	CHECK_EQ(mk_verify(HS, pay, NOW), 0);
	CHECK_EQ(cl.info_len, 1000 + 21);
	CHECK_MEM(cl.info, strstr(pay, "{\"bio\""), cl.info_len);
	/* VKWS_USERINFO_MAX bytes fit, one more does not. */
	n = (size_t)snprintf(pay, sizeof(pay),
	    "{\"uid\":\"a\",\"userInfo\":{\"b\":\"%.*s\"}}",
	    VKWS_USERINFO_MAX - 8, info);
	CHECK_EQ(mk_verify(HS, pay, NOW), 0);
	CHECK_EQ(cl.info_len, VKWS_USERINFO_MAX);
	n = (size_t)snprintf(pay, sizeof(pay),
	    "{\"uid\":\"a\",\"userInfo\":{\"b\":\"%.*s\"}}",
	    VKWS_USERINFO_MAX - 7, info);
	CHECK_EQ(mk_verify(HS, pay, NOW), JWT_ERR_CLAIMS);
	(void)n;
	CHECK_EQ(mk_verify(HS, "{\"uid\":\"a\",\"userInfo\":[1]}", NOW),
	    JWT_ERR_CLAIMS);
	CHECK_EQ(mk_verify(HS, "{\"uid\":\"a\",\"userInfo\":null}", NOW),
	    JWT_ERR_CLAIMS);
	CHECK_EQ(mk_verify(HS, "{\"uid\":\"a\",\"userInfo\":\"{}\"}", NOW),
	    JWT_ERR_CLAIMS);

	/* exp and nbf: numbers, fractions truncated, nothing absurd. */
	CHECK_EQ(mk_verify(HS, "{\"uid\":\"a\",\"exp\":1700000000.5}", NOW - 1),
	    0);
	CHECK_EQ(cl.exp, NOW);
	CHECK_EQ(mk_verify(HS, "{\"uid\":\"a\",\"exp\":17000000005e-1}",
	    NOW - 1), 0);
	CHECK_EQ(cl.exp, NOW);
	CHECK_EQ(mk_verify(HS, "{\"uid\":\"a\",\"exp\":\"1700000001\"}", NOW),
	    JWT_ERR_CLAIMS);
	CHECK_EQ(mk_verify(HS, "{\"uid\":\"a\",\"exp\":true}", NOW),
	    JWT_ERR_CLAIMS);
	CHECK_EQ(mk_verify(HS, "{\"uid\":\"a\",\"exp\":null}", NOW),
	    JWT_ERR_CLAIMS);
	CHECK_EQ(mk_verify(HS, "{\"uid\":\"a\",\"exp\":-1}", NOW),
	    JWT_ERR_CLAIMS);
	CHECK_EQ(mk_verify(HS, "{\"uid\":\"a\",\"exp\":1e300}", NOW),
	    JWT_ERR_CLAIMS);
	CHECK_EQ(mk_verify(HS, "{\"uid\":\"a\",\"exp\":253402300800}", NOW),
	    JWT_ERR_CLAIMS);
	CHECK_EQ(mk_verify(HS, "{\"uid\":\"a\",\"exp\":253402300799}", NOW),
	    0);
	CHECK_EQ(mk_verify(HS, "{\"uid\":\"a\",\"nbf\":\"0\"}", NOW),
	    JWT_ERR_CLAIMS);
	CHECK_EQ(mk_verify(HS, "{\"uid\":\"a\",\"iat\":\"x\",\"iss\":7}", NOW),
	    0);
}

static void
test_time(void)
{
	int n;

	/* RFC 7519 4.1.4: expired on or after exp. */
	n = jwt_sign(key, KEY_LEN, "a", 1, NOW, NULL, 0, tokbuf,
	    sizeof(tokbuf));
	CHECK(n > 0);
	CHECK_EQ(verify(tokbuf, (size_t)n, NOW - 1), 0);
	CHECK_EQ(verify(tokbuf, (size_t)n, NOW), JWT_ERR_EXPIRED);
	CHECK_EQ(verify(tokbuf, (size_t)n, NOW + 1), JWT_ERR_EXPIRED);

	/* RFC 7519 4.1.5: not before nbf. */
	CHECK_EQ(mk_verify(HS, "{\"uid\":\"a\",\"nbf\":1700000000}", NOW - 1),
	    JWT_ERR_NOT_YET);
	CHECK_EQ(mk_verify(HS, "{\"uid\":\"a\",\"nbf\":1700000000}", NOW), 0);
	CHECK_EQ(cl.has_nbf, 1);
	CHECK_EQ(cl.nbf, NOW);
	CHECK_EQ(mk_verify(HS, "{\"uid\":\"a\",\"nbf\":1700000000}", NOW + 1),
	    0);
	CHECK_EQ(mk_verify(HS,
	    "{\"uid\":\"a\",\"nbf\":1700000000,\"exp\":1700000010}", NOW + 5),
	    0);
	CHECK_EQ(mk_verify(HS,
	    "{\"uid\":\"a\",\"nbf\":1700000000,\"exp\":1700000010}", NOW + 10),
	    JWT_ERR_EXPIRED);
}

static void
test_format(void)
{
	static char pay[4096];
	static char t[sizeof(tokbuf)];
	size_t n, k, pn;
	int m, fails = 0;

	m = jwt_sign(key, KEY_LEN, "alice", 5, NOW + 60, NULL, 0, t,
	    sizeof(t));
	CHECK(m > 0);
	n = (size_t)m;

	/* Every truncation fails. */
	for (k = 0; k < n; k++)
		if (verify(t, k, NOW) >= 0)
			fails++;
	CHECK_EQ(fails, 0);
	CHECK_EQ(verify(t, 0, NOW), JWT_ERR_FORMAT);
	m = verify(t, n - 1, NOW);
	CHECK(m == JWT_ERR_FORMAT || m == JWT_ERR_SIGNATURE);
	CHECK_EQ(verify(t, n - 43, NOW), JWT_ERR_SIGNATURE);
	CHECK_EQ(verify(t, n - 44, NOW), JWT_ERR_FORMAT);
	CHECK_EQ(verify(t, 36, NOW), JWT_ERR_FORMAT);

	/* Padding, a fourth part, an empty part, a non-canonical tail. */
	memcpy(tokbuf, t, n);
	memcpy(tokbuf + n, "=", 1);
	CHECK_EQ(verify(tokbuf, n + 1, NOW), JWT_ERR_FORMAT);
	memcpy(tokbuf + n, ".", 1);
	CHECK_EQ(verify(tokbuf, n + 1, NOW), JWT_ERR_FORMAT);
	memcpy(tokbuf + n, ".e30", 4);
	CHECK_EQ(verify(tokbuf, n + 4, NOW), JWT_ERR_FORMAT);
	CHECK_EQ(verify_s(".e30.", NOW), JWT_ERR_FORMAT);
	CHECK_EQ(verify_s("e30..", NOW), JWT_ERR_FORMAT);
	CHECK_EQ(verify_s("..", NOW), JWT_ERR_FORMAT);
	CHECK_EQ(verify_s("e30", NOW), JWT_ERR_FORMAT);
	/* The signature's 43rd character carries 2 unused bits. */
	memcpy(tokbuf, t, n);
	tokbuf[n - 1] = tokbuf[n - 1] == 'A' ? 'B' : (char)(tokbuf[n - 1] ^ 1);
	CHECK_EQ(verify(tokbuf, n, NOW), JWT_ERR_FORMAT);
	/* The header with '=' padding. */
	memcpy(tokbuf, "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9=", 37);
	memcpy(tokbuf + 37, t + 36, n - 36);
	CHECK_EQ(verify(tokbuf, n + 1, NOW), JWT_ERR_FORMAT);
	/* Standard base64 characters. */
	memcpy(tokbuf, t, n);
	tokbuf[40] = '+';
	CHECK_EQ(verify(tokbuf, n, NOW), JWT_ERR_FORMAT);

	/*
	 * Length: a signed token of exactly VKWS_TOKEN_MAX bytes verifies
	 * and one of VKWS_TOKEN_MAX + 1 is refused before anything else.
	 * 36 (header) + 1 + 4015 (3011 payload bytes) + 1 + 43 = 4096.
	 */
	memset(pay, 'p', sizeof(pay));
	memcpy(pay, "{\"uid\":\"a\",\"pad\":\"", 18);
	pn = 3011;
	memcpy(pay + pn - 2, "\"}", 2);
	m = mk(HS, pay, pn, tokbuf, sizeof(tokbuf));
	CHECK_EQ(m, VKWS_TOKEN_MAX);
	CHECK_EQ(verify(tokbuf, (size_t)m, NOW), 0);
	memcpy(pay + pn - 2, "p\"}", 3);
	m = mk(HS, pay, pn + 1, tokbuf, sizeof(tokbuf));
	CHECK_EQ(m, VKWS_TOKEN_MAX + 1);
	CHECK_EQ(verify(tokbuf, (size_t)m, NOW), JWT_ERR_FORMAT);
	CHECK_EQ(jwt_sign(key, KEY_LEN, "a", 1, 0, NULL, 0, tokbuf, 10),
	    JWT_ERR_SPACE);
}

static void
test_ct_equal(void)
{
	static const uint8_t a[] = { 1, 2, 3, 4, 5, 6, 7, 8 };
	uint8_t b[8];

	memcpy(b, a, 8);
	CHECK_EQ(vkws_ct_equal(a, b, 8), 1);
	CHECK_EQ(vkws_ct_equal(a, b, 0), 1);
	b[0] ^= 0x80;
	CHECK_EQ(vkws_ct_equal(a, b, 8), 0);
	b[0] = a[0];
	b[7] ^= 1;
	CHECK_EQ(vkws_ct_equal(a, b, 8), 0);
	CHECK_EQ(vkws_ct_equal(a, b, 7), 1);
	b[7] = 0xff;
	CHECK_EQ(vkws_ct_equal(a, b, 8), 0);
}

int
main(void)
{
	test_b64url();
	test_vectors();
	test_roundtrip();
	test_sign_limits();
	test_forgery();
	test_header();
	test_claims();
	test_time();
	test_format();
	test_ct_equal();
	CHECK_MAIN();
}
