/* journal — see pacd_journal.h. */
#define SD_JOURNAL_SUPPRESS_LOCATION /* CODE_FILE/LINE would all name this file */
#include "pacd_journal.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <syslog.h>
#include <systemd/sd-journal.h>
#include <unistd.h>

#define LINE_MAX_BYTES 2048

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static int to_journal;
static char robot[64], sha256[72], episode[128];

/* JOURNAL_STREAM is "DEVICE:INODE" of the stream systemd connected; it is
 * only ours when stderr still is that stream (a child may inherit the
 * variable with stderr redirected elsewhere). */
static int stderr_is_journal(void)
{
    const char *js = getenv("JOURNAL_STREAM");
    unsigned long long dev, ino;
    struct stat st;
    if (!js || sscanf(js, "%llu:%llu", &dev, &ino) != 2 || fstat(STDERR_FILENO, &st) != 0)
        return 0;
    return (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

void journal_init(void)
{
    pthread_mutex_lock(&mu);
    to_journal = stderr_is_journal();
    pthread_mutex_unlock(&mu);
}

static void copy(char *dst, size_t n, const char *src)
{
    snprintf(dst, n, "%s", src ? src : "");
}

void journal_set_context(const char *robot_name, const char *model_sha256)
{
    pthread_mutex_lock(&mu);
    copy(robot, sizeof robot, robot_name);
    copy(sha256, sizeof sha256, model_sha256);
    pthread_mutex_unlock(&mu);
}

void journal_set_model(const char *model_sha256)
{
    pthread_mutex_lock(&mu);
    copy(sha256, sizeof sha256, model_sha256);
    pthread_mutex_unlock(&mu);
}

void journal_set_episode(const char *episode_id)
{
    pthread_mutex_lock(&mu);
    copy(episode, sizeof episode, episode_id);
    pthread_mutex_unlock(&mu);
}

void journal_printf(int priority, const char *fmt, ...)
{
    char line[LINE_MAX_BYTES];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    size_t n = strlen(line);
    if (n && line[n - 1] == '\n')
        line[--n] = '\0';
    if (priority < LOG_EMERG || priority > LOG_DEBUG)
        priority = LOG_INFO;

    pthread_mutex_lock(&mu);
    int sent = -1;
    if (to_journal) {
        /* sd_journal_sendv: the values are data, never formats */
        static char f[6][LINE_MAX_BYTES + 32]; /* under mu */
        struct iovec iov[6];
        int k = 0;
        snprintf(f[k++], sizeof f[0], "MESSAGE=%s", strncmp(line, "pacd: ", 6) ? line : line + 6);
        snprintf(f[k++], sizeof f[0], "PRIORITY=%d", priority);
        snprintf(f[k++], sizeof f[0], "SYSLOG_IDENTIFIER=pacd");
        if (robot[0])
            snprintf(f[k++], sizeof f[0], "PACD_ROBOT=%s", robot);
        if (sha256[0])
            snprintf(f[k++], sizeof f[0], "PACD_MODEL_SHA256=%s", sha256);
        if (episode[0])
            snprintf(f[k++], sizeof f[0], "PACD_EPISODE_ID=%s", episode);
        for (int i = 0; i < k; i++)
            iov[i] = (struct iovec){.iov_base = f[i], .iov_len = strlen(f[i])};
        sent = sd_journal_sendv(iov, k);
    }
    if (sent < 0)
        fprintf(stderr, "<%d>%s\n", priority, line);
    pthread_mutex_unlock(&mu);
}
