/*
 * cluster.h: cluster mode on Redis (PROTOCOL.md 9). The link
 * to Redis is one more kind of descriptor in the core's loop (through
 * hooks->poll_fds / poll_ready); the chat protocol calls the functions
 * below where an operation needs the cluster. Without --redis they are
 * never called (vkws_cluster_on() is 0).
 */
#ifndef VKWS_CLUSTER_H
#define VKWS_CLUSTER_H

#include <poll.h>
#include <stddef.h>
#include <stdint.h>

#include "vkws.h"

struct conn;
struct room;

/* At start (api.c's init hook): -1 stops the server. */
int vkws_cluster_init(struct vkws_config *c);
/* At a clean stop: leave the cluster, flushing what the link holds. */
void vkws_cluster_stop(void);
size_t vkws_cluster_static_size(void);
int vkws_cluster_on(void);	/* --redis given */
int vkws_cluster_up(void);	/* the link serves */
/* The loop hooks (struct vkws_hooks). */
size_t vkws_cluster_poll_fds(struct pollfd *p, size_t max, int64_t now,
    int64_t *next);
void vkws_cluster_poll_ready(const struct pollfd *p, size_t n);

/*
 * Operations of the chat protocol that need the cluster. id[0..idn) is
 * the request's "id" as its JSON source text (idn 0: none); the reply
 * goes out through vkws_chat_ack() once Redis has answered. Each returns
 * 0 if the request went to Redis, or a VKWS_E* code answered already.
 */
int vkws_cluster_chat(struct conn *c, struct room *r, const char *text,
    size_t n, const char *id, size_t idn);
int vkws_cluster_join(struct conn *c, const char *room, size_t n,
    uint64_t since, const char *id, size_t idn);
/* A leave of r: the request goes to Redis, c leaves here, and the ack
 * waits for Redis's reply (-7 if the link fails first). */
int vkws_cluster_leave(struct conn *c, struct room *r, const char *id,
    size_t idn);
int vkws_cluster_private(struct conn *c, const char *uid, size_t un,
    const char *frame, size_t fn, const char *id, size_t idn);

/* This node's ID. */
const char *vkws_cluster_node(void);
/*
 * The server API (api.c): a call by conn c (an /api request) of method
 * with body[0..n), clientId cid[0..cn) and room[0..rn) if it has them.
 * Returns 1 if it went to the nodes that must run it (answered later
 * through vkws_api_reply()), 0 if this node runs it alone, or a VKWS_E*
 * code.
 */
int vkws_cluster_api(struct conn *c, const char *method, const char *body,
    size_t n, const char *cid, size_t cn, const char *room, size_t rn,
    int keep);
/* joinRoom (api.c) of this node's connection cid[0..cn): through the
 * join script, so maxClients counts every node. api: the /api
 * connection, or NULL for a call another node sent. 0 if done here (a
 * member already), 1 if answered later, or a VKWS_E* code. */
int vkws_cluster_api_join(struct conn *api, const char *cid, size_t cn,
    const char *room, size_t rn, int keep);
/* getRoomHistory (api.c): the newest limit (0: all kept) messages of the
 * room from Redis; 1 if held, or a VKWS_E* code. here: the room exists
 * on this node (an empty history is then [] rather than -3). */
int vkws_cluster_history(struct conn *c, const char *room, size_t rn,
    uint32_t limit, int here, int keep);
/* getRoomInfo (and createRoom's answer) and listRooms (api.c) from
 * Redis, which holds every node's rooms, members and settings: 1 if
 * held, or a VKWS_E* code. */
int vkws_cluster_room_info(struct conn *c, const char *room, size_t rn,
    int keep);
int vkws_cluster_list_rooms(struct conn *c, int keep);
/* createRoom (api.c), before vkws_create_room(): whether the call gave
 * maxClients and persistent; only those go to Redis. */
void vkws_cluster_create_fields(int max, int persistent);
/* api.c: run a call here only (for another node); its reply at *out. */
size_t vkws_api_run(const char *body, size_t n, const char **out);
/* api.c: answer a held call. */
void vkws_api_reply(struct conn *c, const char *json, size_t n, int keep);

#endif
