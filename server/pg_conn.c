/* pg_conn.c — the PostgreSQL connections behind store_pg.c (pg_conn.h):
 * opening them, the per-session settings and prepared statements, running
 * a statement with one reconnect, mapping SQLSTATEs to store codes, the
 * nonblocking LISTEN connection that tells the event loop when any instance
 * has committed events, and applying the embedded schema (db/pg, via
 * pg_migrations.h). Every piece of connection state is in struct pg.
 *
 * Not thread-safe: one struct pg is used from the server's event loop only. */
#include "pg_conn.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pg_migrations.h"

/* pg_advisory_lock key serializing schema migrations ("chatd" + 1). */
#define MIGRATION_LOCK "6514018165604353"

/* ---- statement parameters, as text ---- */

/* A NULL s is SQL NULL. */
void p_str(struct params *p, const char *s)
{
    if (p->n == MAX_PARAMS) {
        p->bad = 1;
        return;
    }
    p->v[p->n++] = s;
}

void p_i64(struct params *p, int64_t x)
{
    if (p->n == MAX_PARAMS) {
        p->bad = 1;
        return;
    }
    snprintf(p->num[p->n], sizeof p->num[0], "%lld", (long long)x);
    p->v[p->n] = p->num[p->n];
    p->n++;
}

/* 0 stands for "none" in the API and is stored as NULL. */
void p_id(struct params *p, int64_t x)
{
    if (x == 0)
        p_str(p, NULL);
    else
        p_i64(p, x);
}

int64_t col_i64(const PGresult *r, int row, int col)
{
    return PQgetisnull(r, row, col) ? 0 : (int64_t)strtoll(PQgetvalue(r, row, col), NULL, 10);
}

/* Copies a text column into dst; a value that does not fit is an error
 * (a truncated password hash or name would be silently wrong). */
int copy_col(const PGresult *r, int row, int col, char *dst, size_t len, const char *what)
{
    size_t n = (size_t)PQgetlength(r, row, col);
    if (n >= len) {
        fprintf(stderr, "store: %s: value does not fit (%zu bytes, buffer %zu)\n", what, n, len);
        return STORE_ERROR;
    }
    memcpy(dst, PQgetvalue(r, row, col), n + 1);
    return STORE_OK;
}

/* ---- errors ---- */

/* Logs msg on one line: libpq's messages may span several and end with a
 * newline. */
void log_pg(const char *what, const char *msg, const char *sqlstate)
{
    char line[512];
    size_t n = 0;
    for (const char *c = msg; *c && n < sizeof line - 1; c++)
        if (*c != '\n' && *c != '\t')
            line[n++] = *c;
        else if (n && line[n - 1] != ' ')
            line[n++] = ' ';
    while (n && line[n - 1] == ' ')
        n--;
    line[n] = '\0';
    if (sqlstate)
        fprintf(stderr, "store: %s: %s (SQLSTATE %s)\n", what, line, sqlstate);
    else
        fprintf(stderr, "store: %s: %s\n", what, line);
}

/* The primary message only: the detail of a unique violation quotes the key,
 * which may be a session's token hash. */
const char *result_msg(const PGresult *r, const PGconn *c)
{
    const char *m = r ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    return m ? m : PQerrorMessage(c);
}

/* Maps a statement's outcome: 23505 (unique) to STORE_EXISTS and 23503
 * (foreign key) to STORE_NOT_FOUND where map asks for it; other failures
 * are logged and are STORE_ERROR. */
int result_rc(struct pg *g, const PGresult *r, int map, const char *what)
{
    ExecStatusType s = PQresultStatus(r);
    if (s == PGRES_COMMAND_OK || s == PGRES_TUPLES_OK)
        return STORE_OK;
    const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    if (state && (map & MAP_UNIQUE) && !strcmp(state, "23505"))
        return STORE_EXISTS;
    if (state && (map & MAP_FK) && !strcmp(state, "23503"))
        return STORE_NOT_FOUND;
    log_pg(what, result_msg(r, g->conn), state);
    return STORE_ERROR;
}

/* Server notices (e.g. "already exists, skipping") are dropped; warnings are
 * logged. */
static void on_notice(void *arg, const PGresult *r)
{
    (void)arg;
    const char *sev = PQresultErrorField(r, PG_DIAG_SEVERITY_NONLOCALIZED);
    if (sev && !strcmp(sev, "WARNING"))
        log_pg("server warning", result_msg(r, NULL), PQresultErrorField(r, PG_DIAG_SQLSTATE));
}

/* ---- connections ---- */

/* Copies the URL for messages: password and query string (which may hold
 * one too) replaced by "***". */
static void redact(const char *url, char *out, size_t len)
{
    const char *auth = strstr(url, "://");
    auth = auth ? auth + 3 : url;
    size_t authlen = strcspn(auth, "/?#");
    size_t end = strcspn(url, "?#");
    const char *at = NULL, *colon = NULL;
    for (size_t i = 0; i < authlen; i++)
        if (auth[i] == '@')
            at = auth + i;
    for (const char *c = auth; at && c < at && !colon; c++)
        if (*c == ':')
            colon = c;
    const char *tail = url[end] ? "?***" : "";
    if (colon)
        snprintf(out, len, "%.*s:***%.*s%s", (int)(colon - url), url,
                 (int)(url + end - at), at, tail);
    else
        snprintf(out, len, "%.*s%s", (int)end, url, tail);
}

/* Connects to location; the URL's own parameters override these defaults. */
static PGconn *pg_connect(const char *location, const char *app, char *err, size_t errlen)
{
    const char *const keys[] = {"connect_timeout", "application_name", "dbname", NULL};
    const char *const vals[] = {"10", app, location, NULL};
    PGconn *c = PQconnectdbParams(keys, vals, 1);
    if (c && PQstatus(c) == CONNECTION_OK) {
        PQsetNoticeReceiver(c, on_notice, NULL);
        return c;
    }
    char where[256], msg[512];
    redact(location, where, sizeof where);
    snprintf(msg, sizeof msg, "%s", c ? PQerrorMessage(c) : "out of memory");
    msg[strcspn(msg, "\n")] = '\0';
    snprintf(err, errlen, "connect to %s: %s", where, msg);
    PQfinish(c);
    return NULL;
}

/* Runs one fixed statement (no parameters, no data) for open and setup. */
static int exec_fixed(PGconn *c, const char *sql, char *err, size_t errlen)
{
    PGresult *r = PQexec(c, sql);
    ExecStatusType s = PQresultStatus(r);
    int ok = s == PGRES_COMMAND_OK || s == PGRES_TUPLES_OK;
    if (!ok) {
        snprintf(err, errlen, "%.40s: %s", sql, result_msg(r, c));
        err[strcspn(err, "\n")] = '\0';
    }
    PQclear(r);
    return ok ? 0 : -1;
}

static void stmt_name(int i, char *name, size_t len)
{
    snprintf(name, len, "chatd_q%d", i);
}

/* Per-session settings and the prepared statements: at open and after every
 * reconnect, since both are lost with the session. lock_timeout bounds a
 * wait for a row (as SQLite's busy_timeout); a stuck instance idle inside a
 * transaction is cut off so it cannot hold event_counter for everyone; and
 * synchronous_commit is at least on: store.h promises a returned id is
 * durable, and with it off a crash could hand the same id out again. */
static int session_setup(struct pg *g, char *err, size_t errlen)
{
    PGconn *c = g->conn;
    if (exec_fixed(c, "SET lock_timeout = '5s'", err, errlen) ||
        exec_fixed(c, "SET idle_in_transaction_session_timeout = '60s'", err, errlen) ||
        exec_fixed(c, "SELECT set_config('synchronous_commit', 'on', false)"
                      " WHERE current_setting('synchronous_commit') = 'off'", err, errlen))
        return -1;
    for (int i = 0; i < g->nsql; i++) {
        char name[24];
        stmt_name(i, name, sizeof name);
        PGresult *r = PQprepare(c, name, g->sql[i], 0, NULL);
        int ok = PQresultStatus(r) == PGRES_COMMAND_OK;
        if (!ok) {
            snprintf(err, errlen, "prepare %s: %s", name, result_msg(r, c));
            err[strcspn(err, "\n")] = '\0';
        }
        PQclear(r);
        if (!ok)
            return -1;
    }
    return 0;
}

/* Re-establishes the main connection (PQreset) and its session state. */
static int reconnect(struct pg *g)
{
    char err[512];
    fprintf(stderr, "store: PostgreSQL connection lost, reconnecting\n");
    PQreset(g->conn);
    g->ready = 0;
    if (PQstatus(g->conn) != CONNECTION_OK) {
        log_pg("reconnect", PQerrorMessage(g->conn), NULL);
        return -1;
    }
    if (session_setup(g, err, sizeof err)) {
        fprintf(stderr, "store: reconnect: %s\n", err);
        return -1;
    }
    g->ready = 1;
    return 0;
}

PGresult *pg_exec1(struct pg *g, int q, const struct params *p)
{
    char name[24];
    stmt_name(q, name, sizeof name);
    return PQexecPrepared(g->conn, name, p ? p->n : 0, p ? p->v : NULL, NULL, NULL, 0);
}

/* Runs prepared statement q; the result may be NULL (PQclear takes it).
 * A connection found broken outside a transaction is reset once and the
 * statement retried. (If the first try had in fact been executed before the
 * connection broke, the retry runs it again: event appends with a
 * client_msg_id and transfers are deduplicated; anything else is a single
 * idempotent statement or, at worst, a second chat line.) Inside a
 * transaction, whose work is lost with the connection, the failure stands. */
PGresult *pg_run(struct pg *g, int q, const struct params *p)
{
    if (p && p->bad) {
        fprintf(stderr, "store: statement %d: too many parameters\n", q);
        return NULL;
    }
    int reset = 0;
    if (!g->ready && !g->in_txn) {
        if (reconnect(g))
            return NULL;
        reset = 1;
    }
    PGresult *r = pg_exec1(g, q, p);
    if (PQstatus(g->conn) == CONNECTION_BAD)
        g->ready = 0;
    if (g->ready || g->in_txn || reset)
        return r;
    PQclear(r);
    return reconnect(g) == 0 ? pg_exec1(g, q, p) : NULL;
}

/* Runs q and maps its outcome; on STORE_OK *res is the result (PQclear it),
 * otherwise NULL. */
int pg_query(struct pg *g, int q, const struct params *p, int map,
                 const char *what, PGresult **res)
{
    PGresult *r = pg_run(g, q, p);
    int rc = result_rc(g, r, map, what);
    if (rc != STORE_OK) {
        PQclear(r);
        r = NULL;
    }
    *res = r;
    return rc;
}

/* As query, for one row: STORE_NOT_FOUND if there is none. */
int pg_query_row(struct pg *g, int q, const struct params *p, int map,
                     const char *what, PGresult **res)
{
    int rc = pg_query(g, q, p, map, what, res);
    if (rc == STORE_OK && PQntuples(*res) == 0) {
        PQclear(*res);
        *res = NULL;
        rc = STORE_NOT_FOUND;
    }
    return rc;
}

/* Runs q for its effect: STORE_NOT_FOUND if it changed no row. */
int pg_command(struct pg *g, int q, const struct params *p, int map, const char *what)
{
    PGresult *r;
    int rc = pg_query(g, q, p, map, what, &r);
    if (rc == STORE_OK && !strcmp(PQcmdTuples(r), "0"))
        rc = STORE_NOT_FOUND;
    PQclear(r);
    return rc;
}

/* ---- schema migrations ---- */

/* Applies PG_MIGRATIONS[i] and records version i + 1, in one transaction. */
static int apply_migration(PGconn *c, size_t i, char *err, size_t errlen)
{
    char ver[24], what[64];
    snprintf(ver, sizeof ver, "%zu", i + 1);
    snprintf(what, sizeof what, "migration %zu", i + 1);
    const char *const vals[] = {ver};
    if (exec_fixed(c, "BEGIN", err, errlen))
        return -1;
    PGresult *r = PQexec(c, PG_MIGRATIONS[i]);
    if (PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK) {
        PQclear(r);
        r = PQexecParams(c, "INSERT INTO schema_version(version, applied_ms)"
                         " VALUES ($1, (extract(epoch FROM clock_timestamp()) * 1000)::bigint)",
                         1, NULL, vals, NULL, NULL, 0);
    }
    int ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    if (!ok) {
        snprintf(err, errlen, "%s: %s", what, result_msg(r, c));
        err[strcspn(err, "\n")] = '\0';
    }
    PQclear(r);
    if (ok)
        return exec_fixed(c, "COMMIT", err, errlen);
    char ignored[64];
    exec_fixed(c, "ROLLBACK", ignored, sizeof ignored);
    return -1;
}

static int schema_version(PGconn *c, long *v, char *err, size_t errlen)
{
    PGresult *r = PQexec(c, "SELECT COALESCE(MAX(version), 0) FROM schema_version");
    int ok = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1;
    if (ok)
        *v = strtol(PQgetvalue(r, 0, 0), NULL, 10);
    else
        snprintf(err, errlen, "reading schema_version: %s", result_msg(r, c));
    PQclear(r);
    return ok ? 0 : -1;
}

static int migrate_locked(PGconn *c, char *err, size_t errlen)
{
    long v;
    if (exec_fixed(c, "CREATE TABLE IF NOT EXISTS schema_version ("
                      " version INTEGER PRIMARY KEY, applied_ms BIGINT NOT NULL)", err, errlen) ||
        schema_version(c, &v, err, errlen))
        return -1;
    if (v < 0 || (size_t)v > PG_MIGRATIONS_COUNT) {
        snprintf(err, errlen, "schema version %ld is newer than this chatd (%zu)",
                 v, (size_t)PG_MIGRATIONS_COUNT);
        return -1;
    }
    for (size_t i = (size_t)v; i < PG_MIGRATIONS_COUNT; i++)
        if (apply_migration(c, i, err, errlen))
            return -1;
    return 0;
}

/* Brings the schema up to date. The session-level advisory lock makes
 * instances starting together take turns (the lock goes with a session that
 * dies); the others then find the migrations recorded and skip them. */
static int migrate(PGconn *c, char *err, size_t errlen)
{
    if (exec_fixed(c, "SELECT pg_advisory_lock(" MIGRATION_LOCK ")", err, errlen))
        return -1;
    int rc = migrate_locked(c, err, errlen);
    char ignored[64];
    exec_fixed(c, "SELECT pg_advisory_unlock(" MIGRATION_LOCK ")", ignored, sizeof ignored);
    return rc;
}

/* ---- notifications ---- */

static void listen_close(struct pg *g)
{
    PQfinish(g->listen);
    g->listen = NULL;
}

static int listen_open(struct pg *g, char *err, size_t errlen)
{
    PGconn *c = pg_connect(g->location, "chatd-listen", err, errlen);
    if (!c)
        return -1;
    if (exec_fixed(c, "LISTEN " NOTIFY_CHANNEL, err, errlen) || PQsetnonblocking(c, 1)) {
        if (!err[0])
            snprintf(err, errlen, "LISTEN connection: cannot make it nonblocking");
        PQfinish(c);
        return -1;
    }
    g->listen = c;
    return 0;
}

/* The LISTEN connection's socket, reconnected first if it was lost (the
 * descriptor may then differ). Notifications sent while it was down are
 * lost: the next notify_drain returns 1 so the caller reads the log again. */
int pg_conn_notify_fd(struct pg *g)
{
    if (g->listen && PQstatus(g->listen) == CONNECTION_BAD)
        listen_close(g);
    if (!g->listen) {
        char err[512] = "";
        if (listen_open(g, err, sizeof err)) {
            fprintf(stderr, "store: notifications: %s\n", err);
            return -1;
        }
        g->missed = 1;
    }
    return PQsocket(g->listen);
}

int pg_conn_notify_drain(struct pg *g)
{
    if (!g->listen)
        return -1;
    if (!PQconsumeInput(g->listen) || PQstatus(g->listen) == CONNECTION_BAD) {
        log_pg("notifications", PQerrorMessage(g->listen), NULL);
        listen_close(g);
        return -1;
    }
    int got = g->missed;
    g->missed = 0;
    PGnotify *n;
    while ((n = PQnotifies(g->listen)) != NULL) {
        got = 1;
        PQfreemem(n);
    }
    return got;
}

/* ---- open and close ---- */

void pg_conn_close(struct pg *g)
{
    if (!g)
        return;
    PQfinish(g->conn);
    listen_close(g);
    free(g->location);
    free(g);
}

struct pg *pg_conn_open(const char *location, const char *const *sql, int nsql, char *err, size_t errlen)
{
    struct pg *g = calloc(1, sizeof *g);
    if (!g || !(g->location = strdup(location))) {
        snprintf(err, errlen, "out of memory");
        free(g);
        return NULL;
    }
    g->sql = sql;
    g->nsql = nsql;
    err[0] = '\0';
    g->conn = pg_connect(location, "chatd", err, errlen);
    if (!g->conn || migrate(g->conn, err, errlen) || session_setup(g, err, errlen) ||
        listen_open(g, err, errlen)) {
        pg_conn_close(g);
        return NULL;
    }
    g->ready = 1;
    return g;
}

