// The result of every storage operation. Expected failures (a missing file, a full disk, a
// damaged record) come back as a Status; a caller must look at it.
#pragma once

#include <string>
#include <utility>

namespace chorus::storage {

class [[nodiscard]] Status {
 public:
  enum class Code : uint8_t {
    kOk = 0,
    kNotFound,
    kIoError,     // the OS refused a read, write or sync; the file's state is unknown
    kNoSpace,     // the disk is full: the node goes read-only
    kCorruption,  // bytes on disk fail their checksum or framing
    kInvalidArgument,
    kReadOnly,  // an earlier failure made this store refuse writes
  };

  Status() = default;
  static Status ok() { return Status(); }
  static Status not_found(std::string m) { return Status(Code::kNotFound, std::move(m)); }
  static Status io_error(std::string m) { return Status(Code::kIoError, std::move(m)); }
  static Status no_space(std::string m) { return Status(Code::kNoSpace, std::move(m)); }
  static Status corruption(std::string m) { return Status(Code::kCorruption, std::move(m)); }
  static Status invalid_argument(std::string m) {
    return Status(Code::kInvalidArgument, std::move(m));
  }
  static Status read_only(std::string m) { return Status(Code::kReadOnly, std::move(m)); }

  bool is_ok() const { return code_ == Code::kOk; }
  Code code() const { return code_; }
  const std::string& message() const { return message_; }
  std::string to_string() const;

 private:
  Status(Code code, std::string message) : code_(code), message_(std::move(message)) {}
  Code code_ = Code::kOk;
  std::string message_;
};

#define CHORUS_RETURN_IF_ERROR(expr)        \
  do {                                      \
    ::chorus::storage::Status _st = (expr); \
    if (!_st.is_ok()) return _st;           \
  } while (false)

}  // namespace chorus::storage
