// Typed wrappers of libcurl's variadic calls, which Swift cannot call directly.
// One function per argument kind: curl reads a `long` for integer options, a `curl_off_t` for
// sizes, a pointer for strings, lists, user data and callbacks.
#pragma once
#include <curl/curl.h>

/// A data callback: write (download, server replies) or read (upload).
typedef size_t (*ccurl_data_callback)(char *buffer, size_t size, size_t count, void *userdata);

/// Loads libcurl (dlopen "libcurl.so.4") and runs curl_global_init, once for the process
/// (thread-safe). libcurl and the ~30 libraries it links cost about 8 MiB of resident memory,
/// so a run without an FTP endpoint never loads it. Returns CURLE_FAILED_INIT when it cannot be
/// loaded; `ccurl_load_error` then says why.
CURLcode ccurl_global_init(void);
const char *ccurl_load_error(void);
/// Starts `ccurl_global_init` on a detached thread of its own, once for the process: the loader
/// maps and links libcurl and its libraries (about 4 ms) while the caller goes on.
void ccurl_load_in_background(void);
// Waits for a load `ccurl_load_in_background` started (call before the process exits).
void ccurl_wait_for_background_load(void);

// libcurl's own functions, called through the loaded library.
CURL *ccurl_easy_init(void);
void ccurl_easy_cleanup(CURL *handle);
void ccurl_easy_reset(CURL *handle);
const char *ccurl_easy_strerror(CURLcode code);
CURLM *ccurl_multi_init(void);
CURLMcode ccurl_multi_cleanup(CURLM *multi);
CURLMcode ccurl_multi_add_handle(CURLM *multi, CURL *handle);
CURLMcode ccurl_multi_remove_handle(CURLM *multi, CURL *handle);
CURLMcode ccurl_multi_perform(CURLM *multi, int *running);
/// curl_multi_wait, not curl_multi_poll: when curl has no socket to wait on (after a passive-mode
/// reply it connects the data channel on the next perform) it returns at once instead of
/// sleeping the whole timeout.
CURLMcode ccurl_multi_wait(CURLM *multi, int timeout_ms);
CURLMcode ccurl_multi_timeout(CURLM *multi, long *timeout);
CURLMsg *ccurl_multi_info_read(CURLM *multi, int *queued);
struct curl_slist *ccurl_slist_append(struct curl_slist *list, const char *text);
void ccurl_slist_free_all(struct curl_slist *list);

/// The connection's socket after a finished request (CURLINFO_ACTIVESOCKET), or -1.
int ccurl_control_socket(CURL *handle);

/// The directory the login landed in, as curl read it from its own `PWD` after logging in
/// (CURLINFO_FTP_ENTRY_PATH), or NULL when it has none. Owned by curl.
const char *ccurl_entry_path(CURL *handle);

CURLcode ccurl_setopt_long(CURL *handle, CURLoption option, long value);
CURLcode ccurl_setopt_off(CURL *handle, CURLoption option, curl_off_t value);
CURLcode ccurl_setopt_string(CURL *handle, CURLoption option, const char *value);
CURLcode ccurl_setopt_slist(CURL *handle, CURLoption option, struct curl_slist *value);
CURLcode ccurl_setopt_pointer(CURL *handle, CURLoption option, void *value);
CURLcode ccurl_setopt_callback(CURL *handle, CURLoption option, ccurl_data_callback callback);

/// CURLOPT_VERBOSE with curl's dialogue printed on stderr by a debug callback that shows
/// `PASS ****` instead of the password (curl's own verbose output prints it in clear).
CURLcode ccurl_verbose_without_secrets(CURL *handle);

// One request at a time on an easy handle (the pings).
CURLcode ccurl_easy_perform(CURL *handle);

/// CURL_READFUNC_ABORT, a macro Swift cannot import.
extern const size_t ccurl_readfunc_abort;
