#include "server/srv_discovery.h"

#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <netdb.h>
#include <netinet/in.h>
#include <resolv.h>

#include <algorithm>
#include <array>
#include <cstring>

namespace chorus::server {
namespace {

using storage::Status;

// Every "ip:port" text `host`:`port` resolves to (IPv4 and IPv6).
std::vector<std::string> resolve(const std::string& host, uint16_t port) {
  std::vector<std::string> out;
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  if (getaddrinfo(host.c_str(), nullptr, &hints, &found) != 0) return out;
  for (addrinfo* a = found; a != nullptr; a = a->ai_next) {
    std::array<char, INET6_ADDRSTRLEN> text{};
    const void* addr =
        a->ai_family == AF_INET
            ? static_cast<const void*>(&reinterpret_cast<sockaddr_in*>(a->ai_addr)->sin_addr)
            : static_cast<const void*>(&reinterpret_cast<sockaddr_in6*>(a->ai_addr)->sin6_addr);
    if (inet_ntop(a->ai_family, addr, text.data(), text.size()) == nullptr) continue;
    std::string key = std::string(text.data()) + ":" + std::to_string(port);
    if (std::find(out.begin(), out.end(), key) == out.end()) out.push_back(key);
  }
  freeaddrinfo(found);
  return out;
}

// A private resolver state: the system's, or one asking only `resolver` (IPv4 host:port).
Status init_resolver(const std::string& resolver, struct __res_state* st) {
  std::memset(st, 0, sizeof(*st));
  if (res_ninit(st) != 0) return Status::io_error("cannot initialize the DNS resolver");
  if (resolver.empty()) return Status::ok();
  size_t colon = resolver.rfind(':');
  std::string host = resolver.substr(0, colon);
  int port = colon == std::string::npos ? 53 : std::atoi(resolver.c_str() + colon + 1);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  if (inet_pton(AF_INET, host.c_str(), &addr.sin_addr) != 1 || port <= 0 || port > 65535) {
    res_nclose(st);
    return Status::invalid_argument("--discovery-srv-resolver '" + resolver +
                                    "' is not an IPv4 address and port");
  }
  st->nscount = 1;
  st->nsaddr_list[0] = addr;
  return Status::ok();
}

}  // namespace

Status parse_srv_answer(const unsigned char* message, int size, std::vector<SrvRecord>* out) {
  out->clear();
  ns_msg msg;
  if (ns_initparse(message, size, &msg) != 0) return Status::corruption("malformed DNS answer");
  int count = ns_msg_count(msg, ns_s_an);
  for (int i = 0; i < count; ++i) {
    ns_rr rr;
    if (ns_parserr(&msg, ns_s_an, i, &rr) != 0) {
      return Status::corruption("malformed record in a DNS answer");
    }
    if (ns_rr_type(rr) != ns_t_srv) continue;  // a CNAME on the way
    const unsigned char* rdata = ns_rr_rdata(rr);
    if (ns_rr_rdlen(rr) < 7) return Status::corruption("SRV record too short");
    uint16_t port = static_cast<uint16_t>((rdata[4] << 8) | rdata[5]);
    std::array<char, NS_MAXDNAME> name{};
    if (ns_name_uncompress(ns_msg_base(msg), ns_msg_end(msg), rdata + 6, name.data(), name.size()) <
        0) {
      return Status::corruption("malformed SRV target");
    }
    std::string target = name.data();
    while (!target.empty() && target.back() == '.')
      target.pop_back();
    if (target.empty() || port == 0) continue;  // "." means no service
    out->push_back(SrvRecord{target, port});
  }
  return Status::ok();
}

Status lookup_srv(const std::string& name, const std::string& resolver,
                  std::vector<SrvRecord>* out) {
  out->clear();
  struct __res_state st;
  CHORUS_RETURN_IF_ERROR(init_resolver(resolver, &st));
  std::array<unsigned char, 65536> answer{};
  int n = res_nquery(&st, name.c_str(), ns_c_in, ns_t_srv, answer.data(),
                     static_cast<int>(answer.size()));
  int herr = st.res_h_errno;
  res_nclose(&st);
  if (n < 0) {
    if (herr == HOST_NOT_FOUND || herr == NO_DATA) return Status::ok();
    return Status::io_error("DNS lookup of " + name + " failed: " + hstrerror(herr));
  }
  return parse_srv_answer(answer.data(), n, out);
}

Status discover_srv_cluster(const ServerConfig& cfg, std::string* initial_cluster) {
  // This member's advertised peer addresses, resolved, to recognize its own record.
  std::vector<std::string> mine;
  for (const Url& u : cfg.initial_advertise_peer_urls) {
    for (const std::string& a : resolve(u.host, u.port))
      mine.push_back(a);
  }
  const std::string suffix = cfg.discovery_srv_name.empty() ? "" : "-" + cfg.discovery_srv_name;
  std::vector<std::string> parts;
  bool found_self = false;
  int temp_name = 0;
  std::string last_error;
  for (const char* scheme : {"https", "http"}) {
    const std::string service =
        std::string(scheme == std::string("https") ? "_etcd-server-ssl" : "_etcd-server") + suffix +
        "._tcp." + cfg.discovery_srv;
    std::vector<SrvRecord> records;
    Status st = lookup_srv(service, cfg.discovery_srv_resolver, &records);
    if (!st.is_ok()) {
      last_error = st.to_string();
      continue;
    }
    for (const SrvRecord& r : records) {
      std::vector<std::string> addrs = resolve(r.target, r.port);
      if (addrs.empty()) {
        last_error = "cannot resolve " + r.target + ", the target of an SRV record of " + service;
        continue;
      }
      bool self = std::any_of(addrs.begin(), addrs.end(), [&](const std::string& a) {
        return std::find(mine.begin(), mine.end(), a) != mine.end();
      });
      std::string name = self ? cfg.name : std::to_string(temp_name++);
      found_self = found_self || self;
      std::string host = r.target.find(':') == std::string::npos ? r.target : "[" + r.target + "]";
      parts.push_back(name + "=" + scheme + "://" + host + ":" + std::to_string(r.port));
    }
  }
  if (parts.empty()) {
    return Status::not_found("--discovery-srv " + cfg.discovery_srv + ": no SRV record found" +
                             (last_error.empty() ? "" : " (" + last_error + ")"));
  }
  if (!found_self) {
    return Status::not_found("--discovery-srv " + cfg.discovery_srv +
                             ": no SRV record matches this member's "
                             "--initial-advertise-peer-urls " +
                             join_urls(cfg.initial_advertise_peer_urls));
  }
  initial_cluster->clear();
  for (const std::string& p : parts)
    *initial_cluster += (initial_cluster->empty() ? "" : ",") + p;
  return Status::ok();
}

}  // namespace chorus::server
