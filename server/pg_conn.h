/* pg_conn.h — private to the PostgreSQL store: the connection state
 * (struct pg) and what store_pg.c's queries are built on — statement
 * parameters as text, result columns, running a prepared statement with
 * one reconnect, SQLSTATE mapping, the LISTEN connection, the asynchronous
 * engine (pg_async_*), open (which applies the schema migrations) and close. Implemented in pg_conn.c. */
#ifndef CHAT_PG_CONN_H
#define CHAT_PG_CONN_H

#include <libpq-fe.h>
#include <stddef.h>
#include <stdint.h>

#include "store.h"

/* The channel notified after every commit that appended events (Q_NOTIFY)
 * and the LISTEN connection listens on. */
#define NOTIFY_CHANNEL "chatd_events"
/* The channel a session delete notifies with the token hash (Q_SESSION_DELETE). */
#define SESSIONS_CHANNEL "chatd_sessions"
/* The channel a presence lease change notifies with its owner (Q_PRESENCE_RENEW). */
#define PRESENCE_CHANNEL "chatd_presence"
/* The channel STORE_CALL_BROADCAST notifies with its payload (Q_BROADCAST). */
#define EPHEMERAL_CHANNEL "chatd_ephemeral"

struct pg_req;

struct pg {
    PGconn *conn;       /* main connection; statements prepared while ready */
    PGconn *listen;     /* LISTEN connection, nonblocking; NULL when lost */
    char *location;     /* the URL, for the listener's reconnects */
    const char *const *sql;   /* the statements prepared on every session, */
    int nsql;                 /* run by index with pg_run */
    int ready;          /* conn is up with this session's settings and statements */
    int in_txn;         /* between store_begin and commit/rollback */
    int notify_owed;    /* that transaction appended: Q_NOTIFY after its commit */
    int missed;         /* the listener was reconnected: notifications may be lost */
    int lstate;         /* the listener: L_DOWN, L_CONNECTING, L_LISTENING, L_READY */
    PostgresPollingStatusType lpoll;
    int64_t lretry_ms, lsince_ms;
    void (*session_end_cb)(void *arg, const char *token_hash);
    void *session_end_arg;
    void (*presence_cb)(void *arg, const char *owner);
    void *presence_arg;
    void (*broadcast_cb)(void *arg, const char *payload);
    void *broadcast_arg;
    /* the asynchronous connection (pg_async_*), its own session */
    PGconn *aconn;
    int astate;                 /* A_DOWN, A_CONNECTING, A_SETUP, A_READY */
    PostgresPollingStatusType apoll;   /* while connecting */
    int astep;                  /* setup: 0 settings, 1..nsql prepares */
    int asent;                  /* the head request (or setup step) is sent */
    int aflush;                 /* output is waiting for the socket */
    int atxn;                   /* a BEGIN ran on aconn, no commit/rollback yet */
    int64_t ntxn;               /* the last transaction handle given (from 1) */
    int64_t rtxn;               /* the transaction open on aconn (atxn) */
    int64_t ctxn;               /* that of the request being completed */
    int64_t notify_txn;         /* the last transaction that appended: its
                                 * commit is followed by Q_NOTIFY */
    int64_t doomed;             /* a transaction that lost a request: the rest
                                 * of it is refused, its end is a ROLLBACK */
    int afailed;                /* connecting failed since the last success */
    int aservice;               /* inside pg_async_service */
    PGresult *ares;             /* the result being collected */
    struct pg_req *head, *tail; /* FIFO; head is the one in flight */
    int nreq, max_req;
    int64_t max_age_ms, retry_ms, since_ms;
    char areason[160];
    int64_t trouble_ms;         /* the last request failed for want of the database */
    char trouble[160], trouble_tmp[96];
    void (*aclose_cb)(void *arg);      /* before aconn's socket is closed */
    void *aclose_arg;
};

/* Connects, brings the schema up to date, prepares sql[0..nsql) (kept, not
 * copied) and opens the LISTEN connection; NULL with err set on failure. */
struct pg *pg_conn_open(const char *location, const char *const *sql, int nsql, char *err, size_t errlen);
void pg_conn_close(struct pg *g);
/* store.h's notify_fd and notify_drain. The LISTEN connection, once lost,
 * is reconnected without blocking: notify_fd is -1 meanwhile, and
 * pg_conn_listen_service (also run by pg_async_service) moves it on. */
int pg_conn_notify_fd(struct pg *g);
void pg_conn_listen_service(struct pg *g);
int pg_conn_notify_drain(struct pg *g);

/* ---- statement parameters, as text ---- */
#define MAX_PARAMS 10

struct params {
    int n, bad;
    const char *v[MAX_PARAMS];
    char num[MAX_PARAMS][24];
};
void p_str(struct params *p, const char *s);     /* NULL is SQL NULL */
void p_i64(struct params *p, int64_t x);
void p_id(struct params *p, int64_t x);          /* 0 ("none") is NULL */

/* ---- result columns ---- */
int64_t col_i64(const PGresult *r, int row, int col);  /* NULL is 0 */
/* Copies a text column into dst; a value that does not fit is an error. */
int copy_col(const PGresult *r, int row, int col, char *dst, size_t len, const char *what);

/* ---- errors ---- */
enum { MAP_UNIQUE = 1, MAP_FK = 2 };
void log_pg(const char *what, const char *msg, const char *sqlstate);
const char *result_msg(const PGresult *r, const PGconn *c);
/* STORE_OK, or STORE_EXISTS / STORE_NOT_FOUND for 23505 / 23503 where map
 * asks for it, or STORE_ERROR (logged). */
int result_rc(struct pg *g, const PGresult *r, int map, const char *what);

/* ---- running statement q of the table given to pg_conn_open ---- */
/* Once, as it is (no reconnect). */
PGresult *pg_exec1(struct pg *g, int q, const struct params *p);
/* With one reconnect and retry outside a transaction; may return NULL. */
PGresult *pg_run(struct pg *g, int q, const struct params *p);
/* Runs q and maps its outcome; on STORE_OK *res is the result (PQclear it). */
int pg_query(struct pg *g, int q, const struct params *p, int map, const char *what, PGresult **res);
/* As pg_query, for one row: STORE_NOT_FOUND if there is none. */
int pg_query_row(struct pg *g, int q, const struct params *p, int map, const char *what, PGresult **res);
/* Runs q for its effect: STORE_NOT_FOUND if it changed no row. */
int pg_command(struct pg *g, int q, const struct params *p, int map, const char *what);

/* ---- the asynchronous engine (store.h's asynchronous calls) ----
 * Requests run one at a time, in order, on a connection of their own that
 * never blocks: connected with PQconnectStart/PQconnectPoll, statements sent
 * with PQsendQueryPrepared and read with PQconsumeInput/PQisBusy/
 * PQgetResult when the loop finds the socket ready (pg_async_fd/_want) and
 * calls pg_async_service. done is called exactly once with the mapped rc
 * and the result (NULL unless rc is STORE_OK; valid only during done) —
 * possibly before pg_async_send returns (a refusal). */
typedef void (*pg_done_fn)(struct pg *g, void *arg, int rc, const PGresult *r);
enum {
    PG_REQ_BEGIN = 1,   /* opens the caller's transaction */
    PG_REQ_END = 2,     /* commits or rolls it back */
    PG_REQ_FRONT = 4,   /* a follow-up of the completing request: runs next */
};
/* txn: the caller's transaction the request belongs to (0: none; a
 * PG_REQ_FRONT follow-up takes its completing request's). While a
 * transaction is open on the connection only its own requests are sent;
 * the others wait behind it, in order. */
void pg_async_send(struct pg *g, int64_t txn, int q, const struct params *p, int flags, int map,
                   const char *what, pg_done_fn done, void *arg);
/* A new transaction handle, for the BEGIN that opens it. */
int64_t pg_async_txn_new(struct pg *g);
void pg_async_bound(struct pg *g, int max_requests, int64_t max_age_ms);
int pg_async_fd(struct pg *g);
void pg_async_on_close(struct pg *g, void (*cb)(void *arg), void *arg);
int pg_async_want(struct pg *g);
int pg_async_pending(struct pg *g);
void pg_async_service(struct pg *g);
int pg_async_health(struct pg *g, int64_t slow_ms, char *reason, size_t len);

#endif
