/* Base64 (RFC 4648 section 4, and the URL-safe alphabet of section 5) for image payloads.
 * Lenient where clients differ (whitespace from line-wrapping encoders, missing padding), strict
 * where input is simply wrong (a foreign character, a lone trailing character, data after
 * padding, non-zero bits in the last character). */
#include "serve.h"

static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* 0..63, or -1 (not in either alphabet). */
static int value_of(unsigned char c)
{
  if (c >= 'A' && c <= 'Z')
    return c - 'A';
  if (c >= 'a' && c <= 'z')
    return c - 'a' + 26;
  if (c >= '0' && c <= '9')
    return c - '0' + 52;
  if (c == '+' || c == '-')
    return 62;
  if (c == '/' || c == '_')
    return 63;
  return -1;
}

static int is_space(unsigned char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

size_t beit_base64_max_decoded(size_t n) { return n / 4 * 3 + 3; }

int beit_base64_decode(uint8_t *out, size_t *out_len, const char *in, size_t n, size_t *bad_pos,
                       const char **why)
{
  uint32_t acc = 0;
  size_t quad = 0, len = 0, pad = 0, last = 0; /* quad: characters in the current group */
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)in[i];
    if (is_space(c))
      continue;
    if (c == '=') {
      if (quad < 2) {
        *bad_pos = i;
        *why = "misplaced padding '='";
        return -1;
      }
      pad++;
      if (quad + pad > 4) {
        *bad_pos = i;
        *why = "too much padding";
        return -1;
      }
      continue;
    }
    if (pad) {
      *bad_pos = i;
      *why = "data after padding";
      return -1;
    }
    int v = value_of(c);
    if (v < 0) {
      *bad_pos = i;
      *why = "character outside the base64 alphabet";
      return -1;
    }
    acc = acc << 6 | (uint32_t)v;
    last = i;
    if (++quad == 4) {
      out[len++] = (uint8_t)(acc >> 16);
      out[len++] = (uint8_t)(acc >> 8);
      out[len++] = (uint8_t)acc;
      acc = 0;
      quad = 0;
    }
  }
  if (pad && quad + pad != 4) {
    *bad_pos = n;
    *why = "incomplete padding";
    return -1;
  }
  if (quad == 1) {
    *bad_pos = last;
    *why = "length is not a whole number of bytes";
    return -1;
  }
  if (quad == 2) {
    if (acc & 0xF) {
      *bad_pos = last;
      *why = "non-zero bits after the last byte";
      return -1;
    }
    out[len++] = (uint8_t)(acc >> 4);
  } else if (quad == 3) {
    if (acc & 0x3) {
      *bad_pos = last;
      *why = "non-zero bits after the last byte";
      return -1;
    }
    out[len++] = (uint8_t)(acc >> 10);
    out[len++] = (uint8_t)(acc >> 2);
  }
  *out_len = len;
  return 0;
}

size_t beit_base64_encode(char *out, const uint8_t *in, size_t n)
{
  size_t o = 0, i = 0;
  for (; i + 3 <= n; i += 3) {
    uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
    out[o++] = alphabet[v >> 18];
    out[o++] = alphabet[(v >> 12) & 63];
    out[o++] = alphabet[(v >> 6) & 63];
    out[o++] = alphabet[v & 63];
  }
  if (n - i == 1) {
    uint32_t v = (uint32_t)in[i] << 16;
    out[o++] = alphabet[v >> 18];
    out[o++] = alphabet[(v >> 12) & 63];
    out[o++] = '=';
    out[o++] = '=';
  } else if (n - i == 2) {
    uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
    out[o++] = alphabet[v >> 18];
    out[o++] = alphabet[(v >> 12) & 63];
    out[o++] = alphabet[(v >> 6) & 63];
    out[o++] = '=';
  }
  return o;
}
