// Listing a dataset's folders without std::filesystem's throwing iterators: the range-for `++` of
// a directory_iterator throws std::filesystem_error (an unreadable folder, a symlink loop), which
// readers must report as shears::Error naming the dataset.
#pragma once
#include <filesystem>
#include <string>
#include <vector>

namespace shears::data {

// The entries of `dir` in the order the file system gives them; with `recursive`, those of every
// folder below it too, following symlinks to folders (as torchvision's os.walk(followlinks=True)).
// Throws shears::Error "<format>: <dataset>: cannot list <dir> ..." on any error.
std::vector<std::filesystem::directory_entry> list_directory(const std::filesystem::path& dir, bool recursive,
                                                             const std::string& format, const std::string& dataset);

}  // namespace shears::data
