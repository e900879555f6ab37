/* store.h — chatd's storage interface. Callers see an opaque struct store and
 * these functions; each backend (store_sqlite.c now, PostgreSQL later) fills a
 * struct store_ops. Every write is committed before the function returns, so
 * an id handed back is durable and may be announced to clients. */
#ifndef CHAT_STORE_H
#define CHAT_STORE_H

#include <stddef.h>
#include <stdint.h>

enum store_rc {
    STORE_OK = 0,
    STORE_EXISTS,      /* unique key already taken */
    STORE_NOT_FOUND,
    STORE_ERROR,       /* backend failure; details logged by the backend */
};

/* An event to append. recipient_id 0 means every user (chat rooms are open to
 * all); otherwise only that user's feed has it. */
struct store_new_event {
    const char *type;           /* "chat", later "alert" */
    int64_t     recipient_id;
    int64_t     sender_id;
    const char *client_msg_id;  /* may be NULL; (sender_id, client_msg_id) is unique */
    const char *payload;        /* JSON object text with the type's fields */
    int64_t     ts_ms;
};

struct store_event {
    int64_t     id;
    int64_t     ts_ms;
    const char *type;
    const char *payload;        /* valid only during the callback */
};
/* Return non-zero to stop the iteration early. */
typedef int (*store_event_cb)(void *arg, const struct store_event *ev);

struct store;

/* Opens (creating and migrating if needed) the store at location.
 * On failure returns NULL and writes a reason into err. */
struct store *store_open(const char *location, char *err, size_t errlen);
void store_free(struct store *st);

int store_user_create(struct store *st, const char *name, const char *pwhash,
                      int64_t now_ms, int64_t *user_id);
/* Copies the stored password hash into pwhash (size pwhash_len). */
int store_user_get(struct store *st, const char *name, int64_t *user_id,
                   char *pwhash, size_t pwhash_len);

/* token_hash is the hex SHA-256 of the bearer token; tokens are never stored. */
int store_session_create(struct store *st, const char *token_hash, int64_t user_id,
                         int64_t now_ms, int64_t expires_ms);
/* STORE_NOT_FOUND if unknown or expired at now_ms. user gets the user name. */
int store_session_lookup(struct store *st, const char *token_hash, int64_t now_ms,
                         int64_t *user_id, char *user, size_t user_len);

/* Appends an event. If (sender_id, client_msg_id) exists, nothing is stored,
 * *created is 0 and *id and *ts_ms are the first event's. */
int store_event_append(struct store *st, const struct store_new_event *ev,
                       int64_t *id, int64_t *ts_ms, int *created);
/* Calls cb for user_id's events with id > after, oldest first, at most limit. */
int store_events_after(struct store *st, int64_t user_id, int64_t after, int limit,
                       store_event_cb cb, void *arg);
/* Highest event id in the store (0 if none). */
int store_last_event_id(struct store *st, int64_t *id);

/* What a backend provides; store.c dispatches on the location's form. */
struct store_ops {
    const char *name;
    void *(*open)(const char *location, char *err, size_t errlen);
    void (*close)(void *impl);
    int (*user_create)(void *impl, const char *name, const char *pwhash, int64_t now_ms, int64_t *user_id);
    int (*user_get)(void *impl, const char *name, int64_t *user_id, char *pwhash, size_t pwhash_len);
    int (*session_create)(void *impl, const char *token_hash, int64_t user_id, int64_t now_ms, int64_t expires_ms);
    int (*session_lookup)(void *impl, const char *token_hash, int64_t now_ms, int64_t *user_id, char *user, size_t user_len);
    int (*event_append)(void *impl, const struct store_new_event *ev, int64_t *id, int64_t *ts_ms, int *created);
    int (*events_after)(void *impl, int64_t user_id, int64_t after, int limit, store_event_cb cb, void *arg);
    int (*last_event_id)(void *impl, int64_t *id);
};

extern const struct store_ops store_sqlite_ops;

#endif
