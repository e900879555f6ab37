/* store_test.h — what the store tests (tests/test_store.c, test_store_pg.c)
 * share: a fixed clock, making users, appending chat events and collecting
 * what a read of events returns; and databases made and dropped on the
 * PostgreSQL cluster at CHAT_TEST_PG (scripts/with-pg.sh), with URLs for
 * them. Header-only (static inline): each unit test links only its own
 * object (Makefile). Include after cmocka.h. */
#ifndef CHAT_STORE_TEST_H
#define CHAT_STORE_TEST_H

#include <libpq-fe.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store.h"

#define NOW 1700000000000LL

/* ---- the store ---- */

static inline int64_t mkuser(struct store *st, const char *name)
{
    int64_t id = 0;
    assert_int_equal(store_user_create(st, name, "$argon2id$hash", NOW, &id), STORE_OK);
    assert_true(id > 0);
    return id;
}

/* Appends a chat event at NOW; returns its id and checks it was created. */
static inline int64_t append(struct store *st, int64_t sender, int64_t recipient,
                             const char *cmid, const char *payload)
{
    struct store_new_event ev = {
        .type = "chat", .recipient_id = recipient, .sender_id = sender,
        .client_msg_id = cmid, .payload = payload, .ts_ms = NOW,
    };
    int64_t id = 0, ts = 0;
    int created = -1;
    assert_int_equal(store_event_append(st, &ev, &id, &ts, &created), STORE_OK);
    assert_int_equal(created, 1);
    assert_int_equal(ts, NOW);
    assert_true(id > 0);
    return id;
}

/* The events a read handed to collect: the first SEEN_MAX of them, and n. */
#define SEEN_MAX 64
struct seen {
    int n;
    int stop_after;             /* 0: never stop */
    int64_t ids[SEEN_MAX];
    int64_t rcpt[SEEN_MAX];
    char payload[SEEN_MAX][64];
    char type[SEEN_MAX][16];
};

static inline int collect(void *arg, const struct store_event *ev)
{
    struct seen *s = arg;
    if (s->n < SEEN_MAX) {
        s->ids[s->n] = ev->id;
        s->rcpt[s->n] = ev->recipient_id;
        snprintf(s->payload[s->n], sizeof s->payload[0], "%s", ev->payload);
        snprintf(s->type[s->n], sizeof s->type[0], "%s", ev->type);
    }
    s->n++;
    return s->stop_after && s->n >= s->stop_after;
}

/* A user's events after `after`. */
static inline struct seen feed(struct store *st, int64_t user, int64_t after, int limit)
{
    struct seen s = {0};
    assert_int_equal(store_events_after(st, user, after, limit, collect, &s), STORE_OK);
    return s;
}

/* Every recipient's events after `after`. */
static inline struct seen all_after(struct store *st, int64_t after, int limit)
{
    struct seen s = {0};
    assert_int_equal(store_events_all_after(st, after, limit, collect, &s), STORE_OK);
    return s;
}

/* ---- PostgreSQL databases ---- */

/* CREATE, DROP or ALTER DATABASE (which cannot be prepared) on the cluster. */
static inline int pg_test_admin(const char *verb, const char *db, const char *suffix)
{
    PGconn *c = PQconnectdb(getenv("CHAT_TEST_PG"));
    char *ident = PQstatus(c) == CONNECTION_OK ? PQescapeIdentifier(c, db, strlen(db)) : NULL;
    char sql[256];
    snprintf(sql, sizeof sql, "%s DATABASE %s%s", verb, ident ? ident : "?", suffix);
    PGresult *r = ident ? PQexec(c, sql) : NULL;
    int ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    if (!ok)
        fprintf(stderr, "%s: %s", sql, PQerrorMessage(c));
    PQclear(r);
    PQfreemem(ident);
    PQfinish(c);
    return ok ? 0 : -1;
}

/* The CHAT_TEST_PG URL with its database replaced by db. */
static inline void pg_test_url(const char *db, char *out, size_t len)
{
    const char *base = getenv("CHAT_TEST_PG");
    const char *auth = strstr(base, "://");
    auth = auth ? auth + 3 : base;
    size_t host = strcspn(auth, "/?");
    const char *query = strchr(auth + host, '?');
    snprintf(out, len, "%.*s/%s%s", (int)(auth + host - base), base, db, query ? query : "");
}

#endif
