// Request limits (413/415/400 with messages naming the field), base64 and the
// metrics registry.
#include <gtest/gtest.h>

#include "mmkit/serve/api_error.h"
#include "mmkit/serve/metrics.h"
#include "mmkit/serve/request_limits.h"
#include "serve_fixtures.h"

using namespace mmkit;
using namespace mmkit::serve;

namespace {

// Runs fn, expects an ApiError with this status and code whose message contains `needle`.
template <class F>
void expect_api_error(F fn, int status, const std::string& code, const std::string& needle) {
  try {
    fn();
    ADD_FAILURE() << "no error (expected " << status << " " << code << ")";
  } catch (const ApiError& e) {
    EXPECT_EQ(e.status, status) << e.what();
    EXPECT_EQ(e.code, code) << e.what();
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

}  // namespace

TEST(Base64, RoundTripsAndAcceptsDataUrls) {
  for (size_t n : {1u, 2u, 3u, 4u, 5u, 64u, 1000u}) {
    std::vector<uint8_t> d(n);
    for (size_t i = 0; i < n; ++i) d[i] = uint8_t(i * 37 + 11);
    std::string s = encode_base64(d.data(), d.size());
    EXPECT_EQ(decode_base64(s, "x"), d) << n;
    EXPECT_EQ(decode_base64("data:image/png;base64," + s, "x"), d) << n;
    std::string unpadded = s.substr(0, s.find('='));
    EXPECT_EQ(decode_base64(unpadded, "x"), d) << n;
  }
  EXPECT_EQ(encode_base64(reinterpret_cast<const uint8_t*>("hello"), 5), "aGVsbG8=");
}

TEST(Base64, RejectsGarbageNamingTheField) {
  expect_api_error([] { decode_base64("aGVs*G8=", "images[2]"); }, 400, "bad_base64", "images[2]");
  expect_api_error([] { decode_base64("aGVsbG8=x", "image"); }, 400, "bad_base64", "after '='");
  expect_api_error([] { decode_base64("a", "image"); }, 400, "bad_base64", "truncated");
  expect_api_error([] { decode_base64("", "image"); }, 400, "bad_base64", "empty");
  expect_api_error([] { decode_base64("data:image/png,abc", "image"); }, 400, "bad_base64", "data: URL");
}

TEST(RequestLimits, ImagesAreCheckedBeforeDecoding) {
  RequestLimits lim;
  std::vector<uint8_t> png = encode_png(test::shape_image(1, 40));  // 1600 pixels
  Image ok = decode_request_image(png.data(), png.size(), lim, "image");
  EXPECT_EQ(ok.width, 40);
  lim.max_image_pixels = 1000;
  expect_api_error([&] { decode_request_image(png.data(), png.size(), lim, "images[1]"); }, 413, "image_too_large",
                   "images[1]");
  std::string text = "GIF89a not an image";
  expect_api_error(
      [&] { decode_request_image(reinterpret_cast<const uint8_t*>(text.data()), text.size(), lim, "image"); }, 415,
      "unsupported_media_type", "not a PNG or JPEG");
  std::vector<uint8_t> cut(png.begin(), png.begin() + long(png.size() / 2));
  lim.max_image_pixels = 1 << 20;
  expect_api_error([&] { decode_request_image(cut.data(), cut.size(), lim, "image"); }, 400, "bad_image", "image");
}

TEST(RequestLimits, Texts) {
  RequestLimits lim;
  lim.max_text_bytes = 10;
  check_text("a cat", lim, "texts[0]");
  expect_api_error([&] { check_text("a very long text", lim, "texts[3]"); }, 400, "text_too_long", "texts[3]: 16 bytes");
  expect_api_error([&] { check_text("", lim, "text"); }, 400, "bad_text", "empty");
  expect_api_error([&] { check_text("ab\xff", lim, "labels[0]"); }, 400, "bad_text", "UTF-8");
}

TEST(Metrics, CountsLatenciesAndRendersPrometheus) {
  Metrics m;
  m.observe("/v1/embeddings", 200, 0.003);
  m.observe("/v1/embeddings", 200, 0.030);
  m.observe("/v1/embeddings", 413, 0.0001);
  m.set_gauge("mmkit_queue_length", 2);
  EXPECT_EQ(m.count("/v1/embeddings", 200), 2);
  EXPECT_EQ(m.count("/v1/embeddings", 413), 1);
  EXPECT_EQ(m.count("/v1/search", 200), 0);
  EXPECT_DOUBLE_EQ(m.quantile("/v1/embeddings", 0.5), 0.005);  // 2nd of 3 sorted: 0.003 -> bucket le=0.005
  EXPECT_DOUBLE_EQ(m.quantile("/v1/embeddings", 0.99), 0.05);
  std::string p = m.prometheus();
  for (const char* want : {"mmkit_requests_total{route=\"/v1/embeddings\",status=\"200\"} 2",
                           "mmkit_request_seconds_bucket{route=\"/v1/embeddings\",le=\"0.001\"} 1",
                           "mmkit_request_seconds_bucket{route=\"/v1/embeddings\",le=\"0.005\"} 2",
                           "mmkit_request_seconds_bucket{route=\"/v1/embeddings\",le=\"+Inf\"} 3",
                           "mmkit_request_seconds_count{route=\"/v1/embeddings\"} 3", "mmkit_queue_length 2"})
    EXPECT_NE(p.find(want), std::string::npos) << "missing: " << want << "\n" << p;
  EXPECT_EQ(m.json()["/v1/embeddings"]["count"], 3);
}
