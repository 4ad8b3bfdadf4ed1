# Optional CUDA: CMake 3.25 does not know nvcc's C++20 flag, so it is passed by hand.
set(WEIGHTSYNC_HAVE_CUDA OFF)
set(WEIGHTSYNC_HAVE_NCCL OFF)
if(NOT WEIGHTSYNC_CUDA STREQUAL "OFF")
  include(CheckLanguage)
  check_language(CUDA)
  if(CMAKE_CUDA_COMPILER)
    enable_language(CUDA)
    find_package(CUDAToolkit REQUIRED)
    set(WEIGHTSYNC_HAVE_CUDA ON)
    # NCCL (the nccl transport): the toolkit's, or one under WEIGHTSYNC_NCCL_ROOT (e.g. PyPI's
    # nvidia-nccl wheel, which ships libnccl.so.2 only). Without it the transport is not built.
    set(WEIGHTSYNC_NCCL_ROOT "" CACHE PATH "where NCCL's include/ and lib/ are (optional)")
    if(NOT "${WEIGHTSYNC_NCCL_ROOT}" STREQUAL "${WEIGHTSYNC_NCCL_ROOT_SEEN}")
      # Another root: find header and library again, both there (never one of each).
      unset(WEIGHTSYNC_NCCL_INCLUDE CACHE)
      unset(WEIGHTSYNC_NCCL_LIB CACHE)
      set(WEIGHTSYNC_NCCL_ROOT_SEEN "${WEIGHTSYNC_NCCL_ROOT}" CACHE INTERNAL "")
    endif()
    find_path(WEIGHTSYNC_NCCL_INCLUDE nccl.h
      HINTS ${WEIGHTSYNC_NCCL_ROOT}/include ${CUDAToolkit_INCLUDE_DIRS})
    find_library(WEIGHTSYNC_NCCL_LIB NAMES nccl libnccl.so.2 NAMES_PER_DIR
      HINTS ${WEIGHTSYNC_NCCL_ROOT}/lib ${CUDAToolkit_LIBRARY_DIR})
    if(WEIGHTSYNC_NCCL_INCLUDE AND WEIGHTSYNC_NCCL_LIB)
      set(WEIGHTSYNC_HAVE_NCCL ON)
    endif()
  elseif(WEIGHTSYNC_CUDA STREQUAL "ON")
    message(FATAL_ERROR "WEIGHTSYNC_CUDA=ON but no CUDA compiler was found")
  endif()
endif()
message(STATUS "weightsync: CUDA ${WEIGHTSYNC_HAVE_CUDA}, NCCL ${WEIGHTSYNC_HAVE_NCCL}")

# Adds C++20 and Hopper flags to a target that has CUDA sources.
function(weightsync_cuda_target target)
  target_compile_options(${target} PRIVATE
    $<$<COMPILE_LANGUAGE:CUDA>:-std=c++20 --expt-relaxed-constexpr -lineinfo>)
  set_target_properties(${target} PROPERTIES CUDA_SEPARABLE_COMPILATION OFF)
endfunction()
