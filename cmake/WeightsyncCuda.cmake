# Optional CUDA: CMake 3.25 does not know nvcc's C++20 flag, so it is passed by hand.
set(WEIGHTSYNC_HAVE_CUDA OFF)
if(NOT WEIGHTSYNC_CUDA STREQUAL "OFF")
  include(CheckLanguage)
  check_language(CUDA)
  if(CMAKE_CUDA_COMPILER)
    enable_language(CUDA)
    find_package(CUDAToolkit REQUIRED)
    set(WEIGHTSYNC_HAVE_CUDA ON)
    find_library(WEIGHTSYNC_NCCL_LIB nccl HINTS ${CUDAToolkit_LIBRARY_DIR})
  elseif(WEIGHTSYNC_CUDA STREQUAL "ON")
    message(FATAL_ERROR "WEIGHTSYNC_CUDA=ON but no CUDA compiler was found")
  endif()
endif()
message(STATUS "weightsync: CUDA ${WEIGHTSYNC_HAVE_CUDA}")

# Adds C++20 and Hopper flags to a target that has CUDA sources.
function(weightsync_cuda_target target)
  target_compile_options(${target} PRIVATE
    $<$<COMPILE_LANGUAGE:CUDA>:-std=c++20 --expt-relaxed-constexpr -lineinfo>)
  set_target_properties(${target} PROPERTIES CUDA_SEPARABLE_COMPILATION OFF)
endfunction()
