/* Network address classes: which addresses URL inputs may reach (beit_infer_address_public in
 * infer.h, the filter fetch_curl.c applies to every socket it opens), and whether the server's
 * --host is loopback (beit_serve_host_loopback: elsewhere a bearer token is required). */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>

#include "beit/serve.h"

/* An IPv4 address (host order) that a server on the public internet may have. */
static int ipv4_public(uint32_t a)
{
  static const struct {
    uint32_t net, mask;
  } blocked[] = {
      {0x00000000u, 0xff000000u}, /* 0.0.0.0/8 "this network" */
      {0x0a000000u, 0xff000000u}, /* 10/8 private */
      {0x64400000u, 0xffc00000u}, /* 100.64/10 carrier-grade NAT */
      {0x7f000000u, 0xff000000u}, /* 127/8 loopback */
      {0xa9fe0000u, 0xffff0000u}, /* 169.254/16 link-local, cloud metadata */
      {0xac100000u, 0xfff00000u}, /* 172.16/12 private */
      {0xc0000000u, 0xffffff00u}, /* 192.0.0/24 protocol assignments */
      {0xc0a80000u, 0xffff0000u}, /* 192.168/16 private */
      {0xc6120000u, 0xfffe0000u}, /* 198.18/15 benchmarking */
      {0xe0000000u, 0xe0000000u}, /* 224/3 multicast, reserved, broadcast */
  };
  for (size_t i = 0; i < sizeof blocked / sizeof blocked[0]; i++)
    if ((a & blocked[i].mask) == blocked[i].net)
      return 0;
  return 1;
}

int beit_infer_address_public(const struct sockaddr *sa)
{
  if (sa->sa_family == AF_INET)
    return ipv4_public(ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr));
  if (sa->sa_family != AF_INET6)
    return 0;
  const uint8_t *b = ((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr;
  static const uint8_t v4_mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  static const uint8_t nat64[12] = {0, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0};
  if (!memcmp(b, v4_mapped, 12) || !memcmp(b, nat64, 12)) /* an IPv4 address inside */
    return ipv4_public((uint32_t)b[12] << 24 | (uint32_t)b[13] << 16 | (uint32_t)b[14] << 8 |
                       b[15]);
  int zero_prefix = 1; /* ::, ::1 and the deprecated IPv4-compatible ::a.b.c.d */
  for (int i = 0; i < 12; i++)
    zero_prefix &= b[i] == 0;
  if (zero_prefix)
    return 0;
  if ((b[0] & 0xfe) == 0xfc || (b[0] == 0xfe && (b[1] & 0xc0) == 0x80) || b[0] == 0xff)
    return 0; /* fc00::/7 unique local, fe80::/10 link-local, ff00::/8 multicast */
  return 1;
}

int beit_serve_host_loopback(const char *host)
{
  struct in_addr a4;
  struct in6_addr a6;
  if (inet_pton(AF_INET, host, &a4) == 1)
    return (ntohl(a4.s_addr) & 0xff000000u) == 0x7f000000u; /* 127/8 */
  if (inet_pton(AF_INET6, host, &a6) != 1)
    return -1;
  const uint8_t *b = a6.s6_addr;
  static const uint8_t v4_mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  static const uint8_t v6_loopback[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
  if (!memcmp(b, v4_mapped, 12))
    return b[12] == 127; /* ::ffff:127.x.y.z */
  return !memcmp(b, v6_loopback, 16);
}
