# Turns INPUT into a C++ source defining `std::string_view FUNCTION()` over its bytes.
# Run as: cmake -DINPUT=... -DOUTPUT=... -DFUNCTION=... -P embed.cmake
file(READ "${INPUT}" hex HEX)
string(LENGTH "${hex}" hex_length)
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
string(REGEX REPLACE "(0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,)" "\\1\n"
       bytes "${bytes}")
math(EXPR length "${hex_length} / 2")
file(WRITE "${OUTPUT}.tmp"
     "// Generated from ${INPUT} by cmake/embed.cmake; do not edit.\n"
     "#include <string_view>\n\nnamespace tandem {\nnamespace {\n"
     "const unsigned char kData[] = {\n${bytes}0};\n}  // namespace\n\n"
     "std::string_view ${FUNCTION}() { return std::string_view(reinterpret_cast<const char*>(kData), ${length}); }\n\n"
     "}  // namespace tandem\n")
file(COPY_FILE "${OUTPUT}.tmp" "${OUTPUT}" ONLY_IF_DIFFERENT)
