// etcd's --discovery-srv: the initial cluster found in DNS. The members are the targets of the
// SRV records _etcd-server-ssl[-<name>]._tcp.<domain> (https peer URLs) and
// _etcd-server[-<name>]._tcp.<domain> (http); this member is the record whose target and port
// resolve to the address and port of one of its --initial-advertise-peer-urls, and the others
// are named 0, 1, ... until they publish their names, as in etcd.
//
// Lookups go through the C library's resolver (libresolv): the name servers of
// /etc/resolv.conf, or --discovery-srv-resolver's. Record targets resolve as any host name.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "server/config.h"
#include "storage/status.h"

namespace chorus::server {

struct SrvRecord {
  std::string target;  // without the trailing dot
  uint16_t port = 0;
};

// The SRV records in a DNS answer (`message`, as received); an error for a malformed one.
storage::Status parse_srv_answer(const unsigned char* message, int size,
                                 std::vector<SrvRecord>* out);

// Queries `name` for SRV records through `resolver` ("10.0.0.2:53"; empty: the system's).
// No records (NXDOMAIN, or an empty answer) is ok with *out empty.
storage::Status lookup_srv(const std::string& name, const std::string& resolver,
                           std::vector<SrvRecord>* out);

// The --initial-cluster text ("m1=https://a.example:2380,0=https://b.example:2380,...") from the
// records of --discovery-srv, with this member's entry under its --name. An error when DNS has
// none, or none of them is this member.
storage::Status discover_srv_cluster(const ServerConfig& cfg, std::string* initial_cluster);

}  // namespace chorus::server
