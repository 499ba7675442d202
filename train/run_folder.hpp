// A training run's folder, guarded: one writer at a time (an advisory lock naming its pid), and a
// folder that already holds a run is neither overwritten nor mixed with a new one unless the user
// says which they mean (--resume continues it, --overwrite replaces it).
#pragma once
#include <filesystem>
#include <string>
#include <vector>

namespace shears::train {

struct RunFolderOptions {
  std::string resume_from;  // continue the run of this checkpoint (its folder must be this one, or a fresh one)
  bool overwrite = false;   // replace the run the folder holds: its run files are removed first
};

// The files a run writes into its folder (others the user keeps there are left alone).
const std::vector<std::string>& run_files();

// The run files `dir` already holds (none when it does not exist).
std::vector<std::string> existing_run_files(const std::filesystem::path& dir);
// Whether those include a checkpoint: a folder that does holds a run; logs alone (a run killed
// in its first epoch) are replaced without asking.
bool holds_checkpoint(const std::vector<std::string>& files);

class RunFolder {
 public:
  // Creates `dir` if needed and locks it for this process (flock on dir/lock, released when the
  // process ends, however it ends). Refuses, naming the holder's pid, a folder another process
  // is writing; refuses a folder holding a run (holds_checkpoint) unless it is the run of
  // `resume_from` or `overwrite` is set; otherwise removes the earlier run's files.
  RunFolder(std::filesystem::path dir, const RunFolderOptions& options);
  ~RunFolder();
  RunFolder(const RunFolder&) = delete;
  RunFolder& operator=(const RunFolder&) = delete;

  const std::filesystem::path& dir() const { return dir_; }

 private:
  std::filesystem::path dir_;
  int lock_fd_ = -1;
};

}  // namespace shears::train
