#include "storage/snapshot_stream.h"

#include <algorithm>

#include "base/coding.h"
#include "storage/crc32c.h"

namespace chorus::storage {
namespace {

using base::load_u32;
using base::load_u64;
using base::put_u32;
using base::put_u64;
using base::put_u8;

uint16_t load_u16(const char* p) {
  return static_cast<uint16_t>(static_cast<uint8_t>(p[0]) | (static_cast<uint8_t>(p[1]) << 8));
}

Status bad_chunk(const std::string& why) {
  return Status::corruption("snapshot chunk: " + why);
}

std::string where(uint32_t file, uint64_t offset) {
  return "file " + std::to_string(file) + " offset " + std::to_string(offset);
}

}  // namespace

bool valid_snapshot_file_name(std::string_view name) {
  if (name.empty() || name.size() > kMaxSnapshotFileNameBytes || name == "." || name == "..")
    return false;
  return name.find('/') == std::string_view::npos && name.find('\0') == std::string_view::npos;
}

std::string encode_snapshot_chunk(const SnapshotChunk& c) {
  std::string out(4, '\0');
  put_u32(&out, kSnapshotChunkMagic);
  put_u8(&out, kSnapshotChunkVersion & 0xff);
  put_u8(&out, kSnapshotChunkVersion >> 8);
  put_u8(&out, static_cast<uint8_t>((c.last_in_file ? kChunkLastInFile : 0) |
                                    (c.last_in_snapshot ? kChunkLastInSnapshot : 0)));
  put_u8(&out, 0);
  put_u64(&out, c.snapshot_id);
  put_u32(&out, c.file_index);
  put_u64(&out, c.offset);
  put_u32(&out, static_cast<uint32_t>(c.data.size()));
  put_u8(&out, static_cast<uint8_t>(c.file_name.size() & 0xff));
  put_u8(&out, static_cast<uint8_t>(c.file_name.size() >> 8));
  out += c.file_name;
  out += c.data;
  if (c.last_in_file) {
    put_u64(&out, c.file_size);
    put_u32(&out, c.file_crc);
  }
  if (c.last_in_snapshot) put_u32(&out, c.file_count);
  uint32_t crc = crc32c(std::string_view(out).substr(4));
  for (int i = 0; i < 4; ++i)
    out[i] = static_cast<char>((crc >> (8 * i)) & 0xff);
  return out;
}

Status decode_snapshot_chunk(std::string_view bytes, SnapshotChunk* out) {
  if (bytes.size() < kSnapshotChunkHeaderBytes)
    return bad_chunk("shorter than its header (" + std::to_string(bytes.size()) + " bytes)");
  const char* p = bytes.data();
  if (load_u32(p + 4) != kSnapshotChunkMagic) return bad_chunk("wrong magic number");
  if (crc32c(bytes.substr(4)) != load_u32(p)) return bad_chunk("checksum mismatch");
  uint16_t version = load_u16(p + 8);
  if (version != kSnapshotChunkVersion)
    return bad_chunk("unsupported version " + std::to_string(version));
  auto flags = static_cast<uint8_t>(p[10]);
  if ((flags & ~(kChunkLastInFile | kChunkLastInSnapshot)) != 0 || p[11] != 0)
    return bad_chunk("unknown flags");
  SnapshotChunk c;
  c.last_in_file = (flags & kChunkLastInFile) != 0;
  c.last_in_snapshot = (flags & kChunkLastInSnapshot) != 0;
  c.snapshot_id = load_u64(p + 12);
  c.file_index = load_u32(p + 20);
  c.offset = load_u64(p + 24);
  uint32_t data_bytes = load_u32(p + 32);
  uint16_t name_bytes = load_u16(p + 36);
  if (data_bytes > kMaxSnapshotChunkDataBytes) return bad_chunk("data length out of range");
  if (name_bytes > kMaxSnapshotFileNameBytes) return bad_chunk("file name too long");
  size_t expected = kSnapshotChunkHeaderBytes + name_bytes + size_t{data_bytes} +
                    (c.last_in_file ? 12 : 0) + (c.last_in_snapshot ? 4 : 0);
  if (bytes.size() != expected)
    return bad_chunk("length fields say " + std::to_string(expected) + " bytes, the chunk has " +
                     std::to_string(bytes.size()));
  if (c.file_index >= kMaxSnapshotFiles) return bad_chunk("file index out of range");
  if (c.offset > UINT64_MAX - data_bytes) return bad_chunk("offset out of range");
  size_t at = kSnapshotChunkHeaderBytes;
  c.file_name.assign(p + at, name_bytes);
  at += name_bytes;
  c.data.assign(p + at, data_bytes);
  at += data_bytes;
  if (c.last_in_file) {
    c.file_size = load_u64(p + at);
    c.file_crc = load_u32(p + at + 8);
    at += 12;
    if (c.file_size != c.offset + data_bytes)
      return bad_chunk("last chunk of a file does not end at the file's size");
  }
  if (c.last_in_snapshot) {
    c.file_count = load_u32(p + at);
    if (c.file_count > kMaxSnapshotFiles) return bad_chunk("file count out of range");
  }
  if (c.file_name.empty()) {
    // Only an empty snapshot has a chunk without a file.
    if (!c.last_in_snapshot || c.last_in_file || data_bytes != 0 || c.offset != 0 ||
        c.file_count != c.file_index)
      return bad_chunk("chunk without a file name");
  } else {
    if (!valid_snapshot_file_name(c.file_name)) return bad_chunk("invalid file name");
    if (c.last_in_snapshot && (!c.last_in_file || c.file_count != c.file_index + 1))
      return bad_chunk("last chunk of the snapshot does not end its last file");
  }
  *out = std::move(c);
  return Status::ok();
}

// ---- SnapshotSender ----

SnapshotSender::SnapshotSender(FileSystem* fs, std::string dir, uint64_t snapshot_id,
                               size_t chunk_bytes)
    : fs_(fs),
      dir_(std::move(dir)),
      snapshot_id_(snapshot_id),
      chunk_bytes_(std::clamp<size_t>(chunk_bytes, 1, kMaxSnapshotChunkDataBytes)) {}

SnapshotSender::~SnapshotSender() = default;

Status SnapshotSender::start() {
  std::vector<std::string> names;
  CHORUS_RETURN_IF_ERROR(fs_->list_dir(dir_, &names));
  for (const std::string& name : names) {
    if (fs_->is_dir(join_path(dir_, name))) continue;
    if (!valid_snapshot_file_name(name))
      return Status::invalid_argument("snapshot: cannot send a file named " + name);
    files_.push_back(name);
  }
  if (files_.size() > kMaxSnapshotFiles)
    return Status::invalid_argument("snapshot: " + dir_ + " has too many files");
  std::sort(files_.begin(), files_.end());
  started_ = true;
  return Status::ok();
}

Status SnapshotSender::open_file() {
  CHORUS_RETURN_IF_ERROR(fs_->open_readable(join_path(dir_, files_[file_]), &reader_));
  CHORUS_RETURN_IF_ERROR(reader_->size(&size_));
  offset_ = 0;
  crc_ = 0;
  return Status::ok();
}

Status SnapshotSender::next(SnapshotChunk* out) {
  if (done_) return Status::invalid_argument("snapshot: every chunk was sent");
  if (!started_) CHORUS_RETURN_IF_ERROR(start());
  SnapshotChunk c;
  c.snapshot_id = snapshot_id_;
  if (files_.empty()) {
    c.last_in_snapshot = true;
    done_ = true;
    *out = std::move(c);
    return Status::ok();
  }
  if (!reader_) CHORUS_RETURN_IF_ERROR(open_file());
  uint64_t n = std::min<uint64_t>(chunk_bytes_, size_ - offset_);
  CHORUS_RETURN_IF_ERROR(reader_->read_at(offset_, n, &c.data));
  if (c.data.size() != n)
    return Status::io_error("snapshot: " + files_[file_] + " shrank while being sent");
  crc_ = crc32c_extend(crc_, c.data.data(), c.data.size());
  c.file_index = static_cast<uint32_t>(file_);
  c.file_name = files_[file_];
  c.offset = offset_;
  offset_ += n;
  if (offset_ == size_) {
    c.last_in_file = true;
    c.file_size = size_;
    c.file_crc = crc_;
    reader_.reset();
    if (++file_ == files_.size()) {
      c.last_in_snapshot = true;
      c.file_count = static_cast<uint32_t>(files_.size());
      done_ = true;
    }
  }
  *out = std::move(c);
  return Status::ok();
}

// ---- SnapshotReceiver ----

SnapshotReceiver::SnapshotReceiver(FileSystem* fs, std::string parent_dir, std::string final_name)
    : fs_(fs),
      parent_dir_(std::move(parent_dir)),
      final_name_(std::move(final_name)),
      tmp_dir_(join_path(parent_dir_, final_name_ + ".tmp")) {}

Status SnapshotReceiver::fail(Status st) {
  if (failed_.is_ok()) failed_ = st;
  writer_.reset();
  return st;
}

Status SnapshotReceiver::start(const SnapshotChunk& first) {
  CHORUS_RETURN_IF_ERROR(recover(fs_, parent_dir_, final_name_));
  CHORUS_RETURN_IF_ERROR(fs_->create_dir(tmp_dir_));
  snapshot_id_ = first.snapshot_id;
  started_ = true;
  return Status::ok();
}

Status SnapshotReceiver::add(std::string_view encoded_chunk) {
  SnapshotChunk c;
  CHORUS_RETURN_IF_ERROR(decode_snapshot_chunk(encoded_chunk, &c));
  return add(c);
}

Status SnapshotReceiver::add(const SnapshotChunk& c) {
  if (!failed_.is_ok()) return failed_;
  if (finished_) return Status::invalid_argument("snapshot: already installed");
  if (started_ && c.snapshot_id != snapshot_id_)
    return Status::invalid_argument("snapshot: chunk of snapshot " + std::to_string(c.snapshot_id) +
                                    " while receiving snapshot " + std::to_string(snapshot_id_));
  if (complete_) return Status::invalid_argument("snapshot: repeated chunk after the last one");
  if (c.file_index != next_file_ || c.offset != next_offset_) {
    bool behind =
        c.file_index < next_file_ || (c.file_index == next_file_ && c.offset < next_offset_);
    return Status::invalid_argument(
        std::string("snapshot: ") + (behind ? "repeated chunk " : "chunk out of order ") +
        where(c.file_index, c.offset) + ", expected " + where(next_file_, next_offset_));
  }
  if (c.offset == 0 && !files_.empty() && !c.file_name.empty() && c.file_name <= files_.back().name)
    return Status::invalid_argument("snapshot: file " + c.file_name + " is not in name order");
  if (c.offset > 0 && c.file_name != current_name_)
    return Status::invalid_argument("snapshot: chunk names " + c.file_name + " inside file " +
                                    current_name_);
  if (!started_) {
    Status st = start(c);
    if (!st.is_ok()) return fail(st);
  }
  if (c.file_name.empty()) {  // an empty snapshot
    complete_ = true;
    return Status::ok();
  }
  if (c.offset == 0) {
    Status st = fs_->open_writable(join_path(tmp_dir_, c.file_name), &writer_);
    if (st.is_ok()) st = writer_->truncate(0);
    if (!st.is_ok()) return fail(st);
    current_name_ = c.file_name;
    crc_ = 0;
  }
  if (!c.data.empty()) {
    Status st = writer_->write_at(c.offset, c.data);
    if (!st.is_ok()) return fail(st);
  }
  crc_ = crc32c_extend(crc_, c.data.data(), c.data.size());
  next_offset_ += c.data.size();
  if (c.last_in_file) {
    if (next_offset_ != c.file_size || crc_ != c.file_crc)
      return fail(Status::corruption("snapshot: " + c.file_name +
                                     " does not match the size and checksum its sender gave"));
    Status st = writer_->sync();
    if (st.is_ok()) st = writer_->close();
    if (!st.is_ok()) return fail(st);
    writer_.reset();
    files_.push_back({c.file_name, c.file_size, c.file_crc});
    ++next_file_;
    next_offset_ = 0;
  }
  if (c.last_in_snapshot) complete_ = true;
  return Status::ok();
}

Status SnapshotReceiver::finish() {
  if (!failed_.is_ok()) return failed_;
  if (finished_) return Status::ok();
  if (!complete_)
    return Status::invalid_argument("snapshot: incomplete, waiting for " +
                                    where(next_file_, next_offset_));
  // Read back what was written: the checks so far covered the bytes received, not the bytes
  // that reached the disk.
  for (const ReceivedFile& f : files_) {
    std::string data;
    Status st = fs_->read_file(join_path(tmp_dir_, f.name), &data);
    if (!st.is_ok()) return fail(st);
    if (data.size() != f.size || crc32c(data) != f.crc)
      return fail(Status::corruption("snapshot: " + f.name + " reads back damaged"));
  }
  std::string final_dir = join_path(parent_dir_, final_name_);
  std::string old_dir = final_dir + ".old";
  Status st = fs_->sync_dir(tmp_dir_);
  if (st.is_ok() && fs_->exists(old_dir)) st = fs_->remove_dir(old_dir);
  if (st.is_ok() && fs_->exists(final_dir)) st = fs_->rename(final_dir, old_dir);
  if (st.is_ok()) st = fs_->rename(tmp_dir_, final_dir);
  if (st.is_ok()) st = fs_->sync_dir(parent_dir_);
  if (!st.is_ok()) return fail(st);
  finished_ = true;
  // Installed. What is left is cleanup, which recover() finishes if this fails.
  if (fs_->exists(old_dir)) {
    CHORUS_RETURN_IF_ERROR(fs_->remove_dir(old_dir));
    CHORUS_RETURN_IF_ERROR(fs_->sync_dir(parent_dir_));
  }
  return Status::ok();
}

Status SnapshotReceiver::abort() {
  writer_.reset();
  if (failed_.is_ok()) failed_ = Status::invalid_argument("snapshot: transfer aborted");
  if (finished_ || !fs_->exists(tmp_dir_)) return Status::ok();
  return fs_->remove_dir(tmp_dir_);
}

Status SnapshotReceiver::recover(FileSystem* fs, const std::string& parent_dir,
                                 const std::string& final_name) {
  std::string final_dir = join_path(parent_dir, final_name);
  std::string old_dir = final_dir + ".old";
  std::string tmp_dir = final_dir + ".tmp";
  bool changed = false;
  if (!fs->exists(final_dir) && fs->exists(old_dir)) {
    // The crash came between the two renames: the new snapshot was not installed.
    CHORUS_RETURN_IF_ERROR(fs->rename(old_dir, final_dir));
    changed = true;
  }
  for (const std::string& leftover : {old_dir, tmp_dir}) {
    if (fs->exists(leftover)) {
      CHORUS_RETURN_IF_ERROR(fs->remove_dir(leftover));
      changed = true;
    }
  }
  if (changed) return fs->sync_dir(parent_dir);
  return Status::ok();
}

}  // namespace chorus::storage
