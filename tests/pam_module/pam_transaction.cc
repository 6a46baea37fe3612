// SPDX-License-Identifier: BSD-3-Clause
#include "tests/pam_module/pam_transaction.h"

#include <security/pam_appl.h>

#include <cstdlib>
#include <cstring>

namespace acctlock::test {
namespace {

struct Conversation {
  const PamTransaction& transaction;
  std::vector<std::string>& messages;
  int prompts = 0;
};

int converse(int count, const struct pam_message** messages, struct pam_response** responses,
             void* data) {
  auto* conversation = static_cast<Conversation*>(data);
  auto* replies =
      static_cast<pam_response*>(std::calloc(static_cast<size_t>(count), sizeof(pam_response)));
  if (replies == nullptr) return PAM_BUF_ERR;
  for (int i = 0; i < count; ++i) {
    const pam_message* message = messages[i];
    switch (message->msg_style) {
      case PAM_PROMPT_ECHO_OFF:
      case PAM_PROMPT_ECHO_ON: {
        const PamTransaction& t = conversation->transaction;
        const bool is_new = conversation->prompts++ > 0 && !t.new_password.empty();
        replies[i].resp = strdup((is_new ? t.new_password : t.password).c_str());
        break;
      }
      case PAM_TEXT_INFO:
      case PAM_ERROR_MSG:
        conversation->messages.emplace_back(message->msg);
        break;
      default:
        break;
    }
  }
  *responses = replies;
  return PAM_SUCCESS;
}

}  // namespace

const char* phase_name(PamPhase phase) {
  switch (phase) {
    case PamPhase::auth:
      return "auth";
    case PamPhase::account:
      return "account";
    case PamPhase::password:
      return "password";
  }
  return "?";
}

PamOutcome run_pam(const PamTransaction& transaction) {
  PamOutcome outcome;
  Conversation conversation{transaction, outcome.messages};
  const pam_conv conv{converse, &conversation};
  pam_handle_t* pamh = nullptr;
  int rc = pam_start_confdir(transaction.service.c_str(), transaction.user.c_str(), &conv,
                             transaction.confdir.c_str(), &pamh);
  if (rc != PAM_SUCCESS) {
    outcome.status = rc;
    outcome.failed_phase = "start";
    outcome.status_text = pam_strerror(pamh, rc);
    return outcome;
  }
  if (!transaction.rhost.empty()) pam_set_item(pamh, PAM_RHOST, transaction.rhost.c_str());
  for (const PamPhase phase : transaction.phases) {
    switch (phase) {
      case PamPhase::auth:
        rc = pam_authenticate(pamh, 0);
        break;
      case PamPhase::account:
        rc = pam_acct_mgmt(pamh, 0);
        break;
      case PamPhase::password:
        rc = pam_chauthtok(pamh, 0);
        break;
    }
    outcome.phase_lines.push_back(std::string(phase_name(phase)) + ": " + pam_strerror(pamh, rc));
    if (rc != PAM_SUCCESS) {
      outcome.failed_phase = phase_name(phase);
      break;
    }
  }
  outcome.status = rc;
  outcome.status_text = pam_strerror(pamh, rc);
  pam_end(pamh, rc);
  return outcome;
}

}  // namespace acctlock::test
