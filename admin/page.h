// The admin page: admin/page/index.html, embedded in the binary at build time (CMake turns
// it into page_data.cpp), so the page needs no files at run time, no build step and no CDN.
#pragma once

#include <string_view>

namespace tandem {

std::string_view adminPageHtml();

}  // namespace tandem
