/* store.h — chatd's storage interface. Callers see an opaque struct store and
 * these functions; each backend (store_sqlite.c, store_pg.c) fills a
 * struct store_ops. Every call comes in two forms: the synchronous one
 * (below, for startup, tools and tests: it blocks until the database
 * answers) and the asynchronous one (store_call_async, at the end: what
 * the server uses while it serves; never blocking, on either backend). A write outside a
 * transaction is committed before it completes. Inside one it is durable
 * only at its commit, so an id handed back may be announced to clients
 * only after that commit. */
#ifndef CHAT_STORE_H
#define CHAT_STORE_H

#include <stddef.h>
#include <stdint.h>

enum store_rc {
    STORE_OK = 0,
    STORE_EXISTS,      /* unique key already taken */
    STORE_NOT_FOUND,
    STORE_ERROR,       /* backend failure; details logged by the backend */
    STORE_CONSTRAINT,  /* the change would break a rule, e.g. a negative balance */
    STORE_UNAVAILABLE, /* the database is gone or too slow: the request was not
                        * run within the store's bound (or, sent when the
                        * connection broke, its outcome is unknown); retryable */
};

#define STORE_OPENING_BALANCE_CENTS 100000   /* 1,000.00 for every new user */

/* A transfer's life: pending -> processing -> completed | failed. */
enum transfer_state {
    TRANSFER_PENDING,
    TRANSFER_PROCESSING,
    TRANSFER_COMPLETED,
    TRANSFER_FAILED,
};
/* The state's name: what the database stores and the API shows
 * (shared/PROTOCOL.md). */
const char *transfer_state_name(enum transfer_state state);
/* 0 and *state for a name transfer_state_name gives; -1 for anything else. */
int transfer_state_parse(const char *name, enum transfer_state *state);

struct store_transfer {
    int64_t id, from_id, to_id, amount_cents;
    char    from[33], to[33];       /* user names */
    enum transfer_state state;
    char    reason[64];             /* why it failed, or "" */
    int64_t created_ms, updated_ms;
};

/* An event to append: of a room (room_id: its members see it) or private
 * to recipient_id (an alert, room_id 0). recipient_id 0 and room_id 0: a
 * v1 event for everyone (stored as general's). */
struct store_new_event {
    const char *type;           /* "chat", "alert", "member" or "topic" */
    int64_t     recipient_id;
    int64_t     room_id;
    int64_t     sender_id;
    const char *client_msg_id;  /* may be NULL; (sender_id, client_msg_id) is unique */
    const char *payload;        /* JSON object text with the type's fields */
    int64_t     ts_ms;
};

struct store_event {
    int64_t     id;
    int64_t     ts_ms;
    int64_t     recipient_id;   /* 0 = a room's (or, before rooms, every user's) */
    int64_t     room_id;        /* 0 = private (recipient_id's) */
    int64_t     sender_id;      /* 0 = from the system; a member event: its user */
    const char *type;
    const char *payload;        /* valid only during the callback */
};
/* Return non-zero to stop the iteration early. */
typedef int (*store_event_cb)(void *arg, const struct store_event *ev);

struct store;

/* Opens (creating and migrating if needed) the store at location; on
 * SQLite also starts the store's writer thread (store_thread.c).
 * On failure returns NULL and writes a reason into err. */
struct store *store_open(const char *location, char *err, size_t errlen);
void store_free(struct store *st);

/* Creates the user and its account with the opening balance, atomically. */
int store_user_create(struct store *st, const char *name, const char *pwhash,
                      int64_t now_ms, int64_t *user_id);
/* Copies the stored password hash into pwhash (size pwhash_len). */
int store_user_get(struct store *st, const char *name, int64_t *user_id,
                   char *pwhash, size_t pwhash_len);

/* token_hash is the hex SHA-256 of the bearer token; tokens are never stored. */
int store_session_create(struct store *st, const char *token_hash, int64_t user_id,
                         int64_t now_ms, int64_t expires_ms);
struct store_session {
    int64_t user_id;
    char    user[33];
    int64_t expires_ms;         /* absolute end */
    int64_t last_used_ms;       /* for the idle expiry, which the server decides */
};
/* STORE_NOT_FOUND if unknown or past expires_ms at now_ms. */
int store_session_lookup(struct store *st, const char *token_hash, int64_t now_ms,
                         struct store_session *out);
/* Marks the session used at now_ms. */
int store_session_touch(struct store *st, const char *token_hash, int64_t now_ms);
/* Revokes the session (logout). STORE_NOT_FOUND if it was not there. */
int store_session_delete(struct store *st, const char *token_hash);

/* Appends an event. If (sender_id, client_msg_id) exists, nothing is stored,
 * *created is 0 and *id and *ts_ms are the first event's. */
int store_event_append(struct store *st, const struct store_new_event *ev,
                       int64_t *id, int64_t *ts_ms, int *created);
/* Calls cb for user_id's events with id > after, oldest first, at most limit. */
int store_events_after(struct store *st, int64_t user_id, int64_t after, int limit,
                       store_event_cb cb, void *arg);
/* Highest event id in the store (0 if none). */
int store_last_event_id(struct store *st, int64_t *id);
/* Calls cb for every event (of every recipient) with id > after, oldest
 * first, at most limit: how an instance learns what others committed. */
int store_events_all_after(struct store *st, int64_t after, int limit,
                           store_event_cb cb, void *arg);

/* ---- several instances on one store (PostgreSQL) ---- */
/* 1 if other chatd instances may write to this store too. */
int store_is_shared(struct store *st);
/* A descriptor that becomes readable when any instance has committed new
 * events (PostgreSQL LISTEN), or -1 if the backend has none or lost it
 * (call again later to reconnect). */
int store_notify_fd(struct store *st);
/* Reads what arrived on store_notify_fd: 1 if events were committed since
 * the last call, 0 if nothing, -1 if the notification connection was lost. */
int store_notify_drain(struct store *st);

/* cb(arg, token_hash) for every session that any instance has deleted
 * (logout, idle expiry), called from store_notify_drain: how a logout on
 * one instance reaches the connections another holds, at once. A shared
 * store announces each store_session_delete (and STORE_CALL_SESSION_DELETE)
 * that removed a row, on commit; the instance that deleted it hears of it
 * too. A store of one instance (SQLite) never calls cb. */
void store_set_session_end_cb(struct store *st, void (*cb)(void *arg, const char *token_hash),
                              void *arg);

/* cb(arg, owner) when another instance's online users changed (a
 * PRESENCE_RENEW with notify, committed), from store_notify_drain; owner
 * is the renewer's key. A store of one instance never calls cb. */
void store_set_presence_cb(struct store *st, void (*cb)(void *arg, const char *owner), void *arg);

/* cb(arg, payload) for every STORE_CALL_BROADCAST of any instance (this
 * one's too), from store_notify_drain; payload is unchecked text. A store
 * of one instance never calls cb. */
#define STORE_BROADCAST_MAX 1024
void store_set_broadcast_cb(struct store *st, void (*cb)(void *arg, const char *payload), void *arg);


/* ---- synchronous transactions (startup, tools, tests) ---- */
/* Starts a write transaction (taking the write lock at once). On SQLite
 * the writer thread runs nothing until its commit or rollback; a
 * synchronous call while an asynchronous transaction is open is not
 * allowed (it would run inside that transaction). */
int store_begin(struct store *st);
int store_commit(struct store *st);
void store_rollback(struct store *st);

/* ---- the bank: balances, the ledger, transfers ----
 * transfers.c makes the writes inside store_begin/store_commit, each step
 * one transaction with the alerts it announces; the reads may stand alone. */
int store_account_balance(struct store *st, int64_t user_id, int64_t *cents);
/* Adds delta to the balance and writes the ledger row. STORE_CONSTRAINT if
 * the balance would go below zero (nothing is changed then). */
int store_account_move(struct store *st, int64_t user_id, int64_t delta_cents,
                       int64_t transfer_id, int64_t now_ms, const char *memo);
/* Inserts a pending transfer, unless (from_id, key) exists: then *created is
 * 0 and *id is the existing transfer's. */
int store_transfer_insert(struct store *st, int64_t from_id, int64_t to_id, int64_t amount_cents,
                          const char *key, int64_t now_ms, int64_t *id, int *created);
int store_transfer_get(struct store *st, int64_t id, struct store_transfer *t);
int store_transfer_set_state(struct store *st, int64_t id, enum transfer_state state,
                             const char *reason, int64_t now_ms);
/* Calls cb for every pending or processing transfer, oldest first. */
int store_transfers_unfinished(struct store *st, void (*cb)(void *arg, int64_t id), void *arg);
/* Inside a transaction: takes the transfer's row for this instance alone.
 * STORE_EXISTS if another instance holds it now (SKIP LOCKED); always
 * STORE_OK on a single-writer backend. */
int store_transfer_lock(struct store *st, int64_t id);
/* Unfinished transfers whose last change is older than before_ms: those an
 * instance that died left behind. */
int store_transfers_stale(struct store *st, int64_t before_ms,
                          void (*cb)(void *arg, int64_t id), void *arg);

/* ---- asynchronous calls: what the server's event loop uses ----
 * Every synchronous call above has an asynchronous form, named by a
 * STORE_CALL_* kind with its inputs in struct store_args, run by
 * store_call_async. The server uses only these once it serves (the
 * synchronous ones are for startup, tools and tests): they never block the
 * loop (PostgreSQL: a connection of its own, below; SQLite: a writer
 * thread that owns the connection, below).
 *
 * done(arg, reply) is called EXACTLY ONCE, on the thread that drives the
 * store (the event loop): later, from store_io_service, on either backend;
 * or before the call returns when it is refused (below). The caller must
 * cope with both: set up its state before the call, not after it; and if what
 * arg points to can go away first (a connection that closes), arg must be
 * a ticket the caller can disown (so done sees the owner is gone), never
 * the connection itself. Completions come in call order (one FIFO per
 * store), except that a refused call completes at once, and that the
 * requests of an open transaction run before anything queued after its
 * BEGIN that is not part of it. reply, and everything it points to, is
 * valid only during done; done may make further calls.
 *
 * Transactions: store_txn_begin_async returns the transaction's handle
 * (never 0) and queues its BEGIN; calls with that handle run inside it;
 * store_txn_end_async commits (commit 1) or rolls it back. txn 0: the call
 * stands alone (a write is committed before done). While a transaction is
 * open, the database runs nothing else from this store: keep it short, and
 * from each of its completions send its next call (or its end) before
 * returning, as a transaction left idle holds up every other request until
 * the age bound answers them STORE_UNAVAILABLE.
 *
 * Errors reach the caller only through reply->rc: the codes above, and
 * STORE_UNAVAILABLE (retryable) when
 *  - more than the bound's count of requests are waiting: refused at once;
 *  - the request waited longer than the bound's age (no connection, or the
 *    database too slow; on PostgreSQL one in flight that long has its
 *    connection dropped, which makes the database roll its transaction
 *    back; on SQLite one the writer thread has started cannot be stopped:
 *    it completes with its own outcome, and store_io_health says the disk
 *    is slow);
 *  - the connection broke while the request was in flight: its outcome is
 *    unknown, so a retry must be idempotent (an append with a
 *    client_msg_id, a transfer with its key, are).
 * A transaction that lost a request that way is doomed: the rest of it
 * answers STORE_UNAVAILABLE without running, its commit included, and it
 * is rolled back. Nothing is acknowledged that was not committed; a commit
 * whose transaction had failed is STORE_ERROR. Closing the store
 * (store_free) answers what is still queued STORE_UNAVAILABLE.
 *
 * PostgreSQL runs these on a connection of its own ("chatd-async"), opened
 * on first use, never blocking (PQconnectStart/PQconnectPoll,
 * PQsendQueryPrepared, PQconsumeInput). SQLite runs them on its writer
 * thread (store_thread.c), one at a time through the synchronous calls,
 * which hands each reply back through an eventfd (store_io_fd, READ): its
 * commits, and their fsync, happen while the loop goes on. */
enum store_call_kind {
    STORE_CALL_USER_CREATE,     /* name, pwhash, now_ms -> id (the user's) */
    STORE_CALL_USER_GET,        /* name -> id, pwhash */
    STORE_CALL_SESSION_CREATE,  /* token_hash, user_id, now_ms, expires_ms */
    STORE_CALL_SESSION_LOOKUP,  /* token_hash, now_ms -> session */
    STORE_CALL_SESSION_TOUCH,   /* token_hash, now_ms */
    STORE_CALL_SESSION_DELETE,  /* token_hash */
    STORE_CALL_EVENT_APPEND,    /* ev -> id, ts_ms, created */
    STORE_CALL_EVENTS_AFTER,    /* user_id, after, limit -> events, n */
    STORE_CALL_EVENTS_ALL_AFTER,/* after, limit -> events, n */
    STORE_CALL_LAST_EVENT_ID,   /* -> id */
    STORE_CALL_ACCOUNT_BALANCE, /* user_id -> cents */
    STORE_CALL_ACCOUNT_MOVE,    /* user_id, delta_cents, id (transfer), now_ms, memo */
    STORE_CALL_TRANSFER_INSERT, /* from_id, to_id, amount_cents, key, now_ms -> id, created */
    STORE_CALL_TRANSFER_GET,    /* id -> transfer */
    STORE_CALL_TRANSFER_SET_STATE, /* id, state, reason, now_ms */
    STORE_CALL_TRANSFER_LOCK,   /* id (inside a transaction) */
    STORE_CALL_TRANSFERS_UNFINISHED, /* -> ids, n */
    STORE_CALL_TRANSFERS_STALE, /* before_ms -> ids, n */
    /* evs[0..nev) as EVENT_APPEND each, in order, in one transaction (txn 0:
     * a transaction of its own; PostgreSQL: one statement, one round trip
     * from its ids to its commit) -> n = nev, and per event
     * ids, ts_each, created_each. All or none are stored. */
    STORE_CALL_EVENTS_APPEND_MANY,
    /* ---- rooms (protocol v1.1). Each changes the room and appends its
     * events (reply events, n: room_id, sender_id, id, ts_ms, type,
     * payload: the payloads given, built by the caller) in one
     * transaction, alone (txn must be 0). An outcome that is the user's
     * mistake is rc STORE_CONSTRAINT with room_err saying which. The room
     * is named by name; reply room_id is its id. ---- */
    STORE_CALL_ROOM_CREATE,     /* user_id, name, topic (NULL: none), now_ms, payload (the
                                 * join), payload2 (the topic event) -> events */
    STORE_CALL_ROOM_JOIN,       /* user_id, name, now_ms, payload -> events (none if a member) */
    STORE_CALL_ROOM_LEAVE,      /* user_id, name, now_ms, payload -> events (none if not one) */
    STORE_CALL_ROOM_TOPIC,      /* user_id, name, topic, now_ms, payload -> events */
    STORE_CALL_ROOM_READ,       /* user_id, name, id -> id (the marker, moved forward only) */
    /* user_id, name (the DM's "@a,b"), to (the other's user name), now_ms,
     * payload, payload2 (the two joins: user_id's, to's) -> room_id, and
     * the two join events if it was made now. */
    STORE_CALL_DM_OPEN,
    /* user_id, name, before (0: none), limit (1..200) -> events (oldest
     * first), more */
    STORE_CALL_ROOM_MESSAGES,
    STORE_CALL_ROOMS_LIST,      /* user_id -> rooms, n_rooms (public rooms and user's DMs) */
    /* Presence leases (a shared store; one instance: n = 0 at once). key
     * (the lease owner: this instance's run), ids_in[0..nids_in) (its
     * users online), expires_ms (the lease's length), notify: renews the
     * owner's leases on those users, drops its others and every lease
     * past its time, and -> ids, names, n: the users under another owner's
     * live lease. notify: the other instances hear of it
     * (store_set_presence_cb) once it is committed. */
    STORE_CALL_PRESENCE_RENEW,
    /* payload (text, at most STORE_BROADCAST_MAX bytes) to every instance
     * (store_set_broadcast_cb), this one included: what ephemeral items
     * cross instances by (typing, read markers). A store of one instance:
     * nothing, OK. */
    STORE_CALL_BROADCAST,
    STORE_CALL_COUNT
};

/* The inputs of a call: only those its kind names are read; strings, ev,
 * evs and ids_in are copied before store_call_async returns. */
struct store_args {
    const char *name, *pwhash, *token_hash, *key, *reason, *memo;
    int64_t user_id, id, now_ms, expires_ms, after, before_ms;
    int64_t from_id, to_id, amount_cents, delta_cents;
    int limit;
    enum transfer_state state;
    const struct store_new_event *ev;
    const struct store_new_event *evs;  /* EVENTS_APPEND_MANY */
    int nev;
    const char *topic, *to, *payload, *payload2;  /* rooms */
    int64_t before;
    const int64_t *ids_in;              /* PRESENCE_RENEW */
    int nids_in, notify;
};

/* Why a room call was refused (rc STORE_CONSTRAINT). */
enum store_room_err {
    STORE_ROOM_OK = 0,
    STORE_ROOM_NOT_FOUND,       /* no such room or user; a DM one is not party to */
    STORE_ROOM_EXISTS,
    STORE_ROOM_TOO_MANY,        /* STORE_ROOMS_PER_USER memberships already */
    STORE_ROOM_NOT_ALLOWED,     /* join, leave or topic of a DM */
    STORE_ROOM_CANNOT_LEAVE,    /* general */
    STORE_ROOM_NOT_MEMBER,
};
#define STORE_GENERAL_ROOM_ID 1
#define STORE_ROOMS_PER_USER  100
#define STORE_ROOMS_LIST_MAX  1000   /* public rooms in a list (plus the DMs) */
#define STORE_UNREAD_MAX      1000

struct store_room {
    int64_t id;
    char    name[72];           /* a public name, or "@a,b" */
    char    topic[260];
    int     dm, joined;
    int64_t members, unread, last_id;
};
/* startup: one membership, or a room without members (user_id 0). */
typedef void (*store_member_cb)(void *arg, int64_t room_id, const char *room, int dm,
                                int64_t user_id, int64_t joined_id, int64_t left_id);
/* Calls cb for every membership of every room but general (whose members
 * are all users): how an instance's room index starts. Synchronous. */
int store_room_members_all(struct store *st, store_member_cb cb, void *arg);

#define STORE_PWHASH_MAX 128    /* crypto_pwhash_STRBYTES */

struct store_reply {
    int rc;                 /* STORE_OK or an error code */
    int64_t id, ts_ms;      /* what the kind's comment names */
    int created;
    int64_t cents;
    struct store_session session;
    struct store_transfer transfer;
    char pwhash[STORE_PWHASH_MAX];
    int n;                              /* rows in events or ids */
    const struct store_event *events;   /* oldest first */
    const int64_t *ids;
    const int64_t *ts_each;             /* EVENTS_APPEND_MANY */
    const int *created_each;
    int room_err;                       /* rooms: enum store_room_err */
    int64_t room_id;
    int more;                           /* ROOM_MESSAGES */
    int n_rooms;
    const struct store_room *rooms;     /* ROOMS_LIST */
    const char (*names)[33];            /* PRESENCE_RENEW: the user of each id */
};
typedef void (*store_done_fn)(void *arg, const struct store_reply *reply);

void store_call_async(struct store *st, int64_t txn, enum store_call_kind kind,
                      const struct store_args *args, store_done_fn done, void *arg);
int64_t store_txn_begin_async(struct store *st, store_done_fn done, void *arg);
void store_txn_end_async(struct store *st, int64_t txn, int commit,
                         store_done_fn done, void *arg);

/* The bound on waiting requests: at most max_requests queued or in flight
 * (beyond that a new request is refused at once) and none older than
 * max_age_ms (answered STORE_UNAVAILABLE then). 0 for either: its default,
 * STORE_ASYNC_MAX_REQUESTS or STORE_ASYNC_MAX_AGE_MS. A queued request
 * holds a copy of its parameters: the memory bound is max_requests times
 * the largest event (a chat body, PROTOCOL.md's limit). */
#define STORE_ASYNC_MAX_REQUESTS 8192
#define STORE_ASYNC_MAX_AGE_MS   5000
void store_async_bound(struct store *st, int max_requests, int64_t max_age_ms);

/* The event loop drives the asynchronous calls: it watches store_io_fd for
 * what store_io_want asks (STORE_IO_READ, STORE_IO_WRITE) and calls
 * store_io_service when the descriptor is ready, and at least every
 * STORE_IO_TICK_MS while store_io_pending (for the age bound, connecting
 * and reconnecting). The descriptor may change after any call here or above
 * (a reconnect): compare it after each and watch the new one. -1: nothing
 * to watch now (PostgreSQL while not connected; SQLite's eventfd is there
 * from store_open to store_free). Connecting
 * and reconnecting never block (PQconnectStart/PQconnectPoll): the first
 * asynchronous call starts them; after a failed attempt the next is a
 * second later. */
enum { STORE_IO_READ = 1, STORE_IO_WRITE = 2 };
#define STORE_IO_TICK_MS 100
int store_io_fd(struct store *st);
/* cb(arg) is called right before the store closes the descriptor it gave
 * (a lost connection, store_free): the loop must stop watching it then, as
 * the number may be reused at once by the next connection. */
void store_io_on_close(struct store *st, void (*cb)(void *arg), void *arg);
int store_io_want(struct store *st);
int store_io_pending(struct store *st);     /* requests queued or in flight */
void store_io_service(struct store *st);
/* From memory, never a round trip: 0 healthy, or 1 degraded with a short
 * reason in reason ("no database connection: ...", "oldest database
 * request waiting 1234 ms") when connecting to the database has failed
 * since the last success or requests wait without a connection, or when
 * the oldest request is older than slow_ms. */
int store_io_health(struct store *st, int64_t slow_ms,
                    char *reason, size_t len);
/* Tests only: 1 keeps SQLite's writer thread from starting another request
 * (one running finishes), 0 lets it go on; nothing on PostgreSQL. */
void store_async_hold(struct store *st, int hold);

/* What a backend provides; store.c dispatches on the location's form. */
struct store_ops {
    const char *name;
    void *(*open)(const char *location, char *err, size_t errlen);
    void (*close)(void *impl);
    int (*user_create)(void *impl, const char *name, const char *pwhash, int64_t now_ms, int64_t *user_id);
    int (*user_get)(void *impl, const char *name, int64_t *user_id, char *pwhash, size_t pwhash_len);
    int (*session_create)(void *impl, const char *token_hash, int64_t user_id, int64_t now_ms, int64_t expires_ms);
    int (*session_lookup)(void *impl, const char *token_hash, int64_t now_ms,
                          struct store_session *out);
    int (*session_touch)(void *impl, const char *token_hash, int64_t now_ms);
    int (*session_delete)(void *impl, const char *token_hash);
    int (*event_append)(void *impl, const struct store_new_event *ev, int64_t *id, int64_t *ts_ms, int *created);
    int (*events_after)(void *impl, int64_t user_id, int64_t after, int limit, store_event_cb cb, void *arg);
    int (*last_event_id)(void *impl, int64_t *id);
    int (*events_all_after)(void *impl, int64_t after, int limit, store_event_cb cb, void *arg);
    int shared;                 /* several instances may write */
    int (*notify_fd)(void *impl);       /* NULL: no notifications */
    int (*notify_drain)(void *impl);
    void (*session_end_cb)(void *impl, void (*cb)(void *arg, const char *token_hash), void *arg);
    void (*presence_cb)(void *impl, void (*cb)(void *arg, const char *owner), void *arg);
    void (*broadcast_cb)(void *impl, void (*cb)(void *arg, const char *payload), void *arg);
    int (*begin)(void *impl);
    int (*commit)(void *impl);
    void (*rollback)(void *impl);
    int (*account_balance)(void *impl, int64_t user_id, int64_t *cents);
    int (*account_move)(void *impl, int64_t user_id, int64_t delta_cents,
                        int64_t transfer_id, int64_t now_ms, const char *memo);
    int (*transfer_insert)(void *impl, int64_t from_id, int64_t to_id, int64_t amount_cents,
                           const char *key, int64_t now_ms, int64_t *id, int *created);
    int (*transfer_get)(void *impl, int64_t id, struct store_transfer *t);
    int (*transfer_set_state)(void *impl, int64_t id, enum transfer_state state,
                              const char *reason, int64_t now_ms);
    int (*transfers_unfinished)(void *impl, void (*cb)(void *arg, int64_t id), void *arg);
    int (*transfer_lock)(void *impl, int64_t id);   /* NULL: nothing to lock */
    int (*transfers_stale)(void *impl, int64_t before_ms, void (*cb)(void *arg, int64_t id), void *arg);
    /* The room calls (STORE_CALL_ROOM_* ... ROOMS_LIST) run synchronously;
     * NULL: only asynchronously (PostgreSQL). What rep points to is the
     * backend's until its next call. */
    int (*room_call)(void *impl, enum store_call_kind kind, const struct store_args *a,
                     struct store_reply *rep);
    int (*room_members_all)(void *impl, store_member_cb cb, void *arg);
    /* Asynchronous calls (NULL: store.c runs the synchronous ones on a
     * writer thread, store_thread.c). txn_begin returns the new transaction's handle. */
    void (*async_call)(void *impl, int64_t txn, enum store_call_kind kind,
                       const struct store_args *args, store_done_fn done, void *arg);
    int64_t (*async_txn_begin)(void *impl, store_done_fn done, void *arg);
    void (*async_txn_end)(void *impl, int64_t txn, int commit, store_done_fn done, void *arg);
    void (*async_bound)(void *impl, int max_requests, int64_t max_age_ms);
    int (*io_fd)(void *impl);
    void (*io_on_close)(void *impl, void (*cb)(void *arg), void *arg);
    int (*io_want)(void *impl);
    int (*io_pending)(void *impl);
    void (*io_service)(void *impl);
    int (*io_health)(void *impl, int64_t slow_ms, char *reason, size_t len);
};

/* For a backend's transfer_get: *state from the text of the row's status
 * column; anything but a state's name is logged and STORE_ERROR, as the
 * schema's CHECK allows none. */
int store_transfer_state_read(const char *text, enum transfer_state *state);

extern const struct store_ops store_sqlite_ops;
extern const struct store_ops store_pg_ops;   /* location postgresql://... or postgres://... */

#endif
