// A double-ended queue on one power-of-two buffer, allocated on the first push and shrunk as it
// empties. Thousands of idle Raft groups each hold a few queues that are empty or short most of
// the time: std::deque allocates a map and a 512-byte block as soon as it exists, this holds
// nothing until used. Random access is one mask away, as with a vector.
#pragma once

#include <cstddef>
#include <iterator>
#include <memory>
#include <utility>

namespace chorus::base {

template <typename T>
class Ring {
 public:
  Ring() = default;
  Ring(const Ring& other) { *this = other; }
  Ring& operator=(const Ring& other) {
    if (this == &other) return *this;
    clear();
    for (size_t i = 0; i < other.size(); ++i)
      push_back(other[i]);
    return *this;
  }
  Ring(Ring&& other) noexcept { swap(other); }
  Ring& operator=(Ring&& other) noexcept {
    Ring moved(std::move(other));
    swap(moved);
    return *this;
  }

  bool empty() const { return size_ == 0; }
  size_t size() const { return size_; }
  size_t capacity() const { return cap_; }

  T& operator[](size_t i) { return buf_[(head_ + i) & (cap_ - 1)]; }
  const T& operator[](size_t i) const { return buf_[(head_ + i) & (cap_ - 1)]; }
  T& front() { return (*this)[0]; }
  const T& front() const { return (*this)[0]; }
  T& back() { return (*this)[size_ - 1]; }
  const T& back() const { return (*this)[size_ - 1]; }

  void push_back(T value) {
    if (size_ == cap_) resize_buffer(cap_ == 0 ? kMinCapacity : cap_ * 2);
    (*this)[size_] = std::move(value);
    ++size_;
  }
  template <typename... Args>
  T& emplace_back(Args&&... args) {
    push_back(T(std::forward<Args>(args)...));
    return back();
  }
  void pop_front() {
    buf_[head_] = T{};  // releases what the element holds
    head_ = (head_ + 1) & (cap_ - 1);
    --size_;
    shrink();
  }
  void pop_back() {
    back() = T{};
    --size_;
    shrink();
  }
  void clear() {
    buf_.reset();
    cap_ = 0;
    head_ = 0;
    size_ = 0;
  }
  void swap(Ring& other) noexcept {
    std::swap(buf_, other.buf_);
    std::swap(cap_, other.cap_);
    std::swap(head_, other.head_);
    std::swap(size_, other.size_);
  }

  template <typename R, typename V>
  class Iter {
   public:
    using iterator_category = std::forward_iterator_tag;
    using value_type = T;
    using difference_type = std::ptrdiff_t;
    using pointer = V*;
    using reference = V&;
    Iter(R* ring, size_t i) : ring_(ring), i_(i) {}
    V& operator*() const { return (*ring_)[i_]; }
    V* operator->() const { return &(*ring_)[i_]; }
    Iter& operator++() {
      ++i_;
      return *this;
    }
    bool operator==(const Iter& o) const { return i_ == o.i_; }
    bool operator!=(const Iter& o) const { return i_ != o.i_; }

   private:
    R* ring_;
    size_t i_;
  };
  using iterator = Iter<Ring, T>;
  using const_iterator = Iter<const Ring, const T>;
  iterator begin() { return iterator(this, 0); }
  iterator end() { return iterator(this, size_); }
  const_iterator begin() const { return const_iterator(this, 0); }
  const_iterator end() const { return const_iterator(this, size_); }

 private:
  static constexpr size_t kMinCapacity = 4;

  void resize_buffer(size_t cap) {
    std::unique_ptr<T[]> next(new T[cap]);
    for (size_t i = 0; i < size_; ++i)
      next[i] = std::move((*this)[i]);
    buf_ = std::move(next);
    cap_ = cap;
    head_ = 0;
  }
  // A queue that grew for a burst gives the memory back as it drains.
  void shrink() {
    if (size_ == 0) {
      clear();
    } else if (cap_ > 64 && size_ < cap_ / 4) {
      resize_buffer(cap_ / 2);
    }
  }

  std::unique_ptr<T[]> buf_;
  size_t cap_ = 0;
  size_t head_ = 0;
  size_t size_ = 0;
};

}  // namespace chorus::base
