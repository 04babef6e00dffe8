#include "pacd_auth.h"

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <syslog.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>
#include <zmq.h>

#include "pacd_cert.h"
#include "pacd_journal.h"
#include "rt_clock.h"

#define AUTH_KEY_NAME 64
#define AUTH_MAX_KEYS 1024        /* per directory */
#define AUTH_RECENT 8             /* denials remembered for log rate limiting */
#define AUTH_LOG_QUIET_NS (30LL * 1000000000LL)

enum { DIR_OPERATOR = 0, DIR_MONITOR, DIR_PUBLISHER, N_DIRS };
enum { REASON_UNKNOWN = 0, REASON_ROLE };

static const char *const DOMAIN_NAMES[AUTH_N_DOMAINS] = {"telemetry", "control", "camera",
                                                         "state"};
static const char *const DIR_KEYS[N_DIRS] = {"operator_keys", "monitor_keys", "publisher_keys"};
static const char *const DIR_ROLES[N_DIRS] = {"operator", "monitor", "publisher"};

/* which directories grant which endpoint (bit i = DIR i) */
static const unsigned DOMAIN_GRANTS[AUTH_N_DOMAINS] = {
    [AUTH_DOMAIN_TELEMETRY] = 1u << DIR_OPERATOR | 1u << DIR_MONITOR,
    [AUTH_DOMAIN_CONTROL] = 1u << DIR_OPERATOR,
    [AUTH_DOMAIN_CAMERA] = 1u << DIR_PUBLISHER,
    [AUTH_DOMAIN_STATE] = 1u << DIR_PUBLISHER,
};

typedef struct {
    uint8_t key[CERT_KEY_BYTES];
    char name[AUTH_KEY_NAME];     /* file name, printable */
} key_entry_t;

typedef struct {
    const char *path;             /* "" = not configured */
    key_entry_t *keys;
    int n;
    int loaded, stable, unreadable;
    struct timespec mtime, ctime;
    ino_t ino;
    dev_t dev;
} keydir_t;

struct auth {
    const config_t *cfg;
    int curve, insecure;
    cert_t server;
    void *ctx, *zap;
    void *mon[AUTH_N_DOMAINS];      /* PAIR ends of the monitors auth runs */
    keydir_t dirs[N_DIRS];
    pthread_t thread;
    int started;
    atomic_int stop;
    _Atomic uint64_t admitted, unknown_key, wrong_role, handshake_failed;
    struct {
        uint8_t key[CERT_KEY_BYTES];
        int domain, reason;
        int64_t t;
    } recent[AUTH_RECENT];
    int recent_next;
};

static void count(_Atomic uint64_t *c) { atomic_fetch_add_explicit(c, 1, memory_order_relaxed); }

const char *auth_domain_name(auth_domain_t d)
{
    return (unsigned)d < AUTH_N_DOMAINS ? DOMAIN_NAMES[d] : "unknown";
}

auth_endpoint_kind_t auth_endpoint_kind(const char *ep)
{
    if (!strncmp(ep, "ipc://", 6))
        return ep[6] == '@' ? AUTH_EP_LOOPBACK : AUTH_EP_IPC; /* abstract: any local user */
    if (strncmp(ep, "tcp://", 6))
        return AUTH_EP_OTHER;
    const char *h = ep + 6;
    const char *colon = strrchr(h, ':');
    if (!colon)
        return AUTH_EP_NETWORK;
    size_t n = (size_t)(colon - h);
    if (n == 5 && !strncmp(h, "[::1]", 5))
        return AUTH_EP_LOOPBACK;
    if ((n == 9 && !strncmp(h, "localhost", 9)) || (n == 2 && !strncmp(h, "lo", 2)))
        return AUTH_EP_LOOPBACK;
    /* 127.a.b.c written as a dotted quad */
    unsigned a, b, c, d;
    char tail;
    char host[64];
    if (n >= sizeof host)
        return AUTH_EP_NETWORK;
    memcpy(host, h, n);
    host[n] = '\0';
    if (sscanf(host, "%u.%u.%u.%u%c", &a, &b, &c, &d, &tail) == 4 && a == 127 && b < 256 &&
        c < 256 && d < 256)
        return AUTH_EP_LOOPBACK;
    return AUTH_EP_NETWORK;
}

/* ---- allow-list directories ---- */

static void printable(char *dst, size_t n, const char *src)
{
    size_t i = 0;
    for (; src[i] && i + 1 < n; i++)
        dst[i] = (src[i] > 0x20 && src[i] < 0x7f) ? src[i] : '?';
    dst[i] = '\0';
}

static int ts_eq(struct timespec a, struct timespec b)
{
    return a.tv_sec == b.tv_sec && a.tv_nsec == b.tv_nsec;
}

/* Re-read dir when it changed since the last scan (or the last scan was
 * too close to a change to trust the timestamps). 0, or -errno when the
 * directory cannot be read (then it grants nothing). Warnings about single
 * files are printed once per change of the directory. */
static int keydir_refresh(keydir_t *kd, const char *what, char *err, size_t errlen)
{
    if (!kd->path[0])
        return 0;
    struct stat st;
    int e = 0;
    if (stat(kd->path, &st) != 0)
        e = errno;
    else if (!S_ISDIR(st.st_mode))
        e = ENOTDIR;
    if (!e && (st.st_mode & 022)) {
        snprintf(err, errlen, "[security] %s = %s has mode %04o: group or others could add "
                 "keys to it; run chmod go-w %s", what, kd->path,
                 (unsigned)(st.st_mode & 07777), kd->path);
        e = EPERM;
    } else if (e) {
        snprintf(err, errlen, "[security] %s = %s: cannot read the directory: %s; create it "
                 "(mkdir -m 755) and put the public certificates of the allowed clients in it",
                 what, kd->path, strerror(e));
    }
    if (e) {
        if (!kd->unreadable && kd->loaded)
            journal_printf(LOG_WARNING, "pacd: %s: every key it held is revoked\n", err);
        kd->unreadable = 1;
        kd->n = 0;
        kd->loaded = 1;
        kd->stable = 0;
        return -e;
    }
    if (kd->loaded && kd->stable && !kd->unreadable && ts_eq(st.st_mtim, kd->mtime) &&
        ts_eq(st.st_ctim, kd->ctime) && st.st_ino == kd->ino && st.st_dev == kd->dev)
        return 0;
    int64_t now = rt_clock_unix_ns();
    DIR *dir = opendir(kd->path);
    if (!dir) {
        e = errno;
        snprintf(err, errlen, "[security] %s = %s: cannot read the directory: %s", what,
                 kd->path, strerror(e));
        kd->n = 0;
        kd->unreadable = kd->loaded = 1;
        kd->stable = 0;
        return -e;
    }
    int warn = !kd->loaded || !ts_eq(st.st_mtim, kd->mtime) || !ts_eq(st.st_ctim, kd->ctime);
    int n = 0;
    struct dirent *de;
    while ((de = readdir(dir)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        char shown[AUTH_KEY_NAME];
        printable(shown, sizeof shown, de->d_name);
        size_t len = strlen(de->d_name);
        if (len > 7 && !strcmp(de->d_name + len - 7, "_secret")) {
            if (warn)
                journal_printf(LOG_WARNING, "pacd: %s/%s is a secret key file: an allow-list "
                        "holds public certificates only; move it away (its owner's key is "
                        "exposed)\n", kd->path, shown);
            continue;
        }
        char path[CONFIG_PATH + 300];
        snprintf(path, sizeof path, "%s/%s", kd->path, de->d_name);
        cert_t c;
        char why[512];
        struct stat fst;
        if (stat(path, &fst) == 0 && (fst.st_mode & 022)) {
            if (warn)
                journal_printf(LOG_WARNING, "pacd: %s: skipped %s: group or others may change "
                        "it (mode %04o); chmod go-w it\n", what, shown,
                        (unsigned)(fst.st_mode & 07777));
            continue;
        }
        if (cert_load(path, 0, &c, why, sizeof why) != 0) {
            if (warn)
                journal_printf(LOG_WARNING, "pacd: %s: skipped (%s)\n", what, why);
            continue;
        }
        if (n == AUTH_MAX_KEYS) {
            if (warn)
                journal_printf(LOG_WARNING, "pacd: %s: more than %d keys; the rest are "
                        "ignored\n", what, AUTH_MAX_KEYS);
            break;
        }
        if (!kd->keys) {
            kd->keys = calloc(AUTH_MAX_KEYS, sizeof *kd->keys);
            if (!kd->keys) {
                closedir(dir);
                snprintf(err, errlen, "out of memory for the %s allow-list", what);
                kd->n = 0;
                return -ENOMEM;
            }
        }
        memcpy(kd->keys[n].key, c.public_key, CERT_KEY_BYTES);
        memcpy(kd->keys[n].name, shown, sizeof shown);
        n++;
    }
    closedir(dir);
    kd->n = n;
    kd->loaded = 1;
    kd->unreadable = 0;
    kd->mtime = st.st_mtim;
    kd->ctime = st.st_ctim;
    kd->ino = st.st_ino;
    kd->dev = st.st_dev;
    /* a change within the timestamps' granularity of this scan would not
     * show: trust the stamps only once they are well in the past */
    int64_t newest = (int64_t)st.st_ctim.tv_sec * 1000000000LL + st.st_ctim.tv_nsec;
    int64_t m = (int64_t)st.st_mtim.tv_sec * 1000000000LL + st.st_mtim.tv_nsec;
    if (m > newest)
        newest = m;
    kd->stable = now - newest > 2000000000LL;
    return 0;
}

static const key_entry_t *keydir_find(const keydir_t *kd, const uint8_t *key)
{
    for (int i = 0; i < kd->n; i++)
        if (!memcmp(kd->keys[i].key, key, CERT_KEY_BYTES))
            return &kd->keys[i];
    return NULL;
}

/* ---- config check ---- */

static int load_all(const config_t *cfg, cert_t *server, keydir_t *dirs, char *err, size_t errlen)
{
    const char *paths[N_DIRS] = {cfg->security_operator_keys, cfg->security_monitor_keys,
                                 cfg->security_publisher_keys};
    for (int i = 0; i < N_DIRS; i++)
        dirs[i].path = paths[i];
    if (!cfg->security_server_secret_key[0])
        return 0;
    if (!zmq_has("curve")) {
        snprintf(err, errlen, "[security] server_secret_key is set but this libzmq has no CURVE "
                 "support (built without libsodium): pacd cannot authenticate clients. Install "
                 "a libzmq with CURVE (Debian's libzmq5 has it) or remove the [security] keys");
        return -ENOTSUP;
    }
    char why[1024];
    int rc = cert_load(cfg->security_server_secret_key, 1, server, why, sizeof why);
    if (rc != 0) {
        snprintf(err, errlen, "[security] server_secret_key: %s", why);
        return rc;
    }
    for (int i = 0; i < N_DIRS; i++) {
        rc = keydir_refresh(&dirs[i], DIR_KEYS[i], err, errlen);
        if (rc != 0)
            return rc;
    }
    return 0;
}

int auth_check(const config_t *cfg, char *err, size_t errlen)
{
    cert_t server;
    keydir_t dirs[N_DIRS];
    memset(dirs, 0, sizeof dirs);
    int rc = load_all(cfg, &server, dirs, err, errlen);
    for (int i = 0; i < N_DIRS; i++)
        free(dirs[i].keys);
    memset(&server, 0, sizeof server);
    if (rc == 0 && cfg->driver_public_key[0]) { /* the bridge's CURVE: the driver's key */
        cert_t drv;
        rc = cert_load(cfg->driver_public_key, 0, &drv, err, errlen);
    }
    return rc;
}

/* ---- ZAP (RFC 27) ---- */

static void log_denial(auth_t *self, const uint8_t *key, int domain, int reason,
                       const char *address, const char *role_list)
{
    int64_t now = rt_clock_mono_ns();
    for (int i = 0; i < AUTH_RECENT; i++)
        if (self->recent[i].t && self->recent[i].domain == domain &&
            self->recent[i].reason == reason && !memcmp(self->recent[i].key, key, CERT_KEY_BYTES) &&
            now - self->recent[i].t < AUTH_LOG_QUIET_NS)
            return;
    int k = self->recent_next++ % AUTH_RECENT;
    memcpy(self->recent[k].key, key, CERT_KEY_BYTES);
    self->recent[k].domain = domain;
    self->recent[k].reason = reason;
    self->recent[k].t = now;
    char z85[CERT_Z85_LEN + 1];
    zmq_z85_encode(z85, key, CERT_KEY_BYTES);
    if (reason == REASON_UNKNOWN)
        journal_printf(LOG_WARNING, "pacd: refused a %s connection from %s: key %s is in no "
                "allow-list (unknown or revoked); repeats are counted in telemetry, not "
                "logged for 30 s\n", DOMAIN_NAMES[domain], address, z85);
    else
        journal_printf(LOG_WARNING, "pacd: refused a %s connection from %s: key %s (%s) may "
                "not use the %s endpoint; repeats are counted in telemetry, not logged for "
                "30 s\n", DOMAIN_NAMES[domain], address, z85, role_list, DOMAIN_NAMES[domain]);
}

static int frame_is(zmq_msg_t *m, const char *s)
{
    size_t n = strlen(s);
    return zmq_msg_size(m) == n && !memcmp(zmq_msg_data(m), s, n);
}

static void handle_zap(auth_t *self)
{
    enum { MAXF = 8 };
    zmq_msg_t f[MAXF];
    int n = 0, more = 1;
    while (more) {
        zmq_msg_t tmp;
        zmq_msg_t *m = n < MAXF ? &f[n] : &tmp;
        zmq_msg_init(m);
        if (zmq_msg_recv(m, self->zap, n == 0 ? ZMQ_DONTWAIT : 0) < 0) {
            zmq_msg_close(m);
            if (n == 0)
                return;
            break;
        }
        more = zmq_msg_more(m);
        if (n < MAXF)
            n++;
        else
            zmq_msg_close(&tmp);
    }
    const char *code = "400", *text = "denied";
    char user[96] = "";
    int domain = -1;
    if (n >= 6) {
        for (int d = 0; d < AUTH_N_DOMAINS; d++)
            if (frame_is(&f[2], DOMAIN_NAMES[d]))
                domain = d;
    }
    if (n >= 6 && frame_is(&f[0], "1.0") && frame_is(&f[5], "NULL") && domain >= 0) {
        /* NULL mechanism: only sockets that are not CURVE servers ask, and
         * with keys configured those are the ipc:// ones (the control socket
         * sets its ZAP domain to refuse ZMTP 1.0 peers); the socket file's
         * mode 0660 is their access control */
        snprintf(user, sizeof user, "ipc");
        code = "200";
        text = "OK";
    } else if (n < 7 || !frame_is(&f[0], "1.0") || !frame_is(&f[5], "CURVE") ||
        zmq_msg_size(&f[6]) != CERT_KEY_BYTES || domain < 0) {
        code = "500";
        text = "malformed ZAP request";
    } else {
        char address[64];
        size_t al = zmq_msg_size(&f[3]) < sizeof address - 1 ? zmq_msg_size(&f[3])
                                                             : sizeof address - 1;
        char raw[64];
        memcpy(raw, zmq_msg_data(&f[3]), al);
        raw[al] = '\0';
        printable(address, sizeof address, raw[0] ? raw : "?");
        const uint8_t *key = zmq_msg_data(&f[6]);
        char why[512];
        for (int i = 0; i < N_DIRS; i++)
            (void)keydir_refresh(&self->dirs[i], DIR_KEYS[i], why, sizeof why);
        unsigned roles = 0;
        const key_entry_t *who = NULL;
        for (int i = 0; i < N_DIRS; i++) {
            const key_entry_t *e = keydir_find(&self->dirs[i], key);
            if (e) {
                roles |= 1u << i;
                if (!who || (DOMAIN_GRANTS[domain] & (1u << i)))
                    who = e;
            }
        }
        int own = (domain == AUTH_DOMAIN_CAMERA || domain == AUTH_DOMAIN_STATE) &&
                  !memcmp(key, self->server.public_key, CERT_KEY_BYTES);
        unsigned granted = roles & DOMAIN_GRANTS[domain];
        if (granted || own) {
            int r = 0;
            while (granted && !(granted & (1u << r)))
                r++;
            snprintf(user, sizeof user, "%s:%s", own ? "pacd" : DIR_ROLES[r],
                     own ? "self" : who->name);
            code = "200";
            text = "OK";
            count(&self->admitted);
            if (domain == AUTH_DOMAIN_CONTROL)
                journal_printf(LOG_INFO, "pacd: control connection from %s admitted (%s)\n",
                        address, user);
        } else if (roles) {
            char list[128];
            snprintf(list, sizeof list, "%s%s%s%s%s %s",
                     roles & 1u << DIR_OPERATOR ? "operator " : "",
                     roles & 1u << DIR_MONITOR ? "monitor " : "",
                     roles & 1u << DIR_PUBLISHER ? "publisher " : "", "", "key", who->name);
            count(&self->wrong_role);
            text = "key not allowed on this endpoint";
            log_denial(self, key, domain, REASON_ROLE, address, list);
        } else {
            count(&self->unknown_key);
            text = "unknown key";
            log_denial(self, key, domain, REASON_UNKNOWN, address, "");
        }
    }
    /* reply: version, request id, status code, status text, user id, metadata */
    zmq_send(self->zap, "1.0", 3, ZMQ_SNDMORE);
    if (n >= 2)
        zmq_send(self->zap, zmq_msg_data(&f[1]), zmq_msg_size(&f[1]), ZMQ_SNDMORE);
    else
        zmq_send(self->zap, "", 0, ZMQ_SNDMORE);
    zmq_send(self->zap, code, 3, ZMQ_SNDMORE);
    zmq_send(self->zap, text, strlen(text), ZMQ_SNDMORE);
    zmq_send(self->zap, user, strlen(user), ZMQ_SNDMORE);
    zmq_send(self->zap, "", 0, 0);
    for (int i = 0; i < n; i++)
        zmq_msg_close(&f[i]);
}

void auth_handshake_event(auth_t *self, auth_domain_t domain, int event)
{
    (void)domain;
    if (self && self->curve && (event & AUTH_HANDSHAKE_EVENTS))
        count(&self->handshake_failed);
}

int auth_monitor_event(void *mon)
{
    zmq_msg_t m;
    zmq_msg_init(&m);
    if (zmq_msg_recv(&m, mon, ZMQ_DONTWAIT) < 0) {
        zmq_msg_close(&m);
        return -1;
    }
    /* first frame: 16-bit event + 32-bit value; second: endpoint */
    uint16_t event = 0;
    if (zmq_msg_size(&m) >= 6)
        memcpy(&event, zmq_msg_data(&m), sizeof event);
    int more = zmq_msg_more(&m);
    zmq_msg_close(&m);
    while (more) {
        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, mon, 0) < 0) {
            zmq_msg_close(&m);
            break;
        }
        more = zmq_msg_more(&m);
        zmq_msg_close(&m);
    }
    return event;
}

static void drain_monitor(auth_t *self, int d)
{
    int event;
    while ((event = auth_monitor_event(self->mon[d])) >= 0)
        auth_handshake_event(self, (auth_domain_t)d, event);
}

static void *auth_thread(void *arg)
{
    auth_t *self = arg;
    zmq_pollitem_t items[1 + AUTH_N_DOMAINS];
    int which[1 + AUTH_N_DOMAINS];
    int n = 0;
    items[n] = (zmq_pollitem_t){self->zap, 0, ZMQ_POLLIN, 0};
    which[n++] = -1;
    for (int d = 0; d < AUTH_N_DOMAINS; d++)
        if (self->mon[d]) {
            items[n] = (zmq_pollitem_t){self->mon[d], 0, ZMQ_POLLIN, 0};
            which[n++] = d;
        }
    while (!atomic_load(&self->stop)) {
        int rc = zmq_poll(items, n, 100);
        if (rc < 0) {
            if (zmq_errno() == ETERM)
                break;
            continue;
        }
        for (int i = 0; i < n; i++) {
            if (!(items[i].revents & ZMQ_POLLIN))
                continue;
            if (which[i] < 0)
                handle_zap(self);
            else
                drain_monitor(self, which[i]);
        }
        fflush(stderr);
    }
    return NULL;
}

/* ---- life cycle ---- */

auth_t *auth_new(const config_t *cfg, void *zmq_ctx, char *err, size_t errlen)
{
    auth_t *self = calloc(1, sizeof *self);
    if (!self) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    self->cfg = cfg;
    self->ctx = zmq_ctx;
    if (load_all(cfg, &self->server, self->dirs, err, errlen) != 0) {
        auth_destroy(&self);
        return NULL;
    }
    self->curve = cfg->security_server_secret_key[0] != '\0';
    self->insecure = cfg->security_insecure && !self->curve;
    if (self->curve) {
        self->zap = zmq_socket(zmq_ctx, ZMQ_REP);
        int linger = 0;
        if (self->zap)
            zmq_setsockopt(self->zap, ZMQ_LINGER, &linger, sizeof linger);
        if (!self->zap || zmq_bind(self->zap, "inproc://zeromq.zap.01") != 0) {
            snprintf(err, errlen, "cannot bind the ZAP handler (inproc://zeromq.zap.01): %s",
                     zmq_strerror(zmq_errno()));
            auth_destroy(&self);
            return NULL;
        }
        journal_printf(LOG_NOTICE, "pacd: security: CURVE on every tcp:// endpoint, server "
                "public key %s; allow-lists: operator %s (%d keys), monitor %s (%d), "
                "publisher %s (%d)\n", self->server.public_z85,
                self->dirs[DIR_OPERATOR].path[0] ? self->dirs[DIR_OPERATOR].path : "(none)",
                self->dirs[DIR_OPERATOR].n,
                self->dirs[DIR_MONITOR].path[0] ? self->dirs[DIR_MONITOR].path : "(none)",
                self->dirs[DIR_MONITOR].n,
                self->dirs[DIR_PUBLISHER].path[0] ? self->dirs[DIR_PUBLISHER].path : "(none)",
                self->dirs[DIR_PUBLISHER].n);
        if (cfg->security_insecure)
            journal_printf(LOG_NOTICE, "pacd: [security] insecure = true has no effect: CURVE "
                    "is on\n");
    } else if (self->insecure) {
        journal_printf(LOG_WARNING, "pacd: INSECURE: [security] insecure = true and no CURVE "
                "keys: any host that reaches the tcp:// endpoints can start and end episodes, "
                "clear an e-stop and forge robot states and rewards. Configure CURVE keys "
                "(docs/security.md)\n");
    } else {
        journal_printf(LOG_NOTICE, "pacd: security: no CURVE keys; endpoints are loopback or "
                "ipc only, open to local processes (docs/security.md)\n");
    }
    return self;
}

int auth_bind(auth_t *self, void *sock, const char *endpoint, auth_domain_t domain,
              int owner_monitors)
{
    auth_endpoint_kind_t kind = auth_endpoint_kind(endpoint);
    if (self && self->curve && kind != AUTH_EP_IPC) {
        int one = 1;
        const char *dn = auth_domain_name(domain);
        if (zmq_setsockopt(sock, ZMQ_CURVE_SERVER, &one, sizeof one) != 0 ||
            zmq_setsockopt(sock, ZMQ_CURVE_SECRETKEY, self->server.secret_key,
                           CERT_KEY_BYTES) != 0 ||
            zmq_setsockopt(sock, ZMQ_ZAP_DOMAIN, dn, strlen(dn)) != 0)
            return -1;
        if (!owner_monitors && (unsigned)domain < AUTH_N_DOMAINS && !self->mon[domain] &&
            !self->started) {
            char name[96];
            snprintf(name, sizeof name, "inproc://pacd-auth-mon-%s-%p", dn, (void *)self);
            if (zmq_socket_monitor(sock, name, AUTH_HANDSHAKE_EVENTS) == 0) {
                void *pair = zmq_socket(self->ctx, ZMQ_PAIR);
                int linger = 0;
                if (pair)
                    zmq_setsockopt(pair, ZMQ_LINGER, &linger, sizeof linger);
                if (pair && zmq_connect(pair, name) == 0) {
                    self->mon[domain] = pair;
                } else {
                    if (pair)
                        zmq_close(pair);
                    zmq_socket_monitor(sock, NULL, 0);
                }
            }
        }
    }
    if (zmq_bind(sock, endpoint) != 0)
        return -1;
    if (kind == AUTH_EP_IPC) {
        char last[CONFIG_PATH + 16];
        size_t len = sizeof last;
        if (zmq_getsockopt(sock, ZMQ_LAST_ENDPOINT, last, &len) != 0 || strncmp(last, "ipc://", 6))
            snprintf(last, sizeof last, "%s", endpoint);
        const char *path = last + 6;
        if (chmod(path, 0660) != 0 || chown(path, (uid_t)-1, getegid()) != 0) {
            int e = errno;
            zmq_unbind(sock, last);
            errno = e;
            return -1;
        }
    }
    return 0;
}

int auth_start(auth_t *self)
{
    if (!self || !self->curve || self->started)
        return 0;
    int e = pthread_create(&self->thread, NULL, auth_thread, self);
    if (e != 0)
        return -e;
    self->started = 1;
    return 0;
}

const struct cert_s *auth_server_cert(const auth_t *self)
{
    return self && self->curve ? &self->server : NULL;
}

void auth_get_stats(const auth_t *self, auth_stats_t *out)
{
    memset(out, 0, sizeof *out);
    if (!self)
        return;
    out->curve = self->curve;
    out->insecure = self->insecure;
    out->admitted = atomic_load_explicit(&self->admitted, memory_order_relaxed);
    out->denied_unknown_key = atomic_load_explicit(&self->unknown_key, memory_order_relaxed);
    out->denied_wrong_role = atomic_load_explicit(&self->wrong_role, memory_order_relaxed);
    out->handshake_failed = atomic_load_explicit(&self->handshake_failed, memory_order_relaxed);
}

void auth_destroy(auth_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    auth_t *self = *self_p;
    if (self->started) {
        atomic_store(&self->stop, 1);
        pthread_join(self->thread, NULL);
    }
    for (int d = 0; d < AUTH_N_DOMAINS; d++)
        if (self->mon[d])
            zmq_close(self->mon[d]);
    if (self->zap)
        zmq_close(self->zap);
    for (int i = 0; i < N_DIRS; i++)
        free(self->dirs[i].keys);
    memset(&self->server, 0, sizeof self->server);
    free(self);
    *self_p = NULL;
}
