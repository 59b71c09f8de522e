// Limits on what one request may ask of the server, and the checks that turn
// violations into 4xx ApiErrors that name the field and the numbers:
//   413 payload_too_large / image_too_large   body or decoded image over the limit
//   413 image_too_costly                       a JPEG whose scans x blocks exceed the decode budget
//   415 unsupported_media_type                 not PNG/JPEG, or an unknown content type
//   400 bad_request / bad_base64 / bad_image / text_too_long / too_many_items ...
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "mmkit/image/image.h"

namespace mmkit::serve {

struct RequestLimits {
  size_t max_body_bytes = 32u << 20;    // whole HTTP body
  int64_t max_image_pixels = 16'000'000;  // width * height of one image, checked before decoding pixels
  size_t max_text_bytes = 1000;         // one text (UTF-8 bytes); CLIP sees at most 77 tokens anyway
  size_t max_items = 64;                // texts + images in one request
  size_t max_labels = 100;              // zero-shot labels
  size_t max_prompts = 1024;            // zero-shot labels x templates (each prompt is a text forward)
  size_t max_json_depth = 32;           // nesting of a JSON body (the API's bodies use 2)
  size_t max_json_elements = 10000;     // values in a JSON body: a 7.7 MB body of {} cost 283 MB
  int max_k = 100;                      // search results
  int max_beam = 8;                     // /v1/caption beam width (cost grows with it)
};

// Standard base64 (RFC 4648, '=' padding optional, whitespace ignored); a
// "data:<type>;base64," prefix is skipped. 400 bad_base64 naming `field`.
std::vector<uint8_t> decode_base64(std::string_view s, const std::string& field);
std::string encode_base64(const uint8_t* data, size_t size);

// Decodes an uploaded image: 415 when it is neither PNG nor JPEG, 413 when its
// header declares more than max_image_pixels, 400 when it is corrupt.
Image decode_request_image(const uint8_t* data, size_t size, const RequestLimits& lim, const std::string& field);

// Non-empty, valid UTF-8, at most max_text_bytes: else 400 naming `field`.
void check_text(const std::string& s, const RequestLimits& lim, const std::string& field);

}  // namespace mmkit::serve
