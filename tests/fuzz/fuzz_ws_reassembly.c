/* fuzz_ws_reassembly.c — ws_reasm (the client's WebSocket message
 * reassembly) against a model. Input: two bytes of cap (0..4095), one of
 * the piece limit (1..16), then pieces: a byte k; bit 0x80 marks the piece
 * final; k & 0x70 == 0x70 gives a length from the network that must be
 * refused (SIZE_MAX, 2^62, one past the room left) with a pointer to one
 * byte; otherwise the next k & 0x3f input bytes. Oracle: a message is whole
 * exactly when its final piece comes with every piece within both limits,
 * its content is the concatenation; once over a limit everything is refused
 * until reset, which a byte 0x7f requests. */
#include "fuzz.h"
#include "ws_reasm.h"

struct model {
    char buf[4096];
    size_t len, cap;
    unsigned pieces, max_pieces;
    int in_message, dropping;
};

static enum ws_reasm_result model_add(struct model *m, const void *in, size_t len, int final)
{
    if (m->dropping)
        return WS_REASM_TOO_BIG;
    if (!m->in_message) {
        m->in_message = 1;
        m->len = 0;
        m->pieces = 0;
    }
    m->pieces++;
    if ((unsigned __int128)m->len + len > m->cap || m->pieces > m->max_pieces) {
        m->dropping = 1;
        return WS_REASM_TOO_BIG;
    }
    memcpy(m->buf + m->len, in, len);
    m->len += len;
    if (!final)
        return WS_REASM_MORE;
    m->in_message = 0;
    return WS_REASM_WHOLE;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_input(data, size);
    if (size < 3)
        return 0;
    struct model m = { .cap = ((size_t)data[0] << 8 | data[1]) & 0xfff,
                       .max_pieces = 1u + data[2] % 16 };
    struct ws_reasm *r = ws_reasm_new(m.cap, m.max_pieces);
    FUZZ_CHECK(r, "ws_reasm_new failed");
    for (size_t i = 3; i < size;) {
        unsigned k = data[i++];
        if (k == 0x7f) {
            ws_reasm_reset(r);
            m.in_message = m.dropping = 0;
            m.len = 0;
            continue;
        }
        const void *src = data + (i < size ? i : size - 1);
        size_t len;
        if ((k & 0x70) == 0x70) {
            size_t used = m.in_message && !m.dropping ? m.len : 0;
            len = k & 1 ? SIZE_MAX : k & 2 ? (size_t)1 << 62 : m.cap - used + 1;
        } else {
            len = k & 0x3f;
            if (len > size - i)
                len = size - i;
            i += len;
        }
        int final = (k & 0x80) != 0;
        enum ws_reasm_result want = model_add(&m, src, len, final);
        enum ws_reasm_result got = ws_reasm_add(r, src, len, final);
        FUZZ_CHECK(got == want, "piece of %zu (final %d): got %d, expected %d", len, final,
                   (int)got, (int)want);
        FUZZ_CHECK(ws_reasm_idle(r) == !m.in_message, "idle disagrees");
        if (got == WS_REASM_WHOLE) {
            size_t n;
            const char *msg = ws_reasm_message(r, &n);
            FUZZ_CHECK(n == m.len && memcmp(msg, m.buf, n) == 0, "message differs");
        }
    }
    ws_reasm_free(r);
    return 0;
}
