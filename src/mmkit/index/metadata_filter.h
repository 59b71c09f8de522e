// Metadata of live-index items (a JSON object per item) and the filter
// language searches and duplicate queries take. A filter is a JSON object:
//
//   {"camera": "x100"}                           equality (shorthand of {"$eq": ...})
//   {"year": {"$gte": 2020, "$lt": 2024}}         ranges: $gt $gte $lt $lte (numbers, or strings compared bytewise)
//   {"tag": {"$in": ["cat", "dog"]}}              sets: $in, $nin (a value in / not in the list;
//                                                 an array value matches $in when any element is in the list)
//   {"tag": {"$ne": "cat"}, "album": {"$exists": true}}
//   {"$or": [{...}, {...}]}, {"$and": [...]}, {"$not": {...}}
//   {"place.city": "Oslo"}                        a dotted key reads nested objects
//
// Several keys in one object must all hold. A missing field matches only
// {"$exists": false}, $ne and $nin. A comparison between a number and a string
// is false, never an error. An array-valued field matches equality and $in
// when any of its elements does. The empty filter {} matches everything.
//
// Parsing checks everything up front and throws mmkit::Error naming the place
// ("filter.year.$gte: expected a number or a string, got an object"); matching
// cannot fail. Bounds: nesting depth kMaxFilterDepth, kMaxFilterTerms terms in
// all, kMaxSetSize values per $in/$nin.
//
//   MetadataFilter f = MetadataFilter::parse(nlohmann::json::parse(R"({"year": {"$gte": 2020}})"));
//   bool keep = f.matches(item_metadata);
#pragma once
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace mmkit::index {

inline constexpr int kMaxFilterDepth = 8;
inline constexpr size_t kMaxFilterTerms = 256;
inline constexpr size_t kMaxSetSize = 1024;

// Item metadata: a JSON object of at most kMaxMetadataBytes when serialised,
// nesting at most kMaxMetadataDepth, keys non-empty, without '.' and not
// starting with '$' (they are the filter language's). Throws mmkit::Error
// naming the problem ("metadata.a.b: ...").
inline constexpr size_t kMaxMetadataBytes = 16 * 1024;
inline constexpr int kMaxMetadataDepth = 4;
void check_metadata(const nlohmann::json& metadata);

class MetadataFilter {
 public:
  MetadataFilter();  // matches everything
  ~MetadataFilter();
  MetadataFilter(MetadataFilter&&) noexcept;
  MetadataFilter& operator=(MetadataFilter&&) noexcept;
  static MetadataFilter parse(const nlohmann::json& filter);
  bool matches(const nlohmann::json& metadata) const;
  bool empty() const;  // true for {} (every item matches)

  struct Node;

 private:
  std::unique_ptr<Node> root_;
};

}  // namespace mmkit::index
