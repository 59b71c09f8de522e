// Typed config reads: values, defaults, and the exact error messages users will see.
#include "mmkit/util/json_config.h"

#include <gtest/gtest.h>

#include "test_util.h"

using namespace mmkit;

TEST(JsonConfig, ReadsTypedFields) {
  const nlohmann::json c = parse_json(
      R"({"dim": 512, "eps": 1e-5, "heads": 8, "zero": 0, "act": "quick_gelu", "causal": true, "opt": null})", "cfg");
  EXPECT_EQ(get_int(c, "dim", "cfg"), 512);
  EXPECT_DOUBLE_EQ(get_double(c, "eps", "cfg"), 1e-5);
  EXPECT_EQ(get_double(c, "zero", "cfg"), 0.0);  // integers are valid doubles
  EXPECT_EQ(get_string(c, "act", "cfg"), "quick_gelu");
  EXPECT_TRUE(get_bool(c, "causal", "cfg"));
  // Defaults apply to missing and null fields only.
  EXPECT_EQ(get_int(c, "depth", "cfg", 12), 12);
  EXPECT_EQ(get_int(c, "opt", "cfg", 3), 3);
  EXPECT_EQ(get_int(c, "heads", "cfg", 3), 8);
  EXPECT_EQ(get_double(c, "dropout", "cfg", 0.1), 0.1);
  EXPECT_EQ(get_string(c, "pool", "cfg", "cls"), "cls");
  EXPECT_FALSE(get_bool(c, "bias", "cfg", false));
}

TEST(JsonConfig, ErrorsNameWhereFieldAndTypes) {
  const nlohmann::json c = nlohmann::json::parse(
      R"({"dim": "512", "eps": "small", "n": 2.5, "big": 18446744073709551615, "flag": 1, "name": 3, "opt": null})");
  const std::string w = "vit.safetensors config";
  EXPECT_EQ(test::error_of([&] { get_int(c, "dim", w); }),
            "vit.safetensors config: config field 'dim': expected integer, got string");
  EXPECT_EQ(test::error_of([&] { get_int(c, "n", w); }), w + ": config field 'n': expected integer, got float");
  EXPECT_EQ(test::error_of([&] { get_int(c, "big", w); }),
            w + ": config field 'big': 18446744073709551615 does not fit in int64");
  EXPECT_EQ(test::error_of([&] { get_double(c, "eps", w); }), w + ": config field 'eps': expected number, got string");
  EXPECT_EQ(test::error_of([&] { get_bool(c, "flag", w); }), w + ": config field 'flag': expected boolean, got integer");
  EXPECT_EQ(test::error_of([&] { get_string(c, "name", w); }), w + ": config field 'name': expected string, got integer");
  EXPECT_EQ(test::error_of([&] { get_int(c, "depth", w); }), w + ": config field 'depth' is missing");
  EXPECT_EQ(test::error_of([&] { get_int(c, "opt", w); }), w + ": config field 'opt': expected integer, got null");
  // A present value of the wrong type is an error even with a default.
  EXPECT_EQ(test::error_of([&] { get_int(c, "dim", w, 7); }), w + ": config field 'dim': expected integer, got string");
  EXPECT_EQ(test::error_of([&] { get_int(nlohmann::json::array(), "dim", w); }), w + ": expected a JSON object, got array");
  EXPECT_NE(test::error_of([&] { parse_json("{\"dim\": ", w); }).find(w + ": invalid JSON"), std::string::npos);
}
