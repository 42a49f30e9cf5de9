#include "CCurl.h"
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <strings.h>

// The functions used, resolved from libcurl.so.4 at the first FTP connection.
static struct {
    CURLcode (*global_init)(long);
    CURL *(*easy_init)(void);
    void (*easy_cleanup)(CURL *);
    void (*easy_reset)(CURL *);
    const char *(*easy_strerror)(CURLcode);
    CURLcode (*easy_setopt)(CURL *, CURLoption, ...);
    CURLcode (*easy_perform)(CURL *);
    CURLcode (*easy_getinfo)(CURL *, CURLINFO, ...);
    CURLM *(*multi_init)(void);
    CURLMcode (*multi_cleanup)(CURLM *);
    CURLMcode (*multi_add_handle)(CURLM *, CURL *);
    CURLMcode (*multi_remove_handle)(CURLM *, CURL *);
    CURLMcode (*multi_perform)(CURLM *, int *);
    CURLMcode (*multi_wait)(CURLM *, struct curl_waitfd *, unsigned int, int, int *);
    CURLMcode (*multi_timeout)(CURLM *, long *);
    CURLMsg *(*multi_info_read)(CURLM *, int *);
    struct curl_slist *(*slist_append)(struct curl_slist *, const char *);
    void (*slist_free_all)(struct curl_slist *);
} curl;

static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static CURLcode global_result = CURLE_FAILED_INIT;
static char load_error[512] = "";

#define RESOLVE(field, name)                                                            \
    if (!(*(void **)&curl.field = dlsym(library, name))) {                              \
        snprintf(load_error, sizeof load_error, "libcurl.so.4 has no %s", name);        \
        return;                                                                         \
    }

static void global_init(void) {
    void *library = dlopen("libcurl.so.4", RTLD_NOW | RTLD_LOCAL);
    if (!library) {
        const char *why = dlerror();
        snprintf(load_error, sizeof load_error, "cannot load libcurl.so.4 (install libcurl4): %s",
                 why ? why : "unknown error");
        return;
    }
    RESOLVE(global_init, "curl_global_init")
    RESOLVE(easy_init, "curl_easy_init")
    RESOLVE(easy_cleanup, "curl_easy_cleanup")
    RESOLVE(easy_reset, "curl_easy_reset")
    RESOLVE(easy_strerror, "curl_easy_strerror")
    RESOLVE(easy_setopt, "curl_easy_setopt")
    RESOLVE(easy_perform, "curl_easy_perform")
    RESOLVE(easy_getinfo, "curl_easy_getinfo")
    RESOLVE(multi_init, "curl_multi_init")
    RESOLVE(multi_cleanup, "curl_multi_cleanup")
    RESOLVE(multi_add_handle, "curl_multi_add_handle")
    RESOLVE(multi_remove_handle, "curl_multi_remove_handle")
    RESOLVE(multi_perform, "curl_multi_perform")
    RESOLVE(multi_wait, "curl_multi_wait")
    RESOLVE(multi_timeout, "curl_multi_timeout")
    RESOLVE(multi_info_read, "curl_multi_info_read")
    RESOLVE(slist_append, "curl_slist_append")
    RESOLVE(slist_free_all, "curl_slist_free_all")
    global_result = curl.global_init(CURL_GLOBAL_ALL);
    if (global_result != CURLE_OK) snprintf(load_error, sizeof load_error, "curl_global_init failed (%d)", global_result);
}

CURLcode ccurl_global_init(void) {
    pthread_once(&global_once, global_init);
    return global_result;
}

const char *ccurl_load_error(void) { return load_error; }

static void *load_thread(void *unused) {
    (void)unused;
    ccurl_global_init();
    return NULL;
}

static pthread_once_t background_once = PTHREAD_ONCE_INIT;

static pthread_t loader;
static int loader_started = 0;
static pthread_once_t joined_once = PTHREAD_ONCE_INIT;

static void start_loading(void) {
    loader_started = pthread_create(&loader, NULL, load_thread, NULL) == 0;
}

static void join_loader(void) {
    if (loader_started) pthread_join(loader, NULL);
}

// The process must not end while the background load runs: exit() runs OpenSSL's cleanup
// (an atexit handler libcurl's load registers) and unloads libraries, and the load still going
// on beside them crashes on a freed lock (a run refused at once, e.g. for a configuration
// error, right after the load began). The command line calls this before it exits; it waits a
// few milliseconds at most, and nothing when no load was started.
void ccurl_wait_for_background_load(void) { pthread_once(&joined_once, join_loader); }

void ccurl_load_in_background(void) { pthread_once(&background_once, start_loading); }

CURL *ccurl_easy_init(void) { return curl.easy_init(); }
void ccurl_easy_cleanup(CURL *handle) { curl.easy_cleanup(handle); }
void ccurl_easy_reset(CURL *handle) { curl.easy_reset(handle); }
const char *ccurl_easy_strerror(CURLcode code) { return curl.easy_strerror(code); }
CURLM *ccurl_multi_init(void) { return curl.multi_init(); }
CURLMcode ccurl_multi_cleanup(CURLM *multi) { return curl.multi_cleanup(multi); }
CURLMcode ccurl_multi_add_handle(CURLM *multi, CURL *handle) { return curl.multi_add_handle(multi, handle); }
CURLMcode ccurl_multi_remove_handle(CURLM *multi, CURL *handle) { return curl.multi_remove_handle(multi, handle); }
CURLMcode ccurl_multi_perform(CURLM *multi, int *running) { return curl.multi_perform(multi, running); }
CURLMcode ccurl_multi_wait(CURLM *multi, int timeout_ms) { return curl.multi_wait(multi, NULL, 0, timeout_ms, NULL); }
CURLMcode ccurl_multi_timeout(CURLM *multi, long *timeout) { return curl.multi_timeout(multi, timeout); }
CURLMsg *ccurl_multi_info_read(CURLM *multi, int *queued) { return curl.multi_info_read(multi, queued); }
struct curl_slist *ccurl_slist_append(struct curl_slist *list, const char *text) { return curl.slist_append(list, text); }
void ccurl_slist_free_all(struct curl_slist *list) { curl.slist_free_all(list); }

int ccurl_control_socket(CURL *handle) {
    curl_socket_t socket = CURL_SOCKET_BAD;
    if (curl.easy_getinfo(handle, CURLINFO_ACTIVESOCKET, &socket) != CURLE_OK) return -1;
    return socket == CURL_SOCKET_BAD ? -1 : (int)socket;
}

const char *ccurl_entry_path(CURL *handle) {
    char *path = NULL;
    if (curl.easy_getinfo(handle, CURLINFO_FTP_ENTRY_PATH, &path) != CURLE_OK) return NULL;
    return path;
}

CURLcode ccurl_setopt_long(CURL *handle, CURLoption option, long value) {
    return curl.easy_setopt(handle, option, value);
}
CURLcode ccurl_setopt_off(CURL *handle, CURLoption option, curl_off_t value) {
    return curl.easy_setopt(handle, option, value);
}
CURLcode ccurl_setopt_string(CURL *handle, CURLoption option, const char *value) {
    return curl.easy_setopt(handle, option, value);
}
CURLcode ccurl_setopt_slist(CURL *handle, CURLoption option, struct curl_slist *value) {
    return curl.easy_setopt(handle, option, value);
}
CURLcode ccurl_setopt_pointer(CURL *handle, CURLoption option, void *value) {
    return curl.easy_setopt(handle, option, value);
}
CURLcode ccurl_setopt_callback(CURL *handle, CURLoption option, ccurl_data_callback callback) {
    return curl.easy_setopt(handle, option, callback);
}

/// curl's verbose lines ("* text", "> command", "< reply"), with the PASS command masked;
/// transferred data is not printed.
static int ccurl_debug_masked(CURL *handle, curl_infotype type, char *data, size_t size, void *user) {
    (void)handle;
    (void)user;
    const char *prefix;
    switch (type) {
    case CURLINFO_TEXT: prefix = "* "; break;
    case CURLINFO_HEADER_IN: prefix = "< "; break;
    case CURLINFO_HEADER_OUT: prefix = "> "; break;
    default: return 0;
    }
    if (type == CURLINFO_HEADER_OUT && size >= 5 && strncasecmp(data, "PASS ", 5) == 0) {
        fputs("> PASS ****\n", stderr);
        return 0;
    }
    fprintf(stderr, "%s%.*s", prefix, (int)size, data);
    if (size == 0 || data[size - 1] != '\n') fputc('\n', stderr);
    return 0;
}

CURLcode ccurl_verbose_without_secrets(CURL *handle) {
    CURLcode code = curl.easy_setopt(handle, CURLOPT_DEBUGFUNCTION, ccurl_debug_masked);
    if (code != CURLE_OK) return code;
    return curl.easy_setopt(handle, CURLOPT_VERBOSE, 1L);
}

CURLcode ccurl_easy_perform(CURL *handle) { return curl.easy_perform(handle); }

const size_t ccurl_readfunc_abort = CURL_READFUNC_ABORT;
