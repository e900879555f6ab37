/* relay.h — a TCP relay the test controls, standing between clients and chatd
 * to play a misbehaving network: it listens on a free 127.0.0.1 port and
 * forwards every connection to 127.0.0.1:target, byte for byte, until told to
 * cut connections (at once, or after N more bytes towards the client, i.e. in
 * the middle of a response) or to stall (stop forwarding and accepting, so
 * bytes pile up in the kernel, as behind a dead gateway), or to refuse
 * WebSocket upgrades like a proxy that does not do WebSockets.
 *
 * It runs in its own thread with its own poll loop, so it keeps forwarding
 * while the test waits on child processes. Every control call takes effect
 * before it returns. */
#ifndef E2E_RELAY_H
#define E2E_RELAY_H

struct relay;

struct relay_stats {
    long accepted;      /* connections accepted */
    long cuts;          /* connections the relay cut on purpose */
    long open;          /* connections open now */
    long long up;       /* bytes forwarded client -> server */
    long long down;     /* bytes forwarded server -> client */
    long refused;       /* WebSocket upgrades answered 403 */
};

/* Listens on a free port; fails the test (cmocka) if it cannot. */
struct relay *relay_start(int target_port);
int  relay_port(const struct relay *r);
/* "http://127.0.0.1:PORT" for the client's --server. */
const char *relay_url(const struct relay *r);
/* Changes where new connections go (e.g. chatd restarted on another port). */
void relay_set_target(struct relay *r, int target_port);

/* Closes every open connection on both sides now. rst: abort with a TCP
 * reset (SO_LINGER 0) instead of an orderly FIN. Returns how many. */
int  relay_cut_all(struct relay *r, int rst);
/* Arms a mid-response cut: every connection open now, and every one accepted
 * while armed, forwards at most nbytes more bytes towards the client and is
 * then closed on both sides (FIN) — whatever it was in the middle of. The
 * relay disarms itself after ncuts such cuts (ncuts <= 0: stays armed until
 * relay_disarm). */
void relay_cut_after(struct relay *r, long nbytes, int ncuts);
void relay_disarm(struct relay *r);
enum relay_stall_mode {
    RELAY_FLOW = 0,      /* forward everything (resume) */
    RELAY_STALL,         /* stop forwarding both ways and stop accepting:
                            new connections wait in the backlog */
    RELAY_STALL_DOWN,    /* requests still reach the server, but nothing comes
                            back: answers pile up as behind a stuck gateway */
};
void relay_stall(struct relay *r, enum relay_stall_mode mode);

enum relay_upgrade_mode {
    RELAY_UPGRADES_PASS = 0,   /* relay them like anything else */
    RELAY_UPGRADES_403,        /* answer "HTTP/1.1 403 Forbidden", then close */
    RELAY_UPGRADES_CLOSE,      /* close the connection without an answer */
};
/* Refusing (403 or CLOSE): every connection accepted from now on has the
 * head of its first request read before anything is forwarded; if it has
 * an "Upgrade: websocket" header the relay refuses it, as a proxy without
 * WebSocket support does; any other request is forwarded as usual. PASS:
 * connections accepted later are relayed untouched again. */
void relay_refuse_upgrades(struct relay *r, enum relay_upgrade_mode mode);

void relay_get_stats(struct relay *r, struct relay_stats *st);
/* Closes everything, joins the thread, frees r. NULL is a no-op. */
void relay_stop(struct relay *r);

#endif
