/* pg_test.h — what the PostgreSQL store tests share: databases made and
 * dropped on the cluster at CHAT_TEST_PG (scripts/with-pg.sh), and URLs for
 * them. Header-only, included by tests/test_store*.c. */
#ifndef CHAT_PG_TEST_H
#define CHAT_PG_TEST_H

#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* CREATE or DROP DATABASE (which cannot be prepared) on the cluster. */
static int pg_test_admin(const char *verb, const char *db, const char *suffix)
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
static void pg_test_url(const char *db, char *out, size_t len)
{
    const char *base = getenv("CHAT_TEST_PG");
    const char *auth = strstr(base, "://");
    auth = auth ? auth + 3 : base;
    size_t host = strcspn(auth, "/?");
    const char *query = strchr(auth + host, '?');
    snprintf(out, len, "%.*s/%s%s", (int)(auth + host - base), base, db, query ? query : "");
}

#endif
