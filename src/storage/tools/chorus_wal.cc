// chorus-wal: inspects and repairs a node's write-ahead log while the node is stopped.
//
//   chorus-wal verify <dir>     scans the log read-only; exit 0 if clean, 1 if damaged
//   chorus-wal truncate <dir>   cuts the log at its first damaged record
//
// See docs/OPERATIONS.md, "A damaged write-ahead log", before truncating: the cut loses this
// node's records from the damage on.
#include <cstdio>
#include <cstring>
#include <string>

#include "storage/file.h"
#include "storage/wal.h"

namespace {

using chorus::storage::Status;
using chorus::storage::Wal;
using chorus::storage::WalReport;

constexpr int kExitClean = 0;
constexpr int kExitDamaged = 1;
constexpr int kExitError = 2;

int usage() {
  std::fprintf(stderr,
               "usage: chorus-wal verify <dir>    scan the log without changing it; exit 0 if "
               "clean, 1 if damaged\n"
               "       chorus-wal truncate <dir>  cut the log at its first damaged record "
               "(read docs/OPERATIONS.md first)\n");
  return kExitError;
}

int fail(const Status& st) {
  std::fprintf(stderr, "chorus-wal: %s\n", st.to_string().c_str());
  return kExitError;
}

int verify(const std::string& dir) {
  auto fs = chorus::storage::make_posix_file_system();
  WalReport report;
  Status st = Wal::verify(fs.get(), dir, &report);
  if (!st.is_ok()) return fail(st);
  std::fputs(report.to_string().c_str(), stdout);
  return report.clean() ? kExitClean : kExitDamaged;
}

int truncate(const std::string& dir) {
  auto fs = chorus::storage::make_posix_file_system();
  WalReport plan;
  Status st = Wal::verify(fs.get(), dir, &plan);
  if (!st.is_ok()) return fail(st);
  std::fputs(plan.to_string().c_str(), stdout);
  if (plan.clean()) {
    std::printf("nothing to cut\n");
    return kExitClean;
  }
  std::printf("cutting: %llu bytes of %s from offset %llu",
              static_cast<unsigned long long>(plan.cut_bytes), plan.damage->file.c_str(),
              static_cast<unsigned long long>(plan.damage->offset));
  for (const std::string& name : plan.cut_segments)
    std::printf(", segment %s", name.c_str());
  std::printf("\n");
  std::fflush(stdout);
  WalReport done;
  st = Wal::truncate_at_damage(fs.get(), dir, &done);
  if (!st.is_ok()) return fail(st);
  WalReport after;
  st = Wal::verify(fs.get(), dir, &after);
  if (!st.is_ok()) return fail(st);
  if (!after.clean()) {
    // Another damaged record behind the first, such as a gap the cut exposed.
    std::fputs(after.to_string().c_str(), stdout);
    std::printf("the log is still damaged; run truncate again after reading the report\n");
    return kExitDamaged;
  }
  std::printf("done: the log is clean; the node must catch up from its peers\n");
  return kExitClean;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) return usage();
  if (std::strcmp(argv[1], "verify") == 0) return verify(argv[2]);
  if (std::strcmp(argv[1], "truncate") == 0) return truncate(argv[2]);
  return usage();
}
