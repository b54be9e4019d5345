/*
 * main.c: the command line. Parses flags into a struct vkws_config and
 * runs the server, or one of the subcommands (token, call). Everything
 * it reads is copied into fixed fields of the config; a value that does
 * not fit is an error, never truncated.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
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

static const char usage[] =
"usage: vkws [flags]            run the server\n"
"       vkws token --uid U [--ttl S] [--info JSON] [--secret ...]\n"
"       vkws call METHOD ['PARAMS'] [--listen ...] [--api-key K]\n"
"                               one POST /api to the local server; exit 0\n"
"                               on code 0, 1 on an error, 2 on bad usage\n"
"       vkws --budget           print the static memory budget\n"
"\n"
"flags:\n"
"  --listen ADDR:PORT       plain listener (default 127.0.0.1:8080; '' off;\n"
"                           port 0 picks a free one; [::1]:PORT for IPv6)\n"
"  --tls-listen ADDR:PORT   TLS listener (with --cert and --key)\n"
"  --cert FILE --key FILE   PEM certificate chain and private key\n"
"  --echo                   serve GET /echo, a plain RFC 6455 echo\n"
"  --secret S               JWT secret (or --secret-file, or VKWS_SECRET)\n"
"  --secret-file FILE       JWT secret, one trailing newline stripped\n"
"  --api-key K              key for POST /api (or VKWS_API_KEY)\n"
"  --api-key-file FILE      key for POST /api, one trailing newline\n"
"                           stripped; read again on SIGHUP\n"
"  --api-remote             /api answers peers off loopback too\n"
"  --allowed-origin O       allowed Origin of upgrades (repeatable)\n"
"  --default-room R         room joined at auth (default general; '' none)\n"
"  --no-auto-rooms          join does not create rooms\n"
"  --max-conns N            WebSocket connections (at most the compiled limit)\n"
"  --sndbuf BYTES           kernel send buffer per connection (SO_SNDBUF),\n"
"                           0: the kernel's autotuning (default)\n"
"  --pool-chunks N          chunks of the memory pool used (at most the\n"
"                           compiled VKWS_POOL_CHUNKS; see --budget)\n"
"  --max-pending N          unauthenticated WebSocket connections\n"
"  --max-per-ip N           WebSocket connections per address (0: no cap)\n"
"  --history N              chat messages kept and replayed per room\n"
"  --rate N                 messages per second per connection (default 50)\n"
"  --rate-burst N           token bucket size (default twice the rate)\n"
"  --rate-grace S           seconds over the rate before close 1008 (10)\n"
"  --handshake-timeout S    seconds to send a request head (10)\n"
"  --auth-timeout S         seconds to authenticate (10)\n"
"  --ping-interval S        seconds between keepalive pings (30)\n"
"  --idle-timeout S         close 4002 after S seconds without a frame (75)\n"
"  --close-timeout S        seconds to wait for the peer's close (5)\n"
"  --active-window S        getActiveConnections window (60)\n"
"  --data-dir DIR           keep history and persistent rooms on disk\n"
"  --fsync MODE             always | batch (default) | never (lossy on power\n"
"                           loss): when logged chat reaches the disk\n"
"  --log-max BYTES          compact the log past this size (default 1 MiB)\n"
"  --budget                 print the static memory budget and exit\n"
"  --help                   this text\n";

enum { CLI_HELP = 1, CLI_BUDGET = 2 };

/* Copy a flag value into a fixed field; a value that does not fit is an
 * error, never truncated. */
static int
set_str(char *dst, size_t cap, const char *v)
{
	size_t n = strlen(v);

	if (n >= cap)
		return -1;
	memcpy(dst, v, n + 1);
	return 0;
}

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

static int
read_file(const char *path, uint8_t *out, size_t cap, size_t *n)
{
	ssize_t r;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return -1;
	*n = 0;
	while ((r = read(fd, out + *n, cap - *n)) > 0)
		*n += (size_t)r;
	close(fd);
	if (r < 0 || *n == cap)
		return -1;
	return 0;
}

/*
 * Parse server flags from argv[first..argc). Unknown flags and values
 * out of range are errors. Returns 0, CLI_HELP, CLI_BUDGET, or -1.
 */
static int
parse_flags(struct vkws_config *c, int argc, char **argv, int first)
{
	int i;

	for (i = first; i < argc; i++) {
		const char *f = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;
		int r = -1, takes = 1;

		if (strcmp(f, "--help") == 0 || strcmp(f, "-h") == 0)
			return CLI_HELP;
		if (strcmp(f, "--budget") == 0)
			return CLI_BUDGET;
		if (strcmp(f, "--echo") == 0) {
			c->echo = 1;
			continue;
		}
		if (strcmp(f, "--api-remote") == 0) {
			c->api_remote = 1;
			continue;
		}
		if (strcmp(f, "--no-auto-rooms") == 0) {
			c->no_auto_rooms = 1;
			continue;
		}
		if (v == NULL) {
			fprintf(stderr, "vkws: %s needs a value\n", f);
			return -1;
		}
		if (strcmp(f, "--listen") == 0)
			r = set_str(c->listen, sizeof(c->listen), v);
		else if (strcmp(f, "--tls-listen") == 0)
			r = set_str(c->tls_listen, sizeof(c->tls_listen), v);
		else if (strcmp(f, "--cert") == 0)
			r = set_str(c->cert, sizeof(c->cert), v);
		else if (strcmp(f, "--key") == 0)
			r = set_str(c->key, sizeof(c->key), v);
		else if (strcmp(f, "--data-dir") == 0)
			r = set_str(c->data_dir, sizeof(c->data_dir), v);
		else if (strcmp(f, "--secret-file") == 0)
			r = set_str(c->secret_file, sizeof(c->secret_file), v);
		else if (strcmp(f, "--secret") == 0) {
			c->secret_len = strlen(v);
			r = c->secret_len < sizeof(c->secret) ? 0 : -1;
			if (r == 0)
				memcpy(c->secret, v, c->secret_len);
		} else if (strcmp(f, "--api-key-file") == 0) {
			r = set_str(c->api_key_file, sizeof(c->api_key_file),
			    v);
		} else if (strcmp(f, "--api-key") == 0) {
			r = set_str(c->api_key, sizeof(c->api_key), v);
			c->api_key_len = strlen(c->api_key);
		} else if (strcmp(f, "--allowed-origin") == 0) {
			if (c->norigins < VKWS_MAX_ORIGINS)
				r = set_str(c->origins[c->norigins++],
				    VKWS_ORIGIN_MAX, v);
		} else if (strcmp(f, "--default-room") == 0)
			r = set_str(c->default_room, sizeof(c->default_room), v);
		else if (strcmp(f, "--max-conns") == 0)
			r = set_uint(&c->max_conns, v, VKWS_MAX_CONNS);
		else if (strcmp(f, "--sndbuf") == 0)
			r = set_uint(&c->sndbuf, v, VKWS_SNDBUF_MAX);
		else if (strcmp(f, "--pool-chunks") == 0)
			r = set_uint(&c->pool_chunks, v, VKWS_POOL_CHUNKS);
		else if (strcmp(f, "--max-pending") == 0)
			r = set_uint(&c->max_pending, v, VKWS_MAX_CONNS);
		else if (strcmp(f, "--max-per-ip") == 0)
			r = set_uint(&c->max_per_ip, v, VKWS_MAX_CONNS);
		else if (strcmp(f, "--history") == 0)
			r = set_uint(&c->history, v, VKWS_HISTORY);
		else if (strcmp(f, "--rate") == 0) {
			r = set_uint(&c->rate, v, 100000);
			c->rate_burst = 2 * c->rate;
		} else if (strcmp(f, "--rate-burst") == 0)
			r = set_uint(&c->rate_burst, v, 1000000);
		else if (strcmp(f, "--rate-grace") == 0)
			r = set_uint(&c->rate_grace, v, 86400);
		else if (strcmp(f, "--handshake-timeout") == 0)
			r = set_uint(&c->handshake_timeout, v, 3600);
		else if (strcmp(f, "--auth-timeout") == 0)
			r = set_uint(&c->auth_timeout, v, 3600);
		else if (strcmp(f, "--ping-interval") == 0)
			r = set_uint(&c->ping_interval, v, 86400);
		else if (strcmp(f, "--idle-timeout") == 0)
			r = set_uint(&c->idle_timeout, v, 86400);
		else if (strcmp(f, "--close-timeout") == 0)
			r = set_uint(&c->close_timeout, v, 3600);
		else if (strcmp(f, "--active-window") == 0)
			r = set_uint(&c->active_window, v, 86400);
		else if (strcmp(f, "--fsync") == 0) {
			r = 0;
			if (strcmp(v, "batch") == 0)
				c->fsync_mode = VKWS_FSYNC_BATCH;
			else if (strcmp(v, "always") == 0)
				c->fsync_mode = VKWS_FSYNC_ALWAYS;
			else if (strcmp(v, "never") == 0)
				c->fsync_mode = VKWS_FSYNC_NEVER;
			else
				r = -1;
		} else if (strcmp(f, "--log-max") == 0)
			r = set_uint(&c->log_max, v, VKWS_LOG_MAX_LIMIT);
		else {
			fprintf(stderr, "vkws: unknown flag %s\n", f);
			return -1;
		}
		if (r < 0) {
			fprintf(stderr, "vkws: bad value for %s: %s\n", f, v);
			return -1;
		}
		i += takes;
	}
	if (c->handshake_timeout == 0 || c->close_timeout == 0 ||
	    c->idle_timeout == 0 || c->auth_timeout == 0 ||
	    c->max_conns == 0) {
		fprintf(stderr, "vkws: timeouts and --max-conns must be > 0\n");
		return -1;
	}
	if (c->pool_chunks < VKWS_POOL_MIN) {
		fprintf(stderr, "vkws: --pool-chunks must be at least %d\n",
		    VKWS_POOL_MIN);
		return -1;
	}
	return 0;
}

/* The secret: --secret, else --secret-file (one trailing newline
 * stripped), else VKWS_SECRET. */
static int
load_secret(struct vkws_config *c)
{
	const char *env = getenv("VKWS_SECRET");
	const char *key = getenv("VKWS_API_KEY");

	/* The API key: --api-key, else --api-key-file (read again on
	 * SIGHUP), else VKWS_API_KEY. */
	if (c->api_key_len > 0)
		c->api_key_file[0] = '\0';
	else if (c->api_key_file[0] != '\0') {
		if (read_file(c->api_key_file, (uint8_t *)c->api_key,
		    sizeof(c->api_key) - 1, &c->api_key_len) < 0) {
			fprintf(stderr, "vkws: cannot read API key file %s\n",
			    c->api_key_file);
			return -1;
		}
		if (c->api_key_len > 0 &&
		    c->api_key[c->api_key_len - 1] == '\n')
			c->api_key_len--;
		c->api_key[c->api_key_len] = '\0';
	} else if (key != NULL && strlen(key) < sizeof(c->api_key)) {
		c->api_key_len = strlen(key);
		memcpy(c->api_key, key, c->api_key_len + 1);
	}
	/* --secret wins over --secret-file, at start and on SIGHUP. */
	if (c->secret_len > 0) {
		c->secret_file[0] = '\0';
		return 0;
	}
	if (c->secret_file[0] != '\0') {
		if (read_file(c->secret_file, c->secret, sizeof(c->secret),
		    &c->secret_len) < 0) {
			fprintf(stderr, "vkws: cannot read secret file %s\n",
			    c->secret_file);
			return -1;
		}
		if (c->secret_len > 0 && c->secret[c->secret_len - 1] == '\n')
			c->secret_len--;
		return 0;
	}
	if (env != NULL && strlen(env) < sizeof(c->secret)) {
		c->secret_len = strlen(env);
		memcpy(c->secret, env, c->secret_len);
	}
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
	if (uid == NULL || bad || parse_flags(c, nf, fwd, 1) != 0 ||
	    load_secret(c) < 0) {
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
		if (a[0] == '-' && a[1] == '-') {
			if (nf >= 62) {
				extra = 1;
				break;
			}
			fwd[nf++] = argv[i];
			/* Every flag but these takes a value. */
			if (strcmp(a, "--echo") != 0 &&
			    strcmp(a, "--api-remote") != 0 &&
			    strcmp(a, "--no-auto-rooms") != 0 &&
			    strcmp(a, "--help") != 0 &&
			    strcmp(a, "--budget") != 0 && i + 1 < argc)
				fwd[nf++] = argv[++i];
		} else if (method == NULL)
			method = a;
		else if (params == NULL)
			params = a;
		else
			extra = 1;
	}
	fwd[nf] = NULL;
	r = extra ? -1 : parse_flags(c, nf, fwd, 1);
	if (r == CLI_HELP) {
		fputs(use, stdout);
		return 0;
	}
	if (method == NULL || method[0] == '\0' || r != 0 ||
	    load_secret(c) < 0) {
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

static int
die_usage(const char *what, const char *arg)
{
	fprintf(stderr, "vkws: %s%s%s\n%s", what, arg ? ": " : "",
	    arg ? arg : "", usage);
	return 2;
}

int
main(int argc, char **argv)
{
	int r;

	vkws_config_default(&config);
	vkws_hooks_set(&vkws_api_hooks);
	if (argc > 1 && strcmp(argv[1], "token") == 0)
		return cmd_token(&config, argc - 1, argv + 1);
	if (argc > 1 && strcmp(argv[1], "call") == 0)
		return cmd_call(&config, argc - 1, argv + 1);
	r = parse_flags(&config, argc, argv, 1);
	if (r == CLI_HELP) {
		fputs(usage, stdout);
		return 0;
	}
	if (r == CLI_BUDGET) {
		vkws_budget(STDOUT_FILENO);
		return 0;
	}
	if (r < 0)
		return die_usage("bad arguments", NULL);
	if (load_secret(&config) < 0)
		return 2;
	return vkws_serve(&config);
}
