#include "server/snapshot_file.h"

#include <openssl/evp.h>

#include <unistd.h>

#include <cstring>
#include <memory>

#include "base/coding.h"
#include "kv/mvcc.h"
#include "kv/snapshots.h"

namespace chorus::server {
namespace {

using storage::Status;

constexpr size_t kDigestBytes = 32;
constexpr size_t kReadBytes = 1 << 20;

Status damaged(const std::string& path, const std::string& what) {
  return Status::corruption(path + ": not a Chorus snapshot file, or damaged: " + what);
}

}  // namespace

void append_backup_chunk(std::string* out, std::string_view encoded_chunk) {
  base::put_u32(out, static_cast<uint32_t>(encoded_chunk.size()));
  out->append(encoded_chunk);
}

void append_backup_end(std::string* out, uint64_t written) {
  base::put_u32(out, 0);
  written += 4;
  out->append((512 - written % 512) % 512, '\0');
}

Status read_snapshot_file(storage::FileSystem* fs, const std::string& path,
                          storage::SnapshotReceiver* receiver) {
  std::unique_ptr<storage::ReadableFile> file;
  CHORUS_RETURN_IF_ERROR(fs->open_readable(path, &file));
  uint64_t size = 0;
  CHORUS_RETURN_IF_ERROR(file->size(&size));
  if (size < 4 + kDigestBytes || (size - kDigestBytes) % 512 != 0) {
    return damaged(path, "its size (" + std::to_string(size) +
                             " bytes) is not a multiple of 512 plus the 32-byte checksum");
  }
  const uint64_t body = size - kDigestBytes;

  // First pass: the checksum over everything before the trailer.
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> sha(EVP_MD_CTX_new(), &EVP_MD_CTX_free);
  EVP_DigestInit_ex(sha.get(), EVP_sha256(), nullptr);
  std::string buf;
  for (uint64_t at = 0; at < body; at += buf.size()) {
    CHORUS_RETURN_IF_ERROR(file->read_at(at, std::min<uint64_t>(kReadBytes, body - at), &buf));
    if (buf.empty()) return damaged(path, "it ends early");
    EVP_DigestUpdate(sha.get(), buf.data(), buf.size());
  }
  unsigned char digest[kDigestBytes];
  unsigned int len = 0;
  EVP_DigestFinal_ex(sha.get(), digest, &len);
  std::string trailer;
  CHORUS_RETURN_IF_ERROR(file->read_at(body, kDigestBytes, &trailer));
  if (trailer.size() != kDigestBytes || std::memcmp(trailer.data(), digest, kDigestBytes) != 0) {
    return damaged(path, "the SHA-256 checksum does not match");
  }

  // Second pass: the chunks, each checked again by the receiver.
  uint64_t at = 0;
  while (true) {
    std::string header;
    if (body - at < 4) return damaged(path, "the chunks run into the padding");
    CHORUS_RETURN_IF_ERROR(file->read_at(at, 4, &header));
    uint32_t n = base::load_u32(header.data());
    at += 4;
    if (n == 0) break;
    if (n > kMaxBackupChunkBytes || n > body - at)
      return damaged(path, "a chunk length is out of range");
    std::string chunk;
    CHORUS_RETURN_IF_ERROR(file->read_at(at, n, &chunk));
    if (chunk.size() != n) return damaged(path, "it ends inside a chunk");
    Status st = receiver->add(chunk);
    if (!st.is_ok()) return damaged(path, st.to_string());
    at += n;
  }
  std::string padding;
  CHORUS_RETURN_IF_ERROR(file->read_at(at, body - at, &padding));
  if (padding.find_first_not_of('\0') != std::string::npos) {
    return damaged(path, "bytes after the last chunk are not padding");
  }
  if (!receiver->complete()) return damaged(path, "the last chunk is missing");
  return Status::ok();
}

namespace {

// Restores into `data_dir`, which exists and is empty.
Status restore_into(storage::FileSystem* fs, const std::string& path, const std::string& data_dir,
                    SnapshotFileInfo* info);

// Checks the target, restores, and on failure removes what it created, so the same command
// can simply be run again.
Status restore_or_clean(storage::FileSystem* fs, const std::string& path,
                        const std::string& data_dir, SnapshotFileInfo* info) {
  const bool existed = fs->exists(data_dir);
  if (existed) {
    std::vector<std::string> names;
    CHORUS_RETURN_IF_ERROR(fs->list_dir(data_dir, &names));
    if (!names.empty()) {
      return Status::invalid_argument(data_dir + " is not empty: restore into a new directory");
    }
  } else {
    CHORUS_RETURN_IF_ERROR(fs->create_dir(data_dir));
  }
  Status st = restore_into(fs, path, data_dir, info);
  if (!st.is_ok()) {
    (void)fs->remove_dir(existed ? storage::join_path(data_dir, "member") : data_dir);
  }
  return st;
}

Status restore_into(storage::FileSystem* fs, const std::string& path, const std::string& data_dir,
                    SnapshotFileInfo* info) {
  const std::string member_dir = storage::join_path(data_dir, "member");
  CHORUS_RETURN_IF_ERROR(fs->create_dir(member_dir));
  storage::SnapshotReceiver receiver(fs, member_dir, "kv");
  Status st = read_snapshot_file(fs, path, &receiver);
  if (!st.is_ok()) {
    (void)receiver.abort();
    return st;
  }
  CHORUS_RETURN_IF_ERROR(receiver.finish());

  std::unique_ptr<kv::MvccStore> store;
  CHORUS_RETURN_IF_ERROR(kv::open_store(fs, member_dir, "kv", kv::MvccOptions{}, &store));
  CHORUS_RETURN_IF_ERROR(store->restart_log());
  info->revision = store->revision();
  info->compact_revision = store->compact_revision();
  info->leases = store->leases().size();
  kv::RangeRequest all;
  all.key = std::string(1, '\0');
  all.range_end = std::string(1, '\0');
  all.count_only = true;
  kv::RangeResponse r;
  kv::ApiError err = store->range(all, &r);
  if (!err.ok()) return Status::corruption("counting the keys: " + err.message);
  info->keys = static_cast<uint64_t>(r.count);
  uint64_t size = 0;
  std::unique_ptr<storage::ReadableFile> f;
  if (fs->open_readable(path, &f).is_ok() && f->size(&size).is_ok()) info->file_bytes = size;
  CHORUS_RETURN_IF_ERROR(fs->sync_dir(member_dir));
  return fs->sync_dir(data_dir);
}

}  // namespace

Status restore_snapshot_file(const std::string& path, const std::string& data_dir,
                             SnapshotFileInfo* info) {
  auto fs = storage::make_posix_file_system();
  return restore_or_clean(fs.get(), path, data_dir, info);
}

Status inspect_snapshot_file(const std::string& path, const std::string& scratch_parent,
                             SnapshotFileInfo* info) {
  auto fs = storage::make_posix_file_system();
  const std::string scratch =
      storage::join_path(scratch_parent, "chorus-snapshot-inspect-" + std::to_string(::getpid()));
  (void)fs->remove_dir(scratch);
  Status st = restore_or_clean(fs.get(), path, scratch, info);
  (void)fs->remove_dir(scratch);
  return st;
}

}  // namespace chorus::server
