// SPDX-License-Identifier: BSD-3-Clause
#include "common/source_address.h"

#include <arpa/inet.h>

#include <charconv>
#include <cstring>

namespace acctlock {
namespace {

// INET6_ADDRSTRLEN plus brackets and a zone: longer text is never an address.
constexpr std::size_t kMaxAddressText = 64;

bool is_v4_mapped(const std::array<std::uint8_t, 16>& bytes) {
  for (std::size_t i = 0; i < 10; ++i) {
    if (bytes[i] != 0) return false;
  }
  return bytes[10] == 0xff && bytes[11] == 0xff;
}

}  // namespace

std::optional<IpAddress> parse_ip_address(std::string_view text) {
  if (text.size() >= 2 && text.front() == '[' && text.back() == ']') {
    text = text.substr(1, text.size() - 2);
  }
  if (text.empty() || text.size() > kMaxAddressText) return std::nullopt;
  // inet_pton wants a NUL-terminated string.
  char buffer[kMaxAddressText + 1];
  std::memcpy(buffer, text.data(), text.size());
  buffer[text.size()] = '\0';

  IpAddress address;
  if (inet_pton(AF_INET, buffer, address.bytes.data()) == 1) return address;

  if (char* zone = std::strchr(buffer, '%')) {
    if (zone[1] == '\0') return std::nullopt;
    *zone = '\0';
  }
  std::array<std::uint8_t, 16> v6{};
  if (inet_pton(AF_INET6, buffer, v6.data()) != 1) return std::nullopt;
  if (is_v4_mapped(v6)) {
    std::memcpy(address.bytes.data(), v6.data() + 12, 4);
    return address;
  }
  address.is_v6 = true;
  address.bytes = v6;
  return address;
}

std::string format_ip_address(const IpAddress& address) {
  char buffer[INET6_ADDRSTRLEN] = {};
  inet_ntop(address.is_v6 ? AF_INET6 : AF_INET, address.bytes.data(), buffer, sizeof buffer);
  return buffer;
}

IpAddress mask_address(IpAddress address, unsigned prefix_length) {
  const unsigned bits = address.bit_count();
  if (prefix_length >= bits) return address;
  for (unsigned byte = 0; byte < bits / 8; ++byte) {
    const unsigned first_bit = byte * 8;
    if (first_bit >= prefix_length) {
      address.bytes[byte] = 0;
    } else if (prefix_length - first_bit < 8) {
      const unsigned kept = prefix_length - first_bit;
      address.bytes[byte] &= static_cast<std::uint8_t>(0xff << (8 - kept));
    }
  }
  return address;
}

bool AddressPrefix::contains(const IpAddress& address) const {
  if (address.is_v6 != network.is_v6) return false;
  return mask_address(address, length) == network;
}

std::string AddressPrefix::to_string() const {
  std::string text = format_ip_address(network);
  if (length != network.bit_count()) text += "/" + std::to_string(length);
  return text;
}

std::optional<AddressPrefix> parse_address_prefix(std::string_view text, std::string* error) {
  const auto fail = [&](std::string message) -> std::optional<AddressPrefix> {
    if (error != nullptr) *error = std::move(message);
    return std::nullopt;
  };
  const std::string quoted = "\"" + std::string(text) + "\"";
  const std::size_t slash = text.find('/');
  const std::string_view address_text = text.substr(0, slash);
  // A zone makes no sense in a prefix that is compared across interfaces.
  if (address_text.find('%') != std::string_view::npos) {
    return fail(quoted + " is not an address or CIDR prefix (no %zone)");
  }
  const std::optional<IpAddress> address = parse_ip_address(address_text);
  if (!address) return fail(quoted + " is not an address or CIDR prefix, such as 192.0.2.0/24");

  AddressPrefix prefix;
  prefix.network = *address;
  prefix.length = address->bit_count();
  if (slash != std::string_view::npos) {
    const std::string_view length_text = text.substr(slash + 1);
    unsigned length = 0;
    const char* end = length_text.data() + length_text.size();
    const auto [ptr, ec] = std::from_chars(length_text.data(), end, length);
    if (length_text.empty() || ec != std::errc{} || ptr != end || length > address->bit_count()) {
      return fail(quoted + " has a bad prefix length: expected /0 to /" +
                  std::to_string(address->bit_count()));
    }
    prefix.length = length;
  }
  if (mask_address(*address, prefix.length) != *address) {
    return fail(quoted + " has host bits set after /" + std::to_string(prefix.length) +
                "; write the network address, " +
                format_ip_address(mask_address(*address, prefix.length)) + "/" +
                std::to_string(prefix.length));
  }
  return prefix;
}

}  // namespace acctlock
