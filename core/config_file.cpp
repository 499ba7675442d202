#include "core/config_file.hpp"

#include <algorithm>
#include <map>
#include <numeric>
#include <set>

#include "core/error.hpp"
#include "core/file.hpp"

namespace shears::config {

namespace {

bool is_key_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
}

// An unquoted value: a number (1e-3, +inf), true/false, or a word or path (fashion-mnist, runs/a).
bool is_bare_char(char c) { return is_key_char(c) || c == '.' || c == '+' || c == '/' || c == ':' || c == '~'; }

// A character as an error shows it: printable ones quoted, the others by code.
std::string shown(char c) {
  if (c >= 0x20 && c < 0x7f) return std::string("'") + c + "'";
  return detail::concat("byte 0x", "0123456789abcdef"[(c >> 4) & 0xf], "0123456789abcdef"[c & 0xf]);
}

class Parser {
 public:
  Parser(std::string_view text, const std::string& path) : text_(text), path_(path) {}

  std::vector<Item> items() {
    std::vector<Item> items;
    std::vector<std::string> section;
    std::set<std::string> seen;
    for (skip_blank_lines(); pos_ < text_.size(); skip_blank_lines()) {
      if (peek() == '[') {
        ++pos_;
        section = dotted_name("a section name");
        expect(']', "']' to close the section header");
        end_of_line();
        continue;
      }
      Item item;
      item.line = line_;
      item.sections = section;
      std::vector<std::string> key = dotted_name("a key");
      item.key = key.back();
      item.sections.insert(item.sections.end(), key.begin(), key.end() - 1);
      std::string full;
      for (const std::string& part : item.sections) full += part + ".";
      full += item.key;
      if (!seen.insert(full).second) fail(detail::concat("each key once, got '", full, "' a second time"));
      skip_spaces();
      expect('=', "'=' after the key");
      skip_spaces();
      if (peek() == '[') {
        item.array = true;
        ++pos_;
        array(item.values, 1);
      } else {
        item.values.push_back(scalar());
      }
      end_of_line();
      items.push_back(std::move(item));
    }
    return items;
  }

 private:
  [[noreturn]] void fail(const std::string& what) const {
    throw Error(detail::concat(path_, ": line ", line_, ": expected ", what));
  }
  std::string got() const { return pos_ < text_.size() ? shown(text_[pos_]) : std::string("the end of the file"); }
  char peek() const { return pos_ < text_.size() ? text_[pos_] : '\0'; }
  bool at_end() const { return pos_ >= text_.size(); }

  void expect(char c, const std::string& what) {
    if (at_end() || text_[pos_] != c) fail(what + ", got " + got());
    ++pos_;
  }
  void skip_spaces() {
    while (!at_end() && (text_[pos_] == ' ' || text_[pos_] == '\t')) ++pos_;
  }
  void skip_comment() {
    if (peek() != '#') return;
    while (!at_end() && text_[pos_] != '\n') {
      if (text_[pos_] == '\0') fail("text in the comment, got a NUL byte");
      ++pos_;
    }
  }
  bool newline() {
    if (peek() == '\r' && pos_ + 1 < text_.size() && text_[pos_ + 1] == '\n') ++pos_;
    if (peek() != '\n') return false;
    ++pos_, ++line_;
    return true;
  }
  void skip_blank_lines() {
    do {
      skip_spaces();
      skip_comment();
    } while (newline());
  }
  // Spaces, then a comment or nothing, then the end of the line (or of the file).
  void end_of_line() {
    skip_spaces();
    skip_comment();
    if (!at_end() && !newline()) fail("the end of the line, got " + got());
  }
  std::vector<std::string> dotted_name(const char* what) {
    std::vector<std::string> parts;
    do {
      skip_spaces();
      const size_t start = pos_;
      while (!at_end() && is_key_char(text_[pos_])) ++pos_;
      if (pos_ == start) fail(std::string(what) + " (letters, digits, '_' or '-'), got " + got());
      parts.emplace_back(text_.substr(start, pos_ - start));
      skip_spaces();
    } while (peek() == '.' && ++pos_);
    return parts;
  }
  std::string scalar() {
    if (peek() == '"' || peek() == '\'') return quoted_string(peek());
    const size_t start = pos_;
    while (!at_end() && is_bare_char(text_[pos_])) ++pos_;
    if (pos_ == start) fail("a value (a quoted string, a word, a number or an array), got " + got());
    return std::string(text_.substr(start, pos_ - start));
  }
  // The text between the quotes, taken as it is (no escapes: that is how a run's config.toml is
  // written, so that a path with a backslash reads back); a value holding " is quoted with '.
  std::string quoted_string(char quote) {
    const int64_t opened = line_;
    const size_t start = ++pos_;
    while (!at_end() && text_[pos_] != quote && text_[pos_] != '\n') {
      if (text_[pos_] == '\0') fail("text in the string, got a NUL byte");
      ++pos_;
    }
    if (peek() != quote)
      fail(detail::concat("'", quote, "' to close the string opened on line ", opened, ", got ", got()));
    return std::string(text_.substr(start, pos_++ - start));
  }
  // The elements after an opening '[' up to its ']', appended flat to `out`.
  void array(std::vector<std::string>& out, int depth) {
    if (depth > kMaxNesting) fail(detail::concat("arrays nested at most ", kMaxNesting, " deep"));
    const int64_t opened = line_;
    for (bool first = true;; first = false) {
      skip_blank_lines();
      if (at_end()) fail(detail::concat("']' to close the array opened on line ", opened, ", got the end of the file"));
      if (peek() == ']') {
        ++pos_;
        return;
      }
      if (!first) {
        expect(',', detail::concat("',' or ']' in the array opened on line ", opened));
        skip_blank_lines();
        if (peek() == ']') continue;  // a trailing comma
      }
      if (peek() == '[') {
        ++pos_;
        array(out, depth + 1);
      } else {
        out.push_back(scalar());
      }
    }
  }

  std::string_view text_;
  const std::string& path_;
  size_t pos_ = 0;
  int64_t line_ = 1;
};

}  // namespace

std::vector<Item> parse(std::string_view text, const std::string& path) { return Parser(text, path).items(); }

std::vector<std::string> differences(const std::vector<Item>& before, const std::vector<Item>& after,
                                     const std::set<std::string>& ignored) {
  auto by_key = [&](const std::vector<Item>& items) {
    std::map<std::string, std::string> values;
    for (const Item& item : items) {
      std::string key, text;
      for (const std::string& part : item.sections) key += part + ".";
      for (const std::string& v : item.values) text += (text.empty() ? "" : ",") + v;
      if (!ignored.count(key + item.key)) values[key + item.key] = item.array ? "[" + text + "]" : text;
    }
    return values;
  };
  const std::map<std::string, std::string> a = by_key(before), b = by_key(after);
  std::vector<std::string> differ;
  auto shown = [](const std::map<std::string, std::string>& m, const std::string& key) {
    auto it = m.find(key);
    return it == m.end() ? std::string("(absent)") : "'" + it->second + "'";
  };
  std::set<std::string> keys;
  for (const auto& [key, value] : a) keys.insert(key);
  for (const auto& [key, value] : b) keys.insert(key);
  for (const std::string& key : keys)
    if (shown(a, key) != shown(b, key)) differ.push_back(key + ": " + shown(a, key) + " -> " + shown(b, key));
  return differ;
}

std::vector<Item> read(const std::string& path) { return parse(read_input_file(path, "config file", kMaxBytes), path); }

std::string closest_key(const std::string& name, const std::vector<std::string>& known, size_t max_edits) {
  std::string best;
  size_t best_distance = max_edits + 1;
  std::vector<size_t> row;
  for (const std::string& candidate : known) {
    row.resize(candidate.size() + 1);  // Levenshtein, one row at a time
    std::iota(row.begin(), row.end(), size_t{0});
    for (size_t i = 1; i <= name.size(); ++i) {
      size_t diagonal = row[0];
      row[0] = i;
      for (size_t j = 1; j <= candidate.size(); ++j) {
        const size_t up = row[j];
        row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (name[i - 1] != candidate[j - 1])});
        diagonal = up;
      }
    }
    if (row.back() < best_distance) best_distance = row.back(), best = candidate;
  }
  return best;
}

}  // namespace shears::config
