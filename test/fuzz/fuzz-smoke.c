/* fuzz-smoke — runs the fuzz targets without libFuzzer, as part of make test:
 * the seed messages, every truncation and every single-byte substitution of
 * them, then seeded random mutations and generated JSON payloads for a few
 * seconds (CMDIPC_FUZZ_SECONDS, default 5). Prints TAP.
 *
 *   fuzz-smoke                 run
 *   fuzz-smoke --corpus DIR    write the seed corpus (>= 10,000 lines, one
 *                              file each) for libFuzzer and exit */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <uv.h>

#include "fuzz.h"
#include "internal.h"

static const char *const seeds[] = {
    "{\"id\":\"11111111-1111-4111-8111-111111111111\",\"type\":\"execute.command.request\","
    "\"commandId\":\"math.add\",\"request\":{\"a\":2,\"b\":3}}",
    "{\"id\":\"r1\",\"type\":\"execute.command.request\",\"commandId\":\"x\"}",
    "{\"id\":\"r2\",\"type\":\"execute.command.request\",\"commandId\":\"x\",\"request\":\"text\"}",
    "{\"id\":\"r3\",\"type\":\"execute.command.request\",\"commandId\":\"x\",\"request\":null}",
    "{\"id\":\"r4\",\"type\":\"execute.command.request\",\"commandId\":\"x\",\"request\":[1,-2.5e3,"
    "true,false,null,{\"k\":\"\\u00e9\\ud83d\\ude00\"}]}",
    "{\"type\":\"execute.command.response\",\"id\":\"a\",\"thid\":\"r1\",\"response\":{\"ok\":true,"
    "\"result\":5}}",
    "{\"id\":\"a\",\"type\":\"execute.command.response\",\"thid\":\"r1\",\"response\":{\"ok\":true}}",
    "{\"id\":\"a\",\"type\":\"execute.command.response\",\"thid\":\"r1\",\"response\":{\"ok\":false,"
    "\"error\":{\"code\":\"not_found\",\"message\":\"Command \\\"x\\\" not found\"}}}",
    "{\"id\":\"a\",\"type\":\"execute.command.response\",\"thid\":\"r1\",\"response\":{\"ok\":false,"
    "\"error\":{\"code\":\"weird\"}}}",
    "{\"id\":\"e1\",\"type\":\"event\",\"eventId\":\"user.updated\",\"payload\":{\"userId\":42,"
    "\"name\":\"Ada\"}}",
    "{\"id\":\"e2\",\"type\":\"event\",\"eventId\":\"_private\"}",
    "{\"id\":\"l1\",\"type\":\"list.commands.request\"}",
    "{\"id\":\"l2\",\"type\":\"list.commands.response\",\"thid\":\"l1\",\"commands\":[{\"id\":"
    "\"math.add\",\"description\":\"Add\",\"schema\":{\"request\":{\"type\":\"object\"}}},{\"id\":"
    "\"b\"}]}",
    "{\"id\":\"g1\",\"type\":\"register.command.request\",\"command\":{\"id\":\"math.add\","
    "\"description\":\"Add two numbers\",\"schema\":{\"request\":{\"type\":\"object\"},"
    "\"response\":{\"type\":\"number\"}}}}",
    "{\"id\":\"g2\",\"type\":\"register.command.response\",\"thid\":\"g1\",\"response\":{\"ok\":"
    "true}}",
    "{\"id\":\"g3\",\"type\":\"register.command.response\",\"thid\":\"g1\",\"response\":{\"ok\":"
    "false,\"error\":\"duplicate_command\"}}",
    "{\"i\\u0064\":\"esc\",\"type\":\"even\\u0074\",\"eventId\":\"a\\/b\\n\",\"extra\":[[],{}]}",
    "  {\"id\":\"w\" , \"type\" : \"event\" ,\"eventId\":\"e\",\"payload\": -0.0e-0 }  ",
    "{\"id\":\"n\",\"type\":\"event\",\"eventId\":\"e\",\"payload\":[9223372036854775807,"
    "-9223372036854775808,1e308,1e-400,0.5]}",
    "[{\"id\":\"x\",\"type\":\"event\",\"eventId\":\"e\"}]",
    "{\"id\":\"d\",\"id\":\"d2\",\"type\":\"event\",\"eventId\":\"e\"}",
    "{\"id\":\"u\",\"type\":\"unknown.type\"}",
    "{\"id\":\"big\",\"type\":\"event\",\"eventId\":\"e\",\"payload\":{\"a\":1,\"b\":2,\"c\":3,"
    "\"d\":4,\"e\":5,\"f\":6,\"g\":7,\"h\":8,\"i\":9,\"j\":10,\"k\":11,\"l\":12,\"m\":13,\"n\":14,"
    "\"o\":15,\"p\":16,\"q\":17,\"r\":18,\"s\":19,\"t\":20,\"a\":21}}",
};

static const unsigned char interesting[] = {'"', '\\', '{', '}', '[', ']', ':', ',', '0',
                                            '1', '-', '.', 'e', 'u', ' ', 'n', 't', 0,
                                            0x7f, 0x80, 0xc3, 0xed, 0xf0, 0xff, '\n', '/'};

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint64_t next_rand(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static uint64_t inputs;
static void run(const unsigned char *d, size_t n) {
    cmdipc_fuzz_decode(d, n);
    inputs++;
}

/* A random JSON value (text), nested at most depth levels. */
static void gen_value(cmdipc__buf_t *b, int depth) {
    static const char *const atoms[] = {
        "0", "-1", "3.25", "1e5", "12345678901234567", "99999999999999999999", "true",
        "false", "null", "\"\"", "\"s\"", "\"\\u00e9\"", "\"\\ud800\\udc00\"", "\"\\n\\t\"",
        "\"\xc3\xa9\"", "1E-3", "-0", "\"\\u0041\""};
    unsigned r = (unsigned)(next_rand() % (depth > 0 ? 22 : 18));
    if (r < 18) {
        cmdipc__buf_puts(b, atoms[r]);
        return;
    }
    int obj = r >= 20;
    int n = (int)(next_rand() % 4);
    cmdipc__buf_putc(b, obj ? '{' : '[');
    for (int i = 0; i < n; i++) {
        if (i)
            cmdipc__buf_putc(b, ',');
        if (obj) {
            char k[16];
            snprintf(k, sizeof(k), "\"k%u\":", (unsigned)(next_rand() % 6));
            cmdipc__buf_puts(b, k);
        }
        gen_value(b, depth - 1);
    }
    cmdipc__buf_putc(b, obj ? '}' : ']');
}

static const char *const shapes[] = {
    "{\"id\":\"g\",\"type\":\"execute.command.request\",\"commandId\":\"c\",\"request\":%s}",
    "{\"id\":\"g\",\"type\":\"event\",\"eventId\":\"e\",\"payload\":%s}",
    "{\"id\":\"g\",\"type\":\"execute.command.response\",\"thid\":\"t\",\"response\":{\"ok\":true,"
    "\"result\":%s}}",
    "{\"id\":\"g\",\"type\":\"execute.command.response\",\"thid\":\"t\",\"response\":{\"ok\":false,"
    "\"error\":{\"code\":\"timeout\",\"message\":%s}}}",
    "{\"id\":%s,\"type\":\"list.commands.request\"}",
    "{\"id\":\"g\",\"type\":\"register.command.request\",\"command\":{\"id\":\"c\",\"schema\":{"
    "\"request\":%s}}}",
};

static void gen_message(cmdipc__buf_t *out) {
    cmdipc__buf_t v;
    cmdipc__buf_init(&v);
    gen_value(&v, 3);
    cmdipc__buf_putc(&v, '\0');
    const char *shape = shapes[next_rand() % (sizeof(shapes) / sizeof(shapes[0]))];
    const char *at = strstr(shape, "%s");
    out->len = 0;
    cmdipc__buf_put(out, shape, (size_t)(at - shape));
    cmdipc__buf_puts(out, v.data);
    cmdipc__buf_puts(out, at + 2);
    cmdipc__buf_free(&v);
}

static int write_corpus(const char *dir) {
    char path[4096];
    unsigned n = 0;
    cmdipc__buf_t b;
    cmdipc__buf_init(&b);
    mkdir(dir, 0755);
    /* Seeds, their truncations and substitutions, generated messages. */
    for (size_t s = 0; s < sizeof(seeds) / sizeof(seeds[0]); s++) {
        size_t len = strlen(seeds[s]);
        for (size_t cut = 0; cut <= len; cut += (len / 60) + 1) {
            for (size_t k = 0; k < sizeof(interesting); k += 5) {
                snprintf(path, sizeof(path), "%s/seed-%05u", dir, n++);
                FILE *f = fopen(path, "wb");
                if (f == NULL)
                    return 1;
                fwrite(seeds[s], 1, cut, f);
                fputc(interesting[k], f);
                if (cut < len)
                    fwrite(seeds[s] + cut + 1, 1, len - cut - 1, f);
                fclose(f);
            }
        }
    }
    while (n < 12000) {
        gen_message(&b);
        if (next_rand() % 2) /* damage it */
            b.data[next_rand() % b.len] = (char)interesting[next_rand() % sizeof(interesting)];
        snprintf(path, sizeof(path), "%s/gen-%05u", dir, n++);
        FILE *f = fopen(path, "wb");
        if (f == NULL)
            return 1;
        fwrite(b.data, 1, b.len, f);
        fclose(f);
    }
    cmdipc__buf_free(&b);
    printf("wrote %u corpus files to %s\n", n, dir);
    return 0;
}

int main(int argc, char **argv) {
    cmdipc__global_init();
    json_object_seed(1);
    if (argc == 3 && strcmp(argv[1], "--corpus") == 0)
        return write_corpus(argv[2]);
    const char *env = getenv("CMDIPC_FUZZ_SECONDS");
    double seconds = env ? atof(env) : 5.0;
    uint64_t t0 = uv_hrtime();
    unsigned char buf[4096];

    printf("1..1\n");
    fflush(stdout);
    /* Deterministic part: seeds, truncations, substitutions, insertions. */
    for (size_t s = 0; s < sizeof(seeds) / sizeof(seeds[0]); s++) {
        size_t len = strlen(seeds[s]);
        run((const unsigned char *)seeds[s], len);
        for (size_t cut = 0; cut < len; cut++)
            run((const unsigned char *)seeds[s], cut);
        for (size_t at = 0; at < len; at++) {
            for (size_t k = 0; k < sizeof(interesting); k++) {
                memcpy(buf, seeds[s], len);
                buf[at] = interesting[k];
                run(buf, len);
                memcpy(buf, seeds[s], at); /* insertion */
                buf[at] = interesting[k];
                memcpy(buf + at + 1, seeds[s] + at, len - at);
                run(buf, len + 1);
            }
        }
    }
    uint64_t deterministic = inputs;
    /* Random part, for the time left. */
    cmdipc__buf_t b;
    cmdipc__buf_init(&b);
    while ((double)(uv_hrtime() - t0) / 1e9 < seconds) {
        for (int i = 0; i < 200; i++) {
            gen_message(&b);
            run((const unsigned char *)b.data, b.len);
            unsigned muts = (unsigned)(next_rand() % 4) + 1;
            for (unsigned m = 0; m < muts && b.len > 0; m++)
                b.data[next_rand() % b.len] =
                    next_rand() % 3 ? (char)interesting[next_rand() % sizeof(interesting)]
                                    : (char)(next_rand() & 0xff);
            run((const unsigned char *)b.data, b.len);
        }
    }
    cmdipc__buf_free(&b);
    printf("ok 1 - fuzz_decode: %llu inputs cross-checked against jansson (%llu deterministic)\n",
           (unsigned long long)inputs, (unsigned long long)deterministic);
    return 0;
}
