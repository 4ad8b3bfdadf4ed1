# Project-wide warning flags, applied per target through weightsync_warnings().
add_library(weightsync_warnings INTERFACE)
target_compile_options(weightsync_warnings INTERFACE
  $<$<COMPILE_LANGUAGE:CXX>:-Wall -Wextra -Wpedantic -Wshadow -Wnon-virtual-dtor -Wno-missing-field-initializers>)
