/* servers.h — the list of server URLs from --server URL[,URL...] and which
 * one is in use. Everything that talks to the server (login, polling,
 * sending, the bank, the WebSocket) asks the list for its current server
 * just before connecting and tells it when that server failed; the list
 * then moves on to the next URL, round robin. Pure C, no lws: the parsing
 * and the rotation are unit-tested (tests/test_client_servers.c). */
#ifndef CHAT_SERVERS_H
#define CHAT_SERVERS_H

#include <stddef.h>

#define SERVERS_MAX     16
#define SERVER_URL_MAX  512

/* One --server URL, parsed (not server/server.h's struct server, which is
 * chatd's whole state). */
struct server_url {
    char url[SERVER_URL_MAX];    /* normalised: scheme://host[:port][/prefix] */
    char host[256];              /* no brackets around an IPv6 address */
    int port;                    /* 80 / 443 unless given */
    int tls;                     /* https:// */
    char prefix[SERVER_URL_MAX]; /* "" or "/path", no trailing slash */
};

struct servers;

/* Parses "URL[,URL...]" (spaces around commas are ignored). NULL on error,
 * with the reason in err. */
struct servers *servers_parse(const char *spec, char *err, size_t errlen);
/* A list of one server given as parts (for callers with a fixed address). */
struct servers *servers_new_one(const char *host, int port, int tls, const char *prefix);
void servers_free(struct servers *s);

size_t servers_count(const struct servers *s);
const struct server_url *servers_get(const struct servers *s, size_t i);
/* The server to connect to now; the pointer stays valid as long as s. */
const struct server_url *servers_current(const struct servers *s);
/* 1 if any server is https://. */
int servers_any_tls(const struct servers *s);

/* which (a server this list returned) failed. If it is still the current
 * one, the next one becomes current and the hook runs; a failure of a
 * server already left behind changes nothing, so two requests failing on
 * the same server move on once. Returns 1 if the current server changed. */
int servers_failed(struct servers *s, const struct server_url *which);

/* Called when the current server changes (from servers_failed). */
typedef void (*servers_hook)(void *arg, const struct server_url *now,
                             const struct server_url *before);
void servers_set_hook(struct servers *s, servers_hook fn, void *arg);

/* The path prefix of the current server of s, or fallback when s is NULL. */
const char *servers_prefix(const struct servers *s, const char *fallback);

#endif
