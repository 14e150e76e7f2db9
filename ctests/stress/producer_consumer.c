/* Cross-thread frees: producers allocate batches of mixed-size blocks and hand them to
 * consumers, which verify, sometimes realloc (a remote block), and free them. Consumers send
 * small "receipt" blocks back that the producers free, so both directions are remote. */
#include "../common.h"
#include <pthread.h>

#define PRODUCERS 2
#define CONSUMERS 2
#define BATCH 64

struct item {
    unsigned char *p;
    size_t n;
    uint64_t tag;
};

struct batch {
    struct batch *next;
    int count;
    int producer;
    struct item items[BATCH];
};

struct queue {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct batch *head, *tail;
    int closed;
    long depth;
};

static struct queue to_consumer[CONSUMERS];
static struct queue receipts[PRODUCERS];
static long batches_per_producer;

static void q_init(struct queue *q) {
    pthread_mutex_init(&q->mu, NULL);
    pthread_cond_init(&q->cv, NULL);
    q->head = q->tail = NULL;
    q->closed = 0;
    q->depth = 0;
}

/* bound < 0: unbounded (the receipt queues must be, or a producer blocked on a full consumer
 * queue and a consumer blocked on a full receipt queue would wait for each other). */
static void q_push(struct queue *q, struct batch *b, long bound) {
    b->next = NULL;
    pthread_mutex_lock(&q->mu);
    /* bounded: do not let producers run away with memory */
    while (bound >= 0 && q->depth >= bound && !q->closed)
        pthread_cond_wait(&q->cv, &q->mu);
    if (q->tail)
        q->tail->next = b;
    else
        q->head = b;
    q->tail = b;
    q->depth++;
    pthread_cond_broadcast(&q->cv);
    pthread_mutex_unlock(&q->mu);
}

/* blocking pop; NULL when closed and empty */
static struct batch *q_pop(struct queue *q, int block) {
    pthread_mutex_lock(&q->mu);
    while (q->head == NULL && !q->closed && block)
        pthread_cond_wait(&q->cv, &q->mu);
    struct batch *b = q->head;
    if (b) {
        q->head = b->next;
        if (!q->head)
            q->tail = NULL;
        q->depth--;
        pthread_cond_broadcast(&q->cv);
    }
    pthread_mutex_unlock(&q->mu);
    return b;
}

static void q_close(struct queue *q) {
    pthread_mutex_lock(&q->mu);
    q->closed = 1;
    pthread_cond_broadcast(&q->cv);
    pthread_mutex_unlock(&q->mu);
}

static size_t item_size(uint64_t *s) {
    uint64_t r = rng_next(s);
    if (r % 2048 == 0)
        return (4u << 20) + 100;
    unsigned lg = 3 + (unsigned)((r >> 10) % 15);
    size_t lo = (size_t)1 << lg;
    return lo + (size_t)((r >> 24) % lo);
}

static void stamp(struct item *it) {
    size_t n = it->n < 4096 ? it->n : 4096; /* head is enough for the big ones */
    fill_pattern(it->p, n, it->tag);
    it->p[it->n - 1] = pat_byte(it->tag, it->n - 1);
}

static void verify(const struct item *it) {
    size_t n = it->n < 4096 ? it->n : 4096;
    CHECK_PATTERN(it->p, n, it->tag);
    CHECK(it->p[it->n - 1] == pat_byte(it->tag, it->n - 1), "tail byte of %p (n %zu) corrupt",
          (void *)it->p, it->n);
}

static void drain_receipts(int id, int block) {
    struct batch *r;
    while ((r = q_pop(&receipts[id], block)) != NULL) {
        for (int i = 0; i < r->count; i++) {
            verify(&r->items[i]);
            free(r->items[i].p);
        }
        free(r);
        block = 0;
    }
}

static void *producer(void *arg) {
    int id = (int)(uintptr_t)arg;
    uint64_t s = 1234567 + (uint64_t)id * 7919;
    uint64_t tag = (uint64_t)id << 48;
    for (long k = 0; k < batches_per_producer; k++) {
        struct batch *b = malloc(sizeof *b);
        CHECK(b != NULL, "malloc batch");
        b->count = BATCH;
        b->producer = id;
        for (int i = 0; i < BATCH; i++) {
            struct item *it = &b->items[i];
            it->n = item_size(&s);
            it->tag = ++tag;
            it->p = (i % 7 == 0) ? calloc(1, it->n) : malloc(it->n);
            CHECK(it->p != NULL, "alloc %zu", it->n);
            stamp(it);
        }
        q_push(&to_consumer[k % CONSUMERS], b, 64);
        drain_receipts(id, 0);
    }
    return NULL;
}

static void *consumer(void *arg) {
    int id = (int)(uintptr_t)arg;
    uint64_t s = 99991 + (uint64_t)id;
    uint64_t tag = ((uint64_t)id << 48) | ((uint64_t)1 << 47);
    struct batch *b;
    while ((b = q_pop(&to_consumer[id], 1)) != NULL) {
        struct batch *rc = malloc(sizeof *rc);
        CHECK(rc != NULL, "malloc receipt batch");
        rc->count = 0;
        rc->producer = b->producer;
        for (int i = 0; i < b->count; i++) {
            struct item *it = &b->items[i];
            verify(it);
            uint64_t r = rng_next(&s);
            if (r % 5 == 0) {
                /* realloc a block that another thread allocated */
                size_t m = (r >> 8) % 2 ? it->n * 2 + 1 : it->n / 3 + 1;
                unsigned char *q = realloc(it->p, m);
                CHECK(q != NULL, "realloc(%zu -> %zu)", it->n, m);
                size_t keep = (it->n < m ? it->n : m);
                CHECK_PATTERN(q, keep < 4096 ? keep : 4096, it->tag);
                free(q);
            } else {
                free(it->p);
            }
            if (i % 4 == 0) {
                struct item *ri = &rc->items[rc->count++];
                ri->n = 16 + (r >> 40) % 300;
                ri->tag = ++tag;
                ri->p = malloc(ri->n);
                CHECK(ri->p != NULL, "malloc receipt");
                stamp(ri);
            }
        }
        int pid = b->producer;
        free(b); /* the batch itself was allocated by the producer too */
        q_push(&receipts[pid], rc, -1);
    }
    return NULL;
}

int main(void) {
    assert_oxmalloc();
    batches_per_producer = 1500 * ctests_scale();
    for (int i = 0; i < CONSUMERS; i++)
        q_init(&to_consumer[i]);
    for (int i = 0; i < PRODUCERS; i++)
        q_init(&receipts[i]);
    pthread_t p[PRODUCERS], c[CONSUMERS];
    for (int i = 0; i < CONSUMERS; i++)
        CHECK(pthread_create(&c[i], NULL, consumer, (void *)(uintptr_t)i) == 0, "create");
    for (int i = 0; i < PRODUCERS; i++)
        CHECK(pthread_create(&p[i], NULL, producer, (void *)(uintptr_t)i) == 0, "create");
    for (int i = 0; i < PRODUCERS; i++)
        pthread_join(p[i], NULL);
    for (int i = 0; i < CONSUMERS; i++)
        q_close(&to_consumer[i]);
    for (int i = 0; i < CONSUMERS; i++)
        pthread_join(c[i], NULL);
    /* receipts left over: freed by main, a third thread */
    for (int i = 0; i < PRODUCERS; i++) {
        q_close(&receipts[i]);
        drain_receipts(i, 0);
    }
    printf("producer_consumer: ok (%d x %ld batches of %d)\n", PRODUCERS, batches_per_producer,
           BATCH);
    return 0;
}
