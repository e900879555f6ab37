/* wsi_owner.h — who owns a wsi. Every wsi the client creates carries a
 * struct wsi_owner (embedded in the owning object) as its lws opaque user
 * data. lws sends LWS_CALLBACK_WSI_DESTROY, the last word on any wsi, to the
 * vhost's protocols[0]; wsi_owner_protocol() is that protocol and tells the
 * owner its wsi is gone, so no owner ever keeps a dangling wsi pointer.
 * An owner that lets go of a wsi early calls wsi_owner_detach(). */
#ifndef CHAT_WSI_OWNER_H
#define CHAT_WSI_OWNER_H

#include <libwebsockets.h>

struct wsi_owner {
    void (*gone)(struct wsi_owner *o, struct lws *wsi);
};

/* The opaque user data of wsi as an owner, or NULL once detached. */
struct wsi_owner *wsi_owner_of(struct lws *wsi);
/* Forget wsi: no more callbacks reach its owner. Use inside a callback that
 * already ends the wsi (closed, connection error). */
void wsi_owner_release(struct lws *wsi);
/* Forget wsi and have lws close it soon (safe from any context). */
void wsi_owner_detach(struct lws *wsi);
/* release if closing (inside a callback that ends it), else detach. */
void wsi_owner_let_go(struct lws *wsi, int closing);

/* Must be protocols[0] of the vhost. */
const struct lws_protocols *wsi_owner_protocol(void);

#endif
