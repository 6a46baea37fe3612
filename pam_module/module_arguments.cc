// SPDX-License-Identifier: BSD-3-Clause
#include "pam_module/module_arguments.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

namespace acctlock::pam {
namespace {

namespace mo = module_options;

// Every key of common/options.cc's option table, written out at build time
// by acctlock_print_option_names: the module tells a key acctlockd applies
// from a typo without a list of its own. Each name ends with a NUL; an empty
// name ends the list.
constexpr char kOptionNames[] =
#include "pam_module/option_names.inc"
    ;

// As options.cc: a configuration file is a few kilobytes, and the limit keeps
// a mistaken path such as /dev/zero from exhausting memory in the process
// that loaded the module.
constexpr std::size_t kMaxConfigFileBytes = 1024 * 1024;

// A line of text for syslog: a key, a quoted value, a path and a reason.
constexpr std::size_t kProblemLineSize = 2048;

// A piece of a line or argument; not NUL-terminated.
struct Span {
  const char* data = nullptr;
  std::size_t size = 0;

  bool is(const char* word) const {
    const std::size_t length = strlen(word);
    return length == size && memcmp(data, word, size) == 0;
  }
  int length() const { return static_cast<int>(size); }
};

bool is_blank(char c) {
  return c == ' ' || c == '\t' || c == '\r';
}

Span trim(Span text) {
  while (text.size > 0 && is_blank(text.data[0])) {
    ++text.data;
    --text.size;
  }
  while (text.size > 0 && is_blank(text.data[text.size - 1])) --text.size;
  return text;
}

// Strips a comment: '#' starting the line or following whitespace, as
// options.cc does.
Span strip_comment(Span line) {
  for (std::size_t i = 0; i < line.size; ++i) {
    if (line.data[i] == '#' && (i == 0 || is_blank(line.data[i - 1]))) return {line.data, i};
  }
  return line;
}

__attribute__((format(printf, 4, 5))) void report_line(ReportProblem report, void* context,
                                                       Severity severity, const char* format, ...) {
  char line[kProblemLineSize];
  va_list arguments;
  va_start(arguments, format);
  vsnprintf(line, sizeof line, format, arguments);
  va_end(arguments);
  report(context, severity, line);
}

AuthMode mode_named(const char* word) {
  if (strcmp(word, "preauth") == 0) return AuthMode::preauth;
  if (strcmp(word, "authfail") == 0) return AuthMode::authfail;
  if (strcmp(word, "authsucc") == 0) return AuthMode::authsucc;
  return AuthMode::none;
}

// The whole file in a buffer of its own (malloc'd, freed by the caller), or
// nullptr: missing (`*error` 0) or unreadable (`*error` says why, or
// `*too_large`).
char* read_file(const char* path, std::size_t& size, int& error, bool& too_large,
                bool& not_regular) {
  size = 0;
  error = 0;
  too_large = false;
  not_regular = false;
  // O_NONBLOCK so that a FIFO given by mistake cannot hang a login; it has no
  // effect on the regular file expected here.
  const int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
  if (fd < 0) {
    error = errno == ENOENT ? 0 : errno;
    return nullptr;
  }
  char* text = nullptr;
  struct stat st {};
  if (fstat(fd, &st) != 0) {
    error = errno;
  } else if (S_ISDIR(st.st_mode)) {
    error = EISDIR;
  } else if (!S_ISREG(st.st_mode)) {
    not_regular = true;
  } else {
    std::size_t capacity = 0;
    for (;;) {
      if (size == capacity) {
        if (capacity == kMaxConfigFileBytes + 1) {
          too_large = true;
          break;
        }
        // Room for the size fstat gave, and for a file that grew since.
        std::size_t next = capacity == 0 ? static_cast<std::size_t>(st.st_size) + 1 : capacity * 2;
        if (next > kMaxConfigFileBytes + 1) next = kMaxConfigFileBytes + 1;
        char* grown = static_cast<char*>(realloc(text, next));
        if (grown == nullptr) {
          error = ENOMEM;
          break;
        }
        text = grown;
        capacity = next;
      }
      const ssize_t n = read(fd, text + size, capacity - size);
      if (n < 0) {
        if (errno == EINTR) continue;
        error = errno;
        break;
      }
      if (n == 0) break;
      size += static_cast<std::size_t>(n);
    }
    if (size > kMaxConfigFileBytes) too_large = true;
  }
  close(fd);
  if (error != 0 || too_large || not_regular) {
    free(text);
    return nullptr;
  }
  if (text == nullptr) text = static_cast<char*>(malloc(1));  // an empty file
  if (text == nullptr) error = ENOMEM;
  return text;
}

void apply_config_line(Settings& settings, Span line, unsigned line_number, ReportProblem report,
                       void* context) {
  const char* file = settings.config_path;
  Span key = line;
  Span value;
  bool value_given = false;
  if (const void* equals = memchr(line.data, '=', line.size)) {
    const auto at = static_cast<std::size_t>(static_cast<const char*>(equals) - line.data);
    key = trim(Span{line.data, at});
    value = trim(Span{line.data + at + 1, line.size - at - 1});
    value_given = true;
  }
  for (std::size_t i = 0; i < key.size; ++i) {
    if (key.data[i] == ' ' || key.data[i] == '\t') {
      if (mo::find_key(key.data, i) != nullptr) {
        report_line(report, context, Severity::error,
                    "%s:%u: %.*s: expected \"=\" between the key and its value", file, line_number,
                    static_cast<int>(i), key.data);
      }
      return;  // anything else is acctlockd's to report
    }
  }
  if (key.size == 0) return;  // acctlockd's to report
  const mo::KeyInfo* info = mo::find_key(key.data, key.size);
  if (info == nullptr) {
    if (!is_option_name(key.data, key.size)) {
      report_line(report, context, Severity::warning, "%s:%u: %.*s: unknown key, ignored", file,
                  line_number, key.length(), key.data);
    }
    return;
  }
  if (value_given && value.size == 0) {
    report_line(report, context, Severity::error, "%s:%u: %.*s: no value after \"=\"; expected %s",
                file, line_number, key.length(), key.data,
                info->is_flag ? "yes or no" : info->syntax);
    return;
  }
  const char* problem = nullptr;
  switch (mo::set(settings.options, info->key, value.data, value.size, value_given, &problem)) {
    case mo::SetProblem::none:
      break;
    case mo::SetProblem::needs_value:
      report_line(report, context, Severity::error, "%s:%u: %.*s: needs a value (%s = %s)", file,
                  line_number, key.length(), key.data, info->name, info->syntax);
      break;
    case mo::SetProblem::bad_value:
      report_line(report, context, Severity::error, "%s:%u: %.*s: \"%.*s\" %s", file, line_number,
                  key.length(), key.data, value.length(), value.data, problem);
      break;
  }
}

// The top of acctlock.conf, up to the first [service NAME] section: the
// module's keys can only be there.
void apply_config_file(Settings& settings, ReportProblem report, void* context) {
  std::size_t size = 0;
  int error = 0;
  bool too_large = false;
  bool not_regular = false;
  char* text = read_file(settings.config_path, size, error, too_large, not_regular);
  if (text == nullptr) {
    if (too_large) {
      report_line(report, context, Severity::error, "%s: cannot read: larger than %zu bytes",
                  settings.config_path, kMaxConfigFileBytes);
    } else if (not_regular) {
      report_line(report, context, Severity::error, "%s: cannot read: not a regular file",
                  settings.config_path);
    } else if (error != 0) {
      char reason[256];
      report_line(report, context, Severity::error, "%s: cannot read: %s", settings.config_path,
                  strerror_r(error, reason, sizeof reason));
    }
    return;  // a missing file means defaults, as for pam_faillock
  }
  std::size_t pos = 0;
  for (unsigned line_number = 1; pos < size; ++line_number) {
    const void* newline = memchr(text + pos, '\n', size - pos);
    const std::size_t end =
        newline == nullptr ? size
                           : static_cast<std::size_t>(static_cast<const char*>(newline) - text);
    const Span line = trim(strip_comment(Span{text + pos, end - pos}));
    pos = end + 1;
    if (line.size == 0) continue;
    if (line.data[0] == '[') break;  // sections hold lockout rules only
    apply_config_line(settings, line, line_number, report, context);
  }
  free(text);
}

void apply_argument(Settings& settings, const char* text, ReportProblem report, void* context) {
  const char* equals = strchr(text, '=');
  const Span key{text, equals == nullptr ? strlen(text) : static_cast<std::size_t>(equals - text)};
  const char* value = equals == nullptr ? nullptr : equals + 1;
  const auto ignored = [&](const char* why) {
    report_line(report, context, Severity::warning, "module argument \"%s\" ignored: %s", text,
                why);
  };
  if (key.is("conf")) {
    if (value == nullptr || *value == '\0') ignored("conf needs a file (conf=FILE)");
    return;
  }
  if (const AuthMode mode = mode_named(text); mode != AuthMode::none) {
    if (settings.mode != AuthMode::none && settings.mode != mode) {
      ignored("only one of preauth, authfail and authsucc may be given");
    } else {
      settings.mode = mode;
    }
    return;
  }
  const mo::KeyInfo* info = mo::find_key(key.data, key.size);
  if (key.is("socket")) info = mo::find_key("event_socket", 12);
  if (info != nullptr && info->key == mo::Key::event_socket && value == nullptr) {
    ignored("needs a path (socket=PATH)");
    return;
  }
  if (info == nullptr || !(info->is_argument || info->key == mo::Key::event_socket)) {
    if (!is_option_name(key.data, key.size)) {
      ignored("unknown option");
      return;
    }
    char why[kProblemLineSize];
    snprintf(why, sizeof why,
             "acctlockd applies this key from %s; it has no effect as a module argument",
             settings.config_path);
    ignored(why);
    return;
  }
  const char* problem = nullptr;
  char why[kProblemLineSize];
  switch (mo::set(settings.options, info->key, value, value == nullptr ? 0 : strlen(value),
                  value != nullptr, &problem)) {
    case mo::SetProblem::none:
      return;
    case mo::SetProblem::needs_value:
      snprintf(why, sizeof why, "needs a value (%s = %s)", info->name, info->syntax);
      break;
    case mo::SetProblem::bad_value:
      snprintf(why, sizeof why, "\"%s\" %s", value, problem);
      break;
  }
  ignored(why);
}

}  // namespace

bool is_option_name(const char* name, std::size_t size) noexcept {
  for (const char* known = kOptionNames; *known != '\0'; known += strlen(known) + 1) {
    if (strlen(known) == size && memcmp(known, name, size) == 0) return true;
  }
  return false;
}

void resolve_settings(int argc, const char* const* argv, const char* default_config,
                      Settings& settings, ReportProblem report, void* context) {
  settings = Settings{};
  settings.config_path = default_config;
  for (int i = 0; i < argc; ++i) {
    if (strncmp(argv[i], "conf=", 5) == 0 && argv[i][5] != '\0') settings.config_path = argv[i] + 5;
  }
  apply_config_file(settings, report, context);
  for (int i = 0; i < argc; ++i) apply_argument(settings, argv[i], report, context);
}

}  // namespace acctlock::pam
