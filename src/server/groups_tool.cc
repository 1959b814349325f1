// chorus-groups: Chorus's data groups from the command line, over the Groups gRPC service
// (src/etcdpb/chorus/groups.proto) of one member's client URL.
//
//   chorus-groups [--endpoint HOST:PORT] directory
//   chorus-groups [--endpoint HOST:PORT] create [--id N] [--replicas ID,ID,...]
//   chorus-groups [--endpoint HOST:PORT] delete GROUP
//   chorus-groups [--endpoint HOST:PORT] add-replica GROUP MEMBER
//   chorus-groups [--endpoint HOST:PORT] remove-replica GROUP MEMBER
//   chorus-groups [--endpoint HOST:PORT] list
//   chorus-groups [--endpoint HOST:PORT] put GROUP KEY VALUE
//   chorus-groups [--endpoint HOST:PORT] get GROUP KEY [--serializable]
//
// Member ids are hexadecimal, as etcdctl prints them. Output is one JSON object per line; errors
// go to stderr with the server's message and exit status 1 (2 for bad usage).
#include <grpcpp/grpcpp.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "chorus/groups.grpc.pb.h"

namespace {

namespace gpb = chorus::groups::v1;

int usage() {
  std::fprintf(stderr,
               "usage: chorus-groups [--endpoint HOST:PORT] COMMAND ...\n"
               "  directory                              every group of the cluster\n"
               "  create [--id N] [--replicas ID,ID,..]  a new group (member ids in hex)\n"
               "  delete GROUP                           a group and its data, everywhere\n"
               "  add-replica GROUP MEMBER               a replica on one more member\n"
               "  remove-replica GROUP MEMBER            a replica off a member\n"
               "  list                                   the groups hosted by this member\n"
               "  put GROUP KEY VALUE\n"
               "  get GROUP KEY [--serializable]\n");
  return 2;
}

std::string hex(uint64_t id) {
  char buf[17];
  std::snprintf(buf, sizeof(buf), "%llx", static_cast<unsigned long long>(id));
  return buf;
}

bool parse_u64(const std::string& s, int base, uint64_t* out) {
  if (s.empty()) return false;
  char* end = nullptr;
  errno = 0;
  unsigned long long v = std::strtoull(s.c_str(), &end, base);
  if (errno != 0 || *end != '\0' || s[0] == '-') return false;
  *out = v;
  return true;
}

std::string json_string(const std::string& s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof(buf), "\\u%04x", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out + "\"";
}

std::string descriptor_json(const gpb::GroupDescriptor& g) {
  std::string out = "{\"group\":" + std::to_string(g.id()) + ",\"replicas\":[";
  for (int i = 0; i < g.replicas_size(); ++i)
    out += (i > 0 ? ",\"" : "\"") + hex(g.replicas(i)) + "\"";
  return out + "]}";
}

int fail(const grpc::Status& st) {
  std::fprintf(stderr, "chorus-groups: %s\n", st.error_message().c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  std::string endpoint = "127.0.0.1:2379";
  std::vector<std::string> args;
  uint64_t id = 0;
  std::vector<uint64_t> replicas;
  bool serializable = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if ((a == "--endpoint" || a == "--id" || a == "--replicas") && i + 1 == argc) return usage();
    if (a == "--endpoint") {
      endpoint = argv[++i];
    } else if (a == "--id") {
      if (!parse_u64(argv[++i], 10, &id)) return usage();
    } else if (a == "--replicas") {
      std::string list = argv[++i];
      size_t start = 0;
      while (start <= list.size()) {
        size_t comma = list.find(',', start);
        if (comma == std::string::npos) comma = list.size();
        uint64_t member = 0;
        if (!parse_u64(list.substr(start, comma - start), 16, &member)) return usage();
        replicas.push_back(member);
        start = comma + 1;
      }
    } else if (a == "--serializable") {
      serializable = true;
    } else if (a.rfind("--", 0) == 0) {
      std::fprintf(stderr, "chorus-groups: unknown flag '%s'\n", a.c_str());
      return usage();
    } else {
      args.push_back(a);
    }
  }
  if (args.empty()) return usage();
  const std::string& command = args[0];
  auto stub =
      gpb::Groups::NewStub(grpc::CreateChannel(endpoint, grpc::InsecureChannelCredentials()));
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(15));
  uint64_t group = 0;
  if (command == "directory" && args.size() == 1) {
    gpb::DirectoryResponse resp;
    grpc::Status st = stub->Directory(&ctx, gpb::DirectoryRequest{}, &resp);
    if (!st.ok()) return fail(st);
    for (const gpb::GroupDescriptor& g : resp.groups())
      std::printf("%s\n", descriptor_json(g).c_str());
  } else if (command == "create" && args.size() == 1) {
    gpb::CreateGroupRequest req;
    req.set_group(id);
    for (uint64_t r : replicas)
      req.add_replicas(r);
    gpb::CreateGroupResponse resp;
    grpc::Status st = stub->CreateGroup(&ctx, req, &resp);
    if (!st.ok()) return fail(st);
    std::printf("%s\n", descriptor_json(resp.group()).c_str());
  } else if (command == "delete" && args.size() == 2 && parse_u64(args[1], 10, &group)) {
    gpb::DeleteGroupRequest req;
    req.set_group(group);
    gpb::DeleteGroupResponse resp;
    grpc::Status st = stub->DeleteGroup(&ctx, req, &resp);
    if (!st.ok()) return fail(st);
    std::printf("%s\n", descriptor_json(resp.group()).c_str());
  } else if ((command == "add-replica" || command == "remove-replica") && args.size() == 3 &&
             parse_u64(args[1], 10, &group)) {
    gpb::ReplicaRequest req;
    uint64_t member = 0;
    if (!parse_u64(args[2], 16, &member)) return usage();
    req.set_group(group);
    req.set_member(member);
    gpb::ReplicaResponse resp;
    grpc::Status st = command == "add-replica" ? stub->AddReplica(&ctx, req, &resp)
                                               : stub->RemoveReplica(&ctx, req, &resp);
    if (!st.ok()) return fail(st);
    std::printf("%s\n", descriptor_json(resp.group()).c_str());
  } else if (command == "list" && args.size() == 1) {
    gpb::ListResponse resp;
    grpc::Status st = stub->List(&ctx, gpb::ListRequest{}, &resp);
    if (!st.ok()) return fail(st);
    for (const gpb::GroupStatus& g : resp.groups()) {
      std::string voters;
      for (int i = 0; i < g.voters_size(); ++i)
        voters += (i > 0 ? ",\"" : "\"") + hex(g.voters(i)) + "\"";
      std::printf(
          "{\"group\":%llu,\"leader\":\"%s\",\"term\":%llu,\"commit\":%llu,"
          "\"applied\":%llu,\"quiesced\":%s,\"voters\":[%s]}\n",
          static_cast<unsigned long long>(g.id()), hex(g.leader()).c_str(),
          static_cast<unsigned long long>(g.term()), static_cast<unsigned long long>(g.commit()),
          static_cast<unsigned long long>(g.applied()), g.quiesced() ? "true" : "false",
          voters.c_str());
    }
  } else if (command == "put" && args.size() == 4 && parse_u64(args[1], 10, &group)) {
    gpb::PutRequest req;
    req.set_group(group);
    req.set_key(args[2]);
    req.set_value(args[3]);
    gpb::PutResponse resp;
    grpc::Status st = stub->Put(&ctx, req, &resp);
    if (!st.ok()) return fail(st);
    std::printf("OK\n");
  } else if (command == "get" && args.size() == 3 && parse_u64(args[1], 10, &group)) {
    gpb::GetRequest req;
    req.set_group(group);
    req.set_key(args[2]);
    req.set_serializable(serializable);
    gpb::GetResponse resp;
    grpc::Status st = stub->Get(&ctx, req, &resp);
    if (!st.ok()) return fail(st);
    std::printf("{\"found\":%s,\"value\":%s}\n", resp.found() ? "true" : "false",
                json_string(resp.value()).c_str());
  } else {
    return usage();
  }
  return 0;
}
