/* pg_conn.c — the PostgreSQL connections behind store_pg.c (pg_conn.h):
 * opening them, the per-session settings and prepared statements, running
 * a statement with one reconnect, mapping SQLSTATEs to store codes, the
 * nonblocking LISTEN connection that tells the event loop when any instance
 * has committed events, the asynchronous connection behind store.h's
 * asynchronous calls (a FIFO of requests driven from the loop, never
 * blocking), and applying the embedded schema (db/pg, via pg_migrations.h).
 * Every piece of connection state is in struct pg.
 *
 * Not thread-safe: one struct pg is used from the server's event loop only. */
#include "pg_conn.h"

#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pg_migrations.h"

/* pg_advisory_lock key serializing schema migrations ("chatd" + 1). */
#define MIGRATION_LOCK "6514018165604353"
#define A_CONNECT_TIMEOUT_MS 10000  /* as the blocking connections' connect_timeout */
enum { L_DOWN, L_CONNECTING, L_LISTENING, L_READY };   /* the listener's states */
#define LISTEN_SQL "LISTEN " NOTIFY_CHANNEL "; LISTEN " SESSIONS_CHANNEL "; LISTEN " PRESENCE_CHANNEL \
                   "; LISTEN " EPHEMERAL_CHANNEL

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
 * transaction is cut off so it cannot hold back everyone's reads of the
 * events above its ids (db/pg/006_event_ids.sql) for long; and
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
    if (exec_fixed(c, LISTEN_SQL, err, errlen) || PQsetnonblocking(c, 1)) {
        if (!err[0])
            snprintf(err, errlen, "LISTEN connection: cannot make it nonblocking");
        PQfinish(c);
        return -1;
    }
    g->listen = c;
    g->lstate = L_READY;
    return 0;
}

/* ---- the LISTEN connection after a loss: reconnected without blocking,
 * driven by pg_conn_notify_fd's calls and by pg_async_service's ticks ---- */

#define L_RETRY_MS 1000

static int64_t mono_ms(void);

static void listen_lost(struct pg *g, const char *why)
{
    if (why && g->lstate != L_DOWN)
        log_pg("notifications", why, NULL);
    listen_close(g);
    g->lstate = L_DOWN;
    g->lretry_ms = mono_ms() + L_RETRY_MS;
}

static int listen_sock_ready(struct pg *g)
{
    struct pollfd p = { PQsocket(g->listen), g->lpoll == PGRES_POLLING_WRITING ? POLLOUT : POLLIN, 0 };
    return p.fd < 0 || poll(&p, 1, 0) > 0;
}

static void listen_step_connect(struct pg *g)
{
    if (!listen_sock_ready(g))
        return;
    g->lpoll = PQconnectPoll(g->listen);
    if (g->lpoll == PGRES_POLLING_FAILED) {
        listen_lost(g, PQerrorMessage(g->listen));
    } else if (g->lpoll == PGRES_POLLING_OK) {
        if (!PQsendQuery(g->listen, LISTEN_SQL) || PQflush(g->listen) < 0)
            listen_lost(g, PQerrorMessage(g->listen));
        else
            g->lstate = L_LISTENING;
    }
}

static void listen_step_listening(struct pg *g)
{
    if (!PQconsumeInput(g->listen)) {
        listen_lost(g, PQerrorMessage(g->listen));
        return;
    }
    while (!PQisBusy(g->listen)) {
        PGresult *r = PQgetResult(g->listen);
        if (!r) {
            g->lstate = L_READY;
            g->missed = 1;      /* what was sent while it was down is lost */
            return;
        }
        int ok = PQresultStatus(r) == PGRES_COMMAND_OK;
        PQclear(r);
        if (!ok) {
            listen_lost(g, PQerrorMessage(g->listen));
            return;
        }
    }
}

/* One step of reconnecting, never waiting. */
void pg_conn_listen_service(struct pg *g)
{
    if (g->lstate == L_READY && g->listen && PQstatus(g->listen) == CONNECTION_BAD)
        listen_lost(g, PQerrorMessage(g->listen));
    if (g->lstate == L_DOWN && mono_ms() >= g->lretry_ms) {
        const char *const keys[] = {"application_name", "dbname", NULL};
        const char *const vals[] = {"chatd-listen", g->location, NULL};
        g->listen = PQconnectStartParams(keys, vals, 1);
        g->lsince_ms = mono_ms();
        if (!g->listen || PQstatus(g->listen) == CONNECTION_BAD || PQsetnonblocking(g->listen, 1)) {
            g->lstate = L_CONNECTING;   /* so that the loss is logged */
            listen_lost(g, g->listen ? PQerrorMessage(g->listen) : "out of memory");
            return;
        }
        g->lstate = L_CONNECTING;
        g->lpoll = PGRES_POLLING_WRITING;
    }
    if (g->lstate == L_CONNECTING)
        listen_step_connect(g);
    if (g->lstate == L_LISTENING)
        listen_step_listening(g);
    if ((g->lstate == L_CONNECTING || g->lstate == L_LISTENING) &&
        mono_ms() - g->lsince_ms > A_CONNECT_TIMEOUT_MS)
        listen_lost(g, "connecting timed out");
}

/* The LISTEN connection's socket, or -1 while it is being reconnected
 * (then call again later; the descriptor may differ). Notifications sent
 * while it was down are lost: the next notify_drain returns 1 so the
 * caller reads the log again. */
int pg_conn_notify_fd(struct pg *g)
{
    pg_conn_listen_service(g);
    return g->lstate == L_READY ? PQsocket(g->listen) : -1;
}

/* A notification: an event committed, a session ended (its token hash),
 * another instance's online users changed (the lease owner), or an
 * ephemeral item to relay (a STORE_CALL_BROADCAST's payload). */
static int listen_notified(struct pg *g, const PGnotify *n)
{
    if (!strcmp(n->relname, EPHEMERAL_CHANNEL)) {
        if (g->broadcast_cb && n->extra)
            g->broadcast_cb(g->broadcast_arg, n->extra);
        return 0;
    }
    if (!strcmp(n->relname, PRESENCE_CHANNEL)) {
        if (g->presence_cb && n->extra)
            g->presence_cb(g->presence_arg, n->extra);
        return 0;
    }
    if (strcmp(n->relname, SESSIONS_CHANNEL) != 0)
        return 1;
    if (g->session_end_cb && n->extra && strlen(n->extra) == 64)
        g->session_end_cb(g->session_end_arg, n->extra);
    return 0;
}

int pg_conn_notify_drain(struct pg *g)
{
    if (g->lstate != L_READY)
        return -1;
    if (!PQconsumeInput(g->listen) || PQstatus(g->listen) == CONNECTION_BAD) {
        listen_lost(g, PQerrorMessage(g->listen));
        return -1;
    }
    int got = g->missed;
    g->missed = 0;
    PGnotify *n;
    while ((n = PQnotifies(g->listen)) != NULL) {
        got |= listen_notified(g, n);
        PQfreemem(n);
    }
    return got;
}

/* ---- the asynchronous connection ----
 * One request in flight at a time, the rest queued in order: a request's
 * follow-up (PG_REQ_FRONT) then runs before anything queued after it, so
 * completions stay in call order. Nothing here blocks: the socket is the
 * loop's to watch, and every libpq call used is one that returns at once on a
 * nonblocking connection. (PQfinish sends a Terminate message without
 * waiting for an answer.) */

enum { A_DOWN, A_CONNECTING, A_SETUP, A_READY };

#define A_RETRY_MS        1000   /* after a failed connection attempt */

struct pg_req {
    struct pg_req *next;
    int q, flags, map, n;
    int64_t txn;                /* the caller's transaction it belongs to, or 0 */
    const char *what;
    char *v[MAX_PARAMS];
    pg_done_fn done;
    void *arg;
    int64_t enq_ms;
};

static int64_t mono_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static void req_free(struct pg_req *r)
{
    for (int i = 0; i < r->n; i++)
        free(r->v[i]);
    free(r);
}

static struct pg_req *pop_head(struct pg *g)
{
    struct pg_req *r = g->head;
    g->head = r->next;
    if (!g->head)
        g->tail = NULL;
    g->nreq--;
    g->asent = 0;
    return r;
}

/* Calls r's continuation and frees it. A request of the caller's transaction
 * that did not run dooms that transaction: the rest of it is refused up to
 * its end (a ROLLBACK), so nothing runs outside it by mistake and its commit is
 * never acknowledged. */
static void finish(struct pg *g, struct pg_req *r, int rc, const PGresult *res)
{
    if (r->txn && !(r->flags & PG_REQ_END) &&
        (rc == STORE_UNAVAILABLE || (rc != STORE_OK && (r->flags & PG_REQ_BEGIN))))
        g->doomed = r->txn;
    g->ctxn = r->txn;
    r->done(g, r->arg, rc, rc == STORE_OK ? res : NULL);
    req_free(r);
}

static void noop_done(struct pg *g, void *arg, int rc, const PGresult *r)
{
    (void)g, (void)arg, (void)rc, (void)r;
}

/* A commit or rollback answered without running (refused, expired, or its
 * transaction broken) is answered STORE_UNAVAILABLE and becomes a ROLLBACK of
 * our own in its place, so the server's transaction, if one is open when its
 * turn comes, is not left open for the next BEGIN to join. */
static void end_unrun(struct pg *g, struct pg_req *r)
{
    r->done(g, r->arg, STORE_UNAVAILABLE, NULL);
    r->q = -1;
    r->done = noop_done;
    r->arg = NULL;
    r->enq_ms = mono_ms();
}

/* Closes aconn, telling the loop first (store_io_on_close). */
static void a_finish_conn(struct pg *g)
{
    if (g->aconn && g->aclose_cb)
        g->aclose_cb(g->aclose_arg);
    PQfinish(g->aconn);
    g->aconn = NULL;
}

/* Requests failed for want of the database (lost, expired, a lock
 * timeout): /healthz says degraded for A_TROUBLE_MS after the last one, so
 * it does not flap between two failures. */
#define A_TROUBLE_MS 5000
static void a_trouble(struct pg *g, const char *why)
{
    g->trouble_ms = mono_ms();
    snprintf(g->trouble, sizeof g->trouble, "%s", why);
    g->trouble[strcspn(g->trouble, "\n")] = '\0';
}

static void a_lost(struct pg *g, const char *why)
{
    if (why && !g->afailed) {     /* once per outage, not at every retry */
        char where[160];
        snprintf(where, sizeof where, "%s", why);
        where[strcspn(where, "\n")] = '\0';
        snprintf(g->areason, sizeof g->areason, "%s", where);
        log_pg("async connection", where, NULL);
    }
    if (why)
        a_trouble(g, why);
    PQclear(g->ares);
    g->ares = NULL;
    a_finish_conn(g);
    int was_ready = g->astate == A_READY;
    g->astate = A_DOWN;
    g->aflush = 0;
    if (!was_ready)
        g->afailed = 1;
    g->retry_ms = mono_ms() + (was_ready ? 0 : A_RETRY_MS);
    if (g->atxn)
        g->doomed = g->rtxn;
    g->atxn = 0;
    if (g->asent && g->head && was_ready)      /* its outcome is unknown */
        finish(g, pop_head(g), STORE_UNAVAILABLE, NULL);
    g->asent = 0;
}

static void a_connect(struct pg *g)
{
    const char *const keys[] = {"application_name", "dbname", NULL};
    const char *const vals[] = {"chatd-async", g->location, NULL};
    g->aconn = PQconnectStartParams(keys, vals, 1);
    g->since_ms = mono_ms();
    if (!g->aconn || PQstatus(g->aconn) == CONNECTION_BAD || PQsetnonblocking(g->aconn, 1)) {
        a_lost(g, g->aconn ? PQerrorMessage(g->aconn) : "out of memory");
        return;
    }
    PQsetNoticeReceiver(g->aconn, on_notice, NULL);
    g->astate = A_CONNECTING;
    g->apoll = PGRES_POLLING_WRITING;
}

/* While the caller's transaction is open on the connection, its own next
 * request (wherever it is queued) moves to the head; the others wait. 1 if
 * the head may be sent. */
static int head_sendable(struct pg *g)
{
    if (!g->head)
        return 0;
    if (!g->atxn || g->head->txn == g->rtxn)
        return 1;
    for (struct pg_req *prev = g->head, *r = prev->next; r; prev = r, r = r->next) {
        if (r->txn != g->rtxn)
            continue;
        prev->next = r->next;
        if (g->tail == r)
            g->tail = prev;
        r->next = g->head;
        g->head = r;
        return 1;
    }
    return 0;
}

/* Sends the next setup step or the head request. */
static void a_send(struct pg *g)
{
    if (g->asent || !g->aconn)
        return;
    int ok = 1;
    if (g->astate == A_SETUP) {
        if (g->astep == 0) {
            ok = PQsendQuery(g->aconn, "SET lock_timeout = '5s';"
                             " SET idle_in_transaction_session_timeout = '60s';"
                             " SELECT set_config('synchronous_commit', 'on', false)"
                             " WHERE current_setting('synchronous_commit') = 'off'");
        } else {
            char name[24];
            stmt_name(g->astep - 1, name, sizeof name);
            ok = PQsendPrepare(g->aconn, name, g->sql[g->astep - 1], 0, NULL);
        }
    } else if (g->astate == A_READY) {
        while (head_sendable(g) && !g->asent) {
            struct pg_req *r = g->head;
            if (r->q < 0 && !g->atxn) {         /* our ROLLBACK, with nothing to end */
                finish(g, pop_head(g), STORE_OK, NULL);
                continue;
            }
            if (r->q >= 0 && r->txn && r->txn == g->doomed) {
                if (r->flags & PG_REQ_END)
                    end_unrun(g, r);
                else
                    finish(g, pop_head(g), STORE_UNAVAILABLE, NULL);
                continue;
            }
            if (r->q < 0) {
                ok = PQsendQuery(g->aconn, "ROLLBACK");
            } else {
                char name[24];
                stmt_name(r->q, name, sizeof name);
                ok = PQsendQueryPrepared(g->aconn, name, r->n, (const char *const *)r->v, NULL, NULL, 0);
            }
            if (!ok)
                break;
            g->asent = 1;
        }
        if (ok && !g->asent)
            return;
    } else {
        return;
    }
    if (!ok) {              /* the head stays queued for the next connection */
        a_lost(g, PQerrorMessage(g->aconn));
        return;
    }
    g->asent = 1;
    int f = PQflush(g->aconn);
    if (f < 0)
        a_lost(g, PQerrorMessage(g->aconn));
    else
        g->aflush = f;
}

/* SQLSTATEs that mean "not now" rather than "never": a lock or statement
 * timeout, a deadlock or serialization failure (the transaction is rolled
 * back and may be retried), the server short of resources or shutting down. */
static int transient_state(const char *state)
{
    static const char *const transient[] = { "55P03", "57014", "40001", "40P01", "57P01", "57P02", "57P03" };
    if (!state)
        return 0;
    if (!strncmp(state, "53", 2))
        return 1;
    for (size_t i = 0; i < sizeof transient / sizeof transient[0]; i++)
        if (!strcmp(state, transient[i]))
            return 1;
    return 0;
}

/* A command's results are all in: the next setup step, or the head done. */
static void a_command_done(struct pg *g)
{
    PGresult *res = g->ares;
    g->ares = NULL;
    if (g->astate == A_SETUP) {
        ExecStatusType s = PQresultStatus(res);
        if (s != PGRES_COMMAND_OK && s != PGRES_TUPLES_OK) {
            char msg[160];
            snprintf(msg, sizeof msg, "setup: %s", result_msg(res, g->aconn));
            PQclear(res);
            a_lost(g, msg);
            return;
        }
        PQclear(res);
        g->asent = 0;
        if (++g->astep > g->nsql) {
            g->astate = A_READY;
            g->afailed = 0;
            g->areason[0] = '\0';
        }
        return;
    }
    struct pg_req *r = pop_head(g);
    int rc = result_rc(g, res, r->map, r->what);
    if (rc == STORE_ERROR && transient_state(PQresultErrorField(res, PG_DIAG_SQLSTATE))) {
        rc = STORE_UNAVAILABLE;         /* too slow now, not wrong: retryable */
        a_trouble(g, "a database request timed out waiting for a lock");
    }
    if (rc == STORE_OK && (r->flags & PG_REQ_BEGIN)) {
        g->atxn = 1;
        g->rtxn = r->txn;
    }
    if (r->flags & PG_REQ_END)
        g->atxn = 0;
    finish(g, r, rc, res);
    PQclear(res);
}

static void a_read(struct pg *g)
{
    if (!PQconsumeInput(g->aconn) || PQstatus(g->aconn) == CONNECTION_BAD) {
        a_lost(g, PQerrorMessage(g->aconn));
        return;
    }
    while (g->aconn && g->asent && !PQisBusy(g->aconn)) {
        PGresult *r = PQgetResult(g->aconn);
        if (!r) {
            a_command_done(g);
            continue;
        }
        /* keep the first failure, else the last result */
        ExecStatusType kept = g->ares ? PQresultStatus(g->ares) : PGRES_COMMAND_OK;
        if (!g->ares || kept == PGRES_COMMAND_OK || kept == PGRES_TUPLES_OK) {
            PQclear(g->ares);
            g->ares = r;
        } else {
            PQclear(r);
        }
    }
}

/* Requests waiting longer than the bound are answered STORE_UNAVAILABLE, in
 * order; one in flight that long means a stuck database: its connection is
 * dropped (the server rolls its transaction back) and it is answered too. */
static void a_expire(struct pg *g, int64_t now)
{
    while (g->head && now - g->head->enq_ms > g->max_age_ms) {
        if (g->asent) {
            char why[96];
            snprintf(why, sizeof why, "no answer in %lld ms", (long long)g->max_age_ms);
            a_lost(g, why);
            continue;
        }
        snprintf(g->trouble_tmp, sizeof g->trouble_tmp, "a database request waited over %lld ms",
                 (long long)g->max_age_ms);
        a_trouble(g, g->trouble_tmp);
        if ((g->head->flags & PG_REQ_END) && g->head->q >= 0)
            end_unrun(g, g->head);
        else
            finish(g, pop_head(g), STORE_UNAVAILABLE, NULL);
    }
}

/* Connecting: whether the socket is ready for what PQconnectPoll waits for
 * (a zero-timeout poll: service may come from the loop's tick, and
 * PQconnectPoll must not be called before, e.g. while the TCP connect is
 * still in progress). */
static int a_ready(struct pg *g)
{
    struct pollfd p = { PQsocket(g->aconn), g->apoll == PGRES_POLLING_WRITING ? POLLOUT : POLLIN, 0 };
    return p.fd < 0 || poll(&p, 1, 0) > 0;
}

void pg_async_service(struct pg *g)
{
    if (g->aservice)
        return;
    g->aservice = 1;
    int64_t now = mono_ms();
    for (int round = 0; round < 4; round++) {
        int before = g->astate;
        if (g->astate == A_DOWN && now >= g->retry_ms)
            a_connect(g);
        if (g->astate == A_CONNECTING && a_ready(g)) {
            g->apoll = PQconnectPoll(g->aconn);
            if (g->apoll == PGRES_POLLING_OK) {
                g->astate = A_SETUP;
                g->astep = 0;
                g->asent = 0;
            } else if (g->apoll == PGRES_POLLING_FAILED) {
                a_lost(g, PQerrorMessage(g->aconn));
            }
        }
        if (g->astate == A_CONNECTING && now - g->since_ms > A_CONNECT_TIMEOUT_MS)
            a_lost(g, "connecting timed out");
        if (g->astate >= A_SETUP && g->aflush) {
            int f = PQflush(g->aconn);
            if (f < 0)
                a_lost(g, PQerrorMessage(g->aconn));
            else
                g->aflush = f;
        }
        if (g->astate >= A_SETUP)
            a_read(g);
        if (g->astate >= A_SETUP)
            a_send(g);
        if (g->astate == before)
            break;
    }
    a_expire(g, now);
    if (g->astate == A_READY)
        a_send(g);
    if (g->lstate != L_READY)
        pg_conn_listen_service(g);
    g->aservice = 0;
}

/* Appends r to the queue. */
static void queue_tail(struct pg *g, struct pg_req *r)
{
    if (g->tail)
        g->tail->next = r;
    else
        g->head = r;
    g->tail = r;
    g->nreq++;
}

int64_t pg_async_txn_new(struct pg *g)
{
    return ++g->ntxn;
}

void pg_async_send(struct pg *g, int64_t txn, int q, const struct params *p, int flags, int map,
                   const char *what, pg_done_fn done, void *arg)
{
    struct pg_req *r = calloc(1, sizeof *r);
    int bad = !r || (p && p->bad);
    for (int i = 0; r && p && !bad && i < p->n; i++) {
        r->v[i] = p->v[i] ? strdup(p->v[i]) : NULL;
        r->n = i + 1;
        bad = p->v[i] && !r->v[i];
    }
    if (flags & PG_REQ_FRONT)
        txn = g->ctxn;
    if (bad || g->nreq >= g->max_req) {
        if (bad)
            fprintf(stderr, "store: %s: cannot queue the statement\n", what);
        if (r)
            req_free(r);
        if (txn)
            g->doomed = txn;
        done(g, arg, bad ? STORE_ERROR : STORE_UNAVAILABLE, NULL);
        if (!(flags & PG_REQ_END) || !txn || !(r = calloc(1, sizeof *r)))
            return;
        /* the end of a transaction whose BEGIN may run: our ROLLBACK, past
         * the bound (one per transaction) */
        r->q = -1;
        r->flags = PG_REQ_END;
        r->txn = txn;
        r->done = noop_done;
        r->what = "rollback";
        r->enq_ms = mono_ms();
        queue_tail(g, r);
        return;
    }
    r->q = q;
    r->flags = flags;
    r->map = map;
    r->what = what;
    r->done = done;
    r->arg = arg;
    r->txn = txn;
    r->enq_ms = mono_ms();
    if (flags & PG_REQ_FRONT) {
        /* runs next: the completing request has just left the head */
        r->next = g->head;
        g->head = r;
        if (!g->tail)
            g->tail = r;
        g->nreq++;
    } else {
        queue_tail(g, r);
    }
    if (!g->aservice)
        pg_async_service(g);
}

void pg_async_bound(struct pg *g, int max_requests, int64_t max_age_ms)
{
    g->max_req = max_requests > 0 ? max_requests : STORE_ASYNC_MAX_REQUESTS;
    g->max_age_ms = max_age_ms > 0 ? max_age_ms : STORE_ASYNC_MAX_AGE_MS;
}

int pg_async_fd(struct pg *g)
{
    return g->aconn ? PQsocket(g->aconn) : -1;
}

void pg_async_on_close(struct pg *g, void (*cb)(void *arg), void *arg)
{
    g->aclose_cb = cb;
    g->aclose_arg = arg;
}

int pg_async_want(struct pg *g)
{
    if (!g->aconn)
        return 0;
    if (g->astate == A_CONNECTING)
        return g->apoll == PGRES_POLLING_WRITING ? STORE_IO_WRITE : STORE_IO_READ;
    return STORE_IO_READ | (g->aflush ? STORE_IO_WRITE : 0);
}

int pg_async_pending(struct pg *g)
{
    return g->nreq > 0 || g->astate != A_READY || g->lstate != L_READY;
}

int pg_async_health(struct pg *g, int64_t slow_ms, char *reason, size_t len)
{
    int64_t age = g->head ? mono_ms() - g->head->enq_ms : 0;
    int recent = g->trouble_ms && mono_ms() - g->trouble_ms < A_TROUBLE_MS;
    if (g->astate != A_READY && (g->afailed || g->nreq || recent)) {
        snprintf(reason, len, "no database connection%s%s", g->areason[0] ? ": " : "", g->areason);
        return 1;
    }
    if (g->head && age > slow_ms) {
        snprintf(reason, len, "oldest database request waiting %lld ms", (long long)age);
        return 1;
    }
    if (recent) {
        snprintf(reason, len, "%s (%lld ms ago)", g->trouble, (long long)(mono_ms() - g->trouble_ms));
        return 1;
    }
    return 0;
}

static void a_close(struct pg *g)
{
    g->aservice = 1;            /* no sends from the continuations */
    PQclear(g->ares);
    g->ares = NULL;
    a_finish_conn(g);
    g->astate = A_DOWN;
    while (g->head)
        finish(g, pop_head(g), STORE_UNAVAILABLE, NULL);
}

/* ---- open and close ---- */

void pg_conn_close(struct pg *g)
{
    if (!g)
        return;
    a_close(g);
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
    pg_async_bound(g, 0, 0);
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

