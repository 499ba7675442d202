#include "train/run_folder.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "core/error.hpp"

namespace shears::train {

namespace fs = std::filesystem;

namespace {

constexpr const char* kLockFile = "lock";

std::string errno_text() { return std::strerror(errno); }

// The pid the lock file names ("?" if it names none).
std::string holder(int fd) {
  char buffer[32] = {};
  const ssize_t n = ::pread(fd, buffer, sizeof buffer - 1, 0);
  std::string pid = n > 0 ? std::string(buffer, static_cast<size_t>(n)) : "";
  while (!pid.empty() && (pid.back() == '\n' || pid.back() == ' ')) pid.pop_back();
  return pid.empty() ? "?" : pid;
}

std::string join(const std::vector<std::string>& names) {
  std::string text;
  for (const std::string& name : names) text += (text.empty() ? "" : ", ") + name;
  return text;
}

}  // namespace

const std::vector<std::string>& run_files() {
  static const std::vector<std::string> files{
      "last.safetensors", "best.safetensors", "last.optim.safetensors", "interrupted.safetensors", "config.toml",
      "summary.csv",      "events.jsonl"};
  return files;
}

std::vector<std::string> existing_run_files(const fs::path& dir) {
  std::vector<std::string> found;
  std::error_code ec;
  for (const std::string& name : run_files())
    if (fs::exists(dir / name, ec)) found.push_back(name);
  return found;
}

bool holds_checkpoint(const std::vector<std::string>& files) {
  for (const std::string& name : files)
    if (name.ends_with(".safetensors")) return true;
  return false;
}

RunFolder::RunFolder(fs::path dir, const RunFolderOptions& options) : dir_(std::move(dir)) {
  std::error_code ec;
  fs::create_directories(dir_, ec);
  SHEARS_CHECK(!ec, dir_.string(), "cannot create the run folder (", ec.message(), ")");
  SHEARS_CHECK(fs::is_directory(dir_, ec), dir_.string(), "expected a folder for the run, got a file");
  const fs::path lock = dir_ / kLockFile;
  lock_fd_ = ::open(lock.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK, 0644);
  SHEARS_CHECK(lock_fd_ >= 0, lock.string(), "cannot open the run's lock file (", errno_text(), ")");
  if (::flock(lock_fd_, LOCK_EX | LOCK_NB) != 0) {
    const int error = errno;
    const std::string pid = error == EWOULDBLOCK ? holder(lock_fd_) : "";
    const std::string reason = std::strerror(error);
    ::close(lock_fd_);
    SHEARS_CHECK(pid.empty(), dir_.string(), "another shears (pid ", pid, ") is writing this run folder (it holds ",
                 lock.string(), "): wait for it to finish or choose another --output");
    throw Error(lock.string() + ": cannot lock the run folder (" + reason + ")");
  }
  const std::string own_pid = std::to_string(::getpid()) + "\n";
  if (::ftruncate(lock_fd_, 0) != 0 || ::pwrite(lock_fd_, own_pid.data(), own_pid.size(), 0) < 0)
    throw Error(lock.string() + ": cannot write the run's lock file (" + errno_text() + ")");

  // Logs without any checkpoint are what a run killed in its first epoch leaves: nothing to lose.
  const std::vector<std::string> earlier = existing_run_files(dir_);
  if (earlier.empty()) return;
  if (!options.resume_from.empty()) {  // resuming elsewhere must not mix two runs in one folder
    const fs::path from = fs::path(options.resume_from).parent_path();
    SHEARS_CHECK(!holds_checkpoint(earlier) || fs::equivalent(from.empty() ? "." : from, dir_, ec), dir_.string(),
                 "holds another run (", join(earlier), ") than the one --resume continues (", options.resume_from,
                 "): resume into the run's own folder or into a new one");
    return;
  }
  SHEARS_CHECK(options.overwrite || !holds_checkpoint(earlier), dir_.string(), "already holds a run (", join(earlier),
               "): --resume continues it, --overwrite replaces it, or choose another --output");
  for (const std::string& name : earlier) fs::remove(dir_ / name, ec);
}

RunFolder::~RunFolder() {
  if (lock_fd_ >= 0) ::close(lock_fd_);  // releases the lock; the file stays (removing it would race a waiter)
}

}  // namespace shears::train
