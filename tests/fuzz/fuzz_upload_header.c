/*
 * fuzz_upload_header.c - libFuzzer target for examples/upload_header.c.
 *
 * Beyond "does not crash" (ASan catches any read outside the input, which
 * libFuzzer hands over in a buffer of exactly its size), it checks what a
 * successful parse promises, and that the decoded header, written back as
 * JSON, reads back the same. Build and run with tests/fuzz/run.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "upload_header.h"

/* abort() so that libFuzzer saves the input that broke the invariant. */
#define CHECK(cond) do { \
        if (!(cond)) { \
            fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, \
                    __LINE__, #cond); \
            abort(); \
        } \
    } while (0)

/* Append s[0 .. len) as a JSON string: quotes, backslashes and control
 * characters escaped, everything else (valid UTF-8) as it is. */
static size_t put_string(char *out, size_t n, const char *s, size_t len)
{
    size_t i;

    out[n++] = '"';
    for (i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];

        if (c == '"' || c == '\\') {
            out[n++] = '\\';
            out[n++] = (char)c;
        } else if (c < 0x20) {
            n += (size_t)sprintf(out + n, "\\u%04x", c);
        } else {
            out[n++] = (char)c;
        }
    }
    out[n++] = '"';
    return n;
}

/* Write h back as JSON and check that it parses to the same header. */
static void check_round_trip(const struct upload_header *h)
{
    /* A 255-byte name of control characters takes 6 bytes a byte. */
    static char json[2 * UPLOAD_FILENAME_SIZE * 6];
    struct upload_header again;
    const char *why = NULL;
    size_t n = 0;

    json[n++] = '{';
    if (h->present & UPLOAD_HAVE_CMD) {
        n += (size_t)sprintf(json + n, "\"cmd\": ");
        n = put_string(json, n, h->cmd, strlen(h->cmd));
        n += (size_t)sprintf(json + n, ", ");
    }
    if (h->present & UPLOAD_HAVE_FILENAME) {
        n += (size_t)sprintf(json + n, "\"filename\": ");
        n = put_string(json, n, h->filename, h->filename_len);
        n += (size_t)sprintf(json + n, ", ");
    }
    if (h->present & UPLOAD_HAVE_FILESIZE)
        n += (size_t)sprintf(json + n, "\"filesize\": %lld, ", h->filesize);
    n += (size_t)sprintf(json + n, "\"end\": null}");

    CHECK(upload_header_parse(json, n, &again, &why) == 0);
    CHECK(again.present == h->present);
    CHECK(strcmp(again.cmd, h->cmd) == 0);
    CHECK(again.filename_len == h->filename_len);
    CHECK(memcmp(again.filename, h->filename, h->filename_len) == 0);
    CHECK(again.filesize == h->filesize);
}

static void check_header(const struct upload_header *h)
{
    const char *why = NULL;

    CHECK(memchr(h->cmd, '\0', sizeof h->cmd) != NULL);
    CHECK(h->filename_len < sizeof h->filename);
    CHECK(h->filename[h->filename_len] == '\0');
    CHECK((h->present & ~(UPLOAD_HAVE_CMD | UPLOAD_HAVE_FILENAME |
                          UPLOAD_HAVE_FILESIZE)) == 0);
    CHECK((h->present & UPLOAD_HAVE_CMD) || h->cmd[0] == '\0');
    CHECK((h->present & UPLOAD_HAVE_FILENAME) || h->filename_len == 0);
    CHECK(h->present & UPLOAD_HAVE_FILESIZE ? h->filesize >= 0
                                            : h->filesize == -1);
    /* A decoded name is always valid UTF-8, whatever else is wrong. */
    if (upload_filename_ok(h->filename, h->filename_len, &why) != 0)
        CHECK(strcmp(why, "filename is not valid UTF-8") != 0);
    check_round_trip(h);
}

/* Whatever upload_filename_ok() accepts is a single, harmless component. */
static void check_filename(const char *name, size_t len)
{
    size_t i;

    if (upload_filename_ok(name, len, NULL) != 0)
        return;
    CHECK(len >= 1 && len <= 255);
    CHECK(!(len == 1 && name[0] == '.'));
    CHECK(!(len == 2 && name[0] == '.' && name[1] == '.'));
    for (i = 0; i < len; i++) {
        unsigned char c = (unsigned char)name[i];

        CHECK(c != '/' && c >= 0x20 && c != 0x7F);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *buf = (const char *)data;
    struct upload_header h;
    const char *why = NULL;

    if (upload_header_parse(buf, size, &h, &why) == 0) {
        check_header(&h);
    } else {
        CHECK(why != NULL && why[0] != '\0');
        CHECK(h.error_offset <= size);
    }
    check_filename(buf, size);
    return 0;
}
