/*
 * Keystone's command log (`audit.commands`, `forbidden.commands`): an LD_PRELOAD library that appends
 * one JSON line per program a process starts to the file named by $KEYSTONE_EXECLOG:
 *
 *   {"ts":1712345678.123456,"pid":42,"ppid":7,"call":"execve","path":"/usr/bin/ls","argv":["ls","-l"],
 *    "cwd":"/workspace"}
 *
 * An exec is recorded before it happens (a successful one never returns); when it fails, a line
 * {"ts":...,"pid":42,"failed":2} (the errno) withdraws that process's last record, so a shell probing
 * PATH leaves one record. A posix_spawn is recorded after it returns, with the child's pid.
 *
 * It must be safe to load into any dynamically linked glibc program, so it:
 * - never changes what the program does: errno is preserved, logging failures are ignored, and the real
 *   call always receives the caller's arguments (the environment may gain two entries, see below);
 * - is async-signal-safe: exec is often called between vfork and exec (Python's subprocess), where
 *   malloc or stdio would corrupt the parent; a line is built in a buffer mmap'ed and released before
 *   the exec, and written with one write() on an O_APPEND descriptor, so lines of concurrent processes
 *   never interleave;
 * - calls the execve system call itself and reaches glibc's execvpe and posix_spawn through dlsym bound
 *   to its oldest symbol version (no GLIBC_2.34 dlsym), so it loads on glibc 2.17 and later;
 * - puts LD_PRELOAD and KEYSTONE_EXECLOG back into an exec's environment when the caller dropped them
 *   (env -i, a subprocess given its own env), so every descendant is captured.
 *
 * Not seen: static binaries, programs that make the exec system call themselves (Go), fexecve and
 * execveat, and the shell that system() and popen() start (the commands it runs are seen).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#if defined(__x86_64__)
__asm__(".symver dlsym,dlsym@GLIBC_2.2.5");
#elif defined(__aarch64__)
__asm__(".symver dlsym,dlsym@GLIBC_2.17");
#endif

#define EXPORT __attribute__((visibility("default")))
#define PRELOAD_VAR "LD_PRELOAD"
#define LOG_VAR "KEYSTONE_EXECLOG"
#define MAX_VALUE 4096
#define MAX_ENV 16384 /* larger environments are passed on unchanged rather than copied on the stack */
#define PATH_BUFFER 4096

extern char **environ;

typedef int (*execvpe_fn)(const char *, char *const[], char *const[]);
typedef int (*spawn_fn)(pid_t *, const char *, const posix_spawn_file_actions_t *,
                        const posix_spawnattr_t *, char *const[], char *const[]);

/* "NAME=value" as found at load time; empty when the variable was unset (or absurdly long). */
static char preload_entry[sizeof PRELOAD_VAR + MAX_VALUE];
static char log_entry[sizeof LOG_VAR + MAX_VALUE];
static const char *log_path; /* the value part of log_entry, NULL when there is nowhere to log */
static execvpe_fn real_execvpe;
static spawn_fn real_posix_spawn, real_posix_spawnp;

static int remember(const char *name, char *entry, size_t size) {
    const char *value = getenv(name);
    size_t name_length = strlen(name);
    if (value == NULL || *value == '\0' || name_length + 1 + strlen(value) >= size) return 0;
    memcpy(entry, name, name_length);
    entry[name_length] = '=';
    strcpy(entry + name_length + 1, value);
    return 1;
}

/* dlsym runs here, never in a wrapper: it may lock and allocate, which a vfork child must not do. */
__attribute__((constructor)) static void load(void) {
    remember(PRELOAD_VAR, preload_entry, sizeof preload_entry);
    if (remember(LOG_VAR, log_entry, sizeof log_entry)) log_path = log_entry + sizeof LOG_VAR;
    real_execvpe = (execvpe_fn)dlsym(RTLD_NEXT, "execvpe");
    real_posix_spawn = (spawn_fn)dlsym(RTLD_NEXT, "posix_spawn");
    real_posix_spawnp = (spawn_fn)dlsym(RTLD_NEXT, "posix_spawnp");
}

/* --- one JSON line ------------------------------------------------------------------------------- */

struct line {
    char *data;
    size_t length;
};

static void put(struct line *line, const char *text, size_t length) {
    memcpy(line->data + line->length, text, length);
    line->length += length;
}

static void put_text(struct line *line, const char *text) { put(line, text, strlen(text)); }

static void put_number(struct line *line, unsigned long long value, int width) {
    char digits[24];
    int count = 0;
    do {
        digits[count++] = (char)('0' + value % 10);
        value /= 10;
    } while (value > 0 || count < width);
    while (count > 0) put(line, &digits[--count], 1);
}

/* The length of the well-formed UTF-8 sequence at `s`, or 0 when it is not one. */
static size_t utf8_length(const unsigned char *s) {
    unsigned char lead = s[0];
    size_t length;
    unsigned char low = 0x80, high = 0xBF; /* the allowed range of the second byte */
    if (lead >= 0xC2 && lead <= 0xDF) length = 2;
    else if (lead >= 0xE0 && lead <= 0xEF) {
        length = 3;
        if (lead == 0xE0) low = 0xA0;
        if (lead == 0xED) high = 0x9F;
    } else if (lead >= 0xF0 && lead <= 0xF4) {
        length = 4;
        if (lead == 0xF0) low = 0x90;
        if (lead == 0xF4) high = 0x8F;
    } else return 0;
    if (s[1] < low || s[1] > high) return 0;
    for (size_t i = 2; i < length; i++)
        if (s[i] < 0x80 || s[i] > 0xBF) return 0;
    return length;
}

/* A JSON string: quotes, backslashes and control characters escaped, bytes that are not UTF-8 as U+FFFD. */
static void put_string(struct line *line, const char *text) {
    static const char hex[] = "0123456789abcdef";
    const unsigned char *s = (const unsigned char *)text;
    put(line, "\"", 1);
    while (*s) {
        size_t length = *s < 0x80 ? 1 : utf8_length(s);
        if (*s == '"' || *s == '\\') {
            char escaped[2] = {'\\', (char)*s};
            put(line, escaped, 2);
        } else if (*s < 0x20) {
            char escaped[6] = {'\\', 'u', '0', '0', hex[*s >> 4], hex[*s & 15]};
            put(line, escaped, 6);
        } else if (length == 0) {
            put_text(line, "\\ufffd");
            length = 1;
        } else {
            put(line, (const char *)s, length);
        }
        s += length;
    }
    put(line, "\"", 1);
}

/* The wall clock straight from the kernel: libfaketime (determinism.clock) replaces clock_gettime. */
static struct timespec wall_clock(void) {
    struct timespec now = {0, 0};
    syscall(SYS_clock_gettime, CLOCK_REALTIME, &now);
    return now;
}

static void put_head(struct line *line, struct timespec ts, long pid) {
    put_text(line, "{\"ts\":");
    put_number(line, (unsigned long long)ts.tv_sec, 1);
    put(line, ".", 1);
    put_number(line, (unsigned long long)ts.tv_nsec / 1000, 6);
    put_text(line, ",\"pid\":");
    put_number(line, (unsigned long long)pid, 1);
}

static void append(const struct line *line) {
    int fd = open(log_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, 0666);
    if (fd < 0) return;
    ssize_t written = write(fd, line->data, line->length);
    (void)written; /* a full disk loses the line, never the exec */
    close(fd);
}

static void record_start(const char *call, struct timespec ts, long pid, long ppid, const char *path,
                         char *const argv[]) {
    char cwd[PATH_BUFFER];
    if (getcwd(cwd, sizeof cwd) == NULL) cwd[0] = '\0';
    if (path == NULL) path = ""; /* the call fails with EFAULT; logging must not crash first */
    /* Every byte escapes to at most 6, plus quotes and commas; numbers and keys fit in the constant. */
    size_t size = 160 + 6 * (strlen(path) + strlen(cwd)) + 8;
    for (size_t i = 0; argv != NULL && argv[i] != NULL; i++) size += 6 * strlen(argv[i]) + 3;
    void *memory = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (memory == MAP_FAILED) return;
    struct line line = {memory, 0};
    put_head(&line, ts, pid);
    put_text(&line, ",\"ppid\":");
    put_number(&line, (unsigned long long)ppid, 1);
    put_text(&line, ",\"call\":\"");
    put_text(&line, call);
    put_text(&line, "\"");
    put_text(&line, ",\"path\":");
    put_string(&line, path);
    put_text(&line, ",\"argv\":[");
    for (size_t i = 0; argv != NULL && argv[i] != NULL; i++) {
        if (i > 0) put(&line, ",", 1);
        put_string(&line, argv[i]);
    }
    put_text(&line, "],\"cwd\":");
    put_string(&line, cwd);
    put_text(&line, "}\n");
    append(&line);
    munmap(memory, size);
}

static void record_failure(int error) {
    char buffer[128];
    struct line line = {buffer, 0};
    put_head(&line, wall_clock(), getpid());
    put_text(&line, ",\"failed\":");
    put_number(&line, (unsigned long long)error, 1);
    put_text(&line, "}\n");
    append(&line);
}

/* --- the environment passed on -------------------------------------------------------------------- */

static size_t count_entries(char *const envp[]) {
    size_t count = 0;
    while (envp != NULL && envp[count] != NULL) count++;
    return count;
}

static int has_variable(char *const envp[], size_t count, const char *entry) {
    size_t name_length = (size_t)(strchr(entry, '=') - entry) + 1;
    for (size_t i = 0; i < count; i++)
        if (strncmp(envp[i], entry, name_length) == 0) return 1;
    return 0;
}

/* How many slots `keep_capture` needs for an environment of `count` entries. */
static size_t room_for(size_t count) { return count < MAX_ENV ? count + 3 : 1; }

/* `envp`, or a copy in `room` (room_for(count) slots) with the capture variables it lacks added. The room
   is a VLA in the caller's frame, so nothing is allocated between vfork and exec. */
static char *const *keep_capture(char *const envp[], size_t count, char **room) {
    if (count >= MAX_ENV) return envp;
    int add_preload = preload_entry[0] && !has_variable(envp, count, preload_entry);
    int add_log = log_entry[0] && !has_variable(envp, count, log_entry);
    if (!add_preload && !add_log) return envp;
    if (count > 0) memcpy(room, envp, count * sizeof *room);
    if (add_preload) room[count++] = preload_entry;
    if (add_log) room[count++] = log_entry;
    room[count] = NULL;
    return room;
}

/* --- the wrapped calls ------------------------------------------------------------------------------ */

/* An exec, recorded first: the system call for a path, or glibc's execvpe when `search` asks for PATH. */
static int run(const char *call, int search, const char *target, char *const argv[], char *const envp[]) {
    int saved = errno;
    if (log_path != NULL) record_start(call, wall_clock(), getpid(), getppid(), target, argv);
    size_t count = count_entries(envp);
    char *room[room_for(count)];
    char *const *env = keep_capture(envp, count, room);
    errno = saved;
    long result = search && real_execvpe != NULL ? real_execvpe(target, argv, env)
                                                 : syscall(SYS_execve, target, argv, env);
    saved = errno;
    if (log_path != NULL) record_failure(saved);
    errno = saved;
    return (int)result;
}

static int spawn(const char *call, spawn_fn real, pid_t *pid, const char *path,
                 const posix_spawn_file_actions_t *actions, const posix_spawnattr_t *attributes,
                 char *const argv[], char *const envp[]) {
    if (real == NULL) return ENOSYS;
    struct timespec started = wall_clock();
    pid_t child = 0;
    size_t count = count_entries(envp);
    char *room[room_for(count)];
    int result = real(&child, path, actions, attributes, argv, keep_capture(envp, count, room));
    if (result == 0 && pid != NULL) *pid = child; /* like glibc: untouched when the spawn fails */
    if (result == 0 && log_path != NULL) {
        int saved = errno;
        record_start(call, started, child, getpid(), path, argv);
        errno = saved;
    }
    return result;
}

EXPORT int execve(const char *path, char *const argv[], char *const envp[]) {
    return run("execve", 0, path, argv, envp);
}

EXPORT int execv(const char *path, char *const argv[]) { return run("execv", 0, path, argv, environ); }

EXPORT int execvpe(const char *file, char *const argv[], char *const envp[]) {
    return run("execvpe", 1, file, argv, envp);
}

EXPORT int execvp(const char *file, char *const argv[]) {
    return run("execvp", 1, file, argv, environ);
}

EXPORT int posix_spawn(pid_t *pid, const char *path, const posix_spawn_file_actions_t *actions,
                       const posix_spawnattr_t *attributes, char *const argv[], char *const envp[]) {
    return spawn("posix_spawn", real_posix_spawn, pid, path, actions, attributes, argv, envp);
}

EXPORT int posix_spawnp(pid_t *pid, const char *file, const posix_spawn_file_actions_t *actions,
                        const posix_spawnattr_t *attributes, char *const argv[], char *const envp[]) {
    return spawn("posix_spawnp", real_posix_spawnp, pid, file, actions, attributes, argv, envp);
}

/* glibc's execl family calls its internal execve, which no preload can wrap, so they are wrapped here. */

/* The execl-family `call` with its NULL-terminated arguments (and, for execle, the envp after them). */
static int run_list(const char *call, const char *target, const char *first, va_list *arguments) {
    va_list counting;
    va_copy(counting, *arguments);
    size_t count = first == NULL ? 0 : 1;
    while (count > 0 && va_arg(counting, char *) != NULL) count++;
    va_end(counting);
    char *argv[count + 1];
    argv[0] = (char *)first;
    for (size_t i = 1; i < count; i++) argv[i] = va_arg(*arguments, char *);
    if (count > 0) (void)va_arg(*arguments, char *); /* the terminating NULL */
    argv[count] = NULL;
    char *const *envp = strcmp(call, "execle") == 0 ? va_arg(*arguments, char *const *) : environ;
    return run(call, strcmp(call, "execlp") == 0, target, argv, envp);
}

EXPORT int execl(const char *path, const char *arg, ...) {
    va_list arguments;
    va_start(arguments, arg);
    int result = run_list("execl", path, arg, &arguments);
    va_end(arguments);
    return result;
}

EXPORT int execlp(const char *file, const char *arg, ...) {
    va_list arguments;
    va_start(arguments, arg);
    int result = run_list("execlp", file, arg, &arguments);
    va_end(arguments);
    return result;
}

EXPORT int execle(const char *path, const char *arg, ...) {
    va_list arguments;
    va_start(arguments, arg);
    int result = run_list("execle", path, arg, &arguments);
    va_end(arguments);
    return result;
}
