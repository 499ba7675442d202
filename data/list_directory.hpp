// Listing a dataset's folders without std::filesystem's throwing iterators: the range-for `++` of
// a directory_iterator throws std::filesystem_error (an unreadable folder, a symlink loop), which
// readers must report as shears::Error naming the dataset.
#pragma once
#include <sys/types.h>

#include <filesystem>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace shears::data {

// A file's identity on this machine: (device, inode). Two paths with one identity are one file.
using FileId = std::pair<dev_t, ino_t>;
// Files or folders already seen, each with the path it was first reached by.
using FileIds = std::map<FileId, std::filesystem::path>;

// The entries of `dir` in the order the file system gives them; with `recursive`, those of every
// folder below it too, following symlinks to folders (as torchvision's os.walk(followlinks=True)),
// but never into a folder entered before: the (device, inode) of every folder entered is kept in
// `entered` (pass the same map to several walks to share it), and a link that leads back to a
// folder on the way down (a cycle) or to one already read is refused, naming the link.
// Throws shears::Error "<format>: <dataset>: ..." on any error.
std::vector<std::filesystem::directory_entry> list_directory(const std::filesystem::path& dir, bool recursive,
                                                             const std::string& format, const std::string& dataset);
std::vector<std::filesystem::directory_entry> list_directory(const std::filesystem::path& dir,
                                                             const std::string& format, const std::string& dataset,
                                                             FileIds& entered);

// The identity of the file `path` leads to (symlinks followed); throws naming `format` and `dataset`.
FileId file_id(const std::filesystem::path& path, const std::string& format, const std::string& dataset);

}  // namespace shears::data
