/*
 * main.c: the command line. Parses flags into a struct vkws_config and
 * runs the server, or one of the subcommands (token, call). Everything
 * it reads is copied into fixed fields of the config; a value that does
 * not fit is an error, never truncated.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "auth.h"
#include "vkws.h"

static struct vkws_config config;

static const char usage[] =
"usage: vkws [flags]            run the server\n"
"       vkws token --uid U [--ttl S] [--info JSON] [--secret ...]\n"
"       vkws call METHOD ['PARAMS'] [--listen ...] [--api-key K]\n"
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
"  --api-remote             /api answers peers off loopback too\n"
"  --allowed-origin O       allowed Origin of upgrades (repeatable)\n"
"  --default-room R         room joined at auth (default general; '' none)\n"
"  --no-auto-rooms          join does not create rooms\n"
"  --max-conns N            WebSocket connections (at most the compiled limit)\n"
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
	return 0;
}

/* The secret: --secret, else --secret-file (one trailing newline
 * stripped), else VKWS_SECRET. */
static int
load_secret(struct vkws_config *c)
{
	const char *env = getenv("VKWS_SECRET");
	const char *key = getenv("VKWS_API_KEY");

	if (c->api_key_len == 0 && key != NULL && strlen(key) <
	    sizeof(c->api_key)) {
		c->api_key_len = strlen(key);
		memcpy(c->api_key, key, c->api_key_len + 1);
	}
	if (c->secret_len > 0)
		return 0;
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
	long ttl = 0;
	int i, nf = 1, n;

	fwd[0] = argv[0];
	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--uid") == 0 && i + 1 < argc)
			uid = argv[++i];
		else if (strcmp(argv[i], "--ttl") == 0 && i + 1 < argc)
			ttl = strtol(argv[++i], NULL, 10);
		else if (strcmp(argv[i], "--info") == 0 && i + 1 < argc)
			info = argv[++i];
		else if (nf < 63)
			fwd[nf++] = argv[i];
	}
	fwd[nf] = NULL;
	if (uid == NULL || ttl < 0 || parse_flags(c, nf, fwd, 1) != 0 ||
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
	    ttl > 0 ? (int64_t)time(NULL) + ttl : 0, info,
	    info ? strlen(info) : 0, tok, sizeof(tok) - 1);
	if (n < 0) {
		fprintf(stderr, "vkws: cannot make a token (uid of 1 to %d "
		    "bytes, --info a JSON object)\n", VKWS_UID_MAX);
		return 2;
	}
	tok[n] = '\n';
	return write(STDOUT_FILENO, tok, (size_t)n + 1) == n + 1 ? 0 : 1;
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
	if (argc > 1 && strcmp(argv[1], "token") == 0)
		return cmd_token(&config, argc - 1, argv + 1);
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
