// Byte-level encodings the API needs at its edges: percent-decoding of request
// targets, UTF-8 validation (exec output goes into JSON strings only when it is
// valid UTF-8) and base64 for the bytes that are not.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace agentvm::api {

// Decodes %XX escapes. '+' stays '+' (this is a URL path/query, not a form).
// nullopt for a truncated or non-hex escape.
std::optional<std::string> PercentDecode(std::string_view text);

// Percent-encodes everything outside RFC 3986 "unreserved" plus '/'.
std::string PercentEncode(std::string_view text);

// Strict UTF-8: no overlong forms, no surrogates, nothing above U+10FFFF.
bool IsValidUtf8(std::string_view bytes);

// 0-15 for a hex digit of either case, else -1.
int HexDigitValue(char c);

std::string Base64Encode(std::string_view bytes);
// Base64Encode(bytes) appended to `out`.
void AppendBase64(std::string& out, std::string_view bytes);
// Standard alphabet with padding; nullopt for anything else.
std::optional<std::string> Base64Decode(std::string_view text);

}  // namespace agentvm::api
