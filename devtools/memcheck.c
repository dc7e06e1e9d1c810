/*
 * memcheck: a guest workload that checks itself.
 *
 * Fills --mem-mb MiB of anonymous memory with a pseudo-random pattern, then loops: each pass reads,
 * checks and writes back the first --hot-mb MiB (the hot set), and every --verify-every passes it
 * also checks the whole region. Word i of the pattern is splitmix64(seed, i), so any word's
 * expected value can be recomputed without a copy. One line per pass on stdout, flushed:
 *
 *   FILEMEM-MEMCHECK-START mb=N hot_mb=H verify_every=K seed=S seed_from=arg|uuid|time pass_delay_ms=D
 *   FILEMEM-MEMCHECK-FILLED mb=N ms=T seed=S
 *   FILEMEM-MEMCHECK pass=P ms=T verified=0|1 OK
 *   FILEMEM-MEMCHECK pass=P ms=T verified=0|1 CORRUPT bad_words=B
 *
 * Built static (gcc -O2 -static) into the test image's initramfs as /bin/memcheck, where /init runs
 * it for filemem.workload=memcheck; it runs natively too. Exit status: 0 when --passes passes all
 * came out OK, 1 when any pass found corruption, 2 for bad arguments, 3 when memory is unavailable.
 * Without --seed the seed comes from the SMBIOS system UUID (libvirt sets it to the domain UUID),
 * so every guest writes a different pattern, else from the clock.
 *
 * Hidden test options: --corrupt-after-pass=P flips a bit of word --corrupt-word=W (default: the
 * last word, which only verifying passes read unless the hot set is everything) after pass P.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define MIB (1024ULL * 1024ULL)
#define WORDS_PER_MIB (MIB / sizeof(uint64_t))
#define MAX_MEM_MB (1ULL << 24) /* 16 TiB: keeps byte counts far from overflowing */
#define MAX_DELAY_MS 86400000ULL /* a day */
#define GOLDEN_GAMMA 0x9E3779B97F4A7C15ULL
#define DEFAULT_UUID_FILE "/sys/class/dmi/id/product_uuid"

enum { EXIT_OK = 0, EXIT_CORRUPT = 1, EXIT_USAGE = 2, EXIT_NOMEM = 3 };

static uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

/* The splitmix64 stream seeded with `seed`, output number index + 1. */
static inline uint64_t expected(uint64_t seed, uint64_t index)
{
    return mix64(seed + (index + 1) * GOLDEN_GAMMA);
}

/* mix64(FNV-1a-64(text)): mirrored by filemem.devtools.test_image.memcheck_seed_from_uuid. */
static uint64_t seed_from_text(const char *text)
{
    uint64_t hash = 0xCBF29CE484222325ULL;
    for (const unsigned char *c = (const unsigned char *)text; *c; c++) {
        hash ^= *c;
        hash *= 0x100000001B3ULL;
    }
    return mix64(hash);
}

static uint64_t now_ns(clockid_t clock)
{
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static uint64_t ms_since(uint64_t start_ns)
{
    return (now_ns(CLOCK_MONOTONIC) - start_ns + 500000ULL) / 1000000ULL;
}

/* The UUID lower-cased with surrounding whitespace dropped; 0 if unreadable or empty. */
static int read_uuid(const char *path, char *out, size_t size)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return 0;
    size_t n = fread(out, 1, size - 1, f);
    fclose(f);
    out[n] = '\0';
    while (n > 0 && (out[n - 1] == '\n' || out[n - 1] == ' ' || out[n - 1] == '\r'
                     || out[n - 1] == '\t'))
        out[--n] = '\0';
    for (size_t i = 0; i < n; i++)
        if (out[i] >= 'A' && out[i] <= 'Z')
            out[i] = (char)(out[i] - 'A' + 'a');
    return n > 0;
}

static void usage(FILE *out)
{
    fprintf(out,
            "usage: memcheck --mem-mb=N --hot-mb=H --verify-every=K [--seed=S]\n"
            "                [--pass-delay-ms=D] [--passes=P] [--uuid-file=PATH]\n"
            "Fill N MiB with a per-seed pattern, then loop: re-touch (read, check, write back)\n"
            "the first H MiB each pass and check all N MiB every K passes; one line per pass.\n"
            "  --seed=S           pattern seed (default: from --uuid-file, else the clock)\n"
            "  --uuid-file=PATH   default " DEFAULT_UUID_FILE "\n"
            "  --pass-delay-ms=D  sleep between passes (default 0)\n"
            "  --passes=P         stop after P passes (default 0: forever)\n");
}

__attribute__((format(printf, 1, 2))) static void fail(const char *fmt, ...)
{
    va_list args;
    va_start(args, fmt);
    fputs("FILEMEM-MEMCHECK-ERROR ", stderr);
    vfprintf(stderr, fmt, args);
    fputc('\n', stderr);
    fflush(stderr);
    va_end(args);
}

/* A decimal number in [min, max]; anything else (sign, junk, overflow) is refused. */
static int parse_u64(const char *name, const char *text, uint64_t min, uint64_t max,
                     uint64_t *out)
{
    char *end = NULL;
    errno = 0;
    unsigned long long value = text[0] >= '0' && text[0] <= '9' ? strtoull(text, &end, 10) : 0;
    if (end == NULL || *end != '\0' || errno != 0 || value < min || value > max) {
        fail("bad --%s=%s", name, text);
        return 0;
    }
    *out = value;
    return 1;
}

struct options {
    uint64_t mem_mb, hot_mb, verify_every, seed, pass_delay_ms, passes;
    uint64_t corrupt_after_pass, corrupt_word;
    int have_mem, have_hot, have_verify, have_seed, have_corrupt_word;
    const char *uuid_file;
};

static int parse_options(int argc, char **argv, struct options *o)
{
    enum { MEM = 1, HOT, VERIFY, SEED, DELAY, PASSES, UUID_FILE, CORRUPT_AFTER, CORRUPT_WORD, HELP };
    static const struct option longopts[] = {
        {"mem-mb", required_argument, NULL, MEM},
        {"hot-mb", required_argument, NULL, HOT},
        {"verify-every", required_argument, NULL, VERIFY},
        {"seed", required_argument, NULL, SEED},
        {"pass-delay-ms", required_argument, NULL, DELAY},
        {"passes", required_argument, NULL, PASSES},
        {"uuid-file", required_argument, NULL, UUID_FILE},
        {"corrupt-after-pass", required_argument, NULL, CORRUPT_AFTER},
        {"corrupt-word", required_argument, NULL, CORRUPT_WORD},
        {"help", no_argument, NULL, HELP},
        {NULL, 0, NULL, 0},
    };
    memset(o, 0, sizeof(*o));
    o->uuid_file = DEFAULT_UUID_FILE;
    int opt;
    int ok = 1;
    while ((opt = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (opt) {
        case MEM: ok &= o->have_mem = parse_u64("mem-mb", optarg, 1, MAX_MEM_MB, &o->mem_mb); break;
        case HOT: ok &= o->have_hot = parse_u64("hot-mb", optarg, 1, MAX_MEM_MB, &o->hot_mb); break;
        case VERIFY:
            ok &= o->have_verify = parse_u64("verify-every", optarg, 1, UINT64_MAX, &o->verify_every);
            break;
        case SEED: ok &= o->have_seed = parse_u64("seed", optarg, 0, UINT64_MAX, &o->seed); break;
        case DELAY: ok &= parse_u64("pass-delay-ms", optarg, 0, MAX_DELAY_MS, &o->pass_delay_ms); break;
        case PASSES: ok &= parse_u64("passes", optarg, 0, UINT64_MAX, &o->passes); break;
        case UUID_FILE: o->uuid_file = optarg; break;
        case CORRUPT_AFTER:
            ok &= parse_u64("corrupt-after-pass", optarg, 1, UINT64_MAX, &o->corrupt_after_pass);
            break;
        case CORRUPT_WORD:
            ok &= o->have_corrupt_word = parse_u64("corrupt-word", optarg, 0, UINT64_MAX, &o->corrupt_word);
            break;
        case HELP: usage(stdout); exit(EXIT_OK);
        default: ok = 0; break;
        }
    }
    if (optind < argc) {
        fail("unexpected argument %s", argv[optind]);
        ok = 0;
    }
    if (ok && !(o->have_mem && o->have_hot && o->have_verify)) {
        fail("--mem-mb, --hot-mb and --verify-every are required");
        ok = 0;
    }
    if (ok && o->hot_mb > o->mem_mb) {
        fail("--hot-mb must be <= --mem-mb");
        ok = 0;
    }
    if (ok && o->have_corrupt_word && o->corrupt_word >= o->mem_mb * WORDS_PER_MIB) {
        fail("--corrupt-word is past the end of --mem-mb");
        ok = 0;
    }
    if (!ok)
        usage(stderr);
    return ok;
}

int main(int argc, char **argv)
{
    struct options o;
    if (!parse_options(argc, argv, &o))
        return EXIT_USAGE;
    setvbuf(stdout, NULL, _IOLBF, 0);

    const char *seed_from = "arg";
    char uuid[128];
    if (!o.have_seed) {
        if (read_uuid(o.uuid_file, uuid, sizeof(uuid))) {
            o.seed = seed_from_text(uuid);
            seed_from = "uuid";
        } else {
            o.seed = mix64(now_ns(CLOCK_REALTIME) ^ ((uint64_t)getpid() << 32));
            seed_from = "time";
        }
    }
    const uint64_t words = o.mem_mb * WORDS_PER_MIB;
    const uint64_t hot_words = o.hot_mb * WORDS_PER_MIB;
    if (!o.have_corrupt_word)
        o.corrupt_word = words - 1;
    printf("FILEMEM-MEMCHECK-START mb=%llu hot_mb=%llu verify_every=%llu seed=%llu seed_from=%s "
           "pass_delay_ms=%llu\n",
           (unsigned long long)o.mem_mb, (unsigned long long)o.hot_mb,
           (unsigned long long)o.verify_every, (unsigned long long)o.seed, seed_from,
           (unsigned long long)o.pass_delay_ms);
    fflush(stdout);

    uint64_t start = now_ns(CLOCK_MONOTONIC);
    void *region = mmap(NULL, o.mem_mb * MIB, PROT_READ | PROT_WRITE,
                        MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (region == MAP_FAILED) {
        fail("mmap of %llu MiB failed: %s", (unsigned long long)o.mem_mb, strerror(errno));
        return EXIT_NOMEM;
    }
    uint64_t *mem = region;
    /* volatile for the hot set's write-back: storing the value just read must really happen. */
    volatile uint64_t *touch = mem;
    const uint64_t seed = o.seed;

    for (uint64_t i = 0; i < words; i++)
        mem[i] = expected(seed, i);
    printf("FILEMEM-MEMCHECK-FILLED mb=%llu ms=%llu seed=%llu\n", (unsigned long long)o.mem_mb,
           (unsigned long long)ms_since(start), (unsigned long long)seed);
    fflush(stdout);

    int status = EXIT_OK;
    for (uint64_t pass = 1; o.passes == 0 || pass <= o.passes; pass++) {
        start = now_ns(CLOCK_MONOTONIC);
        uint64_t bad = 0;
        for (uint64_t i = 0; i < hot_words; i++) {
            uint64_t value = touch[i];
            bad += value != expected(seed, i);
            touch[i] = value; /* the value read, so corruption stays visible to later passes */
        }
        const int verified = pass % o.verify_every == 0;
        if (verified)
            for (uint64_t i = hot_words; i < words; i++)
                bad += mem[i] != expected(seed, i);
        const unsigned long long ms = (unsigned long long)ms_since(start);
        if (bad == 0) {
            printf("FILEMEM-MEMCHECK pass=%llu ms=%llu verified=%d OK\n",
                   (unsigned long long)pass, ms, verified);
        } else {
            printf("FILEMEM-MEMCHECK pass=%llu ms=%llu verified=%d CORRUPT bad_words=%llu\n",
                   (unsigned long long)pass, ms, verified, (unsigned long long)bad);
            status = EXIT_CORRUPT;
        }
        fflush(stdout);
        if (pass == o.corrupt_after_pass)
            touch[o.corrupt_word] ^= 1ULL << (o.corrupt_word % 64);
        if (o.pass_delay_ms > 0) {
            struct timespec delay = {
                .tv_sec = (time_t)(o.pass_delay_ms / 1000),
                .tv_nsec = (long)(o.pass_delay_ms % 1000) * 1000000L,
            };
            while (nanosleep(&delay, &delay) != 0 && errno == EINTR) {
            }
        }
    }
    munmap(region, o.mem_mb * MIB);
    return status;
}
