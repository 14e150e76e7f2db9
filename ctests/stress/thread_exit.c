/* Thread-exit traps (reliability.md section 4): allocator use from the places that run while
 * a thread dies, after or around the allocator's own per-thread cleanup:
 *   - a pthread key destructor (key made before any allocation, and one made after) that
 *     mallocs, frees, frees a block from main, hands a new block to main, and re-arms itself
 *     so it runs again in a later destructor round;
 *   - a C++-style thread_local destructor (__cxa_thread_atexit_impl) that frees and mallocs;
 *   - a thread whose only allocator call is one free() inside a destructor;
 *   - pthread_exit() from a nested call with live blocks.
 * Blocks handed over are checked and freed by main. */
#include "../common.h"
#include <pthread.h>

extern int __cxa_thread_atexit_impl(void (*)(void *), void *, void *);
extern void *__dso_handle;

#define ROUNDS 300

static pthread_key_t key_early, key_late;
static pthread_mutex_t handed_mu = PTHREAD_MUTEX_INITIALIZER;
static void *handed[ROUNDS * 16];
static size_t handed_n[ROUNDS * 16];
static int nhanded;

static void hand_to_main(size_t n) {
    unsigned char *p = malloc(n);
    CHECK(p != NULL, "malloc(%zu) during thread exit", n);
    fill_pattern(p, n, n);
    pthread_mutex_lock(&handed_mu);
    CHECK(nhanded < ROUNDS * 16, "too many handed blocks");
    handed[nhanded] = p;
    handed_n[nhanded++] = n;
    pthread_mutex_unlock(&handed_mu);
}

struct tsd_val {
    int is_static; /* not a heap block: do not free */
    int rearm;     /* how many more destructor rounds to ask for */
    void *from_main;
    size_t from_main_n;
};

static void key_dtor(void *v, pthread_key_t key) {
    struct tsd_val *t = v;
    /* malloc + free while the thread is dying */
    for (int i = 0; i < 20; i++) {
        void *p = malloc(16 + i * 100);
        CHECK(p != NULL, "malloc in key destructor");
        memset(p, i, 16 + i * 100);
        free(p);
    }
    void *big = malloc(300000);
    CHECK(big != NULL, "large malloc in key destructor");
    free(big);
    if (t->from_main) {
        CHECK_PATTERN(t->from_main, t->from_main_n, 7);
        free(t->from_main);
        t->from_main = NULL;
    }
    hand_to_main(40);
    hand_to_main(5000);
    if (t->rearm > 0) {
        t->rearm--;
        /* a value set during destruction makes glibc run the destructor again */
        pthread_setspecific(key, t);
    } else if (!t->is_static) {
        free(t);
    }
}

static void dtor_early(void *v) { key_dtor(v, key_early); }
static void dtor_late(void *v) { key_dtor(v, key_late); }

static void tls_dtor(void *arg) {
    free(arg); /* a block made by this thread */
    hand_to_main(100);
}

static void tls_dtor_free_only(void *arg) { free(arg); }

static void install(pthread_key_t key, int rearm, void *from_main, size_t n) {
    struct tsd_val *t = malloc(sizeof *t);
    CHECK(t != NULL, "malloc");
    t->is_static = 0;
    t->rearm = rearm;
    t->from_main = from_main;
    t->from_main_n = n;
    CHECK(pthread_setspecific(key, t) == 0, "pthread_setspecific");
}

struct arg {
    int kind;
    void *from_main;
    size_t n;
    struct tsd_val sval;
};

static void nested_exit(int depth) {
    void *p = malloc(64 * (size_t)(depth + 1));
    CHECK(p != NULL, "malloc");
    if (depth < 3)
        nested_exit(depth + 1);
    else
        pthread_exit(NULL); /* p and its parents' blocks are leaked; must not crash */
    free(p);
}

static void *thread_main(void *va) {
    struct arg *a = va;
    switch (a->kind) {
    case 0: /* both keys, rearmed, plus a block from main freed in the destructor */
        install(key_early, 2, a->from_main, a->n);
        install(key_late, 1, NULL, 0);
        break;
    case 1: { /* thread_local-style destructor */
        void *p = malloc(128);
        CHECK(p != NULL, "malloc");
        CHECK(__cxa_thread_atexit_impl(tls_dtor, p, &__dso_handle) == 0, "cxa_thread_atexit");
        void *q = malloc(4000);
        free(q);
        if (a->from_main)
            free(a->from_main);
        break;
    }
    case 2: /* the only allocator call of this thread: a free() while it dies */
        CHECK(__cxa_thread_atexit_impl(tls_dtor_free_only, a->from_main, &__dso_handle) == 0,
              "cxa_thread_atexit");
        break;
    case 3: /* no allocator call in the body: the key destructor is the first user, and its
             * first call is a free() of main's block */
        a->sval.is_static = 1;
        a->sval.rearm = 0;
        a->sval.from_main = a->from_main;
        a->sval.from_main_n = a->n;
        CHECK(pthread_setspecific(key_late, &a->sval) == 0, "setspecific");
        break;
    case 4:
        nested_exit(0);
        break;
    }
    return NULL;
}

int main(void) {
    /* before the first allocation of the program (as far as we can tell) */
    CHECK(pthread_key_create(&key_early, dtor_early) == 0, "pthread_key_create");
    assert_oxmalloc();
    void *warm = malloc(10);
    free(warm);
    CHECK(pthread_key_create(&key_late, dtor_late) == 0, "pthread_key_create");

    int rounds = ROUNDS;
    for (int r = 0; r < rounds; r++) {
        struct arg a[5];
        pthread_t th[5];
        for (int k = 0; k < 5; k++) {
            a[k].kind = k;
            a[k].n = 50 + (size_t)(r % 7) * 1000;
            a[k].from_main = malloc(a[k].n);
            CHECK(a[k].from_main != NULL, "malloc");
            fill_pattern(a[k].from_main, a[k].n, 7);
            if (k == 4) {
                free(a[k].from_main);
                a[k].from_main = NULL;
            }
            CHECK(pthread_create(&th[k], NULL, thread_main, &a[k]) == 0, "pthread_create");
        }
        for (int k = 0; k < 5; k++)
            pthread_join(th[k], NULL);
        /* from_main: freed by kinds 0, 2, 3 in destructors, by kind 1 in its body */
    }
    pthread_mutex_lock(&handed_mu);
    for (int i = 0; i < nhanded; i++) {
        CHECK_PATTERN(handed[i], handed_n[i], handed_n[i]);
        free(handed[i]);
    }
    int got = nhanded;
    nhanded = 0;
    pthread_mutex_unlock(&handed_mu);
    /* kind 0: early key runs 3 times, late key 2 times, 2 blocks each; kind 1: 1 block;
     * kind 3: 2 blocks */
    int want = rounds * ((3 + 2) * 2 + 1 + 2);
    CHECK(got == want, "main received %d blocks from dying threads, expected %d (did a "
          "destructor round not run?)", got, want);
    printf("thread_exit: ok (%d rounds, %d blocks handed over)\n", rounds, got);
    return 0;
}
