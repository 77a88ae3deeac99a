#include "glimpse/version.h"

namespace glimpse {

const char* version() {
  return GLIMPSE_VERSION;
}

}  // namespace glimpse
