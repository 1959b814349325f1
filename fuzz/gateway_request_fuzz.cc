// libFuzzer target: arbitrary bytes as an HTTP/JSON gateway request: the head through the
// request parser, the body through the JSON decoding of one of the gateway's request types
// (chosen by the first byte). Neither may crash; a head that parses answers its lookups; a body
// that decodes must survive the gateway's own encoding and decode to the same message.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>

#include "etcd/etcdserver/etcdserverpb/rpc.pb.h"
#include "server/gateway_json.h"
#include "server/http_server.h"

namespace {

void check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "gateway_request_fuzz: %s\n", what);
    std::abort();
  }
}

std::unique_ptr<google::protobuf::Message> message_for(uint8_t kind) {
  namespace pb = etcdserverpb;
  switch (kind % 8) {
    case 0:
      return std::make_unique<pb::RangeRequest>();
    case 1:
      return std::make_unique<pb::PutRequest>();
    case 2:
      return std::make_unique<pb::TxnRequest>();
    case 3:
      return std::make_unique<pb::WatchRequest>();
    case 4:
      return std::make_unique<pb::LeaseGrantRequest>();
    case 5:
      return std::make_unique<pb::AuthRoleGrantPermissionRequest>();
    case 6:
      return std::make_unique<pb::MemberAddRequest>();
    default:
      return std::make_unique<pb::DeleteRangeRequest>();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  std::string_view input(reinterpret_cast<const char*>(data) + 1, size - 1);
  size_t end = input.find("\r\n\r\n");
  std::string_view head = input.substr(0, end == std::string_view::npos ? input.size() : end + 2);
  auto parsed = chorus::server::parse_request_head(head);
  if (auto* r = std::get_if<chorus::server::HttpRequestHead>(&parsed)) {
    check(!r->path.empty() && r->path.front() == '/', "a parsed path does not start with /");
    (void)r->header("content-length");
  }
  std::string body(end == std::string_view::npos ? input : input.substr(end + 4));
  auto m = message_for(data[0]);
  std::string error;
  if (chorus::server::parse_gateway_body(body, m.get(), &error)) {
    std::string json = chorus::server::gateway_json(*m);
    auto again = message_for(data[0]);
    check(chorus::server::parse_gateway_body(json, again.get(), &error),
          "the gateway's own JSON does not decode");
    check(again->SerializeAsString() == m->SerializeAsString(),
          "a request does not survive the gateway's JSON");
  }
  return 0;
}
