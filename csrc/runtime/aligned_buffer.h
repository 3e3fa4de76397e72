// A 64-byte aligned float buffer: packed weights and scratch space. Owning, or (borrow) a view
// of memory someone else keeps alive: weights memory-mapped from a pack file (pyengine pack),
// shared read-only by every process that maps it.
//
// Buffers of kHugeFrom bytes or more (a large model's LM head, big projections) start on a
// 2 MiB boundary and ask Linux for transparent huge pages (madvise; where THP is "madvise"
// only, the default of many distributions, nothing else gives them). A decode step streams
// them once: with 4 KiB pages every 4 KiB of the stream is a TLB miss the prefetcher cannot
// hide. Measured on a 335 MB bf16 LM head (Gemma 3's 262k x 640) at 1 thread: see README.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <new>
#include <utility>

#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace pyengine::runtime {

class AlignedBuffer {
 public:
  static constexpr size_t kAlignment = 64;
  static constexpr size_t kHugePage = size_t(2) << 20;
  static constexpr size_t kHugeFrom = size_t(8) << 20;

  AlignedBuffer() = default;
  explicit AlignedBuffer(size_t n_floats) : size_(n_floats) {
    const size_t bytes = ((n_floats * sizeof(float) + kAlignment - 1) / kAlignment) * kAlignment;
    const bool huge = bytes >= kHugeFrom;
    void* p = nullptr;
    if (posix_memalign(&p, huge ? kHugePage : kAlignment, bytes == 0 ? kAlignment : bytes) != 0) {
      throw std::bad_alloc();
    }
    data_ = static_cast<float*>(p);
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    // Whole huge pages only; a refusal (THP off) leaves ordinary pages: nothing to handle.
    if (huge) madvise(p, bytes / kHugePage * kHugePage, MADV_HUGEPAGE);
#endif
  }
  // A view of n_floats floats at p (64-byte aligned), never freed here. The memory may be
  // read-only: a borrowed buffer must only be read.
  static AlignedBuffer borrow(const void* p, size_t n_floats) {
    AlignedBuffer b;
    b.data_ = static_cast<float*>(const_cast<void*>(p));
    b.size_ = n_floats;
    b.owned_ = false;
    return b;
  }
  ~AlignedBuffer() {
    if (owned_) std::free(data_);
  }
  AlignedBuffer(AlignedBuffer&& o) noexcept : data_(o.data_), size_(o.size_), owned_(o.owned_) {
    o.data_ = nullptr;
    o.size_ = 0;
    o.owned_ = true;
  }
  AlignedBuffer& operator=(AlignedBuffer&& o) noexcept {
    std::swap(data_, o.data_);
    std::swap(size_, o.size_);
    std::swap(owned_, o.owned_);
    return *this;
  }
  AlignedBuffer(const AlignedBuffer&) = delete;
  AlignedBuffer& operator=(const AlignedBuffer&) = delete;

  float* data() { return data_; }
  const float* data() const { return data_; }
  size_t size() const { return size_; }
  bool owned() const { return owned_; }

 private:
  float* data_ = nullptr;
  size_t size_ = 0;
  bool owned_ = true;
};

}  // namespace pyengine::runtime
