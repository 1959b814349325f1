#include "server/gateway_json.h"

#include <google/protobuf/message.h>
#include <google/protobuf/util/json_util.h>

namespace chorus::server {

bool parse_gateway_body(const std::string& body, google::protobuf::Message* m, std::string* error) {
  if (body.find_first_not_of(" \t\r\n") == std::string::npos) return true;
  google::protobuf::util::JsonParseOptions o;
  o.ignore_unknown_fields = false;
  auto st = google::protobuf::util::JsonStringToMessage(body, m, o);
  if (st.ok()) return true;
  *error = std::string(st.message());
  return false;
}

std::string gateway_json(const google::protobuf::Message& m) {
  google::protobuf::util::JsonPrintOptions o;
  o.preserve_proto_field_names = true;
  std::string out;
  if (!google::protobuf::util::MessageToJsonString(m, &out, o).ok()) return "{}";
  return out;
}

}  // namespace chorus::server
