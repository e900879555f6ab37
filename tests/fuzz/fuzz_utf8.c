/* fuzz_utf8.c — proto_utf8_valid against two independent checks: glibc's
 * decoder (mbrtowc in the C.UTF-8 locale; glibc accepts code points above
 * U+10FFFF and 5- and 6-byte forms, so the decoded value is range-checked
 * too) and the code-point decoder in fuzz.h. Any disagreement is a finding. */
#include "fuzz.h"
#include "protocol.h"

#include <locale.h>
#include <wchar.h>

static int glibc_utf8(const unsigned char *s, size_t n)
{
    mbstate_t st;
    memset(&st, 0, sizeof st);
    size_t i = 0;
    while (i < n) {
        wchar_t wc;
        size_t k = mbrtowc(&wc, (const char *)s + i, n - i, &st);
        if (k == (size_t)-1 || k == (size_t)-2)
            return 0;
        if (k == 0)
            k = 1;                          /* a NUL byte is one character */
        if ((uint32_t)wc > 0x10FFFF || ((uint32_t)wc >= 0xD800 && (uint32_t)wc <= 0xDFFF))
            return 0;
        i += k;
    }
    return 1;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    if (!setlocale(LC_CTYPE, "C.UTF-8")) {
        fprintf(stderr, "fuzz_utf8: the C.UTF-8 locale is missing\n");
        abort();
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_input(data, size);
    int got = proto_utf8_valid((const char *)data, size);
    int mine = oracle_utf8(data, size);
    int glibc = glibc_utf8(data, size);
    FUZZ_CHECK(mine == glibc, "the two oracles disagree (decoder %d, mbrtowc %d)", mine, glibc);
    FUZZ_CHECK(got == mine, "proto_utf8_valid = %d, expected %d", got, mine);
    /* Valid input stays valid when cut at a character boundary, and the
     * body rule is the UTF-8 rule plus the length for NUL-free input. */
    if (got && size && !memchr(data, '\0', size)) {
        char *s = fuzz_cstr(data, size);
        FUZZ_CHECK(proto_body_valid(s) == (size <= PROTO_BODY_MAX), "proto_body_valid disagrees");
        free(s);
    }
    return 0;
}
