// Cross-attention maps of a generated caption drawn as one PNG: the input
// image, then one tile per generated word (EOS included) showing where the
// decoder's last cross-attention layer looked (mean over heads): each patch
// keeps brightness in proportion to its weight (relative to the word's most
// attended patch, which is outlined in magenta), with the word and the
// weight that went to the class token (which has no place in the image)
// underneath.
//
//   GenerateOptions o;  o.attention = true;
//   auto cap = generate(model, mem, o)[0];
//   plot_caption_attention("attn.png", image, words, cap.attention, /*grid=*/5, /*cls=*/true);
#pragma once
#include <string>
#include <vector>

#include "mmkit/image/image.h"

namespace mmkit {

// attention: [words.size(), M] row-major, M = grid*grid (+1 with a class
// token first). `image` is shown as given (any size; RGB or gray).
void plot_caption_attention(const std::string& png_path, const Image& image, const std::vector<std::string>& words,
                            const std::vector<float>& attention, int grid, bool has_cls_token,
                            const std::string& title);

}  // namespace mmkit
