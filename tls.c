/*
 * tls.c: the TLS transport on BearSSL. Not written yet: --tls-listen is
 * refused at start.
 */
#include <errno.h>

#include "core.h"

int
vkws_tls_init(struct vkws_config *c)
{
	(void)c;
	vkws_log("TLS is not built into this server yet");
	return -1;
}

void vkws_tls_reload(void) { }
int vkws_tls_accept(struct conn *c) { (void)c; return -1; }
ssize_t vkws_tls_recv(struct conn *c, void *p, size_t n)
{ (void)c; (void)p; (void)n; errno = EIO; return -1; }
ssize_t vkws_tls_send(struct conn *c, const struct iovec *iov, int n)
{ (void)c; (void)iov; (void)n; errno = EIO; return -1; }
int vkws_tls_flush(struct conn *c) { (void)c; return 0; }
void vkws_tls_close(struct conn *c) { (void)c; }
int vkws_tls_pending(const struct conn *c) { (void)c; return 0; }
short vkws_tls_events(const struct conn *c, short ev) { (void)c; return ev; }
void vkws_tls_free(struct conn *c) { (void)c; }
size_t vkws_tls_static_size(void) { return 0; }
const char *vkws_tls_cipher(const struct conn *c) { (void)c; return NULL; }
