// See faultvfs.h. Tests only: nothing in Sources/ links this.
#include "faultvfs.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

// MARK: state (every field below is guarded by `mu`)

typedef struct Op {            // one unsynced change to a file
    int truncate;              // 0: write `n` bytes of `data` at `off`; 1: truncate to `off`
    sqlite3_int64 off;
    int n;
    unsigned char *data;
    struct Op *next;
} Op;

typedef struct Root {          // a watched directory
    char *dir;
    char *image;
    long syncs;
    struct Root *next;
} Root;

typedef struct Tracked {       // a file under a root, open or not
    char *path;
    char *image;               // its durable image
    Root *root;
    Op *head, *tail;
    long pending;
    int opens;
    struct Tracked *next;
} Tracked;

typedef struct Fault {
    char *prefix;
    int kind;
    struct Fault *next;
} Fault;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static Root *roots;
static Tracked *tracked;
static Fault *faults;
static sqlite3_vfs *base;
static sqlite3_vfs vfs;

static int has_prefix(const char *s, const char *p) { return strncmp(s, p, strlen(p)) == 0; }

static char *join(const char *a, const char *b) {
    size_t la = strlen(a), lb = strlen(b);
    char *s = malloc(la + lb + 1);
    memcpy(s, a, la);
    memcpy(s + la, b, lb + 1);
    return s;
}

static void free_ops(Tracked *t) {
    Op *o = t->head;
    while (o) { Op *n = o->next; free(o->data); free(o); o = n; }
    t->head = t->tail = NULL;
    t->pending = 0;
}

static int fault_for(const char *path) {
    for (Fault *f = faults; f; f = f->next) if (has_prefix(path, f->prefix)) return f->kind;
    return FAULTVFS_NONE;
}

// Creates the parent directories of `path`.
static void make_parents(const char *path) {
    char *p = strdup(path);
    for (char *s = p + 1; *s; s++) {
        if (*s == '/') { *s = 0; mkdir(p, 0700); *s = '/'; }
    }
    free(p);
}

static int copy_file(const char *from, const char *to) {
    make_parents(to);
    int out = open(to, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (out < 0) return -1;
    int in = open(from, O_RDONLY);
    if (in >= 0) {
        char buf[65536];
        ssize_t n;
        while ((n = read(in, buf, sizeof buf)) > 0) {
            if (write(out, buf, (size_t)n) != n) { close(in); close(out); return -1; }
        }
        close(in);
    }
    close(out);
    return 0;
}

// Applies `o` to the file at `path`.
static void apply(const char *path, const Op *o) {
    int fd = open(path, O_WRONLY | O_CREAT, 0600);
    if (fd < 0) return;
    if (o->truncate) {
        if (ftruncate(fd, (off_t)o->off) != 0) { /* the image is best effort; a test would see it */ }
    } else {
        ssize_t done = 0;
        while (done < o->n) {
            ssize_t w = pwrite(fd, o->data + done, (size_t)(o->n - done), (off_t)(o->off + done));
            if (w <= 0) break;
            done += w;
        }
    }
    close(fd);
}

// The tracked entry for `path`, created (with an image of the file as it is now) if it is under a root.
static Tracked *track(const char *path) {
    for (Tracked *t = tracked; t; t = t->next) if (strcmp(t->path, path) == 0) return t;
    for (Root *r = roots; r; r = r->next) {
        size_t l = strlen(r->dir);
        if (strncmp(path, r->dir, l) == 0 && path[l] == '/') {
            Tracked *t = calloc(1, sizeof *t);
            t->path = strdup(path);
            t->image = join(r->image, path + l);
            t->root = r;
            copy_file(path, t->image);   // what exists before it is watched counts as durable
            t->next = tracked;
            tracked = t;
            return t;
        }
    }
    return NULL;
}

static void untrack(const char *path) {
    for (Tracked **p = &tracked; *p; p = &(*p)->next) {
        if (strcmp((*p)->path, path) == 0) {
            Tracked *t = *p;
            *p = t->next;
            unlink(t->image);
            free_ops(t);
            free(t->path); free(t->image); free(t);
            return;
        }
    }
}

// MARK: the file

typedef struct FFile {
    sqlite3_file base;
    sqlite3_file *real;
    Tracked *t;                // NULL when the file is passed through
    sqlite3_int64 pad;         // keeps `real` 16-byte aligned after this header
} FFile;

#define REAL(f) (((FFile *)(f))->real)

static int f_close(sqlite3_file *f) {
    FFile *ff = (FFile *)f;
    int rc = ff->real->pMethods ? ff->real->pMethods->xClose(ff->real) : SQLITE_OK;
    if (ff->t) { pthread_mutex_lock(&mu); ff->t->opens--; pthread_mutex_unlock(&mu); }
    return rc;
}

static int f_read(sqlite3_file *f, void *buf, int n, sqlite3_int64 off) {
    FFile *ff = (FFile *)f;
    if (ff->t) {
        pthread_mutex_lock(&mu);
        int kind = fault_for(ff->t->path);
        pthread_mutex_unlock(&mu);
        if (kind == FAULTVFS_ALL_EIO) return SQLITE_IOERR_READ;
    }
    return ff->real->pMethods->xRead(ff->real, buf, n, off);
}

static int f_write(sqlite3_file *f, const void *buf, int n, sqlite3_int64 off) {
    FFile *ff = (FFile *)f;
    if (!ff->t) return ff->real->pMethods->xWrite(ff->real, buf, n, off);
    pthread_mutex_lock(&mu);
    int kind = fault_for(ff->t->path);
    if (kind == FAULTVFS_DISK_FULL) { pthread_mutex_unlock(&mu); return SQLITE_FULL; }
    if (kind != FAULTVFS_NONE) { pthread_mutex_unlock(&mu); return SQLITE_IOERR_WRITE; }
    int rc = ff->real->pMethods->xWrite(ff->real, buf, n, off);
    if (rc == SQLITE_OK) {
        Op *o = calloc(1, sizeof *o);
        o->off = off;
        o->n = n;
        o->data = malloc((size_t)n);
        memcpy(o->data, buf, (size_t)n);
        if (ff->t->tail) ff->t->tail->next = o; else ff->t->head = o;
        ff->t->tail = o;
        ff->t->pending++;
    }
    pthread_mutex_unlock(&mu);
    return rc;
}

static int f_truncate(sqlite3_file *f, sqlite3_int64 size) {
    FFile *ff = (FFile *)f;
    if (!ff->t) return ff->real->pMethods->xTruncate(ff->real, size);
    pthread_mutex_lock(&mu);
    int kind = fault_for(ff->t->path);
    if (kind != FAULTVFS_NONE) { pthread_mutex_unlock(&mu); return SQLITE_IOERR_TRUNCATE; }
    int rc = ff->real->pMethods->xTruncate(ff->real, size);
    if (rc == SQLITE_OK) {
        Op *o = calloc(1, sizeof *o);
        o->truncate = 1;
        o->off = size;
        if (ff->t->tail) ff->t->tail->next = o; else ff->t->head = o;
        ff->t->tail = o;
        ff->t->pending++;
    }
    pthread_mutex_unlock(&mu);
    return rc;
}

static int f_sync(sqlite3_file *f, int flags) {
    FFile *ff = (FFile *)f;
    if (!ff->t) return ff->real->pMethods->xSync(ff->real, flags);
    pthread_mutex_lock(&mu);
    int kind = fault_for(ff->t->path);
    if (kind != FAULTVFS_NONE && kind != FAULTVFS_DISK_FULL) { pthread_mutex_unlock(&mu); return SQLITE_IOERR_FSYNC; }
    int rc = ff->real->pMethods->xSync(ff->real, flags);
    if (rc == SQLITE_OK) {
        // fsync makes every change to the file durable, whichever descriptor made it.
        for (Op *o = ff->t->head; o; o = o->next) apply(ff->t->image, o);
        free_ops(ff->t);
        ff->t->root->syncs++;
    }
    pthread_mutex_unlock(&mu);
    return rc;
}

static int f_file_size(sqlite3_file *f, sqlite3_int64 *size) { return REAL(f)->pMethods->xFileSize(REAL(f), size); }
static int f_lock(sqlite3_file *f, int l) { return REAL(f)->pMethods->xLock(REAL(f), l); }
static int f_unlock(sqlite3_file *f, int l) { return REAL(f)->pMethods->xUnlock(REAL(f), l); }
static int f_check_reserved(sqlite3_file *f, int *out) { return REAL(f)->pMethods->xCheckReservedLock(REAL(f), out); }
static int f_file_control(sqlite3_file *f, int op, void *arg) { return REAL(f)->pMethods->xFileControl(REAL(f), op, arg); }
static int f_sector_size(sqlite3_file *f) { return REAL(f)->pMethods->xSectorSize(REAL(f)); }
static int f_device(sqlite3_file *f) { return REAL(f)->pMethods->xDeviceCharacteristics(REAL(f)); }
static int f_shm_map(sqlite3_file *f, int pg, int sz, int extend, void volatile **pp) {
    return REAL(f)->pMethods->xShmMap(REAL(f), pg, sz, extend, pp);
}
static int f_shm_lock(sqlite3_file *f, int off, int n, int flags) { return REAL(f)->pMethods->xShmLock(REAL(f), off, n, flags); }
static void f_shm_barrier(sqlite3_file *f) { REAL(f)->pMethods->xShmBarrier(REAL(f)); }
static int f_shm_unmap(sqlite3_file *f, int del) { return REAL(f)->pMethods->xShmUnmap(REAL(f), del); }
static int f_fetch(sqlite3_file *f, sqlite3_int64 off, int n, void **pp) {
    // No memory-mapped reads: every read goes through f_read, where faults apply.
    (void)f; (void)off; (void)n;
    *pp = NULL;
    return SQLITE_OK;
}
static int f_unfetch(sqlite3_file *f, sqlite3_int64 off, void *p) { (void)f; (void)off; (void)p; return SQLITE_OK; }

static const sqlite3_io_methods io = {
    3, f_close, f_read, f_write, f_truncate, f_sync, f_file_size, f_lock, f_unlock, f_check_reserved,
    f_file_control, f_sector_size, f_device, f_shm_map, f_shm_lock, f_shm_barrier, f_shm_unmap, f_fetch, f_unfetch,
};

// MARK: the VFS

static int v_open(sqlite3_vfs *v, const char *name, sqlite3_file *f, int flags, int *out) {
    (void)v;
    FFile *ff = (FFile *)f;
    ff->real = (sqlite3_file *)(ff + 1);
    ff->t = NULL;
    int rc = base->xOpen(base, name, ff->real, flags, out);
    if (rc != SQLITE_OK || !ff->real->pMethods) {
        ff->base.pMethods = NULL;
        return rc;
    }
    if (name && !(flags & SQLITE_OPEN_DELETEONCLOSE)) {
        pthread_mutex_lock(&mu);
        ff->t = track(name);
        if (ff->t) ff->t->opens++;
        pthread_mutex_unlock(&mu);
    }
    ff->base.pMethods = &io;
    return SQLITE_OK;
}

static int v_delete(sqlite3_vfs *v, const char *name, int dirsync) {
    (void)v;
    int rc = base->xDelete(base, name, dirsync);
    if (rc == SQLITE_OK) { pthread_mutex_lock(&mu); untrack(name); pthread_mutex_unlock(&mu); }
    return rc;
}
static int v_access(sqlite3_vfs *v, const char *name, int flags, int *out) { (void)v; return base->xAccess(base, name, flags, out); }
static int v_full(sqlite3_vfs *v, const char *name, int n, char *out) { (void)v; return base->xFullPathname(base, name, n, out); }
static void *v_dlopen(sqlite3_vfs *v, const char *name) { (void)v; return base->xDlOpen(base, name); }
static void v_dlerror(sqlite3_vfs *v, int n, char *msg) { (void)v; base->xDlError(base, n, msg); }
static void (*v_dlsym(sqlite3_vfs *v, void *h, const char *sym))(void) { (void)v; return base->xDlSym(base, h, sym); }
static void v_dlclose(sqlite3_vfs *v, void *h) { (void)v; base->xDlClose(base, h); }
static int v_random(sqlite3_vfs *v, int n, char *out) { (void)v; return base->xRandomness(base, n, out); }
static int v_sleep(sqlite3_vfs *v, int us) { (void)v; return base->xSleep(base, us); }
static int v_time(sqlite3_vfs *v, double *t) { (void)v; return base->xCurrentTime(base, t); }
static int v_last_error(sqlite3_vfs *v, int n, char *msg) { (void)v; return base->xGetLastError(base, n, msg); }
static int v_time64(sqlite3_vfs *v, sqlite3_int64 *t) { (void)v; return base->xCurrentTimeInt64(base, t); }
static int v_set_syscall(sqlite3_vfs *v, const char *n, sqlite3_syscall_ptr p) { (void)v; return base->xSetSystemCall(base, n, p); }
static sqlite3_syscall_ptr v_get_syscall(sqlite3_vfs *v, const char *n) { (void)v; return base->xGetSystemCall(base, n); }
static const char *v_next_syscall(sqlite3_vfs *v, const char *n) { (void)v; return base->xNextSystemCall(base, n); }

static pthread_once_t once = PTHREAD_ONCE_INIT;
static int install_rc = SQLITE_ERROR;

static void install(void) {
    base = sqlite3_vfs_find(NULL);
    if (!base || base->iVersion < 3) return;
    vfs.iVersion = 3;
    vfs.szOsFile = (int)sizeof(FFile) + base->szOsFile;
    vfs.mxPathname = base->mxPathname;
    vfs.zName = "cofre-faultvfs";
    vfs.xOpen = v_open;
    vfs.xDelete = v_delete;
    vfs.xAccess = v_access;
    vfs.xFullPathname = v_full;
    vfs.xDlOpen = v_dlopen;
    vfs.xDlError = v_dlerror;
    vfs.xDlSym = v_dlsym;
    vfs.xDlClose = v_dlclose;
    vfs.xRandomness = v_random;
    vfs.xSleep = v_sleep;
    vfs.xCurrentTime = v_time;
    vfs.xGetLastError = v_last_error;
    vfs.xCurrentTimeInt64 = v_time64;
    vfs.xSetSystemCall = v_set_syscall;
    vfs.xGetSystemCall = v_get_syscall;
    vfs.xNextSystemCall = v_next_syscall;
    install_rc = sqlite3_vfs_register(&vfs, 1);
}

int faultvfs_install(void) {
    pthread_once(&once, install);
    return install_rc;
}

int faultvfs_watch(const char *dir, const char *image_dir) {
    pthread_mutex_lock(&mu);
    Root *r = calloc(1, sizeof *r);
    r->dir = strdup(dir);
    r->image = strdup(image_dir);
    r->next = roots;
    roots = r;
    mkdir(image_dir, 0700);
    pthread_mutex_unlock(&mu);
    return 0;
}

void faultvfs_unwatch(const char *dir) {
    pthread_mutex_lock(&mu);
    // Tracked files keep a pointer to their root, so a root is only detached from the list (a small,
    // deliberate leak in a test process) and its closed files forgotten.
    for (Root **p = &roots; *p; p = &(*p)->next) {
        if (strcmp((*p)->dir, dir) == 0) { *p = (*p)->next; break; }
    }
    for (Tracked **p = &tracked; *p;) {
        Tracked *t = *p;
        if (has_prefix(t->path, dir) && t->opens <= 0) {
            *p = t->next;
            free_ops(t);
            free(t->path); free(t->image); free(t);
        } else {
            p = &t->next;
        }
    }
    pthread_mutex_unlock(&mu);
}

void faultvfs_set_fault(const char *prefix, int kind) {
    pthread_mutex_lock(&mu);
    for (Fault **p = &faults; *p; p = &(*p)->next) {
        if (strcmp((*p)->prefix, prefix) == 0) {
            Fault *f = *p;
            *p = f->next;
            free(f->prefix); free(f);
            break;
        }
    }
    if (kind != FAULTVFS_NONE) {
        Fault *f = calloc(1, sizeof *f);
        f->prefix = strdup(prefix);
        f->kind = kind;
        f->next = faults;
        faults = f;
    }
    pthread_mutex_unlock(&mu);
}

int faultvfs_power_cut(const char *dir, const char *out_dir, int keep_permille, unsigned int seed) {
    pthread_mutex_lock(&mu);
    int count = 0;
    size_t l = strlen(dir);
    for (Tracked *t = tracked; t; t = t->next) {
        if (strncmp(t->path, dir, l) != 0 || t->path[l] != '/') continue;
        char *out = join(out_dir, t->path + l);
        if (copy_file(t->image, out) != 0) { free(out); pthread_mutex_unlock(&mu); return -1; }
        for (Op *o = t->head; o; o = o->next) {
            if ((int)(rand_r(&seed) % 1000) < keep_permille) apply(out, o);
        }
        free(out);
        count++;
    }
    pthread_mutex_unlock(&mu);
    return count;
}

void faultvfs_stats(const char *dir, long *syncs, long *pending_writes) {
    pthread_mutex_lock(&mu);
    *syncs = 0;
    *pending_writes = 0;
    for (Root *r = roots; r; r = r->next) if (strcmp(r->dir, dir) == 0) *syncs = r->syncs;
    size_t l = strlen(dir);
    for (Tracked *t = tracked; t; t = t->next) {
        if (strncmp(t->path, dir, l) == 0 && t->path[l] == '/') *pending_writes += t->pending;
    }
    pthread_mutex_unlock(&mu);
}
