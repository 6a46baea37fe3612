// SPDX-License-Identifier: BSD-3-Clause
// pam_acctlock.so: reports each login to acctlockd and refuses locked accounts.
//
//   auth     required                 pam_acctlock.so preauth
//   auth     [success=1 default=bad]  pam_unix.so
//   auth     [default=die]            pam_acctlock.so authfail
//   auth     sufficient               pam_acctlock.so authsucc
//   account  required                 pam_acctlock.so
//   password optional                 pam_acctlock.so   (after the change)
//
// The module keeps no state of its own: acctlockd decides, and the module
// asks. It runs inside sshd, login, su, sudo and screen lockers, so it talks
// only through pam_syslog and the conversation and bounds each wait by
// timeout_ms. One connection serves all phases of a PAM handle: it is kept
// with pam_set_data and closed by pam_end.
//
// Built on libc alone (issue 12; pam_module/CMakeLists.txt): C++ without
// exceptions, RTTI or any part of the C++ runtime, so that nothing can
// unwind into libpam's C frames and loading the module into every sshd child
// costs about what pam_faillock.so costs. Text goes into the caller's
// buffers; the little that outlives a call (the connection, the allowed
// user's name) is malloc'd and freed by pam_end.
#include <pwd.h>
#include <security/pam_ext.h>
#include <security/pam_modules.h>
#include <security/pam_modutil.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "common/event_id.h"
#include "common/lock_state.h"
#include "common/wire.h"
#include "common/wire_client.h"
#include "pam_module/lock_message.h"
#include "pam_module/module_arguments.h"

namespace acctlock::pam {
namespace {

namespace wire = protocol::wire;
using protocol::MessageType;
using protocol::Verdict;

// pam_set_data keys. The prefix keeps them apart from other modules' data.
constexpr const char* kClientKey = "acctlock_event_client";
// Set by the auth phase; the account phase reports a success only then, as
// pam_faillock resets its tally only when its auth phase ran in this handle.
constexpr const char* kAuthRanKey = "acctlock_auth_ran";
// Set once a success was reported, so that the account phase does not record
// the same login twice.
constexpr const char* kSuccessReportedKey = "acctlock_success_reported";

// The user whose success authsucc reported and found not locked. The account
// phase that follows in the same transaction, milliseconds later, takes that
// answer instead of asking again: one round trip less on every password
// login. A login without authsucc (an SSH key) still asks.
constexpr const char* kAllowedUserKey = "acctlock_allowed_user";

// Set once the user was told about a lock: with preauth `required`, the stack
// goes on to authsucc, which must not say it again.
constexpr const char* kLockReportedKey = "acctlock_lock_reported";

// pam_set_data needs a non-null pointer for a flag; the address of this
// constant is one that needs no cleanup.
constexpr char kFlagSet = 1;

void delete_client(pam_handle_t*, void* data, int) {
  auto* connection = static_cast<wire_client::Connection*>(data);
  wire_client::close(*connection);
  free(connection);
}

// The handle's connection, created on first use. nullptr only when memory or
// libpam failed; the caller treats that as an unreachable daemon.
wire_client::Connection* connection_for(pam_handle_t* pamh) {
  const void* data = nullptr;
  if (pam_get_data(pamh, kClientKey, &data) == PAM_SUCCESS && data != nullptr) {
    return static_cast<wire_client::Connection*>(const_cast<void*>(data));
  }
  auto* connection = static_cast<wire_client::Connection*>(malloc(sizeof(wire_client::Connection)));
  if (connection == nullptr) return nullptr;
  *connection = wire_client::Connection{};
  if (pam_set_data(pamh, kClientKey, connection, delete_client) != PAM_SUCCESS) {
    free(connection);
    return nullptr;
  }
  return connection;
}

void free_data(pam_handle_t*, void* data, int) {
  free(data);
}

void remember_allowed_user(pam_handle_t* pamh, const char* user) {
  char* copy = strdup(user);
  if (copy != nullptr && pam_set_data(pamh, kAllowedUserKey, copy, free_data) != PAM_SUCCESS) {
    free(copy);
  }
}

bool was_allowed(pam_handle_t* pamh, const char* user) {
  const void* data = nullptr;
  return pam_get_data(pamh, kAllowedUserKey, &data) == PAM_SUCCESS && data != nullptr &&
         strcmp(static_cast<const char*>(data), user) == 0;
}

void set_flag(pam_handle_t* pamh, const char* key) {
  pam_set_data(pamh, key, const_cast<char*>(&kFlagSet), nullptr);
}

bool flag_is_set(pam_handle_t* pamh, const char* key) {
  const void* data = nullptr;
  return pam_get_data(pamh, key, &data) == PAM_SUCCESS && data != nullptr;
}

// A PAM item, cut to the protocol's limit for that field: a long rhost must
// not cost the login its record. It points into libpam's copy.
wire::Text item(pam_handle_t* pamh, int type, std::size_t limit) {
  const void* value = nullptr;
  if (pam_get_item(pamh, type, &value) != PAM_SUCCESS || value == nullptr) return {};
  const auto* text = static_cast<const char*>(value);
  return wire::Text{text, strnlen(text, limit)};
}

void log_problem(void* context, Severity severity, const char* line) {
  pam_syslog(static_cast<pam_handle_t*>(context),
             severity == Severity::error ? LOG_ERR : LOG_WARNING, "%s", line);
}

// One invocation of an entry point: the settings, the user and the talk with
// the daemon, so that each pam_sm_* reads as its policy.
class Invocation {
 public:
  Invocation(pam_handle_t* pamh, int flags, int argc, const char** argv)
      : pamh_(pamh), quiet_((flags & PAM_SILENT) != 0) {
    resolve_settings(argc, argv, ACCTLOCK_DEFAULT_CONFIG, settings_, log_problem, pamh_);
    quiet_ = quiet_ || settings_.options.silent;
  }

  const Settings& settings() const { return settings_; }
  // Valid once find_user() found a name; "" before.
  const char* user() const { return user_; }

  // Looks up the user. PAM_SUCCESS, PAM_USER_UNKNOWN for a name NSS does not
  // know (not tracked, as with pam_faillock: a stream of made-up names must
  // not fill the database), or the error of pam_get_user.
  int find_user() {
    const char* name = nullptr;
    const int rc = pam_get_user(pamh_, &name, nullptr);
    if (rc != PAM_SUCCESS) {
      pam_syslog(pamh_, LOG_ERR, "cannot determine the user name: %s", pam_strerror(pamh_, rc));
      return rc == PAM_CONV_AGAIN ? PAM_INCOMPLETE : rc;
    }
    if (name == nullptr || *name == '\0') return PAM_USER_UNKNOWN;
    user_ = name;
    const struct passwd* account = pam_modutil_getpwnam(pamh_, name);
    if (account == nullptr) {
      debug("user %s is unknown to NSS; counted for its source only", user_);
      user_unknown_ = true;
      return PAM_USER_UNKNOWN;
    }
    user_is_root_ = account->pw_uid == 0;
    return PAM_SUCCESS;
  }

  // Sends one request. False when no trustworthy answer came back; the reason
  // is logged. The answer's reason points into this invocation's buffer.
  bool ask(MessageType type, wire::AnswerFields& answer) {
    wire::RequestFields request;
    request.type = type;
    request.user_is_root = user_is_root_;
    request.user_unknown = user_unknown_;
    request.event_id = new_event_id();  // one per event; a resend keeps it
    request.user = wire::Text{user_, strlen(user_)};
    request.service = item(pamh_, PAM_SERVICE, protocol::kMaxService);
    request.rhost = item(pamh_, PAM_RHOST, protocol::kMaxRhost);
    request.tty = item(pamh_, PAM_TTY, protocol::kMaxTty);
    request.ruser = item(pamh_, PAM_RUSER, protocol::kMaxRuser);

    wire_client::Connection* connection = connection_for(pamh_);
    if (connection == nullptr) {
      pam_syslog(pamh_, LOG_ERR, "out of memory");
      return false;
    }
    const char* socket = settings_.options.event_socket;
    const ClientStatus status =
        wire_client::exchange(*connection, socket, request, answer, answer_buffer_,
                              wire_client::deadline_after(settings_.options.timeout_ms));
    if (status != ClientStatus::ok) {
      const int error = connection->last_errno;
      char reason[256] = "";
      pam_syslog(pamh_, LOG_WARNING, "acctlockd at %s: %s%s%s", socket, describe(status),
                 error != 0 ? ": " : "",
                 error != 0 ? strerror_r(error, reason, sizeof reason) : "");
      return false;
    }
    switch (answer.verdict) {
      case Verdict::allowed:
      case Verdict::locked:
        return true;
      case Verdict::refused:
        pam_syslog(pamh_, LOG_WARNING,
                   "acctlockd refused to take a report for user %s from uid %lu: a process may "
                   "speak only for its own user unless it runs as root",
                   user_, static_cast<unsigned long>(getuid()));
        return false;
      case Verdict::invalid:
        pam_syslog(pamh_, LOG_WARNING, "acctlockd: \"%s\" is not a valid user name", user_);
        return false;
      case Verdict::failed:
        pam_syslog(pamh_, LOG_ERR, "acctlockd could not record the event for user %s (see its log)",
                   user_);
        return false;
      case Verdict::busy:
        pam_syslog(pamh_, LOG_WARNING,
                   "acctlockd is refusing uid %lu, which is over its share of connections or "
                   "requests (see acctlock.conf(5), max_connections_per_uid)",
                   static_cast<unsigned long>(getuid()));
        return false;
    }
    return false;
  }

  // What to return when the daemon gave no answer: on_unavailable decides.
  int unavailable(int deny_code) {
    if (settings_.options.deny_when_unavailable) {
      pam_syslog(pamh_, LOG_ERR, "refusing user %s: acctlockd is unavailable (on_unavailable=deny)",
                 user_);
      return deny_code;
    }
    pam_syslog(pamh_, LOG_WARNING,
               "not checking user %s against acctlockd, which is unavailable "
               "(on_unavailable=allow)",
               user_);
    return PAM_IGNORE;
  }

  // Logs the refusal and tells the user why, unless asked to be quiet; once
  // per PAM transaction.
  void report_locked(const wire::AnswerFields& answer) {
    if (flag_is_set(pamh_, kLockReportedKey)) return;
    set_flag(pamh_, kLockReportedKey);
    const std::int64_t now = time(nullptr);
    char log_text[kLockLogTextSize];
    lock_log_text(answer, now, log_text, sizeof log_text);
    pam_syslog(pamh_, LOG_NOTICE, "refusing user %s: %s", user_, log_text);
    if (quiet_) return;
    LockMessage message;
    lock_message(answer, now, message);
    for (std::size_t i = 0; i < message.count; ++i) {
      // A conversation failure only loses the explanation, not the refusal.
      pam_info(pamh_, "%s", message.lines[i]);
    }
  }

  __attribute__((format(printf, 2, 3))) void debug(const char* format, ...) {
    if (!settings_.options.debug) return;
    va_list arguments;
    va_start(arguments, format);
    pam_vsyslog(pamh_, LOG_DEBUG, format, arguments);
    va_end(arguments);
  }

 private:
  pam_handle_t* pamh_;
  bool quiet_;
  Settings settings_;
  const char* user_ = "";  // libpam's PAM_USER item, which outlives the call
  bool user_is_root_ = false;
  bool user_unknown_ = false;
  char answer_buffer_[wire::kMaxFrame];
};

// A name NSS does not know still counts for the source of the attempt
// (issue 11), and a blocked source is refused whatever name it tries, so
// that the refusal tells nothing about which names exist. Only a service
// running as root reports one: the daemon takes the report from root only.
int unknown_user_auth(Invocation& call, AuthMode mode) {
  if (*call.user() == '\0' || geteuid() != 0)
    return mode == AuthMode::authfail ? PAM_AUTH_ERR : PAM_IGNORE;
  wire::AnswerFields answer;
  switch (mode) {
    case AuthMode::preauth:
      if (call.ask(MessageType::check, answer) && answer.verdict == Verdict::locked) {
        call.report_locked(answer);
        return PAM_AUTH_ERR;
      }
      return PAM_IGNORE;
    case AuthMode::authfail:
      call.ask(MessageType::failure, answer);
      return PAM_AUTH_ERR;
    case AuthMode::authsucc:
    case AuthMode::none:
      break;
  }
  return PAM_IGNORE;
}

int authenticate(pam_handle_t* pamh, int flags, int argc, const char** argv) {
  Invocation call(pamh, flags, argc, argv);
  const AuthMode mode = call.settings().mode;
  if (mode == AuthMode::none) {
    pam_syslog(pamh, LOG_ERR, "in the auth phase, give one of preauth, authfail or authsucc");
    return PAM_SERVICE_ERR;
  }
  // authfail is reached only after the password failed: whatever happens
  // here, the answer stays a failure.
  const int failed = PAM_AUTH_ERR;
  if (const int rc = call.find_user(); rc != PAM_SUCCESS) {
    // authsucc is reached only when the password was right: a user this
    // module cannot track must not turn that into a failure.
    if (rc == PAM_USER_UNKNOWN) {
      return mode == AuthMode::authsucc ? PAM_SUCCESS : unknown_user_auth(call, mode);
    }
    if (mode == AuthMode::authfail) return failed;
    return rc;
  }
  set_flag(pamh, kAuthRanKey);

  wire::AnswerFields answer;
  switch (mode) {
    case AuthMode::preauth:
      if (!call.ask(MessageType::check, answer)) return call.unavailable(PAM_AUTHINFO_UNAVAIL);
      if (answer.verdict == Verdict::locked) {
        call.report_locked(answer);
        return PAM_AUTH_ERR;
      }
      call.debug("user %s may try to log in", call.user());
      return PAM_SUCCESS;
    case AuthMode::authfail:
      // A program that goes on to pam_acct_mgmt after a failed password
      // must not have the account phase clear the failure just counted.
      pam_set_data(pamh, kAuthRanKey, nullptr, nullptr);
      if (call.ask(MessageType::failure, answer)) {
        call.debug("failure of user %s recorded (%lu counted)", call.user(),
                   static_cast<unsigned long>(answer.failures));
      }
      return failed;
    case AuthMode::authsucc:
      if (!call.ask(MessageType::success, answer)) {
        // Allowed, this line's "no opinion" is the password module's success:
        // PAM_IGNORE on a `sufficient` line would fail a stack that relies on
        // it, as the documented one does.
        const int rc = call.unavailable(PAM_AUTHINFO_UNAVAIL);
        return rc == PAM_IGNORE ? PAM_SUCCESS : rc;
      }
      set_flag(pamh, kSuccessReportedKey);
      // The right password typed during a lock changes nothing: the lock
      // stands, and this line refuses too, in case preauth is missing.
      if (answer.verdict == Verdict::locked) {
        call.report_locked(answer);
        return PAM_AUTH_ERR;
      }
      call.debug("success of user %s recorded", call.user());
      remember_allowed_user(pamh, call.user());
      return PAM_SUCCESS;
    case AuthMode::none:
      break;
  }
  return PAM_SERVICE_ERR;
}

int account(pam_handle_t* pamh, int flags, int argc, const char** argv) {
  Invocation call(pamh, flags, argc, argv);
  if (const int rc = call.find_user(); rc != PAM_SUCCESS) {
    return rc == PAM_USER_UNKNOWN ? PAM_IGNORE : rc;
  }
  if (was_allowed(pamh, call.user())) return PAM_SUCCESS;
  // After this module's own auth phase, the account phase completes the
  // login: a success clears the failure count (a no-op when authsucc already
  // reported it). Without it (an SSH key, su from root) it only checks.
  const bool report_success =
      flag_is_set(pamh, kAuthRanKey) && !flag_is_set(pamh, kSuccessReportedKey);
  wire::AnswerFields answer;
  if (!call.ask(report_success ? MessageType::success : MessageType::check, answer)) {
    return call.unavailable(PAM_AUTH_ERR);
  }
  if (report_success) set_flag(pamh, kSuccessReportedKey);
  const auto lock = static_cast<LockKind>(answer.lock);
  if (answer.verdict == Verdict::locked && (lock == LockKind::manual || lock == LockKind::source ||
                                            call.settings().options.account_deny_locked)) {
    call.report_locked(answer);
    return PAM_PERM_DENIED;
  }
  return PAM_SUCCESS;
}

int change_password(pam_handle_t* pamh, int flags, int argc, const char** argv) {
  // The first pass only checks whether a change may start; the lock is
  // lifted only once the new password is in place.
  if ((flags & PAM_UPDATE_AUTHTOK) == 0) return PAM_IGNORE;
  Invocation call(pamh, flags, argc, argv);
  if (call.settings().options.keep_lock_on_password_change) return PAM_IGNORE;
  if (call.find_user() != PAM_SUCCESS) return PAM_IGNORE;
  wire::AnswerFields answer;
  // The password is already changed: an unreachable daemon must not make
  // the change look failed, so it is logged and passed over.
  if (!call.ask(MessageType::password_changed, answer)) return PAM_IGNORE;
  call.debug("password of user %s changed: failure lock lifted", call.user());
  return PAM_SUCCESS;
}

}  // namespace
}  // namespace acctlock::pam

extern "C" {

PAM_EXTERN int pam_sm_authenticate(pam_handle_t* pamh, int flags, int argc, const char** argv) {
  return acctlock::pam::authenticate(pamh, flags, argc, argv);
}

PAM_EXTERN int pam_sm_setcred(pam_handle_t*, int, int, const char**) {
  return PAM_SUCCESS;
}

PAM_EXTERN int pam_sm_acct_mgmt(pam_handle_t* pamh, int flags, int argc, const char** argv) {
  return acctlock::pam::account(pamh, flags, argc, argv);
}

PAM_EXTERN int pam_sm_chauthtok(pam_handle_t* pamh, int flags, int argc, const char** argv) {
  return acctlock::pam::change_password(pamh, flags, argc, argv);
}

}  // extern "C"
