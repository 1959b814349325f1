#include "server/gateway_json.h"

#include <google/protobuf/message.h>
#include <google/protobuf/util/json_util.h>

#include <vector>

namespace chorus::server {
namespace {

// Whether `m` or any message inside it holds fields its type does not define. Protobuf's JSON
// parser lets some through (an empty key becomes unknown field 1); the gateway refuses them
// like any other unknown field.
bool has_unknown_fields(const google::protobuf::Message& m) {
  const google::protobuf::Reflection* r = m.GetReflection();
  if (r->GetUnknownFields(m).field_count() > 0) return true;
  std::vector<const google::protobuf::FieldDescriptor*> fields;
  r->ListFields(m, &fields);
  for (const google::protobuf::FieldDescriptor* f : fields) {
    if (f->cpp_type() != google::protobuf::FieldDescriptor::CPPTYPE_MESSAGE) continue;
    if (f->is_repeated()) {
      for (int i = 0; i < r->FieldSize(m, f); ++i)
        if (has_unknown_fields(r->GetRepeatedMessage(m, f, i))) return true;
    } else if (has_unknown_fields(r->GetMessage(m, f))) {
      return true;
    }
  }
  return false;
}

}  // namespace

bool parse_gateway_body(const std::string& body, google::protobuf::Message* m, std::string* error) {
  if (body.find_first_not_of(" \t\r\n") == std::string::npos) return true;
  google::protobuf::util::JsonParseOptions o;
  o.ignore_unknown_fields = false;
  auto st = google::protobuf::util::JsonStringToMessage(body, m, o);
  if (!st.ok()) {
    *error = std::string(st.message());
    return false;
  }
  if (has_unknown_fields(*m)) {
    *error = "a field name the request does not have";
    return false;
  }
  return true;
}

std::string gateway_json(const google::protobuf::Message& m) {
  google::protobuf::util::JsonPrintOptions o;
  o.preserve_proto_field_names = true;
  std::string out;
  if (!google::protobuf::util::MessageToJsonString(m, &out, o).ok()) return "{}";
  return out;
}

}  // namespace chorus::server
