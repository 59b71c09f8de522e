// Raw character tables generated from Python's str methods and the `regex` module by
// tools/gen_unicode_tables.py (data in unicode_tables.cpp). Use the lookups in unicode.h; this
// header only fixes the table layouts. All tables are sorted by code point.
#pragma once
#include <cstddef>
#include <cstdint>

namespace mmkit::text::tables {

// A run of code points [start, next run's start) sharing one PreTokenClass value.
struct ClassRun {
  uint32_t start;
  uint8_t cls;
};

// Inclusive range [lo, hi].
struct CodeRange {
  uint32_t lo, hi;
};

// str.lower() of one code point: one or two code points (lower[1] == 0 when one).
// Only U+0130 maps to two (U+0069 U+0307). U+03A3 is absent: it depends on context.
struct LowerMapping {
  uint32_t cp;
  uint32_t lower[2];
};

// Classes under CLIP's pattern (compiled with IGNORECASE); covers U+0000..U+10FFFF.
extern const ClassRun kPreTokenClassRuns[];
extern const size_t kPreTokenClassRunCount;
// str.isspace() (also Python re's `\s` and what str.strip() removes).
extern const CodeRange kSpaceRanges[];
extern const size_t kSpaceRangeCount;
// Case_Ignorable and (non-ignorable) Cased, as CPython's Final_Sigma rule consults them.
extern const CodeRange kCaseIgnorableRanges[];
extern const size_t kCaseIgnorableRangeCount;
extern const CodeRange kCasedRanges[];
extern const size_t kCasedRangeCount;
extern const LowerMapping kLowerMappings[];
extern const size_t kLowerMappingCount;

}  // namespace mmkit::text::tables
