#include "server/srv_discovery.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <memory>
#include <random>

namespace chorus::server {
namespace {

void put16(std::vector<unsigned char>* m, unsigned v) {
  m->push_back(static_cast<unsigned char>(v >> 8));
  m->push_back(static_cast<unsigned char>(v));
}

void put_name(std::vector<unsigned char>* m, const std::string& dotted) {
  size_t start = 0;
  while (start < dotted.size()) {
    size_t dot = dotted.find('.', start);
    if (dot == std::string::npos) dot = dotted.size();
    m->push_back(static_cast<unsigned char>(dot - start));
    m->insert(m->end(), dotted.begin() + static_cast<long>(start),
              dotted.begin() + static_cast<long>(dot));
    start = dot + 1;
  }
  m->push_back(0);
}

// A DNS answer to an SRV question, one record per (target, port), the owner name compressed.
std::vector<unsigned char> srv_answer(const std::vector<std::pair<std::string, unsigned>>& rrs) {
  std::vector<unsigned char> m;
  for (unsigned v : {0x1234u, 0x8180u, 1u, static_cast<unsigned>(rrs.size()), 0u, 0u})
    put16(&m, v);
  put_name(&m, "_etcd-server._tcp.chorus.test");
  put16(&m, 33);  // SRV
  put16(&m, 1);   // IN
  for (const auto& [target, port] : rrs) {
    put16(&m, 0xC00C);  // the question's name
    put16(&m, 33);
    put16(&m, 1);
    put16(&m, 0);
    put16(&m, 60);  // TTL
    std::vector<unsigned char> rdata;
    put16(&rdata, 0);  // priority
    put16(&rdata, 0);  // weight
    put16(&rdata, port);
    put_name(&rdata, target);
    put16(&m, static_cast<unsigned>(rdata.size()));
    m.insert(m.end(), rdata.begin(), rdata.end());
  }
  return m;
}

TEST(SrvDiscovery, ParsesTheRecordsOfAnAnswer) {
  auto m = srv_answer({{"m1.chorus.test", 2380}, {"m2.chorus.test", 12380}});
  std::vector<SrvRecord> out;
  ASSERT_TRUE(parse_srv_answer(m.data(), static_cast<int>(m.size()), &out).is_ok());
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0].target, "m1.chorus.test");
  EXPECT_EQ(out[0].port, 2380);
  EXPECT_EQ(out[1].target, "m2.chorus.test");
  EXPECT_EQ(out[1].port, 12380);
}

TEST(SrvDiscovery, MalformedAnswersAreErrorsNeverCrashes) {
  auto good = srv_answer({{"m1.chorus.test", 2380}});
  std::vector<SrvRecord> out;
  // Each input in a buffer of exactly its size, so a read past its end is one AddressSanitizer
  // sees.
  auto parse = [&](const std::vector<unsigned char>& bytes, size_t size) {
    std::unique_ptr<unsigned char[]> exact(new unsigned char[std::max<size_t>(size, 1)]);
    std::copy(bytes.begin(), bytes.begin() + static_cast<long>(size), exact.get());
    return parse_srv_answer(exact.get(), static_cast<int>(size), &out).is_ok();
  };
  for (size_t cut = 0; cut < good.size(); ++cut)
    EXPECT_FALSE(parse(good, cut)) << "a truncated answer parsed, cut at " << cut;
  EXPECT_TRUE(parse(good, good.size()));
  std::mt19937 rng(7);
  for (int i = 0; i < 2000; ++i) {
    auto m = good;
    m[rng() % m.size()] = static_cast<unsigned char>(rng());
    (void)parse(m, m.size());
  }
  EXPECT_FALSE(parse_srv_answer(good.data(), 5, &out).is_ok());
}

TEST(SrvDiscovery, TheDiscoveredClusterGivesEveryMemberTheSameIds) {
  const std::string found =
      "m1=http://localhost:2380,0=http://m2.chorus.test:2380,1=http://m3.chorus.test:2380";
  ServerConfig a;
  a.name = "m1";
  a.discovery_srv = "chorus.test";
  std::string error;
  ASSERT_TRUE(adopt_discovered_cluster(found, &a, &error)) << error;
  EXPECT_EQ(join_urls(a.initial_advertise_peer_urls), "http://localhost:2380");
  ServerConfig b;
  b.name = "m2";
  b.discovery_srv = "chorus.test";
  ASSERT_TRUE(adopt_discovered_cluster(
      "0=http://localhost:2380,m2=http://m2.chorus.test:2380,1=http://m3.chorus.test:2380", &b,
      &error))
      << error;
  EXPECT_EQ(a.cluster_id, b.cluster_id);
  EXPECT_EQ(a.initial_cluster[1].id, b.member_id);
  ServerConfig tls;
  tls.name = "m1";
  tls.peer_tls = true;
  EXPECT_FALSE(adopt_discovered_cluster(found, &tls, &error));
  EXPECT_NE(error.find("scheme"), std::string::npos) << error;
}

}  // namespace
}  // namespace chorus::server
