/* wsi_owner.c — protocols[0]: forwards LWS_CALLBACK_WSI_DESTROY to the
 * wsi's owner. Nothing binds to this protocol; it only hears lifecycle. */
#include "wsi_owner.h"

struct wsi_owner *wsi_owner_of(struct lws *wsi)
{
    return wsi ? (struct wsi_owner *)lws_get_opaque_user_data(wsi) : NULL;
}

void wsi_owner_release(struct lws *wsi)
{
    if (wsi)
        lws_set_opaque_user_data(wsi, NULL);
}

void wsi_owner_detach(struct lws *wsi)
{
    if (!wsi)
        return;
    lws_set_opaque_user_data(wsi, NULL);
    lws_set_timeout(wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
}

static int owner_cb(struct lws *wsi, enum lws_callback_reasons reason,
                    void *user, void *in, size_t len)
{
    (void)user;
    (void)in;
    (void)len;
    if (reason == LWS_CALLBACK_WSI_DESTROY) {
        struct wsi_owner *o = wsi_owner_of(wsi);
        lws_set_opaque_user_data(wsi, NULL);
        if (o && o->gone)
            o->gone(o, wsi);
    }
    return 0;
}

static const struct lws_protocols protocol = {
    .name = "chat-lifecycle",
    .callback = owner_cb,
};

const struct lws_protocols *wsi_owner_protocol(void)
{
    return &protocol;
}

void wsi_owner_let_go(struct lws *wsi, int closing)
{
    if (closing)
        wsi_owner_release(wsi);
    else
        wsi_owner_detach(wsi);
}
