/*
 * main.c: the command line and the config file. One table of flags
 * (flags[] below) is read by the command line, by --config files and by
 * --help, so no flag is described twice. Values are copied into fixed
 * fields of a struct vkws_config; a value that does not fit is an
 * error, never truncated. On SIGHUP the config file is read again into
 * a second struct and what can change without a restart is copied over,
 * all or nothing. Also the subcommands token and call. Never allocates:
 * the file is read into a static buffer of VKWS_CONFIG_MAX bytes.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdarg.h>
#include <stddef.h>
#include <sys/socket.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "auth.h"
#include "core.h"
#include "json.h"
#include "vkws.h"

static struct vkws_config config;

static const char usage_head[] =
"usage: vkws [flags]            run the server\n"
"       vkws token --uid U [--ttl S] [--info JSON] [--secret ...]\n"
"       vkws call METHOD ['PARAMS'] [--listen ...] [--api-key K]\n"
"                               one POST /api to the local server; exit 0\n"
"                               on code 0, 1 on an error, 2 on bad usage\n"
"       vkws --budget           print the static memory budget\n"
"\n"
"flags:\n";

static const char usage_tail[] =
"\n"
"A --config file holds the same flags, one per line as 'name value'\n"
"without the dashes (a flag without a value: its bare name); '#' starts\n"
"a comment; quote a value with spaces (\"...\" or '...'). Flags given on\n"
"the command line override the file. SIGHUP reads it again and applies\n"
"every setting but those that take a restart.\n";

static const char hint[] = "try vkws --help\n";

/* What a flag's value is and where it goes. */
enum ftype {
	F_CMD,		/* not a setting: help, version, budget, config */
	F_BOOL,		/* no value; sets an int to 1 */
	F_STR,		/* a string into a char array */
	F_ADDR,		/* a listener address, checked as one */
	F_UINT,		/* an unsigned from min to max */
	F_SECRET,	/* bytes and their length */
	F_KEY,		/* the API key and its length */
	F_ORIGIN,	/* one more allowed origin (repeatable) */
	F_FSYNC		/* always | batch | never */
};

struct flag {
	const char *name;	/* the long flag without "--" */
	const char *arg;	/* its value's name in --help; NULL: none */
	unsigned char type;	/* enum ftype */
	unsigned char live;	/* SIGHUP applies a change */
	size_t off, size;	/* the bytes of struct vkws_config it sets */
	unsigned min, max;	/* F_UINT's range */
	const char *help;	/* for --help; '\n' starts another line */
};

#define FIELD(m) offsetof(struct vkws_config, m), \
	sizeof(((struct vkws_config *)0)->m)
/* Two members and the bytes between them (a value and its length). */
#define SPAN(a, b) offsetof(struct vkws_config, a), \
	(offsetof(struct vkws_config, b) + \
	sizeof(((struct vkws_config *)0)->b) - offsetof(struct vkws_config, a))

static const struct flag flags[] = {
	{ "listen", "ADDR:PORT", F_ADDR, 0, FIELD(listen), 0, 0,
	  "plain listener (default 127.0.0.1:8080; '' off;\n"
	  "port 0 picks a free one; [::1]:PORT for IPv6;\n"
	  "numeric addresses only, no host names);\n"
	  "a change takes a restart" },
	{ "tls-listen", "ADDR:PORT", F_ADDR, 0, FIELD(tls_listen), 0, 0,
	  "TLS listener (with --cert and --key); a change\n"
	  "takes a restart" },
	{ "cert", "FILE", F_STR, 1, FIELD(cert), 0, 0,
	  "PEM certificate chain; read again on SIGHUP" },
	{ "key", "FILE", F_STR, 1, FIELD(key), 0, 0,
	  "PEM private key; read again on SIGHUP" },
	{ "echo", NULL, F_BOOL, 1, FIELD(echo), 0, 0,
	  "serve GET /echo, a plain RFC 6455 echo" },
	{ "secret", "S", F_SECRET, 1, SPAN(secret, secret_len), 0, 0,
	  "JWT secret (or --secret-file, or VKWS_SECRET);\n"
	  "without one every client is refused" },
	{ "secret-file", "FILE", F_STR, 1, FIELD(secret_file), 0, 0,
	  "JWT secret, one trailing newline stripped;\n"
	  "read again on SIGHUP" },
	{ "api-key", "K", F_KEY, 1, SPAN(api_key, api_key_len), 0, 0,
	  "key for POST /api (or VKWS_API_KEY; none: /api\n"
	  "answers 403)" },
	{ "api-key-file", "FILE", F_STR, 1, FIELD(api_key_file), 0, 0,
	  "key for POST /api, one trailing newline\n"
	  "stripped; read again on SIGHUP" },
	{ "api-remote", NULL, F_BOOL, 1, FIELD(api_remote), 0, 0,
	  "/api answers peers off loopback too" },
	{ "allowed-origin", "O", F_ORIGIN, 1, SPAN(origins, norigins), 0, 0,
	  "allowed Origin of upgrades (repeatable, up to 8;\n"
	  "none: any origin)" },
	{ "default-room", "R", F_STR, 1, FIELD(default_room), 0, 0,
	  "room joined at auth (default general; '' none)" },
	{ "no-auto-rooms", NULL, F_BOOL, 1, FIELD(no_auto_rooms), 0, 0,
	  "join does not create rooms" },
	{ "max-conns", "N", F_UINT, 1, FIELD(max_conns), 1, VKWS_MAX_CONNS,
	  "WebSocket connections (default and most: the\n"
	  "compiled VKWS_MAX_CONNS, 1024; small profile 64)" },
	{ "pool-chunks", "N", F_UINT, 0, FIELD(pool_chunks), 1,
	  VKWS_POOL_CHUNKS, "chunks of the memory pool used (send queues,\n"
	  "client data, history; see --budget; two largest\n"
	  "frames at least)" },
	{ "sndbuf", "BYTES", F_UINT, 0, FIELD(sndbuf), 0, VKWS_SNDBUF_MAX,
	  "kernel send buffer per connection (SO_SNDBUF);\n"
	  "0: the kernel's autotuning (default)" },
	{ "max-pending", "N", F_UINT, 1, FIELD(max_pending), 1,
	  VKWS_MAX_CONNS, "unproven connections (HTTP, TLS handshakes,\n"
	  "WebSockets before auth); the oldest gives way (128)" },
	{ "max-per-ip", "N", F_UINT, 1, FIELD(max_per_ip), 0, VKWS_SLOTS,
	  "connections per address (64; 0: no cap)" },
	{ "http-max-requests", "N", F_UINT, 1, FIELD(http_max_requests), 1,
	  VKWS_HTTP_MAX_REQUESTS, "requests per HTTP connection (100)" },
	{ "reconnect-rate", "N", F_UINT, 1, FIELD(reconnect_rate), 0,
	  VKWS_RECONNECT_MAX, "upgrades per second per address or user\n"
	  "(5; 0: off)" },
	{ "reconnect-burst", "N", F_UINT, 1, FIELD(reconnect_burst), 1,
	  VKWS_RECONNECT_MAX, "upgrades at once per address or user (20)" },
	{ "history", "N", F_UINT, 1, FIELD(history), 0, VKWS_HISTORY,
	  "chat messages kept and replayed per room (50;\n"
	  "small profile 20)" },
	{ "rate", "N", F_UINT, 1, FIELD(rate), 0, 100000,
	  "messages per second per connection (default 50;\n0: off)" },
	{ "rate-burst", "N", F_UINT, 1, FIELD(rate_burst), 0, 1000000,
	  "token bucket size (default twice the rate)" },
	{ "rate-grace", "S", F_UINT, 1, FIELD(rate_grace), 0, 86400,
	  "seconds over the rate before close 1008 (10)" },
	{ "handshake-timeout", "S", F_UINT, 1, FIELD(handshake_timeout), 1,
	  3600, "seconds an HTTP connection lives (10)" },
	{ "auth-timeout", "S", F_UINT, 1, FIELD(auth_timeout), 1, 3600,
	  "seconds to authenticate (10)" },
	{ "ping-interval", "S", F_UINT, 1, FIELD(ping_interval), 0, 86400,
	  "seconds between keepalive pings (30)" },
	{ "idle-timeout", "S", F_UINT, 1, FIELD(idle_timeout), 1, 86400,
	  "close 4002 after S seconds without a frame (75)" },
	{ "close-timeout", "S", F_UINT, 1, FIELD(close_timeout), 1, 3600,
	  "seconds to wait for the peer's close (5)" },
	{ "active-window", "S", F_UINT, 1, FIELD(active_window), 0, 86400,
	  "getActiveConnections window (60)" },
	{ "data-dir", "DIR", F_STR, 0, FIELD(data_dir), 0, 0,
	  "keep history and persistent rooms on disk; a\n"
	  "change takes a restart" },
	/* Cluster mode. */
	{ "redis", "ADDR", F_STR, 0, FIELD(redis), 0, 0,
	  "cluster mode: HOST:PORT or unix:PATH of the Redis\n"
	  "that every node shares (not with --data-dir)" },
	{ "redis-user", "NAME", F_STR, 0, FIELD(redis_user), 0, 0,
	  "Redis ACL user to AUTH as (with\n"
	  "--redis-password-file; default: Redis's default\n"
	  "user)" },
	{ "redis-password-file", "FILE", F_STR, 0, FIELD(redis_pass_file), 0,
	  0, "password to AUTH to Redis with, one trailing\n"
	  "newline stripped; read at start" },
	{ "cluster", "NAME", F_STR, 0, FIELD(cluster), 0, 0,
	  "cluster name, prefix of every Redis key (vkws)" },
	{ "node", "ID", F_STR, 0, FIELD(node), 0, 0,
	  "this node's name, up to 8 of [A-Za-z0-9_.-]\n"
	  "(default: 8 random hex digits)" },
	{ "node-ttl", "S", F_UINT, 0, FIELD(node_ttl), 1, 3600,
	  "seconds before a dead node leaves listings (10)" },
	{ "fsync", "MODE", F_FSYNC, 1, FIELD(fsync_mode), 0, 0,
	  "always | batch (default) | never (lossy on power\n"
	  "loss): when logged chat reaches the disk" },
	{ "log-max", "BYTES", F_UINT, 1, FIELD(log_max), 0,
	  VKWS_LOG_MAX_LIMIT, "compact the log past this size (default 1 MiB)" },
	{ "config", "FILE", F_CMD, 0, 0, 0, 0, 0,
	  "read flags from FILE first (see below)" },
	{ "budget", NULL, F_CMD, 0, 0, 0, 0, 0,
	  "print the static memory budget and exit" },
	{ "version", NULL, F_CMD, 0, 0, 0, 0, 0,
	  "print the version and exit" },
	{ "help", NULL, F_CMD, 0, 0, 0, 0, 0, "this text" },
};
#define NFLAGS (sizeof(flags) / sizeof(flags[0]))

enum { CLI_HELP = 1, CLI_BUDGET = 2, CLI_VERSION = 3 };

/* Print the flag table as --help does. */
static void
print_usage(FILE *f)
{
	size_t i;

	fputs(usage_head, f);
	for (i = 0; i < NFLAGS; i++) {
		const char *h = flags[i].help;
		int n = fprintf(f, "  --%s%s%s", flags[i].name,
		    flags[i].arg ? " " : "", flags[i].arg ? flags[i].arg : "");

		fprintf(f, "%*s", n < 27 ? 27 - n : 1, "");
		for (; *h != '\0'; h++) {
			fputc(*h, f);
			if (*h == '\n')
				fprintf(f, "%27s", "");
		}
		fputc('\n', f);
	}
	fputs(usage_tail, f);
}

static const struct flag *
flag_find(const char *name)
{
	size_t i;

	for (i = 0; i < NFLAGS; i++)
		if (strcmp(flags[i].name, name) == 0)
			return &flags[i];
	return NULL;
}

/* A command-line word as a flag: "--name" (or -h), else NULL. */
static const struct flag *
flag_arg(const char *a)
{
	if (a == NULL)
		return NULL;
	if (strcmp(a, "-h") == 0)
		return flag_find("help");
	if (a[0] != '-' || a[1] != '-')
		return NULL;
	return flag_find(a + 2);
}

/* ---- Parsing one value ---------------------------------------------- */

/* Where a value came from, for errors: the command line (file NULL), or
 * a line of a config file. At SIGHUP errors go to the log. */
struct src {
	const char *file;
	unsigned line;
	int at_hup;
	unsigned char seen[NFLAGS];	/* bit 1: from the file, 2: argv */
	int bad;			/* an error was reported */
};

static char msg[VKWS_CONFIG_LINE_MAX + 256];

/* Report an error about flag f of s: "FILE:LINE: name: what" or
 * "--name: what". */
static void complain(struct src *s, const struct flag *f, const char *name,
    const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void
complain(struct src *s, const struct flag *f, const char *name,
    const char *fmt, ...)
{
	va_list ap;
	int n;

	if (f != NULL)
		name = f->name;
	if (s->file != NULL)
		n = snprintf(msg, sizeof(msg), "%s:%u: %s: ", s->file, s->line,
		    name);
	else
		n = snprintf(msg, sizeof(msg), "%s%s: ",
		    name[0] == '-' ? "" : "--", name);
	if (n < 0 || (size_t)n >= sizeof(msg))
		n = 0;
	va_start(ap, fmt);
	vsnprintf(msg + n, sizeof(msg) - (size_t)n, fmt, ap);
	va_end(ap);
	s->bad = 1;
	if (s->at_hup)
		vkws_log("%s", msg);
	else
		fprintf(stderr, "vkws: %s\n", msg);
}

/*
 * Whether spec is a listener address vkws can open: "" (none),
 * "A.B.C.D:PORT" or "[V6]:PORT", PORT 0 to 65535. Host names are not
 * resolved (a router's DNS may not be up when vkws starts); the error
 * says so. why gets the reason.
 */
static int
addr_ok(const char *spec, const char **why)
{
	static char host[VKWS_ADDR_MAX];
	struct in6_addr a6;
	struct in_addr a4;
	const char *colon = strrchr(spec, ':'), *p;
	size_t hn;
	unsigned long port = 0;

	if (spec[0] == '\0')
		return 1;
	if (colon == NULL || colon[1] == '\0') {
		*why = "expected ADDR:PORT (127.0.0.1:8080, [::1]:8080)";
		return 0;
	}
	for (p = colon + 1; *p != '\0'; p++) {
		if (*p < '0' || *p > '9') {
			*why = "the port is not a number";
			return 0;
		}
		if (port <= 65535)
			port = port * 10 + (unsigned long)(*p - '0');
	}
	if (port > 65535) {
		*why = "the port is out of range (0 to 65535)";
		return 0;
	}
	hn = (size_t)(colon - spec);
	memcpy(host, spec, hn);
	host[hn] = '\0';
	if (hn >= 2 && host[0] == '[' && host[hn - 1] == ']') {
		host[hn - 1] = '\0';
		if (inet_pton(AF_INET6, host + 1, &a6) == 1)
			return 1;
		*why = "not an IPv6 address in [ ]";
		return 0;
	}
	if (inet_pton(AF_INET, host, &a4) == 1)
		return 1;
	*why = strchr(host, ':') != NULL ? "an IPv6 address goes in [ ]" :
	    "host names are not accepted: give a numeric IPv4 address "
	    "(127.0.0.1, 0.0.0.0) or [IPv6] address";
	return 0;
}

/* Set flag f of c to v (NULL for a flag without a value); 0, or -1 with
 * the error reported. */
static int
flag_set(struct src *s, struct vkws_config *c, const struct flag *f,
    const char *v)
{
	char *field = (char *)c + f->off;
	const char *why = NULL;
	int bit = s->file != NULL ? 1 : 2;
	int first = !(s->seen[f - flags] & bit);
	size_t n;

	/* A flag without a value (F_BOOL) is given NULL. */
	if (v == NULL)
		v = "";
	n = strlen(v);

	s->seen[f - flags] |= (unsigned char)bit;
	if (f->type == F_ADDR && !addr_ok(v, &why)) {
		complain(s, f, NULL, "%s: %s", v, why);
		return -1;
	}
	switch (f->type) {
	case F_BOOL:
		*(int *)(void *)field = 1;
		return 0;
	case F_ADDR:
	case F_STR:
		if (n >= f->size)
			break;
		memset(field, 0, f->size);
		memcpy(field, v, n);
		return 0;
	case F_UINT: {
		char *end;
		unsigned long x;

		errno = 0;
		x = strtoul(v, &end, 10);
		if (errno != 0 || end == v || *end != '\0' || v[0] == '-' ||
		    x < f->min || x > f->max) {
			complain(s, f, NULL, "bad value '%s' (a number from %u "
			    "to %u)", v, f->min, f->max);
			return -1;
		}
		*(unsigned *)(void *)field = (unsigned)x;
		return 0;
	}
	case F_SECRET:
		if (n >= sizeof(c->secret))
			break;
		memset(c->secret, 0, sizeof(c->secret));
		memcpy(c->secret, v, n);
		c->secret_len = n;
		return 0;
	case F_KEY:
		if (n >= sizeof(c->api_key))
			break;
		memset(c->api_key, 0, sizeof(c->api_key));
		memcpy(c->api_key, v, n);
		c->api_key_len = n;
		return 0;
	case F_ORIGIN:
		/* The command line's origins replace the file's. */
		if (first) {
			memset(c->origins, 0, sizeof(c->origins));
			c->norigins = 0;
		}
		if (c->norigins >= VKWS_MAX_ORIGINS) {
			complain(s, f, NULL, "more than %d origins",
			    VKWS_MAX_ORIGINS);
			return -1;
		}
		if (n >= VKWS_ORIGIN_MAX)
			break;
		memcpy(c->origins[c->norigins++], v, n + 1);
		return 0;
	case F_FSYNC:
		if (strcmp(v, "batch") == 0)
			c->fsync_mode = VKWS_FSYNC_BATCH;
		else if (strcmp(v, "always") == 0)
			c->fsync_mode = VKWS_FSYNC_ALWAYS;
		else if (strcmp(v, "never") == 0)
			c->fsync_mode = VKWS_FSYNC_NEVER;
		else {
			complain(s, f, NULL, "bad value '%s' (always, batch "
			    "or never)", v);
			return -1;
		}
		return 0;
	default:
		return 0;
	}
	complain(s, f, NULL, "value longer than %zu bytes",
	    (f->type == F_ORIGIN ? VKWS_ORIGIN_MAX : f->type == F_SECRET ?
	    sizeof(c->secret) : f->type == F_KEY ? sizeof(c->api_key) :
	    f->size) - 1);
	return -1;
}

/* ---- The config file ------------------------------------------------ */

static char cfile[VKWS_CONFIG_MAX];
static char cval[VKWS_CONFIG_LINE_MAX + 1];

/*
 * Read a whole small file into out[0..cap) and set *n; -1 with errno set
 * if it cannot be read, EFBIG if it does not fit.
 */
static int
read_file(const char *path, uint8_t *out, size_t cap, size_t *n)
{
	ssize_t r;
	int fd = open(path, O_RDONLY | O_CLOEXEC), e;

	if (fd < 0)
		return -1;
	*n = 0;
	while ((r = read(fd, out + *n, cap - *n)) > 0)
		*n += (size_t)r;
	e = errno;
	close(fd);
	errno = r < 0 ? e : EFBIG;
	return r < 0 || *n == cap ? -1 : 0;
}

/*
 * The value of a config line from p to the line's end e: a word, or a
 * quoted string ("..." with \" and \\, or '...'), then only spaces or a
 * comment. Copied into cval; NULL with *why set if malformed.
 */
static const char *
line_value(const char *p, const char *e, const char **why)
{
	size_t n = 0;

	if (*p == '"' || *p == '\'') {
		char q = *p++;

		for (; p < e && *p != q; p++) {
			if (q == '"' && *p == '\\' && p + 1 < e &&
			    (p[1] == '"' || p[1] == '\\'))
				p++;
			cval[n++] = *p;
		}
		if (p == e) {
			*why = "unterminated quote";
			return NULL;
		}
		p++;
	} else
		while (p < e && *p != ' ' && *p != '\t')
			cval[n++] = *p++;
	cval[n] = '\0';
	while (p < e && (*p == ' ' || *p == '\t'))
		p++;
	if (p < e && *p != '#') {
		*why = "more than one value (quote a value with spaces)";
		return NULL;
	}
	return cval;
}

/* One line [p, e) of the file: skip it, or set its flag. */
static int
config_line(struct src *s, struct vkws_config *c, const char *p,
    const char *e)
{
	static char name[VKWS_CONFIG_LINE_MAX + 1];
	const struct flag *f;
	const char *v = NULL, *why = NULL;
	size_t n = 0;

	if ((size_t)(e - p) > VKWS_CONFIG_LINE_MAX) {
		complain(s, NULL, "line", "longer than %d bytes",
		    VKWS_CONFIG_LINE_MAX);
		return -1;
	}
	if (memchr(p, '\0', (size_t)(e - p)) != NULL) {
		complain(s, NULL, "line", "holds a NUL byte");
		return -1;
	}
	while (p < e && (*p == ' ' || *p == '\t' || *p == '\r'))
		p++;
	while (e > p && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r'))
		e--;
	if (p == e || *p == '#')
		return 0;
	while (p < e && *p != ' ' && *p != '\t')
		name[n++] = *p++;
	name[n] = '\0';
	while (p < e && (*p == ' ' || *p == '\t'))
		p++;
	f = flag_find(name);
	if (f == NULL) {
		complain(s, NULL, name, "unknown key%s", name[0] == '-' ?
		    " (write names without the dashes)" : "");
		return -1;
	}
	if (f->type == F_CMD) {
		complain(s, f, NULL, "not allowed in a config file");
		return -1;
	}
	if (f->arg == NULL) {
		if (p < e && *p != '#') {
			complain(s, f, NULL, "takes no value (write the bare "
			    "name, or leave the line out)");
			return -1;
		}
	} else if (p == e || *p == '#') {
		complain(s, f, NULL, "needs a value");
		return -1;
	} else if ((v = line_value(p, e, &why)) == NULL) {
		complain(s, f, NULL, "%s", why);
		return -1;
	}
	return flag_set(s, c, f, v);
}

/* Read the config file at path into c; -1 after the first bad line. */
static int
config_read(struct src *s, struct vkws_config *c, const char *path)
{
	const char *p, *end, *nl;
	size_t n;

	s->file = path;
	s->line = 0;
	if (read_file(path, (uint8_t *)cfile, sizeof(cfile), &n) < 0) {
		if (errno == EFBIG)
			complain(s, NULL, "config", "larger than %d bytes",
			    VKWS_CONFIG_MAX);
		else
			complain(s, NULL, "config", "cannot read: %s",
			    strerror(errno));
		return -1;
	}
	for (p = cfile, end = cfile + n; p < end; p = nl + 1) {
		s->line++;
		nl = memchr(p, '\n', (size_t)(end - p));
		if (nl == NULL)
			nl = end;
		if (config_line(s, c, p, nl) < 0)
			return -1;
	}
	s->file = NULL;
	return 0;
}

/* ---- The whole configuration ---------------------------------------- */

/* The --config value in argv[first..argc), or NULL. */
static const char *
config_path(int argc, char **argv, int first)
{
	int i;

	for (i = first; i < argc; i++) {
		const struct flag *f = flag_arg(argv[i]);

		if (f == NULL || f->arg == NULL || i + 1 >= argc)
			continue;
		if (strcmp(f->name, "config") == 0)
			return argv[i + 1];
		i++;
	}
	return NULL;
}

/*
 * Fill c: the defaults, then the --config file, then every flag of
 * argv[first..argc) over it. Returns 0, CLI_HELP, CLI_BUDGET,
 * CLI_VERSION, -1 on a bad argument (usage: exit 2) or -2 on a bad
 * config file (exit 1).
 */
static int
config_load(struct vkws_config *c, int argc, char **argv, int first,
    int at_hup)
{
	static struct src s;
	const char *path = config_path(argc, argv, first);
	int i, cmd = 0;

	memset(&s, 0, sizeof(s));
	s.at_hup = at_hup;
	vkws_config_default(c);
	for (i = first; i < argc; i++) {
		const struct flag *f = flag_arg(argv[i]);

		if (f == NULL) {
			complain(&s, NULL, argv[i], "%s", argv[i][0] == '-' ?
			    "unknown flag" : "not a flag (flags start with --)");
			return -1;
		}
		if (f->arg != NULL) {
			if (i + 1 >= argc) {
				complain(&s, f, NULL, "needs a value (%s)",
				    f->arg);
				return -1;
			}
			i++;
		}
		if (f->type == F_CMD && cmd == 0) {
			if (strcmp(f->name, "help") == 0)
				cmd = CLI_HELP;
			else if (strcmp(f->name, "budget") == 0)
				cmd = CLI_BUDGET;
			else if (strcmp(f->name, "version") == 0)
				cmd = CLI_VERSION;
		}
	}
	if (cmd != 0)
		return cmd;
	if (path != NULL && config_read(&s, c, path) < 0)
		return -2;
	for (i = first; i < argc; i++) {
		const struct flag *f = flag_arg(argv[i]);
		const char *v = NULL;

		/* The first pass has checked each flag and value. */
		if (f == NULL || (f->arg != NULL && i + 1 >= argc))
			return -1;
		if (f->arg != NULL)
			v = argv[++i];
		if (f->type != F_CMD && flag_set(&s, c, f, v) < 0)
			return -1;
	}
	/* --rate-burst defaults to twice the rate wherever the rate came
	 * from. */
	if (s.seen[flag_find("rate-burst") - flags] == 0)
		c->rate_burst = 2 * c->rate;
	return 0;
}

/*
 * A secret's file (flag): at most cap bytes, one trailing newline
 * stripped, into out and *n. -1 with the file and the reason reported
 * if it cannot be read or is too long (what is longer: what).
 */
static int
read_secret_file(struct src *s, const char *flag, const char *path,
    uint8_t *out, size_t cap, size_t *n, const char *what)
{
	if (read_file(path, out, cap, n) < 0) {
		complain(s, NULL, flag, "cannot read %s: %s", path,
		    errno == EFBIG ? what : strerror(errno));
		return -1;
	}
	if (*n > 0 && out[*n - 1] == '\n')
		(*n)--;
	return 0;
}

/*
 * The secret: --secret, else --secret-file (one trailing newline
 * stripped), else VKWS_SECRET; the API key likewise; at start, Redis's
 * password. -1 with the file and the reason reported if a file cannot
 * be read.
 */
static int
load_secret(struct vkws_config *c, int at_hup)
{
	static struct src s;
	const char *env = getenv("VKWS_SECRET");
	const char *key = getenv("VKWS_API_KEY");

	memset(&s, 0, sizeof(s));
	s.at_hup = at_hup;
	/* The API key: --api-key, else --api-key-file (read again on
	 * SIGHUP), else VKWS_API_KEY. */
	if (c->api_key_len > 0)
		c->api_key_file[0] = '\0';
	else if (c->api_key_file[0] != '\0') {
		if (read_secret_file(&s, "api-key-file", c->api_key_file,
		    (uint8_t *)c->api_key, sizeof(c->api_key) - 1,
		    &c->api_key_len, "longer than the largest key") < 0)
			return -1;
		c->api_key[c->api_key_len] = '\0';
	} else if (key != NULL && strlen(key) < sizeof(c->api_key)) {
		c->api_key_len = strlen(key);
		memcpy(c->api_key, key, c->api_key_len + 1);
	}
	/* Redis's password: read at start (the link uses it at every
	 * connect; a change takes a restart, as --redis does). */
	if (!at_hup && c->redis_pass_file[0] != '\0') {
		if (read_secret_file(&s, "redis-password-file",
		    c->redis_pass_file, (uint8_t *)c->redis_pass,
		    sizeof(c->redis_pass), &c->redis_pass_len,
		    "longer than the longest password") < 0)
			return -1;
		if (c->redis_pass_len == 0) {
			complain(&s, NULL, "redis-password-file",
			    "%s is empty", c->redis_pass_file);
			return -1;
		}
	}
	/* --secret wins over --secret-file, at start and on SIGHUP. */
	if (c->secret_len > 0) {
		c->secret_file[0] = '\0';
		return 0;
	}
	if (c->secret_file[0] != '\0')
		return read_secret_file(&s, "secret-file", c->secret_file,
		    c->secret, sizeof(c->secret), &c->secret_len,
		    "longer than the largest secret");
	if (env != NULL && strlen(env) < sizeof(c->secret)) {
		c->secret_len = strlen(env);
		memcpy(c->secret, env, c->secret_len);
	}
	return 0;
}

/* ---- SIGHUP --------------------------------------------------------- */

/* The protocol layer's hooks (api.c), with reload() wrapped so that the
 * config file is read before the secret, key and TLS files. */
static struct vkws_hooks hooks;
static int saved_argc;
static char **saved_argv;
static const char *saved_path;

/*
 * SIGHUP (the loop calls this before it reads the secret, key and TLS
 * files again): read the config file and the command line into a fresh
 * config and, if all of it is good, copy each setting that can change
 * without a restart; log those that cannot. On any error nothing
 * changes.
 */
static void
on_hup(void)
{
	static struct vkws_config fresh;
	size_t i, changed = 0;

	if (config_load(&fresh, saved_argc, saved_argv, 1, 1) != 0 ||
	    load_secret(&fresh, 1) < 0) {
		vkws_log("config %s not applied; keeping every old setting",
		    saved_path);
		memset(&fresh, 0, sizeof(fresh));
		return;
	}
	for (i = 0; i < NFLAGS; i++) {
		const struct flag *f = &flags[i];
		char *old = (char *)&config + f->off;

		if (f->size == 0 || memcmp(old, (char *)&fresh + f->off,
		    f->size) == 0)
			continue;
		if (!f->live) {
			vkws_log("config: %s changed in %s; it takes a restart "
			    "to apply, keeping the old value", f->name,
			    saved_path);
			continue;
		}
		memcpy(old, (char *)&fresh + f->off, f->size);
		changed++;
	}
	memset(&fresh, 0, sizeof(fresh));
	vkws_log("config: read %s again, %zu setting%s changed", saved_path,
	    changed, changed == 1 ? "" : "s");
}

static void
reload(void)
{
	if (saved_path != NULL)
		on_hup();
	vkws_api_hooks.reload();
}

/* A decimal from 0 to max into *dst; -1 if it is not one. */
static int
set_uint(unsigned *dst, const char *v, unsigned max)
{
	char *end;
	unsigned long x;

	errno = 0;
	x = strtoul(v, &end, 10);
	if (errno != 0 || end == v || *end != '\0' || x > max || v[0] == '-')
		return -1;
	*dst = (unsigned)x;
	return 0;
}

/*
 * vkws token --uid U [--ttl S] [--info JSON] [server flags]: print a
 * token signed with the server's secret.
 */
static int
cmd_token(struct vkws_config *c, int argc, char **argv)
{
	static char tok[VKWS_TOKEN_MAX + 1];
	const char *uid = NULL, *info = NULL;
	char *fwd[64];
	unsigned ttl = 0;
	int i, nf = 1, n, bad = 0;

	fwd[0] = argv[0];
	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--uid") == 0 && i + 1 < argc)
			uid = argv[++i];
		else if (strcmp(argv[i], "--ttl") == 0 && i + 1 < argc)
			bad |= set_uint(&ttl, argv[++i], VKWS_TOKEN_TTL_MAX) < 0;
		else if (strcmp(argv[i], "--info") == 0 && i + 1 < argc)
			info = argv[++i];
		else if (nf < 63)
			fwd[nf++] = argv[i];
	}
	fwd[nf] = NULL;
	if (uid == NULL || bad || config_load(c, nf, fwd, 1, 0) != 0 ||
	    load_secret(c, 0) < 0) {
		fprintf(stderr, "usage: vkws token --uid U [--ttl SECONDS] "
		    "[--info JSON] [--secret S | --secret-file F]\n");
		return 2;
	}
	if (c->secret_len == 0) {
		fprintf(stderr, "vkws: no secret (--secret, --secret-file or "
		    "VKWS_SECRET)\n");
		return 2;
	}
	n = jwt_sign(c->secret, c->secret_len, uid, strlen(uid),
	    ttl > 0 ? (int64_t)time(NULL) + (int64_t)ttl : 0, info,
	    info ? strlen(info) : 0, tok, sizeof(tok) - 1);
	if (n < 0) {
		fprintf(stderr, "vkws: cannot make a token (uid of 1 to %d "
		    "bytes, --info a JSON object)\n", VKWS_UID_MAX);
		return 2;
	}
	tok[n] = '\n';
	return write(STDOUT_FILENO, tok, (size_t)n + 1) == n + 1 ? 0 : 1;
}

/* ---- vkws call ------------------------------------------------------ */

/* Deadlines of vkws call (ms): connect, then the whole reply. */
#define CALL_CONNECT_MS 5000
#define CALL_REPLY_MS 30000

/*
 * Connect to the --listen address of c ("ADDR:PORT" or "[V6]:PORT"); a
 * wildcard address means this host's loopback. Returns a blocking
 * socket, or -1 with a message.
 */
static int
call_connect(const struct vkws_config *c)
{
	struct sockaddr_storage ss;
	struct pollfd p;
	unsigned sl;
	int fd, err = 0, fl;
	socklen_t el = sizeof(err);

	if (vkws_addr_parse(c->listen, &ss, &sl) < 0)
		return -1;
	if (ss.ss_family == AF_INET6) {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
		if (a->sin6_port == 0)
			return -1;
		if (IN6_IS_ADDR_UNSPECIFIED(&a->sin6_addr))
			a->sin6_addr = in6addr_loopback;
	} else {
		struct sockaddr_in *a = (struct sockaddr_in *)&ss;
		if (a->sin_port == 0)
			return -1;
		if (a->sin_addr.s_addr == htonl(INADDR_ANY))
			a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	}
	if ((fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
		return -1;
	/* A connect that hangs (a filtered port) ends at the deadline. */
	fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
		goto fail;
	if (connect(fd, (struct sockaddr *)&ss, (socklen_t)sl) < 0) {
		if (errno != EINPROGRESS)
			goto fail;
		p.fd = fd;
		p.events = POLLOUT;
		if (poll(&p, 1, CALL_CONNECT_MS) != 1 || getsockopt(fd,
		    SOL_SOCKET, SO_ERROR, &err, &el) < 0 || err != 0) {
			errno = err != 0 ? err : ETIMEDOUT;
			goto fail;
		}
	}
	return fd;
fail:
	close(fd);
	return -1;
}

/* Write p[0..n) to fd, or -1 at the deadline (monotonic ms). */
static int
call_write(int fd, const char *p, size_t n)
{
	while (n > 0) {
		struct pollfd q = { fd, POLLOUT, 0 };
		ssize_t r;

		if (poll(&q, 1, CALL_REPLY_MS) != 1)
			return -1;
		r = write(fd, p, n);
		if (r < 0 && errno != EAGAIN && errno != EINTR)
			return -1;
		if (r > 0) {
			p += r;
			n -= (size_t)r;
		}
	}
	return 0;
}

/* Read until EOF into out[0..cap); the length, or -1. */
static ssize_t
call_read(int fd, char *out, size_t cap)
{
	size_t n = 0;

	for (;;) {
		struct pollfd q = { fd, POLLIN, 0 };
		ssize_t r;

		if (n == cap || poll(&q, 1, CALL_REPLY_MS) != 1)
			return -1;
		r = read(fd, out + n, cap - n);
		if (r == 0)
			return (ssize_t)n;
		if (r < 0 && errno != EAGAIN && errno != EINTR)
			return -1;
		if (r > 0)
			n += (size_t)r;
	}
}

/* Whether the key can go into a header line as it is. */
static int
key_printable(const char *k, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if ((unsigned char)k[i] <= 0x20 || k[i] == 0x7F)
			return 0;
	return n > 0;
}

/*
 * vkws call METHOD ['PARAMS'] [--listen ADDR:PORT] [--api-key K |
 * --api-key-file F]: one POST /api to the server, over a plain socket
 * with Connection: close; prints the reply body. Exit 0 on code 0, 1 on
 * another code or an HTTP error status, 2 on bad usage or when the
 * server cannot be reached.
 */
static int
cmd_call(struct vkws_config *c, int argc, char **argv)
{
	static const char use[] = "usage: vkws call METHOD ['PARAMS'] "
	    "[--listen ADDR:PORT] [--api-key K | --api-key-file F]\n";
	static char body[VKWS_MAX_BODY + 1];
	static char head[1024];
	static char resp[VKWS_TX_BUF + 1];
	static char *fwd[64];
	const char *method = NULL, *params = NULL, *b;
	struct json_out o, h;
	ssize_t rn;
	int i, nf = 1, fd, r, status, extra = 0;

	fwd[0] = argv[0];
	for (i = 1; i < argc; i++) {
		const char *a = argv[i];
		const struct flag *f = flag_arg(a);

		if (a[0] == '-' && a[1] == '-') {
			if (nf >= 62) {
				extra = 1;
				break;
			}
			fwd[nf++] = argv[i];
			if (f != NULL && f->arg != NULL && i + 1 < argc)
				fwd[nf++] = argv[++i];
		} else if (method == NULL)
			method = a;
		else if (params == NULL)
			params = a;
		else
			extra = 1;
	}
	fwd[nf] = NULL;
	r = extra ? -1 : config_load(c, nf, fwd, 1, 0);
	if (r == CLI_HELP) {
		fputs(use, stdout);
		return 0;
	}
	if (method == NULL || method[0] == '\0' || r != 0 ||
	    load_secret(c, 0) < 0) {
		fputs(use, stderr);
		return 2;
	}
	if (!key_printable(c->api_key, c->api_key_len)) {
		fprintf(stderr, "vkws: no usable API key (--api-key, "
		    "--api-key-file or VKWS_API_KEY)\n");
		return 2;
	}
	json_out_init(&o, body, sizeof(body) - 1);
	json_out_lit(&o, "{\"method\":");
	json_out_str(&o, method, strlen(method));
	json_out_lit(&o, ",\"params\":");
	json_out_lit(&o, params != NULL && params[0] != '\0' ? params : "{}");
	json_out_lit(&o, "}");
	json_out_init(&h, head, sizeof(head));
	json_out_lit(&h, "POST /api HTTP/1.1\r\nHost: ");
	json_out_lit(&h, c->listen);
	json_out_lit(&h, "\r\nAuthorization: apikey ");
	json_out_raw(&h, c->api_key, c->api_key_len);
	json_out_lit(&h, "\r\nContent-Type: application/json\r\n"
	    "Connection: close\r\nContent-Length: ");
	json_out_uint(&h, o.n);
	json_out_lit(&h, "\r\n\r\n");
	if (!json_out_ok(&o) || !json_out_ok(&h)) {
		fprintf(stderr, "vkws: PARAMS longer than %d bytes\n",
		    VKWS_MAX_BODY - 64);
		return 2;
	}
	if ((fd = call_connect(c)) < 0) {
		fprintf(stderr, "vkws: cannot connect to %s: %s\n", c->listen,
		    strerror(errno));
		return 2;
	}
	rn = call_write(fd, head, h.n) < 0 || call_write(fd, body, o.n) < 0 ?
	    -1 : call_read(fd, resp, sizeof(resp) - 1);
	close(fd);
	if (rn < 12 || memcmp(resp, "HTTP/1.", 7) != 0) {
		fprintf(stderr, "vkws: no reply from %s\n", c->listen);
		return 2;
	}
	resp[rn] = '\0';
	status = (int)strtol(resp + 9, NULL, 10);
	b = strstr(resp, "\r\n\r\n");
	b = b != NULL ? b + 4 : resp + rn;
	if (status != 200) {
		const char *eol = strstr(resp, "\r\n");
		fprintf(stderr, "vkws: %.*s\n", eol != NULL ?
		    (int)(eol - resp) : 12, resp);
		return 1;
	}
	printf("%s\n", b);
	if (fflush(stdout) != 0)
		return 2;
	/* The server writes "code" first (api.c). */
	return strncmp(b, "{\"code\":0,", 10) == 0 ||
	    strcmp(b, "{\"code\":0}") == 0 ? 0 : 1;
}

int
main(int argc, char **argv)
{
	int r;

	vkws_config_default(&config);
	/* The protocol layers the core serves (and --budget counts), with
	 * reload() wrapped to read the config file first. */
	hooks = vkws_api_hooks;
	hooks.reload = reload;
	vkws_hooks_set(&hooks);
	if (argc > 1 && strcmp(argv[1], "token") == 0)
		return cmd_token(&config, argc - 1, argv + 1);
	if (argc > 1 && strcmp(argv[1], "call") == 0)
		return cmd_call(&config, argc - 1, argv + 1);
	r = config_load(&config, argc, argv, 1, 0);
	if (r == CLI_HELP) {
		print_usage(stdout);
		return 0;
	}
	if (r == CLI_VERSION) {
		printf("vkws %s\n", VKWS_VERSION);
		return 0;
	}
	if (r == CLI_BUDGET) {
		vkws_budget(STDOUT_FILENO);
		return 0;
	}
	if (r == -1) {
		fputs(hint, stderr);
		return 2;
	}
	if (r < 0 || load_secret(&config, 0) < 0)
		return 1;
	if (config.secret_len == 0)
		fprintf(stderr, "vkws: WARNING: no JWT secret (--secret, "
		    "--secret-file or VKWS_SECRET): every client will be "
		    "refused at auth\n");
	saved_argc = argc;
	saved_argv = argv;
	saved_path = config_path(argc, argv, 1);
	return vkws_serve(&config);
}
