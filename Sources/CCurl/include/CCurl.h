// Typed wrappers of libcurl's variadic calls, which Swift cannot call directly.
// One function per argument kind: curl reads a `long` for integer options, a `curl_off_t` for
// sizes, a pointer for strings, lists, user data and callbacks.
#pragma once
#include <curl/curl.h>

/// A data callback: write (download, server replies) or read (upload).
typedef size_t (*ccurl_data_callback)(char *buffer, size_t size, size_t count, void *userdata);

/// curl_global_init once for the process (thread-safe).
CURLcode ccurl_global_init(void);

CURLcode ccurl_setopt_long(CURL *handle, CURLoption option, long value);
CURLcode ccurl_setopt_off(CURL *handle, CURLoption option, curl_off_t value);
CURLcode ccurl_setopt_string(CURL *handle, CURLoption option, const char *value);
CURLcode ccurl_setopt_slist(CURL *handle, CURLoption option, struct curl_slist *value);
CURLcode ccurl_setopt_pointer(CURL *handle, CURLoption option, void *value);
CURLcode ccurl_setopt_callback(CURL *handle, CURLoption option, ccurl_data_callback callback);

CURLcode ccurl_getinfo_long(CURL *handle, CURLINFO info, long *value);
CURLcode ccurl_getinfo_off(CURL *handle, CURLINFO info, curl_off_t *value);

/// CURL_READFUNC_ABORT, a macro Swift cannot import.
extern const size_t ccurl_readfunc_abort;
/// CURL_WRITEFUNC_PAUSE / CURL_READFUNC_PAUSE.
extern const size_t ccurl_func_pause;
