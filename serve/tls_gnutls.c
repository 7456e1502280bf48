/* The server's TLS files, read and checked with GnuTLS (the library libmicrohttpd uses for
 * HTTPS) before the server starts, so that a bad file is an error naming it rather than a
 * listener that fails to start. Built with the server only (http_stub.c stands in). */
#include <stdlib.h>
#include <string.h>

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#include "serve.h"

/* PEM files: a certificate chain or a key is a few KiB; 1 MiB leaves room for long chains. */
#define TLS_FILE_MAX ((size_t)1 << 20)

static enum beit_status check_cert(const char *path, const char *pem, size_t len,
                                   struct beit_error *err)
{
  gnutls_datum_t d = {(unsigned char *)pem, (unsigned)len};
  gnutls_x509_crt_t *certs = NULL;
  unsigned n = 0;
  int rc = gnutls_x509_crt_list_import2(&certs, &n, &d, GNUTLS_X509_FMT_PEM, 0);
  if (rc < 0)
    return beit_error_set(err, BEIT_STATUS_FORMAT, "--tls-cert %s: not a PEM certificate "
                          "(GnuTLS: %s)", path, gnutls_strerror(rc));
  for (unsigned i = 0; i < n; i++)
    gnutls_x509_crt_deinit(certs[i]);
  gnutls_free(certs);
  if (n == 0)
    return beit_error_set(err, BEIT_STATUS_FORMAT, "--tls-cert %s: no certificate in the file",
                          path);
  return BEIT_STATUS_OK;
}

static enum beit_status check_key(const char *path, const char *pem, size_t len,
                                  struct beit_error *err)
{
  gnutls_datum_t d = {(unsigned char *)pem, (unsigned)len};
  gnutls_x509_privkey_t key;
  int rc = gnutls_x509_privkey_init(&key);
  if (rc < 0)
    return beit_error_set(err, BEIT_STATUS_NOMEM, "--tls-key %s: GnuTLS: %s", path,
                          gnutls_strerror(rc));
  rc = gnutls_x509_privkey_import2(key, &d, GNUTLS_X509_FMT_PEM, NULL, 0);
  gnutls_x509_privkey_deinit(key);
  if (rc < 0)
    return beit_error_set(err, BEIT_STATUS_FORMAT, "--tls-key %s: not an unencrypted PEM "
                          "private key (GnuTLS: %s)", path, gnutls_strerror(rc));
  return BEIT_STATUS_OK;
}

/* The pair as the server will load it: the key must be the certificate's. */
static enum beit_status check_pair(const char *cert_path, const char *key_path,
                                   const char *cert, size_t cert_len, const char *key,
                                   size_t key_len, struct beit_error *err)
{
  gnutls_certificate_credentials_t cred;
  int rc = gnutls_certificate_allocate_credentials(&cred);
  if (rc < 0)
    return beit_error_set(err, BEIT_STATUS_NOMEM, "TLS: GnuTLS: %s", gnutls_strerror(rc));
  gnutls_datum_t c = {(unsigned char *)cert, (unsigned)cert_len};
  gnutls_datum_t k = {(unsigned char *)key, (unsigned)key_len};
  rc = gnutls_certificate_set_x509_key_mem2(cred, &c, &k, GNUTLS_X509_FMT_PEM, NULL, 0);
  gnutls_certificate_free_credentials(cred);
  if (rc == GNUTLS_E_CERTIFICATE_KEY_MISMATCH)
    return beit_error_set(err, BEIT_STATUS_CONFIG, "--tls-key %s is not the private key of the "
                          "certificate in --tls-cert %s", key_path, cert_path);
  if (rc < 0)
    return beit_error_set(err, BEIT_STATUS_FORMAT, "--tls-cert %s with --tls-key %s: GnuTLS: %s",
                          cert_path, key_path, gnutls_strerror(rc));
  return BEIT_STATUS_OK;
}

enum beit_status beit_serve_tls_load(const char *cert_path, const char *key_path, char **cert_pem,
                                     char **key_pem, int *key_shared, struct beit_error *err)
{
  char *cert = NULL, *key = NULL;
  size_t cert_len, key_len;
  int cert_shared;
  *cert_pem = *key_pem = NULL;
  enum beit_status st;
  if ((st = beit_serve_file_read(cert_path, "--tls-cert", TLS_FILE_MAX, &cert, &cert_len,
                                 &cert_shared, err)) ||
      (st = check_cert(cert_path, cert, cert_len, err)) ||
      (st = beit_serve_file_read(key_path, "--tls-key", TLS_FILE_MAX, &key, &key_len, key_shared,
                                 err)) ||
      (st = check_key(key_path, key, key_len, err)) ||
      (st = check_pair(cert_path, key_path, cert, cert_len, key, key_len, err)))
    goto free_files;
  *cert_pem = cert;
  *key_pem = key;
  return BEIT_STATUS_OK;
free_files:
  free(cert);
  beit_serve_secret_free(key);
  return st;
}
