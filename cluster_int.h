/*
 * cluster_int.h: what the cluster files share between themselves, and
 * nothing else includes. cluster.c is the link to Redis (its requests,
 * replies and bus); cluster_lua.c holds the scripts it runs there;
 * cluster_api.c is the server API across nodes (calls gathered from
 * every node, held HTTP replies) on top of the link.
 */
#ifndef VKWS_CLUSTER_INT_H
#define VKWS_CLUSTER_INT_H

/* ---- cluster_lua.c: the scripts, loaded at connect, run by EVALSHA -- */

enum { SC_REG, SC_BEAT, SC_DROP, SC_CHAT, SC_JOIN, SC_REJOIN, SC_LEAVE,
    SC_PRIV, SC_INFO, SC_LIST, SC_FORGET, SC_N };
extern const char *const vkws_cl_scripts[SC_N];

#endif
