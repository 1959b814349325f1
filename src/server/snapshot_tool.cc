// chorus-snapshot: checks backup files and restores them into data directories for a new cluster
// (see src/server/snapshot_file.h and docs/OPERATIONS.md).
//
//   chorus-snapshot status FILE [--json]
//   chorus-snapshot restore FILE --data-dir DIR
#include <cstdio>
#include <cstring>
#include <string>

#include "server/snapshot_file.h"

namespace {

int usage() {
  std::fprintf(stderr,
               "usage: chorus-snapshot status FILE [--json]\n"
               "       chorus-snapshot restore FILE --data-dir DIR\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace chorus::server;
  if (argc < 3) return usage();
  std::string command = argv[1];
  std::string file = argv[2];
  std::string data_dir;
  bool json = false;
  for (int i = 3; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--data-dir" && i + 1 < argc) {
      data_dir = argv[++i];
    } else if (a.rfind("--data-dir=", 0) == 0) {
      data_dir = a.substr(std::strlen("--data-dir="));
    } else if (a == "--json") {
      json = true;
    } else {
      std::fprintf(stderr, "chorus-snapshot: unknown argument '%s'\n", a.c_str());
      return usage();
    }
  }
  SnapshotFileInfo info;
  chorus::storage::Status st;
  if (command == "status") {
    st = inspect_snapshot_file(file, "/tmp", &info);
  } else if (command == "restore") {
    if (data_dir.empty()) {
      std::fprintf(stderr, "chorus-snapshot: restore needs --data-dir\n");
      return usage();
    }
    st = restore_snapshot_file(file, data_dir, &info);
  } else {
    return usage();
  }
  if (!st.is_ok()) {
    std::fprintf(stderr, "chorus-snapshot: %s\n", st.to_string().c_str());
    return 1;
  }
  if (json) {
    std::printf(
        "{\"revision\":%lld,\"compactRevision\":%lld,\"totalKey\":%llu,\"leases\":%llu,"
        "\"totalSize\":%llu}\n",
        static_cast<long long>(info.revision), static_cast<long long>(info.compact_revision),
        static_cast<unsigned long long>(info.keys), static_cast<unsigned long long>(info.leases),
        static_cast<unsigned long long>(info.file_bytes));
  } else {
    std::printf(
        "revision %lld, compacted at %lld, %llu keys, %llu leases, %llu bytes\n",
        static_cast<long long>(info.revision), static_cast<long long>(info.compact_revision),
        static_cast<unsigned long long>(info.keys), static_cast<unsigned long long>(info.leases),
        static_cast<unsigned long long>(info.file_bytes));
  }
  if (command == "restore") {
    std::printf(
        "restored into %s. Restore the same file for every member of the new cluster, then start\n"
        "each with --initial-cluster-state new and the new cluster's --initial-cluster.\n",
        data_dir.c_str());
  }
  return 0;
}
