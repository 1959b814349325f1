#include "server/client_identity.h"

#include <gtest/gtest.h>

namespace chorus::server {
namespace {

TEST(ClientIdentities, ConnectionsAreFoundByTheirPeerName) {
  ClientIdentities ids;
  ids.set(17, "alice");
  EXPECT_EQ(ids.user_of_peer("fd:17"), "alice");
  EXPECT_EQ(ids.user_of_peer("fd:18"), "");
  EXPECT_EQ(ids.user_of_peer("fd:17x"), "");
  EXPECT_EQ(ids.user_of_peer("ipv4:127.0.0.1:17"), "");
  EXPECT_EQ(ids.user_of_peer("fd:"), "");
  // The descriptor handed over again, for a plain-text connection: it names nobody now.
  ids.set(17, "");
  EXPECT_EQ(ids.user_of_peer("fd:17"), "");
}

TEST(ClientIdentities, GatewayNamesNeedThisProcesssSecret) {
  ClientIdentities ids;
  ClientIdentities other;
  std::string value = ids.gateway_value("bob");
  ASSERT_TRUE(ids.gateway_user(value).has_value());
  EXPECT_EQ(*ids.gateway_user(value), "bob");
  // Another process's secret, a bare name, a truncated secret: nobody.
  EXPECT_FALSE(other.gateway_user(value).has_value());
  EXPECT_FALSE(ids.gateway_user("bob").has_value());
  EXPECT_FALSE(ids.gateway_user(value.substr(0, 10)).has_value());
  std::string forged = value;
  forged[0] = static_cast<char>(forged[0] ^ 1);
  EXPECT_FALSE(ids.gateway_user(forged).has_value());
}

}  // namespace
}  // namespace chorus::server
