/*
 * Long answers off the request threads.  libmicrohttpd gives each of its
 * threads a share of the connections for good, so a thread busy rendering a
 * page holds up every other request of its share: under a crawler's flood of
 * pages a force, a probe of the API or a cached answer waited behind tens of
 * renders (bench/abuse).  So a request that takes long (a page of the web UI)
 * is a job: its connection is suspended, the job waits in a FIFO queue, one of
 * a few threads of its own runs it, and the connection is resumed to send what
 * it made.  The request threads keep answering everything else at once, and
 * only `threads` renders are ever in memory together.
 *
 * The web has two such pools: pages, and reads of the API too slow for a
 * request thread (listing.c, stream.c, search.c).
 *
 * Bounds: at most WWW_JOBS_QUEUE jobs wait; a request beyond is refused
 * (www_jobs_submit fails, the caller answers 503).  Stopping runs no more
 * jobs: those still queued are resumed cancelled, the running ones finish.
 * A job is the caller's: the pool only links it, and never touches it after
 * resuming its connection (the request thread may free it at once).
 */
#include "www/internal.h"

#include <pthread.h>
#include <stdlib.h>

struct www_jobs {
    pthread_mutex_t lock;
    pthread_cond_t more;
    pthread_t *threads;
    size_t n_threads;
    struct www_job *head, *tail;
    size_t queued;
    size_t taken; /* jobs queued since the start */
    bool stopping;
};

static void *run_cb(void *arg)
{
    struct www_jobs *q = arg;
    www_lower_priority();
    pthread_mutex_lock(&q->lock);
    for (;;) {
        while (q->head == NULL && !q->stopping)
            pthread_cond_wait(&q->more, &q->lock);
        if (q->stopping)
            break;
        struct www_job *job = q->head;
        q->head = job->next;
        if (q->head == NULL)
            q->tail = NULL;
        q->queued--;
        pthread_mutex_unlock(&q->lock);
        job->run(job);
        MHD_resume_connection(job->conn); /* the job is the request thread's from here */
        pthread_mutex_lock(&q->lock);
    }
    pthread_mutex_unlock(&q->lock);
    return NULL;
}

struct www_jobs *www_jobs_start(size_t threads)
{
    struct www_jobs *q = xcalloc(1, sizeof *q);
    pthread_mutex_init(&q->lock, NULL);
    pthread_cond_init(&q->more, NULL);
    q->threads = xcalloc(threads, sizeof *q->threads);
    for (size_t i = 0; i < threads; i++) {
        if (pthread_create(&q->threads[q->n_threads], NULL, run_cb, q) != 0)
            break;
        q->n_threads++;
    }
    if (q->n_threads == 0)
        log_error("www: no thread for long answers: they are answered on the request threads");
    return q;
}

size_t www_jobs_threads(const struct www_jobs *q)
{
    return q != NULL ? q->n_threads : 0;
}

size_t www_jobs_taken(struct www_jobs *q)
{
    if (q == NULL)
        return 0;
    pthread_mutex_lock(&q->lock);
    size_t n = q->taken;
    pthread_mutex_unlock(&q->lock);
    return n;
}

int www_jobs_submit(struct www_jobs *q, struct www_job *job, struct MHD_Connection *c)
{
    if (q == NULL || q->n_threads == 0) {
        job->cancelled = false;
        job->run(job);
        return 1;
    }
    pthread_mutex_lock(&q->lock);
    if (q->stopping || q->queued >= WWW_JOBS_QUEUE) {
        pthread_mutex_unlock(&q->lock);
        return -1;
    }
    /* suspended before any thread can take it, so that its resume never comes first */
    MHD_suspend_connection(c);
    job->conn = c;
    job->cancelled = false;
    job->next = NULL;
    if (q->tail != NULL)
        q->tail->next = job;
    else
        q->head = job;
    q->tail = job;
    q->queued++;
    q->taken++;
    pthread_cond_signal(&q->more);
    pthread_mutex_unlock(&q->lock);
    return 0;
}

enum MHD_Result www_slow_submit(struct www *w, struct www_job *job, struct MHD_Connection *c,
                                struct www_job **slot)
{
    /* queued, or refused; never run here, as without threads for slow reads there is no
       allowance (www_start), and nothing slow to hand over */
    if (www_jobs_submit(w->slow, job, c) == 0) {
        *slot = job;
        return MHD_YES;
    }
    job->free(job);
    return www_send_busy(c, "the master is busy: too many slow reads are waiting; try again later");
}

void www_jobs_stop(struct www_jobs *q)
{
    if (q == NULL)
        return;
    pthread_mutex_lock(&q->lock);
    bool again = q->stopping;
    q->stopping = true;
    struct www_job *left = q->head;
    q->head = q->tail = NULL;
    q->queued = 0;
    pthread_cond_broadcast(&q->more);
    pthread_mutex_unlock(&q->lock);
    /* n_threads never changes after the start: request threads read it unlocked */
    for (size_t i = 0; i < q->n_threads && !again; i++)
        pthread_join(q->threads[i], NULL);
    while (left != NULL) {
        struct www_job *next = left->next;
        left->cancelled = true;
        MHD_resume_connection(left->conn);
        left = next;
    }
}

void www_jobs_free(struct www_jobs *q)
{
    if (q == NULL)
        return;
    www_jobs_stop(q);
    pthread_cond_destroy(&q->more);
    pthread_mutex_destroy(&q->lock);
    free(q->threads);
    free(q);
}
