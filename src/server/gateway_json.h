// The HTTP/JSON gateway's conversions (gateway.h), apart so the fuzz target can take them alone:
// protobuf's own JSON mapping, as etcd's grpc-gateway uses it (bytes as base64, 64-bit integers
// as strings, the .proto files' field names on output; either spelling accepted on input).
#pragma once

#include <string>

namespace google::protobuf {
class Message;
}

namespace chorus::server {

// A request body into `m`. An empty body (or only white space) is the message's defaults, as
// grpc-gateway takes it; unknown fields are refused. *error says what is wrong.
bool parse_gateway_body(const std::string& body, google::protobuf::Message* m, std::string* error);
// A response as the gateway writes it.
std::string gateway_json(const google::protobuf::Message& m);

}  // namespace chorus::server
