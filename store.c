/*
 * store.c: chat history and persistent rooms on disk. Without --data-dir
 * nothing is written and history lives in memory only (PROTOCOL.md 6).
 */
#include "core.h"

int
vkws_store_chat(const char *room, size_t n, uint64_t seq, const char *frame,
    size_t fn)
{
	(void)room;
	(void)n;
	(void)seq;
	(void)frame;
	(void)fn;
	return 0;
}

int
vkws_store_room(const char *room, size_t n, uint32_t max_clients,
    int persistent)
{
	(void)room;
	(void)n;
	(void)max_clients;
	(void)persistent;
	return 0;
}

int
vkws_store_room_deleted(const char *room, size_t n)
{
	(void)room;
	(void)n;
	return 0;
}

int
vkws_store_open(struct vkws_config *c)
{
	if (c->data_dir[0] != '\0') {
		vkws_log("--data-dir is not supported yet");
		return -1;
	}
	return 0;
}

void
vkws_store_sync(void)
{
}
