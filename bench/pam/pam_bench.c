/*
 * pam_bench: N successful logins through libpam in one process, each timed.
 *
 * Usage: pam_bench CONFDIR SERVICE USER CODES_FILE N [RHOST]
 *
 * Every login is what sshd does for one connection: pam_start_confdir (libpam reads
 * CONFDIR/SERVICE instead of /etc/pam.d/SERVICE, and dlopens the module), PAM_RHOST and
 * PAM_TTY set, pam_authenticate, pam_end (which dlcloses the module). The conversation answers
 * every prompt with the next line of CODES_FILE, so each login needs one fresh code; a login
 * that does not return PAM_SUCCESS stops the run (exit 1), since its time would mean nothing.
 *
 * Output, on stdout:
 *   rss_before_kib N      peak RSS (getrusage ru_maxrss) before the first pam_start
 *   rss_first_kib N       peak RSS after the first login's pam_authenticate (before pam_end)
 *   rss_last_kib N        peak RSS after the last login
 *   threads_first N       Threads: of /proc/self/status after the first pam_authenticate
 *   threads_max N         the most seen after any pam_authenticate (before its pam_end)
 *   prompts N             prompts answered in all
 *   login I START_NS AUTH_NS END_NS   one line per login: pam_start_confdir and the two
 *                                     pam_set_item calls; pam_authenticate; pam_end
 *
 * Built by scripts/bench-pam: gcc -O2 -Wall -Wextra -o pam_bench pam_bench.c -lpam
 */
#define _GNU_SOURCE
#include <errno.h>
#include <security/pam_appl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

struct answers {
    char **codes;
    size_t count;
    size_t next;
    size_t prompts;
    int exhausted;
};

static int conv(int num_msg, const struct pam_message **msg, struct pam_response **resp,
                void *appdata) {
    struct answers *a = appdata;
    struct pam_response *r = calloc((size_t)num_msg, sizeof *r);
    if (r == NULL)
        return PAM_BUF_ERR;
    for (int i = 0; i < num_msg; i++) {
        switch (msg[i]->msg_style) {
        case PAM_PROMPT_ECHO_OFF:
        case PAM_PROMPT_ECHO_ON:
            if (a->next >= a->count) {
                a->exhausted = 1;
                for (int j = 0; j < i; j++)
                    free(r[j].resp);
                free(r);
                return PAM_CONV_ERR;
            }
            r[i].resp = strdup(a->codes[a->next++]);
            a->prompts++;
            if (r[i].resp == NULL) {
                for (int j = 0; j < i; j++)
                    free(r[j].resp);
                free(r);
                return PAM_BUF_ERR;
            }
            break;
        default: /* PAM_ERROR_MSG, PAM_TEXT_INFO: shown to the user, nothing to answer */
            break;
        }
    }
    *resp = r;
    return PAM_SUCCESS;
}

static long long now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static long peak_rss_kib(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss; /* KiB on Linux */
}

static int threads_now(void) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    int n = -1;
    if (f == NULL)
        return -1;
    while (fgets(line, sizeof line, f) != NULL)
        if (sscanf(line, "Threads: %d", &n) == 1)
            break;
    fclose(f);
    return n;
}

static char **read_codes(const char *path, size_t *count) {
    FILE *f = fopen(path, "r");
    char line[128];
    size_t cap = 1024, n = 0;
    char **codes = malloc(cap * sizeof *codes);
    if (f == NULL || codes == NULL) {
        fprintf(stderr, "pam_bench: %s: %s\n", path, strerror(errno));
        exit(2);
    }
    while (fgets(line, sizeof line, f) != NULL) {
        line[strcspn(line, "\r\n")] = '\0';
        if (line[0] == '\0')
            continue;
        if (n == cap) {
            cap *= 2;
            codes = realloc(codes, cap * sizeof *codes);
            if (codes == NULL)
                exit(2);
        }
        codes[n] = strdup(line);
        if (codes[n] == NULL)
            exit(2);
        n++;
    }
    fclose(f);
    *count = n;
    return codes;
}

int main(int argc, char **argv) {
    if (argc < 6 || argc > 7) {
        fprintf(stderr, "usage: %s CONFDIR SERVICE USER CODES_FILE N [RHOST]\n", argv[0]);
        return 2;
    }
    const char *confdir = argv[1], *service = argv[2], *user = argv[3];
    long n = strtol(argv[5], NULL, 10);
    const char *rhost = argc == 7 ? argv[6] : "203.0.113.7";
    struct answers a = {0};
    a.codes = read_codes(argv[4], &a.count);
    if (n <= 0 || (size_t)n > a.count) {
        fprintf(stderr, "pam_bench: %ld logins asked, %zu codes in %s\n", n, a.count, argv[4]);
        return 2;
    }
    long long *start_ns = calloc((size_t)n, sizeof *start_ns);
    long long *auth_ns = calloc((size_t)n, sizeof *auth_ns);
    long long *end_ns = calloc((size_t)n, sizeof *end_ns);
    if (start_ns == NULL || auth_ns == NULL || end_ns == NULL)
        return 2;
    /* With PAM_BENCH_MARK set, access() calls on these names bracket pam_authenticate, so
     * that an strace of a run can tell the module's system calls from libpam's and ours. */
    int mark = getenv("PAM_BENCH_MARK") != NULL;

    struct pam_conv pc = {conv, &a};
    /* With PAM_BENCH_KEEP_LOADED set, one more handle stays open for the whole run, so the
     * module stays mapped and each login's pam_start/pam_end only counts references: the
     * difference to a normal run is what loading the module afresh costs each login. */
    pam_handle_t *keep = NULL;
    if (getenv("PAM_BENCH_KEEP_LOADED") != NULL &&
        pam_start_confdir(service, user, &pc, confdir, &keep) != PAM_SUCCESS) {
        fprintf(stderr, "pam_bench: pam_start_confdir for PAM_BENCH_KEEP_LOADED failed\n");
        return 1;
    }
    long rss_before = peak_rss_kib(), rss_first = 0;
    int threads_first = -1, threads_max = -1;

    for (long i = 0; i < n; i++) {
        pam_handle_t *h = NULL;
        long long t0 = now_ns();
        int rc = pam_start_confdir(service, user, &pc, confdir, &h);
        if (rc != PAM_SUCCESS) {
            fprintf(stderr, "pam_bench: pam_start_confdir(%s, %s): %s\n", service, confdir,
                    pam_strerror(h, rc));
            return 1;
        }
        pam_set_item(h, PAM_RHOST, rhost);
        pam_set_item(h, PAM_TTY, "ssh");
        if (mark)
            access("PAM_BENCH_AUTH_BEGIN", F_OK);
        long long t1 = now_ns();
        rc = pam_authenticate(h, 0);
        long long t2 = now_ns();
        if (mark)
            access("PAM_BENCH_AUTH_END", F_OK);
        if (rc != PAM_SUCCESS) {
            fprintf(stderr, "pam_bench: login %ld of %ld for %s: pam_authenticate: %s%s\n", i + 1,
                    n, user, pam_strerror(h, rc), a.exhausted ? " (out of codes)" : "");
            pam_end(h, rc);
            return 1;
        }
        int threads = threads_now();
        if (i == 0) {
            rss_first = peak_rss_kib();
            threads_first = threads;
        }
        if (threads > threads_max)
            threads_max = threads;
        long long t3 = now_ns();
        pam_end(h, rc);
        long long t4 = now_ns();
        /* The /proc read between t2 and t3 is not part of the login. */
        start_ns[i] = t1 - t0;
        auth_ns[i] = t2 - t1;
        end_ns[i] = t4 - t3;
    }

    if (keep != NULL)
        pam_end(keep, PAM_SUCCESS);
    printf("rss_before_kib %ld\n", rss_before);
    printf("rss_first_kib %ld\n", rss_first);
    printf("rss_last_kib %ld\n", peak_rss_kib());
    printf("threads_first %d\n", threads_first);
    printf("threads_max %d\n", threads_max);
    printf("prompts %zu\n", a.prompts);
    for (long i = 0; i < n; i++)
        printf("login %ld %lld %lld %lld\n", i + 1, start_ns[i], auth_ns[i], end_ns[i]);
    return 0;
}
