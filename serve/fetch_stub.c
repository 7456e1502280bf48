/* Stand-in for fetch_curl.c when the build has no libcurl: every URL is refused. */
#include "serve.h"

enum beit_status beit_infer_fetch_url(const char *url, size_t max_bytes, double timeout_s,
                                      int allow_private, uint8_t **data, size_t *size,
                                      struct beit_error *err)
{
  (void)url, (void)max_bytes, (void)timeout_s, (void)allow_private;
  *data = NULL;
  *size = 0;
  return beit_error_set(err, BEIT_STATUS_UNSUPPORTED, "URL inputs need libcurl; this build has none");
}
