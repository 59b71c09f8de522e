#include "mmkit/index/metadata_filter.h"

#include <algorithm>
#include <cmath>

#include "mmkit/core/error.h"

namespace mmkit::index {

using json = nlohmann::json;

namespace {

const char* kind_of(const json& v) {
  switch (v.type()) {
    case json::value_t::object: return "an object";
    case json::value_t::array: return "an array";
    case json::value_t::string: return "a string";
    case json::value_t::boolean: return "a boolean";
    case json::value_t::null: return "null";
    default: return v.is_number() ? "a number" : "a value of another kind";
  }
}

bool scalar(const json& v) { return v.is_string() || v.is_number() || v.is_boolean() || v.is_null(); }

void check_metadata_value(const json& v, const std::string& at, int depth) {
  MMKIT_CHECK(depth <= kMaxMetadataDepth, at, ": nested deeper than ", kMaxMetadataDepth, " levels");
  if (v.is_number_float()) MMKIT_CHECK(std::isfinite(v.get<double>()), at, ": not a finite number");
  if (v.is_object()) {
    for (auto it = v.begin(); it != v.end(); ++it) {
      const std::string& k = it.key();
      MMKIT_CHECK(!k.empty(), at, ": an empty key");
      MMKIT_CHECK(k[0] != '$', at, ": key '", k, "' starts with '$', which filters reserve for operators");
      MMKIT_CHECK(k.find('.') == std::string::npos, at, ": key '", k,
                  "' contains '.', which filters use to reach nested fields");
      check_metadata_value(it.value(), at + "." + k, depth + 1);
    }
  } else if (v.is_array()) {
    for (size_t i = 0; i < v.size(); ++i) check_metadata_value(v[i], at + "[" + std::to_string(i) + "]", depth + 1);
  }
}

}  // namespace

void check_metadata(const json& m) {
  MMKIT_CHECK(m.is_object(), "metadata: expected a JSON object, got ", kind_of(m));
  const size_t bytes = m.dump().size();
  MMKIT_CHECK(bytes <= kMaxMetadataBytes, "metadata: ", bytes, " bytes as JSON, the limit is ", kMaxMetadataBytes);
  check_metadata_value(m, "metadata", 0);
}

struct MetadataFilter::Node {
  enum Kind { AND, OR, NOT, EQ, NE, GT, GTE, LT, LTE, IN, NIN, EXISTS } kind = AND;
  std::vector<Node> children;      // AND, OR, NOT (one)
  std::vector<std::string> path;   // field ops: "a.b" -> {"a", "b"}
  json value;                      // EQ..LTE: the operand; EXISTS: bool
  std::vector<json> set;           // IN, NIN: sorted (json's operator<), for binary search
};

namespace {

using Node = MetadataFilter::Node;

struct Parser {
  size_t terms = 0;

  Node node(Node::Kind k) {
    MMKIT_CHECK(++terms <= kMaxFilterTerms, "filter: more than ", kMaxFilterTerms, " terms");
    Node n;
    n.kind = k;
    return n;
  }

  // An object of clauses, all of which must hold.
  Node object(const json& f, const std::string& at, int depth) {
    MMKIT_CHECK(depth <= kMaxFilterDepth, at, ": nested deeper than ", kMaxFilterDepth, " levels");
    MMKIT_CHECK(f.is_object(), at, ": expected an object, got ", kind_of(f));
    Node all = node(Node::AND);
    for (auto it = f.begin(); it != f.end(); ++it) {
      const std::string& k = it.key();
      const std::string here = at + "." + k;
      if (k == "$and" || k == "$or") {
        MMKIT_CHECK(it->is_array() && !it->empty(), here, ": expected a non-empty array of filters, got ",
                    it->is_array() ? "an empty array" : kind_of(*it));
        Node n = node(k == "$and" ? Node::AND : Node::OR);
        for (size_t i = 0; i < it->size(); ++i)
          n.children.push_back(object((*it)[i], here + "[" + std::to_string(i) + "]", depth + 1));
        all.children.push_back(std::move(n));
      } else if (k == "$not") {
        Node n = node(Node::NOT);
        n.children.push_back(object(*it, here, depth + 1));
        all.children.push_back(std::move(n));
      } else if (!k.empty() && k[0] == '$') {
        fail(here, ": unknown operator '", k, "' at the top of a filter (expected a field name, $and, $or or $not)");
      } else {
        field(k, *it, here, all);
      }
    }
    return all;
  }

  void field(const std::string& key, const json& v, const std::string& at, Node& out) {
    std::vector<std::string> path;
    size_t a = 0;
    for (size_t b;; a = b + 1) {
      b = key.find('.', a);
      path.push_back(key.substr(a, b == std::string::npos ? std::string::npos : b - a));
      MMKIT_CHECK(!path.back().empty(), at, ": empty part in the field name '", key, "'");
      if (b == std::string::npos) break;
    }
    if (!v.is_object()) {  // {"field": value}: equality
      MMKIT_CHECK(scalar(v), at, ": expected a string, number, boolean, null or an object of operators, got ", kind_of(v));
      Node n = node(Node::EQ);
      n.path = path;
      n.value = v;
      out.children.push_back(std::move(n));
      return;
    }
    MMKIT_CHECK(!v.empty(), at, ": an empty object of operators (expected e.g. {\"$gte\": 1})");
    for (auto it = v.begin(); it != v.end(); ++it) {
      const std::string& op = it.key();
      const std::string here = at + "." + op;
      const json& x = *it;
      Node n;
      if (op == "$eq" || op == "$ne") {
        MMKIT_CHECK(scalar(x), here, ": expected a string, number, boolean or null, got ", kind_of(x));
        n = node(op == "$eq" ? Node::EQ : Node::NE);
        n.value = x;
      } else if (op == "$gt" || op == "$gte" || op == "$lt" || op == "$lte") {
        MMKIT_CHECK(x.is_number() || x.is_string(), here, ": expected a number or a string, got ", kind_of(x));
        n = node(op == "$gt" ? Node::GT : op == "$gte" ? Node::GTE : op == "$lt" ? Node::LT : Node::LTE);
        n.value = x;
      } else if (op == "$in" || op == "$nin") {
        MMKIT_CHECK(x.is_array(), here, ": expected an array of values, got ", kind_of(x));
        MMKIT_CHECK(x.size() <= kMaxSetSize, here, ": ", x.size(), " values, the limit is ", kMaxSetSize);
        n = node(op == "$in" ? Node::IN : Node::NIN);
        for (size_t i = 0; i < x.size(); ++i) {
          MMKIT_CHECK(scalar(x[i]), here, "[", i, "]: expected a string, number, boolean or null, got ", kind_of(x[i]));
          n.set.push_back(x[i]);
        }
        std::sort(n.set.begin(), n.set.end());
      } else if (op == "$exists") {
        MMKIT_CHECK(x.is_boolean(), here, ": expected true or false, got ", kind_of(x));
        n = node(Node::EXISTS);
        n.value = x;
      } else {
        fail(here, ": unknown operator '", op, "' (expected $eq, $ne, $gt, $gte, $lt, $lte, $in, $nin or $exists)");
      }
      n.path = path;
      out.children.push_back(std::move(n));
    }
  }
};

const json* lookup(const json& m, const std::vector<std::string>& path) {
  const json* v = &m;
  for (const std::string& k : path) {
    if (!v->is_object()) return nullptr;
    auto it = v->find(k);
    if (it == v->end()) return nullptr;
    v = &*it;
  }
  return v;
}

// Ordered comparison only between two numbers or two strings (json orders every pair of
// kinds; a filter must not say 5 < "a").
bool comparable(const json& a, const json& b) {
  return (a.is_number() && b.is_number()) || (a.is_string() && b.is_string());
}

bool equal(const json& a, const json& b) { return a == b; }

bool in_set(const json& v, const std::vector<json>& set) { return std::binary_search(set.begin(), set.end(), v); }

// Equality and $in on an array-valued field: any element.
template <class F>
bool any_value(const json& v, F f) {
  if (!v.is_array()) return f(v);
  for (const json& e : v)
    if (f(e)) return true;
  return false;
}

bool eval(const Node& n, const json& m) {
  switch (n.kind) {
    case Node::AND:
      for (const Node& c : n.children)
        if (!eval(c, m)) return false;
      return true;
    case Node::OR:
      for (const Node& c : n.children)
        if (eval(c, m)) return true;
      return false;
    case Node::NOT: return !eval(n.children[0], m);
    default: break;
  }
  const json* v = lookup(m, n.path);
  switch (n.kind) {
    case Node::EXISTS: return (v != nullptr) == n.value.get<bool>();
    case Node::EQ: return v && any_value(*v, [&](const json& e) { return equal(e, n.value); });
    case Node::NE: return !v || !any_value(*v, [&](const json& e) { return equal(e, n.value); });
    case Node::IN: return v && any_value(*v, [&](const json& e) { return in_set(e, n.set); });
    case Node::NIN: return !v || !any_value(*v, [&](const json& e) { return in_set(e, n.set); });
    case Node::GT: return v && comparable(*v, n.value) && n.value < *v;
    case Node::GTE: return v && comparable(*v, n.value) && !(*v < n.value);
    case Node::LT: return v && comparable(*v, n.value) && *v < n.value;
    case Node::LTE: return v && comparable(*v, n.value) && !(n.value < *v);
    default: return false;
  }
}

}  // namespace

MetadataFilter::MetadataFilter() = default;
MetadataFilter::~MetadataFilter() = default;
MetadataFilter::MetadataFilter(MetadataFilter&&) noexcept = default;
MetadataFilter& MetadataFilter::operator=(MetadataFilter&&) noexcept = default;

MetadataFilter MetadataFilter::parse(const json& filter) {
  MetadataFilter f;
  if (filter.is_null()) return f;
  Parser p;
  f.root_ = std::make_unique<Node>(p.object(filter, "filter", 0));
  return f;
}

bool MetadataFilter::matches(const json& metadata) const { return !root_ || eval(*root_, metadata); }

bool MetadataFilter::empty() const { return !root_ || (root_->kind == Node::AND && root_->children.empty()); }

}  // namespace mmkit::index
