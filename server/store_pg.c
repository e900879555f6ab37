/* store_pg.c — the PostgreSQL backend of store.h (libpq), for one or several
 * chatd instances sharing a database: the statements, the functions of
 * store_ops that run them synchronously on the main connection (startup,
 * tools), and their asynchronous forms, which the server uses, on the
 * nonblocking connection of pg_conn.c's engine. The connections,
 * reconnects, SQLSTATE mapping and the schema migrations are pg_conn.c's
 * (pg_conn.h).
 *
 * A write outside a transaction is a single statement in autocommit, so
 * it is committed before it completes. An error aborts a whole
 * PostgreSQL transaction, and the bank goes on after an overdraft or a
 * duplicate key inside one; so those outcomes are found without raising an
 * error (a conditional UPDATE, ON CONFLICT DO NOTHING) and then looked up.
 *
 * Event ids come from the sequence event_ids, each appending statement
 * first announcing itself with a transaction-scoped advisory lock
 * (chat_event_ids), and every read of the log stops at the watermark
 * below which no transaction is still open (chat_event_watermark): ids
 * thus become visible in id order across connections and instances without
 * a lock held to commit, and a reader's cursor never passes an event that
 * shows up later (db/pg/006_event_ids.sql has the argument). The
 * notification of an append is a statement of its own right after the
 * commit (Q_NOTIFY): in the appending transaction it would serialize every
 * instance's commits on PostgreSQL's notification lock.
 *
 * Not thread-safe: one struct pg is used from the server's event loop only.
 * Callbacks given to events_after must not call back into the store. */
#include "pg_conn.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum q_id {
    Q_BEGIN,
    Q_COMMIT,
    Q_ROLLBACK,
    Q_USER_CREATE,
    Q_USER_GET,
    Q_SESSION_CREATE,
    Q_SESSION_LOOKUP,
    Q_SESSION_TOUCH,
    Q_SESSION_DELETE,
    Q_EVENT_APPEND,
    Q_EVENT_EXISTING,
    Q_EVENTS_AFTER,
    Q_EVENTS_ALL_AFTER,
    Q_LAST_EVENT_ID,
    Q_ACCOUNT_BALANCE,
    Q_ACCOUNT_MOVE,
    Q_TRANSFER_INSERT,
    Q_TRANSFER_BY_KEY,
    Q_TRANSFER_GET,
    Q_TRANSFER_SET_STATUS,
    Q_TRANSFERS_UNFINISHED,
    Q_TRANSFER_LOCK,
    Q_TRANSFER_EXISTS,
    Q_TRANSFERS_STALE,
    Q_EVENTS_APPEND_MANY,
    Q_ROOM_OP,
    Q_ROOM_MESSAGES,
    Q_ROOMS_LIST,
    Q_MEMBERS_ALL,
    Q_PRESENCE_RENEW,
    Q_NOTIFY,
    Q_BROADCAST,
    Q_COUNT
};

static const char *const SQL[Q_COUNT] = {
    [Q_BEGIN] = "BEGIN",
    [Q_COMMIT] = "COMMIT",
    [Q_ROLLBACK] = "ROLLBACK",
    /* User, account and opening balance in one statement: atomic without a
     * transaction; a taken name returns no row instead of an error. */
    [Q_USER_CREATE] =
        "WITH u AS (INSERT INTO users(name, pwhash, created_ms) VALUES ($1, $2, $3)"
        "           ON CONFLICT (name) DO NOTHING RETURNING id),"
        " a AS (INSERT INTO accounts(user_id, balance_cents)"
        "       SELECT id, $4::bigint FROM u RETURNING user_id, balance_cents),"
        " l AS (INSERT INTO ledger(transfer_id, account_id, delta_cents, balance_after, ts_ms, memo)"
        "       SELECT NULL, user_id, balance_cents, balance_cents, $3::bigint, 'opening balance'"
        "       FROM a),"
        " g AS (INSERT INTO room_members(room_id, user_id) SELECT 1, id FROM u)"
        " SELECT id FROM u",
    [Q_USER_GET] =
        "SELECT id, pwhash FROM users WHERE name = $1",
    [Q_SESSION_CREATE] =
        "INSERT INTO sessions(token_hash, user_id, created_ms, expires_ms, last_used_ms)"
        " VALUES ($1, $2, $3, $4, $3)",
    [Q_SESSION_LOOKUP] =
        "SELECT s.user_id, u.name, s.last_used_ms, s.expires_ms"
        " FROM sessions s JOIN users u ON u.id = s.user_id"
        " WHERE s.token_hash = $1 AND s.expires_ms > $2",
    [Q_SESSION_TOUCH] =
        "UPDATE sessions SET last_used_ms = $2 WHERE token_hash = $1",
    /* Every instance hears of it on commit (store_set_session_end_cb). */
    [Q_SESSION_DELETE] =
        "WITH d AS (DELETE FROM sessions WHERE token_hash = $1 RETURNING token_hash)"
        " SELECT pg_notify('" SESSIONS_CHANNEL "', token_hash) FROM d",
    /* An announced id (db/pg/006_event_ids.sql) and the row; the
     * notification follows the commit (Q_NOTIFY). A retried (sender_id,
     * client_msg_id) inserts nothing, returns no row, and leaves a gap in
     * the ids. */
    [Q_EVENT_APPEND] =
        "INSERT INTO events(id, ts_ms, type, recipient_id, sender_id, client_msg_id, payload, room_id)"
        " VALUES ((chat_event_ids(1))[1], $1, $2, $3, $4, $5, $6, $7)"
        " ON CONFLICT (sender_id, client_msg_id) WHERE client_msg_id IS NOT NULL DO NOTHING"
        " RETURNING id, ts_ms",
    [Q_EVENT_EXISTING] =
        "SELECT id, ts_ms FROM events WHERE sender_id = $1 AND client_msg_id = $2",
    /* The reads of the log stop at the watermark (db/pg/006_event_ids.sql):
     * plpgsql functions, so that the rows are read by a statement that
     * starts after the watermark is taken. */
    [Q_EVENTS_AFTER] =
        "SELECT * FROM chat_events_after($1, $2, $3)",
    [Q_EVENTS_ALL_AFTER] =
        "SELECT * FROM chat_events_all_after($1, $2)",
    [Q_LAST_EVENT_ID] =
        "SELECT chat_last_event_id()",
    [Q_ACCOUNT_BALANCE] =
        "SELECT balance_cents FROM accounts WHERE user_id = $1",
    /* The overdraft test is in the WHERE: no row instead of a CHECK error,
     * which would abort the caller's transaction. Balance and ledger row in
     * one statement, so the pair is atomic even in autocommit. */
    [Q_ACCOUNT_MOVE] =
        "WITH a AS (UPDATE accounts SET balance_cents = balance_cents + $2"
        "           WHERE user_id = $1 AND balance_cents + $2 >= 0"
        "           RETURNING user_id, balance_cents)"
        " INSERT INTO ledger(transfer_id, account_id, delta_cents, balance_after, ts_ms, memo)"
        " SELECT $3::bigint, user_id, $2::bigint, balance_cents, $4::bigint, $5::text FROM a"
        " RETURNING balance_after",
    [Q_TRANSFER_INSERT] =
        "INSERT INTO transfers(from_id, to_id, amount_cents, idempotency_key, status,"
        " created_ms, updated_ms) VALUES ($1, $2, $3, $4, 'pending', $5, $5)"
        " ON CONFLICT (from_id, idempotency_key) DO NOTHING RETURNING id",
    [Q_TRANSFER_BY_KEY] =
        "SELECT id FROM transfers WHERE from_id = $1 AND idempotency_key = $2",
    [Q_TRANSFER_GET] =
        "SELECT t.id, t.from_id, t.to_id, t.amount_cents, f.name, r.name, t.status,"
        " COALESCE(t.reason, ''), t.created_ms, t.updated_ms"
        " FROM transfers t JOIN users f ON f.id = t.from_id JOIN users r ON r.id = t.to_id"
        " WHERE t.id = $1",
    [Q_TRANSFER_SET_STATUS] =
        "UPDATE transfers SET status = $2, reason = $3, updated_ms = $4 WHERE id = $1",
    [Q_TRANSFERS_UNFINISHED] =
        "SELECT id FROM transfers WHERE status IN ('pending', 'processing') ORDER BY id",
    /* SKIP LOCKED: no row, at once, if another transaction holds it. */
    [Q_TRANSFER_LOCK] =
        "SELECT id FROM transfers WHERE id = $1 FOR UPDATE SKIP LOCKED",
    [Q_TRANSFER_EXISTS] =
        "SELECT id FROM transfers WHERE id = $1",
    [Q_TRANSFERS_STALE] =
        "SELECT id FROM transfers WHERE status IN ('pending', 'processing')"
        " AND updated_ms < $1 ORDER BY id",
    /* A batch of appends in one statement, one announcement for its ids
     * (chat_event_ids, ascending in input order). $1 is a JSON array of
     * {ts, type, rcpt, sender, cmid, payload}. For each input, in order: the
     * inserted id and ts, or (a retried client_msg_id, stored by an earlier
     * statement) the existing row's; neither for a duplicate within the
     * batch (the caller takes its first copy's). The earlier row is looked
     * up only for an input that inserted nothing (LATERAL, gated on ins.id
     * IS NULL; LIMIT keeps the planner from flattening it into a join): a
     * join with events would let the planner scan the table per batch (a
     * generic plan made while it was small did: 10 ms a batch at 35,000
     * rows). */
    [Q_EVENTS_APPEND_MANY] =
        "WITH x AS (SELECT e.ord, (e.j->>'ts')::bigint AS ts_ms, e.j->>'type' AS type,"
        "                  NULLIF((e.j->>'rcpt')::bigint, 0) AS recipient_id,"
        "                  NULLIF((e.j->>'sender')::bigint, 0) AS sender_id,"
        "                  e.j->>'cmid' AS client_msg_id, e.j->>'payload' AS payload,"
        "                  NULLIF((e.j->>'room')::bigint, 0) AS room_id"
        "           FROM jsonb_array_elements($1::jsonb) WITH ORDINALITY AS e(j, ord)),"
        " c AS (SELECT chat_event_ids((SELECT count(*) FROM x)::int) AS ids),"
        " ins AS (INSERT INTO events(id, ts_ms, type, recipient_id, sender_id, client_msg_id, payload,"
        "                             room_id)"
        "         SELECT (SELECT ids[x.ord] FROM c), x.ts_ms, x.type, x.recipient_id, x.sender_id,"
        "                x.client_msg_id, x.payload, x.room_id FROM x ORDER BY x.ord"
        "         ON CONFLICT (sender_id, client_msg_id) WHERE client_msg_id IS NOT NULL DO NOTHING"
        "         RETURNING id, ts_ms)"
        " SELECT x.ord, ins.id, ins.ts_ms, old.id, old.ts_ms"
        " FROM x LEFT JOIN ins ON ins.id = (SELECT ids[x.ord] FROM c)"
        "        LEFT JOIN LATERAL (SELECT o.id, o.ts_ms FROM events o WHERE ins.id IS NULL"
        "                           AND o.sender_id = x.sender_id"
        "                           AND o.client_msg_id = x.client_msg_id LIMIT 1) old ON true"
        " ORDER BY x.ord",
    /* The rooms (db/pg/003_rooms.sql): rows (err, room, num, ev_id, ev_ts,
     * ev_type, ev_payload, ev_sender). */
    [Q_ROOM_OP] =
        "SELECT * FROM chat_room_op($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    [Q_ROOM_MESSAGES] =
        "SELECT * FROM chat_room_messages($1, $2, $3, $4)",
    /* unread: an ordered scan of at most $3 entries of events_room_chat
     * (db/pg/005_unread_index.sql) */
    [Q_ROOMS_LIST] =
        "SELECT r.id, r.name, r.topic, r.dm::int,"
        " (SELECT count(*) FROM room_members x WHERE x.room_id = r.id AND x.left_id IS NULL),"
        " (m.user_id IS NOT NULL AND m.left_id IS NULL)::int,"
        " CASE WHEN m.user_id IS NOT NULL AND m.left_id IS NULL THEN"
        "  (SELECT count(*) FROM (SELECT 1 FROM events e WHERE e.room_id = r.id AND e.id > m.read_id"
        "   AND e.type = 'chat' AND e.sender_id IS DISTINCT FROM $1 ORDER BY e.id LIMIT $3) u) ELSE 0 END,"
        " COALESCE((SELECT max(e.id) FROM events e WHERE e.room_id = r.id), 0)"
        " FROM rooms r LEFT JOIN room_members m ON m.room_id = r.id AND m.user_id = $1"
        " WHERE NOT r.dm OR m.user_id IS NOT NULL ORDER BY r.dm, r.name LIMIT $2",
    [Q_MEMBERS_ALL] =
        "SELECT r.id, r.name, r.dm::int, COALESCE(m.user_id, 0), COALESCE(m.joined_id, 0),"
        " COALESCE(m.left_id, 0) FROM rooms r LEFT JOIN room_members m ON m.room_id = r.id"
        " WHERE r.id <> 1",
    /* An instance's presence leases (db/pg/004_presence.sql): $1 the owner,
     * $2 its online users (a bigint[] literal), $3 the lease in ms, $4
     * whether to notify the others. Renews its leases, drops its others
     * and those past their time; answers the users under another owner's
     * live lease (and, with $4, one row of user 0, the notification's). */
    [Q_PRESENCE_RENEW] =
        "WITH mine AS (SELECT DISTINCT unnest($2::bigint[]) AS user_id),"
        " up AS (INSERT INTO presence_leases(owner, user_id, expires_at)"
        "        SELECT $1, m.user_id, clock_timestamp() + $3::bigint * interval '1 millisecond'"
        "        FROM mine m JOIN users u ON u.id = m.user_id"
        "        ON CONFLICT (owner, user_id) DO UPDATE SET expires_at = EXCLUDED.expires_at),"
        " gone AS (DELETE FROM presence_leases"
        "          WHERE (owner = $1 AND user_id <> ALL($2::bigint[]))"
        "             OR expires_at < clock_timestamp())"
        " SELECT DISTINCT l.user_id, u.name FROM presence_leases l JOIN users u ON u.id = l.user_id"
        "  WHERE l.owner <> $1 AND l.expires_at >= clock_timestamp()"
        " UNION ALL"
        " SELECT 0, NULL FROM (SELECT pg_notify('" PRESENCE_CHANNEL "', $1)) z WHERE $4::boolean",
    /* After a commit that appended: every instance reads the log again. */
    [Q_NOTIFY] =
        "SELECT pg_notify('" NOTIFY_CHANNEL "', '')",
    [Q_BROADCAST] =
        "SELECT pg_notify('" EPHEMERAL_CHANNEL "', $1)",
};

/* ---- open, close, transactions ---- */

static void *pg_open(const char *location, char *err, size_t errlen)
{
    return pg_conn_open(location, SQL, Q_COUNT, err, errlen);
}

static void pg_close(void *impl)
{
    pg_conn_close(impl);
}

static int pg_notify_fd(void *impl)
{
    return pg_conn_notify_fd(impl);
}

static int pg_notify_drain(void *impl)
{
    return pg_conn_notify_drain(impl);
}

static void pg_session_end_cb(void *impl, void (*cb)(void *arg, const char *token_hash), void *arg)
{
    struct pg *g = impl;
    g->session_end_cb = cb;
    g->session_end_arg = arg;
}

static void pg_presence_cb(void *impl, void (*cb)(void *arg, const char *owner), void *arg)
{
    struct pg *g = impl;
    g->presence_cb = cb;
    g->presence_arg = arg;
}

static void pg_broadcast_cb(void *impl, void (*cb)(void *arg, const char *payload), void *arg)
{
    struct pg *g = impl;
    g->broadcast_cb = cb;
    g->broadcast_arg = arg;
}

static int pg_begin(void *impl)
{
    struct pg *g = impl;
    if (g->in_txn) {
        fprintf(stderr, "store: begin: already in a transaction\n");
        return STORE_ERROR;
    }
    PGresult *r = pg_run(g, Q_BEGIN, NULL);
    int rc = result_rc(g, r, 0, "begin");
    PQclear(r);
    if (rc == STORE_OK)
        g->in_txn = 1;
    return rc;
}

/* Tells every instance that events were committed (Q_NOTIFY). A lost
 * notification delays the others' reads (feed.c reads again within a
 * second), it loses nothing: only logged. */
static void notify_appended(struct pg *g)
{
    PGresult *r = pg_run(g, Q_NOTIFY, NULL);
    if (PQresultStatus(r) != PGRES_TUPLES_OK)
        log_pg("notify", result_msg(r, g->conn), NULL);
    PQclear(r);
}

/* Ends the transaction on the server if something left it open. */
static void end_txn(struct pg *g)
{
    g->in_txn = 0;
    g->notify_owed = 0;
    if (PQstatus(g->conn) != CONNECTION_OK || PQtransactionStatus(g->conn) == PQTRANS_IDLE)
        return;
    PGresult *r = pg_exec1(g, Q_ROLLBACK, NULL);
    if (PQresultStatus(r) != PGRES_COMMAND_OK)
        log_pg("rollback", result_msg(r, g->conn), NULL);
    PQclear(r);
}

/* COMMIT of a transaction in which a statement failed answers "ROLLBACK"
 * without an error: that is a failed commit too. */
static int pg_commit(void *impl)
{
    struct pg *g = impl;
    if (!g->in_txn) {
        fprintf(stderr, "store: commit: no transaction\n");
        return STORE_ERROR;
    }
    PGresult *r = pg_run(g, Q_COMMIT, NULL);
    int rc = result_rc(g, r, 0, "commit");
    if (rc == STORE_OK && strcmp(PQcmdStatus(r), "COMMIT") != 0) {
        fprintf(stderr, "store: commit: the transaction had failed and was rolled back\n");
        rc = STORE_ERROR;
    }
    PQclear(r);
    int owed = g->notify_owed;
    end_txn(g);
    if (rc == STORE_OK && owed)
        notify_appended(g);
    return rc;
}

static void pg_rollback(void *impl)
{
    struct pg *g = impl;
    if (g->in_txn)
        end_txn(g);
}

/* ---- users and sessions ---- */

static int pg_user_create(void *impl, const char *name, const char *pwhash,
                          int64_t now_ms, int64_t *user_id)
{
    struct params p = {0};
    p_str(&p, name);
    p_str(&p, pwhash);
    p_i64(&p, now_ms);
    p_i64(&p, STORE_OPENING_BALANCE_CENTS);
    PGresult *r;
    int rc = pg_query_row(impl, Q_USER_CREATE, &p, 0, "user_create", &r);
    if (rc == STORE_NOT_FOUND)      /* ON CONFLICT DO NOTHING: the name is taken */
        return STORE_EXISTS;
    if (rc == STORE_OK && user_id)
        *user_id = col_i64(r, 0, 0);
    PQclear(r);
    return rc;
}

/* A Q_USER_GET row. */
static int read_user(const PGresult *r, int64_t *user_id, char *pwhash, size_t pwhash_len)
{
    if (user_id)
        *user_id = col_i64(r, 0, 0);
    return pwhash ? copy_col(r, 0, 1, pwhash, pwhash_len, "user_get") : STORE_OK;
}

static int pg_user_get(void *impl, const char *name, int64_t *user_id,
                       char *pwhash, size_t pwhash_len)
{
    struct params p = {0};
    p_str(&p, name);
    PGresult *r;
    int rc = pg_query_row(impl, Q_USER_GET, &p, 0, "user_get", &r);
    if (rc == STORE_OK)
        rc = read_user(r, user_id, pwhash, pwhash_len);
    PQclear(r);
    return rc;
}

static int pg_session_create(void *impl, const char *token_hash, int64_t user_id,
                             int64_t now_ms, int64_t expires_ms)
{
    struct params p = {0};
    p_str(&p, token_hash);
    p_i64(&p, user_id);
    p_i64(&p, now_ms);
    p_i64(&p, expires_ms);
    return pg_command(impl, Q_SESSION_CREATE, &p, MAP_UNIQUE | MAP_FK, "session_create");
}

/* A Q_SESSION_LOOKUP row. */
static int read_session(const PGresult *r, struct store_session *out)
{
    out->user_id = col_i64(r, 0, 0);
    out->last_used_ms = col_i64(r, 0, 2);
    out->expires_ms = col_i64(r, 0, 3);
    return copy_col(r, 0, 1, out->user, sizeof out->user, "session_lookup");
}

static int pg_session_lookup(void *impl, const char *token_hash, int64_t now_ms,
                             struct store_session *out)
{
    struct params p = {0};
    p_str(&p, token_hash);
    p_i64(&p, now_ms);
    PGresult *r;
    int rc = pg_query_row(impl, Q_SESSION_LOOKUP, &p, 0, "session_lookup", &r);
    if (rc == STORE_OK)
        rc = read_session(r, out);
    PQclear(r);
    return rc;
}

static int pg_session_touch(void *impl, const char *token_hash, int64_t now_ms)
{
    struct params p = {0};
    p_str(&p, token_hash);
    p_i64(&p, now_ms);
    return pg_command(impl, Q_SESSION_TOUCH, &p, 0, "session_touch");
}

static int pg_session_delete(void *impl, const char *token_hash)
{
    struct params p = {0};
    p_str(&p, token_hash);
    return pg_command(impl, Q_SESSION_DELETE, &p, 0, "session_delete");
}

/* ---- events ---- */

/* Finds the event an earlier append stored under (sender_id, client_msg_id). */
static int existing_event(struct pg *g, const struct store_new_event *ev,
                          int64_t *id, int64_t *ts_ms)
{
    struct params p = {0};
    p_id(&p, ev->sender_id);
    p_str(&p, ev->client_msg_id);
    PGresult *r;
    int rc = pg_query_row(g, Q_EVENT_EXISTING, &p, 0, "event_append lookup", &r);
    if (rc == STORE_OK) {
        *id = col_i64(r, 0, 0);
        *ts_ms = col_i64(r, 0, 1);
    } else if (rc == STORE_NOT_FOUND) {
        fprintf(stderr, "store: event_append: conflict but no existing row\n");
        rc = STORE_ERROR;
    }
    PQclear(r);
    return rc;
}

/* v1's "everyone" is general's. */
static int64_t event_room(const struct store_new_event *ev)
{
    return ev->room_id || ev->recipient_id ? ev->room_id : STORE_GENERAL_ROOM_ID;
}

static void append_params(struct params *p, const struct store_new_event *ev)
{
    p_i64(p, ev->ts_ms);
    p_str(p, ev->type);
    p_id(p, ev->recipient_id);
    p_id(p, ev->sender_id);
    p_str(p, ev->client_msg_id);
    p_str(p, ev->payload);
    p_id(p, event_room(ev));
}

static int pg_event_append(void *impl, const struct store_new_event *ev,
                           int64_t *id, int64_t *ts_ms, int *created)
{
    struct pg *g = impl;
    struct params p = {0};
    append_params(&p, ev);
    PGresult *r;
    int rc = pg_query(g, Q_EVENT_APPEND, &p, 0, "event_append", &r);
    if (rc != STORE_OK)
        return rc;
    int inserted = PQntuples(r) > 0;
    if (inserted) {
        *id = col_i64(r, 0, 0);
        *ts_ms = col_i64(r, 0, 1);
    }
    PQclear(r);
    if (inserted && g->in_txn)
        g->notify_owed = 1;
    else if (inserted)
        notify_appended(g);
    if (!inserted)      /* DO NOTHING fired: a retry of an earlier send */
        rc = existing_event(g, ev, id, ts_ms);
    if (rc == STORE_OK)
        *created = inserted;
    return rc;
}

/* Row i (id, ts_ms, recipient_id, type, payload); the strings are r's. */
static struct store_event event_row(const PGresult *r, int i)
{
    struct store_event e = {
        .id = col_i64(r, i, 0),
        .ts_ms = col_i64(r, i, 1),
        .recipient_id = col_i64(r, i, 2),
        .type = PQgetvalue(r, i, 3),
        .payload = PQgetvalue(r, i, 4),
        .room_id = PQnfields(r) > 5 ? col_i64(r, i, 5) : 0,
        .sender_id = PQnfields(r) > 6 ? col_i64(r, i, 6) : 0,
    };
    return e;
}

/* Calls cb for each row (id, ts_ms, recipient_id, type, payload) until it
 * asks to stop. */
static void emit_events(const PGresult *r, store_event_cb cb, void *arg)
{
    for (int i = 0; i < PQntuples(r); i++) {
        struct store_event e = event_row(r, i);
        if (cb(arg, &e))
            break;
    }
}

static int pg_events_after(void *impl, int64_t user_id, int64_t after, int limit,
                           store_event_cb cb, void *arg)
{
    struct params p = {0};
    p_i64(&p, after);
    p_i64(&p, user_id);
    p_i64(&p, limit < 1 ? 1 : limit);
    PGresult *r;
    int rc = pg_query(impl, Q_EVENTS_AFTER, &p, 0, "events_after", &r);
    if (rc == STORE_OK)
        emit_events(r, cb, arg);
    PQclear(r);
    return rc;
}

static int pg_events_all_after(void *impl, int64_t after, int limit,
                               store_event_cb cb, void *arg)
{
    struct params p = {0};
    p_i64(&p, after);
    p_i64(&p, limit < 1 ? 1 : limit);
    PGresult *r;
    int rc = pg_query(impl, Q_EVENTS_ALL_AFTER, &p, 0, "events_all_after", &r);
    if (rc == STORE_OK)
        emit_events(r, cb, arg);
    PQclear(r);
    return rc;
}

static int pg_last_event_id(void *impl, int64_t *id)
{
    PGresult *r;
    int rc = pg_query_row(impl, Q_LAST_EVENT_ID, NULL, 0, "last_event_id", &r);
    if (rc == STORE_OK)
        *id = col_i64(r, 0, 0);
    PQclear(r);
    return rc == STORE_NOT_FOUND ? STORE_ERROR : rc;
}

static int pg_room_members_all(void *impl, store_member_cb cb, void *arg)
{
    PGresult *r;
    int rc = pg_query(impl, Q_MEMBERS_ALL, NULL, 0, "room_members_all", &r);
    for (int i = 0; rc == STORE_OK && i < PQntuples(r); i++)
        cb(arg, col_i64(r, i, 0), PQgetvalue(r, i, 1), (int)col_i64(r, i, 2), col_i64(r, i, 3),
           col_i64(r, i, 4), col_i64(r, i, 5));
    PQclear(r);
    return rc;
}

/* ---- the bank ---- */

static int pg_account_balance(void *impl, int64_t user_id, int64_t *cents)
{
    struct params p = {0};
    p_i64(&p, user_id);
    PGresult *r;
    int rc = pg_query_row(impl, Q_ACCOUNT_BALANCE, &p, 0, "account_balance", &r);
    if (rc == STORE_OK)
        *cents = col_i64(r, 0, 0);
    PQclear(r);
    return rc;
}

static void move_params(struct params *p, int64_t user_id, int64_t delta_cents,
                        int64_t transfer_id, int64_t now_ms, const char *memo)
{
    p_i64(p, user_id);
    p_i64(p, delta_cents);
    p_id(p, transfer_id);
    p_i64(p, now_ms);
    p_str(p, memo);
}

/* No row changed: the account is missing, or it would be overdrawn. */
static int pg_account_move(void *impl, int64_t user_id, int64_t delta_cents,
                           int64_t transfer_id, int64_t now_ms, const char *memo)
{
    struct params p = {0};
    move_params(&p, user_id, delta_cents, transfer_id, now_ms, memo);
    PGresult *r;
    int rc = pg_query(impl, Q_ACCOUNT_MOVE, &p, MAP_FK, "account_move", &r);
    int moved = rc == STORE_OK && PQntuples(r) > 0;
    PQclear(r);
    if (rc != STORE_OK || moved)
        return rc;
    int64_t cents;
    rc = pg_account_balance(impl, user_id, &cents);
    return rc == STORE_OK ? STORE_CONSTRAINT : rc;
}

static int transfer_by_key(struct pg *g, int64_t from_id, const char *key, int64_t *id)
{
    struct params p = {0};
    p_i64(&p, from_id);
    p_str(&p, key);
    PGresult *r;
    int rc = pg_query_row(g, Q_TRANSFER_BY_KEY, &p, 0, "transfer_by_key", &r);
    if (rc == STORE_OK)
        *id = col_i64(r, 0, 0);
    PQclear(r);
    return rc;
}

static int pg_transfer_insert(void *impl, int64_t from_id, int64_t to_id, int64_t amount_cents,
                              const char *key, int64_t now_ms, int64_t *id, int *created)
{
    struct params p = {0};
    p_i64(&p, from_id);
    p_i64(&p, to_id);
    p_i64(&p, amount_cents);
    p_str(&p, key);
    p_i64(&p, now_ms);
    PGresult *r;
    int rc = pg_query(impl, Q_TRANSFER_INSERT, &p, MAP_FK, "transfer_insert", &r);
    *created = rc == STORE_OK && PQntuples(r) > 0;
    if (*created)
        *id = col_i64(r, 0, 0);
    PQclear(r);
    if (rc == STORE_OK && !*created)    /* the key was used: the first transfer */
        rc = transfer_by_key(impl, from_id, key, id);
    return rc;
}

/* A Q_TRANSFER_GET row. */
static int read_transfer(const PGresult *r, struct store_transfer *t)
{
    t->id = col_i64(r, 0, 0);
    t->from_id = col_i64(r, 0, 1);
    t->to_id = col_i64(r, 0, 2);
    t->amount_cents = col_i64(r, 0, 3);
    t->created_ms = col_i64(r, 0, 8);
    t->updated_ms = col_i64(r, 0, 9);
    int rc = copy_col(r, 0, 4, t->from, sizeof t->from, "transfer_get");
    if (rc == STORE_OK)
        rc = copy_col(r, 0, 5, t->to, sizeof t->to, "transfer_get");
    if (rc == STORE_OK)
        rc = store_transfer_state_read(PQgetvalue(r, 0, 6), &t->state);
    if (rc == STORE_OK)
        rc = copy_col(r, 0, 7, t->reason, sizeof t->reason, "transfer_get");
    return rc;
}

static int pg_transfer_get(void *impl, int64_t id, struct store_transfer *t)
{
    struct params p = {0};
    p_i64(&p, id);
    PGresult *r;
    int rc = pg_query_row(impl, Q_TRANSFER_GET, &p, 0, "transfer_get", &r);
    if (rc == STORE_OK)
        rc = read_transfer(r, t);
    PQclear(r);
    return rc;
}

static void state_params(struct params *p, int64_t id, enum transfer_state state,
                         const char *reason, int64_t now_ms)
{
    p_i64(p, id);
    p_str(p, transfer_state_name(state));
    p_str(p, reason && *reason ? reason : NULL);
    p_i64(p, now_ms);
}

static int pg_transfer_set_state(void *impl, int64_t id, enum transfer_state state,
                                 const char *reason, int64_t now_ms)
{
    struct params p = {0};
    state_params(&p, id, state, reason, now_ms);
    return pg_command(impl, Q_TRANSFER_SET_STATUS, &p, 0, "transfer_set_state");
}

/* Calls cb with the id in column 0 of each row of q. */
static int each_id(struct pg *g, enum q_id q, const struct params *p, const char *what,
                   void (*cb)(void *arg, int64_t id), void *arg)
{
    PGresult *r;
    int rc = pg_query(g, q, p, 0, what, &r);
    for (int i = 0; rc == STORE_OK && i < PQntuples(r); i++)
        cb(arg, col_i64(r, i, 0));
    PQclear(r);
    return rc;
}

static int pg_transfers_unfinished(void *impl, void (*cb)(void *arg, int64_t id), void *arg)
{
    return each_id(impl, Q_TRANSFERS_UNFINISHED, NULL, "transfers_unfinished", cb, arg);
}

static int pg_transfers_stale(void *impl, int64_t before_ms,
                              void (*cb)(void *arg, int64_t id), void *arg)
{
    struct params p = {0};
    p_i64(&p, before_ms);
    return each_id(impl, Q_TRANSFERS_STALE, &p, "transfers_stale", cb, arg);
}

/* The row lock lasts until the caller's transaction ends; outside one it
 * would be released at once, which is a caller's mistake. */
static int pg_transfer_lock(void *impl, int64_t id)
{
    struct pg *g = impl;
    if (!g->in_txn) {
        fprintf(stderr, "store: transfer_lock: not in a transaction\n");
        return STORE_ERROR;
    }
    struct params p = {0};
    p_i64(&p, id);
    PGresult *r;
    int rc = pg_query_row(g, Q_TRANSFER_LOCK, &p, 0, "transfer_lock", &r);
    PQclear(r);
    if (rc != STORE_NOT_FOUND)
        return rc;
    /* No row: held by another transaction (skipped), or no such transfer. */
    rc = pg_query_row(g, Q_TRANSFER_EXISTS, &p, 0, "transfer_lock", &r);
    PQclear(r);
    return rc == STORE_OK ? STORE_EXISTS : rc;
}

/* ---- asynchronous calls (store.h; the engine is pg_conn.c's) ---- */

/* ---- asynchronous calls (store.h; the engine is pg_conn.c's) ----
 * Each kind is one prepared statement, read into the reply by the same
 * readers as the synchronous calls; a few need a second statement (a
 * deduplicated append or transfer: the first row; an empty move or lock:
 * why), sent as a follow-up that runs next (PG_REQ_FRONT). */

struct async_ctx {
    store_done_fn done;
    void *arg;
    enum store_call_kind kind;
    int followed;               /* the follow-up was sent */
    int commit;                 /* an end: COMMIT (else ROLLBACK or BEGIN) */
    int64_t txn;                /* the caller's transaction, or 0 */
    int64_t a, b;               /* what the follow-up needs: ids */
    char *key;                  /* and a client_msg_id or idempotency key */
    json_t *batch;              /* EVENTS_APPEND_MANY: the events sent */
};

static void async_reply(struct async_ctx *c, const struct store_reply *rep)
{
    store_done_fn done = c->done;
    void *arg = c->arg;
    free(c->key);
    json_decref(c->batch);
    free(c);
    done(arg, rep);
}

static void async_done(struct pg *g, void *arg, int rc, const PGresult *r);

/* For the log: what each kind is. */
static const char *const CALL_NAMES[STORE_CALL_COUNT] = {
    [STORE_CALL_USER_CREATE] = "user_create", [STORE_CALL_USER_GET] = "user_get",
    [STORE_CALL_SESSION_CREATE] = "session_create", [STORE_CALL_SESSION_LOOKUP] = "session_lookup",
    [STORE_CALL_SESSION_TOUCH] = "session_touch", [STORE_CALL_SESSION_DELETE] = "session_delete",
    [STORE_CALL_EVENT_APPEND] = "event_append", [STORE_CALL_EVENTS_AFTER] = "events_after",
    [STORE_CALL_EVENTS_ALL_AFTER] = "events_all_after", [STORE_CALL_LAST_EVENT_ID] = "last_event_id",
    [STORE_CALL_ACCOUNT_BALANCE] = "account_balance", [STORE_CALL_ACCOUNT_MOVE] = "account_move",
    [STORE_CALL_TRANSFER_INSERT] = "transfer_insert", [STORE_CALL_TRANSFER_GET] = "transfer_get",
    [STORE_CALL_TRANSFER_SET_STATE] = "transfer_set_state", [STORE_CALL_TRANSFER_LOCK] = "transfer_lock",
    [STORE_CALL_TRANSFERS_UNFINISHED] = "transfers_unfinished",
    [STORE_CALL_TRANSFERS_STALE] = "transfers_stale",
    [STORE_CALL_EVENTS_APPEND_MANY] = "events_append_many",
    [STORE_CALL_ROOM_CREATE] = "room_create", [STORE_CALL_ROOM_JOIN] = "room_join",
    [STORE_CALL_ROOM_LEAVE] = "room_leave", [STORE_CALL_ROOM_TOPIC] = "room_topic",
    [STORE_CALL_ROOM_READ] = "room_read", [STORE_CALL_DM_OPEN] = "dm_open",
    [STORE_CALL_ROOM_MESSAGES] = "room_messages", [STORE_CALL_ROOMS_LIST] = "rooms_list",
    [STORE_CALL_PRESENCE_RENEW] = "presence_renew", [STORE_CALL_BROADCAST] = "broadcast",
};

/* chat_room_op's parameters for a room call. */
static int room_params(enum store_call_kind kind, const struct store_args *a, struct params *p)
{
    static const char *const OPS[] = {
        [STORE_CALL_ROOM_CREATE - STORE_CALL_ROOM_CREATE] = "create",
        [STORE_CALL_ROOM_JOIN - STORE_CALL_ROOM_CREATE] = "join",
        [STORE_CALL_ROOM_LEAVE - STORE_CALL_ROOM_CREATE] = "leave",
        [STORE_CALL_ROOM_TOPIC - STORE_CALL_ROOM_CREATE] = "topic",
        [STORE_CALL_ROOM_READ - STORE_CALL_ROOM_CREATE] = "read",
        [STORE_CALL_DM_OPEN - STORE_CALL_ROOM_CREATE] = "dm",
    };
    if (!a->name)
        return -1;
    p_str(p, OPS[kind - STORE_CALL_ROOM_CREATE]);
    p_i64(p, a->user_id);
    p_str(p, a->name);
    p_str(p, kind == STORE_CALL_DM_OPEN ? a->to : NULL);
    p_str(p, kind == STORE_CALL_ROOM_CREATE || kind == STORE_CALL_ROOM_TOPIC ? a->topic : NULL);
    p_i64(p, a->now_ms);
    p_str(p, a->payload);
    p_str(p, a->payload2);
    p_i64(p, a->id);
    return 0;
}

/* Parameters of kind's statement; its index in *q. -1 for a kind this
 * backend does not know. */
static int async_params(enum store_call_kind kind, const struct store_args *a,
                        struct params *p, int *q)
{
    switch (kind) {
    case STORE_CALL_USER_CREATE:
        *q = Q_USER_CREATE; p_str(p, a->name); p_str(p, a->pwhash); p_i64(p, a->now_ms);
        p_i64(p, STORE_OPENING_BALANCE_CENTS); return 0;
    case STORE_CALL_USER_GET:
        *q = Q_USER_GET; p_str(p, a->name); return 0;
    case STORE_CALL_SESSION_CREATE:
        *q = Q_SESSION_CREATE; p_str(p, a->token_hash); p_i64(p, a->user_id);
        p_i64(p, a->now_ms); p_i64(p, a->expires_ms); return 0;
    case STORE_CALL_SESSION_LOOKUP:
        *q = Q_SESSION_LOOKUP; p_str(p, a->token_hash); p_i64(p, a->now_ms); return 0;
    case STORE_CALL_SESSION_TOUCH:
        *q = Q_SESSION_TOUCH; p_str(p, a->token_hash); p_i64(p, a->now_ms); return 0;
    case STORE_CALL_SESSION_DELETE:
        *q = Q_SESSION_DELETE; p_str(p, a->token_hash); return 0;
    case STORE_CALL_EVENT_APPEND:
        if (!a->ev)
            return -1;
        *q = Q_EVENT_APPEND; append_params(p, a->ev); return 0;
    case STORE_CALL_EVENTS_AFTER:
        *q = Q_EVENTS_AFTER; p_i64(p, a->after); p_i64(p, a->user_id);
        p_i64(p, a->limit < 1 ? 1 : a->limit); return 0;
    case STORE_CALL_EVENTS_ALL_AFTER:
        *q = Q_EVENTS_ALL_AFTER; p_i64(p, a->after); p_i64(p, a->limit < 1 ? 1 : a->limit);
        return 0;
    case STORE_CALL_LAST_EVENT_ID:
        *q = Q_LAST_EVENT_ID; return 0;
    case STORE_CALL_ACCOUNT_BALANCE:
        *q = Q_ACCOUNT_BALANCE; p_i64(p, a->user_id); return 0;
    case STORE_CALL_ACCOUNT_MOVE:
        *q = Q_ACCOUNT_MOVE; move_params(p, a->user_id, a->delta_cents, a->id, a->now_ms, a->memo);
        return 0;
    case STORE_CALL_TRANSFER_INSERT:
        *q = Q_TRANSFER_INSERT; p_i64(p, a->from_id); p_i64(p, a->to_id);
        p_i64(p, a->amount_cents); p_str(p, a->key); p_i64(p, a->now_ms); return 0;
    case STORE_CALL_TRANSFER_GET:
    case STORE_CALL_TRANSFER_LOCK:
        *q = kind == STORE_CALL_TRANSFER_GET ? Q_TRANSFER_GET : Q_TRANSFER_LOCK;
        p_i64(p, a->id); return 0;
    case STORE_CALL_TRANSFER_SET_STATE:
        *q = Q_TRANSFER_SET_STATUS; state_params(p, a->id, a->state, a->reason, a->now_ms);
        return 0;
    case STORE_CALL_TRANSFERS_UNFINISHED:
        *q = Q_TRANSFERS_UNFINISHED; return 0;
    case STORE_CALL_TRANSFERS_STALE:
        *q = Q_TRANSFERS_STALE; p_i64(p, a->before_ms); return 0;
    case STORE_CALL_EVENTS_APPEND_MANY:
        return a->evs && a->nev > 0 ? 0 : -1;      /* its parameter: many_json */
    case STORE_CALL_ROOM_CREATE: case STORE_CALL_ROOM_JOIN: case STORE_CALL_ROOM_LEAVE:
    case STORE_CALL_ROOM_TOPIC: case STORE_CALL_ROOM_READ: case STORE_CALL_DM_OPEN:
        *q = Q_ROOM_OP; return room_params(kind, a, p);
    case STORE_CALL_ROOM_MESSAGES:
        if (!a->name)
            return -1;
        *q = Q_ROOM_MESSAGES; p_i64(p, a->user_id); p_str(p, a->name);
        p_i64(p, a->before > 0 ? a->before : INT64_MAX); p_i64(p, a->limit < 1 ? 1 : a->limit);
        return 0;
    case STORE_CALL_BROADCAST:
        *q = Q_BROADCAST; p_str(p, a->payload);
        return a->payload && strlen(a->payload) <= STORE_BROADCAST_MAX ? 0 : -1;
    case STORE_CALL_ROOMS_LIST:
        *q = Q_ROOMS_LIST; p_i64(p, a->user_id);
        p_i64(p, STORE_ROOMS_LIST_MAX + STORE_ROOMS_PER_USER); p_i64(p, STORE_UNREAD_MAX);
        return 0;
    case STORE_CALL_PRESENCE_RENEW:     /* $2: presence_ids_text */
        return a->key && a->nids_in >= 0 && (a->nids_in == 0 || a->ids_in) ? 0 : -1;
    default:
        return -1;
    }
}

/* The rows of an event read or an id list, for the reply. */
static int async_rows(const PGresult *r, enum store_call_kind kind, struct store_reply *rep)
{
    int n = PQntuples(r);
    struct store_event *ev = NULL;
    int64_t *ids = calloc((size_t)n + 1, sizeof *ids);
    int events = kind == STORE_CALL_EVENTS_AFTER || kind == STORE_CALL_EVENTS_ALL_AFTER;
    if (events)
        ev = calloc((size_t)n + 1, sizeof *ev);
    if (!ids || (events && !ev)) {
        free(ids);
        free(ev);
        return STORE_ERROR;
    }
    for (int i = 0; i < n; i++) {
        ids[i] = col_i64(r, i, 0);
        if (events)
            ev[i] = event_row(r, i);
    }
    rep->n = n;
    rep->ids = ids;
    rep->events = ev;
    return STORE_OK;
}

/* Q_PRESENCE_RENEW's rows: (user id, name), and user 0 (the notification's) skipped. */
static int async_presence(const PGresult *r, struct store_reply *rep)
{
    int n = PQntuples(r), k = 0;
    int64_t *ids = calloc((size_t)n + 1, sizeof *ids);
    char (*names)[33] = calloc((size_t)n + 1, sizeof *names);
    if (!ids || !names) {
        free(ids);
        free(names);
        return STORE_ERROR;
    }
    for (int i = 0; i < n; i++) {
        int64_t id = col_i64(r, i, 0);
        if (id <= 0 || PQgetisnull(r, i, 1))
            continue;
        ids[k] = id;
        snprintf(names[k], sizeof names[k], "%s", PQgetvalue(r, i, 1));
        k++;
    }
    rep->n = k;
    rep->ids = ids;
    rep->names = (const char (*)[33])names;
    return STORE_OK;
}

/* The user ids as a bigint[] literal, "{1,2,3}"; NULL if out of memory. */
static char *presence_ids_text(const struct store_args *a)
{
    size_t cap = (size_t)a->nids_in * 21 + 3, len = 1;
    char *t = malloc(cap);
    if (!t)
        return NULL;
    t[0] = '{';
    for (int i = 0; i < a->nids_in; i++)
        len += (size_t)snprintf(t + len, cap - len, "%s%lld", i ? "," : "", (long long)a->ids_in[i]);
    snprintf(t + len, cap - len, "}");
    return t;
}

/* The batch as Q_EVENTS_APPEND_MANY's JSON parameter; NULL if out of memory. */
static json_t *many_json(const struct store_args *a)
{
    json_t *arr = json_array();
    for (int i = 0; arr && a->evs && i < a->nev; i++) {
        const struct store_new_event *e = &a->evs[i];
        json_t *o = json_pack("{s:I,s:s,s:I,s:I,s:s?,s:s,s:I}", "ts", (json_int_t)e->ts_ms, "type", e->type,
                              "rcpt", (json_int_t)e->recipient_id, "sender", (json_int_t)e->sender_id,
                              "cmid", e->client_msg_id, "payload", e->payload,
                              "room", (json_int_t)event_room(e));
        if (!o || json_array_append_new(arr, o) < 0) {
            json_decref(arr);
            return NULL;
        }
    }
    return arr;
}

/* Event i of the batch repeats an earlier one's (sender, client_msg_id):
 * that one's id and ts. */
static int many_first_copy(json_t *batch, int i, int64_t *ids, int64_t *ts)
{
    json_t *e = json_array_get(batch, (size_t)i);
    const char *cmid = json_string_value(json_object_get(e, "cmid"));
    json_int_t sender = json_integer_value(json_object_get(e, "sender"));
    for (int j = 0; cmid && j < i; j++) {
        json_t *f = json_array_get(batch, (size_t)j);
        const char *fc = json_string_value(json_object_get(f, "cmid"));
        if (fc && !strcmp(fc, cmid) && json_integer_value(json_object_get(f, "sender")) == sender) {
            ids[i] = ids[j];
            ts[i] = ts[j];
            return STORE_OK;
        }
    }
    fprintf(stderr, "store: events_append_many: event %d neither stored nor a duplicate\n", i);
    return STORE_ERROR;
}

/* Q_EVENTS_APPEND_MANY's rows, one per event in order: inserted, stored
 * before (a retry), or a duplicate of an earlier event of the batch. */
static int async_many(struct async_ctx *c, const PGresult *r, struct store_reply *rep)
{
    int n = (int)json_array_size(c->batch);
    if (PQntuples(r) != n) {
        fprintf(stderr, "store: events_append_many: %d rows for %d events\n", PQntuples(r), n);
        return STORE_ERROR;
    }
    int64_t *ids = calloc((size_t)n + 1, sizeof *ids), *ts = calloc((size_t)n + 1, sizeof *ts);
    int *created = calloc((size_t)n + 1, sizeof *created);
    int rc = ids && ts && created ? STORE_OK : STORE_ERROR;
    for (int i = 0; rc == STORE_OK && i < n; i++) {
        if (!PQgetisnull(r, i, 1)) {
            ids[i] = col_i64(r, i, 1);
            ts[i] = col_i64(r, i, 2);
            created[i] = 1;
        } else if (!PQgetisnull(r, i, 3)) {
            ids[i] = col_i64(r, i, 3);
            ts[i] = col_i64(r, i, 4);
        } else {
            rc = many_first_copy(c->batch, i, ids, ts);
        }
    }
    rep->n = n;
    rep->ids = ids;
    rep->ts_each = ts;
    rep->created_each = created;
    if (rc != STORE_OK || !ids || !ts || !created) {
        free(ids);
        free(ts);
        free(created);
        rep->ids = rep->ts_each = NULL;
        rep->created_each = NULL;
        rep->n = 0;
        return STORE_ERROR;
    }
    return STORE_OK;
}

/* The follow-up a kind needs when its statement returned no row; 1 if sent. */
static int async_follow(struct pg *g, struct async_ctx *c)
{
    struct params p = {0};
    int q;
    switch (c->kind) {
    case STORE_CALL_EVENT_APPEND:       /* DO NOTHING fired: the first one */
        q = Q_EVENT_EXISTING; p_id(&p, c->a); p_str(&p, c->key); break;
    case STORE_CALL_TRANSFER_INSERT:    /* the key was used: the first transfer */
        q = Q_TRANSFER_BY_KEY; p_i64(&p, c->a); p_str(&p, c->key); break;
    case STORE_CALL_ACCOUNT_MOVE:       /* overdrawn, or no such account */
        q = Q_ACCOUNT_BALANCE; p_i64(&p, c->a); break;
    case STORE_CALL_TRANSFER_LOCK:      /* held elsewhere, or no such transfer */
        q = Q_TRANSFER_EXISTS; p_i64(&p, c->a); break;
    default:
        return 0;
    }
    c->followed = 1;
    pg_async_send(g, 0, q, &p, PG_REQ_FRONT, 0, "follow-up", async_done, c);
    return 1;
}

/* What the follow-up's answer means. */
static int async_followed(struct async_ctx *c, int rc, const PGresult *r, struct store_reply *rep)
{
    int found = rc == STORE_OK && PQntuples(r) > 0;
    if (rc != STORE_OK)
        return rc;
    switch (c->kind) {
    case STORE_CALL_EVENT_APPEND:
    case STORE_CALL_TRANSFER_INSERT:
        if (!found) {
            fprintf(stderr, "store: a conflict but no existing row\n");
            return STORE_ERROR;
        }
        rep->id = col_i64(r, 0, 0);
        rep->ts_ms = c->kind == STORE_CALL_EVENT_APPEND ? col_i64(r, 0, 1) : 0;
        return STORE_OK;
    case STORE_CALL_ACCOUNT_MOVE:
        return found ? STORE_CONSTRAINT : STORE_NOT_FOUND;
    default:                            /* STORE_CALL_TRANSFER_LOCK */
        return found ? STORE_EXISTS : STORE_NOT_FOUND;
    }
}

/* chat_room_op's and chat_room_messages' rows (db/pg/003_rooms.sql). */
static int room_rows(const PGresult *r, struct store_reply *rep)
{
    int n = PQntuples(r);
    if (n < 1 || PQnfields(r) < 8)
        return STORE_ERROR;
    if ((rep->room_err = (int)col_i64(r, 0, 0)) != 0)
        return STORE_CONSTRAINT;
    rep->room_id = col_i64(r, 0, 1);
    rep->id = col_i64(r, 0, 2);
    rep->more = rep->id == 1;
    struct store_event *ev = calloc((size_t)n + 1, sizeof *ev);
    if (!ev)
        return STORE_ERROR;
    int k = 0;
    for (int i = 0; i < n; i++) {
        if (PQgetisnull(r, i, 3))
            continue;
        ev[k++] = (struct store_event){
            .id = col_i64(r, i, 3), .ts_ms = col_i64(r, i, 4), .type = PQgetvalue(r, i, 5),
            .payload = PQgetvalue(r, i, 6), .sender_id = col_i64(r, i, 7), .room_id = rep->room_id,
        };
    }
    rep->n = k;
    rep->events = ev;
    return STORE_OK;
}

/* Q_ROOMS_LIST's rows. */
static int room_list_rows(const PGresult *r, struct store_reply *rep)
{
    int n = PQntuples(r);
    struct store_room *rooms = calloc((size_t)n + 1, sizeof *rooms);
    if (!rooms)
        return STORE_ERROR;
    int k = 0;
    for (int i = 0; i < n; i++) {
        struct store_room *x = &rooms[k];
        if (PQgetlength(r, i, 1) >= (int)sizeof x->name || PQgetlength(r, i, 2) >= (int)sizeof x->topic)
            continue;
        x->id = col_i64(r, i, 0);
        snprintf(x->name, sizeof x->name, "%s", PQgetvalue(r, i, 1));
        snprintf(x->topic, sizeof x->topic, "%s", PQgetvalue(r, i, 2));
        x->dm = (int)col_i64(r, i, 3);
        x->members = col_i64(r, i, 4);
        x->joined = (int)col_i64(r, i, 5);
        x->unread = col_i64(r, i, 6);
        x->last_id = col_i64(r, i, 7);
        k++;
    }
    rep->rooms = rooms;
    rep->n_rooms = k;
    return STORE_OK;
}

/* The first statement's answer, read as the synchronous call reads it. */
static int async_read(struct pg *g, struct async_ctx *c, const PGresult *r, struct store_reply *rep)
{
    int one = PQntuples(r) > 0;
    switch (c->kind) {
    case STORE_CALL_USER_CREATE:
        if (one)
            rep->id = col_i64(r, 0, 0);
        return one ? STORE_OK : STORE_EXISTS;
    case STORE_CALL_USER_GET:
        return one ? read_user(r, &rep->id, rep->pwhash, sizeof rep->pwhash) : STORE_NOT_FOUND;
    case STORE_CALL_SESSION_LOOKUP:
        return one ? read_session(r, &rep->session) : STORE_NOT_FOUND;
    case STORE_CALL_SESSION_CREATE:
    case STORE_CALL_SESSION_TOUCH:
    case STORE_CALL_SESSION_DELETE:
    case STORE_CALL_TRANSFER_SET_STATE:
        return strcmp(PQcmdTuples((PGresult *)r), "0") ? STORE_OK : STORE_NOT_FOUND;
    case STORE_CALL_EVENT_APPEND:
        if (!one)
            return async_follow(g, c) ? -1 : STORE_ERROR;
        rep->id = col_i64(r, 0, 0);
        rep->ts_ms = col_i64(r, 0, 1);
        rep->created = 1;
        return STORE_OK;
    case STORE_CALL_TRANSFER_INSERT:
        if (!one)
            return async_follow(g, c) ? -1 : STORE_ERROR;
        rep->id = col_i64(r, 0, 0);
        rep->created = 1;
        return STORE_OK;
    case STORE_CALL_ACCOUNT_MOVE:
    case STORE_CALL_TRANSFER_LOCK:
        return one ? STORE_OK : (async_follow(g, c) ? -1 : STORE_ERROR);
    case STORE_CALL_LAST_EVENT_ID:
    case STORE_CALL_ACCOUNT_BALANCE:
        if (one)
            rep->id = rep->cents = col_i64(r, 0, 0);
        return one ? STORE_OK : STORE_NOT_FOUND;
    case STORE_CALL_TRANSFER_GET:
        return one ? read_transfer(r, &rep->transfer) : STORE_NOT_FOUND;
    case STORE_CALL_EVENTS_APPEND_MANY:
        return async_many(c, r, rep);
    case STORE_CALL_ROOMS_LIST:
        return room_list_rows(r, rep);
    case STORE_CALL_BROADCAST:
        return STORE_OK;
    case STORE_CALL_ROOM_CREATE: case STORE_CALL_ROOM_JOIN: case STORE_CALL_ROOM_LEAVE:
    case STORE_CALL_ROOM_TOPIC: case STORE_CALL_ROOM_READ: case STORE_CALL_DM_OPEN:
    case STORE_CALL_ROOM_MESSAGES:
        return room_rows(r, rep);
    case STORE_CALL_PRESENCE_RENEW:
        return async_presence(r, rep);
    default:
        return async_rows(r, c->kind, rep);
    }
}

static void notify_done(struct pg *g, void *arg, int rc, const PGresult *r)
{
    (void)g, (void)arg, (void)rc, (void)r;     /* a failure is logged by the engine */
}

/* Q_NOTIFY, next on the connection, once what appended is committed: at
 * once outside a transaction, else when it commits (async_end_done). */
static void async_appended(struct pg *g, const struct async_ctx *c, const struct store_reply *rep)
{
    int appended = 0;
    if (rep->rc != STORE_OK)
        return;
    if (c->kind == STORE_CALL_EVENT_APPEND)
        appended = rep->created;
    else if (c->kind == STORE_CALL_EVENTS_APPEND_MANY)
        for (int i = 0; i < rep->n && !appended; i++)
            appended = rep->created_each[i];
    else if (c->kind >= STORE_CALL_ROOM_CREATE && c->kind <= STORE_CALL_DM_OPEN)
        appended = rep->n > 0;
    if (appended && c->txn)
        g->notify_txn = c->txn;
    else if (appended)
        pg_async_send(g, 0, Q_NOTIFY, NULL, PG_REQ_FRONT, 0, "notify", notify_done, NULL);
}

static void async_done(struct pg *g, void *arg, int rc, const PGresult *r)
{
    struct async_ctx *c = arg;
    struct store_reply rep;
    memset(&rep, 0, sizeof rep);
    if (c->followed)
        rep.rc = async_followed(c, rc, r, &rep);
    else if (rc == STORE_OK && (rep.rc = async_read(g, c, r, &rep)) < 0)
        return;                         /* the follow-up answers */
    else if (rc != STORE_OK)
        rep.rc = rc;
    if (!c->followed)
        async_appended(g, c, &rep);
    const int64_t *ids = rep.ids, *ts = rep.ts_each;
    const struct store_event *ev = rep.events;
    const int *created = rep.created_each;
    const char (*names)[33] = rep.names;
    const struct store_room *rooms = rep.rooms;
    async_reply(c, &rep);
    free((void *)names);
    free((void *)rooms);
    free((void *)ids);
    free((void *)ev);
    free((void *)ts);
    free((void *)created);
}

/* What a follow-up needs from the call's arguments. */
static int async_keep(struct async_ctx *c, const struct store_args *a)
{
    const char *key = NULL;
    if (c->kind == STORE_CALL_EVENT_APPEND && a->ev) {
        c->a = a->ev->sender_id;
        key = a->ev->client_msg_id;
    } else if (c->kind == STORE_CALL_TRANSFER_INSERT) {
        c->a = a->from_id;
        key = a->key;
    } else if (c->kind == STORE_CALL_ACCOUNT_MOVE) {
        c->a = a->user_id;
    } else if (c->kind == STORE_CALL_TRANSFER_LOCK) {
        c->a = a->id;
    }
    return key && !(c->key = strdup(key)) ? -1 : 0;
}

static void pg_async_call(void *impl, int64_t txn, enum store_call_kind kind,
                          const struct store_args *args, store_done_fn done, void *arg)
{
    struct pg *g = impl;
    struct params p = {0};
    int q = -1;
    struct async_ctx *c = calloc(1, sizeof *c);
    if (c) {
        c->kind = kind;
        c->done = done;
        c->arg = arg;
        c->txn = txn;
    }
    if (!c || async_params(kind, args, &p, &q) < 0 || async_keep(c, args) < 0) {
        struct store_reply rep = { .rc = STORE_ERROR };
        fprintf(stderr, "store: asynchronous call %d: cannot queue it\n", (int)kind);
        if (c)
            free(c->key);
        free(c);
        done(arg, &rep);
        return;
    }
    char *text = NULL;
    if (kind == STORE_CALL_EVENTS_APPEND_MANY) {
        c->batch = many_json(args);
        text = c->batch ? json_dumps(c->batch, JSON_COMPACT) : NULL;
        if (!text) {
            struct store_reply rep = { .rc = STORE_ERROR };
            async_reply(c, &rep);
            return;
        }
        q = Q_EVENTS_APPEND_MANY;
        p_str(&p, text);
    } else if (kind == STORE_CALL_PRESENCE_RENEW) {
        text = presence_ids_text(args);
        if (!text) {
            struct store_reply rep = { .rc = STORE_ERROR };
            async_reply(c, &rep);
            return;
        }
        q = Q_PRESENCE_RENEW;
        p_str(&p, args->key);
        p_str(&p, text);
        p_i64(&p, args->expires_ms);
        p_str(&p, args->notify ? "true" : "false");
    }
    int map = kind == STORE_CALL_SESSION_CREATE ? MAP_UNIQUE | MAP_FK
            : kind == STORE_CALL_ACCOUNT_MOVE || kind == STORE_CALL_TRANSFER_INSERT ? MAP_FK : 0;
    pg_async_send(g, txn, q, &p, 0, map, CALL_NAMES[kind], async_done, c);
    free(text);
}

/* BEGIN, COMMIT, ROLLBACK: a COMMIT whose transaction had failed answers
 * "ROLLBACK", which is a failed commit. */
static void async_end_done(struct pg *g, void *arg, int rc, const PGresult *r)
{
    struct async_ctx *c = arg;
    struct store_reply rep = { .rc = rc };
    if (rc == STORE_OK && c->commit && strcmp(PQcmdStatus((PGresult *)r), "COMMIT") != 0) {
        fprintf(stderr, "store: commit: the transaction had failed and was rolled back\n");
        rep.rc = STORE_ERROR;
    }
    if (c->txn && c->txn == g->notify_txn) {    /* its end: it appended */
        g->notify_txn = 0;
        if (rep.rc == STORE_OK && c->commit)
            pg_async_send(g, 0, Q_NOTIFY, NULL, PG_REQ_FRONT, 0, "notify", notify_done, NULL);
    }
    async_reply(c, &rep);
}

static struct async_ctx *txn_ctx(int64_t txn, int commit, store_done_fn done, void *arg)
{
    struct async_ctx *c = calloc(1, sizeof *c);
    if (c) {
        c->done = done;
        c->arg = arg;
        c->commit = commit;
        c->txn = txn;
    }
    return c;
}

static int64_t pg_async_txn_begin(void *impl, store_done_fn done, void *arg)
{
    struct pg *g = impl;
    int64_t txn = pg_async_txn_new(g);
    struct async_ctx *c = txn_ctx(0, 0, done, arg);
    if (!c) {
        struct store_reply rep = { .rc = STORE_ERROR };
        done(arg, &rep);
        return txn;
    }
    pg_async_send(g, txn, Q_BEGIN, NULL, PG_REQ_BEGIN, 0, "begin", async_end_done, c);
    return txn;
}

static void pg_async_txn_end(void *impl, int64_t txn, int commit, store_done_fn done, void *arg)
{
    struct pg *g = impl;
    struct async_ctx *c = txn_ctx(txn, commit ? 1 : 0, done, arg);
    if (!c) {
        struct store_reply rep = { .rc = STORE_ERROR };
        done(arg, &rep);
        return;
    }
    pg_async_send(g, txn, commit ? Q_COMMIT : Q_ROLLBACK, NULL, PG_REQ_END, 0,
                  commit ? "commit" : "rollback", async_end_done, c);
}

static void pg_async_bound_op(void *impl, int max_requests, int64_t max_age_ms)
{
    pg_async_bound(impl, max_requests, max_age_ms);
}

static int pg_io_fd(void *impl)
{
    return pg_async_fd(impl);
}

static void pg_io_on_close(void *impl, void (*cb)(void *arg), void *arg)
{
    pg_async_on_close(impl, cb, arg);
}

static int pg_io_want(void *impl)
{
    return pg_async_want(impl);
}

static int pg_io_pending(void *impl)
{
    return pg_async_pending(impl);
}

static void pg_io_service(void *impl)
{
    pg_async_service(impl);
}

static int pg_io_health(void *impl, int64_t slow_ms, char *reason, size_t len)
{
    return pg_async_health(impl, slow_ms, reason, len);
}

const struct store_ops store_pg_ops = {
    .name = "postgresql",
    .open = pg_open,
    .close = pg_close,
    .user_create = pg_user_create,
    .user_get = pg_user_get,
    .session_create = pg_session_create,
    .session_lookup = pg_session_lookup,
    .session_touch = pg_session_touch,
    .session_delete = pg_session_delete,
    .event_append = pg_event_append,
    .events_after = pg_events_after,
    .last_event_id = pg_last_event_id,
    .events_all_after = pg_events_all_after,
    .shared = 1,
    .notify_fd = pg_notify_fd,
    .notify_drain = pg_notify_drain,
    .session_end_cb = pg_session_end_cb,
    .presence_cb = pg_presence_cb,
    .broadcast_cb = pg_broadcast_cb,
    .begin = pg_begin,
    .commit = pg_commit,
    .rollback = pg_rollback,
    .account_balance = pg_account_balance,
    .account_move = pg_account_move,
    .transfer_insert = pg_transfer_insert,
    .transfer_get = pg_transfer_get,
    .transfer_set_state = pg_transfer_set_state,
    .transfers_unfinished = pg_transfers_unfinished,
    .transfer_lock = pg_transfer_lock,
    .transfers_stale = pg_transfers_stale,
    .room_call = NULL,          /* the room calls are asynchronous only */
    .room_members_all = pg_room_members_all,
    .async_call = pg_async_call,
    .async_txn_begin = pg_async_txn_begin,
    .async_txn_end = pg_async_txn_end,
    .async_bound = pg_async_bound_op,
    .io_fd = pg_io_fd,
    .io_on_close = pg_io_on_close,
    .io_want = pg_io_want,
    .io_pending = pg_io_pending,
    .io_service = pg_io_service,
    .io_health = pg_io_health,
};
