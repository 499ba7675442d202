#include "core/allocator.hpp"

#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <map>
#include <mutex>
#include <new>

#include "core/error.hpp"

namespace shears {

namespace {

constexpr size_t kAlign = 64;
constexpr size_t kMinCached = size_t{1} << 20;  // smaller blocks: malloc's own bins are fast
constexpr size_t kCacheCap = size_t{4} << 30;   // never hold more than this for reuse

struct Cache {
  std::mutex mutex;
  std::multimap<size_t, void*> blocks;  // by exact size: training reallocates the same sizes
  size_t bytes = 0;
};

std::atomic<size_t> live_bytes{0}, peak_live_bytes{0};

void count_allocation(size_t bytes) {
  size_t now = live_bytes.fetch_add(bytes, std::memory_order_relaxed) + bytes;
  size_t peak = peak_live_bytes.load(std::memory_order_relaxed);
  while (now > peak && !peak_live_bytes.compare_exchange_weak(peak, now, std::memory_order_relaxed)) {
  }
}

Cache& cache() {
  static Cache* instance = new Cache;  // never destroyed: blocks may be freed during exit
  return *instance;
}

thread_local AllocationLimit* current_limit = nullptr;  // the innermost on this thread

}  // namespace

AllocationLimit::AllocationLimit(size_t bytes, std::string message)
    : limit_(bytes), message_(std::move(message)), outer_(current_limit) {
  current_limit = this;
}

AllocationLimit::~AllocationLimit() { current_limit = outer_; }

void AllocationLimit::charge(size_t bytes) {
  if (outer_ != nullptr) outer_->charge(bytes);
  if (bytes > limit_ - used_) throw Error(message_);
  used_ += bytes;
}

size_t physical_memory_bytes() {
  const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
  // Unknown: no cap (kept within int64_t, which the readers count in).
  return pages > 0 && page > 0 ? static_cast<size_t>(pages) * static_cast<size_t>(page)
                               : static_cast<size_t>(std::numeric_limits<int64_t>::max());
}

void* allocate_block(size_t bytes) {
  bytes = (bytes + kAlign - 1) / kAlign * kAlign;
  if (current_limit != nullptr) current_limit->charge(bytes);
  count_allocation(bytes);
  if (bytes >= kMinCached) {
    Cache& c = cache();
    std::lock_guard lock(c.mutex);
    if (auto it = c.blocks.find(bytes); it != c.blocks.end()) {
      void* p = it->second;
      c.blocks.erase(it);
      c.bytes -= bytes;
      return p;
    }
  }
  void* p = std::aligned_alloc(kAlign, bytes);
  if (!p) {
    release_cached_blocks();
    p = std::aligned_alloc(kAlign, bytes);
  }
  if (!p) {
    live_bytes.fetch_sub(bytes, std::memory_order_relaxed);
    throw Error(detail::concat("out of memory: a tensor of ", bytes, " bytes (", bytes >> 20,
                               " MiB) could not be "
                               "allocated with ",
                               live_bytes.load() >> 20,
                               " MiB already in tensors; lower --batch-size "
                               "or the model's size, or raise the memory limit"));
  }
  return p;
}

void free_block(void* p, size_t bytes) {
  bytes = (bytes + kAlign - 1) / kAlign * kAlign;
  live_bytes.fetch_sub(bytes, std::memory_order_relaxed);
  if (bytes >= kMinCached) {
    Cache& c = cache();
    std::lock_guard lock(c.mutex);
    if (c.bytes + bytes <= kCacheCap) {
      c.blocks.emplace(bytes, p);
      c.bytes += bytes;
      return;
    }
  }
  std::free(p);
}

size_t live_block_bytes() { return live_bytes.load(std::memory_order_relaxed); }

size_t peak_live_block_bytes() { return peak_live_bytes.load(std::memory_order_relaxed); }

size_t cached_block_bytes() {
  std::lock_guard lock(cache().mutex);
  return cache().bytes;
}

void release_cached_blocks() {
  Cache& c = cache();
  std::lock_guard lock(c.mutex);
  for (auto& [size, p] : c.blocks) std::free(p);
  c.blocks.clear();
  c.bytes = 0;
}

}  // namespace shears
