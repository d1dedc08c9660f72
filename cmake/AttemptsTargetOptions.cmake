# Language level, warnings and sanitizers, applied per target rather than through global flags.
function(attempts_target_options target)
  target_compile_features(${target} PUBLIC cxx_std_20)
  set_target_properties(${target} PROPERTIES CXX_EXTENSIONS OFF)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Wpedantic -Wshadow -Wconversion
                                           -Wno-sign-conversion -Wnon-virtual-dtor)
  if(ATTEMPTS_WARNINGS_AS_ERRORS)
    target_compile_options(${target} PRIVATE -Werror)
  endif()
  if(ATTEMPTS_SANITIZE)
    target_compile_options(${target} PRIVATE -fsanitize=${ATTEMPTS_SANITIZE} -fno-omit-frame-pointer
                                             -fno-sanitize-recover=all)
    target_link_options(${target} PRIVATE -fsanitize=${ATTEMPTS_SANITIZE})
  endif()
  # Set by ATTEMPTS_BUILD_FUZZERS: libFuzzer's coverage instrumentation without its main().
  if(ATTEMPTS_FUZZING)
    target_compile_options(${target} PRIVATE -fsanitize=fuzzer-no-link)
    target_link_options(${target} PRIVATE -fsanitize=fuzzer-no-link)
  endif()
endfunction()
