#include "core/parallel.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <exception>
#include <mutex>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "core/error.hpp"

namespace shears {

namespace {

thread_local bool inside_region = false;

int threads_from_environment() {
  if (const char* env = std::getenv("SHEARS_NUM_THREADS"); env && *env) {
    char* end = nullptr;
    long n = std::strtol(env, &end, 10);
    SHEARS_CHECK(*end == '\0' && n >= 1 && n <= 1024, "SHEARS_NUM_THREADS",
                 "expected a whole number from 1 to 1024, got '", env, "'");
    return static_cast<int>(n);
  }
  return static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
}

// Each job is a generation number, a chunk count and the function. Worker w runs chunk w + 1;
// the caller runs chunk 0 and waits for the rest. Workers and the caller spin for a short while
// (kSpin) before sleeping on a condition variable: a wake-up through the kernel takes tens of
// microseconds on a virtual machine, as long as many whole regions (a training step has hundreds).
// Past kYieldAfter the spin yields between checks: when the scheduler has put the waiting thread
// on the CPU of the one it waits for, that one runs instead (MLPNet's step: 0.35 ms bound to one
// CPU without yields, 0.22 with; 0.16 on two).
constexpr auto kSpin = std::chrono::microseconds(50), kYieldAfter = std::chrono::microseconds(5);

// Calls done() until it holds or kSpin has passed; whether it held.
template <typename Done>
bool spin_until(Done done) {
  const auto start = std::chrono::steady_clock::now();
  for (;;) {
    for (int i = 0; i < 64; ++i) {
      if (done()) return true;
#if defined(__x86_64__) || defined(__i386__)
      __builtin_ia32_pause();
#endif
    }
    const auto spun = std::chrono::steady_clock::now() - start;
    if (spun > kSpin) return false;
    if (spun > kYieldAfter) std::this_thread::yield();
  }
}

class Pool {
 public:
  explicit Pool(int threads) { resize(threads); }
  ~Pool() { stop(); }

  int size() const { return static_cast<int>(workers_.size()) + 1; }

  void resize(int threads) {
    stop();
    stopping_ = false;
    // New workers start from the current generation, so they never take a finished job for a new one.
    uint64_t current = generation_;
    for (int w = 0; w + 1 < threads; ++w) {
      try {
        workers_.emplace_back([this, w, current] { loop(w + 1, current); });
      } catch (const std::system_error& e) {  // the process or the machine is out of threads
        stop();
        throw Error(detail::concat("thread pool: cannot start thread ", w + 2, " of ", threads, " (", e.what(),
                                   "): lower --threads or SHEARS_NUM_THREADS"));
      }
    }
  }

  void run(int chunks, const std::function<void(int)>& chunk) {
    {
      std::lock_guard lock(mutex_);
      job_ = &chunk;
      chunks_ = chunks;
      pending_.store(chunks - 1);
      error_ = nullptr;
      generation_.fetch_add(1);  // after the job's fields: a spinning worker reads them once it sees this
    }
    wake_.notify_all();
    std::exception_ptr caller_error;
    try {
      chunk(0);
    } catch (...) {
      caller_error = std::current_exception();
    }
    spin_until([this] { return pending_.load() == 0; });
    std::unique_lock lock(mutex_);
    done_.wait(lock, [this] { return pending_.load() == 0; });
    job_ = nullptr;
    if (caller_error) std::rethrow_exception(caller_error);
    if (error_) std::rethrow_exception(error_);
  }

 private:
  void loop(int index, uint64_t seen) {
    inside_region = true;
    for (;;) {
      spin_until([&] { return stopping_.load() || generation_.load() != seen; });
      std::unique_lock lock(mutex_);
      wake_.wait(lock, [&] { return stopping_.load() || generation_.load() != seen; });
      if (stopping_) return;
      seen = generation_.load();
      if (index >= chunks_) continue;
      const std::function<void(int)>* job = job_;
      lock.unlock();
      std::exception_ptr error;
      try {
        (*job)(index);
      } catch (...) {
        error = std::current_exception();
      }
      lock.lock();
      if (error && !error_) error_ = error;
      if (pending_.fetch_sub(1) == 1) done_.notify_one();
    }
  }

  void stop() {
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
    }
    wake_.notify_all();
    for (std::thread& t : workers_) t.join();
    workers_.clear();
  }

  std::vector<std::thread> workers_;
  std::mutex mutex_;
  std::condition_variable wake_, done_;
  const std::function<void(int)>* job_ = nullptr;
  int chunks_ = 0;
  std::atomic<int> pending_ = 0;
  std::atomic<uint64_t> generation_ = 0;
  std::atomic<bool> stopping_ = false;
  std::exception_ptr error_;
};

std::mutex pool_mutex;  // serialises parallel regions started from different user threads

Pool& pool() {
  static Pool instance(threads_from_environment());
  return instance;
}

}  // namespace

int num_threads() { return pool().size(); }

void set_num_threads(int threads) {
  SHEARS_CHECK(threads >= 1 && threads <= 1024, "set_num_threads", "expected 1 to 1024 threads, got ", threads);
  std::lock_guard lock(pool_mutex);
  pool().resize(threads);
}

bool in_parallel_region() { return inside_region; }

void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& f) {
  if (n <= 0) return;
  grain = std::max<int64_t>(grain, 1);
  int64_t chunks = std::min<int64_t>(num_threads(), (n + grain - 1) / grain);
  // Marks the calling thread as inside a region for the body's duration, exceptions included.
  struct RegionScope {
    bool was = inside_region;
    RegionScope() { inside_region = true; }
    ~RegionScope() { inside_region = was; }
  };
  if (inside_region) {
    f(0, n);
    return;
  }
  if (chunks <= 1) {  // not a region: nested work (e.g. a lone sample's sgemm) may still split
    f(0, n);
    return;
  }
  std::lock_guard lock(pool_mutex);
  auto chunk = [&](int c) {
    RegionScope scope;
    f(n * c / chunks, n * (c + 1) / chunks);
  };
  pool().run(static_cast<int>(chunks), chunk);
}

}  // namespace shears
