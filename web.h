/*
 * web.h: the files of the built-in chat page (web/) as the binary holds
 * them. web/embed.sh writes the table at build time ($(O)/web_assets.c);
 * web.c serves it. Const data only: nothing here is written at run time.
 */
#ifndef VKWS_WEB_H
#define VKWS_WEB_H

#include <stddef.h>

#include "vkws.h"

/* Bytes of a response head web.c writes: the status line, the fixed
 * headers and a Content-Security-Policy naming the Host twice. */
#define VKWS_WEB_HEAD_MAX 1536
/* Largest Host header value copied into the Content-Security-Policy;
 * a longer one (no real host name is) falls back to 'self' alone. */
#define VKWS_WEB_HOST_MAX 255
/* Largest file of the page (bytes): a response, head and body, is queued
 * whole into an empty send queue. embed.sh asserts it per file. */
#define VKWS_WEB_FILE_MAX (VKWS_TX_BUF - VKWS_CLOSE_RESERVE - \
    VKWS_WEB_HEAD_MAX)

_Static_assert(VKWS_WEB_HEAD_MAX > 2 * VKWS_WEB_HOST_MAX + 512,
    "the head buffer holds the fixed headers and the Host twice");

struct vkws_web_asset {
	const char *path;	/* URL path, NUL-terminated: "/", "/app.js" */
	const char *type;	/* Content-Type */
	const char *etag;	/* entity tag, quotes included */
	const unsigned char *body;
	size_t len;
};

extern const struct vkws_web_asset vkws_web_assets[];
extern const size_t vkws_web_nassets;

#endif
