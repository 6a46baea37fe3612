// SPDX-License-Identifier: BSD-3-Clause
#include "cli/pam_stack_check.h"

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <optional>
#include <set>
#include <sstream>

namespace acctlock::cli {
namespace {

namespace fs = std::filesystem;

// libpam follows includes this deep; a deeper chain is a loop.
constexpr int kMaxIncludeDepth = 16;

constexpr const char* kModule = "pam_acctlock.so";

// The modules that check a password (or another secret) in the auth stack:
// preauth must come before the first of them, authfail after it.
const std::set<std::string>& password_modules() {
  static const std::set<std::string> modules{
      "pam_unix.so",   "pam_sss.so",     "pam_ldap.so",        "pam_krb5.so",   "pam_winbind.so",
      "pam_userdb.so", "pam_pwdfile.so", "pam_radius_auth.so", "pam_tacplus.so"};
  return modules;
}

struct RawLine {
  int line = 0;
  std::string type;  // "@include" for Debian's include directive
  std::string control;
  std::string module;  // as written: a path, a name, or the included file
  std::vector<std::string> arguments;
};

std::string base_name(const std::string& path) {
  const auto slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

// Splits one logical line into words; a control in brackets is one word
// even with spaces inside, as libpam reads it.
std::vector<std::string> split_words(const std::string& text) {
  std::vector<std::string> words;
  std::size_t i = 0;
  while (i < text.size()) {
    while (i < text.size() && std::isspace(static_cast<unsigned char>(text[i]))) ++i;
    if (i >= text.size()) break;
    std::size_t end = i;
    if (text[i] == '[') {
      end = text.find(']', i);
      end = end == std::string::npos ? text.size() : end + 1;
    } else {
      while (end < text.size() && !std::isspace(static_cast<unsigned char>(text[end]))) ++end;
    }
    words.push_back(text.substr(i, end - i));
    i = end;
  }
  return words;
}

std::optional<std::vector<RawLine>> read_pam_file(const std::string& path,
                                                  std::vector<Finding>& findings) {
  std::ifstream in(path);
  if (!in) {
    findings.push_back({Finding::Severity::problem, path, "cannot be read"});
    return std::nullopt;
  }
  std::vector<RawLine> lines;
  std::string physical;
  std::string logical;
  int number = 0;
  int first = 0;
  while (std::getline(in, physical)) {
    ++number;
    if (logical.empty()) first = number;
    if (!physical.empty() && physical.back() == '\\') {
      physical.pop_back();
      logical += physical + ' ';
      continue;
    }
    logical += physical;
    std::string text = std::move(logical);
    logical.clear();
    if (const auto hash = text.find('#'); hash != std::string::npos) text.erase(hash);
    auto words = split_words(text);
    if (words.empty()) continue;
    RawLine raw;
    raw.line = first;
    raw.type = words[0];
    if (raw.type == "@include") {
      if (words.size() >= 2) raw.module = words[1];
      lines.push_back(std::move(raw));
      continue;
    }
    if (words.size() < 3) {
      findings.push_back({Finding::Severity::warning, path + ":" + std::to_string(first),
                          "not a PAM line (type control module): libpam ignores it"});
      continue;
    }
    raw.control = words[1];
    raw.module = words[2];
    raw.arguments.assign(words.begin() + 3, words.end());
    lines.push_back(std::move(raw));
  }
  return lines;
}

std::string resolve(const std::string& pam_dir, const std::string& name) {
  return !name.empty() && name.front() == '/' ? name : pam_dir + "/" + name;
}

void expand_into(const std::string& pam_dir, const std::string& path, const std::string& type,
                 int depth, std::vector<PamLine>& out, std::vector<Finding>& findings) {
  if (depth > kMaxIncludeDepth) {
    findings.push_back({Finding::Severity::problem, path,
                        "includes nest deeper than " + std::to_string(kMaxIncludeDepth) +
                            " files (a loop?): libpam refuses the stack"});
    return;
  }
  const auto lines = read_pam_file(path, findings);
  if (!lines) return;
  for (const RawLine& raw : *lines) {
    if (raw.type == "@include") {
      expand_into(pam_dir, resolve(pam_dir, raw.module), type, depth + 1, out, findings);
      continue;
    }
    const std::string line_type = raw.type.front() == '-' ? raw.type.substr(1) : raw.type;
    if (line_type != type) continue;
    if (raw.control == "include" || raw.control == "substack") {
      expand_into(pam_dir, resolve(pam_dir, raw.module), type, depth + 1, out, findings);
      continue;
    }
    out.push_back(
        PamLine{path, raw.line, line_type, raw.control, base_name(raw.module), raw.arguments});
  }
}

bool has_argument(const PamLine& line, const std::string& argument) {
  return std::find(line.arguments.begin(), line.arguments.end(), argument) != line.arguments.end();
}

// How many lines a success of `line` skips, when its control is a bracket
// with success=N; nullopt when success goes on to the next line, 0 for a
// control that ends the stack on success (sufficient, success=done).
std::optional<int> success_jump(const PamLine& line) {
  if (line.control == "sufficient") return 0;
  if (line.control.empty() || line.control.front() != '[') return std::nullopt;
  std::istringstream words(line.control.substr(1, line.control.size() - 2));
  std::string word;
  while (words >> word) {
    if (word.rfind("success=", 0) != 0) continue;
    const std::string action = word.substr(8);
    if (action == "done") return 0;
    if (!action.empty() && std::all_of(action.begin(), action.end(), [](char c) {
          return std::isdigit(static_cast<unsigned char>(c)) != 0;
        })) {
      return std::stoi(action);
    }
    return std::nullopt;  // ok, ignore, bad, die, reset: the next line runs
  }
  return std::nullopt;
}

void check_service(const std::string& pam_dir, const std::string& path,
                   std::vector<Finding>& findings) {
  const std::string service = base_name(path);
  const auto auth = expand_stack(pam_dir, service, "auth", findings);
  const auto account = expand_stack(pam_dir, service, "account", findings);
  const auto password = expand_stack(pam_dir, service, "password", findings);
  const auto is_ours = [](const PamLine& line) { return line.module == kModule; };
  const auto password_check = std::find_if(auth.begin(), auth.end(), [](const PamLine& line) {
    return password_modules().count(line.module) != 0;
  });
  const bool used = std::any_of(auth.begin(), auth.end(), is_ours) ||
                    std::any_of(account.begin(), account.end(), is_ours) ||
                    std::any_of(password.begin(), password.end(), is_ours);
  if (!used) {
    if (password_check != auth.end()) {
      findings.push_back({Finding::Severity::warning, path,
                          "checks passwords (" + password_check->module + " at " +
                              password_check->where() +
                              ") without pam_acctlock: failures here are not counted and "
                              "locked accounts get in"});
    }
    return;
  }
  if (password_check == auth.end()) {
    findings.push_back({Finding::Severity::warning, path,
                        "uses pam_acctlock but its auth stack has no password module that "
                        "doctor knows; the order of its lines is not checked"});
    return;
  }
  const auto at = [&](const auto& it) { return static_cast<int>(it - auth.begin()); };
  const int checked_at = at(password_check);
  const std::string checked = password_check->module + " (" + password_check->where() + ")";

  const auto preauth = std::find_if(auth.begin(), auth.end(), [&](const PamLine& line) {
    return is_ours(line) && has_argument(line, "preauth");
  });
  if (preauth == auth.end()) {
    findings.push_back({Finding::Severity::problem, path,
                        "no `auth required pam_acctlock.so preauth` before " + checked +
                            ": a locked account is not refused"});
  } else if (at(preauth) > checked_at) {
    findings.push_back(
        {Finding::Severity::problem, preauth->where(),
         "preauth comes after " + checked + ": it must come before the password is checked"});
  } else if (preauth->control == "optional" || preauth->control == "sufficient") {
    findings.push_back({Finding::Severity::problem, preauth->where(),
                        "preauth is `" + preauth->control +
                            "`: its refusal of a locked account is ignored; use required "
                            "(or requisite, which stops before the password prompt)"});
  } else {
    findings.push_back({Finding::Severity::ok, preauth->where(), "preauth before " + checked});
  }

  const auto authfail = std::find_if(auth.begin(), auth.end(), [&](const PamLine& line) {
    return is_ours(line) && has_argument(line, "authfail");
  });
  if (authfail == auth.end()) {
    findings.push_back(
        {Finding::Severity::problem, path,
         "no `pam_acctlock.so authfail` after " + checked + ": failed logins are not counted"});
  } else if (at(authfail) < checked_at) {
    findings.push_back({Finding::Severity::problem, authfail->where(),
                        "authfail comes before " + checked + ": it must follow it"});
  } else {
    // On a right password the stack must not reach authfail, or every
    // successful login is counted as a failure.
    const auto jump = success_jump(*password_check);
    if (!jump || (*jump > 0 && checked_at + *jump < at(authfail))) {
      findings.push_back({Finding::Severity::problem, authfail->where(),
                          "authfail also runs after a right password: " + checked + " is `" +
                              password_check->control +
                              "`; give it [success=N default=ignore] that jumps over authfail, "
                              "or sufficient"});
    } else {
      findings.push_back({Finding::Severity::ok, authfail->where(),
                          "authfail after " + checked + ", skipped on success"});
    }
  }

  const bool authsucc = std::any_of(auth.begin(), auth.end(), [&](const PamLine& line) {
    return is_ours(line) && has_argument(line, "authsucc");
  });
  if (!authsucc) {
    findings.push_back({Finding::Severity::warning, path,
                        "no `pam_acctlock.so authsucc`: a right password resets the count only "
                        "in the account phase"});
  }
  if (std::none_of(account.begin(), account.end(), is_ours)) {
    findings.push_back({Finding::Severity::warning, path,
                        "no `account required pam_acctlock.so`: logins that skip the password "
                        "(ssh keys) are not checked for a lock"});
  }
  if (std::none_of(password.begin(), password.end(), is_ours)) {
    findings.push_back({Finding::Severity::warning, path,
                        "no `password optional pam_acctlock.so`: a password change does not "
                        "lift a lock"});
  }
}

}  // namespace

std::vector<PamLine> expand_stack(const std::string& pam_dir, const std::string& service,
                                  const std::string& type, std::vector<Finding>& findings) {
  std::vector<PamLine> lines;
  expand_into(pam_dir, pam_dir + "/" + service, type, 0, lines, findings);
  return lines;
}

std::vector<Finding> check_pam_dir(const std::string& pam_dir) {
  std::vector<Finding> findings;
  std::error_code ec;
  std::vector<std::string> files;
  for (const auto& entry : fs::directory_iterator(pam_dir, ec)) {
    const std::string name = entry.path().filename().string();
    // Editors' and dpkg's leftovers are not services.
    if (!entry.is_regular_file() || name.empty() || name.front() == '.' || name.back() == '~' ||
        name.find(".dpkg-") != std::string::npos) {
      continue;
    }
    files.push_back(entry.path().string());
  }
  if (ec) {
    findings.push_back({Finding::Severity::problem, pam_dir, "cannot be listed: " + ec.message()});
    return findings;
  }
  std::sort(files.begin(), files.end());

  // Parts that services include are not services themselves: Debian's
  // common-*, and the *-auth and postlogin files of other distributions. A
  // service that another includes (su-l includes su) is still checked.
  const auto is_part = [](const std::string& name) {
    const auto ends_with = [&](const char* suffix) {
      const std::string tail = suffix;
      return name.size() >= tail.size() &&
             name.compare(name.size() - tail.size(), tail.size(), tail) == 0;
    };
    return name.rfind("common-", 0) == 0 || ends_with("-auth") || name == "postlogin" ||
           name == "config-util";
  };
  for (const auto& path : files) {
    if (!is_part(base_name(path))) check_service(pam_dir, path, findings);
  }
  return findings;
}

}  // namespace acctlock::cli
