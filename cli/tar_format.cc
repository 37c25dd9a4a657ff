#include "cli/tar_format.h"

#include <algorithm>
#include <cstring>

namespace agentvm::cli::tar {
namespace {

// ustar field offsets and widths.
constexpr std::size_t kName = 0, kNameLen = 100;
constexpr std::size_t kMode = 100, kUid = 108, kGid = 116, kIdLen = 8;
constexpr std::size_t kSize = 124, kMtime = 136, kNumLen = 12;
constexpr std::size_t kChecksum = 148, kChecksumLen = 8;
constexpr std::size_t kType = 156;
constexpr std::size_t kLink = 157, kLinkLen = 100;
constexpr std::size_t kMagic = 257;
constexpr std::size_t kPrefix = 345, kPrefixLen = 155;
// Names and link targets of GNU/pax records are read up to this size: more
// is no file name any file system takes.
constexpr std::size_t kMaxName = 64 * 1024;

void PutOctal(char* field, std::size_t width, std::uint64_t value) {
  // width-1 octal digits and a NUL; past that, base-256 (a GNU extension
  // every current tar reads), as for files of 8 GiB and more.
  if (width - 1 < 22 && value >= (std::uint64_t{1} << (3 * (width - 1)))) {
    std::memset(field, 0, width);
    field[0] = static_cast<char>(0x80);
    for (std::size_t i = width - 1; i > 0 && value != 0; --i, value >>= 8) {
      field[i] = static_cast<char>(value & 0xff);
    }
    return;
  }
  std::snprintf(field, width, "%0*llo", static_cast<int>(width - 1), static_cast<unsigned long long>(value));
}

Result<std::uint64_t> GetNumber(std::string_view block, std::size_t offset, std::size_t width) {
  std::string_view field = block.substr(offset, width);
  if (static_cast<unsigned char>(field[0]) & 0x80) {
    std::uint64_t value = static_cast<unsigned char>(field[0]) & 0x7f;
    for (std::size_t i = 1; i < field.size(); ++i) {
      if (value >> 56) return Fail(ErrorCode::kInvalidArgument, "tar: a number does not fit 64 bits");
      value = (value << 8) | static_cast<unsigned char>(field[i]);
    }
    return value;
  }
  std::uint64_t value = 0;
  std::size_t i = 0;
  while (i < field.size() && field[i] == ' ') ++i;
  for (; i < field.size() && field[i] >= '0' && field[i] <= '7'; ++i) value = value * 8 + (field[i] - '0');
  for (; i < field.size(); ++i) {
    if (field[i] != ' ' && field[i] != '\0') return Fail(ErrorCode::kInvalidArgument, "tar: malformed number in a header");
  }
  return value;
}

std::string GetString(std::string_view block, std::size_t offset, std::size_t width) {
  std::string_view field = block.substr(offset, width);
  return std::string(field.substr(0, std::min(field.find('\0'), field.size())));
}

std::string Block(const Header& header, std::string_view name, std::string_view link) {
  std::string block(kBlockBytes, '\0');
  char* b = block.data();
  std::memcpy(b + kName, name.data(), std::min(name.size(), kNameLen));
  PutOctal(b + kMode, kIdLen, header.mode & 07777);
  PutOctal(b + kUid, kIdLen, 0);
  PutOctal(b + kGid, kIdLen, 0);
  PutOctal(b + kSize, kNumLen, header.size);
  PutOctal(b + kMtime, kNumLen, static_cast<std::uint64_t>(std::max<std::int64_t>(header.mtime, 0)));
  b[kType] = static_cast<char>(header.type);
  std::memcpy(b + kLink, link.data(), std::min(link.size(), kLinkLen));
  std::memcpy(b + kMagic, "ustar\0" "00", 8);
  std::memset(b + kChecksum, ' ', kChecksumLen);
  unsigned sum = 0;
  for (unsigned char c : block) sum += c;
  std::snprintf(b + kChecksum, 7, "%06o", sum);  // six digits, NUL, and the space already there
  return block;
}

// A GNU 'L'/'K' record: a header whose data is the NUL-terminated name.
std::string LongRecord(EntryType type, std::string_view text) {
  Header record{.name = "././@LongLink", .type = type, .size = text.size() + 1};
  std::string out = Block(record, record.name, {});
  out.append(text);
  out.append(1 + PaddingFor(text.size() + 1), '\0');
  return out;
}

}  // namespace

std::size_t PaddingFor(std::uint64_t size) {
  return static_cast<std::size_t>((kBlockBytes - size % kBlockBytes) % kBlockBytes);
}

std::string EncodeHeader(const Header& header) {
  std::string out;
  // A name that fills the field exactly has no NUL; the long form is kept
  // for those too, so a reader never has to guess.
  if (header.name.size() >= kNameLen) out += LongRecord(EntryType::kGnuLongName, header.name);
  if (header.link.size() >= kLinkLen) out += LongRecord(EntryType::kGnuLongLink, header.link);
  out += Block(header, header.name, header.link);
  return out;
}

Result<std::optional<Header>> DecodeHeader(std::string_view block) {
  if (block.size() != kBlockBytes) return Fail(ErrorCode::kInvalidArgument, "tar: short header block");
  if (std::all_of(block.begin(), block.end(), [](char c) { return c == '\0'; })) return std::optional<Header>();
  auto stored = GetNumber(block, kChecksum, kChecksumLen);
  unsigned sum = 0;
  for (std::size_t i = 0; i < kBlockBytes; ++i) {
    sum += (i >= kChecksum && i < kChecksum + kChecksumLen) ? ' ' : static_cast<unsigned char>(block[i]);
  }
  if (!stored || sum != *stored) {
    return Fail(ErrorCode::kInvalidArgument, "tar: header checksum mismatch (not a tar stream?)");
  }
  Header header;
  header.name = GetString(block, kName, kNameLen);
  if (block.substr(kMagic, 5) == "ustar") {
    std::string prefix = GetString(block, kPrefix, kPrefixLen);
    if (!prefix.empty()) header.name = prefix + "/" + header.name;
  }
  header.link = GetString(block, kLink, kLinkLen);
  header.type = block[kType] == '\0' ? EntryType::kFile : static_cast<EntryType>(block[kType]);
  auto mode = GetNumber(block, kMode, kIdLen);
  auto size = GetNumber(block, kSize, kNumLen);
  auto mtime = GetNumber(block, kMtime, kNumLen);
  if (!mode) return Fail(mode.error());
  if (!size) return Fail(size.error());
  if (!mtime) return Fail(mtime.error());
  header.mode = static_cast<std::uint32_t>(*mode & 07777);
  header.size = *size;
  header.mtime = static_cast<std::int64_t>(std::min<std::uint64_t>(*mtime, INT64_MAX));
  if ((header.type == EntryType::kGnuLongName || header.type == EntryType::kGnuLongLink ||
       header.type == EntryType::kPaxHeader || header.type == EntryType::kPaxGlobal) &&
      header.size > kMaxName) {
    return Fail(ErrorCode::kInvalidArgument, "tar: an extended header of " + std::to_string(header.size) +
                                                 " bytes is more than " + std::to_string(kMaxName));
  }
  return std::optional<Header>(std::move(header));
}

Result<PaxOverrides> ParsePax(std::string_view records) {
  // Records: "<length> <key>=<value>\n", the length counting the whole record.
  PaxOverrides out;
  while (!records.empty()) {
    std::size_t space = records.find(' ');
    std::size_t length = 0;
    for (std::size_t i = 0; i < space && i < records.size(); ++i) {
      if (records[i] < '0' || records[i] > '9') return Fail(ErrorCode::kInvalidArgument, "tar: malformed pax record");
      length = length * 10 + (records[i] - '0');
    }
    if (space == std::string_view::npos || length <= space + 1 || length > records.size() ||
        records[length - 1] != '\n') {
      return Fail(ErrorCode::kInvalidArgument, "tar: malformed pax record");
    }
    std::string_view record = records.substr(space + 1, length - space - 2);
    std::size_t equals = record.find('=');
    if (equals != std::string_view::npos) {
      std::string_view key = record.substr(0, equals);
      std::string value(record.substr(equals + 1));
      if (key == "path") out.path = std::move(value);
      if (key == "linkpath") out.link = std::move(value);
    }
    records.remove_prefix(length);
  }
  return out;
}

}  // namespace agentvm::cli::tar
