/* fuzz_http_body.c — body_buf (the client's HTTP response accumulation)
 * against a shadow copy. Input: two bytes of cap (0..4095), then ops: a byte
 * k; k < 0xf0 appends the next k % 97 input bytes (fewer at the end); k >=
 * 0xf0 appends a length from the network that must be refused (SIZE_MAX,
 * 2^63-1, 2^32-1, one past the room left...) with a pointer to a byte or two,
 * so a wrapped check reads out of bounds under ASan. Oracle: an append
 * succeeds exactly when the body stays within cap, a refusal changes nothing,
 * the content equals the shadow and stays NUL-terminated. */
#include "fuzz.h"
#include "body_buf.h"

static size_t huge_len(unsigned k, size_t used, size_t cap)
{
    switch (k % 6) {
    case 0: return SIZE_MAX;
    case 1: return SIZE_MAX - used;
    case 2: return (size_t)INT64_MAX;
    case 3: return 0xffffffffu > cap - used ? 0xffffffffu : cap - used + 1;
    case 4: return cap - used + 1;
    default: return SIZE_MAX - used + 1;     /* wraps a used + len sum to 0 */
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_input(data, size);
    if (size < 2)
        return 0;
    size_t cap = ((size_t)data[0] << 8 | data[1]) & 0xfff, i = 2, used = 0;
    char shadow[4096];
    struct body_buf *b = body_buf_new(cap);
    FUZZ_CHECK(b, "body_buf_new failed");
    while (i < size) {
        unsigned k = data[i++];
        size_t len;
        const void *src = data + (i < size ? i : size - 1);
        if (k >= 0xf0) {
            len = huge_len(k, used, cap);
            if (len == 0)
                continue;               /* SIZE_MAX - 0 + 1 */
        } else {
            len = k % 97;
            if (len > size - i)
                len = size - i;
            i += len;
        }
        enum body_buf_result r = body_buf_append(b, src, len);
        int fits = len <= cap - used;
        FUZZ_CHECK(fits ? r == BODY_BUF_OK : r == BODY_BUF_TOO_LARGE,
                   "append of %zu with %zu of %zu used gave %d", len, used, cap, (int)r);
        if (r == BODY_BUF_OK) {
            memcpy(shadow + used, src, len);
            used += len;
        }
        FUZZ_CHECK(body_buf_len(b) == used, "length %zu, expected %zu", body_buf_len(b), used);
        FUZZ_CHECK(memcmp(body_buf_data(b), shadow, used) == 0, "content differs");
        FUZZ_CHECK(body_buf_data(b)[used] == '\0', "not NUL-terminated");
    }
    body_buf_free(b);
    return 0;
}
